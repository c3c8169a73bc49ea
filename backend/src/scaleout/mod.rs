//! Scale-out: owns the partials topic, through which the instances of one consumer group
//! each serve the whole merged cockpit (`kafka.partials = true`).
//!
//! # The protocol
//! - **Records** (JSON, on the one partition of `kafka.partials_topic`, compacted): key
//!   `<topic>/<partition>` holds a partition's **header** (owner, epoch, rebuild progress,
//!   watermark, counters, queue state, switch shares), key `<topic>/<partition>/<chunk
//!   start>` each 10-second **chunk** of its effect log (see [`crate::engine::partial`]).
//!   A chunk is republished whole whenever it changes, so the compacted topic holds the
//!   latest state of every chunk and a new instance reads the state, not a history.
//! - **Claim**: when the consumer is assigned a partition, the new owner produces a header
//!   without epoch from the rebalance callback itself ([`claim`]) and waits for it: its
//!   offset is the owner's **epoch**, carried by every later record of that partition. The
//!   group revokes a partition from its former owner before assigning it to the next, so
//!   the new claim always comes after every claim of former owners.
//! - **Fencing**: readers keep, per partition, only the highest epoch: a new claim drops
//!   the former owner's replica, records of an older epoch (a zombie still publishing)
//!   are ignored, and a record whose epoch is beyond its own offset (forged or corrupt)
//!   is refused. Exactly one source per partition is ever merged.
//! - **Takeover**: a former owner whose claim from the callback failed retries from its
//!   writer; if that retry lands after the new owner's claim, the new owner, reading a
//!   later claim of a partition it still consumes, claims it again above it and
//!   republishes every chunk ([`publish`]).
//! - **Freshness**: every `kafka.partials_every` (250 ms), the chunks changed since the
//!   last tick, then the header if anything changed (at least every [`KEEPALIVE`]); an
//!   owner silent for longer than the status's `OWNER_SILENT` counts as gone.
//!
//! - **Recreation**: a partials topic deleted and created again starts its offsets over,
//!   below every epoch known: the reader sees an offset go back, forgets every replica
//!   and claim (and tells the [`Piggyback`]s); a writer whose record lands at or before
//!   its claim's offset claims its partition again and republishes it whole. (Deleting
//!   the topic under running instances on Tansu 0.6.0 crashes librdkafka 2.12.1 in its
//!   metadata cache — Tansu answers with a nameless topic — so there, restart them.)
//!
//! Other parts of Vigie may keep records of their own on the same topic, ordered with the
//! claims (the shared alert state): they implement [`Piggyback`], and the reader
//! ([`follow`]) hands them every record whose key they take.

pub mod claim;
mod follow;
mod publish;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigie_proto::DeflectionSwitch;

pub use claim::PartitionClaimer;

use crate::config::KafkaSettings;
use crate::engine::EngineSet;
use crate::kafka::{ensure_topics, instance_id, internal_client_config, TopicError, TopicSpec};
use crate::status::InstanceStatus;

/// A header is republished at least this often, even unchanged (liveness, and the
/// topic's time retention never deletes a live partition's header).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(10);

/// Every record goes to this partition of the partials topic: one total order of claims.
const PARTITION: i32 = 0;

#[derive(Debug, Error)]
pub enum ScaleoutError {
    #[error("partials topic {topic:?}: {what}: {source}")]
    Kafka {
        topic: String,
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("partials topic {topic:?}: {source}")]
    Topic {
        topic: String,
        #[source]
        source: TopicError,
    },
}

/// The deflection switches as the switch store follows them: their effect on each owned
/// partition goes in its header.
pub(crate) type Switches = tokio::sync::watch::Receiver<Arc<Vec<DeflectionSwitch>>>;

/// Records another part of Vigie keeps on the partials topic, read in the topic's order.
pub trait Piggyback: Send + Sync {
    /// Takes the record if its key is one of its own (`false`: not its record).
    fn accept(&self, key: &str, payload: Option<&[u8]>, offset: i64) -> bool;
    /// Every record up to `offset` has been read (and applied).
    fn read_up_to(&self, offset: i64);
    /// The topic was recreated: its offsets (the epochs) start over.
    fn reset(&self);
}

/// Key of a partition's header.
fn header_key(source_topic: &str, partition: i32) -> String {
    format!("{source_topic}/{partition}")
}

/// Key of one chunk of a partition's effect log.
fn chunk_key(source_topic: &str, partition: i32, start: i64) -> String {
    format!("{source_topic}/{partition}/{start}")
}

/// Key of one hour of a partition's baseline.
fn baseline_key(source_topic: &str, partition: i32, hour: i64) -> String {
    format!("{source_topic}/{partition}/b{hour}")
}

/// Starts scale-out: creates the topic if missing, then publishes and follows partials
/// until `shutdown`. Call before the consumer starts (engines must track changes), and
/// give the consumer a [`PartitionClaimer`].
pub async fn start(
    settings: &KafkaSettings,
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    switches: Switches,
    piggybacks: Vec<Arc<dyn Piggyback>>,
    shutdown: CancellationToken,
) -> Result<(), ScaleoutError> {
    let id = instance_id(settings);
    let topic = settings.partials_topic.clone();
    // Records older than the engine's retention plus an hour are deleted as well.
    let retention = Duration::from_millis(
        u64::try_from(engines.config().retention_ms()).unwrap_or(0) + 3_600_000,
    );
    ensure_topics(
        settings,
        &[TopicSpec::compacted(
            "the partials topic",
            &topic,
            Some(retention),
        )],
    )
    .await
    .map_err(|source| ScaleoutError::Topic {
        topic: topic.clone(),
        source,
    })?;
    engines.enable_partials();
    status.enable_cluster(&id);
    let kafka = |what| {
        let topic = topic.clone();
        move |source| ScaleoutError::Kafka {
            topic,
            what,
            source,
        }
    };
    let producer: FutureProducer = internal_client_config(settings)
        .set("message.timeout.ms", "30000")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(kafka("creating the producer"))?;
    let consumer: StreamConsumer = internal_client_config(settings)
        .set("group.id", format!("vigie-partials-{id}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        // A recreated topic (offsets starting over) is read from its start again.
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(kafka("creating the follower"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, PARTITION, Offset::Beginning)
        .map_err(kafka("assigning"))?;
    consumer.assign(&tpl).map_err(kafka("assigning"))?;
    tracing::info!(instance = %id, %topic, every = ?settings.partials_every, "scale-out: publishing and merging partials");
    let reader = follow::PartialsReader {
        source_topic: settings.topic.clone(),
        partials_topic: topic.clone(),
        engines: engines.clone(),
        status: status.clone(),
        piggybacks,
    };
    tokio::spawn(
        reader
            .run(Arc::new(consumer), shutdown.clone())
            .instrument(tracing::info_span!("partials_reader", %topic)),
    );
    let writer = publish::PartialsWriter {
        id,
        source_topic: settings.topic.clone(),
        topic,
        producer,
        engines,
        status,
        every: settings.partials_every,
        owned: BTreeMap::new(),
        switches,
        chunk_failures: crate::telemetry::Occasional::new(std::time::Duration::from_secs(60)),
    };
    tokio::spawn(
        writer
            .run(shutdown)
            .instrument(tracing::info_span!("partials_writer")),
    );
    Ok(())
}
