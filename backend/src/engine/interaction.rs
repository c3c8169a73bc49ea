//! Owns the join of one interaction's events and what that interaction contributes
//! to the aggregates ([`Effect`]s placed at an event time under a dimension key).
//!
//! Events of one interaction may come in any order; the contributions are a pure
//! function of the events joined so far, so the engine retracts the old set and
//! applies the new one whenever the join changes.

use smallvec::SmallVec;

use super::aggregate::{Aggregate, WaitQuantizer};
use super::symbols::{DimKey, KeyId, Sym, UNKNOWN};
use crate::event::EventKind;

/// Whether an arrival is a repeat contact of its customer within the horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct RepeatClass {
    /// The customer had an earlier arrival within the repeat horizon.
    pub repeat: bool,
    /// ... and the most recent such arrival was on another channel.
    pub cross_channel: bool,
}

/// Per-channel rules that turn waits into KPIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRules {
    /// Service-level threshold T; `None` = no target, excluded from service level.
    pub sl_threshold_ms: Option<i64>,
    /// Abandons with a wait below this are "short" (0 disables).
    pub short_abandon_ms: i64,
}

/// The `arrived` event of an interaction, which gives it its channel, customer and dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arrival {
    pub ts: i64,
    pub channel: Sym,
    /// queue, reason, segment, site.
    pub dims: [Sym; 4],
    pub customer: Option<u64>,
}

/// A `queued` event, which may refine queue, reason, segment and site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    pub ts: i64,
    pub dims: [Sym; 4],
}

/// What the engine knows of one interaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Interaction {
    pub arrival: Option<Arrival>,
    pub queued: Option<Queued>,
    pub deflected: Option<i64>,
    pub answered: Option<i64>,
    pub abandoned: Option<i64>,
    /// (ts, resolved) of the `ended` event.
    pub ended: Option<(i64, bool)>,
    /// Repeat classification of the arrival (only for arrivals with a customer).
    pub repeat: Option<RepeatClass>,
    /// Newest event time of this interaction, for eviction.
    pub newest_ts: i64,
    /// Interned dimension key (arrival dims refined by `queued`).
    pub key: KeyId,
    /// Hash of the first `event_id` reported for each step (0: none), to spot redeliveries.
    pub event_ids: [u64; 6],
    /// The deflection is in the containment follow-up.
    pub deflection_followed: bool,
    /// Where its arrival's effect was last logged in its chunk (`store::BucketStore::apply_at`).
    pub arrival_logged_at: Option<u32>,
}

/// One contribution to the aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Arrival {
        repeat: Option<RepeatClass>,
    },
    Deflection,
    Answer {
        wait_ms: i64,
        sl_met: Option<bool>,
    },
    Abandon {
        wait_ms: i64,
        short: bool,
        sl_eligible: bool,
    },
    End {
        handle_ms: Option<i64>,
        once_and_done: Option<bool>,
    },
}

/// An effect placed at an event time, under a dimension key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    pub ts: i64,
    pub key: KeyId,
    pub effect: Effect,
}

pub type Effects = SmallVec<[Placed; 5]>;

/// Keeps the earliest of two event times: order-independent when one step is reported twice.
fn earliest<T: Copy + Ord>(slot: &mut Option<T>, value: T) -> bool {
    match slot {
        Some(current) if *current <= value => false,
        _ => {
            *slot = Some(value);
            true
        }
    }
}

impl Interaction {
    /// Remembers `event_id` for this step; `false` if it was already reported (a
    /// redelivery). Another id for the same step is a second report, not a redelivery.
    pub(crate) fn first_report(&mut self, kind: EventKind, event_id: u64) -> bool {
        let slot = &mut self.event_ids[kind as usize];
        if *slot == event_id {
            return false;
        }
        if *slot == 0 {
            *slot = event_id;
        }
        true
    }

    pub fn record_arrival(&mut self, arrival: Arrival) -> bool {
        self.touch(arrival.ts);
        if self.arrival.is_some() {
            return false; // a second `arrived` with another event_id: the first one stands
        }
        self.arrival = Some(arrival);
        true
    }

    pub fn record_queued(&mut self, queued: Queued) {
        self.touch(queued.ts);
        if self.queued.is_none_or(|q| queued.ts < q.ts) {
            self.queued = Some(queued);
        }
    }

    pub fn record_deflected(&mut self, ts: i64) {
        self.touch(ts);
        earliest(&mut self.deflected, ts);
    }

    pub fn record_answered(&mut self, ts: i64) {
        self.touch(ts);
        earliest(&mut self.answered, ts);
    }

    pub fn record_abandoned(&mut self, ts: i64) {
        self.touch(ts);
        earliest(&mut self.abandoned, ts);
    }

    pub fn record_ended(&mut self, ts: i64, resolved: bool) {
        self.touch(ts);
        earliest(&mut self.ended, (ts, resolved));
    }

    fn touch(&mut self, ts: i64) {
        self.newest_ts = self.newest_ts.max(ts);
    }

    /// Dimension key: the arrival's values, each refined by `queued` when it carries one.
    pub(crate) fn dim_key(&self) -> Option<DimKey> {
        let a = self.arrival?;
        let mut dims = a.dims;
        if let Some(q) = self.queued {
            for (d, refined) in dims.iter_mut().zip(q.dims) {
                if refined != UNKNOWN {
                    *d = refined;
                }
            }
        }
        Some(DimKey {
            channel: a.channel,
            queue: dims[0],
            reason: dims[1],
            segment: dims[2],
            site: dims[3],
        })
    }

    /// No further event is expected: deflected, abandoned or ended.
    pub fn is_finished(&self) -> bool {
        self.deflected.is_some() || self.abandoned.is_some() || self.ended.is_some()
    }

    /// Waiting in queue now: queued, and not deflected, answered, abandoned or ended.
    pub(crate) fn is_waiting(&self) -> bool {
        self.arrival.is_some()
            && self.queued.is_some()
            && self.deflected.is_none()
            && self.answered.is_none()
            && self.abandoned.is_none()
            && self.ended.is_none()
    }

    /// Everything this interaction contributes, given the rules of its channel.
    /// Nothing until its arrival is known (no channel, no wait to measure).
    pub fn effects(&self, rules: ChannelRules) -> Effects {
        let mut out = Effects::new();
        let Some(arrival) = self.arrival else {
            return out;
        };
        let key = self.key;
        let mut place = |ts: i64, effect: Effect| out.push(Placed { ts, key, effect });
        place(
            arrival.ts,
            Effect::Arrival {
                repeat: self.repeat,
            },
        );
        if let Some(ts) = self.deflected {
            place(ts, Effect::Deflection);
        }
        if let Some(ts) = self.answered {
            let wait_ms = (ts - arrival.ts).clamp(0, MAX_DURATION_MS);
            place(
                ts,
                Effect::Answer {
                    wait_ms,
                    sl_met: rules.sl_threshold_ms.map(|t| wait_ms <= t),
                },
            );
        } else if let Some(ts) = self.abandoned {
            let wait_ms = (ts - arrival.ts).clamp(0, MAX_DURATION_MS);
            let short = wait_ms < rules.short_abandon_ms;
            place(
                ts,
                Effect::Abandon {
                    wait_ms,
                    short,
                    sl_eligible: !short && rules.sl_threshold_ms.is_some(),
                },
            );
        }
        if let Some((ts, resolved)) = self.ended {
            let once_and_done = arrival
                .customer
                .map(|_| resolved && !self.repeat.is_some_and(|r| r.repeat));
            let handle_ms = self.answered.map(|a| (ts - a).clamp(0, MAX_DURATION_MS));
            // An anonymous contact that ended unanswered counts in no KPI: placing
            // nothing keeps its channel out of windows it has no number in.
            if handle_ms.is_some() || once_and_done.is_some() {
                place(
                    ts,
                    Effect::End {
                        handle_ms,
                        once_and_done,
                    },
                );
            }
        }
        out
    }
}

/// Longest wait or handling time counted, ms (49 days, the wait histogram's cap): a
/// forged timestamp cannot make a sum overflow.
pub(crate) const MAX_DURATION_MS: i64 = u32::MAX as i64;

impl Effect {
    /// Adds (sign = 1) or retracts (sign = -1) this effect in a cell (wrapping, like
    /// [`super::aggregate::Counters::add`]: exact, never a panic).
    pub fn apply(&self, cell: &mut Aggregate, sign: i32, quantizer: &WaitQuantizer) {
        self.apply_counters(&mut cell.counters, sign);
        if let Effect::Answer { wait_ms, .. } = *self {
            cell.waits.add(quantizer.bucket(wait_ms), sign);
        }
    }

    /// The counters' part of [`Effect::apply`] (what a trend needs: no waits).
    pub fn apply_counters(&self, c: &mut super::aggregate::Counters, sign: i32) {
        let count = |a: &mut i32, on: bool| *a = a.wrapping_add(sign * i32::from(on));
        let sum = |a: &mut i64, ms: i64| *a = a.wrapping_add(i64::from(sign).wrapping_mul(ms));
        match *self {
            Effect::Arrival { repeat } => {
                count(&mut c.arrivals, true);
                if let Some(r) = repeat {
                    count(&mut c.repeat_eligible, true);
                    count(&mut c.repeats, r.repeat);
                    count(&mut c.cross_repeats, r.cross_channel);
                }
            }
            Effect::Deflection => count(&mut c.deflected, true),
            Effect::Answer { wait_ms, sl_met } => {
                count(&mut c.answered, true);
                sum(&mut c.wait_sum_ms, wait_ms);
                if let Some(met) = sl_met {
                    count(&mut c.sl_eligible, true);
                    count(&mut c.sl_met, met);
                }
            }
            Effect::Abandon {
                short, sl_eligible, ..
            } => {
                if short {
                    count(&mut c.short_abandoned, true);
                } else {
                    count(&mut c.abandoned, true);
                }
                count(&mut c.sl_eligible, sl_eligible);
            }
            Effect::End {
                handle_ms,
                once_and_done,
            } => {
                if let Some(h) = handle_ms {
                    count(&mut c.handled, true);
                    sum(&mut c.handle_sum_ms, h);
                }
                if let Some(ood) = once_and_done {
                    count(&mut c.ood_eligible, true);
                    count(&mut c.ood_met, ood);
                }
            }
        }
    }
}

/// Removes the effects present in both lists: only real changes reach the aggregates.
pub(crate) fn cancel_common(before: &mut Effects, after: &mut Effects) {
    before.retain(|b| {
        if let Some(i) = after.iter().position(|a| a == b) {
            after.swap_remove(i);
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: ChannelRules = ChannelRules {
        sl_threshold_ms: Some(20_000),
        short_abandon_ms: 5_000,
    };

    fn arrival(ts: i64, customer: Option<u64>) -> Arrival {
        Arrival {
            ts,
            channel: 1,
            dims: [0; 4],
            customer,
        }
    }

    #[test]
    fn nothing_counts_before_the_arrival_is_known() {
        let mut it = Interaction::default();
        it.record_answered(10_000);
        it.record_ended(70_000, true);
        assert!(it.effects(PHONE).is_empty());
        it.record_arrival(arrival(0, Some(7)));
        it.repeat = Some(RepeatClass::default());
        let effects = it.effects(PHONE);
        assert_eq!(effects.len(), 3);
        assert_eq!(
            effects[1].effect,
            Effect::Answer {
                wait_ms: 10_000,
                sl_met: Some(true)
            }
        );
        assert_eq!(
            effects[2].effect,
            Effect::End {
                handle_ms: Some(60_000),
                once_and_done: Some(true)
            }
        );
    }

    #[test]
    fn short_abandons_are_not_service_level_eligible() {
        let mut it = Interaction::default();
        it.record_arrival(arrival(0, None));
        it.record_abandoned(4_999);
        assert_eq!(
            it.effects(PHONE)[1].effect,
            Effect::Abandon {
                wait_ms: 4_999,
                short: true,
                sl_eligible: false
            }
        );
        let mut it = Interaction::default();
        it.record_arrival(arrival(0, None));
        it.record_abandoned(5_000);
        assert_eq!(
            it.effects(PHONE)[1].effect,
            Effect::Abandon {
                wait_ms: 5_000,
                short: false,
                sl_eligible: true
            }
        );
    }

    #[test]
    fn an_anonymous_unanswered_end_places_nothing() {
        let mut it = Interaction::default();
        it.record_arrival(arrival(0, None));
        it.record_ended(1_000, true);
        assert_eq!(it.effects(PHONE).len(), 1, "only the arrival");
    }

    #[test]
    fn a_repeat_contact_is_not_once_and_done() {
        let mut it = Interaction::default();
        it.record_arrival(arrival(0, Some(1)));
        it.repeat = Some(RepeatClass {
            repeat: true,
            cross_channel: false,
        });
        it.record_ended(1_000, true);
        assert_eq!(
            it.effects(PHONE)[1].effect,
            Effect::End {
                handle_ms: None,
                once_and_done: Some(false)
            }
        );
    }

    #[test]
    fn the_earliest_report_of_a_step_wins_whatever_the_order() {
        let mut a = Interaction::default();
        a.record_answered(5);
        a.record_answered(3);
        let mut b = Interaction::default();
        b.record_answered(3);
        b.record_answered(5);
        assert_eq!(a, b);
    }

    #[test]
    fn queued_refines_only_the_dimensions_it_carries() {
        let mut it = Interaction::default();
        it.record_arrival(Arrival {
            ts: 0,
            channel: 1,
            dims: [2, 3, 0, 0],
            customer: None,
        });
        it.record_queued(Queued {
            ts: 1,
            dims: [9, 0, 0, 4],
        });
        let key = it.dim_key().expect("arrived");
        assert_eq!((key.queue, key.reason, key.site), (9, 3, 4));
    }
}
