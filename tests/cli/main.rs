//! The `vigie` binary as a user or another tool runs it: `replay`, `simulate`, `demo`,
//! `routes`; its files, stdout, stderr and exit codes.

mod asterisk;
mod connect;
mod demo;
mod replay;
