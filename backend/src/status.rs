//! Owns what this instance knows of itself: rebuild progress per partition, readiness,
//! staleness (broker unreachable) and the consumer's and scale-out's counters. Written by
//! ingestion and scale-out, read by the API, the publisher, alerting and logs.
//!
//! Scale-out: with partials on, it also holds what the other instances' partials say
//! of the partitions this one does not consume ([`ClusterView`]); readiness then means
//! "every partition of the topic is live here or in a live owner's partial".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use vigie_proto::PartitionsReport;

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
    pub(crate) fn is_rebuilt(&self) -> bool {
        self.position >= self.target
    }

    /// Share of this partition's replay done, 0..=1.
    pub(crate) fn fraction(&self) -> f64 {
        let total = (self.target - self.start).max(0);
        if total == 0 {
            return 1.0;
        }
        (self.position - self.start).clamp(0, total) as f64 / total as f64
    }
}

/// Shared, lock-light status of this instance.
#[derive(Debug, Default)]
pub struct InstanceStatus {
    partitions: Mutex<BTreeMap<i32, PartitionProgress>>,
    /// Consumer lag per partition (records behind the high watermark), from librdkafka statistics.
    lag: Mutex<BTreeMap<i32, i64>>,
    broker_down: AtomicBool,
    pub consumed: AtomicU64,
    pub applied: AtomicU64,
    pub decode_errors: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Events taken by `POST /api/v1/events` and produced, and records refused there.
    pub ingested_http: AtomicU64,
    pub refused_http: AtomicU64,
    /// Rounds of autopilot evaluation done here, and switches it turned on or off.
    pub autopilot_evaluations: AtomicU64,
    pub autopilot_flips: AtomicU64,
    /// Refused records that could not be written to the dead-letter topic either.
    pub dead_letter_failures: AtomicU64,
    /// Scale-out: partials published and applied.
    pub scaleout: ScaleoutStats,
    /// Scale-out only: the merged view's coverage.
    cluster: Mutex<Option<ClusterView>>,
    consumer_started: AtomicBool,
    partials_caught_up: AtomicBool,
}

/// Counters of the scale-out partials (exported as metrics).
#[derive(Debug, Default)]
pub struct ScaleoutStats {
    pub published: AtomicU64,
    pub published_bytes: AtomicU64,
    pub publish_failures: AtomicU64,
    pub applied: AtomicU64,
    /// Records of a former owner (older epoch), ignored.
    pub fenced: AtomicU64,
    pub unreadable: AtomicU64,
    /// Times the partials topic started over (recreated), every replica forgotten.
    pub resets: AtomicU64,
}

/// What the partials say of every partition (scale-out).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClusterView {
    /// This instance's id (its own former partials do not count once it lost a partition).
    pub instance_id: String,
    /// Partitions of the topic; 0 until known.
    pub partitions: usize,
    /// The latest owner's header per partition.
    pub remote: BTreeMap<i32, RemotePartition>,
}

/// A partition as its owner last published it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RemotePartition {
    pub owner: String,
    /// Rebuild progress (0..1) while rebuilding, `None` once live.
    pub rebuilding: Option<f64>,
    /// When its owner published its header (epoch ms, the owner's clock): an owner
    /// republishes it at least every 10 s (scale-out's keepalive); silent for
    /// [`OWNER_SILENT`], it is taken as gone. (From the publication, not the reading: an
    /// instance reading the topic from its start must not take old headers as news.)
    pub published_at_ms: i64,
}

/// A partition whose owner published nothing for this long counts as missing.
pub(crate) const OWNER_SILENT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where one partition of the merged view stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Coverage {
    Live,
    Rebuilding(f64),
    Missing,
}

/// The rebuild target of a partition whose high watermark could not be fetched at
/// assignment: it counts as rebuilding until the consumer statistics report its high
/// watermark ([`InstanceStatus::learn_target`]), never as rebuilt at once.
pub(crate) const UNKNOWN_TARGET: i64 = i64::MAX;

impl InstanceStatus {
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

    /// Sets an [`UNKNOWN_TARGET`] from the high watermark the consumer statistics report
    /// (negative: not known yet); a known target never changes. A watermark below what
    /// was already consumed is a stale report (from an earlier assignment): ignored.
    pub(crate) fn learn_target(&self, partition: i32, high_watermark: i64) {
        if let Some(p) = self.partitions.lock().get_mut(&partition) {
            if p.target == UNKNOWN_TARGET && high_watermark >= 0 && high_watermark >= p.position {
                p.target = high_watermark;
            }
        }
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

    /// Turns on the merged view's coverage (scale-out).
    pub(crate) fn enable_cluster(&self, instance_id: &str) {
        *self.cluster.lock() = Some(ClusterView {
            instance_id: instance_id.to_string(),
            ..ClusterView::default()
        });
    }

    /// Changes the merged view's coverage (no-op when scale-out is off).
    pub(crate) fn update_cluster(&self, change: impl FnOnce(&mut ClusterView)) {
        if let Some(cluster) = self.cluster.lock().as_mut() {
            change(cluster);
        }
    }

    /// Coverage of every partition of the topic, `None` without scale-out.
    fn coverage(&self) -> Option<Vec<(i32, Coverage)>> {
        let cluster = self.cluster.lock().clone()?;
        if cluster.partitions == 0 {
            // The topic's partition count is not known yet: the partitions held here may
            // be all of it or a twelfth, so nothing can be called whole.
            return Some(Vec::new());
        }
        let local = self.partitions.lock().clone();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let silent_ms = OWNER_SILENT.as_millis() as i64;
        let n = i32::try_from(cluster.partitions).unwrap_or(i32::MAX);
        let mut ids: std::collections::BTreeSet<i32> = (0..n).collect();
        ids.extend(local.keys());
        Some(
            ids.into_iter()
                .map(|p| {
                    let state = match (local.get(&p), cluster.remote.get(&p)) {
                        (Some(l), _) if l.is_rebuilt() => Coverage::Live,
                        (Some(l), _) => Coverage::Rebuilding(l.fraction()),
                        (None, Some(r))
                            if r.owner == cluster.instance_id
                                || now_ms - r.published_at_ms > silent_ms =>
                        {
                            Coverage::Missing
                        }
                        (None, Some(r)) => {
                            r.rebuilding.map_or(Coverage::Live, Coverage::Rebuilding)
                        }
                        (None, None) => Coverage::Missing,
                    };
                    (p, state)
                })
                .collect(),
        )
    }

    /// Scale-out: which partitions the merged view holds live; `None` without scale-out.
    pub(crate) fn partitions_report(&self) -> Option<PartitionsReport> {
        let coverage = self.coverage()?;
        let mut report = PartitionsReport {
            total: coverage.len(),
            ..PartitionsReport::default()
        };
        for (p, c) in coverage {
            match c {
                Coverage::Live => report.live += 1,
                Coverage::Rebuilding(_) => report.rebuilding.push(p),
                Coverage::Missing => report.missing.push(p),
            }
        }
        Some(report)
    }

    /// Share of the replay done, 0..=1, over all partitions; `None` once every partition
    /// is live. Scale-out: the mean over the topic's partitions (a missing one counts 0).
    pub fn rebuild_progress(&self) -> Option<f64> {
        if let Some(coverage) = self.coverage() {
            if coverage.iter().all(|(_, c)| *c == Coverage::Live) && !coverage.is_empty() {
                return None;
            }
            let done: f64 = coverage
                .iter()
                .map(|(_, c)| match c {
                    Coverage::Live => 1.0,
                    Coverage::Rebuilding(f) => *f,
                    Coverage::Missing => 0.0,
                })
                .sum();
            return Some(if coverage.is_empty() {
                0.0
            } else {
                done / coverage.len() as f64
            });
        }
        let partitions = self.partitions.lock();
        if partitions.values().all(PartitionProgress::is_rebuilt) {
            return None;
        }
        // A partition of unknown target counts as 0 done of 1, not as i64::MAX records
        // to go, which would read 0 % whatever the other partitions did.
        let (done, total) = partitions.values().fold((0i64, 0i64), |(d, t), p| {
            if p.target == UNKNOWN_TARGET {
                return (d, t + 1);
            }
            let total = (p.target - p.start).max(0);
            (d + (p.position - p.start).clamp(0, total), t + total)
        });
        Some(if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        })
    }

    /// The view is whole and live: partitions assigned and all rebuilt. Scale-out: every
    /// partition of the topic is live, here or in its owner's partial.
    pub fn is_whole(&self) -> bool {
        if let Some(coverage) = self.coverage() {
            return !coverage.is_empty() && coverage.iter().all(|(_, c)| *c == Coverage::Live);
        }
        let partitions = self.partitions.lock();
        !partitions.is_empty() && partitions.values().all(PartitionProgress::is_rebuilt)
    }

    /// This instance can serve a cockpit (its readiness): the partitions it consumes are
    /// rebuilt and, with scale-out, it has read every instance's partials once and knows
    /// the topic's partition count. A view missing another instance's partitions (one
    /// restarting in a rolling update) is still served, and says so (`whole` false, the
    /// badge "partial"): otherwise every replica would refuse traffic at once.
    pub fn can_serve(&self) -> bool {
        let local_rebuilt = {
            let partitions = self.partitions.lock();
            partitions.values().all(PartitionProgress::is_rebuilt)
                && (!partitions.is_empty() || self.cluster.lock().is_some())
        };
        let cluster_known = match self.cluster.lock().as_ref() {
            None => true,
            Some(c) => c.partitions > 0 && self.partials_caught_up.load(Ordering::Relaxed),
        };
        local_rebuilt && cluster_known
    }

    /// Member of its consumer group, holding no partition (a single instance): waiting
    /// for the group to give it its partitions (just restarted, or more instances than
    /// partitions), with nothing to show.
    pub fn waiting_for_partitions(&self) -> bool {
        self.consumer_started.load(Ordering::Relaxed)
            && self.cluster.lock().is_none()
            && self.partitions.lock().is_empty()
    }

    /// The consumer has joined (or is joining) its group.
    pub(crate) fn set_consumer_started(&self) {
        self.consumer_started.store(true, Ordering::Relaxed);
    }

    /// Scale-out: the partials topic has been read up to where it was at start.
    pub(crate) fn set_partials_caught_up(&self) {
        self.partials_caught_up.store(true, Ordering::Relaxed);
    }

    /// Partitions not live in the view: scale-out, those of the topic rebuilding or
    /// missing; else those consumed here still rebuilding, or 1 while waiting for any.
    pub fn partitions_not_live(&self) -> usize {
        if let Some(report) = self.partitions_report() {
            return report
                .total
                .saturating_sub(report.live)
                .max(usize::from(report.total == 0));
        }
        if self.waiting_for_partitions() {
            return 1;
        }
        self.partitions
            .lock()
            .values()
            .filter(|p| !p.is_rebuilt())
            .count()
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
        let s = InstanceStatus::default();
        assert!(!s.is_whole(), "nothing assigned yet");
        s.track(0, 100, 200);
        s.track(1, 0, 0);
        assert_eq!(s.rebuild_progress(), Some(0.0));
        s.advance(0, 149);
        assert_eq!(s.rebuild_progress(), Some(0.5));
        assert!(!s.is_whole());
        s.advance(0, 199);
        assert_eq!(s.rebuild_progress(), None);
        assert!(s.is_whole());
        s.untrack(0);
        assert!(s.is_whole());
    }

    #[test]
    fn an_unknown_target_is_rebuilding_until_the_statistics_give_it() {
        let s = InstanceStatus::default();
        s.track(0, 10, UNKNOWN_TARGET);
        s.advance(0, 59);
        assert!(!s.is_whole(), "never rebuilt without a target");
        s.track(1, 0, 100);
        s.advance(1, 49);
        assert_eq!(
            s.rebuild_progress(),
            Some(50.0 / 101.0),
            "the other partitions' progress reads as it is, the unknown one 0 of 1"
        );
        s.untrack(1);
        s.learn_target(0, -1001);
        assert!(!s.is_whole(), "librdkafka's 'not known yet' is no target");
        s.learn_target(0, 30);
        assert!(!s.is_whole(), "a watermark below the position is stale");
        s.learn_target(0, 80);
        assert_eq!(s.rebuild_progress(), Some(50.0 / 70.0));
        s.advance(0, 79);
        assert!(s.is_whole());
        s.learn_target(0, 500);
        assert!(s.is_whole(), "a known target stays");
    }

    #[test]
    fn an_instance_serves_once_its_own_partitions_are_rebuilt_whole_or_not() {
        let s = InstanceStatus::default();
        s.set_consumer_started();
        assert!(
            s.waiting_for_partitions() && !s.can_serve(),
            "nothing to show yet"
        );
        assert_eq!(s.partitions_not_live(), 1);
        s.track(0, 0, 10);
        assert!(!s.waiting_for_partitions() && !s.can_serve());
        s.advance(0, 9);
        assert!(s.can_serve() && s.is_whole());
        assert_eq!(s.partitions_not_live(), 0);
        // Scale-out: served once the partials are read, though another's partition is missing.
        let c = InstanceStatus::default();
        c.set_consumer_started();
        c.enable_cluster("me");
        c.update_cluster(|v| v.partitions = 2);
        c.track(0, 0, 0);
        assert!(!c.can_serve(), "the others' partials not read yet");
        c.set_partials_caught_up();
        assert!(c.can_serve() && !c.is_whole());
        assert!(
            !c.waiting_for_partitions(),
            "scale-out shows the others' partitions"
        );
        assert_eq!(c.partitions_not_live(), 1, "partition 1 is missing");
    }

    #[test]
    fn scale_out_readiness_needs_every_partition_live_somewhere() {
        let s = InstanceStatus::default();
        s.enable_cluster("me");
        assert!(!s.is_whole(), "partition count unknown");
        s.track(0, 0, 10);
        s.advance(0, 9);
        assert!(
            !s.is_whole(),
            "one partition live here, but the topic's partition count is not known yet"
        );
        s.update_cluster(|c| c.partitions = 3);
        let remote = |owner: &str, rebuilding| RemotePartition {
            owner: owner.into(),
            rebuilding,
            published_at_ms: jiff::Timestamp::now().as_millisecond(),
        };
        s.update_cluster(|c| {
            c.remote.insert(1, remote("b", Some(0.5)));
        });
        let r = s.partitions_report().expect("scale-out");
        assert_eq!(
            (r.total, r.live, r.rebuilding, r.missing),
            (3, 1, vec![1], vec![2])
        );
        assert_eq!(s.rebuild_progress(), Some(0.5));
        assert!(!s.is_whole());
        s.update_cluster(|c| {
            c.remote.insert(1, remote("b", None));
            c.remote.insert(2, remote("me", None));
        });
        assert!(
            !s.is_whole(),
            "our own former partial of a partition we lost is not an owner"
        );
        s.update_cluster(|c| {
            c.remote.insert(2, remote("c", None));
        });
        assert!(s.is_whole());
        assert_eq!(s.rebuild_progress(), None);
        s.update_cluster(|c| {
            if let Some(r) = c.remote.get_mut(&2) {
                r.published_at_ms -= 2 * OWNER_SILENT.as_millis() as i64;
            }
        });
        assert!(!s.is_whole(), "an owner silent for too long is gone");
        assert_eq!(s.partitions_report().map(|r| r.missing), Some(vec![2]));
    }
}
