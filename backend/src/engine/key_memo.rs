//! Owns one engine's memo of the dimension keys it uses: their ids, and how far their
//! last use in the shared table is known to reach.
//!
//! The engines of a replay or of `vigie serve` share one [`Symbols`] table, and every
//! event asked it for its key's id, touched the key's slot and read keys back by id:
//! each a lock taken for reading, that is a write to a word every core shares. With two
//! engines on two cores that word went back and forth between them, and the table's
//! lookups took 6 % of a replay's time instead of 1 %. The memo answers from memory the
//! engine owns; the table is asked only for a key not seen yet, or to raise a slot's
//! last use past what the memo knows it reaches (once a step of event time).
//!
//! The table changes its key epoch before any key leaves its map and before a freed id
//! is given to another key; a memo of an older epoch is forgotten. So an id remembered
//! is its key's for as long as the memo is kept, and a touch skipped is one the table
//! would have ignored: its slot's last use already reached the time.

use std::collections::HashMap;

use super::symbols::{DimKey, FastHash, KeyId, Symbols};

#[derive(Debug, Default)]
pub(crate) struct KeyMemo {
    /// The table's key epoch this memo is of.
    epoch: u64,
    ids: HashMap<DimKey, KeyId, FastHash>,
    /// By id: its key, and a time its slot's last use reaches (`i64::MIN`: unknown).
    slots: Vec<Option<(DimKey, i64)>>,
}

impl KeyMemo {
    /// Forgets everything when the table's key epoch moved on.
    fn follow(&mut self, symbols: &Symbols) {
        let epoch = symbols.key_epoch();
        if epoch != self.epoch {
            self.ids.clear();
            self.slots.clear();
            self.epoch = epoch;
        }
    }

    fn remember(&mut self, id: KeyId, key: DimKey, used: i64) {
        let at = id as usize;
        if self.slots.len() <= at {
            self.slots.resize(at + 1, None);
        }
        self.slots[at] = Some((key, used));
    }

    /// [`Symbols::key_id`], from the memo when it can.
    pub(crate) fn key_id(&mut self, symbols: &Symbols, key: DimKey, ts: i64) -> KeyId {
        self.follow(symbols);
        if let Some(&id) = self.ids.get(&key) {
            self.touch_followed(symbols, id, ts);
            return id;
        }
        let (id, used) = symbols.key_id_used(key, ts);
        // Its channel's overflow key (`None`) is not remembered for it: the table counts
        // each such ask, and gives the key its own id once one is freed.
        if let Some(used) = used {
            self.ids.insert(key, id);
            self.remember(id, key, used);
        }
        id
    }

    /// [`Symbols::touched`], skipped when the slot's last use is known to reach `ts`.
    pub(crate) fn touch(&mut self, symbols: &Symbols, id: KeyId, ts: i64) {
        self.follow(symbols);
        self.touch_followed(symbols, id, ts);
    }

    fn touch_followed(&mut self, symbols: &Symbols, id: KeyId, ts: i64) {
        let known = self.slots.get(id as usize).copied().flatten();
        if known.is_some_and(|(_, used)| ts <= used) {
            return;
        }
        if let Some((key, used)) = symbols.touched(id, ts) {
            self.remember(id, key, used);
        }
    }

    /// [`Symbols::key`], from the memo when it can.
    pub(crate) fn key(&mut self, symbols: &Symbols, id: KeyId) -> Option<DimKey> {
        self.follow(symbols);
        if let Some((key, _)) = self.slots.get(id as usize).copied().flatten() {
            return Some(key);
        }
        let key = symbols.key(id)?;
        self.remember(id, key, i64::MIN);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::symbols::SymbolLimits;

    fn key(symbols: &Symbols, queue: &str) -> DimKey {
        let sym = |v: &str| symbols.intern(Some(v));
        DimKey {
            channel: sym("phone"),
            queue: sym(queue),
            reason: sym("billing"),
            segment: sym("gold"),
            site: sym("paris"),
        }
    }

    /// A memo answers as the table does, through reclaims that free keys and ids
    /// given again to other keys.
    #[test]
    fn a_memo_answers_as_the_table_through_freed_and_reused_ids() {
        let limits = SymbolLimits {
            keys: 4,
            key_lifetime_ms: 1_000,
            ..SymbolLimits::NONE
        };
        let symbols = Symbols::new(limits, &["phone"]);
        let watermark = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        symbols.register_watermark(&watermark);
        let mut memo = KeyMemo::default();
        let mut ts = 0;
        let (mut reused, mut own) = (0, 0);
        for round in 0..40 {
            // Six queues in turn against a limit of four keys: ids are freed and
            // given to other keys as the watermark moves on.
            let queue = format!("q{}", round % 6);
            let k = key(&symbols, &queue);
            ts += 700;
            watermark.store(ts, std::sync::atomic::Ordering::Relaxed);
            let epoch = symbols.key_epoch();
            let id = memo.key_id(&symbols, k, ts);
            reused += u64::from(symbols.key_epoch() != epoch);
            // The memo's key for the id is the table's, which is the key asked for
            // unless the table gave its channel's overflow key.
            assert_eq!(memo.key(&symbols, id), symbols.key(id), "round {round}");
            if symbols.key(id) == Some(k) {
                assert_eq!(symbols.key_id(k, ts), id, "round {round}");
                // Asked again: the same id, from the memo. (An overflow key is asked of
                // the table every time, which may free an id for the key meanwhile.)
                assert_eq!(memo.key_id(&symbols, k, ts), id);
                own += 1;
            }
            memo.touch(&symbols, id, ts + 1);
        }
        assert!(reused > 0, "keys were freed and ids reused");
        assert!(own > 20, "most keys got their own id: {own}");
        assert!(
            symbols
                .keys_freed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }

    /// A touch the memo skips is one the table would have ignored: a key used again
    /// later than its slot's last use reaches is touched in the table.
    #[test]
    fn touches_reach_the_table_once_past_the_last_use_known() {
        let symbols = Symbols::new(
            SymbolLimits {
                key_lifetime_ms: 64_000,
                ..SymbolLimits::NONE
            },
            &["phone"],
        );
        let mut memo = KeyMemo::default();
        let k = key(&symbols, "q");
        let id = memo.key_id(&symbols, k, 10_000);
        // A touch raises the slot a step (a 64th of the lifetime) ahead of its time.
        memo.touch(&symbols, id, 10_001);
        assert_eq!(symbols.last_used(id), Some(11_001));
        memo.touch(&symbols, id, 11_001);
        assert_eq!(symbols.last_used(id), Some(11_001), "known to reach it");
        memo.touch(&symbols, id, 11_002);
        assert_eq!(symbols.last_used(id), Some(12_002), "past it: the table's");
    }
}
