//! Kafka ingestion: owns the consumer of interaction events, the rebuild of each
//! assigned partition by time, the dead-letter topic and the stored offsets.
//!
//! - At-least-once: `enable.auto.offset.store=false`; an offset is stored only after
//!   its record was applied (or dead-lettered), and committed in the background and at
//!   shutdown. Redeliveries are harmless: the engine counts an `event_id` once.
//! - Rebuild: on assignment each partition gets a fresh engine and is sought back to
//!   the offset of `now − rebuild span` (offsets-for-times); it is "rebuilding" until
//!   it reaches the high watermark it had when assigned. Revocation drops its state.
//! - Poison pills: an undecodable record, or one dated beyond the allowed clock skew,
//!   goes to the dead-letter topic with the reason in the `vigie-error` header and never
//!   stops the consumer: it is handed to the dead-letter producer and the consumer moves
//!   on; a record the dead-letter topic does not take within `kafka.dead_letter_timeout`
//!   is counted (`vigie_dead_letter_failures_total`, the `dead-letter-failing` alert) and
//!   logged with its position, and stays in the source topic.
//! - Broker outage: librdkafka reconnects by itself; meanwhile the status says stale
//!   and the engines keep their last state.

mod context;
mod dead_letter;
pub mod produce;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaSettings, PayloadFormat};
use crate::engine::{Engine, EngineSet};
use crate::event::{decode, DecodeError, Format};
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
    let dlq =
        dead_letter::DeadLetters::new(settings, status.clone()).map_err(IngestError::Client)?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, brokers = %settings.brokers, static_member = ?settings.static_member_id(), "consuming");

    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => {
                status.set_broker_down(false);
                handle(&message, settings, &engines, &status, &dlq).await;
                if let Err(e) = consumer.store_offset_from_message(&message) {
                    // The partition may have been revoked meanwhile: it will be replayed.
                    tracing::debug!(error = %e, "offset not stored");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
            }
        }
    }
    // Graceful stop: the offsets of everything applied are committed.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::warn!(error = %e, "final offset commit failed; records since the last commit will be redelivered");
    }
    tracing::info!("consumer stopped");
    Ok(())
}

/// Decodes and applies one record, or hands it to the dead-letter topic (never waiting
/// for it there: see [`dead_letter`]). Never fails.
async fn handle(
    message: &BorrowedMessage<'_>,
    settings: &KafkaSettings,
    engines: &EngineSet,
    status: &InstanceStatus,
    dlq: &dead_letter::DeadLetters,
) {
    use std::sync::atomic::Ordering::Relaxed;
    status.consumed.fetch_add(1, Relaxed);
    status.advance(message.partition(), message.offset());
    let Some(engine) = engines.get(message.partition()) else {
        return; // revoked meanwhile
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let decoded = match message.payload() {
        None => Err(DecodeError::MissingField("payload")),
        Some(payload) => decode(payload, format_of(message, settings.payload_format))
            .and_then(|event| event.not_ahead_of(now, millis(settings.max_clock_skew))),
    };
    match decoded {
        Ok(event) => {
            if engine.apply(&event) == crate::engine::Applied::Applied {
                status.applied.fetch_add(1, Relaxed);
            }
        }
        Err(error) => {
            engine.record_rejected();
            status.decode_errors.fetch_add(1, Relaxed);
            dlq.send(message, &error);
        }
    }
}

fn millis(d: Duration) -> i64 {
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
