//! Kafka ingestion: owns the consumer of interaction events, the rebuild of each
//! assigned partition by time, the dead-letter topic and the stored offsets.
//!
//! - At-least-once: `enable.auto.offset.store=false`; an offset is stored only after
//!   its record was applied (or dead-lettered), and committed in the background and at
//!   shutdown. Redeliveries are harmless: the engine counts an `event_id` once.
//! - Rebuild: on assignment each partition gets a fresh engine and is sought back to
//!   the offset of `now − rebuild span` (offsets-for-times); it is "rebuilding" until
//!   it reaches the high watermark it had when assigned. Revocation drops its state.
//!   With `kafka.rebuild_readers` (the default), extra clients replay the history in
//!   parallel while the consumer waits paused ([`rebuild`]); what the consumer receives
//!   is applied in batches, partitions in parallel (`kafka.apply_threads`, [`apply`]).
//! - Poison pills: an undecodable record, or one dated beyond the allowed clock skew,
//!   goes to the dead-letter topic with the reason in the `vigie-error` header and never
//!   stops the consumer: it is handed to the dead-letter producer and the consumer moves
//!   on; a record the dead-letter topic does not take within `kafka.dead_letter_timeout`
//!   is counted (`vigie_dead_letter_failures_total`, the `dead-letter-failing` alert) and
//!   logged with its position, and stays in the source topic.
//! - Broker outage: librdkafka reconnects by itself; meanwhile the status says stale
//!   and the engines keep their last state.

mod apply;
mod context;
mod dead_letter;
pub mod produce;
mod rebuild;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaSettings, PayloadFormat};
use crate::engine::{Engine, EngineSet};
use crate::event::Format;
use crate::kafka::client_config;
use crate::status::InstanceStatus;
pub use context::{IngestContext, RebuildFrom};

/// Told of every partition assigned to the consumer, from the rebalance callback (on
/// librdkafka's thread, so it may block), once the partition's fresh engine exists and
/// before any of its records is consumed. Scale-out claims partitions here.
pub trait AssignmentHook: Send + Sync + std::fmt::Debug {
    fn assigned(&self, partition: i32, engine: &Engine);
}

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("creating the Kafka client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("starting the apply threads: {0}")]
    Threads(#[source] rayon::ThreadPoolBuildError),
    #[error("subscribing to topic {topic:?}: {source}")]
    Subscribe {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

pub use dead_letter::{ERROR_HEADER, ORIGIN_HEADER};

/// How far back partitions are replayed: from the earliest record if so configured, else
/// the configured span, or the engine's ([`crate::engine::EngineConfig::rebuild_span_ms`]:
/// the retention plus the repeat horizon or the baseline's weeks).
pub(crate) fn rebuild_from(settings: &KafkaSettings, engines: &EngineSet) -> RebuildFrom {
    if settings.rebuild_from_earliest {
        return RebuildFrom::Earliest;
    }
    RebuildFrom::Span(settings.rebuild_span.map_or_else(
        || engines.config().rebuild_span_ms(),
        |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
    ))
}

/// Consumes `settings.topic` into `engines` until `shutdown`, then stores and commits
/// offsets; `hook` (if any) is told of every assigned partition.
pub async fn run_consumer(
    settings: &KafkaSettings,
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    hook: Option<Box<dyn AssignmentHook>>,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let mut context = IngestContext::new(
        engines.clone(),
        status.clone(),
        rebuild_from(settings, &engines),
    )
    .with_shutdown(shutdown.clone());
    if let Some(hook) = hook {
        context = context.with_hook(hook);
    }
    let dlq = Arc::new(
        dead_letter::DeadLetters::new(settings, status.clone()).map_err(IngestError::Client)?,
    );
    let readers_stop = shutdown.child_token();
    let (readers, mut rebuilt) = match settings.rebuild_readers {
        0 => (None, None),
        count => {
            let (readers, jobs, rebuilt) = rebuild::Readers::start(
                count,
                settings,
                engines.clone(),
                status.clone(),
                dlq.clone(),
                readers_stop.clone(),
            )
            .map_err(IngestError::Client)?;
            context = context.with_readers(jobs);
            (Some(readers), Some(rebuilt))
        }
    };
    let mut config = client_config(settings);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Consumer lag per partition, reported to the status every 5 s.
        .set("statistics.interval.ms", "5000");
    if let Some(id) = settings.static_member_id() {
        // Static membership: a restart within the session timeout is the same member,
        // given its partitions back at once (no rebalance, no wait for it to expire).
        config.set("group.instance.id", id);
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    let consumer: StreamConsumer<IngestContext> = config
        .create_with_context(context)
        .map_err(IngestError::Client)?;
    consumer
        .subscribe(&[&settings.topic])
        .map_err(|source| IngestError::Subscribe {
            topic: settings.topic.clone(),
            source,
        })?;
    status.set_consumer_started();
    let threads = settings.apply_threads.unwrap_or_else(default_apply_threads);
    let applier = apply::Applier::new(threads).map_err(IngestError::Threads)?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, brokers = %settings.brokers, static_member = ?settings.static_member_id(), apply_threads = threads, rebuild_readers = settings.rebuild_readers, "consuming");

    let mut batch = apply::Batch::default();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => message,
            Some((partition, engine, next)) = async {
                match rebuilt.as_mut() {
                    Some(rebuilt) => rebuilt.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                resume_rebuilt(&consumer, settings, &engines, partition, &engine, next);
                continue;
            }
        };
        match message {
            Ok(message) => batch.push(message, &engines),
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        }
        // With the first record, whatever else is already fetched (a rebuild reads
        // thousands at a time; live traffic, one or a few).
        while batch.len() < apply::MAX_BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message, &engines),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
        }
        status.set_broker_down(false);
        applier.apply(&mut batch, &consumer, settings, &status, &dlq);
    }
    readers_stop.cancel();
    if let Some(readers) = readers {
        // What readers applied of a history they had not finished is committed too.
        let unfinished = tokio::task::spawn_blocking(move || readers.join())
            .await
            .unwrap_or_default();
        for (partition, (engine, next)) in unfinished {
            let current = engines.get(partition);
            if current.is_some_and(|current| Arc::ptr_eq(&current, &engine)) {
                if let Err(error) = consumer.store_offset(&settings.topic, partition, next - 1) {
                    tracing::debug!(%error, partition, "offset of a partial rebuild not stored");
                }
            }
        }
    }
    // Graceful stop: the offsets of everything applied are committed.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing consumed live since the last commit (e.g. only a rebuild): nothing to do.
        Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => {}
        Err(e) => {
            tracing::warn!(error = %e, "final offset commit failed; records since the last commit will be redelivered");
        }
    }
    tracing::info!("consumer stopped");
    Ok(())
}

/// Resumes a partition whose history the rebuild readers applied, unless it was
/// revoked meanwhile (its engine dropped or replaced: a new job is under way).
fn resume_rebuilt(
    consumer: &StreamConsumer<IngestContext>,
    settings: &KafkaSettings,
    engines: &EngineSet,
    partition: i32,
    engine: &Arc<Engine>,
    next: i64,
) {
    if !engines
        .get(partition)
        .is_some_and(|current| Arc::ptr_eq(&current, engine))
    {
        return;
    }
    let seek = consumer.seek(
        &settings.topic,
        partition,
        rdkafka::Offset::Offset(next),
        Duration::from_secs(10),
    );
    if let Err(error) = seek {
        tracing::error!(%error, partition, next, "placing a rebuilt partition failed");
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&settings.topic, partition);
    match consumer.resume(&tpl) {
        Ok(()) => tracing::info!(partition, next, "history applied: partition live"),
        Err(error) => tracing::error!(%error, partition, "resuming a rebuilt partition failed"),
    }
    // The history is applied: its offsets are the group's to commit.
    if next > 0 {
        if let Err(error) = consumer.store_offset(&settings.topic, partition, next - 1) {
            tracing::warn!(%error, partition, "rebuilt offset not stored");
        }
    }
}

/// One apply thread per core (`kafka.apply_threads` unset).
pub fn default_apply_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The format of a record: the configured one, else its `content-type` header, else
/// `None` (sniffed).
fn format_of(message: &BorrowedMessage<'_>, configured: PayloadFormat) -> Option<Format> {
    match configured {
        PayloadFormat::Json => return Some(Format::Jsonl),
        PayloadFormat::Proto => return Some(Format::Proto),
        PayloadFormat::Auto => {}
    }
    let content_type = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case("content-type"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
    })?;
    if content_type.contains("json") {
        Some(Format::Jsonl)
    } else if content_type.contains("proto") {
        Some(Format::Proto)
    } else {
        None
    }
}
