//! Owns claiming partitions: the record a new owner produces to the partials topic from
//! the consumer's rebalance callback, whose offset becomes its epoch.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{header_key, PARTITION};
use crate::config::KafkaSettings;
use crate::engine::partial::{PartialHeader, PARTIAL_VERSION};
use crate::engine::Engine;
use crate::ingest::AssignmentHook;
use crate::kafka::{block_on, instance_id, internal_client_config};

/// Claims partitions in the partials topic from the consumer's rebalance callback (the
/// [`AssignmentHook`] of ingestion), so that a new owner's claim always follows, in the
/// topic, every claim of the partition's former owners.
pub struct PartitionClaimer {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    id: String,
}

impl std::fmt::Debug for PartitionClaimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionClaimer")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PartitionClaimer {
    pub fn new(settings: &KafkaSettings) -> Result<PartitionClaimer, rdkafka::error::KafkaError> {
        Ok(PartitionClaimer {
            producer: internal_client_config(settings)
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
            v: PARTIAL_VERSION,
            owner: self.id.clone(),
            rebuilding: Some(0.0),
            published_at: jiff::Timestamp::now().as_millisecond(),
            ..PartialHeader::default()
        };
        let payload = serde_json::to_vec(&header).ok()?;
        let key = header_key(&self.source_topic, partition);
        let record = FutureRecord::to(&self.topic)
            .partition(PARTITION)
            .key(&key)
            .payload(&payload);
        match block_on(self.producer.send(record, Duration::from_secs(10))) {
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

impl AssignmentHook for PartitionClaimer {
    fn assigned(&self, partition: i32, engine: &Engine) {
        // The partials writer claims it later if this fails.
        if let Some(epoch) = self.claim(partition) {
            engine.set_partial_epoch(epoch);
        }
    }
}

/// An epoch is the offset of an earlier claim: one beyond the record's own offset is
/// forged or corrupt, and would fence every real owner for good.
pub(super) fn epoch_before(epoch: i64, offset: i64) -> Result<(), String> {
    if epoch <= offset {
        Ok(())
    } else {
        Err(format!(
            "epoch {epoch} is after the record's own offset {offset}: not a claim's offset"
        ))
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
}
