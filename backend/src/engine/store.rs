//! Owns the time-bucketed contributions: a log of effects per second (for the edges
//! of windows) and signed cells per (bucket, dimension key) per 10 minutes and per hour.
//!
//! A window `[from, to)` on whole seconds is answered exactly by covering it with the
//! largest aligned buckets that fit (seconds at the edges, then 10-minute blocks, then
//! hours), so a 24 h window replays at most 20 minutes of effects and merges about 30
//! cells per key, not 86,400. The finest level is a log rather than cells, and the next
//! is 10 minutes rather than 1, because with thousands of dimension keys most (second,
//! key) and even (minute, key) pairs hold a single effect: a cell (about 100 bytes)
//! only pays off once it aggregates several effects (32 bytes each in the log).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::aggregate::{Aggregate, Counters, WaitQuantizer};
use super::interaction::{Effect, Placed};
use super::symbols::{FastHash, KeyId};

/// Bucket widths, finest first: seconds (effect log), 10 minutes, hours (cells).
pub(crate) const LEVELS_MS: [i64; 3] = [1_000, 600_000, 3_600_000];

/// Width of the chunks of the effect log published as partials (scale-out).
pub(crate) const CHUNK_MS: i64 = 10_000;

type Cells = HashMap<KeyId, Aggregate, FastHash>;

/// Where collected contributions go: summed per key (a snapshot), or only the counters
/// summed per group of keys (a trend).
pub(crate) trait Collect {
    /// One logged effect of `key`.
    fn effect(&mut self, key: KeyId, effect: &Effect, sign: i32, quantizer: &WaitQuantizer);
    /// One stored cell of `key`.
    fn cell(&mut self, key: KeyId, cell: &Aggregate);
}

impl Collect for Cells {
    fn effect(&mut self, key: KeyId, effect: &Effect, sign: i32, quantizer: &WaitQuantizer) {
        effect.apply(self.entry(key).or_default(), sign, quantizer);
    }

    fn cell(&mut self, key: KeyId, cell: &Aggregate) {
        self.entry(key).or_default().merge(cell, 1);
    }
}

/// The counters of the keys of each group, summed; keys without a group are left out.
/// Counters are all a trend shows: the waits' histograms are not carried.
pub(crate) struct CountersByGroup {
    /// Per key id, its group.
    pub group_of: Vec<Option<usize>>,
    pub counters: Vec<Counters>,
    /// Groups that received anything (even contributions that cancel out).
    pub touched: Vec<bool>,
}

impl CountersByGroup {
    fn slot(&mut self, key: KeyId) -> Option<&mut Counters> {
        let group = (*self.group_of.get(key as usize)?)?;
        *self.touched.get_mut(group)? = true;
        self.counters.get_mut(group)
    }
}

impl Collect for CountersByGroup {
    fn effect(&mut self, key: KeyId, effect: &Effect, sign: i32, _: &WaitQuantizer) {
        if let Some(counters) = self.slot(key) {
            effect.apply_counters(counters, sign);
        }
    }

    fn cell(&mut self, key: KeyId, cell: &Aggregate) {
        if let Some(counters) = self.slot(key) {
            counters.add(&cell.counters, 1);
        }
    }
}

/// One effect in the per-second log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Logged {
    key: KeyId,
    /// A retraction whose addition was already evicted (never otherwise: an addition
    /// and its retraction cancel out in place).
    retract: bool,
    effect: Effect,
}

/// Contributions of one shard.
#[derive(Debug, Default)]
pub(crate) struct BucketStore {
    seconds: BTreeMap<i64, Vec<Logged>>,
    /// 10-minute and hour cells.
    cells: [BTreeMap<i64, Cells>; 2],
    quantizer: WaitQuantizer,
    /// Starts of the [`CHUNK_MS`] chunks changed since last taken; `None`: not tracked
    /// (single instance, no partials published).
    dirty: Option<BTreeSet<i64>>,
}

/// One entry of the effect log, as exported in partials: (second, key, retraction, effect).
pub(crate) type Exported = (i64, KeyId, bool, Effect);

impl BucketStore {
    /// Adds (sign 1) or retracts (sign -1) one placed effect at every resolution.
    pub fn apply(&mut self, placed: &Placed, sign: i32) {
        let second = placed.ts.div_euclid(1_000) * 1_000;
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(placed.ts.div_euclid(CHUNK_MS) * CHUNK_MS);
        }
        let log = self.seconds.entry(second).or_default();
        let logged = Logged {
            key: placed.key,
            retract: false,
            effect: placed.effect,
        };
        if sign > 0 {
            log.push(logged);
        } else if let Some(i) = log.iter().rposition(|l| *l == logged) {
            log.swap_remove(i);
            if log.is_empty() {
                self.seconds.remove(&second);
            }
        } else {
            log.push(Logged {
                retract: true,
                ..logged
            });
        }
        for (level, width) in self.cells.iter_mut().zip(&LEVELS_MS[1..]) {
            let start = placed.ts.div_euclid(*width) * width;
            let cells = level.entry(start).or_default();
            let cell = cells.entry(placed.key).or_default();
            placed.effect.apply(cell, sign, &self.quantizer);
            // Only a retraction can empty a cell.
            if sign < 0 && cell.is_zero() {
                cells.remove(&placed.key);
                if cells.is_empty() {
                    level.remove(&start);
                }
            }
        }
    }

    /// Adds every contribution of `[from, to)` (whole seconds) into `out`, per key.
    pub fn collect(&self, from: i64, to: i64, out: &mut impl Collect) {
        for (level, start, end) in cover(from, to) {
            if level == 0 {
                for log in self.seconds.range(start..end).map(|(_, log)| log) {
                    for l in log {
                        let sign = if l.retract { -1 } else { 1 };
                        out.effect(l.key, &l.effect, sign, &self.quantizer);
                    }
                }
            } else {
                for cells in self.cells[level - 1].range(start..end).map(|(_, c)| c) {
                    for (key, cell) in cells {
                        out.cell(*key, cell);
                    }
                }
            }
        }
    }

    /// Starts tracking the chunks that change (for partials).
    pub(crate) fn track_changes(&mut self) {
        self.dirty.get_or_insert_with(BTreeSet::new);
    }

    /// The chunks changed since the last call (empty when not tracked).
    pub(crate) fn take_changed(&mut self) -> BTreeSet<i64> {
        self.dirty.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts of every [`CHUNK_MS`] chunk holding effects.
    pub(crate) fn chunk_starts(&self) -> BTreeSet<i64> {
        self.seconds
            .keys()
            .map(|s| s.div_euclid(CHUNK_MS) * CHUNK_MS)
            .collect()
    }

    /// The effect log of `[start, end)`, in time order.
    pub(crate) fn export(&self, start: i64, end: i64, out: &mut Vec<Exported>) {
        for (second, log) in self.seconds.range(start..end) {
            out.extend(log.iter().map(|l| (*second, l.key, l.retract, l.effect)));
        }
    }

    /// Drops every bucket that ends at or before `before`.
    pub(crate) fn evict_before(&mut self, before: i64) {
        // A few buckets leave at each sweep: popped one by one, the trees are not rebuilt.
        evict(&mut self.seconds, before.div_euclid(1_000) * 1_000);
        for (level, width) in self.cells.iter_mut().zip(&LEVELS_MS[1..]) {
            evict(level, before.div_euclid(*width) * width);
        }
    }

    /// Logged effects and stored cells (for memory accounting).
    pub(crate) fn entry_count(&self) -> usize {
        let logged: usize = self.seconds.values().map(Vec::len).sum();
        let cells: usize = self
            .cells
            .iter()
            .flat_map(|l| l.values())
            .map(HashMap::len)
            .sum();
        logged + cells
    }
}

/// Drops the entries of `map` before `start`.
pub(super) fn evict<V>(map: &mut BTreeMap<i64, V>, start: i64) {
    while let Some(entry) = map.first_entry() {
        if *entry.key() >= start {
            break;
        }
        entry.remove();
    }
}

/// Splits `[from, to)` into runs of aligned buckets: (level, first start, end).
/// Bounds must be whole seconds.
pub fn cover(from: i64, to: i64) -> Vec<(usize, i64, i64)> {
    let mut runs: Vec<(usize, i64, i64)> = Vec::new();
    let mut t = from;
    while t < to {
        let level = (0..LEVELS_MS.len())
            .rev()
            .find(|&l| t.rem_euclid(LEVELS_MS[l]) == 0 && t + LEVELS_MS[l] <= to)
            .unwrap_or(0);
        let next = t + LEVELS_MS[level];
        match runs.last_mut() {
            Some(run) if run.0 == level && run.2 == t => run.2 = next,
            _ => runs.push((level, t, next)),
        }
        t = next;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::interaction::Effect;

    #[test]
    fn cover_tiles_the_window_exactly_with_coarse_buckets_inside() {
        let from = 3_600_000 * 5 - 61_000; // 4:58:59
        let to = 3_600_000 * 8 + 62_000; // 8:01:02
        let runs = cover(from, to);
        let mut t = from;
        for &(level, start, end) in &runs {
            assert_eq!(start, t, "runs are contiguous");
            assert_eq!(start.rem_euclid(LEVELS_MS[level]), 0, "aligned");
            t = end;
        }
        assert_eq!(t, to);
        assert_eq!(
            runs.iter().filter(|r| r.0 == 2).count(),
            1,
            "one run of hours"
        );
        assert!(runs.len() <= 5, "{runs:?}");
    }

    #[test]
    fn a_window_sees_exactly_the_effects_inside_it() {
        let mut store = BucketStore::default();
        for ts in [59_999, 60_000, 3_599_999, 3_600_000, 7_200_500] {
            store.apply(
                &Placed {
                    ts,
                    key: 0,
                    effect: Effect::Deflection,
                },
                1,
            );
        }
        fn count(store: &BucketStore, from: i64, to: i64) -> i32 {
            let mut out = HashMap::default();
            store.collect(from, to, &mut out);
            out.get(&0).map_or(0, |a| a.counters.deflected)
        }
        assert_eq!(count(&store, 60_000, 7_200_000), 3);
        assert_eq!(count(&store, 59_000, 7_201_000), 5);
        assert_eq!(count(&store, 0, 59_000), 0);
        assert_eq!(count(&store, 3_599_000, 3_601_000), 2);
        store.evict_before(3_600_000);
        assert_eq!(count(&store, 0, 7_201_000), 2);
        // Retracting an effect whose addition was evicted is still counted exactly.
        store.apply(
            &Placed {
                ts: 7_200_500,
                key: 0,
                effect: Effect::Deflection,
            },
            -1,
        );
        assert_eq!(count(&store, 7_200_000, 7_201_000), 0);
        assert_eq!(count(&store, 3_600_000, 7_201_000), 1);
    }

    #[test]
    fn retracting_everything_leaves_no_cell() {
        let mut store = BucketStore::default();
        let placed = Placed {
            ts: 123_456,
            key: 3,
            effect: Effect::Answer {
                wait_ms: 40,
                sl_met: Some(true),
            },
        };
        store.apply(&placed, 1);
        assert_eq!(store.entry_count(), 3, "one logged effect, two cells");
        store.apply(&placed, -1);
        assert_eq!(store.entry_count(), 0);
    }
}
