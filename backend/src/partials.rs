//! Scale-out: owns the partials topic — publishing the partitions this instance
//! consumes as mergeable partials, and following every instance's partials into the
//! [`EngineSet`]'s replicas, so that each instance serves the whole merged cockpit.
//!
//! - **Records** (JSON, key `<topic>/<partition>` for the header, `<topic>/<partition>/<chunk
//!   start>` for each 10-second chunk of the effect log; see [`crate::engine::partial`]).
//!   A chunk is republished whole whenever it changes, so the compacted topic holds the
//!   latest state of every chunk and a new instance reads the state, not a history.
//! - **Ownership**: on assignment the owner produces a *claim* (a header without epoch);
//!   its offset in the one-partition partials topic is the owner's **epoch**, carried by
//!   every later record. Readers keep, per partition, only the highest epoch: a former
//!   owner still publishing (a zombie) is ignored, and one partial per partition is
//!   ever merged. The claim comes before any chunk of its epoch (same partition, so in order).
//! - **Freshness**: every `kafka.partials_every` (250 ms), the chunks changed since the
//!   last tick, then the header if anything changed (or every [`KEEPALIVE`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigie_proto::DeflectionSwitch;

use crate::alert::shared::{parse_key as alert_key, AlertKey, SharedAlerts};
use crate::config::KafkaSettings;
use crate::engine::partial::{PartialChunk, PartialHeader};
use crate::engine::{Engine, EngineSet};
use crate::ingest::status::RemotePartition;
use crate::ingest::{client_config, IngestStatus};

/// A header is republished at least this often, even unchanged (liveness, and the
/// topic's time retention never deletes a live partition's header).
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Every record goes to this partition of the partials topic: one total order of claims.
const PARTITION: i32 = 0;

#[derive(Debug, Error)]
pub enum PartialsError {
    #[error("partials topic {topic:?}: {what}: {source}")]
    Kafka {
        topic: String,
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("creating partials topic {topic:?}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Counters of the partials (exported as metrics).
#[derive(Debug, Default)]
pub struct PartialsStats {
    pub published: std::sync::atomic::AtomicU64,
    pub published_bytes: std::sync::atomic::AtomicU64,
    pub publish_failures: std::sync::atomic::AtomicU64,
    pub applied: std::sync::atomic::AtomicU64,
    /// Records of a former owner (older epoch), ignored.
    pub fenced: std::sync::atomic::AtomicU64,
    pub unreadable: std::sync::atomic::AtomicU64,
}

/// Claims partitions in the partials topic from the consumer's rebalance callback.
pub struct Claimer {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    id: String,
}

impl std::fmt::Debug for Claimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimer")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Claimer {
    pub fn new(settings: &KafkaSettings) -> Result<Claimer, rdkafka::error::KafkaError> {
        Ok(Claimer {
            producer: client_config(settings)
                .set("message.timeout.ms", "10000")
                .set("enable.idempotence", "true")
                .create()?,
            topic: settings.partials_topic.clone(),
            source_topic: settings.topic.clone(),
            id: instance_id(settings),
        })
    }

    /// Produces the claim of `partition` and waits for it: its offset is the new epoch.
    /// Blocks (it runs in the rebalance callback, before the partition is consumed).
    pub fn claim(&self, partition: i32) -> Option<i64> {
        let header = PartialHeader {
            v: crate::engine::partial::PARTIAL_VERSION,
            owner: self.id.clone(),
            rebuilding: Some(0.0),
            published_at: jiff::Timestamp::now().as_millisecond(),
            ..PartialHeader::default()
        };
        let payload = serde_json::to_vec(&header).ok()?;
        let key = format!("{}/{partition}", self.source_topic);
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        let sent = block_on(self.producer.send(record, Duration::from_secs(10)));
        match sent {
            Ok(delivery) => {
                tracing::info!(
                    partition,
                    epoch = delivery.offset,
                    "partition claimed in the partials"
                );
                Some(delivery.offset)
            }
            Err((error, _)) => {
                tracing::warn!(%error, partition, "claiming the partition in the partials failed; the publisher retries");
                None
            }
        }
    }
}

/// Runs `future` to completion on this thread (the producer's own thread completes it).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// `settings` with `instance_id` set (generated once if absent): every scale-out part
/// of this process must use the same id.
pub fn with_instance_id(mut settings: KafkaSettings) -> KafkaSettings {
    settings.instance_id = Some(instance_id(&settings));
    settings
}

/// This instance's name in the partials: configured, or host, pid and a random suffix.
pub fn instance_id(settings: &KafkaSettings) -> String {
    settings.instance_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "vigie".into());
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

/// Starts scale-out: creates the topic if missing, then publishes and follows partials
/// until `shutdown`. Call before the consumer starts (engines must track changes).
pub async fn start(
    settings: &KafkaSettings,
    engines: Arc<EngineSet>,
    status: Arc<IngestStatus>,
    switches: Switches,
    alerts: Arc<SharedAlerts>,
    shutdown: CancellationToken,
) -> Result<(), PartialsError> {
    let id = instance_id(settings);
    ensure_topic(settings, engines.config().retention_ms()).await?;
    engines.enable_partials();
    status.enable_cluster(&id);
    let topic = settings.partials_topic.clone();
    let kafka = |what| {
        let topic = topic.clone();
        move |source| PartialsError::Kafka {
            topic,
            what,
            source,
        }
    };
    let producer: FutureProducer = client_config(settings)
        .set("message.timeout.ms", "30000")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(kafka("creating the producer"))?;
    let consumer: StreamConsumer = client_config(settings)
        .set("group.id", format!("vigie-partials-{id}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(kafka("creating the follower"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, PARTITION, Offset::Beginning)
        .map_err(kafka("assigning"))?;
    consumer.assign(&tpl).map_err(kafka("assigning"))?;
    tracing::info!(instance = %id, %topic, every = ?settings.partials_every, "scale-out: publishing and merging partials");
    let follower = Follower {
        source_topic: settings.topic.clone(),
        engines: engines.clone(),
        status: status.clone(),
        alerts,
    };
    tokio::spawn(
        follower
            .run(Arc::new(consumer), shutdown.clone())
            .instrument(tracing::info_span!("partials_follower", %topic)),
    );
    let publisher = Publisher {
        id,
        source_topic: settings.topic.clone(),
        topic,
        producer,
        engines,
        status,
        every: settings.partials_every,
        owned: BTreeMap::new(),
        switches,
    };
    tokio::spawn(
        publisher
            .run(shutdown)
            .instrument(tracing::info_span!("partials_publisher")),
    );
    Ok(())
}

/// Creates the partials topic (one partition, compacted, and records older than the
/// engine's retention plus an hour deleted) if missing.
async fn ensure_topic(settings: &KafkaSettings, retention_ms: i64) -> Result<(), PartialsError> {
    let topic = &settings.partials_topic;
    let err = |what| {
        move |source| PartialsError::Kafka {
            topic: topic.clone(),
            what,
            source,
        }
    };
    let admin: AdminClient<DefaultClientContext> = client_config(settings)
        .create()
        .map_err(err("creating the admin client"))?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(err("reading metadata"))?;
    if metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty())
    {
        return Ok(());
    }
    let retention = (retention_ms + 3_600_000).to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact,delete")
        .set("retention.ms", &retention);
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(err("creating"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(PartialsError::Create {
                    topic: topic.clone(),
                    code,
                })
            }
        }
    }
    Ok(())
}

/// What was published of one partition this instance consumes.
struct Owned {
    engine: Arc<Engine>,
    epoch: i64,
    last_header: Option<PartialHeader>,
    last_sent: Instant,
    /// Chunks whose publication failed: retried at the next tick.
    retry: BTreeSet<i64>,
}

struct Publisher {
    id: String,
    source_topic: String,
    topic: String,
    producer: FutureProducer,
    engines: Arc<EngineSet>,
    status: Arc<IngestStatus>,
    every: Duration,
    owned: BTreeMap<i32, Owned>,
    /// The switches, whose effect on each owned partition goes in its header.
    switches: Switches,
}

/// The deflection switches as the switch store follows them.
pub type Switches = tokio::sync::watch::Receiver<Arc<Vec<DeflectionSwitch>>>;

impl Publisher {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Leaving: no publish after the consumer closed (fenced anyway).
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.publish_all().await;
        }
    }

    async fn publish_all(&mut self) {
        let held = self.engines.partitions();
        self.owned.retain(|p, _| held.contains(p));
        for partition in held {
            let Some(engine) = self.engines.get(partition) else {
                continue;
            };
            let fresh = self
                .owned
                .get(&partition)
                .is_none_or(|o| !Arc::ptr_eq(&o.engine, &engine));
            if fresh {
                // Claimed by the rebalance callback; else (its claim failed) claim now,
                // and keep it only if the partition is still ours once claimed.
                let epoch = match engine.partial_epoch() {
                    Some(epoch) => epoch,
                    None => match self.claim(partition).await {
                        Some(epoch)
                            if self
                                .engines
                                .get(partition)
                                .is_some_and(|e| Arc::ptr_eq(&e, &engine)) =>
                        {
                            engine.set_partial_epoch(epoch);
                            epoch
                        }
                        _ => continue,
                    },
                };
                self.owned.insert(
                    partition,
                    Owned {
                        engine: engine.clone(),
                        epoch,
                        last_header: None,
                        last_sent: Instant::now(),
                        retry: BTreeSet::new(),
                    },
                );
            }
            self.reclaim_if_fenced(partition).await;
            self.publish(partition).await;
        }
    }

    /// A later claim of a partition this instance still consumes fences its records
    /// everywhere: a former owner's claim that reached the topic after ours (its claim
    /// from the rebalance callback failed, and its publisher's retry was still in flight
    /// when the partition moved). Claims it again, above that, and republishes every chunk.
    async fn reclaim_if_fenced(&mut self, partition: i32) {
        let Some(owned) = self.owned.get(&partition) else {
            return;
        };
        let fenced_by = self
            .engines
            .with_replica(partition, |r| {
                (r.epoch > owned.epoch).then(|| r.header.owner.clone())
            })
            .flatten();
        let Some(other) = fenced_by else {
            return;
        };
        let engine = owned.engine.clone();
        let Some(epoch) = self.claim(partition).await else {
            return;
        };
        tracing::warn!(partition, %other, epoch, "partition claimed by another instance while consumed here: claimed again");
        engine.set_partial_epoch(epoch);
        if let Some(owned) = self.owned.get_mut(&partition) {
            owned.epoch = epoch;
            owned.retry = engine.chunk_starts();
            owned.last_header = None;
        }
    }

    fn header(&self, partition: i32, engine: &Engine, epoch: Option<i64>) -> PartialHeader {
        let progress = self.status.partitions().get(&partition).copied();
        PartialHeader {
            owner: self.id.clone(),
            epoch,
            rebuilding: match progress {
                Some(p) if p.is_rebuilt() => None,
                Some(p) => Some(p.fraction()),
                None => Some(0.0),
            },
            published_at: jiff::Timestamp::now().as_millisecond(),
            switches: crate::deflection::partition_shares(engine, &self.switches.borrow()),
            ..engine.partial_header()
        }
    }

    /// Produces the claim of `partition`; its offset is the new epoch.
    async fn claim(&self, partition: i32) -> Option<i64> {
        let engine = self.engines.get(partition)?;
        let mut header = self.header(partition, &engine, None);
        header.rebuilding = Some(header.rebuilding.unwrap_or(0.0));
        let key = format!("{}/{partition}", self.source_topic);
        let payload = serde_json::to_vec(&header).ok()?;
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(delivery) => Some(delivery.offset),
            Err((error, _)) => {
                self.status.partials.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, partition, "claiming the partition in the partials failed; retrying at the next tick");
                None
            }
        }
    }

    /// Publishes the changed chunks of `partition`, then its header if it changed.
    async fn publish(&mut self, partition: i32) {
        let Some(owned) = self.owned.get_mut(&partition) else {
            return;
        };
        let mut chunks = owned.engine.take_changed_chunks();
        chunks.append(&mut owned.retry);
        let (engine, epoch) = (owned.engine.clone(), owned.epoch);
        let mut pending = Vec::with_capacity(chunks.len());
        for start in &chunks {
            let chunk: PartialChunk = engine.export_chunk(*start, epoch);
            let key = format!("{}/{partition}/{start}", self.source_topic);
            // An empty chunk (everything retracted) is a tombstone: compaction drops it.
            let payload = if chunk.effects.is_empty() {
                None
            } else {
                serde_json::to_vec(&chunk).ok()
            };
            pending.push((*start, key, payload));
        }
        let mut failed = BTreeSet::new();
        let mut deliveries = Vec::with_capacity(pending.len());
        for (start, key, payload) in &pending {
            let mut record = FutureRecord::to(&self.topic).partition(PARTITION).key(key);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push((*start, payload.as_ref().map_or(0, Vec::len), delivery))
                }
                Err((error, _)) => {
                    tracing::warn!(%error, partition, start, "publishing a partial chunk failed; retrying");
                    failed.insert(*start);
                }
            }
        }
        for (start, bytes, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {
                    self.status.partials.published.fetch_add(1, Relaxed);
                    self.status
                        .partials
                        .published_bytes
                        .fetch_add(bytes as u64, Relaxed);
                }
                Ok(Err((error, _))) => {
                    tracing::warn!(%error, partition, start, "publishing a partial chunk failed; retrying");
                    failed.insert(start);
                }
                Err(_) => {
                    failed.insert(start);
                }
            }
        }
        self.status
            .partials
            .publish_failures
            .fetch_add(failed.len() as u64, Relaxed);
        let header = self.header(partition, &engine, Some(epoch));
        let Some(owned) = self.owned.get_mut(&partition) else {
            return;
        };
        owned.retry = failed;
        let same = owned.last_header.as_ref().is_some_and(|last| {
            PartialHeader {
                published_at: 0,
                ..last.clone()
            } == PartialHeader {
                published_at: 0,
                ..header.clone()
            }
        });
        if same && chunks.is_empty() && owned.last_sent.elapsed() < KEEPALIVE {
            return;
        }
        let Ok(payload) = serde_json::to_vec(&header) else {
            return;
        };
        let key = format!("{}/{partition}", self.source_topic);
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                self.status.partials.published.fetch_add(1, Relaxed);
                self.status
                    .partials
                    .published_bytes
                    .fetch_add(payload.len() as u64, Relaxed);
                if let Some(owned) = self.owned.get_mut(&partition) {
                    owned.last_header = Some(header);
                    owned.last_sent = Instant::now();
                }
            }
            Err((error, _)) => {
                self.status.partials.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, partition, "publishing a partial header failed; retrying at the next tick");
            }
        }
    }
}

/// Applies every instance's partials to the replicas, and keeps the partition count.
struct Follower {
    source_topic: String,
    engines: Arc<EngineSet>,
    status: Arc<IngestStatus>,
    /// The shared alert records (same topic, keys `<topic>/alerts...`).
    alerts: Arc<SharedAlerts>,
}

/// An epoch is the offset of an earlier claim: one beyond the record's own offset is
/// forged or corrupt, and would fence every real owner for good.
fn epoch_before(epoch: i64, offset: i64) -> Result<(), String> {
    if epoch <= offset {
        Ok(())
    } else {
        Err(format!(
            "epoch {epoch} is after the record's own offset {offset}: not a claim's offset"
        ))
    }
}

/// What a partials key names.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Header(i32),
    Chunk(i32, i64),
}

/// Parses `<topic>/<partition>[/<start>]` for `topic` (other topics' partials: `None`).
fn parse_key(key: &str, topic: &str) -> Option<Key> {
    let rest = key.strip_prefix(topic)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let partition = parts.next()?.parse().ok()?;
    let key = match parts.next() {
        None => Key::Header(partition),
        Some(start) => Key::Chunk(partition, start.parse().ok()?),
    };
    parts.next().is_none().then_some(key)
}

impl Follower {
    async fn run(self, consumer: Arc<StreamConsumer>, shutdown: CancellationToken) {
        // The partition count decides readiness: asked for often until known, then every 5 s.
        let mut metadata = tokio::time::interval(Duration::from_millis(250));
        let mut refreshed: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = metadata.tick() => {
                    let due = refreshed.is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
                    if due && self.refresh_partition_count(&consumer).await {
                        refreshed = Some(Instant::now());
                    }
                }
                message = consumer.recv() => match message {
                    Ok(message) => {
                        self.apply(&message);
                        // After applying: "read up to a claim" implies its state is known.
                        self.alerts.record_read(message.offset());
                    }
                    Err(error) => tracing::warn!(%error, "partials follower error"),
                },
            }
        }
    }

    /// `true` once the count is known.
    async fn refresh_partition_count(&self, consumer: &Arc<StreamConsumer>) -> bool {
        let consumer = consumer.clone();
        let topic = self.source_topic.clone();
        let count = tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
        })
        .await
        .ok()
        .flatten();
        let count = count.filter(|c| *c > 0);
        if let Some(count) = count {
            self.status.update_cluster(|c| c.partitions = count);
        }
        count.is_some()
    }

    fn apply(&self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
        if let Some(alert_key) = key.and_then(|k| alert_key(k, &self.source_topic)) {
            let result = match (alert_key, message.payload()) {
                (_, None) => Ok(()),
                (AlertKey::State, Some(payload)) => self.alerts.apply_state(payload).map(drop),
                (AlertKey::Ack, Some(payload)) => self.alerts.apply_ack(payload),
            };
            if let Err(error) = result {
                self.alerts.stats.unreadable.fetch_add(1, Relaxed);
                tracing::warn!(%error, offset = message.offset(), "unreadable shared alert record skipped");
            }
            return;
        }
        let Some(key) = key.and_then(|k| parse_key(k, &self.source_topic)) else {
            return;
        };
        let retention = self.engines.config().retention_ms();
        let result = match (key, message.payload()) {
            (Key::Chunk(partition, start), None) => {
                self.engines
                    .update_replica(partition, |r, _| r.remove_chunk(start));
                Ok(true)
            }
            (Key::Chunk(partition, _), Some(payload)) => {
                serde_json::from_slice::<PartialChunk>(payload)
                    .map_err(|e| e.to_string())
                    .and_then(|chunk| epoch_before(chunk.epoch, message.offset()).map(|()| chunk))
                    .and_then(|chunk| {
                        self.engines
                            .update_replica(partition, |r, symbols| r.apply_chunk(&chunk, symbols))
                            .map_err(|e| e.to_string())
                    })
            }
            (Key::Header(_), None) => Ok(true),
            (Key::Header(partition), Some(payload)) => {
                serde_json::from_slice::<PartialHeader>(payload)
                    .map_err(|e| e.to_string())
                    .and_then(|header| {
                        let epoch = header.epoch.unwrap_or(message.offset());
                        epoch_before(epoch, message.offset())?;
                        let remote = RemotePartition {
                            owner: header.owner.clone(),
                            rebuilding: header.rebuilding,
                            seen: std::time::Instant::now(),
                        };
                        let watermark = header.watermark;
                        let applied = self
                            .engines
                            .update_replica(partition, |r, symbols| {
                                let applied = r.apply_header(header, epoch, symbols)?;
                                if let Some(w) = watermark.filter(|_| applied) {
                                    r.evict_before(w - retention);
                                }
                                Ok::<_, crate::engine::partial::PartialError>(applied)
                            })
                            .map_err(|e| e.to_string())?;
                        if applied {
                            self.status.update_cluster(|c| {
                                c.remote.insert(partition, remote);
                            });
                        }
                        Ok(applied)
                    })
            }
        };
        match result {
            Ok(true) => {
                self.status.partials.applied.fetch_add(1, Relaxed);
            }
            Ok(false) => {
                self.status.partials.fenced.fetch_add(1, Relaxed);
            }
            Err(error) => {
                self.status.partials.unreadable.fetch_add(1, Relaxed);
                tracing::warn!(%error, offset = message.offset(), "unreadable partial skipped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_beyond_its_records_offset_is_refused() {
        assert_eq!(epoch_before(5, 5), Ok(()), "a claim: its own offset");
        assert_eq!(epoch_before(5, 90), Ok(()));
        assert!(epoch_before(999_999, 90).is_err());
    }

    #[test]
    fn keys_name_the_source_topic_partition_and_chunk() {
        assert_eq!(parse_key("t.x/3", "t.x"), Some(Key::Header(3)));
        assert_eq!(
            parse_key("t.x/3/1700000010000", "t.x"),
            Some(Key::Chunk(3, 1_700_000_010_000))
        );
        assert_eq!(parse_key("t.xy/3", "t.x"), None, "another topic");
        assert_eq!(parse_key("t.x/a", "t.x"), None);
        assert_eq!(parse_key("t.x/1/2/3", "t.x"), None);
    }
}
