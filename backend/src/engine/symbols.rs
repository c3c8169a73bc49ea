//! Owns the interning of dimension strings and dimension keys into small integers,
//! so the hot path stores and compares `u32`s, not strings.

use dashmap::DashMap;
use parking_lot::RwLock;
use std::sync::Arc;

/// An interned dimension value (`"phone"`, `"billing"`, ...).
pub type Sym = u32;

/// Index of an interned [`DimKey`].
pub type KeyId = u32;

/// The value of a missing dimension.
pub const UNKNOWN: Sym = 0;

/// channel × queue × reason × segment × site, each an interned value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimKey {
    pub channel: Sym,
    pub queue: Sym,
    pub reason: Sym,
    pub segment: Sym,
    pub site: Sym,
}

/// String and key interner shared by every ingest task.
#[derive(Debug)]
pub struct Symbols {
    ids: DashMap<Arc<str>, Sym, FastHash>,
    names: RwLock<Vec<Arc<str>>>,
    key_ids: DashMap<DimKey, KeyId, FastHash>,
    keys: RwLock<Vec<DimKey>>,
}

impl Default for Symbols {
    fn default() -> Self {
        let unknown: Arc<str> = Arc::from("unknown");
        let ids = DashMap::with_hasher(FastHash::default());
        ids.insert(unknown.clone(), UNKNOWN);
        Symbols {
            ids,
            names: RwLock::new(vec![unknown]),
            key_ids: DashMap::with_hasher(FastHash::default()),
            keys: RwLock::new(Vec::new()),
        }
    }
}

impl Symbols {
    /// The symbol of `value`; `None` or an empty string is [`UNKNOWN`].
    pub fn intern(&self, value: Option<&str>) -> Sym {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return UNKNOWN;
        };
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let name: Arc<str> = Arc::from(value);
        *self.ids.entry(name.clone()).or_insert_with(|| {
            let mut names = self.names.write();
            names.push(name);
            (names.len() - 1) as Sym
        })
    }

    /// The symbol of `value` if it was ever seen.
    pub fn lookup(&self, value: &str) -> Option<Sym> {
        self.ids.get(value).map(|id| *id)
    }

    pub fn name(&self, sym: Sym) -> Arc<str> {
        self.names
            .read()
            .get(sym as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from("unknown"))
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
pub type FastHash = ahash::RandomState;

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
}
