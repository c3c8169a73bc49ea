//! Owns the time-bucketed contributions: a log of effects (for the edges of windows,
//! to the second) and signed cells per (bucket, dimension key) per 10 minutes and per
//! hour.
//!
//! A window `[from, to)` on whole seconds is answered exactly by covering it with the
//! largest aligned buckets that fit (seconds at the edges, then 10-minute blocks, then
//! hours), so a 24 h window replays at most 20 minutes of effects and merges about 30
//! cells per key, not 86,400. The finest level is a log rather than cells, and the next
//! is 10 minutes rather than 1, because with thousands of dimension keys most (second,
//! key) and even (minute, key) pairs hold a single effect: a cell (about 100 bytes)
//! only pays off once it aggregates several effects (32 bytes each in the log). The log
//! is kept per [`CHUNK_MS`] chunk, each effect with its second: one bucket holds the
//! effects of ten seconds, so there are ten times fewer buckets to find, make and drop.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::aggregate::{Aggregate, Counters, WaitQuantizer};
use super::buckets::Buckets;
use super::interaction::{Effect, Placed};
use super::symbols::{FastHash, KeyId};

/// Bucket widths, finest first: seconds (effect log), 10 minutes, hours (cells).
pub(crate) const LEVELS_MS: [i64; 3] = [1_000, 600_000, 3_600_000];

/// Width of the chunks of the effect log (and of the partials published for scale-out).
pub(crate) const CHUNK_MS: i64 = 10_000;

/// Buckets of each level kept in a ring, where writes find them by index: 64 chunks
/// (10 min 40 s, past the default lateness), three 10-minute cells, two hours.
const RING_BUCKETS: [usize; 3] = [64, 3, 2];

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

/// One effect in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Logged {
    key: KeyId,
    /// Its second within the chunk (0 to 9).
    second: u8,
    /// A retraction whose addition was already evicted (never otherwise: an addition
    /// and its retraction cancel out in place).
    retract: bool,
    effect: Effect,
}

impl Logged {
    /// Its second, in the chunk starting at `chunk`.
    fn second_in(&self, chunk: i64) -> i64 {
        chunk + i64::from(self.second) * 1_000
    }
}

/// Contributions of one shard.
#[derive(Debug)]
pub(crate) struct BucketStore {
    /// The effect log, per chunk.
    log: Buckets<Vec<Logged>>,
    /// 10-minute and hour cells.
    cells: [Buckets<Cells>; 2],
    quantizer: WaitQuantizer,
    /// Starts of the [`CHUNK_MS`] chunks changed since last taken; `None`: not tracked
    /// (single instance, no partials published).
    dirty: Option<BTreeSet<i64>>,
    /// Effects placed before this are not kept: no window will read them (see
    /// [`BucketStore::keep_from`]).
    floor: i64,
}

impl Default for BucketStore {
    fn default() -> Self {
        BucketStore {
            log: Buckets::new(CHUNK_MS, RING_BUCKETS[0]),
            cells: [
                Buckets::new(LEVELS_MS[1], RING_BUCKETS[1]),
                Buckets::new(LEVELS_MS[2], RING_BUCKETS[2]),
            ],
            quantizer: WaitQuantizer::default(),
            dirty: None,
            floor: i64::MIN,
        }
    }
}

/// One entry of the effect log, as exported in partials: (second, key, retraction, effect).
pub(crate) type Exported = (i64, KeyId, bool, Effect);

impl BucketStore {
    /// [`BucketStore::apply_at`] with no slot remembered (the tests' shorthand).
    #[cfg(test)]
    pub fn apply(&mut self, placed: &Placed, sign: i32) {
        self.apply_at(placed, sign, None);
    }

    /// Adds (sign 1) or retracts (sign -1) one placed effect at every resolution.
    /// `slot`, for a retraction, is where its addition was logged in its chunk, if the
    /// caller remembers; for an addition, where it was logged is returned. A chunk's
    /// log holds a busy centre's ten seconds, and searching them cost more than the
    /// rest of the event (most retractions are an arrival moving to the key its
    /// `queued` gives it): the slot spares it, when nothing has moved the addition.
    pub fn apply_at(&mut self, placed: &Placed, sign: i32, slot: Option<u32>) -> Option<u32> {
        // An effect's time never changes, so its addition and its retraction are both
        // dropped or both kept, the floor being set before anything is applied.
        if placed.ts < self.floor {
            return None;
        }
        let (chunk, log) = self.log.holding(placed.ts);
        let logged = Logged {
            key: placed.key,
            second: ((placed.ts - chunk) / 1_000) as u8,
            retract: false,
            effect: placed.effect,
        };
        let mut logged_at = None;
        if sign > 0 {
            logged_at = u32::try_from(log.len()).ok();
            log.push(logged);
        } else if let Some(i) = slot
            .map(|slot| slot as usize)
            .filter(|&slot| log.get(slot) == Some(&logged))
            .or_else(|| log.iter().rposition(|l| *l == logged))
        {
            log.swap_remove(i);
            if log.is_empty() {
                self.log.drop_if_empty(chunk);
            }
        } else {
            log.push(Logged {
                retract: true,
                ..logged
            });
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(chunk);
        }
        for level in &mut self.cells {
            let (start, cells) = level.holding(placed.ts);
            let cell = cells.entry(placed.key).or_default();
            placed.effect.apply(cell, sign, &self.quantizer);
            // Only a retraction can empty a cell.
            if sign < 0 && cell.is_zero() {
                cells.remove(&placed.key);
                if cells.is_empty() {
                    level.drop_if_empty(start);
                }
            }
        }
        logged_at
    }

    /// Adds every contribution of `[from, to)` (whole seconds) into `out`, per key.
    pub fn collect(&self, from: i64, to: i64, out: &mut impl Collect) {
        for (level, start, end) in cover(from, to) {
            if level == 0 {
                self.each_logged(start, end, |_, l| {
                    let sign = if l.retract { -1 } else { 1 };
                    out.effect(l.key, &l.effect, sign, &self.quantizer);
                });
            } else {
                for (_, cells) in self.cells[level - 1].range(start, end) {
                    for (key, cell) in cells {
                        out.cell(*key, cell);
                    }
                }
            }
        }
    }

    /// Every logged effect of the seconds `[from, to)`, with its second; chunk by chunk
    /// in time order, in no order within a chunk.
    fn each_logged(&self, from: i64, to: i64, mut each: impl FnMut(i64, &Logged)) {
        for (chunk, log) in self.log.range(self.log.start_of(from), to) {
            let whole = chunk >= from && chunk + CHUNK_MS <= to;
            for l in log {
                let second = l.second_in(chunk);
                if whole || (from..to).contains(&second) {
                    each(second, l);
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
        self.log.iter().map(|(chunk, _)| chunk).collect()
    }

    /// The effect log of `[start, end)` (whole seconds), in no particular order.
    pub(crate) fn export(&self, start: i64, end: i64, out: &mut Vec<Exported>) {
        self.each_logged(start, end, |second, l| {
            out.push((second, l.key, l.retract, l.effect));
        });
    }

    /// Keeps no effect placed before `floor`: the caller knows that no window will
    /// start that early (a replay knowing its input's end). Set before any effect is
    /// applied, so that no retraction misses the addition it cancels.
    pub(crate) fn keep_from(&mut self, floor: i64) {
        self.floor = self.floor.max(floor);
    }

    /// Drops every bucket that ends at or before `before`.
    pub(crate) fn evict_before(&mut self, before: i64) {
        // The log is kept to the second: the chunk holding `before` loses its seconds
        // before it, the older chunks leave whole.
        let second = before.div_euclid(1_000) * 1_000;
        let chunk = self.log.start_of(second);
        if chunk < second {
            let older = |l: &Logged| l.second_in(chunk) < second;
            let partly_old = self
                .log
                .range(chunk, chunk + 1)
                .any(|(_, log)| log.iter().any(older));
            if partly_old {
                self.log.get_mut(chunk).retain(|l| !older(l));
                self.log.drop_if_empty(chunk);
            }
        }
        self.log.evict_before(chunk);
        for level in &mut self.cells {
            level.evict_before(before);
        }
    }

    /// Logged effects and stored cells (for memory accounting).
    pub(crate) fn entry_count(&self) -> usize {
        let logged: usize = self.log.iter().map(|(_, log)| log.len()).sum();
        let cells: usize = self
            .cells
            .iter()
            .flat_map(|level| level.iter())
            .map(|(_, cells)| cells.len())
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
    fn effects_before_the_floor_are_not_kept_and_those_after_are() {
        let mut store = BucketStore::default();
        store.keep_from(3_600_000);
        let placed = |ts| Placed {
            ts,
            key: 0,
            effect: Effect::Deflection,
        };
        for ts in [0, 3_599_999, 3_600_000, 7_200_000] {
            store.apply(&placed(ts), 1);
        }
        // A retraction below the floor is dropped as its addition was.
        store.apply(&placed(3_599_999), -1);
        let mut out = HashMap::default();
        store.collect(0, 7_201_000, &mut out);
        assert_eq!(out.get(&0).map(|a| a.counters.deflected), Some(2));
        // A lower floor told later does not bring back what was dropped.
        store.keep_from(0);
        store.apply(&placed(0), 1);
        store.apply(&placed(3_599_000), 1);
        // Two effects kept: logged, and in cells of both levels.
        assert_eq!(store.entry_count(), 2 + 2 * 2);
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

    /// The store against a plain list of every effect: random additions, retractions
    /// (of effects still held, evicted or never added), evictions and windows, at times
    /// that go back (within the rings and before them) and jump ahead.
    #[test]
    fn any_window_after_the_evicted_time_sums_exactly_the_effects_inside_it() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        fn sum(effects: &[(Placed, i32)], from: i64, to: i64) -> Cells {
            let quantizer = WaitQuantizer::default();
            let mut out = Cells::default();
            for (p, sign) in effects.iter().filter(|(p, _)| (from..to).contains(&p.ts)) {
                out.effect(p.key, &p.effect, *sign, &quantizer);
            }
            out.retain(|_, a| !a.is_zero());
            out
        }
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut store = BucketStore::default();
            let mut effects: Vec<(Placed, i32)> = Vec::new();
            let mut now = 1_795_600_000_000_i64;
            let mut evicted = i64::MIN;
            for _ in 0..3_000 {
                now += match rng.random_range(0..100) {
                    0 => 3 * 3_600_000,
                    1..=10 => rng.random_range(0..600_000),
                    _ => rng.random_range(0..5_000),
                };
                let ts = (now - rng.random_range(0..1_500_000)).max(evicted);
                let placed = Placed {
                    ts,
                    key: rng.random_range(0..4),
                    effect: Effect::Answer {
                        wait_ms: rng.random_range(0..3) * 7_000,
                        sl_met: Some(rng.random_bool(0.5)),
                    },
                };
                let held: Vec<usize> = (0..effects.len())
                    .filter(|&i| effects[i].1 > 0 && effects[i].0.ts >= evicted)
                    .collect();
                match rng.random_range(0..10) {
                    0 if !held.is_empty() => {
                        let (p, _) = effects[held[rng.random_range(0..held.len())]];
                        store.apply(&p, -1);
                        effects.push((p, -1));
                    }
                    1 => {
                        store.apply(&placed, -1);
                        effects.push((placed, -1));
                    }
                    _ => {
                        store.apply(&placed, 1);
                        effects.push((placed, 1));
                    }
                }
                if rng.random_range(0..50) == 0 {
                    let before = now - rng.random_range(0..7_200_000);
                    evicted = evicted.max(before - before.rem_euclid(1_000));
                    store.evict_before(evicted);
                }
                let from = (now - rng.random_range(0..10_000_000)).max(evicted);
                let from =
                    from - from.rem_euclid(1_000) + if from % 1_000 == 0 { 0 } else { 1_000 };
                let to = from + rng.random_range(0..8_000) * 1_000;
                let mut got = Cells::default();
                store.collect(from, to, &mut got);
                got.retain(|_, a| !a.is_zero());
                assert_eq!(got, sum(&effects, from, to), "seed {seed}, [{from}, {to})");
            }
        }
    }

    /// A retraction given the slot its addition was logged at cancels it there, and
    /// one given a slot that no longer holds it (something else moved there) still
    /// finds it: the sums stay exact and nothing is left behind.
    #[test]
    fn a_retraction_cancels_its_addition_at_its_slot_or_wherever_it_moved() {
        let mut store = BucketStore::default();
        let placed = |i: i64| Placed {
            ts: 50_000 + i % 10 * 1_000,
            key: (i % 7) as KeyId,
            effect: Effect::Answer {
                wait_ms: i % 5 * 10,
                sl_met: Some(i % 2 == 0),
            },
        };
        let slots: Vec<Option<u32>> = (0..300)
            .map(|i| store.apply_at(&placed(i), 1, None))
            .collect();
        assert_eq!(slots[299], Some(299), "logged in order in one chunk");
        // Every other one by its slot (each removal moves the last entry into the
        // freed slot: later slots go stale), the rest without.
        for i in 0..200 {
            let slot = if i % 2 == 0 { slots[i as usize] } else { None };
            assert_eq!(store.apply_at(&placed(i), -1, slot), None);
        }
        let mut expected = Cells::default();
        for i in 200..300 {
            expected.effect(placed(i).key, &placed(i).effect, 1, &store.quantizer);
        }
        let mut got = Cells::default();
        store.collect(0, 3_600_000, &mut got);
        got.retain(|_, a| !a.is_zero());
        assert_eq!(got, expected);
        let logged: usize = store.log.iter().map(|(_, log)| log.len()).sum();
        assert_eq!(logged, 100, "no retraction left in the log");
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
