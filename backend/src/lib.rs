//! Vigie: real-time hypervision of omnichannel customer-service centres.
//!
//! # Layout
//! Dependencies point one way, from the top of this list down (a module may use its own
//! children): what runs things, then what they run on, then the vocabulary.
//! - [`server`]: the HTTP API (REST, websocket, auth, one error type), its route table and
//!   OpenAPI document, and the cockpit bundle.
//! - [`publisher`]: coalescing fan-out of live snapshots, trends, switches and alerts to
//!   websocket clients (latest only).
//! - [`autopilot`]: automatic deflection rules with guard rails, proposing or making
//!   flips through the switches and telling chat through the alerts.
//! - [`alert`]: alert rules on the live KPIs, their lifecycle, webhook delivery to chat
//!   ops, and (scale-out) one alerting instance whose state every instance shows.
//! - [`scaleout`]: the partials topic: claims, epochs, publishing this instance's
//!   partitions and merging everyone's.
//! - [`connector`]: bridges from the ACDs centres run (Asterisk's `queue_log`, Amazon
//!   Connect's events) to the event contract: replayed, or followed live and produced.
//! - [`ingest`]: the Kafka consumer (rebuild by time with parallel rebuild readers,
//!   partitions applied in parallel, dead-letter topic, offsets) and producer.
//! - [`replay`]: feeds a recorded stream through engines, one per worker thread, events
//!   routed by key as Kafka partitions are (`vigie replay`).
//! - [`simulate`]: a contact centre simulated event by event (queues, agents in shifts,
//!   patience, the switches that are on), the traffic of `vigie simulate` and the demo.
//! - [`deflection`]: deflection switches, shared through a compacted Kafka topic, their
//!   audit and measured effect.
//! - [`status`]: what this instance knows of itself: rebuild, lag, staleness, counters,
//!   the scale-out cluster view.
//! - [`kafka`]: Kafka client plumbing: client config, instance id, topic creation.
//! - [`engine`]: joins, repeat horizon, time-bucketed windows, KPI snapshots, the agents'
//!   staffing and occupancy and the agent list, the Erlang C model (no I/O).
//! - [`event`]: the event contract (contacts and agents), its JSONL / protobuf decoders
//!   and encoders.
//! - [`config`]: the typed settings tree, layered default → file → `VIGIE__*` env (a leaf).
//! - [`telemetry`]: the tracing subscriber.
//!
//! Data flows one way: Kafka or file → decode → engine → publisher → HTTP / websocket;
//! the engine → alert rules → webhooks. The wire types (snapshots, switches, alerts,
//! every JSON body of the API) are in `vigie_proto`, shared with the cockpit.

pub mod alert;
pub mod autopilot;
pub mod config;
pub mod connector;
pub mod deflection;
pub mod engine;
pub mod event;
pub mod ingest;
pub mod kafka;
pub mod publisher;
pub mod replay;
pub mod scaleout;
pub mod server;
pub mod simulate;
pub mod status;
pub mod telemetry;
