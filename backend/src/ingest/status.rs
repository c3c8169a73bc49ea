//! Owns what the consumer reports about itself: rebuild progress per partition,
//! readiness, staleness (broker unreachable) and counters. Read by the API and logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Replay progress of one assigned partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionProgress {
    /// First offset replayed (from offsets-for-times).
    pub start: i64,
    /// High watermark when the partition was assigned: rebuilt once consumed up to it.
    pub target: i64,
    /// Next offset to consume.
    pub position: i64,
}

impl PartitionProgress {
    pub fn is_rebuilt(&self) -> bool {
        self.position >= self.target
    }
}

/// Shared, lock-light status of the ingest task.
#[derive(Debug, Default)]
pub struct IngestStatus {
    partitions: Mutex<BTreeMap<i32, PartitionProgress>>,
    /// Consumer lag per partition (records behind the high watermark), from librdkafka statistics.
    lag: Mutex<BTreeMap<i32, i64>>,
    broker_down: AtomicBool,
    pub consumed: AtomicU64,
    pub applied: AtomicU64,
    pub decode_errors: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Refused records that could not be written to the dead-letter topic either.
    pub dead_letter_failures: AtomicU64,
}

impl IngestStatus {
    pub fn track(&self, partition: i32, start: i64, target: i64) {
        self.partitions.lock().insert(
            partition,
            PartitionProgress {
                start,
                target,
                position: start,
            },
        );
    }

    pub fn untrack(&self, partition: i32) {
        self.partitions.lock().remove(&partition);
        self.lag.lock().remove(&partition);
    }

    pub fn set_lag(&self, partition: i32, lag: i64) {
        if self.partitions.lock().contains_key(&partition) {
            self.lag.lock().insert(partition, lag);
        }
    }

    /// Consumer lag per assigned partition, as last reported.
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lag.lock().clone()
    }

    /// Records that `offset` of `partition` was consumed.
    pub fn advance(&self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.lock().get_mut(&partition) {
            p.position = p.position.max(offset + 1);
        }
    }

    pub fn partitions(&self) -> BTreeMap<i32, PartitionProgress> {
        self.partitions.lock().clone()
    }

    /// Share of the replay done, 0..=1, over all partitions; `None` once every partition is live.
    pub fn rebuild_progress(&self) -> Option<f64> {
        let partitions = self.partitions.lock();
        if partitions.values().all(PartitionProgress::is_rebuilt) {
            return None;
        }
        let (done, total) = partitions.values().fold((0i64, 0i64), |(d, t), p| {
            let total = (p.target - p.start).max(0);
            (d + (p.position - p.start).clamp(0, total), t + total)
        });
        Some(if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        })
    }

    /// Serving live: partitions assigned and all rebuilt.
    pub fn is_ready(&self) -> bool {
        let partitions = self.partitions.lock();
        !partitions.is_empty() && partitions.values().all(PartitionProgress::is_rebuilt)
    }

    pub fn set_broker_down(&self, down: bool) {
        self.broker_down.store(down, Ordering::Relaxed);
    }

    /// The broker was unreachable at last contact: numbers shown are the last known.
    pub fn is_stale(&self) -> bool {
        self.broker_down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_readiness_follow_the_consumed_offsets() {
        let s = IngestStatus::default();
        assert!(!s.is_ready(), "nothing assigned yet");
        s.track(0, 100, 200);
        s.track(1, 0, 0);
        assert_eq!(s.rebuild_progress(), Some(0.0));
        s.advance(0, 149);
        assert_eq!(s.rebuild_progress(), Some(0.5));
        assert!(!s.is_ready());
        s.advance(0, 199);
        assert_eq!(s.rebuild_progress(), None);
        assert!(s.is_ready());
        s.untrack(0);
        assert!(s.is_ready());
    }
}
