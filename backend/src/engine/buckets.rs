//! Owns a time-ordered series of buckets of one width, keyed by their start: the
//! newest few in a ring, where nearly every write lands (event times cluster near the
//! watermark), so finding a bucket is an index, not a tree search; older buckets in a
//! B-tree, as few writes (late events) and every eviction reach them.

use std::collections::{BTreeMap, VecDeque};

/// What a bucket holds.
pub(crate) trait Bucket: Default {
    fn is_empty(&self) -> bool;
    /// Empties it, keeping its allocation.
    fn clear(&mut self);
    /// A new bucket, to follow `newest`.
    fn following(newest: &Self) -> Self;
}

impl<T> Bucket for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
    /// Grown as it fills: made as long as the one before, it would double its size
    /// whenever it ends a little longer.
    fn following(_: &Self) -> Self {
        Vec::new()
    }
}

impl<K, V, S: Default> Bucket for std::collections::HashMap<K, V, S> {
    fn is_empty(&self) -> bool {
        std::collections::HashMap::is_empty(self)
    }
    fn clear(&mut self) {
        std::collections::HashMap::clear(self);
    }
    /// Made with room for as many keys as `newest` holds: growing a table step by step
    /// allocates every size up to its own, rehashing into each (fresh memory for the
    /// kernel to zero).
    fn following(newest: &Self) -> Self {
        std::collections::HashMap::with_capacity_and_hasher(newest.len(), S::default())
    }
}

/// Evicted buckets kept, emptied, for new ones: a bucket grows to about the same size
/// as the one before it, and reusing its allocation spares the allocator handing large
/// blocks back to the system and the kernel zeroing them again.
const SPARE_BUCKETS: usize = 4;

/// Buckets `[start, start + width)` with `start` a multiple of the width.
#[derive(Debug)]
pub(crate) struct Buckets<V> {
    width: i64,
    /// Most buckets in the ring.
    ring_len: usize,
    /// Consecutive buckets from `ring_start` on (some may be empty).
    ring: VecDeque<V>,
    ring_start: i64,
    /// Buckets before `ring_start`, none empty.
    cold: BTreeMap<i64, V>,
    /// Emptied buckets, for reuse.
    spare: Vec<V>,
    /// The start and ring index of the bucket last written in the ring (`None` from
    /// when the ring moves to the next write in it).
    hot: Option<(i64, usize)>,
}

impl<V: Bucket> Buckets<V> {
    /// Buckets of `width` ms, the newest `ring_len` of them (at least 1) in the ring.
    pub(crate) fn new(width: i64, ring_len: usize) -> Buckets<V> {
        Buckets {
            width,
            ring_len: ring_len.max(1),
            ring: VecDeque::new(),
            ring_start: 0,
            cold: BTreeMap::new(),
            spare: Vec::new(),
            hot: None,
        }
    }

    /// The bucket holding `ts` and its start, made if missing. Nearly every write
    /// lands in the bucket of the one before: that one is found with no division.
    pub(crate) fn holding(&mut self, ts: i64) -> (i64, &mut V) {
        if let Some((start, index)) = self.hot {
            if ts >= start && ts - start < self.width {
                return (start, &mut self.ring[index]);
            }
        }
        let start = self.start_of(ts);
        (start, self.get_mut(start))
    }

    /// The start of the bucket holding `ts`.
    pub(crate) fn start_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.width) * self.width
    }

    /// The bucket starting at `start` (a multiple of the width), made if missing.
    pub(crate) fn get_mut(&mut self, start: i64) -> &mut V {
        if self.ring.is_empty() {
            // Every bucket of the tree stays before the ring.
            let after_cold = self
                .cold
                .last_key_value()
                .map_or(i64::MIN, |(last, _)| last.saturating_add(self.width));
            self.ring_start = start.max(after_cold);
        }
        if start < self.ring_start {
            return self.cold.entry(start).or_default();
        }
        let mut index = usize::try_from(start.saturating_sub(self.ring_start) / self.width)
            .unwrap_or(usize::MAX);
        if index >= self.ring_len {
            // Newer than the ring reaches: the oldest buckets leave it for the tree.
            let shift = index - (self.ring_len - 1);
            if shift >= self.ring.len() {
                self.retire(self.ring.len());
                self.ring_start = start;
                index = 0;
            } else {
                self.retire(shift);
                index -= shift;
            }
        }
        while self.ring.len() <= index {
            let bucket = match (self.spare.pop(), self.ring.back()) {
                (Some(spare), _) => spare,
                (None, Some(newest)) if self.ring.len() == index => V::following(newest),
                (None, _) => V::default(),
            };
            self.ring.push_back(bucket);
        }
        self.hot = Some((start, index));
        &mut self.ring[index]
    }

    /// Moves the `n` oldest buckets of the ring to the tree (dropping empty ones).
    fn retire(&mut self, n: usize) {
        self.hot = None;
        for _ in 0..n {
            let Some(bucket) = self.ring.pop_front() else {
                break;
            };
            if bucket.is_empty() {
                self.keep_spare(bucket);
            } else {
                self.cold.insert(self.ring_start, bucket);
            }
            self.ring_start += self.width;
        }
    }

    /// Drops the bucket at `start` if it is empty and in the tree (an emptied bucket in
    /// the ring stays until it leaves it).
    pub(crate) fn drop_if_empty(&mut self, start: i64) {
        if start < self.ring_start && self.cold.get(&start).is_some_and(V::is_empty) {
            self.cold.remove(&start);
        }
    }

    /// The non-empty buckets starting in `[from, to)`, in time order.
    pub(crate) fn range(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, &V)> + '_ {
        let ring_start = self.ring_start;
        let width = self.width;
        let cold = if from < to {
            Some(self.cold.range(from..to))
        } else {
            None
        };
        cold.into_iter()
            .flatten()
            .map(|(start, v)| (*start, v))
            .chain(
                self.ring
                    .iter()
                    .enumerate()
                    .map(move |(i, v)| (ring_start + i as i64 * width, v))
                    .filter(move |(start, v)| (from..to).contains(start) && !v.is_empty()),
            )
    }

    /// Every non-empty bucket, in time order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &V)> + '_ {
        self.range(i64::MIN, i64::MAX)
    }

    /// Drops every bucket that starts before the bucket of `before`.
    pub(crate) fn evict_before(&mut self, before: i64) {
        let first = self.start_of(before);
        while let Some(entry) = self.cold.first_entry() {
            if *entry.key() >= first {
                break;
            }
            let bucket = entry.remove();
            self.keep_spare(bucket);
        }
        while self.ring_start < first {
            self.hot = None;
            let Some(bucket) = self.ring.pop_front() else {
                break;
            };
            self.keep_spare(bucket);
            self.ring_start += self.width;
        }
    }

    fn keep_spare(&mut self, mut bucket: V) {
        if self.spare.len() < SPARE_BUCKETS {
            bucket.clear();
            self.spare.push(bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(b: &Buckets<Vec<i64>>) -> Vec<(i64, Vec<i64>)> {
        b.iter().map(|(s, v)| (s, v.clone())).collect()
    }

    /// Writes in any order (far ahead, back into the tree, into the ring) read back as
    /// a plain sorted map would, whatever the ring's length.
    #[test]
    fn buckets_read_back_like_a_sorted_map() {
        let times: [i64; 14] = [
            5_000, 7_500, 3_000, 60_000, 12_000, 61_000, 1_000_000, 59_000, 999_000, 4_000, -3_000,
            1_002_000, 2_000_000, 1_000_500,
        ];
        for ring_len in [1, 2, 3, 8, 64] {
            let mut buckets: Buckets<Vec<i64>> = Buckets::new(1_000, ring_len);
            let mut model: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (i, ts) in times.into_iter().enumerate() {
                let start = ts.div_euclid(1_000) * 1_000;
                // Both ways in: by start, and by time (which remembers the last bucket).
                if i % 3 == 0 {
                    buckets.get_mut(buckets.start_of(ts)).push(ts);
                } else {
                    let (held, bucket) = buckets.holding(ts);
                    bucket.push(ts);
                    assert_eq!(held, start);
                }
                model.entry(start).or_default().push(ts);
                let expected: Vec<_> = model.clone().into_iter().collect();
                assert_eq!(contents(&buckets), expected, "ring of {ring_len}");
            }
            let ranged: Vec<i64> = buckets.range(4_000, 61_000).map(|(s, _)| s).collect();
            assert_eq!(ranged, [4_000, 5_000, 7_000, 12_000, 59_000, 60_000]);
            buckets.evict_before(60_500);
            model.retain(|s, _| *s >= 60_000);
            assert_eq!(
                contents(&buckets),
                model.clone().into_iter().collect::<Vec<_>>()
            );
            buckets.evict_before(i64::MAX);
            assert!(buckets.iter().next().is_none());
            buckets.get_mut(0).push(1);
            assert_eq!(contents(&buckets), [(0, vec![1])]);
        }
    }

    /// A new table in the ring is made with room for the keys of the newest before it
    /// (no spare to reuse); a vector grows as it fills.
    #[test]
    fn a_new_table_has_room_for_as_many_keys_as_the_one_before() {
        let mut tables: Buckets<std::collections::HashMap<u32, u32>> = Buckets::new(10, 3);
        tables.get_mut(0).extend((0..1_000).map(|k| (k, k)));
        assert!(tables.get_mut(10).capacity() >= 1_000);
        assert!(tables.get_mut(10).is_empty());
        let mut logs: Buckets<Vec<u32>> = Buckets::new(10, 3);
        logs.get_mut(0).extend(0..1_000);
        assert_eq!(logs.get_mut(10).capacity(), 0);
    }

    #[test]
    fn an_emptied_bucket_is_never_listed() {
        let mut buckets: Buckets<Vec<i64>> = Buckets::new(10, 2);
        buckets.get_mut(100).push(1);
        buckets.get_mut(200).push(2); // 100 goes to the tree
        buckets.get_mut(100).clear();
        buckets.drop_if_empty(100);
        buckets.get_mut(200).clear();
        buckets.drop_if_empty(200);
        assert!(buckets.iter().next().is_none());
        assert!(buckets.cold.is_empty());
    }
}
