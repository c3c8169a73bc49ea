//! Owns the time-bucketed aggregates: one cell per (bucket, dimension key) at three
//! resolutions (1 s, 1 min, 1 h), all kept up to date on every contribution.
//!
//! A window `[from, to)` on whole seconds is answered exactly by covering it with the
//! largest aligned buckets that fit (seconds at the edges, then minutes, then hours),
//! so a 24 h window merges a few hundred cells per key, not 86,400.

use std::collections::{BTreeMap, HashMap};

use super::aggregate::{Aggregate, WaitQuantizer};
use super::interaction::Placed;
use super::symbols::{FastHash, KeyId};

/// Bucket widths, finest first.
pub const LEVELS_MS: [i64; 3] = [1_000, 60_000, 3_600_000];

type Cells = HashMap<KeyId, Aggregate, FastHash>;

/// Aggregates of one shard.
#[derive(Debug, Default)]
pub struct BucketStore {
    levels: [BTreeMap<i64, Cells>; 3],
    quantizer: WaitQuantizer,
}

impl BucketStore {
    /// Adds (sign 1) or retracts (sign -1) one placed effect at every resolution.
    pub fn apply(&mut self, placed: &Placed, sign: i32) {
        for (level, width) in self.levels.iter_mut().zip(LEVELS_MS) {
            let start = placed.ts.div_euclid(width) * width;
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

    /// Adds every cell of `[from, to)` (whole seconds) into `out`, per key.
    pub fn collect(&self, from: i64, to: i64, out: &mut HashMap<KeyId, Aggregate, FastHash>) {
        for (level, start, end) in cover(from, to) {
            for cells in self.levels[level].range(start..end).map(|(_, c)| c) {
                for (key, cell) in cells {
                    out.entry(*key).or_default().merge(cell, 1);
                }
            }
        }
    }

    /// Drops every bucket that ends at or before `before`.
    pub fn evict_before(&mut self, before: i64) {
        for (level, width) in self.levels.iter_mut().zip(LEVELS_MS) {
            let keep = level.split_off(&(before.div_euclid(width) * width));
            *level = keep;
        }
    }

    /// Number of stored cells, all resolutions (for memory accounting).
    pub fn cell_count(&self) -> usize {
        self.levels
            .iter()
            .flat_map(|l| l.values())
            .map(HashMap::len)
            .sum()
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
        assert_eq!(store.cell_count(), 3);
        store.apply(&placed, -1);
        assert_eq!(store.cell_count(), 0);
    }
}
