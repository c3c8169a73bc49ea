//! Owns the shared switch state: a follower of the switches and audit topics, and
//! confirmed writes to them.
//!
//! Readers keep the first record of a version (by offset): two writers racing on one
//! version both write, the first one wins, the second is told 409. Kafka's compaction
//! keeps the *last* record of a key, so the loser then rewrites the winner's state
//! (a compensating record, identical to what readers hold: no reader changes), and goes
//! on until the last record of the key in the topic is the state readers hold: the
//! compacted topic, which routing systems and new instances read, always ends on the
//! confirmed state. Only effective changes are audited, each once: the winner's, after
//! it is confirmed (retried in the background until written if the audit topic is
//! slow); expiries run on one instance (the leader the caller names).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigie_proto::{AuditRecord, DeflectionSwitch};

use super::{next_state, FlipRequest, SwitchError};
use crate::config::KafkaSettings;
use crate::kafka::{ensure_topics, internal_client_config, TopicSpec};

/// Audit records kept in memory for the API (the topic keeps them all).
const AUDIT_IN_MEMORY: usize = 10_000;
/// How long a write may take to be read back before the API gives up.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Audit records waiting to be written again, at most.
const AUDIT_RETRY_QUEUE: usize = 1_000;

/// The two topics the store follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Feed {
    Switches,
    Audit,
}

pub struct SwitchStore {
    /// The state readers hold: per switch, the first record of its highest version.
    switches: RwLock<BTreeMap<String, DeflectionSwitch>>,
    /// The last record of each switch in the topic, whatever its version: what
    /// compaction keeps.
    last_record: RwLock<HashMap<String, DeflectionSwitch>>,
    audit: RwLock<VecDeque<AuditRecord>>,
    changes: watch::Sender<Arc<Vec<DeflectionSwitch>>>,
    /// Last offset applied, per (topic, partition) of the switches and audit topics.
    applied: watch::Sender<HashMap<(Feed, i32), i64>>,
    producer: FutureProducer,
    switches_topic: String,
    audit_topic: String,
    /// One local write at a time: check, produce and confirm as a unit.
    write_lock: tokio::sync::Mutex<()>,
    /// Audit records to write again (the audit topic did not take them in time).
    audit_retry: tokio::sync::mpsc::Sender<AuditRecord>,
    /// Audit records that failed a write (each is retried until written).
    pub audit_write_failures: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SwitchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchStore")
            .field("switches_topic", &self.switches_topic)
            .field("switches", &self.switches.read().len())
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SwitchError {
    SwitchError::Unavailable(format!("{what}: {e}"))
}

impl SwitchStore {
    /// Creates the topics if missing, replays them, and follows them until `shutdown`.
    pub async fn start(
        settings: &KafkaSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<SwitchStore>, SwitchError> {
        ensure_switch_topics(settings).await?;
        let producer: FutureProducer = internal_client_config(settings)
            .set("message.timeout.ms", "10000")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| unavailable("creating the producer", e))?;
        let (audit_retry, retries) = tokio::sync::mpsc::channel(AUDIT_RETRY_QUEUE);
        let store = Arc::new(SwitchStore {
            switches: RwLock::new(BTreeMap::new()),
            last_record: RwLock::new(HashMap::new()),
            audit: RwLock::new(VecDeque::new()),
            changes: watch::channel(Arc::new(Vec::new())).0,
            applied: watch::channel(HashMap::new()).0,
            producer,
            switches_topic: settings.switches_topic.clone(),
            audit_topic: settings.audit_topic.clone(),
            write_lock: tokio::sync::Mutex::new(()),
            audit_retry,
            audit_write_failures: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(store.clone().retry_audit(retries, shutdown.clone()));
        let consumer: StreamConsumer = internal_client_config(settings)
            .set("group.id", format!("vigie-switches-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Flips are rare and must reach every cockpit fast: a broker may hold a fetch
            // for this long before answering (measured: 400 ms p50 at the 500 ms default,
            // 98 ms at 100 ms; scripts/bench-flip.sh). Costs one idle fetch per 100 ms.
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| unavailable("creating the follower", e))?;
        let ends = assign_from_beginning(
            &consumer,
            &[&settings.switches_topic, &settings.audit_topic],
        )?;
        tokio::spawn(store.clone().follow(consumer, shutdown));
        // Serve only once the state and audit trail as of start are loaded.
        let ends: HashMap<(Feed, i32), i64> = ends
            .into_iter()
            .map(|((topic, p), high)| ((store.feed_of(&topic), p), high))
            .collect();
        store.wait_applied(&ends, Duration::from_secs(30)).await?;
        tracing::info!(switches = store.switches.read().len(), topic = %settings.switches_topic, "deflection switches loaded");
        Ok(store)
    }

    async fn follow(self: Arc<Self>, consumer: StreamConsumer, shutdown: CancellationToken) {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "switch follower error");
                    continue;
                }
            };
            let payload = message.payload().unwrap_or_default();
            let (feed, p, o) = (
                self.feed_of(message.topic()),
                message.partition(),
                message.offset(),
            );
            if feed == Feed::Switches {
                match serde_json::from_slice::<DeflectionSwitch>(payload) {
                    Ok(switch) => {
                        self.last_record
                            .write()
                            .insert(switch.id.clone(), switch.clone());
                        self.apply(switch);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, offset = message.offset(), "unreadable switch record skipped")
                    }
                }
            } else if let Ok(record) = serde_json::from_slice::<AuditRecord>(payload) {
                let mut audit = self.audit.write();
                audit.push_back(record);
                if audit.len() > AUDIT_IN_MEMORY {
                    audit.pop_front();
                }
            }
            self.applied.send_modify(|applied| {
                applied.insert((feed, p), o);
            });
        }
    }

    fn feed_of(&self, topic: &str) -> Feed {
        if topic == self.switches_topic {
            Feed::Switches
        } else {
            Feed::Audit
        }
    }

    /// Applies a record read from the topic: a newer version replaces the current one;
    /// an older or equal one lost a race and is ignored.
    fn apply(&self, switch: DeflectionSwitch) {
        let mut switches = self.switches.write();
        if let Some(current) = switches.get(&switch.id) {
            if current.version >= switch.version {
                if *current != switch {
                    tracing::info!(id = %switch.id, version = switch.version, "a concurrent write of the same version lost: ignored");
                }
                return;
            }
        }
        switches.insert(switch.id.clone(), switch);
        let all: Vec<DeflectionSwitch> = switches.values().cloned().collect();
        drop(switches);
        self.changes.send_replace(Arc::new(all));
    }

    async fn wait_applied(
        &self,
        ends: &HashMap<(Feed, i32), i64>,
        timeout: Duration,
    ) -> Result<(), SwitchError> {
        let mut applied = self.applied.subscribe();
        let caught_up = |a: &HashMap<(Feed, i32), i64>| {
            ends.iter()
                .all(|(p, end)| *end <= 0 || a.get(p).is_some_and(|o| *o >= end - 1))
        };
        tokio::time::timeout(timeout, applied.wait_for(caught_up))
            .await
            .map_err(|_| {
                SwitchError::Unavailable(
                    "the switches and audit topics could not be read back in time".into(),
                )
            })?
            .map_err(|_| SwitchError::Unavailable("the switch follower stopped".into()))?;
        Ok(())
    }

    pub fn list(&self) -> Vec<DeflectionSwitch> {
        self.switches.read().values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<DeflectionSwitch> {
        self.switches.read().get(id).cloned()
    }

    /// Every switch, now and after each change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<DeflectionSwitch>>> {
        self.changes.subscribe()
    }

    /// The newest audit records first, optionally of one switch.
    pub fn audit(&self, switch_id: Option<&str>, limit: usize) -> Vec<AuditRecord> {
        self.audit
            .read()
            .iter()
            .rev()
            .filter(|r| switch_id.is_none_or(|id| r.switch_id == id))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Applies `request` to switch `id` on behalf of `who`, once confirmed by the topic.
    pub async fn flip(
        &self,
        id: &str,
        request: &FlipRequest,
        who: &str,
        prediction: Option<vigie_proto::SwitchPrediction>,
    ) -> Result<DeflectionSwitch, SwitchError> {
        let _write = self.write_lock.lock().await;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let (current, next) = {
            let switches = self.switches.read();
            let current = switches.get(id).cloned();
            let next = next_state(
                id,
                request,
                who,
                now_ms,
                current.as_ref(),
                switches.values(),
                prediction,
            )?;
            (current, next)
        };
        self.write_switch(&next).await?;
        match self.get(id) {
            Some(stored) if stored == next => {
                let audit = AuditRecord {
                    at: now_ms,
                    who: who.into(),
                    action: if current.is_none() {
                        "create"
                    } else if next.on {
                        "switch_on"
                    } else {
                        "switch_off"
                    }
                    .into(),
                    switch_id: id.into(),
                    why: next.why.clone(),
                    before: current,
                    after: Some(next.clone()),
                    alert_id: None,
                };
                // Confirmed: answered once its audit record is read back too (so the
                // trail read next has it), or handed to the retrier if the audit topic
                // is slow: the change took effect, its record follows.
                if let Err(error) = self.write_audit(&audit).await {
                    tracing::warn!(%error, id, "the audit record of a confirmed change is late: retried until written");
                    self.audit_later(audit);
                }
                Ok(next)
            }
            stored => {
                // Lost to a concurrent write of the same version: the topic must not end
                // on this record, which compaction would keep over the winner's.
                self.compensate(id).await;
                Err(SwitchError::VersionConflict {
                    id: id.into(),
                    expected: request.expected_version,
                    current: stored.map_or(0, |s| s.version),
                })
            }
        }
    }

    /// Produces `switch` and waits until it is read back.
    async fn write_switch(&self, switch: &DeflectionSwitch) -> Result<(), SwitchError> {
        let value = serde_json::to_vec(switch).map_err(|e| unavailable("encoding", e))?;
        let (partition, offset) = self
            .producer
            .send(
                FutureRecord::to(&self.switches_topic)
                    .key(&switch.id)
                    .payload(&value),
                CONFIRM_TIMEOUT,
            )
            .await
            .map(|delivery| (delivery.partition, delivery.offset))
            .map_err(|(e, _)| unavailable("writing the switch", e))?;
        self.wait_applied(
            &HashMap::from([((Feed::Switches, partition), offset + 1)]),
            CONFIRM_TIMEOUT,
        )
        .await
    }

    /// Rewrites the state readers hold of switch `id` until it is the last record of
    /// the key in the topic (a few rounds at most: each is a concurrent writer's).
    async fn compensate(&self, id: &str) {
        for _ in 0..5 {
            let (held, last) = (self.get(id), self.last_record.read().get(id).cloned());
            let Some(held) = held else { return };
            if last.as_ref() == Some(&held) {
                return;
            }
            if let Err(error) = self.write_switch(&held).await {
                tracing::warn!(%error, id, "rewriting the confirmed state after a lost race failed");
                return;
            }
        }
        tracing::warn!(
            id,
            "the switch's last record still differs from its confirmed state after five rewrites"
        );
    }

    /// Produces an audit record and waits until it is read back.
    async fn write_audit(&self, audit: &AuditRecord) -> Result<(), SwitchError> {
        let key = audit.alert_id.as_deref().unwrap_or(&audit.switch_id);
        let payload = serde_json::to_vec(audit).map_err(|e| unavailable("encoding", e))?;
        let written = self
            .producer
            .send(
                FutureRecord::to(&self.audit_topic)
                    .key(key)
                    .payload(&payload),
                CONFIRM_TIMEOUT,
            )
            .await
            .map(|delivery| (delivery.partition, delivery.offset));
        let (partition, offset) = match written {
            Ok(at) => at,
            Err((e, _)) => {
                self.audit_write_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(unavailable("writing the audit record", e));
            }
        };
        self.wait_applied(
            &HashMap::from([((Feed::Audit, partition), offset + 1)]),
            CONFIRM_TIMEOUT,
        )
        .await
    }

    /// Writes `audit` in the background, retried until written (an acknowledgement, or
    /// a confirmed change whose record was late). Never waits: a full queue drops the
    /// record, counted and logged.
    pub fn audit_later(&self, audit: AuditRecord) {
        if let Err(error) = self.audit_retry.try_send(audit) {
            self.audit_write_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(%error, "too many audit records waiting: one is dropped");
        }
    }

    async fn retry_audit(
        self: Arc<Self>,
        mut pending: tokio::sync::mpsc::Receiver<AuditRecord>,
        shutdown: CancellationToken,
    ) {
        loop {
            let audit = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = pending.recv() => match a { Some(a) => a, None => break },
            };
            let mut backoff = Duration::from_millis(500);
            while let Err(error) = self.write_audit(&audit).await {
                tracing::warn!(%error, "writing an audit record failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }

    /// Turns off the switches whose expiry has passed.
    pub(crate) async fn expire_due(&self, now_ms: i64) {
        let due: Vec<DeflectionSwitch> = self
            .list()
            .into_iter()
            .filter(|s| s.on && s.expires_at.is_some_and(|at| at <= now_ms))
            .collect();
        for s in due {
            let request = FlipRequest {
                channel: s.channel.clone(),
                reason: s.reason.clone(),
                segment: s.segment.clone(),
                queue: s.queue.clone(),
                target: s.target,
                on: false,
                why: format!("expired (was: {})", s.why),
                expected_version: s.version,
                expires_in: None,
            };
            if let Err(e) = self.flip(&s.id, &request, "vigie (expiry)", None).await {
                tracing::warn!(id = %s.id, error = %e, "expiring a switch failed; retried next second");
            }
        }
    }

    /// Expires switches every second until `shutdown`, while `leading` says this
    /// instance is the one that does (one instance for all: each would otherwise write
    /// the same expiry, and all but one lose).
    pub async fn run_expiry(
        self: Arc<Self>,
        leading: impl Fn() -> bool + Send + 'static,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if leading() {
                        self.expire_due(jiff::Timestamp::now().as_millisecond()).await;
                    }
                }
            }
        }
    }
}

/// Assigns every partition of `topics` from the beginning; returns their high watermarks.
fn assign_from_beginning(
    consumer: &StreamConsumer,
    topics: &[&str],
) -> Result<HashMap<(String, i32), i64>, SwitchError> {
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| unavailable("reading topic metadata", e))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .map_err(|e| unavailable("assigning", e))?;
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), timeout)
                    .map_err(|e| unavailable("reading watermarks", e))?;
                ends.insert((topic.to_string(), p.id()), high);
            }
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| unavailable("assigning", e))?;
    Ok(ends)
}

/// Creates the switches topic (compacted: the latest state per switch is kept) and the
/// audit topic if they do not exist.
async fn ensure_switch_topics(settings: &KafkaSettings) -> Result<(), SwitchError> {
    ensure_topics(
        settings,
        &[
            TopicSpec::compacted("the switches topic", &settings.switches_topic, None),
            TopicSpec::retained(
                "the audit topic",
                &settings.audit_topic,
                settings.audit_retention,
            ),
        ],
    )
    .await
    .map_err(|e| unavailable("creating the switch topics", e))
}
