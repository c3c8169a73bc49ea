//! Owns the baseline: arrivals per (channel, queue) per minute, kept for
//! `engine.baseline_weeks` weeks plus the longest window, so that a snapshot can say how
//! many contacts the same window brought one week earlier, and on average over the last
//! weeks ("+23 % vs last week"), and an alert can fire on a spike or a drop.
//!
//! Counts are per minute, in hour records (60 counts and their sum): a window's edges
//! that cut a minute take the minute's share of the overlap (arrivals assumed even within
//! a minute), whole hours are read from their sum. Memory: at most about 250 bytes per
//! (channel, queue) per hour with an arrival, about 6 KB per key per day.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::symbols::{FastHash, Sym, Symbols, OTHER};

/// A baseline key: (channel, queue).
pub(crate) type BaseKey = (Sym, Sym);

/// Arrivals in 1/60,000ths (an arrival over one ms of its minute): sums of edge
/// minutes' shares stay exact, whatever the order they are added in.
pub(crate) type Share = u64;

/// A [`Share`] count as arrivals.
pub(crate) fn arrivals(share: Share) -> f64 {
    share as f64 / MINUTE_MS as f64
}

const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const WEEK_MS: i64 = 7 * 86_400_000;

/// Arrivals of one key in one hour, per minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HourCounts {
    minutes: [u32; 60],
    total: u64,
}

impl Default for HourCounts {
    fn default() -> Self {
        HourCounts {
            minutes: [0; 60],
            total: 0,
        }
    }
}

impl HourCounts {
    fn add(&mut self, minute: usize, sign: i32) {
        let m = &mut self.minutes[minute];
        if sign > 0 {
            *m = m.saturating_add(1);
            self.total += 1;
        } else if *m > 0 {
            // A retraction of an arrival counted here (a re-keyed contact).
            *m -= 1;
            self.total -= 1;
        }
    }

    /// Arrivals in `[from, to)` in [`Share`]s, `hour` being this record's start: whole
    /// when the hour is inside, else minute by minute with the edge minutes' share of
    /// the overlap.
    fn between(&self, hour: i64, from: i64, to: i64) -> Share {
        if from <= hour && hour + HOUR_MS <= to {
            return self.total * MINUTE_MS as u64;
        }
        let mut sum = 0;
        for (i, &n) in self.minutes.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let start = hour + i as i64 * MINUTE_MS;
            let overlap = (to.min(start + MINUTE_MS) - from.max(start)).max(0);
            sum += u64::from(n) * overlap as u64;
        }
        sum
    }
}

/// Hour records by hour start, each per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BaselineHours(BTreeMap<i64, HashMap<BaseKey, HourCounts, FastHash>>);

impl BaselineHours {
    fn add(&mut self, key: BaseKey, ts: i64, sign: i32) {
        let hour = ts.div_euclid(HOUR_MS) * HOUR_MS;
        let minute = ((ts - hour) / MINUTE_MS) as usize;
        // Most arrivals land in the newest hour: reached down the tree's right edge,
        // with no search (a search among the weeks kept was most of the cost).
        let newest = self.0.last_key_value().is_some_and(|(h, _)| *h == hour);
        let keys = if newest {
            self.0.last_entry().map(|e| e.into_mut())
        } else if sign < 0 {
            self.0.get_mut(&hour)
        } else {
            Some(self.0.entry(hour).or_default())
        };
        let Some(keys) = keys else {
            return;
        };
        if sign < 0 {
            if let Some(c) = keys.get_mut(&key) {
                c.add(minute, sign);
            }
            return;
        }
        keys.entry(key).or_default().add(minute, sign);
    }

    /// Adds each key's arrivals in `[from, to)` into `out`.
    pub(crate) fn collect(&self, from: i64, to: i64, out: &mut HashMap<BaseKey, Share, FastHash>) {
        let first = from.div_euclid(HOUR_MS) * HOUR_MS;
        for (&hour, keys) in self.0.range(first..to) {
            for (key, counts) in keys {
                let n = counts.between(hour, from, to);
                if n > 0 {
                    *out.entry(*key).or_default() += n;
                }
            }
        }
    }

    /// Drops the hours that end at or before `before`.
    pub(crate) fn evict_before(&mut self, before: i64) {
        let first = before.div_euclid(HOUR_MS) * HOUR_MS;
        super::store::evict(&mut self.0, first);
    }

    fn hour_starts(&self) -> BTreeSet<i64> {
        self.0.keys().copied().collect()
    }
}

/// One hour of a partition's baseline on the wire (scale-out): per key as strings,
/// `[channel, queue, [60 counts]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireBaselineHour {
    pub v: u32,
    pub epoch: i64,
    pub hour: i64,
    pub keys: Vec<(String, String, Vec<u32>)>,
}

/// Why a baseline hour record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BaselineError {
    #[error("baseline hour {0} is not a whole hour")]
    Misaligned(i64),
    #[error("baseline row {0} does not have 60 minute counts")]
    BadRow(usize),
}

impl BaselineHours {
    /// One hour for the wire.
    pub(crate) fn export(&self, symbols: &Symbols, hour: i64, epoch: i64) -> WireBaselineHour {
        let name = |s: Sym| symbols.name(s).to_string();
        let mut keys: Vec<(String, String, Vec<u32>)> = self
            .0
            .get(&hour)
            .into_iter()
            .flatten()
            .filter(|(_, c)| c.total > 0)
            .map(|((channel, queue), c)| (name(*channel), name(*queue), c.minutes.to_vec()))
            .collect();
        keys.sort_unstable();
        WireBaselineHour {
            v: super::partial::PARTIAL_VERSION,
            epoch,
            hour,
            keys,
        }
    }

    /// Replaces one hour with a record of the wire.
    pub(crate) fn replace(
        &mut self,
        record: &WireBaselineHour,
        symbols: &Symbols,
    ) -> Result<(), BaselineError> {
        if record.hour.rem_euclid(HOUR_MS) != 0 {
            return Err(BaselineError::Misaligned(record.hour));
        }
        let mut hour: HashMap<BaseKey, HourCounts, FastHash> = HashMap::default();
        for (i, (channel, queue, minutes)) in record.keys.iter().enumerate() {
            let minutes: [u32; 60] = minutes
                .as_slice()
                .try_into()
                .map_err(|_| BaselineError::BadRow(i))?;
            let key = (
                symbols.intern_channel(Some(channel)),
                symbols.intern(Some(queue)),
            );
            let counts = hour.entry(key).or_default();
            for (slot, n) in counts.minutes.iter_mut().zip(minutes) {
                *slot = slot.saturating_add(n);
            }
            counts.total = counts.minutes.iter().map(|&n| u64::from(n)).sum();
        }
        if hour.is_empty() {
            self.0.remove(&record.hour);
        } else {
            self.0.insert(record.hour, hour);
        }
        Ok(())
    }
}

/// One engine's baseline: its hour records, the keys in use (bounded), and the changed
/// hours (for partials).
#[derive(Debug, Default)]
pub(crate) struct BaselineBook {
    inner: Mutex<BookInner>,
    /// Arrivals counted under their channel's `(other)` queue beyond the key limit.
    pub overflow: AtomicU64,
}

#[derive(Debug, Default)]
struct BookInner {
    hours: BaselineHours,
    /// Each key in use and the last hour it has counts in.
    keys: HashMap<BaseKey, i64, FastHash>,
    /// Hours changed since last taken; `None`: not tracked (no partials).
    dirty: Option<BTreeSet<i64>>,
}

impl BaselineBook {
    /// Counts (sign 1) or retracts (sign -1) one arrival of `key` at `ts`. A new key
    /// beyond `max_keys` is counted under its channel's `(other)` queue.
    pub(crate) fn add(&self, key: BaseKey, ts: i64, sign: i32, max_keys: usize) {
        let inner = &mut *self.inner.lock();
        let hour = ts.div_euclid(HOUR_MS) * HOUR_MS;
        // One lookup for a known key (nearly every arrival).
        let room = inner.keys.len() < max_keys;
        let key = match inner.keys.get_mut(&key) {
            Some(last) => {
                if sign > 0 {
                    *last = (*last).max(hour);
                }
                key
            }
            None if sign > 0 && room => {
                inner.keys.insert(key, hour);
                key
            }
            None => {
                let other = (key.0, OTHER);
                if sign > 0 {
                    self.overflow.fetch_add(1, Ordering::Relaxed);
                    let last = inner.keys.entry(other).or_insert(hour);
                    *last = (*last).max(hour);
                }
                other
            }
        };
        inner.hours.add(key, ts, sign);
        if let Some(dirty) = &mut inner.dirty {
            dirty.insert(hour);
        }
    }

    /// Adds each key's arrivals in `[from, to)` into `out`.
    pub(crate) fn collect(&self, from: i64, to: i64, out: &mut HashMap<BaseKey, Share, FastHash>) {
        self.inner.lock().hours.collect(from, to, out);
    }

    /// Forgets the hours ending at or before `before`, and the keys with none left.
    pub(crate) fn evict_before(&self, before: i64) {
        let mut inner = self.inner.lock();
        inner.hours.evict_before(before);
        let first = before.div_euclid(HOUR_MS) * HOUR_MS;
        inner.keys.retain(|_, last| *last >= first);
    }

    /// Keys in use (they count against `engine.max_baseline_keys`).
    pub(crate) fn key_count(&self) -> usize {
        self.inner.lock().keys.len()
    }

    pub(crate) fn track_changes(&self) {
        self.inner.lock().dirty.get_or_insert_with(BTreeSet::new);
    }

    pub(crate) fn take_changed(&self) -> BTreeSet<i64> {
        self.inner
            .lock()
            .dirty
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(crate) fn hour_starts(&self) -> BTreeSet<i64> {
        self.inner.lock().hours.hour_starts()
    }

    pub(crate) fn export(&self, symbols: &Symbols, hour: i64, epoch: i64) -> WireBaselineHour {
        self.inner.lock().hours.export(symbols, hour, epoch)
    }
}

/// The baseline of one scope: arrivals now against the same window in earlier weeks.
pub(crate) fn judge(now: u64, weeks: &[Share]) -> vigie_proto::Baseline {
    let last_week = weeks.first().map(|w| arrivals(*w));
    let mean =
        (!weeks.is_empty()).then(|| arrivals(weeks.iter().sum::<Share>()) / weeks.len() as f64);
    let change =
        |expected: Option<f64>| expected.filter(|e| *e > 0.0).map(|e| now as f64 / e - 1.0);
    vigie_proto::Baseline {
        arrivals: now,
        last_week,
        mean,
        weeks: weeks.len() as u32,
        vs_last_week: change(last_week),
        vs_mean: change(mean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;

    fn sum(book: &BaselineBook, from: i64, to: i64) -> f64 {
        let mut out = HashMap::default();
        book.collect(from, to, &mut out);
        arrivals(out.values().sum())
    }

    #[test]
    fn a_window_counts_whole_minutes_and_the_share_of_its_edge_minutes() {
        let book = BaselineBook::default();
        // 6 arrivals in minute 0, 3 in minute 1, 1 in the next hour.
        for s in 0..6 {
            book.add((2, 3), T0 + s * 1_000, 1, 10);
        }
        for s in 0..3 {
            book.add((2, 3), T0 + MINUTE_MS + s * 1_000, 1, 10);
        }
        book.add((2, 3), T0 + HOUR_MS + 5, 1, 10);
        assert_eq!(sum(&book, T0, T0 + 2 * HOUR_MS), 10.0);
        assert_eq!(sum(&book, T0, T0 + HOUR_MS), 9.0);
        // Half of minute 0 and all of minute 1.
        assert_eq!(sum(&book, T0 + 30_000, T0 + 2 * MINUTE_MS), 6.0);
        assert_eq!(sum(&book, T0 + HOUR_MS, T0 + 2 * HOUR_MS), 1.0);
        // A retraction (the contact was re-keyed) takes one back.
        book.add((2, 3), T0, -1, 10);
        assert_eq!(sum(&book, T0, T0 + HOUR_MS), 8.0);
    }

    #[test]
    fn keys_beyond_the_limit_count_under_other_and_eviction_frees_them() {
        let book = BaselineBook::default();
        book.add((2, 10), T0, 1, 2);
        book.add((2, 11), T0, 1, 2);
        book.add((2, 12), T0 + HOUR_MS, 1, 2);
        assert_eq!(book.overflow.load(Ordering::Relaxed), 1);
        let mut out = HashMap::default();
        book.collect(T0, T0 + 2 * HOUR_MS, &mut out);
        assert_eq!(out.get(&(2, OTHER)).copied().map(arrivals), Some(1.0));
        book.evict_before(T0 + HOUR_MS);
        assert_eq!(sum(&book, T0, T0 + 2 * HOUR_MS), 1.0);
        assert_eq!(book.key_count(), 1, "the keys of evicted hours are freed");
    }

    #[test]
    fn an_hour_survives_the_wire() {
        let symbols = Symbols::with_limit(100);
        let key = (
            symbols.intern_channel(Some("phone")),
            symbols.intern(Some("billing")),
        );
        let book = BaselineBook::default();
        book.track_changes();
        for m in [0, 0, 7, 59] {
            book.add(key, T0 + m * MINUTE_MS, 1, 10);
        }
        assert_eq!(book.take_changed(), BTreeSet::from([T0]));
        let wire = book.export(&symbols, T0, 5);
        let wire: WireBaselineHour =
            serde_json::from_slice(&serde_json::to_vec(&wire).expect("encode")).expect("decode");
        let mut replica = BaselineHours::default();
        replica.replace(&wire, &symbols).expect("replaced");
        let mut out = HashMap::default();
        replica.collect(T0, T0 + HOUR_MS, &mut out);
        assert_eq!(out.get(&key).copied().map(arrivals), Some(4.0));
        let bad = WireBaselineHour {
            keys: vec![("phone".into(), "billing".into(), vec![1; 59])],
            ..wire.clone()
        };
        assert_eq!(
            replica.replace(&bad, &symbols),
            Err(BaselineError::BadRow(0))
        );
        let misaligned = WireBaselineHour {
            hour: T0 + 1,
            ..wire
        };
        assert!(replica.replace(&misaligned, &symbols).is_err());
    }

    #[test]
    fn the_judgement_compares_with_last_week_and_the_mean() {
        let m = MINUTE_MS as u64;
        let b = judge(120, &[100 * m, 80 * m, 120 * m, 100 * m]);
        assert_eq!(b.last_week, Some(100.0));
        assert_eq!(b.mean, Some(100.0));
        assert!(b.vs_last_week.is_some_and(|v| (v - 0.2).abs() < 1e-9));
        assert_eq!(b.weeks, 4);
        let none = judge(5, &[]);
        assert_eq!(
            (none.last_week, none.mean, none.vs_mean),
            (None, None, None)
        );
        let zero = judge(5, &[0]);
        assert_eq!(zero.vs_last_week, None, "no ratio to nothing");
    }
}
