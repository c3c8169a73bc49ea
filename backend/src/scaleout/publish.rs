//! Owns publishing this instance's partitions to the partials topic: each tick, the
//! chunks of the effect log that changed, then the header if anything changed (or every
//! [`KEEPALIVE`]); a claim for a partition whose claim from the rebalance callback failed;
//! and a new claim when a later one fences a partition still consumed here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::{baseline_key, chunk_key, header_key, Switches, KEEPALIVE, PARTITION};

/// Every baseline hour is published again this often (the topic keeps records a little
/// longer than the engine's retention, the baseline weeks).
const BASELINE_REFRESH: Duration = Duration::from_secs(12 * 3_600);
use crate::engine::partial::{PartialChunk, PartialHeader};
use crate::engine::{Engine, EngineSet};
use crate::status::InstanceStatus;

/// What was published of one partition this instance consumes.
pub(super) struct Owned {
    engine: Arc<Engine>,
    epoch: i64,
    last_header: Option<PartialHeader>,
    last_sent: Instant,
    /// Chunks whose publication failed: retried at the next tick.
    retry: BTreeSet<i64>,
    /// Baseline hours whose publication failed, or all of them (new claim, refresh).
    baseline_retry: BTreeSet<i64>,
    /// When every baseline hour was last published: again every [`BASELINE_REFRESH`],
    /// so the topic (whose records expire after the retention) always holds them all.
    baseline_refreshed: Instant,
    /// No new claim over another's before this (ping-pong backoff).
    reclaim_at: Option<Instant>,
    reclaim_backoff: Duration,
}

/// Publishes the partitions this instance consumes: claims those the rebalance callback
/// could not, republishes changed chunks and headers, and claims again when fenced.
pub(super) struct PartialsWriter {
    pub(super) id: String,
    pub(super) source_topic: String,
    pub(super) topic: String,
    pub(super) producer: FutureProducer,
    pub(super) engines: Arc<EngineSet>,
    pub(super) status: Arc<InstanceStatus>,
    pub(super) every: Duration,
    pub(super) owned: BTreeMap<i32, Owned>,
    /// The switches, whose effect on each owned partition goes in its header.
    pub(super) switches: Switches,
    /// Refused chunks are retried at every tick: said at most once a minute.
    pub(super) chunk_failures: crate::telemetry::Occasional,
}

impl PartialsWriter {
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
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
            // New here, or its claim forgotten (the partials topic started over).
            let fresh = self.owned.get(&partition).is_none_or(|o| {
                !Arc::ptr_eq(&o.engine, &engine) || engine.partial_epoch() != Some(o.epoch)
            });
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
                        // Everything held, under this epoch (after a recreated topic,
                        // nothing of ours is left in it).
                        retry: engine.chunk_starts(),
                        baseline_retry: engine.baseline_hours(),
                        baseline_refreshed: Instant::now(),
                        reclaim_at: None,
                        reclaim_backoff: Duration::from_secs(1),
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
        // Two instances that both believe they own the partition (a rebalance not
        // settled yet) would claim it back and forth: after each claim, wait longer
        // before the next (1 s, doubling to a minute), for the group to settle it.
        if owned.reclaim_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let backoff = owned.reclaim_backoff;
        let engine = owned.engine.clone();
        let Some(epoch) = self.claim(partition).await else {
            return;
        };
        tracing::warn!(partition, %other, epoch, next_in = ?backoff, "partition claimed by another instance while consumed here: claimed again");
        engine.set_partial_epoch(epoch);
        if let Some(owned) = self.owned.get_mut(&partition) {
            owned.epoch = epoch;
            owned.retry = engine.chunk_starts();
            owned.last_header = None;
            owned.reclaim_at = Some(Instant::now() + backoff);
            owned.reclaim_backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    /// A record of ours landed at or before our claim's offset: the partials topic was
    /// deleted and created again (its offsets started over), and our epoch means nothing
    /// there. The claim is forgotten; the next tick claims again and republishes it all.
    fn forget_claim(&mut self, partition: i32, engine: &Arc<Engine>) {
        tracing::warn!(partition, topic = %self.topic, "the partials topic started over (recreated?): claiming the partition again");
        engine.clear_partial_epoch();
        self.owned.remove(&partition);
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
        let key = header_key(&self.source_topic, partition);
        let payload = serde_json::to_vec(&header).ok()?;
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(delivery) => Some(delivery.offset),
            Err((error, _)) => {
                self.status.scaleout.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, partition, "claiming the partition in the partials failed; retrying at the next tick");
                None
            }
        }
    }

    /// Publishes the changed chunks and baseline hours of `partition`, then its header if
    /// it changed.
    async fn publish(&mut self, partition: i32) {
        let Some(owned) = self.owned.get_mut(&partition) else {
            return;
        };
        let mut chunks = owned.engine.take_changed_chunks();
        chunks.append(&mut owned.retry);
        let mut hours = owned.engine.take_changed_baseline_hours();
        hours.append(&mut owned.baseline_retry);
        if owned.baseline_refreshed.elapsed() >= BASELINE_REFRESH {
            hours.append(&mut owned.engine.baseline_hours());
            owned.baseline_refreshed = Instant::now();
        }
        let (engine, epoch) = (owned.engine.clone(), owned.epoch);
        let mut pending = Vec::with_capacity(chunks.len());
        for start in &chunks {
            let chunk: PartialChunk = engine.export_chunk(*start, epoch);
            let key = chunk_key(&self.source_topic, partition, *start);
            // An empty chunk (everything retracted) is published as such, with its epoch,
            // never as a tombstone: a tombstone has no epoch to fence, so a former
            // owner's could erase the current owner's chunk.
            let payload = serde_json::to_vec(&chunk).ok();
            pending.push((*start, key, payload));
        }
        let (failed, mut restarted) = self.send_all(partition, epoch, &pending).await;
        let pending: Vec<_> = hours
            .iter()
            .map(|hour| {
                let record = engine.export_baseline_hour(*hour, epoch);
                let key = baseline_key(&self.source_topic, partition, *hour);
                (*hour, key, serde_json::to_vec(&record).ok())
            })
            .collect();
        let (baseline_failed, baseline_restarted) = self.send_all(partition, epoch, &pending).await;
        restarted |= baseline_restarted;
        if restarted {
            self.forget_claim(partition, &engine);
            return;
        }
        let header = self.header(partition, &engine, Some(epoch));
        let Some(owned) = self.owned.get_mut(&partition) else {
            return;
        };
        owned.retry = failed;
        owned.baseline_retry = baseline_failed;
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
        let key = header_key(&self.source_topic, partition);
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(delivery) if delivery.offset <= epoch => self.forget_claim(partition, &engine),
            Ok(_) => {
                self.status.scaleout.published.fetch_add(1, Relaxed);
                self.status
                    .scaleout
                    .published_bytes
                    .fetch_add(payload.len() as u64, Relaxed);
                if let Some(owned) = self.owned.get_mut(&partition) {
                    owned.last_header = Some(header);
                    owned.last_sent = Instant::now();
                }
            }
            Err((error, _)) => {
                self.status.scaleout.publish_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, partition, "publishing a partial header failed; retrying at the next tick");
            }
        }
    }

    /// Sends `(id, key, payload)` records of `partition`: the ids that failed (to retry),
    /// and whether the topic started over (an offset at or below the claim's epoch).
    async fn send_all(
        &self,
        partition: i32,
        epoch: i64,
        pending: &[(i64, String, Option<Vec<u8>>)],
    ) -> (BTreeSet<i64>, bool) {
        let mut failed = BTreeSet::new();
        let mut deliveries = Vec::with_capacity(pending.len());
        for (start, key, payload) in pending {
            let mut record = FutureRecord::to(&self.topic).partition(PARTITION).key(key);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push((*start, payload.as_ref().map_or(0, Vec::len), delivery))
                }
                Err((error, _)) => {
                    if let Some(times) = self.chunk_failures.due() {
                        tracing::warn!(%error, partition, start, times, "publishing a partial record failed; retrying");
                    }
                    failed.insert(*start);
                }
            }
        }
        let mut restarted = false;
        for (start, bytes, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(delivery)) => {
                    restarted |= delivery.offset <= epoch;
                    self.status.scaleout.published.fetch_add(1, Relaxed);
                    self.status
                        .scaleout
                        .published_bytes
                        .fetch_add(bytes as u64, Relaxed);
                }
                Ok(Err((error, _))) => {
                    if let Some(times) = self.chunk_failures.due() {
                        tracing::warn!(%error, partition, start, times, "publishing a partial record failed; retrying (said at most once a minute)");
                    }
                    failed.insert(start);
                }
                Err(_) => {
                    failed.insert(start);
                }
            }
        }
        self.status
            .scaleout
            .publish_failures
            .fetch_add(failed.len() as u64, Relaxed);
        (failed, restarted)
    }
}
