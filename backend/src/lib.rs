//! Vigie: real-time hypervision of omnichannel customer-service centres.
//!
//! # Layout
//! - [`alert`]: alert rules on the live KPIs, their lifecycle, webhook delivery to chat ops,
//!   and (scale-out) one alerting instance whose state every instance shows.
//! - [`config`]: the typed settings tree, layered default → file → `VIGIE__*` env.
//! - [`deflection`]: deflection switches, shared through a compacted Kafka topic, and their audit.
//! - [`event`]: the interaction event contract and its JSONL / protobuf decoders.
//! - [`engine`]: joins, repeat horizon, time-bucketed windows, KPI snapshots (no I/O).
//! - [`ingest`]: the Kafka consumer (rebuild by time, dead-letter topic, offsets) and producer.
//! - [`partials`]: scale-out, publishing this instance's partitions and merging everyone's.
//! - [`publisher`]: coalescing fan-out of live snapshots to websocket clients (latest only).
//! - [`replay`]: feeds a recorded stream through the engine (`vigie replay`).
//! - [`server`]: the HTTP API (snapshot, health, readiness, metrics).
//! - [`simulate`]: the realistic traffic generator (`vigie simulate`).
//! - [`telemetry`]: the tracing subscriber.
//!
//! Data flows one way: Kafka or file → decode → engine → publisher → HTTP / websocket;
//! the engine → alert rules → webhooks.

pub mod alert;
pub mod config;
pub mod deflection;
pub mod engine;
pub mod event;
pub mod ingest;
pub mod partials;
pub mod publisher;
pub mod replay;
pub mod server;
pub mod simulate;
pub mod telemetry;
