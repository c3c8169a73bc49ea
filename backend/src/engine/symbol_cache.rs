//! Owns each thread's memo of the short values it interned lately, so that a value
//! seen again is found without hashing it, locking a shard of the table and comparing
//! strings.
//!
//! A dimension has a handful of values (channels, queues, reasons, segments, sites),
//! every arrival names five of them, and a replay interns hundreds of thousands: the
//! table's lookup was a tenth of applying a replay's history. A value of at most 16
//! bytes is its own key here (its length and its bytes as two words), so a hit needs
//! no comparison of strings. A symbol is never freed nor changed once given (the table
//! only grows, up to its limit), so a remembered one stays right for as long as its
//! table lives; each table has an id of its own, never reused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::symbols::Sym;

/// Entries per thread: direct-mapped, 8 KiB.
const SLOTS: usize = 256;

/// The ids of tables, from 1 (0: an empty slot).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// A new table's id.
pub(crate) fn new_table_id() -> u64 {
    NEXT_TABLE.fetch_add(1, Ordering::Relaxed)
}

/// A value of 1 to 16 bytes, as words: its first eight bytes, the next eight (both
/// zero-padded), and its length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ShortValue {
    head: u64,
    tail: u64,
    len: u64,
}

impl ShortValue {
    /// `None` for a longer value (or an empty one).
    pub(crate) fn of(value: &str) -> Option<ShortValue> {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let len = bytes.len();
        // Whole words where there are eight bytes (the tail's last eight, shifted past
        // the head's), else byte by byte.
        let word = |at: usize| {
            bytes
                .get(at..at + 8)
                .map(|w| w.try_into().map(u64::from_le_bytes))
        };
        let (head, tail) = match (word(0), len.checked_sub(8).and_then(word)) {
            (Some(Ok(head)), Some(Ok(last))) if len > 8 => (head, last >> ((16 - len) * 8)),
            (Some(Ok(head)), _) => (head, 0),
            _ => (bytes.iter().rev().fold(0, |w, b| w << 8 | u64::from(*b)), 0),
        };
        Some(ShortValue {
            head,
            tail,
            len: len as u64,
        })
    }

    fn slot(&self, table: u64) -> usize {
        let mixed = (self.head ^ self.tail.rotate_left(29) ^ (self.len << 56) ^ table)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (64 - SLOTS.trailing_zeros())) as usize
    }
}

#[derive(Clone, Copy, Default)]
struct Entry {
    table: u64,
    value: ShortValue,
    sym: Sym,
}

thread_local! {
    static ENTRIES: RefCell<[Entry; SLOTS]> = RefCell::new([Entry::default(); SLOTS]);
}

/// The symbol `value` was given in `table`, if this thread remembers it.
pub(crate) fn get(table: u64, value: &ShortValue) -> Option<Sym> {
    ENTRIES.with_borrow(|entries| {
        let entry = &entries[value.slot(table)];
        (entry.table == table && entry.value == *value).then_some(entry.sym)
    })
}

/// Remembers that `value` is `sym` in `table` (in place of what its slot held).
pub(crate) fn put(table: u64, value: ShortValue, sym: Sym) {
    ENTRIES.with_borrow_mut(|entries| {
        entries[value.slot(table)] = Entry { table, value, sym };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_their_own_keys_and_tables_apart() {
        let a = ShortValue::of("billing").expect("short");
        assert_eq!(ShortValue::of("billing"), Some(a));
        // Same first bytes, other lengths or tails: other keys.
        for other in ["billin", "billing\0", "billing-north", "billing-south"] {
            assert_ne!(ShortValue::of(other), Some(a), "{other}");
        }
        assert_ne!(
            ShortValue::of("billing-north"),
            ShortValue::of("billing-south")
        );
        // Its words are its bytes zero-padded, whatever its length.
        let text = "abcdefghijklmnop";
        for len in 1..=16 {
            let mut padded = [0u8; 16];
            padded[..len].copy_from_slice(&text.as_bytes()[..len]);
            let word = |at: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&padded[at..at + 8]);
                u64::from_le_bytes(w)
            };
            let expected = ShortValue {
                head: word(0),
                tail: word(8),
                len: len as u64,
            };
            assert_eq!(ShortValue::of(&text[..len]), Some(expected), "{len}");
        }
        assert_eq!(ShortValue::of(""), None);
        assert_eq!(ShortValue::of("seventeen bytes!!"), None);
        let (one, two) = (new_table_id(), new_table_id());
        put(one, a, 7);
        assert_eq!(get(one, &a), Some(7));
        assert_eq!(get(two, &a), None, "another table's");
        let b = ShortValue::of("billinG").expect("short");
        assert_eq!(get(one, &b), None);
        put(one, a, 8);
        assert_eq!(get(one, &a), Some(8));
    }
}
