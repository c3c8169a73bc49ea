//! Owns the interning of dimension strings and dimension keys into small integers,
//! so the hot path stores and compares `u32`s, not strings.

use dashmap::DashMap;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// An interned dimension value (`"phone"`, `"billing"`, ...).
pub(crate) type Sym = u32;

/// Index of an interned [`DimKey`].
pub(crate) type KeyId = u32;

/// The value of a missing dimension.
pub(crate) const UNKNOWN: Sym = 0;

/// The value standing for every value beyond the table's limit.
pub(crate) const OTHER: Sym = 1;

/// The name of [`OTHER`].
pub(crate) const OTHER_NAME: &str = vigie_proto::OTHER_VALUE;

/// channel × queue × reason × segment × site, each an interned value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimKey {
    pub channel: Sym,
    pub queue: Sym,
    pub reason: Sym,
    pub segment: Sym,
    pub site: Sym,
}

/// String and key interner shared by every ingest task. Its size is bounded: a
/// producer sending a new queue name with every event (a bug, or an id put in the wrong
/// field) must not grow memory and every snapshot without end. Values beyond `limit`
/// are counted under [`OTHER`].
#[derive(Debug)]
pub struct Symbols {
    ids: DashMap<Arc<str>, Sym, FastHash>,
    names: RwLock<Vec<Arc<str>>>,
    key_ids: DashMap<DimKey, KeyId, FastHash>,
    keys: RwLock<Vec<DimKey>>,
    /// Most distinct values kept (all dimensions together).
    limit: usize,
    /// Values refused (counted as [`OTHER`]) because the table was full.
    pub overflowed: AtomicU64,
}

impl Default for Symbols {
    /// A table without limit.
    fn default() -> Self {
        Symbols::with_limit(usize::MAX)
    }
}

impl Symbols {
    /// A table keeping at most `limit` distinct values.
    pub(crate) fn with_limit(limit: usize) -> Symbols {
        let names: Vec<Arc<str>> =
            vec![Arc::from(vigie_proto::UNKNOWN_VALUE), Arc::from(OTHER_NAME)];
        let ids = DashMap::with_hasher(FastHash::default());
        ids.insert(names[0].clone(), UNKNOWN);
        ids.insert(names[1].clone(), OTHER);
        Symbols {
            ids,
            names: RwLock::new(names),
            key_ids: DashMap::with_hasher(FastHash::default()),
            keys: RwLock::new(Vec::new()),
            limit,
            overflowed: AtomicU64::new(0),
        }
    }

    /// Distinct values held (with `unknown` and `(other)`).
    pub fn len(&self) -> usize {
        self.names.read().len()
    }

    /// Never: `unknown` and `(other)` are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The symbol of `value`; `None` or an empty string is [`UNKNOWN`], a new value
    /// once the table is full is [`OTHER`].
    pub(crate) fn intern(&self, value: Option<&str>) -> Sym {
        self.intern_within(value, self.limit)
    }

    /// The symbol of a channel: never [`OTHER`], as channels carry the service-level
    /// rules and the cross-channel repeat logic, which a shared `(other)` would falsify.
    pub(crate) fn intern_channel(&self, value: Option<&str>) -> Sym {
        self.intern_within(value, usize::MAX)
    }

    fn intern_within(&self, value: Option<&str>, limit: usize) -> Sym {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return UNKNOWN;
        };
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        if self.names.read().len() >= limit {
            self.overflowed.fetch_add(1, Relaxed);
            return OTHER;
        }
        let name: Arc<str> = Arc::from(value);
        *self.ids.entry(name.clone()).or_insert_with(|| {
            let mut names = self.names.write();
            names.push(name);
            (names.len() - 1) as Sym
        })
    }

    /// The symbol of `value` if it was ever seen.
    pub(crate) fn lookup(&self, value: &str) -> Option<Sym> {
        self.ids.get(value).map(|id| *id)
    }

    pub fn name(&self, sym: Sym) -> Arc<str> {
        self.names
            .read()
            .get(sym as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(vigie_proto::UNKNOWN_VALUE))
    }

    pub fn key_id(&self, key: DimKey) -> KeyId {
        if let Some(id) = self.key_ids.get(&key) {
            return *id;
        }
        *self.key_ids.entry(key).or_insert_with(|| {
            let mut keys = self.keys.write();
            keys.push(key);
            (keys.len() - 1) as KeyId
        })
    }

    /// Every interned key, indexed by [`KeyId`].
    pub fn keys(&self) -> Vec<DimKey> {
        self.keys.read().clone()
    }
}

/// The hasher of in-memory maps.
pub(crate) type FastHash = ahash::RandomState;

/// Stable 64-bit identity of an id string (event, interaction, customer).
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_missing_values_are_unknown() {
        let s = Symbols::default();
        let phone = s.intern(Some("phone"));
        assert_eq!(s.intern(Some("phone")), phone);
        assert_ne!(phone, UNKNOWN);
        assert_eq!(s.intern(None), UNKNOWN);
        assert_eq!(s.intern(Some("")), UNKNOWN);
        assert_eq!(&*s.name(phone), "phone");
        assert_eq!(&*s.name(UNKNOWN), "unknown");
        let k = DimKey {
            channel: phone,
            queue: UNKNOWN,
            reason: UNKNOWN,
            segment: UNKNOWN,
            site: UNKNOWN,
        };
        assert_eq!(s.key_id(k), s.key_id(k));
        assert_eq!(s.keys()[s.key_id(k) as usize], k);
    }

    #[test]
    fn values_beyond_the_limit_count_as_other() {
        let s = Symbols::with_limit(4); // unknown, (other), and two values
        let phone = s.intern(Some("phone"));
        let chat = s.intern(Some("chat"));
        assert_eq!(s.len(), 4);
        assert_eq!(s.intern(Some("queue-8f3a")), OTHER);
        assert_eq!(s.intern(Some("queue-91bc")), OTHER);
        assert_eq!(s.overflowed.load(Relaxed), 2);
        assert_eq!(s.len(), 4, "nothing more is kept");
        // Values already known keep their own symbol.
        assert_eq!(
            (s.intern(Some("phone")), s.intern(Some("chat"))),
            (phone, chat)
        );
        assert_eq!(s.intern(Some(OTHER_NAME)), OTHER);
        assert_eq!(&*s.name(OTHER), OTHER_NAME);
        assert_eq!(s.overflowed.load(Relaxed), 2);
        let email = s.intern_channel(Some("email"));
        assert_ne!(email, OTHER, "channels are always kept");
        assert_eq!(s.intern(Some("email")), email);
    }
}
