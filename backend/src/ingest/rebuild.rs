//! Owns the parallel rebuild: readers that replay assigned partitions' history, each
//! its own Kafka client (a fetch pipeline of its own: one client fetches from a broker
//! one request at a time, which bounds a rebuild long before the cores do).
//!
//! On assignment the group consumer is placed at the partition's rebuild target (its
//! high watermark then) and paused; a reader replays `[start, target)` into the
//! partition's fresh engine, in offset order, and hands the partition back: the group
//! consumer resumes it and goes on live. So each engine still sees its partition's
//! records once each, in order, as the one-task rebuild gives them. A partition revoked
//! meanwhile (its engine dropped or replaced) is abandoned by its reader.
//!
//! Readers commit nothing (the group's offsets are the live consumer's) and dead-letter
//! what they refuse, as the live consumer does.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::apply::{apply_record, MAX_BATCH};
use super::dead_letter::DeadLetters;
use crate::config::KafkaSettings;
use crate::engine::{Engine, EngineSet};
use crate::kafka::client_config;
use crate::status::InstanceStatus;

/// One partition's history to replay, from `start` to the end, into `engine`.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    /// The high watermark at assignment: the status's target (some brokers under-report
    /// it, so the reader reads to the partition's end rather than stopping there).
    pub target: i64,
    pub engine: Arc<Engine>,
}

/// A job under way: where its partition is read to.
struct Reading {
    job: Job,
    /// The offset after the last record read.
    next: i64,
}

/// A partition whose history is applied: the engine it was applied to, and the offset
/// the live consumer goes on from.
pub(super) type Rebuilt = (i32, Arc<Engine>, i64);

/// Hands jobs to the readers (from the rebalance callback).
#[derive(Debug, Clone)]
pub(crate) struct JobQueue {
    readers: Vec<Sender<Job>>,
}

impl JobQueue {
    /// Gives the job to its partition's reader (one reader per partition, so that a
    /// partition given again goes to the reader that may still hold its old job).
    pub(crate) fn submit(&self, job: Job) {
        let reader = job.partition.unsigned_abs() as usize % self.readers.len();
        if self.readers[reader].send(job).is_err() {
            tracing::warn!("rebuild reader stopped: the partition stays paused until reassigned");
        }
    }
}

/// The reader threads.
pub(super) struct Readers {
    threads: Vec<JoinHandle<()>>,
    progress: Arc<Progress>,
}

/// Per partition under rebuild: its engine and the offset after the last record applied
/// (so that a stop mid-rebuild still commits what was applied).
type Progress = parking_lot::Mutex<HashMap<i32, (Arc<Engine>, i64)>>;

/// What every reader shares.
struct Shared {
    settings: KafkaSettings,
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    dlq: Arc<DeadLetters>,
    rebuilt: UnboundedSender<Rebuilt>,
    stop: CancellationToken,
    progress: Arc<Progress>,
}

impl Readers {
    /// Starts `count` readers; returns them, the queue of their jobs and where rebuilt
    /// partitions are announced.
    pub(super) fn start(
        count: usize,
        settings: &KafkaSettings,
        engines: Arc<EngineSet>,
        status: Arc<InstanceStatus>,
        dlq: Arc<DeadLetters>,
        stop: CancellationToken,
    ) -> Result<(Readers, JobQueue, UnboundedReceiver<Rebuilt>), KafkaError> {
        let (rebuilt, announced) = unbounded_channel();
        let progress = Arc::new(Progress::default());
        let shared = Arc::new(Shared {
            progress: progress.clone(),
            settings: settings.clone(),
            engines,
            status,
            dlq,
            rebuilt,
            stop,
        });
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..count {
            let consumer: BaseConsumer = client_config(settings)
                .set("group.id", format!("{}.rebuild", settings.group_id))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "true")
                .create()?;
            let (sender, jobs) = mpsc::channel();
            senders.push(sender);
            let shared = shared.clone();
            // Dead-lettering hands records to a task of the consumer's runtime.
            let runtime = tokio::runtime::Handle::current();
            let thread = std::thread::Builder::new()
                .name(format!("vigie-rebuild-{i}"))
                .spawn(move || {
                    let _runtime = runtime.enter();
                    read(&consumer, &jobs, &shared);
                })
                .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
            threads.push(thread);
        }
        Ok((
            Readers { threads, progress },
            JobQueue { readers: senders },
            announced,
        ))
    }

    /// Waits for the readers to stop (after the stop token); returns, per partition
    /// still under rebuild, its engine and the offset after the last record applied.
    pub(super) fn join(self) -> HashMap<i32, (Arc<Engine>, i64)> {
        for thread in self.threads {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.progress.lock())
    }
}

/// One reader: takes jobs, replays them, announces each partition rebuilt.
fn read(consumer: &BaseConsumer, jobs: &Receiver<Job>, shared: &Shared) {
    let topic = shared.settings.topic.as_str();
    let mut active: HashMap<i32, Reading> = HashMap::new();
    let set = |partition: i32, offset: Option<i64>| {
        let mut tpl = TopicPartitionList::new();
        let result = match offset {
            Some(o) => tpl
                .add_partition_offset(topic, partition, Offset::Offset(o))
                .and_then(|()| consumer.incremental_assign(&tpl)),
            None => {
                tpl.add_partition(topic, partition);
                consumer.incremental_unassign(&tpl)
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, partition, "rebuild reader: (un)assigning failed");
        }
    };
    let finish = |active: &mut HashMap<i32, Reading>, partition: i32| {
        if let Some(reading) = active.remove(&partition) {
            set(partition, None);
            shared.progress.lock().remove(&partition);
            shared
                .status
                .advance(partition, reading.next.max(reading.job.target) - 1);
            let _ = shared
                .rebuilt
                .send((partition, reading.job.engine, reading.next));
        }
    };
    while !shared.stop.is_cancelled() {
        let first = if active.is_empty() {
            match jobs.recv_timeout(Duration::from_millis(100)) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            None
        };
        for job in first.into_iter().chain(jobs.try_iter()) {
            if active.remove(&job.partition).is_some() {
                set(job.partition, None); // given again: the newer assignment wins
            }
            set(job.partition, Some(job.start));
            active.insert(
                job.partition,
                Reading {
                    next: job.start,
                    job,
                },
            );
        }
        // Whatever is fetched, up to a batch; positions reported once per batch.
        let now = jiff::Timestamp::now().as_millisecond();
        let mut reached: HashMap<i32, i64> = HashMap::new();
        let mut consumed = 0u64;
        let mut applied = 0u64;
        let mut wait = Duration::from_millis(100);
        for _ in 0..MAX_BATCH {
            let Some(result) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match result {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    // Read to the end: the live consumer goes on from here.
                    finish(&mut active, partition);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "rebuild reader");
                    break;
                }
            };
            let partition = message.partition();
            let Some(reading) = active.get_mut(&partition) else {
                continue; // abandoned meanwhile
            };
            if message.offset() < reading.next {
                continue;
            }
            reading.next = message.offset() + 1;
            consumed += 1;
            match apply_record(&message, &reading.job.engine, &shared.settings, now) {
                Ok(counted) => applied += u64::from(counted),
                Err(error) => {
                    shared.status.decode_errors.fetch_add(1, Relaxed);
                    shared.dlq.send(&message, &error);
                }
            }
            reached.insert(partition, message.offset());
        }
        if consumed > 0 {
            // The broker answers: whatever an error callback said, it is back.
            shared.status.set_broker_down(false);
        }
        shared.status.consumed.fetch_add(consumed, Relaxed);
        shared.status.applied.fetch_add(applied, Relaxed);
        for (partition, offset) in reached {
            shared.status.advance(partition, offset);
            if let Some(reading) = active.get(&partition) {
                shared
                    .progress
                    .lock()
                    .insert(partition, (reading.job.engine.clone(), offset + 1));
            }
        }
        // A partition revoked meanwhile: its engine was dropped or replaced.
        let revoked: Vec<i32> = active
            .iter()
            .filter(|(p, reading)| {
                !shared
                    .engines
                    .get(**p)
                    .is_some_and(|engine| Arc::ptr_eq(&engine, &reading.job.engine))
            })
            .map(|(p, _)| *p)
            .collect();
        for partition in revoked {
            active.remove(&partition);
            shared.progress.lock().remove(&partition);
            set(partition, None);
        }
    }
}
