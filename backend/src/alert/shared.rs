//! Owns the alert state shared by the instances of a scale-out (`kafka.partials = true`):
//! what the **alerting instance** publishes to the partials topic, and the
//! acknowledgements any instance forwards to it.
//!
//! One instance evaluates the rules and notifies the sinks: the one consuming partition 0
//! of the events topic. Kafka's consumer group elects it, so there is no election of our
//! own, and its epoch is partition 0's claim offset in the partials topic
//! ([`crate::scaleout`]), which fences a former alerting instance's late records. The
//! records ride on that topic as a [`Piggyback`].
//!
//! - Key `<events topic>/alerts`: [`SharedState`], the alert lifecycle (active alerts and
//!   history) and every sink's undelivered notifications, republished when it changes.
//! - Key `<events topic>/alerts/ack/<alert id>`: an [`AckRequest`] from any instance;
//!   the alerting instance applies it (acknowledging twice keeps the first).
//! - Key `<events topic>/alerts/handoff/<sink>/<delivery id>`: a [`Handoff`], a
//!   notification an instance found queued on its disk (queued before a crash, or
//!   while it was the alerting instance) and hands to the alerting one, which queues it
//!   unless already queued and writes a tombstone ([`super::handoff`]).
//!
//! Takeover: a new alerting instance first reads the topic up to its own claim. The
//! group revokes partition 0 from the former owner before assigning it, so by then it
//! holds the last state its predecessor published. It takes over that lifecycle (an
//! alert already fired is not fired again) and re-queues the notifications its
//! predecessor had not delivered. Delivery is at least once: one delivered in the last
//! moments before a takeover may be sent again, with the same delivery id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use vigie_proto::{Alert, AlertState};

use super::delivery::Pending;
use super::handoff::SHARED_MAX_BYTES;
use super::lifecycle::Lifecycle;
use super::{now_ms, AlertError, AlertService};
use crate::config::KafkaSettings;
use crate::scaleout::Piggyback;

/// Format version of the shared alert records.
pub(crate) const SHARED_VERSION: u32 = 1;

/// The alerting instance's state, as published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedState {
    pub v: u32,
    /// Instance id of the alerting instance.
    pub owner: String,
    /// Its epoch: the offset of its claim of partition 0 in the partials topic.
    pub epoch: i64,
    pub lifecycle: Lifecycle,
    /// Per sink, the notifications not yet delivered, oldest first.
    pub outbox: BTreeMap<String, Vec<Pending>>,
    /// Wall-clock time of publication, epoch ms.
    pub published_at: i64,
}

/// An acknowledgement made through any instance's API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AckRequest {
    pub id: String,
    pub who: String,
    #[serde(default)]
    pub note: Option<String>,
    /// Epoch ms.
    pub at: i64,
}

/// A notification handed to the alerting instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Handoff {
    pub sink: String,
    pub pending: Pending,
}

/// What a key of the partials topic names, for alerts.
#[derive(Debug, PartialEq, Eq)]
enum AlertKey {
    State,
    Ack,
    Handoff,
}

/// Parses `<topic>/alerts` and `<topic>/alerts/ack/<id>`.
fn parse_key(key: &str, topic: &str) -> Option<AlertKey> {
    let rest = key.strip_prefix(topic)?.strip_prefix("/alerts")?;
    if rest.is_empty() {
        return Some(AlertKey::State);
    }
    if rest.strip_prefix("/ack/").is_some_and(|id| !id.is_empty()) {
        return Some(AlertKey::Ack);
    }
    rest.strip_prefix("/handoff/")
        .and_then(|r| r.split_once('/'))
        .filter(|(sink, id)| !sink.is_empty() && !id.is_empty())
        .map(|_| AlertKey::Handoff)
}

/// The shared alert records seen, and the producer to publish this instance's.
pub struct SharedAlerts {
    producer: FutureProducer,
    partials_topic: String,
    source_topic: String,
    /// This instance's id.
    pub instance: String,
    /// The newest state of the highest epoch seen.
    state: Mutex<Option<SharedState>>,
    /// Bumped whenever `state` changes.
    generation: AtomicU64,
    /// Offset of the last partials record read (-1: none yet).
    read_offset: AtomicI64,
    /// Acknowledgements read, not yet applied by the alerting instance.
    acks: Mutex<Vec<AckRequest>>,
    /// Handed-off notifications read and not tombstoned yet, by key.
    handoffs: Mutex<BTreeMap<String, Handoff>>,
    /// Woken whenever a state is applied (acknowledgements wait on it).
    changed: Notify,
    /// A tokio runtime to await deliveries on (publishing runs on blocking threads).
    runtime: tokio::runtime::Handle,
    pub stats: Arc<SharedStats>,
}

/// Counters of the shared alert records (metrics).
#[derive(Debug, Default)]
pub struct SharedStats {
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    /// States of a former alerting instance (older epoch), ignored.
    pub fenced: AtomicU64,
    pub unreadable: AtomicU64,
    /// Notifications found on this instance's disk and handed to the alerting instance.
    pub handed_off: AtomicU64,
    /// Handed-off notifications this instance queued, as the alerting instance.
    pub adopted: AtomicU64,
    /// Bytes of the last alert state published (kept under [`SHARED_MAX_BYTES`]).
    pub state_bytes: AtomicU64,
    /// Alert states trimmed to fit (oldest history, then oldest pending notifications).
    pub trimmed: AtomicU64,
}

impl std::fmt::Debug for SharedAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAlerts")
            .field("partials_topic", &self.partials_topic)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl SharedAlerts {
    /// For `settings` (whose `instance_id` is set): publishes to the partials topic.
    /// Must be called inside a tokio runtime.
    pub fn new(settings: &KafkaSettings) -> Result<SharedAlerts, rdkafka::error::KafkaError> {
        Ok(SharedAlerts {
            producer: crate::kafka::internal_client_config(settings)
                .set("message.timeout.ms", "10000")
                .set("enable.idempotence", "true")
                .create()?,
            partials_topic: settings.partials_topic.clone(),
            source_topic: settings.topic.clone(),
            instance: crate::kafka::instance_id(settings),
            state: Mutex::new(None),
            generation: AtomicU64::new(0),
            read_offset: AtomicI64::new(-1),
            acks: Mutex::new(Vec::new()),
            handoffs: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            runtime: tokio::runtime::Handle::current(),
            stats: Arc::default(),
        })
    }

    /// The partials topic has been read at least up to `offset`.
    pub(crate) fn has_read(&self, offset: i64) -> bool {
        self.read_offset.load(Relaxed) >= offset
    }

    /// Applies a state record; `false` if it is a former alerting instance's (fenced).
    pub(crate) fn apply_state(&self, payload: &[u8]) -> Result<bool, String> {
        let state: SharedState = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if state.v != SHARED_VERSION {
            return Err(format!(
                "shared alert format version {} is not supported (expected {SHARED_VERSION})",
                state.v
            ));
        }
        let mut current = self.state.lock();
        if current.as_ref().is_some_and(|c| c.epoch > state.epoch) {
            self.stats.fenced.fetch_add(1, Relaxed);
            return Ok(false);
        }
        *current = Some(state);
        drop(current);
        self.generation.fetch_add(1, Relaxed);
        self.changed.notify_waiters();
        Ok(true)
    }

    /// Queues an acknowledgement record for the alerting instance.
    pub(crate) fn apply_ack(&self, payload: &[u8]) -> Result<(), String> {
        let ack: AckRequest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        self.acks.lock().push(ack);
        Ok(())
    }

    /// Forgets the acknowledgements made before `since` (epoch ms).
    pub(crate) fn keep_acks_since(&self, since: i64) {
        self.acks.lock().retain(|a| a.at >= since);
    }

    /// Takes the acknowledgements read so far.
    pub(crate) fn take_acks(&self) -> Vec<AckRequest> {
        std::mem::take(&mut *self.acks.lock())
    }

    /// Takes the handed-off notifications read so far (the caller writes their tombstones).
    pub(crate) fn take_handoffs(&self) -> Vec<(String, Handoff)> {
        std::mem::take(&mut *self.handoffs.lock())
            .into_iter()
            .collect()
    }

    /// Key of a handed-off notification.
    pub(crate) fn handoff_key(&self, sink: &str, id: &str) -> String {
        format!("{}/alerts/handoff/{sink}/{id}", self.source_topic)
    }

    /// Publishes a handed-off notification; whether the topic took it.
    pub(crate) async fn publish_handoff(&self, handoff: &Handoff) -> bool {
        let Ok(payload) = serde_json::to_vec(handoff) else {
            return false;
        };
        let key = self.handoff_key(&handoff.sink, &handoff.pending.id);
        let record = FutureRecord::to(&self.partials_topic)
            .partition(0)
            .key(&key)
            .payload(&payload);
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                self.stats.published.fetch_add(1, Relaxed);
                true
            }
            Err((error, _)) => {
                self.stats.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, "handing a pending notification to the alerting instance failed; retrying");
                false
            }
        }
    }

    /// Writes the tombstone of a handed-off notification once queued (compaction drops both).
    pub(crate) fn publish_tombstone(&self, key: String) {
        let record: FutureRecord<'_, String, [u8]> = FutureRecord::to(&self.partials_topic)
            .partition(0)
            .key(&key);
        self.deliver(record, "handed-off notification's tombstone");
    }

    /// The newest state and its generation.
    pub fn state(&self) -> (u64, Option<SharedState>) {
        let state = self.state.lock().clone();
        (self.generation.load(Relaxed), state)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Resolves at the next state applied.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Publishes this instance's state (never waits: the outcome is counted and logged).
    pub(crate) fn publish_state(&self, payload: Vec<u8>) {
        let key = format!("{}/alerts", self.source_topic);
        self.send(key, payload, "alert state");
    }

    /// Forwards an acknowledgement to the alerting instance.
    pub(crate) fn publish_ack(&self, ack: &AckRequest) {
        let Ok(payload) = serde_json::to_vec(ack) else {
            return;
        };
        let key = format!("{}/alerts/ack/{}", self.source_topic, ack.id);
        self.send(key, payload, "alert acknowledgement");
    }

    fn send(&self, key: String, payload: Vec<u8>, what: &'static str) {
        let record = FutureRecord::to(&self.partials_topic)
            .partition(0)
            .key(&key)
            .payload(&payload[..]);
        self.deliver(record, what);
    }

    fn deliver(&self, record: FutureRecord<'_, String, [u8]>, what: &'static str) {
        match self.producer.send_result(record) {
            Ok(delivery) => {
                let stats = self.stats.clone();
                self.runtime.spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => stats.published.fetch_add(1, Relaxed),
                        _ => {
                            tracing::warn!(what, "publishing to the partials topic failed");
                            stats.publish_failures.fetch_add(1, Relaxed)
                        }
                    };
                });
            }
            Err((error, _)) => {
                self.stats.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, what, "publishing to the partials topic failed");
            }
        }
    }
}

/// The shared alert records ride on the partials topic: applied as they are read, in the
/// topic's order with the claims.
impl Piggyback for SharedAlerts {
    fn accept(&self, key_text: &str, payload: Option<&[u8]>, offset: i64) -> bool {
        let Some(key) = parse_key(key_text, &self.source_topic) else {
            return false;
        };
        let result = match (key, payload) {
            (AlertKey::Handoff, None) => {
                self.handoffs.lock().remove(key_text);
                Ok(())
            }
            (AlertKey::Handoff, Some(payload)) => serde_json::from_slice::<Handoff>(payload)
                .map(|h| {
                    self.handoffs.lock().insert(key_text.to_string(), h);
                })
                .map_err(|e| e.to_string()),
            (_, None) => Ok(()),
            (AlertKey::State, Some(payload)) => self.apply_state(payload).map(drop),
            (AlertKey::Ack, Some(payload)) => self.apply_ack(payload),
        };
        if let Err(error) = result {
            self.stats.unreadable.fetch_add(1, Relaxed);
            tracing::warn!(%error, offset, "unreadable shared alert record skipped");
        }
        true
    }

    fn read_up_to(&self, offset: i64) {
        self.read_offset.fetch_max(offset, Relaxed);
    }

    fn reset(&self) {
        *self.state.lock() = None;
        self.read_offset.store(-1, Relaxed);
        self.acks.lock().clear();
        self.handoffs.lock().clear();
        self.generation.fetch_add(1, Relaxed);
    }
}

/// The shared alert state is republished at least this often, even unchanged (the
/// partials topic's time retention never deletes it).
const SHARED_KEEPALIVE_MS: i64 = 60_000;

/// This instance's part in alerting.
pub(super) enum Part {
    /// No scale-out: evaluates and notifies on its own.
    Single,
    /// The alerting instance (it consumes partition 0), with its epoch.
    Alerting(Arc<SharedAlerts>, i64),
    /// Another instance alerts; this one shows its state and forwards acknowledgements.
    Following(Arc<SharedAlerts>),
}

/// The scale-out part of the alerting service.
impl AlertService {
    /// Scale-out: from now on one instance alerts for all, its state on the partials
    /// topic (see [`shared`]). The notifications queued on this instance's disk (queued
    /// before a crash, perhaps never published) are handed to the alerting instance.
    pub fn share(&self, shared: Arc<SharedAlerts>) {
        self.carry("found on disk at start");
        let _ = self.shared.set(shared);
    }

    pub(super) fn part(&self) -> Part {
        let Some(shared) = self.shared.get() else {
            return Part::Single;
        };
        // Alerting once the partials topic has been read up to its own claim: by then
        // the former alerting instance's last state is known.
        match self.engines.get(0).and_then(|e| e.partial_epoch()) {
            Some(epoch) if shared.has_read(epoch) => Part::Alerting(shared.clone(), epoch),
            _ => Part::Following(shared.clone()),
        }
    }

    /// Whether this instance is the one evaluating and notifying.
    pub fn is_alerting(&self) -> bool {
        !matches!(self.part(), Part::Following(_))
    }

    /// Scale-out: counters of the shared alert records.
    pub(crate) fn shared_stats(&self) -> Option<Arc<SharedStats>> {
        self.shared.get().map(|s| s.stats.clone())
    }

    /// Scale-out: the instance that alerts, as its last published state says.
    pub fn alerting_instance(&self) -> Option<String> {
        let shared = self.shared.get()?;
        match self.part() {
            Part::Alerting(..) => Some(shared.instance.clone()),
            _ => shared.state().1.map(|s| s.owner),
        }
    }

    /// Becoming the alerting instance of `epoch`: takes over the last published state
    /// and re-queues the notifications not delivered yet.
    pub(super) fn take_over(&self, shared: &SharedAlerts, epoch: i64) {
        let mut leading = self.leading.lock();
        if *leading == Some(epoch) {
            return;
        }
        let mut requeued = 0;
        let mut active = None;
        if let (_, Some(state)) = shared.state() {
            active = Some(state.lifecycle.active_count());
            *self.lifecycle.lock() = state.lifecycle;
            for (name, pending) in state.outbox {
                match self.sinks.get(&name) {
                    Some(sink) => {
                        for p in pending {
                            requeued += usize::from(sink.push_unless_known(p));
                        }
                    }
                    None => tracing::warn!(
                        sink = %name,
                        "the former alerting instance had a sink not configured here: its pending notifications are dropped"
                    ),
                }
            }
        }
        *leading = Some(epoch);
        tracing::info!(
            epoch,
            taken_over = ?active,
            requeued,
            "scale-out: this instance is now the alerting instance"
        );
    }

    /// Not (or no longer) the alerting instance: shows the alerting instance's state.
    pub(super) fn follow(&self, shared: &SharedAlerts, now: i64) {
        if self.leading.lock().take().is_some() {
            self.carry("no longer the alerting instance");
        }
        // Acknowledgements are the alerting instance's to apply; recent ones are kept, so
        // that one read during a change of alerting instance is applied by the next.
        shared.keep_acks_since(now - KEEP_ACKS_MS);
        let generation = shared.generation();
        if self.adopted.swap(generation, Relaxed) != generation {
            if let (_, Some(state)) = shared.state() {
                *self.lifecycle.lock() = state.lifecycle;
            }
        }
        let visible = self
            .lifecycle
            .lock()
            .visible(now.saturating_sub(self.show_resolved_ms));
        self.publish(visible);
    }

    /// Publishes the alerting instance's state if it changed (or every keepalive).
    pub(super) fn publish_shared(
        &self,
        shared: &SharedAlerts,
        epoch: i64,
        lifecycle: &Lifecycle,
        now: i64,
    ) {
        let state = SharedState {
            v: SHARED_VERSION,
            owner: shared.instance.clone(),
            epoch,
            lifecycle: lifecycle.clone(),
            outbox: self
                .sinks
                .iter()
                .map(|(name, sink)| (name.clone(), sink.pending()))
                .filter(|(_, pending)| !pending.is_empty())
                .collect(),
            published_at: 0,
        };
        let mut last = self.last_shared.lock();
        let due = last
            .as_ref()
            .is_none_or(|(prev, at)| *prev != state || now - at >= SHARED_KEEPALIVE_MS);
        if due {
            let mut published = SharedState {
                published_at: now,
                ..state.clone()
            };
            let (payload, trimmed) = super::handoff::fit(&mut published, SHARED_MAX_BYTES);
            if trimmed {
                shared.stats.trimmed.fetch_add(1, Relaxed);
                if shared.stats.trimmed.load(Relaxed) == 1 {
                    tracing::warn!(bytes = payload.len(), "the shared alert state was too large for one Kafka record: its oldest history and pending notifications trimmed (vigie_shared_alert_states_trimmed_total)");
                }
            }
            shared
                .stats
                .state_bytes
                .store(payload.len() as u64, Relaxed);
            shared.publish_state(payload);
            *last = Some((state, now));
        }
    }

    /// Scale-out, not the alerting instance: forwards the acknowledgement to it and waits
    /// until its published state shows it.
    pub(super) async fn acknowledge_through(
        &self,
        shared: &SharedAlerts,
        id: &str,
        who: &str,
        note: Option<String>,
    ) -> Result<Alert, AlertError> {
        let state_of = |alert: Option<Alert>| match alert {
            None => Err(AlertError::NotFound(id.into())),
            Some(a) if a.state == AlertState::Resolved => {
                Err(AlertError::AlreadyResolved(id.into()))
            }
            Some(a) => Ok(a),
        };
        let known = state_of(self.lifecycle.lock().find(id))?;
        if known.state == AlertState::Acknowledged {
            return Ok(known); // acknowledging twice keeps the first acknowledgement
        }
        shared.publish_ack(&AckRequest {
            id: id.into(),
            who: who.into(),
            note,
            at: now_ms(),
        });
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        loop {
            let seen = shared
                .state()
                .1
                .and_then(|s| s.lifecycle.find(id))
                .filter(|a| a.state != AlertState::Firing);
            if let Some(alert) = seen {
                return state_of(Some(alert));
            }
            if tokio::time::Instant::now() >= deadline {
                let owner = shared
                    .state()
                    .1
                    .map_or_else(|| "none yet".into(), |s| s.owner);
                return Err(AlertError::Unavailable(format!(
                    "the alerting instance ({owner}) did not confirm the acknowledgement within {} s: retry",
                    ACK_TIMEOUT.as_secs()
                )));
            }
            tokio::select! {
                _ = shared.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
        }
    }
}

/// How long an acknowledgement made through another instance waits for the alerting
/// instance to apply it (a change of alerting instance takes a few seconds).
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Acknowledgements read by an instance that does not alert are kept this long (ms), in
/// case it becomes the alerting instance: applying one twice changes nothing.
pub(crate) const KEEP_ACKS_MS: i64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epoch: i64, owner: &str) -> Vec<u8> {
        serde_json::to_vec(&SharedState {
            v: SHARED_VERSION,
            owner: owner.into(),
            epoch,
            ..SharedState::default()
        })
        .expect("encode")
    }

    #[tokio::test]
    async fn a_former_alerting_instance_is_fenced_and_recent_acks_are_kept() {
        let shared = SharedAlerts::new(&KafkaSettings {
            instance_id: Some("me".into()),
            ..KafkaSettings::default()
        })
        .expect("producer");
        assert_eq!(shared.apply_state(&state(10, "a")), Ok(true));
        let generation = shared.generation();
        // A late state of the former alerting instance (older epoch) is ignored.
        assert_eq!(shared.apply_state(&state(7, "old")), Ok(false));
        assert_eq!(shared.generation(), generation);
        assert_eq!(shared.state().1.map(|s| s.owner), Some("a".into()));
        assert_eq!(shared.apply_state(&state(12, "b")), Ok(true));
        assert_eq!(shared.state().1.map(|s| s.owner), Some("b".into()));
        let mut future = serde_json::from_slice::<SharedState>(&state(13, "c")).expect("decode");
        future.v = SHARED_VERSION + 1;
        let future = serde_json::to_vec(&future).expect("encode");
        assert!(
            shared.apply_state(&future).is_err(),
            "unknown version refused"
        );
        assert!(shared.apply_state(b"{").is_err());

        for (id, at) in [("old", 1_000), ("new", 90_000)] {
            let ack = AckRequest {
                id: id.into(),
                who: "sup".into(),
                note: None,
                at,
            };
            shared
                .apply_ack(&serde_json::to_vec(&ack).expect("encode"))
                .expect("ack read");
        }
        shared.keep_acks_since(90_000 - KEEP_ACKS_MS);
        let kept: Vec<String> = shared.take_acks().into_iter().map(|a| a.id).collect();
        assert_eq!(kept, ["new"]);
        assert!(shared.take_acks().is_empty(), "taken once");
        assert!(!shared.has_read(0));
        shared.read_up_to(5);
        shared.read_up_to(3);
        assert!(shared.has_read(5) && !shared.has_read(6));
    }

    #[test]
    fn keys_name_the_state_and_acknowledgements() {
        assert_eq!(parse_key("t.x/alerts", "t.x"), Some(AlertKey::State));
        assert_eq!(parse_key("t.x/alerts/ack/r.1", "t.x"), Some(AlertKey::Ack));
        assert_eq!(parse_key("t.x/alerts/ack/", "t.x"), None);
        assert_eq!(parse_key("t.x/alertsx", "t.x"), None);
        assert_eq!(parse_key("t.y/alerts", "t.x"), None);
        assert_eq!(parse_key("t.x/3", "t.x"), None);
        assert_eq!(
            parse_key("t.x/alerts/handoff/hook/r.1.fired", "t.x"),
            Some(AlertKey::Handoff)
        );
        assert_eq!(parse_key("t.x/alerts/handoff/hook/", "t.x"), None);
        assert_eq!(parse_key("t.x/alerts/handoff//r.1", "t.x"), None);
        assert_eq!(parse_key("t.x/alerts/handoff/hook", "t.x"), None);
    }
}
