//! Owns delivery to one sink: a bounded FIFO of pending notifications, each kept as a
//! file under `<state_dir>/outbox/<sink>/` from the moment it is raised until the sink
//! accepts it, and the worker posting them in order with timeouts, exponential backoff
//! with jitter, and a give-up age. Nothing here is awaited by the evaluator or ingestion.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::payload::{sign, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use crate::config::{SinkKind, SinkSettings};

/// A notification waiting for its sink: the exact body, rendered once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Stable delivery id (also the `X-Vigie-Delivery` header).
    pub id: String,
    /// `fired`, `reminder`, `acknowledged` or `resolved`.
    pub event: String,
    /// Epoch ms when it was raised.
    pub created_at: i64,
    pub body: String,
    /// File holding it, when persisted.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Delivery counters of one sink (read by `/metrics`).
#[derive(Debug, Default)]
pub struct SinkStats {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Dropped: queue full (oldest first), refused for good by the sink, or too old.
    pub dropped: AtomicU64,
}

/// Delivery ids remembered per sink once out of the queue.
const FINISHED_KEPT: usize = 1_000;

/// One sink: its settings, queue and counters.
pub struct Sink {
    pub name: String,
    settings: SinkSettings,
    dir: Option<PathBuf>,
    queue: Mutex<VecDeque<Pending>>,
    /// Delivery ids that left the queue lately (delivered, refused, given up): a
    /// notification handed over again after a takeover is not sent twice.
    finished: Mutex<VecDeque<String>>,
    wake: Notify,
    /// Orders files raised within one millisecond.
    sequence: AtomicU64,
    pub stats: SinkStats,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings hold the URL and key: only the name and kind are shown.
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.settings.kind)
            .field("queued", &self.queue.lock().len())
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed.
enum Failure {
    /// Worth retrying (connection refused, timeout, 5xx, 408, 429), after at least this long.
    Retry(Option<Duration>),
    /// The sink refused the payload for good (other 4xx): retrying cannot help.
    Refused(u16),
}

impl Sink {
    /// A sink whose pending notifications live in `dir` (created if missing), reloaded
    /// from there in the order they were raised.
    pub fn open(name: &str, settings: SinkSettings, dir: Option<PathBuf>) -> std::io::Result<Sink> {
        let mut queue = VecDeque::new();
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for file in files {
                match std::fs::read(&file)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
                {
                    Some(mut pending) => {
                        pending.file = Some(file);
                        queue.push_back(pending);
                    }
                    None => {
                        tracing::warn!(sink = name, file = %file.display(), "unreadable pending notification skipped");
                    }
                }
            }
            if !queue.is_empty() {
                tracing::info!(
                    sink = name,
                    pending = queue.len(),
                    "pending notifications reloaded"
                );
            }
        }
        Ok(Sink {
            name: name.into(),
            settings,
            dir,
            queue: Mutex::new(queue),
            finished: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            sequence: AtomicU64::new(0),
            stats: SinkStats::default(),
        })
    }

    pub fn kind(&self) -> SinkKind {
        self.settings.kind
    }

    pub fn language(&self) -> vigie_proto::words::Lang {
        self.settings.language
    }

    pub fn notify_acknowledged(&self) -> bool {
        self.settings.notify_acknowledged
    }

    pub fn queued(&self) -> usize {
        self.queue.lock().len()
    }

    /// Queues `pending`, on disk first; past the capacity the oldest is dropped.
    pub fn push(&self, mut pending: Pending) {
        if let Some(dir) = &self.dir {
            let seq = self.sequence.fetch_add(1, Relaxed);
            let file = dir.join(format!("{:013}-{seq:06}.json", pending.created_at.max(0)));
            match write_atomically(&file, &serde_json::to_vec(&pending).unwrap_or_default()) {
                Ok(()) => pending.file = Some(file),
                Err(error) => {
                    tracing::error!(sink = %self.name, %error, "persisting a notification failed: it is kept in memory only");
                }
            }
        }
        let mut queue = self.queue.lock();
        queue.push_back(pending);
        while queue.len() > self.settings.queue_capacity {
            if let Some(old) = queue.pop_front() {
                self.stats.dropped.fetch_add(1, Relaxed);
                tracing::warn!(sink = %self.name, delivery = %old.id, "queue full: oldest notification dropped");
                remove(&old);
            }
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// The notifications waiting, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.queue.lock().iter().cloned().collect()
    }

    /// Queues `pending` unless a notification with its id is waiting or left the queue
    /// lately; `true` if queued.
    pub(crate) fn push_unless_known(&self, pending: Pending) -> bool {
        if self.queue.lock().iter().any(|p| p.id == pending.id)
            || self.finished.lock().contains(&pending.id)
        {
            return false;
        }
        self.push(pending);
        true
    }

    /// Takes every waiting notification out of the queue, their files kept (scale-out:
    /// they are handed to the alerting instance, and their files removed once it has them).
    pub(crate) fn take_all(&self) -> Vec<Pending> {
        self.queue.lock().drain(..).collect()
    }

    /// Removes `id` from the front of the queue (if it is still there) and its file.
    fn done(&self, id: &str) {
        let mut queue = self.queue.lock();
        if queue.front().is_some_and(|p| p.id == id) {
            if let Some(p) = queue.pop_front() {
                remove(&p);
                let mut finished = self.finished.lock();
                finished.push_back(p.id);
                if finished.len() > FINISHED_KEPT {
                    finished.pop_front();
                }
            }
        }
    }

    /// Posts the queue in order until `shutdown`; a notification leaves the queue only
    /// once accepted (2xx), refused for good (4xx), or older than `give_up_after`.
    pub async fn run(self: Arc<Self>, client: reqwest::Client, shutdown: CancellationToken) {
        let s = &self.settings;
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            jiff::Timestamp::now().as_nanosecond() as u64 ^ self.name.len() as u64,
        );
        let mut failures: u32 = 0;
        loop {
            let next = self.queue.lock().front().cloned();
            let Some(pending) = next else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => continue,
                }
            };
            let age = jiff::Timestamp::now().as_millisecond() - pending.created_at;
            if age > i64::try_from(s.give_up_after.as_millis()).unwrap_or(i64::MAX) {
                self.stats.dropped.fetch_add(1, Relaxed);
                tracing::error!(sink = %self.name, delivery = %pending.id, "notification undelivered for longer than give_up_after: dropped");
                self.done(&pending.id);
                failures = 0;
                continue;
            }
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.attempt(&client, &pending) => result,
            };
            match attempt {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Relaxed);
                    tracing::info!(sink = %self.name, delivery = %pending.id, "notification delivered");
                    self.done(&pending.id);
                    failures = 0;
                }
                Err(Failure::Refused(status)) => {
                    self.stats.dropped.fetch_add(1, Relaxed);
                    tracing::error!(sink = %self.name, delivery = %pending.id, status, "sink refused the notification: dropped (check the sink's configuration)");
                    self.done(&pending.id);
                    failures = 0;
                }
                Err(Failure::Retry(at_least)) => {
                    self.stats.failed_attempts.fetch_add(1, Relaxed);
                    let delay = backoff(s.retry_initial, s.retry_max, failures, &mut rng)
                        .max(at_least.unwrap_or_default().min(s.retry_max));
                    failures = failures.saturating_add(1);
                    tracing::debug!(sink = %self.name, delivery = %pending.id, ?delay, failures, "retrying later");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    #[tracing::instrument(name = "alert_delivery", skip_all, fields(sink = %self.name, delivery = %pending.id))]
    async fn attempt(&self, client: &reqwest::Client, pending: &Pending) -> Result<(), Failure> {
        let s = &self.settings;
        let mut request = client
            .post(s.url.expose())
            .timeout(s.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &pending.id)
            .header(EVENT_HEADER, &pending.event);
        if let Some(key) = &s.secret {
            request = request.header(
                SIGNATURE_HEADER,
                sign(key.expose(), pending.body.as_bytes()),
            );
        }
        let response = match request.body(pending.body.clone()).send().await {
            Ok(r) => r,
            Err(error) => {
                // The URL is a secret: never in the log.
                let error = error.without_url();
                tracing::warn!(%error, "delivery attempt failed");
                return Err(Failure::Retry(None));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        tracing::warn!(status = status.as_u16(), "sink answered with an error");
        if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Retry(retry_after))
        } else {
            Err(Failure::Refused(status.as_u16()))
        }
    }
}

/// Delay before retry number `failures` (0-based): `initial × 2^failures`, capped at
/// `max`, with "equal jitter" (half fixed, half random) so sinks recovering together are
/// not hit by every instance at the same instant.
pub(crate) fn backoff(
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: &mut impl Rng,
) -> Duration {
    let base = initial
        .saturating_mul(2u32.saturating_pow(failures.min(30)))
        .min(max);
    let half = base / 2;
    half + half.mul_f64(rng.random::<f64>())
}

pub(super) fn remove(pending: &Pending) {
    if let Some(file) = &pending.file {
        if let Err(error) = std::fs::remove_file(file) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %file.display(), %error, "removing a delivered notification's file failed");
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves
/// either the old content or the new one, never half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(capacity: usize) -> SinkSettings {
        SinkSettings {
            kind: SinkKind::Json,
            url: Secret::new("http://127.0.0.1:9/hook"),
            secret: Some(Secret::new("0123456789abcdef")),
            timeout: Duration::from_secs(1),
            queue_capacity: capacity,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(60),
            notify_acknowledged: false,
            language: Default::default(),
        }
    }

    fn pending(id: &str, at: i64) -> Pending {
        Pending {
            id: id.into(),
            event: "fired".into(),
            created_at: at,
            body: "{}".into(),
            file: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for failures in 0..10 {
            let base = (initial * 2u32.pow(failures)).min(max);
            let d = backoff(initial, max, failures, &mut rng);
            assert!(d >= base / 2 && d <= base, "{failures}: {d:?} vs {base:?}");
        }
        assert!(backoff(initial, max, u32::MAX, &mut rng) <= max);
    }

    #[test]
    fn the_queue_is_bounded_persisted_in_order_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ops");
        let sink = Sink::open("ops", settings(2), Some(path.clone())).expect("open");
        sink.push(pending("a", 1));
        sink.push(pending("b", 2));
        sink.push(pending("c", 3));
        assert_eq!(sink.queued(), 2);
        assert_eq!(sink.stats.dropped.load(Relaxed), 1);
        sink.done("b");
        assert_eq!(std::fs::read_dir(&path).expect("dir").count(), 1);
        sink.push(pending("d", 4));
        let reopened = Sink::open("ops", settings(2), Some(path)).expect("reopen");
        let ids: Vec<String> = reopened.queue.lock().iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids, vec!["c".to_string(), "d".to_string()]);
        let debug = format!("{reopened:?}");
        assert!(
            !debug.contains("127.0.0.1") && !debug.contains("0123456789"),
            "{debug}"
        );
    }

    #[test]
    fn a_notification_handed_over_is_queued_once_and_never_after_it_left() {
        let sink = Sink::open("ops", settings(10), None).expect("sink");
        assert!(sink.push_unless_known(pending("a", 1)));
        assert!(!sink.push_unless_known(pending("a", 1)), "already queued");
        let taken = sink.take_all();
        assert_eq!(taken.len(), 1);
        assert_eq!(sink.queued(), 0, "taken out to hand over");
        assert!(sink.push_unless_known(pending("a", 1)), "handed back");
        sink.done("a");
        assert!(
            !sink.push_unless_known(pending("a", 1)),
            "delivered: a late handoff of it is not sent again"
        );
        assert_eq!(sink.queued(), 0);
    }
}
