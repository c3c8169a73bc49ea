//! Owns each customer's recent arrivals, which classify a contact as a repeat
//! (réitération) or a cross-channel repeat within the repeat horizon H.
//!
//! Arrivals are ordered by (event time, interaction id hash). An arrival reported
//! late (within the allowed lateness) becomes the predecessor of the arrival just
//! after it, which is then re-classified; so the history keeps every arrival that
//! can still gain a predecessor (those within the allowed lateness of the
//! watermark) plus the newest older one, usually a single entry per customer.

use smallvec::SmallVec;

use super::interaction::RepeatClass;
use super::symbols::Sym;

/// One past arrival of a customer. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PastArrival {
    pub ts: i64,
    pub interaction: u64,
    pub channel: Sym,
}

impl PastArrival {
    fn order(&self) -> (i64, u64) {
        (self.ts, self.interaction)
    }
}

/// A customer's arrivals, sorted by (ts, interaction).
#[derive(Clone, Debug, Default)]
pub struct CustomerHistory(SmallVec<[PastArrival; 1]>);

/// Classification of an arrival from its predecessor.
pub fn classify(pred: Option<&PastArrival>, ts: i64, channel: Sym, horizon_ms: i64) -> RepeatClass {
    match pred {
        Some(p) if ts - p.ts <= horizon_ms => RepeatClass {
            repeat: true,
            cross_channel: p.channel != channel,
        },
        _ => RepeatClass::default(),
    }
}

impl CustomerHistory {
    /// Inserts an arrival; returns its classification and, when an arrival already
    /// known comes just after it, that arrival's interaction and new classification.
    /// Drops arrivals older than `settled_before` that can no longer matter.
    pub fn insert(
        &mut self,
        arrival: PastArrival,
        horizon_ms: i64,
        settled_before: i64,
    ) -> (RepeatClass, Option<(u64, RepeatClass)>) {
        let pos = self.0.partition_point(|a| a.order() < arrival.order());
        let class = classify(
            pos.checked_sub(1).map(|i| &self.0[i]),
            arrival.ts,
            arrival.channel,
            horizon_ms,
        );
        let successor = self.0.get(pos).map(|next| {
            (
                next.interaction,
                classify(Some(&arrival), next.ts, next.channel, horizon_ms),
            )
        });
        self.0.insert(pos, arrival);
        self.prune(settled_before);
        (class, successor)
    }

    /// Keeps arrivals at or after `settled_before`, and the newest one before it.
    fn prune(&mut self, settled_before: i64) {
        let old = self.0.partition_point(|a| a.ts < settled_before);
        if old > 1 {
            self.0.drain(..old - 1);
        }
    }

    pub fn newest_ts(&self) -> i64 {
        self.0.last().map_or(i64::MIN, |a| a.ts)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 7 * 86_400_000;

    fn at(ts: i64, interaction: u64, channel: Sym) -> PastArrival {
        PastArrival {
            ts,
            interaction,
            channel,
        }
    }

    #[test]
    fn a_second_contact_within_the_horizon_is_a_repeat() {
        let mut h = CustomerHistory::default();
        assert_eq!(h.insert(at(0, 1, 1), H, 0).0, RepeatClass::default());
        let (class, succ) = h.insert(at(1_000, 2, 2), H, 0);
        assert_eq!(
            class,
            RepeatClass {
                repeat: true,
                cross_channel: true
            }
        );
        assert_eq!(succ, None);
        let (class, _) = h.insert(at(1_000 + H + 1, 3, 2), H, 0);
        assert!(!class.repeat, "beyond the horizon");
    }

    #[test]
    fn a_late_earlier_arrival_reclassifies_its_successor() {
        let mut h = CustomerHistory::default();
        h.insert(at(10_000, 2, 1), H, 0);
        let (class, succ) = h.insert(at(5_000, 1, 2), H, 0);
        assert!(!class.repeat);
        assert_eq!(
            succ,
            Some((
                2,
                RepeatClass {
                    repeat: true,
                    cross_channel: true
                }
            ))
        );
    }

    #[test]
    fn settled_arrivals_shrink_to_the_newest_one() {
        let mut h = CustomerHistory::default();
        for i in 0..5 {
            h.insert(at(i * 1_000, i as u64, 1), H, 0);
        }
        h.insert(at(10_000, 9, 1), H, 9_000);
        assert_eq!(h.len(), 2);
        assert_eq!(h.newest_ts(), 10_000);
    }
}
