//! Owns the `[server]` section: the limits that keep one caller (a wall screen gone
//! wrong, a script, a hostile viewer) from stalling the API for everyone: websocket
//! connections, subscriptions and subscribe messages, snapshots computed at once, rows of
//! a breakdown. Each limit, when hit, is refused with a JSON error (or a websocket
//! `error` frame) naming its key, counted in `vigie_limit_refusals_total{limit}`, and
//! logged at most once a minute.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of the HTTP and websocket API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Open websockets of one caller (a token's name; every caller is `local` without
    /// tokens). Wall screens sharing one kiosk token count together.
    pub max_connections_per_caller: usize,
    /// Open websockets in all.
    pub max_connections: usize,
    /// Distinct subscriptions (window, filters, breakdown) the server computes for all
    /// its clients: each costs a snapshot per change and a trend every 5 s.
    pub max_subscriptions: usize,
    /// Distinct subscriptions held by one caller's connections at once.
    pub max_subscriptions_per_caller: usize,
    /// `subscribe` messages one connection may send in a burst...
    pub subscribe_burst: u32,
    /// ...and then per second.
    pub subscribe_per_second: f64,
    /// REST snapshots computed at once; more wait up to `snapshot_wait`, then get 503.
    pub max_concurrent_snapshots: usize,
    #[serde(with = "humantime_serde")]
    pub snapshot_wait: Duration,
    /// Rows of a breakdown (`by=`) when the query does not say (`rows=`): the busiest,
    /// the others summed in one `(other)` row.
    pub breakdown_rows: usize,
    /// The most rows a query may ask for.
    pub max_breakdown_rows: usize,
    /// The most agents in one page of the agent list (REST `limit=`, and the websocket's
    /// list, which sends the first ones).
    pub max_agent_rows: usize,
    /// Largest body of `POST /api/v1/events`, bytes (413 beyond).
    pub max_ingest_body: usize,
    /// Most records in one `POST /api/v1/events` (400 beyond).
    pub max_ingest_records: usize,
    /// `POST /api/v1/events` handled at once; more get 429 with `Retry-After` (the
    /// back-pressure a producer sees while Kafka is slow).
    pub max_concurrent_ingest: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_connections_per_caller: 200,
            max_connections: 5_000,
            max_subscriptions: 256,
            max_subscriptions_per_caller: 32,
            subscribe_burst: 10,
            subscribe_per_second: 2.0,
            max_concurrent_snapshots: 4,
            snapshot_wait: Duration::from_secs(2),
            breakdown_rows: 200,
            max_breakdown_rows: 2_000,
            max_agent_rows: 500,
            max_ingest_body: 4 << 20,
            max_ingest_records: 10_000,
            max_concurrent_ingest: 2,
        }
    }
}

impl ServerSettings {
    /// Pushes one line per problem, each naming its key and the fix.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let at_least_one = [
            (
                "max_connections_per_caller",
                self.max_connections_per_caller,
            ),
            ("max_connections", self.max_connections),
            ("max_subscriptions", self.max_subscriptions),
            (
                "max_subscriptions_per_caller",
                self.max_subscriptions_per_caller,
            ),
            ("max_concurrent_snapshots", self.max_concurrent_snapshots),
            ("breakdown_rows", self.breakdown_rows),
            ("max_agent_rows", self.max_agent_rows),
            ("max_ingest_body", self.max_ingest_body),
            ("max_ingest_records", self.max_ingest_records),
            ("max_concurrent_ingest", self.max_concurrent_ingest),
            ("subscribe_burst", self.subscribe_burst as usize),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                errors.push(format!("server.{key}: at least 1"));
            }
        }
        if self.max_connections_per_caller > self.max_connections {
            errors.push("server.max_connections_per_caller: at most server.max_connections".into());
        }
        if self.max_subscriptions_per_caller > self.max_subscriptions {
            errors.push(
                "server.max_subscriptions_per_caller: at most server.max_subscriptions".into(),
            );
        }
        if !(self.subscribe_per_second > 0.0 && self.subscribe_per_second <= 1_000.0) {
            errors
                .push("server.subscribe_per_second: between 0 (excluded) and 1000 (e.g. 2)".into());
        }
        if self.breakdown_rows > self.max_breakdown_rows {
            errors.push("server.breakdown_rows: at most server.max_breakdown_rows".into());
        }
        if self.max_breakdown_rows > 100_000 {
            errors.push("server.max_breakdown_rows: at most 100000 (e.g. 2000)".into());
        }
        if self.max_agent_rows > 10_000 {
            errors.push("server.max_agent_rows: at most 10000 (e.g. 500)".into());
        }
        if self.max_ingest_body > 64 << 20 {
            errors.push("server.max_ingest_body: at most 67108864 (64 MiB; e.g. 4194304)".into());
        }
        if self.max_ingest_records > 1_000_000 {
            errors.push("server.max_ingest_records: at most 1000000 (e.g. 10000)".into());
        }
        if self.snapshot_wait > Duration::from_secs(60) {
            errors.push("server.snapshot_wait: at most 60s (e.g. \"2s\")".into());
        }
    }
}
