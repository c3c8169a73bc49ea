//! Ingestion and `vigie serve` against a real Kafka-protocol broker (Tansu) on loopback:
//! the consumer and producer, the binary as an operator runs it, several instances
//! merging their partials (scale-out) and alerting for all. Each test has its own
//! broker, topics and group.

mod asterisk;
mod autopilot;
mod chaos;
mod connect;
mod http_ingest;
mod kafka_ingest;
mod scaleout;
mod scaleout_alerts;
mod serve_alerts;
