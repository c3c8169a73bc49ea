//! Owns each customer's recent arrivals, which classify a contact as a repeat
//! (réitération) or a cross-channel repeat within the repeat horizon H.
//!
//! Arrivals are ordered by (event time, interaction id hash). An arrival reported
//! late (within the allowed lateness) becomes the predecessor of the arrival just
//! after it, which is then re-classified; so the history keeps every arrival that
//! can still gain a predecessor (those within the allowed lateness of the
//! watermark) plus the newest older one (settled: time and channel only), so a
//! customer costs 24 bytes plus its map slot once its arrivals have settled.

use smallvec::SmallVec;

use super::interaction::RepeatClass;
use super::symbols::Sym;

/// One recent arrival of a customer. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PastArrival {
    pub ts: i64,
    pub interaction: u64,
    pub channel: Sym,
}

impl PastArrival {
    fn order(&self) -> (i64, u64) {
        (self.ts, self.interaction)
    }
}

/// A customer's arrivals: the newest settled one, and those that may still gain a
/// predecessor. 24 bytes inline; the recent list is allocated only while needed.
#[derive(Clone, Debug)]
pub(crate) struct CustomerHistory {
    /// Event time of the newest settled arrival (`i64::MIN`: none).
    settled_ts: i64,
    settled_channel: Sym,
    /// Arrivals at or after the settle point, sorted by (ts, interaction).
    recent: Option<Box<SmallVec<[PastArrival; 2]>>>,
}

impl Default for CustomerHistory {
    fn default() -> Self {
        CustomerHistory {
            settled_ts: i64::MIN,
            settled_channel: 0,
            recent: None,
        }
    }
}

/// Classification of an arrival from its predecessor's (time, channel).
pub(crate) fn classify(
    pred: Option<(i64, Sym)>,
    ts: i64,
    channel: Sym,
    horizon_ms: i64,
) -> RepeatClass {
    match pred {
        Some((pred_ts, pred_channel)) if ts - pred_ts <= horizon_ms => RepeatClass {
            repeat: true,
            cross_channel: pred_channel != channel,
        },
        _ => RepeatClass::default(),
    }
}

impl CustomerHistory {
    /// Inserts an arrival (not older than `settled_before`); returns its classification
    /// and, when an arrival already known comes just after it, that arrival's
    /// interaction and new classification.
    pub fn insert(
        &mut self,
        arrival: PastArrival,
        horizon_ms: i64,
        settled_before: i64,
    ) -> (RepeatClass, Option<(u64, RepeatClass)>) {
        self.settle(settled_before);
        let settled =
            (self.settled_ts != i64::MIN).then_some((self.settled_ts, self.settled_channel));
        let recent = self.recent.get_or_insert_with(Box::default);
        let pos = recent.partition_point(|a| a.order() < arrival.order());
        let pred = pos
            .checked_sub(1)
            .map(|i| (recent[i].ts, recent[i].channel))
            .or(settled);
        let class = classify(pred, arrival.ts, arrival.channel, horizon_ms);
        let successor = recent.get(pos).map(|next| {
            (
                next.interaction,
                classify(
                    Some((arrival.ts, arrival.channel)),
                    next.ts,
                    next.channel,
                    horizon_ms,
                ),
            )
        });
        recent.insert(pos, arrival);
        (class, successor)
    }

    /// Folds the arrivals older than `settled_before` (they can no longer gain a
    /// predecessor, as any earlier arrival would be late) into the settled one.
    pub(crate) fn settle(&mut self, settled_before: i64) {
        let Some(recent) = self.recent.as_mut() else {
            return;
        };
        let old = recent.partition_point(|a| a.ts < settled_before);
        if old > 0 {
            let newest_old = recent[old - 1];
            self.settled_ts = newest_old.ts;
            self.settled_channel = newest_old.channel;
            recent.drain(..old);
        }
        if recent.is_empty() {
            self.recent = None;
        }
    }

    /// Settles the oldest of the recent arrivals beyond `max` as if the lateness had
    /// passed them; how many. One customer id shared by thousands of contacts within the
    /// lateness (an anonymous placeholder) would otherwise make each arrival sort among
    /// all of them. An arrival reported later still, before those, reads the newest
    /// settled one as its predecessor.
    pub(crate) fn cap_recent(&mut self, max: usize) -> usize {
        let Some(recent) = self.recent.as_mut() else {
            return 0;
        };
        let extra = recent.len().saturating_sub(max.max(1));
        if extra > 0 {
            let newest_old = recent[extra - 1];
            self.settled_ts = self.settled_ts.max(newest_old.ts);
            self.settled_channel = newest_old.channel;
            recent.drain(..extra);
        }
        extra
    }

    /// Event time of the oldest arrival that may still gain a predecessor (`None`: all
    /// settled).
    pub(crate) fn oldest_recent_ts(&self) -> Option<i64> {
        self.recent.as_ref().and_then(|r| r.first()).map(|a| a.ts)
    }

    pub fn newest_ts(&self) -> i64 {
        self.recent
            .as_ref()
            .and_then(|r| r.last())
            .map_or(self.settled_ts, |a| a.ts)
    }

    /// Arrivals held: the settled one (if any) and the recent ones.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        usize::from(self.settled_ts != i64::MIN) + self.recent.as_ref().map_or(0, |r| r.len())
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
        h.settle(20_000);
        assert_eq!(h.len(), 1, "only the settled arrival is left");
        assert!(h.recent.is_none(), "no allocation once settled");
        let (class, succ) = h.insert(at(20_000, 10, 2), H, 20_000);
        assert_eq!(
            class,
            RepeatClass {
                repeat: true,
                cross_channel: true
            },
            "the settled arrival is still a predecessor"
        );
        assert_eq!(succ, None);
    }

    #[test]
    fn one_id_shared_by_many_contacts_keeps_only_its_newest_recent_arrivals() {
        let mut h = CustomerHistory::default();
        for i in 0..50 {
            h.insert(at(i * 1_000, i as u64, 1), H, 0);
            h.cap_recent(10);
        }
        assert_eq!(h.len(), 11, "ten recent and the newest settled");
        assert_eq!(h.settled_ts, 39_000);
        let (class, _) = h.insert(at(60_000, 99, 2), H, 0);
        assert!(
            class.repeat && class.cross_channel,
            "still classified against the newest"
        );
    }
}
