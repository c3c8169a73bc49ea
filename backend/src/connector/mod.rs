//! Owns the bridges from the systems contact centres run to Vigie's event contract:
//! Asterisk's `queue_log` ([`asterisk`]), Amazon Connect's contact and agent events
//! ([`connect`]), following a log file as it grows ([`tail`]),
//! and producing what a followed log says to Kafka ([`bridge`]). Each turns source records into contract events; the commands replay them
//! through the engine (`vigie replay --format asterisk`) or produce them to Kafka with the
//! key convention (`vigie ingest asterisk`).

pub mod asterisk;
pub mod bridge;
pub mod connect;
pub mod tail;

pub use asterisk::{AsteriskConverter, ConvertReport, LineError};
