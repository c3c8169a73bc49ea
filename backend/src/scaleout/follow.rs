//! Owns reading the partials topic: every instance's chunks and headers applied to the
//! [`EngineSet`]'s replicas (highest epoch only), the topic's partition count (readiness
//! needs it), and the records of the [`Piggyback`]s.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use super::claim::epoch_before;
use super::Piggyback;
use crate::engine::partial::{PartialChunk, PartialError, PartialHeader, WireBaselineHour};
use crate::engine::EngineSet;
use crate::status::{InstanceStatus, RemotePartition};

/// Applies every instance's partials to the replicas, keeps the partition count, and
/// hands the records it does not own to the [`Piggyback`]s.
pub(super) struct PartialsReader {
    pub(super) source_topic: String,
    pub(super) partials_topic: String,
    pub(super) engines: Arc<EngineSet>,
    pub(super) status: Arc<InstanceStatus>,
    /// Other records of the topic (the shared alert state).
    pub(super) piggybacks: Vec<Arc<dyn Piggyback>>,
}

/// What a partials key names.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Header(i32),
    Chunk(i32, i64),
    /// One hour of a partition's baseline.
    Baseline(i32, i64),
}

/// Parses `<topic>/<partition>[/<start>]` for `topic` (other topics' partials: `None`).
fn parse_key(key: &str, topic: &str) -> Option<Key> {
    let rest = key.strip_prefix(topic)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let partition = parts.next()?.parse().ok()?;
    let key = match parts.next() {
        None => Key::Header(partition),
        Some(hour) if hour.starts_with('b') => Key::Baseline(partition, hour[1..].parse().ok()?),
        Some(start) => Key::Chunk(partition, start.parse().ok()?),
    };
    parts.next().is_none().then_some(key)
}

impl PartialsReader {
    pub(super) async fn run(self, consumer: Arc<StreamConsumer>, shutdown: CancellationToken) {
        // The partition count decides readiness: asked for often until known, then every 5 s.
        let mut metadata = tokio::time::interval(Duration::from_millis(250));
        let mut refreshed: Option<Instant> = None;
        // Where the topic ended at start: read up to it, this instance knows every
        // other's partials and may serve (its readiness).
        let mut end = None;
        let mut last_offset: Option<i64> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = metadata.tick() => {
                    let due = refreshed.is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
                    if due && self.refresh_partition_count(&consumer).await {
                        refreshed = Some(Instant::now());
                    }
                    if end.is_none() {
                        end = self.topic_end(&consumer).await;
                        if end == Some(0) {
                            self.status.set_partials_caught_up();
                        }
                    }
                }
                message = consumer.recv() => match message {
                    Ok(message) => {
                        if started_over(&mut last_offset, message.offset()) {
                            self.reset(message.offset());
                        }
                        self.apply(&message);
                        // After applying: "read up to a claim" implies its state is known.
                        for piggyback in &self.piggybacks {
                            piggyback.read_up_to(message.offset());
                        }
                        if end.is_some_and(|end| message.offset() + 1 >= end) {
                            self.status.set_partials_caught_up();
                        }
                    }
                    Err(error) => tracing::warn!(%error, "partials follower error"),
                },
            }
        }
    }

    /// The topic went back to an earlier offset: it was recreated, every epoch known is
    /// from the former one.
    fn reset(&self, offset: i64) {
        tracing::warn!(offset, topic = %self.partials_topic, "the partials topic started over (recreated?): every replica and claim forgotten, partitions claimed again");
        self.engines.reset_partials();
        self.status.update_cluster(|c| c.remote.clear());
        for piggyback in &self.piggybacks {
            piggyback.reset();
        }
        self.status
            .scaleout
            .resets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The partials topic's high watermark, if it can be read now.
    async fn topic_end(&self, consumer: &Arc<StreamConsumer>) -> Option<i64> {
        let consumer = consumer.clone();
        let topic = self.partials_topic.clone();
        tokio::task::spawn_blocking(move || {
            consumer
                .fetch_watermarks(&topic, super::PARTITION, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| high)
        })
        .await
        .ok()
        .flatten()
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
        if let Some(key) = key {
            let taken = self
                .piggybacks
                .iter()
                .any(|p| p.accept(key, message.payload(), message.offset()));
            if taken {
                return;
            }
        }
        let Some(key) = key.and_then(|k| parse_key(k, &self.source_topic)) else {
            return;
        };
        let retention = self.engines.config().retention_ms();
        let baseline_keep = self.engines.config().baseline_keep_ms();
        let result = match (key, message.payload()) {
            // A tombstone carries no epoch to fence: owners publish an empty chunk
            // instead, and a tombstone (compaction's, or a former version's) is ignored.
            (Key::Chunk(..), None) => return,
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
            (Key::Baseline(..), None) => return,
            (Key::Baseline(partition, _), Some(payload)) => {
                serde_json::from_slice::<WireBaselineHour>(payload)
                    .map_err(|e| e.to_string())
                    .and_then(|hour| epoch_before(hour.epoch, message.offset()).map(|()| hour))
                    .and_then(|hour| {
                        self.engines
                            .update_replica(partition, |r, symbols| {
                                r.apply_baseline_hour(&hour, symbols)
                            })
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
                            published_at_ms: header.published_at,
                        };
                        let watermark = header.watermark;
                        let applied = self
                            .engines
                            .update_replica(partition, |r, symbols| {
                                let applied = r.apply_header(header, epoch, symbols)?;
                                if let Some(w) = watermark.filter(|_| applied) {
                                    r.evict_before(w - retention, w - baseline_keep);
                                }
                                Ok::<_, PartialError>(applied)
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
                self.status.scaleout.applied.fetch_add(1, Relaxed);
            }
            Ok(false) => {
                self.status.scaleout.fenced.fetch_add(1, Relaxed);
            }
            Err(error) => {
                self.status.scaleout.unreadable.fetch_add(1, Relaxed);
                tracing::warn!(%error, offset = message.offset(), "unreadable partial skipped");
            }
        }
    }
}

/// Whether `offset`, read after `last`, shows the topic started over (deleted and
/// created again: offsets only grow in one topic's life); remembers it as the last.
fn started_over(last: &mut Option<i64>, offset: i64) -> bool {
    let back = last.is_some_and(|last| offset <= last);
    *last = Some(offset);
    back
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_going_back_means_the_topic_started_over() {
        let mut last = None;
        assert!(!started_over(&mut last, 5), "the first record read");
        assert!(!started_over(&mut last, 6));
        assert!(
            !started_over(&mut last, 40),
            "a gap (compaction) is no restart"
        );
        assert!(started_over(&mut last, 0), "back to the start");
        assert!(!started_over(&mut last, 1), "then on from there");
        assert!(started_over(&mut last, 1), "the same offset twice");
    }

    #[test]
    fn keys_name_the_source_topic_partition_and_chunk() {
        assert_eq!(parse_key("t.x/3", "t.x"), Some(Key::Header(3)));
        assert_eq!(
            parse_key("t.x/3/1700000010000", "t.x"),
            Some(Key::Chunk(3, 1_700_000_010_000))
        );
        assert_eq!(
            parse_key(
                &super::super::baseline_key("t.x", 3, 1_699_999_200_000),
                "t.x"
            ),
            Some(Key::Baseline(3, 1_699_999_200_000))
        );
        assert_eq!(parse_key("t.x/3/bx", "t.x"), None);
        assert_eq!(parse_key("t.xy/3", "t.x"), None, "another topic");
        assert_eq!(parse_key("t.x/a", "t.x"), None);
        assert_eq!(parse_key("t.x/1/2/3", "t.x"), None);
        assert_eq!(
            parse_key(&super::super::chunk_key("t.x", 4, 10_000), "t.x"),
            Some(Key::Chunk(4, 10_000))
        );
        assert_eq!(
            parse_key(&super::super::header_key("t.x", 4), "t.x"),
            Some(Key::Header(4))
        );
    }
}
