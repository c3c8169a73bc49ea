//! The API served in this process (the library's `AppState` and `serve` on port 0,
//! through `vigie_testkit::TestApp`), driven by real HTTP and websocket clients; some
//! with a real broker (Tansu) behind the switches, real webhook receivers, a fake OIDC
//! issuer. Also the engine against a brute-force reference.

mod agents_api;
mod agents_reference;
mod alerts;
mod auth;
mod cockpit_api;
mod engine_reference;
mod erlang_reference;
mod http_api;
mod limits;
mod oidc;
mod switches;
mod websocket;
