//! Owns the interning of dimension strings and dimension keys into small integers,
//! so the hot path stores and compares `u32`s, not strings.

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{
    AtomicI64, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Weak};

use super::symbol_cache;

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

/// How much a [`Symbols`] table keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolLimits {
    /// Distinct values of queue, reason, segment and site together (channels apart).
    pub values: usize,
    /// Distinct channels; the ones given to [`Symbols::new`] are always kept.
    pub channels: usize,
    /// Distinct dimension keys (combinations) in use at once.
    pub keys: usize,
    /// A key unused for this long (event time) can be held by nothing any more (no
    /// interaction, cell, effect, queue entry nor deflection): its id is freed.
    pub key_lifetime_ms: i64,
}

impl SymbolLimits {
    /// No limit at all.
    pub const NONE: SymbolLimits = SymbolLimits {
        values: usize::MAX,
        channels: usize::MAX,
        keys: usize::MAX,
        key_lifetime_ms: i64::MAX,
    };
}

/// One interned key and when it was last used (event time, ms).
#[derive(Debug)]
struct KeySlot {
    key: DimKey,
    last_used: AtomicI64,
}

/// Not used since it was set aside: a touch raises it (`fetch_max`).
const UNTOUCHED: i64 = i64::MIN;

/// String and key interner shared by every ingest task. Its size is bounded: a
/// producer sending a new queue name with every event (a bug, or an id put in the wrong
/// field) must not grow memory and every snapshot without end. Values beyond the limit
/// are counted under [`OTHER`]; channels beyond theirs too (with the default rules);
/// dimension keys beyond theirs under their channel's overflow key (every other
/// dimension `(other)`), and keys unused for longer than anything can hold them are
/// freed for reuse. Totals never change: only where a contact is counted does.
#[derive(Debug)]
pub struct Symbols {
    /// This table among others, for the threads' memos ([`symbol_cache`]).
    table_id: u64,
    ids: DashMap<Arc<str>, Sym, FastHash>,
    names: RwLock<Vec<Arc<str>>>,
    /// Symbols used as a channel, and how many of them may be (the channels the table
    /// was made with, plus the limit).
    channels: DashMap<Sym, (), FastHash>,
    channel_cap: usize,
    key_ids: DashMap<DimKey, KeyId, FastHash>,
    slots: RwLock<Vec<KeySlot>>,
    /// Keys freed, reusable.
    free: Mutex<Vec<KeyId>>,
    /// Keys set aside at the last reclaim: freed at the next one unless touched since.
    quarantined: Mutex<Vec<KeyId>>,
    live_keys: AtomicUsize,
    /// New keys asked for while the table was full, since the last reclaim.
    asked_since_reclaim: AtomicUsize,
    /// Watermarks of the engines sharing the table (their ids' holders).
    watermarks: Mutex<Vec<Weak<AtomicI64>>>,
    /// Oldest watermark of the replicas (scale-out), `i64::MAX` without any.
    remote_floor: AtomicI64,
    limits: SymbolLimits,
    /// Values refused (counted as [`OTHER`]) because the table was full.
    pub overflowed: AtomicU64,
    /// Channels refused (counted as the channel `(other)`).
    pub channels_overflowed: AtomicU64,
    /// New keys counted under their channel's overflow key because the table was full.
    pub keys_overflowed: AtomicU64,
    /// Keys freed for reuse.
    pub keys_freed: AtomicU64,
    /// Changes whenever a key may leave the map or an id name another key (a reclaim,
    /// a freed id reused): the engines' memos ([`KeyMemo`](super::key_memo::KeyMemo)) are
    /// then forgotten.
    key_epoch: AtomicU64,
}

impl Default for Symbols {
    /// A table without limit.
    fn default() -> Self {
        Symbols::new(SymbolLimits::NONE, &[])
    }
}

impl Symbols {
    /// A table keeping at most `limit` distinct values (nothing else limited).
    #[cfg(test)]
    pub(crate) fn with_limit(limit: usize) -> Symbols {
        Symbols::new(
            SymbolLimits {
                values: limit,
                ..SymbolLimits::NONE
            },
            &[],
        )
    }

    /// A table within `limits`; `channels` are kept whatever the channel limit.
    pub(crate) fn new(limits: SymbolLimits, channels: &[&str]) -> Symbols {
        let names: Vec<Arc<str>> =
            vec![Arc::from(vigie_proto::UNKNOWN_VALUE), Arc::from(OTHER_NAME)];
        let ids = DashMap::with_hasher(FastHash::default());
        ids.insert(names[0].clone(), UNKNOWN);
        ids.insert(names[1].clone(), OTHER);
        let symbols = Symbols {
            table_id: symbol_cache::new_table_id(),
            ids,
            names: RwLock::new(names),
            channels: DashMap::with_hasher(FastHash::default()),
            channel_cap: limits.channels.saturating_add(channels.len()),
            key_ids: DashMap::with_hasher(FastHash::default()),
            slots: RwLock::new(Vec::new()),
            free: Mutex::new(Vec::new()),
            quarantined: Mutex::new(Vec::new()),
            live_keys: AtomicUsize::new(0),
            asked_since_reclaim: AtomicUsize::new(usize::MAX),
            watermarks: Mutex::new(Vec::new()),
            remote_floor: AtomicI64::new(i64::MAX),
            limits,
            overflowed: AtomicU64::new(0),
            channels_overflowed: AtomicU64::new(0),
            keys_overflowed: AtomicU64::new(0),
            keys_freed: AtomicU64::new(0),
            key_epoch: AtomicU64::new(0),
        };
        for channel in channels {
            let sym = symbols.intern_within(Some(channel), usize::MAX);
            symbols.channels.insert(sym, ());
        }
        symbols
    }

    /// Distinct values held (with `unknown` and `(other)`).
    pub fn len(&self) -> usize {
        self.names.read().len()
    }

    /// Never: `unknown` and `(other)` are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Dimension keys in use.
    pub fn key_count(&self) -> usize {
        self.live_keys.load(Relaxed)
    }

    /// The symbol of `value`; `None` or an empty string is [`UNKNOWN`], a new value
    /// once the table is full is [`OTHER`].
    pub(crate) fn intern(&self, value: Option<&str>) -> Sym {
        self.intern_within(value, self.limits.values)
    }

    /// The symbol of a channel: its own while fewer than the channel limit are known
    /// (and always for the channels the table was made with), else [`OTHER`].
    pub(crate) fn intern_channel(&self, value: Option<&str>) -> Sym {
        let sym = self.intern_within(value, usize::MAX);
        if sym == UNKNOWN || sym == OTHER || self.channels.contains_key(&sym) {
            return sym;
        }
        if self.channels.len() >= self.channel_cap {
            self.channels_overflowed.fetch_add(1, Relaxed);
            return OTHER;
        }
        self.channels.insert(sym, ());
        sym
    }

    fn intern_within(&self, value: Option<&str>, limit: usize) -> Sym {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return UNKNOWN;
        };
        let short = symbol_cache::ShortValue::of(value);
        if let Some(sym) = short.and_then(|v| symbol_cache::get(self.table_id, &v)) {
            return sym;
        }
        let sym = self.intern_in_table(value, limit);
        // [`OTHER`] is not remembered: its overflows are counted every time.
        if let (Some(short), false) = (short, sym == OTHER) {
            symbol_cache::put(self.table_id, short, sym);
        }
        sym
    }

    fn intern_in_table(&self, value: &str, limit: usize) -> Sym {
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

    /// Tells the table of an engine whose watermark bounds what its ids may hold.
    pub(crate) fn register_watermark(&self, watermark: &Arc<AtomicI64>) {
        let mut all = self.watermarks.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(watermark));
    }

    /// The oldest watermark of the replicas (scale-out); `i64::MAX` without replicas.
    pub(crate) fn set_remote_floor(&self, oldest: i64) {
        self.remote_floor.store(oldest, Relaxed);
    }

    /// Records that key `id` is used at `ts` (event time); returns its key and its
    /// last use since.
    pub(super) fn touched(&self, id: KeyId, ts: i64) -> Option<(DimKey, i64)> {
        let slots = self.slots.read();
        let slot = slots.get(id as usize)?;
        Some((slot.key, self.touch_slot(slot, ts)))
    }

    /// Raises a slot's last use to `ts`, rounded up by a step: the shared slot is
    /// written once per step of event time rather than by every event (engines on
    /// other cores read it without the line bouncing), and a key is only ever freed
    /// later than it could be, never earlier. The step is a 64th of the key lifetime
    /// (about 3 hours of the default 8 days): a key outlives its last use by at most
    /// 1.6 % more, and the thousands of keys of a large centre, each used every hour
    /// or so, are written a few times a day rather than at almost every use, as with
    /// the step of a minute before (the replay of the DuckDB benchmark's file: −0.8 %
    /// instructions, −3.7 % CPU with 2 threads).
    fn touch_slot(&self, slot: &KeySlot, ts: i64) -> i64 {
        let used = slot.last_used.load(Relaxed);
        if ts > used {
            let step = self.limits.key_lifetime_ms / 64;
            let raised = ts.saturating_add(step);
            return slot.last_used.fetch_max(raised, Relaxed).max(raised);
        }
        used
    }

    /// The id of `key`, used at `ts` (event time): its own, or, once the table holds
    /// its limit of keys and none can be freed, its channel's overflow key.
    pub fn key_id(&self, key: DimKey, ts: i64) -> KeyId {
        self.key_id_used(key, ts).0
    }

    /// [`Symbols::key_id`], with the key's last use since when the id is its own
    /// (`None`: its channel's overflow key).
    pub(crate) fn key_id_used(&self, key: DimKey, ts: i64) -> (KeyId, Option<i64>) {
        if let Some(id) = self.key_ids.get(&key).map(|id| *id) {
            if let Some((held, used)) = self.touched(id, ts) {
                return (id, (held == key).then_some(used));
            }
        }
        let mut slots = self.slots.write();
        if let Some(id) = self.key_ids.get(&key).map(|id| *id) {
            return (id, Some(self.touch_slot(&slots[id as usize], ts)));
        }
        let overflow = DimKey {
            channel: key.channel,
            queue: OTHER,
            reason: OTHER,
            segment: OTHER,
            site: OTHER,
        };
        let full = self.live_keys.load(Relaxed) >= self.limits.keys;
        if full && key != overflow {
            self.reclaim(&mut slots);
            if self.live_keys.load(Relaxed) >= self.limits.keys && self.free.lock().is_empty() {
                self.keys_overflowed.fetch_add(1, Relaxed);
                // Overflow keys are outside the limit: one per channel, all bounded.
                return (self.insert_key(&mut slots, overflow, ts).0, None);
            }
        }
        let (id, used) = self.insert_key(&mut slots, key, ts);
        (id, Some(used))
    }

    /// The id of `key` (made if missing) and its last use since.
    fn insert_key(&self, slots: &mut Vec<KeySlot>, key: DimKey, ts: i64) -> (KeyId, i64) {
        if let Some(id) = self.key_ids.get(&key).map(|id| *id) {
            return (id, self.touch_slot(&slots[id as usize], ts));
        }
        let slot = KeySlot {
            key,
            last_used: AtomicI64::new(ts),
        };
        let id = match self.free.lock().pop() {
            Some(id) => {
                // The memos may remember the id as its former key's.
                self.key_epoch.fetch_add(1, Release);
                slots[id as usize] = slot;
                id
            }
            None => {
                slots.push(slot);
                (slots.len() - 1) as KeyId
            }
        };
        self.key_ids.insert(key, id);
        self.live_keys.fetch_add(1, Relaxed);
        (id, ts)
    }

    /// The event time before which a key unused since can be held by nothing, `None`
    /// while an engine has no watermark yet (nothing is known to be over).
    fn floor(&self) -> Option<i64> {
        let mut oldest = self.remote_floor.load(Relaxed);
        for w in self.watermarks.lock().iter() {
            if let Some(w) = w.upgrade() {
                let w = w.load(Relaxed);
                if w == i64::MIN {
                    return None;
                }
                oldest = oldest.min(w);
            }
        }
        (oldest != i64::MAX).then(|| oldest.saturating_sub(self.limits.key_lifetime_ms))
    }

    /// Frees the keys set aside at the last reclaim and untouched since, and sets aside
    /// the keys unused since before the floor (a key set aside is removed from the map,
    /// so a new event of its combination gets another id; one still held by something
    /// touches it and stays). Once per eighth of the limit of new keys asked for while
    /// full: a scan of the table costs at most 8 slots per new key.
    fn reclaim(&self, slots: &mut [KeySlot]) {
        let asked = self.asked_since_reclaim.fetch_add(1, Relaxed);
        if asked < (self.limits.keys / 8).max(1) {
            return;
        }
        self.asked_since_reclaim.store(0, Relaxed);
        let Some(floor) = self.floor() else {
            return;
        };
        // Before any key leaves the map: the memos forget what they knew of them.
        self.key_epoch.fetch_add(1, Release);
        let mut free = self.free.lock();
        let mut quarantined = self.quarantined.lock();
        // Touched since it was set aside: still held, an orphan (out of the map, valid
        // for its key) until it is unused again.
        for id in quarantined.drain(..) {
            if slots[id as usize].last_used.load(Relaxed) == UNTOUCHED {
                free.push(id);
                self.live_keys.fetch_sub(1, Relaxed);
                self.keys_freed.fetch_add(1, Relaxed);
            }
        }
        let is_overflow = |k: &DimKey| {
            k.queue == OTHER && k.reason == OTHER && k.segment == OTHER && k.site == OTHER
        };
        for (id, slot) in slots.iter().enumerate() {
            let id = id as KeyId;
            let used = slot.last_used.load(Relaxed);
            if used == UNTOUCHED || used >= floor || is_overflow(&slot.key) {
                continue;
            }
            if free.contains(&id) {
                continue;
            }
            self.key_ids.remove_if(&slot.key, |_, v| *v == id);
            slot.last_used.store(UNTOUCHED, Relaxed);
            quarantined.push(id);
        }
    }

    /// The key epoch: changes whenever a key may leave the map or an id name another
    /// key (see [`KeyMemo`](super::key_memo::KeyMemo)).
    pub(crate) fn key_epoch(&self) -> u64 {
        self.key_epoch.load(Acquire)
    }

    /// The last use of key `id` (tests).
    #[cfg(test)]
    pub(crate) fn last_used(&self, id: KeyId) -> Option<i64> {
        self.slots
            .read()
            .get(id as usize)
            .map(|s| s.last_used.load(Relaxed))
    }

    /// The key of `id`.
    pub(crate) fn key(&self, id: KeyId) -> Option<DimKey> {
        self.slots.read().get(id as usize).map(|s| s.key)
    }

    /// Every key slot, indexed by [`KeyId`] (a freed one still names its last key:
    /// nothing refers to it any more).
    pub fn keys(&self) -> Vec<DimKey> {
        self.slots.read().iter().map(|s| s.key).collect()
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
        assert_eq!(s.key_id(k, 0), s.key_id(k, 0));
        assert_eq!(s.keys()[s.key_id(k, 0) as usize], k);
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
        assert_ne!(email, OTHER, "channels not limited here");
        assert_eq!(s.intern(Some("email")), email);
    }

    #[test]
    fn channels_beyond_the_limit_are_other_but_known_ones_are_always_kept() {
        let s = Symbols::new(
            SymbolLimits {
                channels: 2,
                ..SymbolLimits::NONE
            },
            &["phone", "chat"],
        );
        let a = s.intern_channel(Some("fax"));
        let b = s.intern_channel(Some("pigeon"));
        assert!(a != OTHER && b != OTHER, "two more than the known ones");
        assert_eq!(s.intern_channel(Some("telex")), OTHER);
        assert_eq!(s.channels_overflowed.load(Relaxed), 1);
        assert_eq!(s.intern_channel(Some("fax")), a, "a kept one stays");
        assert_ne!(s.intern_channel(Some("chat")), OTHER, "a known one is kept");
        // A value known as a queue first is still a new channel.
        let q = s.intern(Some("billing"));
        assert_eq!(s.intern_channel(Some("billing")), OTHER);
        assert_eq!(s.intern(Some("billing")), q);
    }

    fn key(s: &Symbols, queue: &str) -> DimKey {
        DimKey {
            channel: s.intern_channel(Some("phone")),
            queue: s.intern(Some(queue)),
            reason: UNKNOWN,
            segment: UNKNOWN,
            site: UNKNOWN,
        }
    }

    #[test]
    fn keys_beyond_the_limit_go_to_the_channels_overflow_key_until_old_ones_are_freed() {
        let s = Symbols::new(
            SymbolLimits {
                keys: 3,
                key_lifetime_ms: 1_000,
                ..SymbolLimits::NONE
            },
            &["phone"],
        );
        let watermark = Arc::new(AtomicI64::new(10_000));
        s.register_watermark(&watermark);
        let ids: Vec<KeyId> = (0..3)
            .map(|i| s.key_id(key(&s, &format!("q{i}")), 10_000))
            .collect();
        let overflow = s.key_id(key(&s, "q3"), 10_000);
        assert!(!ids.contains(&overflow));
        let k = s.keys()[overflow as usize];
        assert_eq!(
            (k.queue, k.reason, k.segment, k.site),
            (OTHER, OTHER, OTHER, OTHER)
        );
        assert_eq!(s.keys_overflowed.load(Relaxed), 1);
        assert_eq!(s.key_id(key(&s, "q0"), 10_000), ids[0], "a kept key stays");
        // q1 and q2 stay in use; q0 is not used again. Much later, q0 is set aside at a
        // first reclaim and freed at the next: a new key takes its id.
        watermark.store(20_000, Relaxed);
        s.touched(ids[1], 19_500);
        s.touched(ids[2], 19_500);
        s.asked_since_reclaim.store(usize::MAX, Relaxed);
        assert_eq!(
            s.key_id(key(&s, "q4"), 20_000),
            overflow,
            "set aside, not yet freed"
        );
        s.asked_since_reclaim.store(usize::MAX, Relaxed);
        let reused = s.key_id(key(&s, "q5"), 20_000);
        assert_eq!(reused, ids[0], "q0's id, freed");
        assert_eq!(s.keys()[reused as usize], key(&s, "q5"));
        assert_eq!(s.keys_freed.load(Relaxed), 1);
        assert_eq!(
            s.key_id(key(&s, "q1"), 20_000),
            ids[1],
            "a key in use keeps its id"
        );
    }

    #[test]
    fn a_key_set_aside_but_touched_again_is_not_freed() {
        let s = Symbols::new(
            SymbolLimits {
                keys: 1,
                key_lifetime_ms: 1_000,
                ..SymbolLimits::NONE
            },
            &["phone"],
        );
        let watermark = Arc::new(AtomicI64::new(0));
        s.register_watermark(&watermark);
        let held = s.key_id(key(&s, "q0"), 0);
        watermark.store(10_000, Relaxed);
        s.key_id(key(&s, "q1"), 10_000); // sets q0 aside
        s.touched(held, 10_000); // an interaction still holding it changes
        s.asked_since_reclaim.store(usize::MAX, Relaxed);
        let other = s.key_id(key(&s, "q2"), 10_000);
        assert_ne!(other, held, "q0's id was touched: not reused");
        assert_eq!(s.keys()[held as usize], key(&s, "q0"));
        // Nothing is freed while an engine has no watermark yet.
        let fresh = Arc::new(AtomicI64::new(i64::MIN));
        s.register_watermark(&fresh);
        assert_eq!(s.floor(), None);
    }
}
