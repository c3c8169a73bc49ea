//! Mergeable, subtractable KPI aggregates, and the derivation of [`Kpis`] from them.
//!
//! Everything a KPI is derived from is a signed count or sum, so a contribution can be
//! retracted exactly (out-of-order joins re-attribute a contact) and aggregates of
//! several buckets, shards or instances merge by addition.

use hdrhistogram::Histogram;
use smallvec::SmallVec;
use vigie_proto::{EstimatedWait, Kpis};

/// Signed counters of one (time bucket, dimension key) cell: counts in `i32`
/// (a cell never holds 2 billion contacts), sums of milliseconds in `i64`. Additions
/// wrap (a forged or absurd input cannot panic) and stay exact: retracting what was
/// added restores the value bit for bit, and a total whose true value fits is right
/// whatever the order of additions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub arrivals: i32,
    pub deflected: i32,
    pub answered: i32,
    /// Abandons at or above the short-abandon threshold (`B` in the formulas).
    pub abandoned: i32,
    pub short_abandoned: i32,
    /// Sum of the waits of answered contacts, ms.
    pub wait_sum_ms: i64,
    /// Answered within the channel's service-level threshold.
    pub sl_met: i32,
    /// Answered + abandoned (not short) contacts of channels that have a target.
    pub sl_eligible: i32,
    /// Ended contacts that had been answered, and the sum of their handling times.
    pub handled: i32,
    pub handle_sum_ms: i64,
    /// Arrivals carrying a customer id; of those, repeats and cross-channel repeats.
    pub repeat_eligible: i32,
    pub repeats: i32,
    pub cross_repeats: i32,
    /// Ended contacts carrying a customer id; of those, resolved first contacts.
    pub ood_eligible: i32,
    pub ood_met: i32,
}

impl Counters {
    pub fn add(&mut self, other: &Counters, sign: i32) {
        let count = |a: &mut i32, b: i32| *a = a.wrapping_add(sign.wrapping_mul(b));
        let sum = |a: &mut i64, b: i64| *a = a.wrapping_add(i64::from(sign).wrapping_mul(b));
        count(&mut self.arrivals, other.arrivals);
        count(&mut self.deflected, other.deflected);
        count(&mut self.answered, other.answered);
        count(&mut self.abandoned, other.abandoned);
        count(&mut self.short_abandoned, other.short_abandoned);
        sum(&mut self.wait_sum_ms, other.wait_sum_ms);
        count(&mut self.sl_met, other.sl_met);
        count(&mut self.sl_eligible, other.sl_eligible);
        count(&mut self.handled, other.handled);
        sum(&mut self.handle_sum_ms, other.handle_sum_ms);
        count(&mut self.repeat_eligible, other.repeat_eligible);
        count(&mut self.repeats, other.repeats);
        count(&mut self.cross_repeats, other.cross_repeats);
        count(&mut self.ood_eligible, other.ood_eligible);
        count(&mut self.ood_met, other.ood_met);
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// Answered waits as (HdrHistogram bucket, count) pairs, sorted by bucket; up to two
/// pairs inline, as most cells hold a handful of waits.
///
/// Each wait is stored as the lowest value of its HdrHistogram bucket (3 significant
/// digits), so rebuilding a histogram from these pairs gives exactly the percentiles
/// of a histogram that recorded the raw waits, while staying small and subtractable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitCounts(SmallVec<[(u32, i32); 2]>);

impl WaitCounts {
    pub fn add(&mut self, bucket: u32, count: i32) {
        if count == 0 {
            return; // an empty bucket is never kept
        }
        match self.0.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => {
                self.0[i].1 = self.0[i].1.wrapping_add(count);
                if self.0[i].1 == 0 {
                    self.0.remove(i);
                }
            }
            Err(i) => self.0.insert(i, (bucket, count)),
        }
    }

    /// The counts of `pairs`, which may name a bucket several times, in any order.
    pub(crate) fn from_unsorted(pairs: impl Iterator<Item = (u32, i32)>) -> WaitCounts {
        let mut all: SmallVec<[(u32, i32); 2]> = pairs.collect();
        all.sort_unstable_by_key(|&(b, _)| b);
        let mut out: SmallVec<[(u32, i32); 2]> = SmallVec::with_capacity(all.len());
        for (bucket, count) in all {
            match out.last_mut() {
                Some((b, n)) if *b == bucket => *n = n.wrapping_add(count),
                _ => out.push((bucket, count)),
            }
        }
        out.retain(|(_, n)| *n != 0);
        WaitCounts(out)
    }

    pub fn merge(&mut self, other: &WaitCounts, sign: i32) {
        for &(bucket, count) in &other.0 {
            self.add(bucket, sign.wrapping_mul(count));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, i32)> + '_ {
        self.0.iter().copied()
    }
}

/// The cell stored per (time bucket, dimension key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub counters: Counters,
    pub waits: WaitCounts,
}

impl Aggregate {
    pub(crate) fn merge(&mut self, other: &Aggregate, sign: i32) {
        self.counters.add(&other.counters, sign);
        self.waits.merge(&other.waits, sign);
    }

    pub fn is_zero(&self) -> bool {
        self.counters.is_zero() && self.waits.is_empty()
    }
}

/// Maps a wait to its HdrHistogram bucket (lowest equivalent value, 3 significant digits).
#[derive(Debug)]
pub(crate) struct WaitQuantizer(Histogram<u64>);

impl Default for WaitQuantizer {
    fn default() -> Self {
        WaitQuantizer(new_histogram())
    }
}

impl WaitQuantizer {
    /// Waits are capped at `u32::MAX` ms (49 days), far beyond any queue.
    pub(crate) fn bucket(&self, wait_ms: i64) -> u32 {
        let wait = wait_ms.clamp(0, i64::from(u32::MAX)) as u64;
        self.0.lowest_equivalent(wait) as u32
    }
}

/// The histogram configuration of every wait percentile: 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::unwrap_used)] // 3 significant digits is always a valid configuration
    let mut h = Histogram::new(3).unwrap();
    h.auto(true);
    h
}

fn ratio(num: impl Into<i64>, den: impl Into<i64>) -> Option<f64> {
    let (num, den) = (num.into(), den.into());
    (den > 0).then(|| num as f64 / den as f64)
}

/// Derives the KPIs of one scope from its merged aggregate.
/// `in_queue` and `oldest_wait_ms` are live values, filled in by the caller.
pub fn derive_kpis(agg: &Aggregate) -> Kpis {
    let c = &agg.counters;
    let count = |v: i32| u64::try_from(v).unwrap_or(0);
    let (p50, p90, p99) = percentiles(&agg.waits);
    Kpis {
        arrivals: count(c.arrivals),
        deflected: count(c.deflected),
        answered: count(c.answered),
        abandoned: count(c.abandoned),
        short_abandoned: count(c.short_abandoned),
        answer_rate: ratio(c.answered, i64::from(c.answered) + i64::from(c.abandoned)),
        abandon_rate: ratio(c.abandoned, i64::from(c.answered) + i64::from(c.abandoned)),
        deflection_rate: ratio(c.deflected, c.arrivals),
        asa_ms: ratio(c.wait_sum_ms, c.answered),
        wait_p50_ms: p50,
        wait_p90_ms: p90,
        wait_p99_ms: p99,
        service_level: ratio(c.sl_met, c.sl_eligible),
        aht_ms: ratio(c.handle_sum_ms, c.handled),
        repeat_rate: ratio(c.repeats, c.repeat_eligible),
        cross_channel_repeat_rate: ratio(c.cross_repeats, c.repeat_eligible),
        once_and_done_rate: ratio(c.ood_met, c.ood_eligible),
        in_queue: 0,
        oldest_wait_ms: None,
        staffing: None,
        occupancy: None,
        projection: None,
        what_if: None,
        baseline: None,
    }
}

fn percentiles(waits: &WaitCounts) -> (Option<u64>, Option<u64>, Option<u64>) {
    let mut h = new_histogram();
    for (bucket, count) in waits.iter() {
        if let Ok(n) = u64::try_from(count) {
            // Cannot fail: the histogram auto-resizes.
            let _ = h.record_n(u64::from(bucket), n);
        }
    }
    if h.is_empty() {
        return (None, None, None);
    }
    (
        Some(h.value_at_quantile(0.5)),
        Some(h.value_at_quantile(0.9)),
        Some(h.value_at_quantile(0.99)),
    )
}

/// Estimated wait range of a queue (from `kpis`, the queue's KPIs over the window):
/// between the median and the 90th percentile of recent answered waits, widened to
/// include the time the current queue needs to drain at the recent answer pace
/// (depth × window / answered). A queue with contacts waiting and no answer in the
/// window is stuck: the estimate is then open-ended, "more than the oldest wait".
pub fn estimate_wait(kpis: &Kpis, window_ms: i64) -> Option<EstimatedWait> {
    let (answered, in_queue) = (kpis.answered, kpis.in_queue);
    if answered == 0 && in_queue > 0 {
        return Some(EstimatedWait {
            low_ms: kpis.oldest_wait_ms.map_or(0, |w| w.max(0) as u64),
            high_ms: None,
        });
    }
    let drain = (answered > 0 && in_queue > 0)
        .then(|| (in_queue as f64 * window_ms as f64 / answered as f64).round() as u64);
    let (low, high) = match (kpis.wait_p50_ms, kpis.wait_p90_ms, drain) {
        (Some(p50), Some(p90), Some(d)) => (p50.min(d), p90.max(d)),
        (Some(p50), Some(p90), None) => (p50, p90),
        (None, None, Some(d)) => (d, d),
        _ => return None,
    };
    Some(EstimatedWait {
        low_ms: low,
        high_ms: Some(high),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_wait_counts_equal_their_sum_and_keep_no_empty_bucket() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..2_000 {
            let mut target = WaitCounts::default();
            let mut reference = WaitCounts::default();
            for _ in 0..rng.random_range(0..40) {
                let (bucket, count) = (rng.random_range(0..60u32), rng.random_range(-3..4));
                target.add(bucket, count);
                reference.add(bucket, count);
            }
            let mut other = WaitCounts::default();
            for _ in 0..rng.random_range(0..40) {
                other.add(rng.random_range(0..60u32), rng.random_range(-3..4));
            }
            let sign = if rng.random_bool(0.5) { 1 } else { -1 };
            target.merge(&other, sign);
            for (bucket, count) in other.iter() {
                reference.add(bucket, sign * count);
            }
            assert_eq!(target, reference);
            assert!(target.iter().all(|(_, c)| c != 0), "no empty bucket kept");
        }
    }

    #[test]
    fn counts_gathered_in_any_order_equal_those_added_one_by_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..2_000 {
            let pairs: Vec<(u32, i32)> = (0..rng.random_range(0..60))
                .map(|_| (rng.random_range(0..40u32), rng.random_range(-3..4)))
                .collect();
            let mut one_by_one = WaitCounts::default();
            for &(bucket, count) in &pairs {
                one_by_one.add(bucket, count);
            }
            assert_eq!(WaitCounts::from_unsorted(pairs.into_iter()), one_by_one);
        }
    }

    #[test]
    fn retracting_a_contribution_restores_the_cell_exactly() {
        let q = WaitQuantizer::default();
        let mut cell = Aggregate::default();
        let mut one = Aggregate::default();
        one.counters.answered = 1;
        one.counters.wait_sum_ms = 12_345;
        one.waits.add(q.bucket(12_345), 1);
        cell.merge(&one, 1);
        assert!(!cell.is_zero());
        cell.merge(&one, -1);
        assert!(cell.is_zero(), "{cell:?}");
    }

    #[test]
    fn additions_wrap_instead_of_panicking_and_retractions_stay_exact() {
        let mut cell = Aggregate::default();
        let mut huge = Aggregate::default();
        huge.counters.arrivals = i32::MAX;
        huge.counters.wait_sum_ms = i64::MAX;
        huge.waits.add(7, i32::MAX);
        cell.merge(&huge, 1);
        cell.merge(&huge, 1); // beyond i32 / i64: wraps (a debug build would panic)
        cell.merge(&huge, -1);
        assert_eq!(cell.counters.arrivals, i32::MAX, "exact after retracting");
        assert_eq!(cell.counters.wait_sum_ms, i64::MAX);
        cell.merge(&huge, -1);
        assert!(cell.is_zero(), "{cell:?}");
    }

    #[test]
    fn bucketed_waits_give_the_percentiles_of_raw_waits() {
        let q = WaitQuantizer::default();
        let mut raw = new_histogram();
        let mut agg = Aggregate::default();
        for w in [
            0u64, 7, 999, 1_001, 2_047, 2_049, 65_432, 3_600_000, 86_400_001,
        ] {
            raw.record(w).expect("record");
            agg.waits.add(q.bucket(w as i64), 1);
        }
        let k = derive_kpis(&agg);
        assert_eq!(k.wait_p50_ms, Some(raw.value_at_quantile(0.5)));
        assert_eq!(k.wait_p90_ms, Some(raw.value_at_quantile(0.9)));
        assert_eq!(k.wait_p99_ms, Some(raw.value_at_quantile(0.99)));
    }

    #[test]
    fn rates_follow_the_formulas_and_are_null_without_denominator() {
        let mut agg = Aggregate::default();
        assert_eq!(derive_kpis(&agg).answer_rate, None);
        let c = &mut agg.counters;
        c.arrivals = 10;
        c.deflected = 2;
        c.answered = 6;
        c.abandoned = 2;
        c.short_abandoned = 5; // excluded from answer and abandon rates
        c.wait_sum_ms = 60_000;
        c.sl_met = 3;
        c.sl_eligible = 8;
        let k = derive_kpis(&agg);
        assert_eq!(k.answer_rate, Some(0.75));
        assert_eq!(k.abandon_rate, Some(0.25));
        assert_eq!(k.deflection_rate, Some(0.2));
        assert_eq!(k.asa_ms, Some(10_000.0));
        assert_eq!(k.service_level, Some(0.375));
        assert_eq!(k.short_abandoned, 5);
    }

    #[test]
    fn wait_estimate_spans_percentiles_and_drain_time() {
        let kpis = Kpis {
            wait_p50_ms: Some(300_000),
            wait_p90_ms: Some(600_000),
            answered: 10,
            in_queue: 20,
            ..Kpis::default()
        };
        // 10 answered in 15 min, 20 waiting → 30 min to drain.
        let est = estimate_wait(&kpis, 900_000).expect("estimate");
        assert_eq!((est.low_ms, est.high_ms), (300_000, Some(1_800_000)));
        assert_eq!(
            estimate_wait(&Kpis::default(), 900_000),
            None,
            "nothing known"
        );
        let stuck = Kpis {
            in_queue: 3,
            oldest_wait_ms: Some(720_000),
            ..Kpis::default()
        };
        assert_eq!(
            estimate_wait(&stuck, 900_000),
            Some(EstimatedWait {
                low_ms: 720_000,
                high_ms: None
            }),
            "stuck queue: more than the oldest wait"
        );
    }
}
