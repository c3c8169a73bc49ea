//! Owns the live bridges: `vigie ingest asterisk` (following a `queue_log` as Asterisk
//! writes it, its position kept across restarts) and `vigie ingest connect` (Amazon
//! Connect's records from the topic a connector writes them to); both convert and
//! produce the events to the events topic with the key convention.
//!
//! After a restart the file is read again from its start to rebuild which calls are in
//! progress, but only the lines after the saved position are produced (and those would
//! only be redeliveries anyway: every event id derives from its line). A file rotated
//! while the bridge was down is read from the start of the new file: the end of the old
//! one is not read.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::asterisk::{AsteriskConverter, ConvertReport, LineError};
use super::tail::{load_position, save_position, Follower, Turn};
use crate::config::KafkaSettings;
use crate::event::{EventRecord, Format};
use crate::ingest::produce::{EventProducer, Pace};

/// What the bridge follows and where it writes.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    pub queue_log: PathBuf,
    /// Where the position is kept (default: next to the log, `<log>.vigie-position`).
    pub state: PathBuf,
    pub topic: String,
    pub format: Format,
    /// How often the file is looked at once read to its end.
    pub poll: Duration,
    /// Stop at the first refused line.
    pub strict: bool,
    /// Stop once the file is read to its end (a backfill), instead of following it.
    pub once: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--strict: line {0}: {1}")]
    Strict(u64, LineError),
    #[error("producing to Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Follows `options.queue_log` until `shutdown` (or its end with `once`): the report of
/// every line read.
pub async fn follow_queue_log(
    kafka: &KafkaSettings,
    options: &BridgeOptions,
    shutdown: CancellationToken,
) -> Result<ConvertReport, BridgeError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| BridgeError::Io { path, source }
    };
    let saved = load_position(&options.state).map_err(io(&options.state))?;
    let producer = EventProducer::new(kafka)?;
    let mut follower = Follower::new(&options.queue_log);
    let mut converter = AsteriskConverter::new();
    let mut produced = 0u64;
    let mut said = Instant::now();
    loop {
        let (lines, turn) = follower.read_lines().map_err(io(&options.queue_log))?;
        match turn {
            Turn::Rotated => {
                tracing::info!(path = %options.queue_log.display(), "queue_log rotated: reading the new file")
            }
            Turn::Truncated => {
                tracing::warn!(path = %options.queue_log.display(), "queue_log truncated: reading it from its start")
            }
            Turn::Same => {}
        }
        let mut batch = Vec::new();
        let mut events = Vec::new();
        for line in &lines {
            let result = converter.convert(line.number, &line.text, &mut events);
            if let (Err(e), true) = (result, options.strict) {
                return Err(BridgeError::Strict(line.number, e));
            }
            // Produced before the restart: converted again (the calls in progress), not sent.
            let sent_before =
                saved.is_some_and(|p| p.inode == line.after.inode && line.after.offset <= p.offset);
            if sent_before {
                events.clear();
            } else {
                batch.append(&mut events);
            }
        }
        produced += send_batch(&producer, &options.topic, options.format, batch, &shutdown).await?;
        if !lines.is_empty() {
            save_position(&options.state, follower.position()).map_err(io(&options.state))?;
        }
        if said.elapsed() >= Duration::from_secs(60) {
            said = Instant::now();
            let r = &converter.report;
            tracing::info!(
                lines = r.lines,
                calls = r.calls,
                produced,
                refused = r.refused,
                "queue_log bridge"
            );
        }
        if shutdown.is_cancelled() {
            break;
        }
        if lines.is_empty() {
            if options.once {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(options.poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
    let r = &converter.report;
    tracing::info!(
        lines = r.lines,
        calls = r.calls,
        produced,
        refused = r.refused,
        "queue_log bridge stopped"
    );
    Ok(converter.report)
}

/// Produces a bridge's converted batch as fast as the broker takes it (an empty one:
/// nothing to do); how many events were delivered.
async fn send_batch(
    producer: &EventProducer,
    topic: &str,
    format: Format,
    batch: Vec<EventRecord<'static>>,
    shutdown: &CancellationToken,
) -> Result<u64, rdkafka::error::KafkaError> {
    if batch.is_empty() {
        return Ok(0);
    }
    producer
        .send(topic, batch.into_iter(), format, Pace::Unbounded, shutdown)
        .await
}

/// What `vigie ingest connect` reads and where it writes.
#[derive(Clone, Debug)]
pub struct ConnectBridgeOptions {
    /// The topic an EventBridge or Kinesis connector writes Connect's records to.
    pub from_topic: String,
    /// The consumer group (its committed offsets are the bridge's position).
    pub group: String,
    pub topic: String,
    pub format: Format,
    pub queue_names: std::collections::HashMap<String, String>,
    /// Stop once caught up with the topic's end (a backfill).
    pub once: bool,
}

/// Records read per batch before producing (and storing their offsets).
const CONNECT_BATCH: usize = 1_000;

/// Reads Connect's records from `options.from_topic` and produces their events to the
/// events topic until `shutdown`; offsets are stored once a batch is delivered, so a
/// restart reads at most a batch again (redeliveries, which the engine recognises).
pub async fn follow_connect_topic(
    kafka: &KafkaSettings,
    options: &ConnectBridgeOptions,
    shutdown: CancellationToken,
) -> Result<super::connect::ConnectReport, BridgeError> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let consumer: StreamConsumer = crate::kafka::client_config(kafka)
        .set("group.id", &options.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()?;
    consumer.subscribe(&[options.from_topic.as_str()])?;
    let producer = EventProducer::new(kafka)?;
    let mut converter = super::connect::ConnectConverter::new(options.queue_names.clone());
    let mut position = 0u64;
    let mut at_end = std::collections::BTreeSet::new();
    loop {
        let mut batch = Vec::new();
        let mut offsets = Vec::new();
        let mut out = Vec::new();
        while batch.len() < CONNECT_BATCH {
            let wait = if batch.is_empty() {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(20)
            };
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = tokio::time::timeout(wait, consumer.recv()) => m,
            };
            match message {
                Err(_) => break,
                Ok(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(m)) => {
                    at_end.remove(&m.partition());
                    offsets.push((m.topic().to_string(), m.partition(), m.offset()));
                    let records: Vec<serde_json::Value> =
                        match m.payload().map(serde_json::from_slice::<serde_json::Value>) {
                            Some(Ok(serde_json::Value::Array(items))) => items,
                            Some(Ok(one)) => vec![one],
                            _ => Vec::new(),
                        };
                    if records.is_empty() {
                        converter.report.refused += 1;
                    }
                    for r in records {
                        position += 1;
                        let _ = converter.convert(position, &r, &mut out);
                    }
                    batch.append(&mut out);
                }
            }
        }
        // In time order: the raw topic's partitions interleave.
        batch.sort_by_key(|e| e.ts_ms);
        send_batch(&producer, &options.topic, options.format, batch, &shutdown).await?;
        for (topic, partition, offset) in &offsets {
            let _ = consumer.store_offset(topic, *partition, *offset + 1);
        }
        if shutdown.is_cancelled() {
            break;
        }
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if options.once && offsets.is_empty() && assigned > 0 && at_end.len() >= assigned {
            break;
        }
    }
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    let r = &converter.report;
    tracing::info!(
        records = r.records,
        events = r.events,
        refused = r.refused,
        "Connect bridge stopped"
    );
    Ok(converter.report)
}
