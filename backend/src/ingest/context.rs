//! Owns what happens on rebalance: fresh engines for assigned partitions, sought back
//! by time for the rebuild; dropped state for revoked ones (kept when the process is
//! leaving); broker-down detection.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::AssignmentHook;
use crate::engine::EngineSet;
use crate::status::{InstanceStatus, UNKNOWN_TARGET};

/// librdkafka callbacks of the Vigie consumer.
#[derive(Debug)]
pub struct IngestContext {
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    rebuild_from: RebuildFrom,
    /// Told of each assigned partition (scale-out claims it).
    hook: Option<Box<dyn AssignmentHook>>,
    /// Replays assigned partitions' history in parallel (`kafka.rebuild_readers`);
    /// `None`: this consumer replays it itself.
    readers: Option<super::rebuild::JobQueue>,
    /// Cancelled once the process is leaving: the revocation on close then keeps the
    /// state, so that nothing reading it meanwhile (a last websocket frame, an alert
    /// round, the demo's last print) sees an empty window.
    leaving: tokio_util::sync::CancellationToken,
}

/// Where an assigned partition's rebuild starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildFrom {
    /// The first record at or after now minus this span (ms), found by offsets-for-times.
    Span(i64),
    /// The earliest retained record.
    Earliest,
}

impl IngestContext {
    pub fn new(
        engines: Arc<EngineSet>,
        status: Arc<InstanceStatus>,
        rebuild_from: RebuildFrom,
    ) -> Self {
        IngestContext {
            engines,
            status,
            rebuild_from,
            hook: None,
            readers: None,
            leaving: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The process's shutdown token: a revocation after it is cancelled keeps the state.
    pub(crate) fn with_shutdown(mut self, shutdown: tokio_util::sync::CancellationToken) -> Self {
        self.leaving = shutdown;
        self
    }

    /// Hands the history of assigned partitions to rebuild readers.
    pub(crate) fn with_readers(mut self, readers: super::rebuild::JobQueue) -> Self {
        self.readers = Some(readers);
        self
    }

    /// Tells `hook` of every assigned partition, from the rebalance callback itself
    /// (scale-out claims it there, so that a new owner's claim always follows every claim
    /// of the partition's former owners).
    pub(crate) fn with_hook(mut self, hook: Box<dyn AssignmentHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Sets each partition's start offset to the first record at or after `now − span`
    /// (or its earliest record), and registers its rebuild target (the high watermark now).
    /// With rebuild readers, the partition starts at its target instead and the history
    /// `[start, target)` is returned as a job for them (the partition is to be paused
    /// until they are done).
    fn prepare_rebuild(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> Vec<super::rebuild::Job> {
        let mut jobs = Vec::new();
        let timeout = Duration::from_secs(10);
        let found = match self.rebuild_from {
            RebuildFrom::Span(span_ms) => {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let since = now_ms.saturating_sub(span_ms).max(0);
                let mut query = TopicPartitionList::new();
                for e in tpl.elements() {
                    let _ =
                        query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(since));
                }
                Some(consumer.offsets_for_times(query, timeout))
            }
            RebuildFrom::Earliest => None,
        };
        for e in tpl.clone().elements() {
            let (topic, partition) = (e.topic(), e.partition());
            let high = match consumer.fetch_watermarks(topic, partition, timeout) {
                Ok(watermarks) => Some(watermarks),
                Err(error) => {
                    tracing::warn!(%error, partition, "high watermark unknown: the partition counts as rebuilding until the consumer statistics report it");
                    None
                }
            };
            let found = match &found {
                None => None,
                Some(Ok(found)) => found.find_partition(topic, partition).map(|p| p.offset()),
                Some(Err(error)) => {
                    tracing::warn!(%error, partition, "offsets-for-times failed; replaying from the earliest offset");
                    None
                }
            };
            // Where to seek, and the offsets the rebuild goes from and to.
            let (seek, start, target) = match (found, high) {
                (Some(Offset::Offset(o)), Some((low, high))) => {
                    let o = o.max(low).min(high.max(low));
                    (Offset::Offset(o), o, high)
                }
                (Some(Offset::Offset(o)), None) => (Offset::Offset(o), o, UNKNOWN_TARGET),
                // No record that recent: nothing to replay.
                (Some(Offset::End), Some((_, high))) => (Offset::Offset(high), high, high),
                (Some(Offset::End), None) => (Offset::End, 0, 0),
                (_, Some((low, high))) => (Offset::Offset(low), low, high),
                (_, None) => (Offset::Beginning, 0, UNKNOWN_TARGET),
            };
            let engine = self.engines.assign(partition);
            let seek = match &self.readers {
                Some(_) if target != UNKNOWN_TARGET && start < target => {
                    jobs.push(super::rebuild::Job {
                        topic: topic.to_string(),
                        partition,
                        start,
                        target,
                        engine: engine.clone(),
                    });
                    Offset::Offset(target)
                }
                _ => seek,
            };
            let _ = tpl.set_partition_offset(topic, partition, seek);
            self.status.track(partition, start, target);
            if let Some(hook) = &self.hook {
                hook.assigned(partition, &engine);
            }
            tracing::info!(partition, start, target, "partition assigned: rebuilding");
        }
        jobs
    }
}

impl IngestContext {
    /// Pauses the partitions of `jobs` (placed at their targets) and gives the jobs to
    /// the readers; the consumer loop resumes each once its history is applied. (A
    /// pause also discards anything already fetched for the partition.)
    fn hand_over(&self, consumer: &BaseConsumer<Self>, jobs: Vec<super::rebuild::Job>) {
        let Some(readers) = &self.readers else {
            return;
        };
        if jobs.is_empty() {
            return;
        }
        let mut paused = TopicPartitionList::new();
        for job in &jobs {
            paused.add_partition(&job.topic, job.partition);
        }
        if let Err(error) = consumer.pause(&paused) {
            tracing::error!(%error, "pausing partitions for their rebuild failed");
        }
        for job in jobs {
            readers.submit(job);
        }
    }
}

impl ClientContext for IngestContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for topic in statistics.topics.values() {
            for (id, partition) in &topic.partitions {
                if *id >= 0 && partition.consumer_lag >= 0 {
                    self.status.set_lag(*id, partition.consumer_lag);
                }
                if *id >= 0 {
                    self.status.learn_target(*id, partition.hi_offset);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let down = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        );
        if down {
            self.status.set_broker_down(true);
        }
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let jobs = self.prepare_rebuild(consumer, tpl);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                self.hand_over(consumer, jobs);
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if !self.leaving.is_cancelled() {
                    for e in tpl.elements() {
                        self.engines.revoke(e.partition());
                        self.status.untrack(e.partition());
                        tracing::info!(
                            partition = e.partition(),
                            "partition revoked: state dropped"
                        );
                    }
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error: dropping every partition's state");
                for partition in self.engines.partitions() {
                    self.engines.revoke(partition);
                    self.status.untrack(partition);
                }
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "applying the rebalance failed");
        }
    }
}
