//! Owns the limits of the API ([`ServerSettings`]): who holds which websocket, how many
//! snapshots are computed at once, and the refusals when a limit is hit (counted per
//! limit in `vigie_limit_refusals_total{limit}`, logged at most once a minute each).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use crate::config::ServerSettings;
use crate::telemetry::Occasional;

/// A limit of `[server]` (and `auth.mutations_per_minute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    ConnectionsPerCaller,
    Connections,
    Subscriptions,
    SubscriptionsPerCaller,
    SubscribeRate,
    ConcurrentSnapshots,
    Mutations,
    ConcurrentIngest,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::ConnectionsPerCaller,
        Limit::Connections,
        Limit::Subscriptions,
        Limit::SubscriptionsPerCaller,
        Limit::SubscribeRate,
        Limit::ConcurrentSnapshots,
        Limit::Mutations,
        Limit::ConcurrentIngest,
    ];

    /// Its config key, also its metric label.
    pub fn key(self) -> &'static str {
        match self {
            Limit::ConnectionsPerCaller => "server.max_connections_per_caller",
            Limit::Connections => "server.max_connections",
            Limit::Subscriptions => "server.max_subscriptions",
            Limit::SubscriptionsPerCaller => "server.max_subscriptions_per_caller",
            Limit::SubscribeRate => "server.subscribe_per_second",
            Limit::ConcurrentSnapshots => "server.max_concurrent_snapshots",
            Limit::Mutations => "auth.mutations_per_minute",
            Limit::ConcurrentIngest => "server.max_concurrent_ingest",
        }
    }

    /// The code of its error body or frame.
    pub fn code(self) -> &'static str {
        match self {
            Limit::ConnectionsPerCaller | Limit::Connections => "too_many_connections",
            Limit::Subscriptions | Limit::SubscriptionsPerCaller => "too_many_subscriptions",
            Limit::SubscribeRate => "too_many_messages",
            Limit::ConcurrentSnapshots | Limit::ConcurrentIngest => "busy",
            Limit::Mutations => "rate_limited",
        }
    }
}

/// The limits in force and what they refused.
#[derive(Debug)]
pub struct Limits {
    pub settings: ServerSettings,
    refused: [AtomicU64; Limit::ALL.len()],
    said: [Occasional; Limit::ALL.len()],
    connections: Mutex<HashMap<String, usize>>,
    snapshots: Arc<Semaphore>,
    ingests: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(ServerSettings::default())
    }
}

impl Limits {
    pub fn new(settings: ServerSettings) -> Limits {
        Limits {
            snapshots: Arc::new(Semaphore::new(settings.max_concurrent_snapshots)),
            ingests: Arc::new(Semaphore::new(settings.max_concurrent_ingest)),
            settings,
            refused: Default::default(),
            said: std::array::from_fn(|_| Occasional::new(Duration::from_secs(60))),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// A slot to handle one `POST /api/v1/events`, or 429 at once.
    pub fn ingest_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.ingests.clone().try_acquire_owned().map_err(|_| {
            self.refuse(
                Limit::ConcurrentIngest,
                format!(
                    "{} event batches are being produced already (server.max_concurrent_ingest): retry in a second",
                    self.settings.max_concurrent_ingest
                ),
            )
        })
    }

    /// Counts a refusal by `limit` (and says it, at most once a minute); the error to
    /// answer with.
    pub fn refuse(&self, limit: Limit, message: String) -> ApiError {
        let i = Limit::ALL.iter().position(|l| *l == limit).unwrap_or(0);
        self.refused[i].fetch_add(1, Relaxed);
        if let Some(times) = self.said[i].due() {
            tracing::warn!(limit = limit.key(), times, "{message}");
        }
        ApiError::Limited { limit, message }
    }

    /// Refusals so far, per limit.
    pub fn refusals(&self) -> impl Iterator<Item = (Limit, u64)> + '_ {
        Limit::ALL
            .iter()
            .zip(&self.refused)
            .map(|(l, n)| (*l, n.load(Relaxed)))
    }

    /// Open websockets.
    pub fn connections(&self) -> usize {
        self.connections.lock().values().sum()
    }

    /// A websocket for `caller`, held until the lease is dropped; refused beyond the
    /// caller's or the server's limit.
    pub fn connect(self: &Arc<Self>, caller: &str) -> Result<ConnectionLease, ApiError> {
        let s = &self.settings;
        let mut held = self.connections.lock();
        let total: usize = held.values().sum();
        if total >= s.max_connections {
            drop(held);
            return Err(self.refuse(
                Limit::Connections,
                format!(
                    "the server holds {total} websockets, its limit (server.max_connections); retry later"
                ),
            ));
        }
        let mine = held.entry(caller.to_string()).or_default();
        if *mine >= s.max_connections_per_caller {
            let n = *mine;
            drop(held);
            return Err(self.refuse(
                Limit::ConnectionsPerCaller,
                format!(
                    "{caller:?} already holds {n} websockets, its limit (server.max_connections_per_caller); close some"
                ),
            ));
        }
        *mine += 1;
        Ok(ConnectionLease {
            limits: self.clone(),
            caller: caller.to_string(),
        })
    }

    /// A permit to compute a snapshot, waiting up to `snapshot_wait` for one.
    pub async fn snapshot_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let wait = self.settings.snapshot_wait;
        match tokio::time::timeout(wait, self.snapshots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(self.refuse(
                Limit::ConcurrentSnapshots,
                format!(
                    "{} snapshots are being computed (server.max_concurrent_snapshots) and none ended within {}; retry shortly",
                    self.settings.max_concurrent_snapshots,
                    humantime::format_duration(wait)
                ),
            )),
        }
    }

    /// Holds every snapshot permit (a test's way to make the server busy).
    pub fn hold_every_snapshot_permit(&self) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(self.settings.max_concurrent_snapshots).ok()?;
        self.snapshots.clone().try_acquire_many_owned(n).ok()
    }
}

/// One open websocket of a caller; released on drop.
#[derive(Debug)]
pub struct ConnectionLease {
    limits: Arc<Limits>,
    caller: String,
}

impl Drop for ConnectionLease {
    fn drop(&mut self) {
        let mut held = self.limits.connections.lock();
        if let Some(n) = held.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

/// A token bucket: `burst` at once, then `per_second` (a connection's subscribe messages).
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    pub fn new(burst: u32, per_second: f64) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second,
            at: tokio::time::Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_gives_its_burst_then_its_rate() {
        let mut bucket = Bucket::new(3, 2.0);
        assert!((0..3).all(|_| bucket.take()), "the burst");
        assert!(!bucket.take(), "then nothing at once");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(bucket.take(), "one more after half a second at 2/s");
        assert!(!bucket.take());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            (0..10).filter(|_| bucket.take()).count(),
            3,
            "never beyond the burst"
        );
    }

    #[test]
    fn connections_are_limited_per_caller_and_in_all_and_released() {
        let limits = Arc::new(Limits::new(ServerSettings {
            max_connections_per_caller: 2,
            max_connections: 3,
            ..ServerSettings::default()
        }));
        let a1 = limits.connect("wall").expect("first");
        let _a2 = limits.connect("wall").expect("second");
        let refused = limits.connect("wall").expect_err("third of one caller");
        assert!(
            refused
                .to_string()
                .contains("server.max_connections_per_caller"),
            "{refused}"
        );
        let _b = limits.connect("sup").expect("another caller");
        let refused = limits.connect("adm").expect_err("the server is full");
        assert!(
            refused.to_string().contains("server.max_connections"),
            "{refused}"
        );
        drop(a1);
        assert_eq!(limits.connections(), 2);
        let _again = limits.connect("wall").expect("released");
        let counted: Vec<u64> = limits.refusals().map(|(_, n)| n).collect();
        assert_eq!(counted[..2], [1, 1]);
    }
}
