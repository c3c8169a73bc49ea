//! Owns agent capacity state: each agent's timeline of `agent_state` events within the
//! retention, kept sorted by event time so that events may come in any order, and
//! redeliveries recognised.
//!
//! An agent's state at t is that of its latest event with `ts < t` (ties broken by the
//! hash of `event_id`, so every instance orders them alike); its queues and site, those
//! of its latest event with `ts < t` that carries them. Entries older than the retention
//! are folded into the timeline's `base`, the state they leave the agent in.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use vigie_proto::AgentState;

use super::agent_entries::Entries;
use super::store::CHUNK_MS;
use super::symbols::{id_hash, FastHash, Sym, Symbols, UNKNOWN};
use crate::event::EventRecord;

/// One `agent_state` event, interned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentEntry {
    pub ts: i64,
    /// Hash of the `event_id`: redeliveries, and the order of events at the same time.
    pub event: u64,
    pub state: AgentState,
    /// `UNKNOWN` unless away with a reason.
    pub away_reason: Sym,
    /// The queues served from this event on; `None`: unchanged.
    pub queues: Option<Arc<[Sym]>>,
    pub site: Option<Sym>,
    /// The contact being handled (on `on_contact`).
    pub interaction: Option<Arc<str>>,
}

impl AgentEntry {
    pub(super) fn order(&self) -> (i64, u64) {
        (self.ts, self.event)
    }
}

/// What the folded entries leave: the state of the last one, and the queues and site
/// carried last. Every entry before `until` is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentBase {
    pub until: i64,
    /// The last folded entry, its `queues` and `site` replaced by the effective ones.
    pub last: AgentEntry,
    /// When the state of `last` began (a run of equal states keeps its start).
    pub since: i64,
}

/// One agent's events within the retention.
#[derive(Clone, Debug)]
pub(crate) struct AgentTimeline {
    pub id: Arc<str>,
    pub base: Option<AgentBase>,
    /// Sorted by (ts, event).
    pub entries: Entries,
}

impl AgentTimeline {
    fn new(id: &str) -> AgentTimeline {
        AgentTimeline {
            id: Arc::from(id),
            base: None,
            entries: Entries::default(),
        }
    }

    /// Inserts `entry` in order; `false` if its event is already there (a redelivery).
    pub(crate) fn insert(&mut self, entry: AgentEntry) -> bool {
        if self.entries.iter().any(|e| e.event == entry.event)
            || self
                .base
                .as_ref()
                .is_some_and(|b| b.last.event == entry.event)
        {
            return false;
        }
        self.entries.insert(entry);
        true
    }

    /// Removes the entry of `event`, if held.
    pub(crate) fn remove(&mut self, event: u64) {
        self.entries.remove(event);
    }

    /// Folds the entries before `before` into the base.
    pub(crate) fn fold_before(&mut self, before: i64) -> usize {
        let n = self.entries.partition_point(|e| e.ts < before);
        self.fold_first(n, before);
        n
    }

    /// Folds the first `n` entries into the base, which then covers times before `until`.
    fn fold_first(&mut self, n: usize, until: i64) {
        if n == 0 {
            return;
        }
        let mut walk = Walk::start(self.base.as_ref());
        for e in &self.entries[..n] {
            walk.step(e);
        }
        let base = walk.into_base(until);
        self.entries.drain_front(n);
        if let Some(base) = base {
            self.base = Some(base);
        }
    }

    /// Walks the timeline up to `to` (exclusive), calling `f` for each span of constant
    /// state, queues and site: [start, end) with `end <= to`.
    #[cfg(test)]
    pub(crate) fn spans<'t>(&'t self, to: i64, f: impl FnMut(&Span<'t>)) {
        self.spans_between(i64::MIN, to, f);
    }

    /// Like [`AgentTimeline::spans`], but only the spans that end after `from` (and the
    /// one in force at `from`): a snapshot's window, without walking the whole retention.
    pub(crate) fn spans_between<'t>(&'t self, from: i64, to: i64, mut f: impl FnMut(&Span<'t>)) {
        // Entries before the base's end (late ones, folded over) are not walked.
        let skip = match (&self.base, self.entries.first()) {
            (Some(b), Some(e)) if e.ts < b.until => {
                self.entries.partition_point(|e| e.ts < b.until)
            }
            _ => 0,
        };
        // The state in force at `from`: that after the last change before it.
        let first = skip + self.entries[skip..].partition_point(|e| e.ts < from);
        let mut walk = Walk::at(self.base.as_ref(), &self.entries, skip..first);
        for e in &self.entries[first..] {
            if e.ts >= to {
                break;
            }
            if let Some(span) = walk.span_until(e.ts) {
                f(&span);
            }
            walk.step(e);
        }
        if let Some(span) = walk.span_until(to) {
            f(&span);
        }
    }
}

/// The effective state while walking a timeline (borrowing its entries: no copy).
#[derive(Clone, Copy, Debug, Default)]
struct Walk<'a> {
    /// The latest entry applied, if any.
    last: Option<&'a AgentEntry>,
    queues: Option<&'a Arc<[Sym]>>,
    site: Option<Sym>,
    since: i64,
}

/// A stretch of time in one state, with the queues and site that held then.
#[derive(Debug)]
pub(crate) struct Span<'a> {
    pub start: i64,
    pub end: i64,
    pub state: AgentState,
    pub away_reason: Sym,
    pub queues: &'a [Sym],
    pub site: Sym,
    /// When this state began (earlier than `start` when a change kept the state).
    pub since: i64,
    pub interaction: Option<&'a Arc<str>>,
}

/// The same state, for the start of a span (a change that keeps the state keeps its start).
fn same_run(a: &AgentEntry, b: &AgentEntry) -> bool {
    a.state == b.state
        && a.away_reason == b.away_reason
        && (b.state != AgentState::OnContact || same_contact(&a.interaction, &b.interaction))
}

/// Whether two entries name the same contact. The pointers first: `Arc<str>`'s `==`
/// compares the text even of one allocation with itself, which reads it from memory.
fn same_contact(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

impl<'a> Walk<'a> {
    fn start(base: Option<&'a AgentBase>) -> Walk<'a> {
        match base {
            Some(b) => Walk {
                queues: b.last.queues.as_ref(),
                site: b.last.site,
                since: b.since,
                last: Some(&b.last),
            },
            None => Walk::default(),
        }
    }

    /// The walk as it stands after `entries[range]` (the first entries after the base),
    /// found from the end: the last entry, the last queues and site given, the run's start.
    fn at(
        base: Option<&'a AgentBase>,
        entries: &'a Entries,
        range: std::ops::Range<usize>,
    ) -> Walk<'a> {
        let before = &entries[range.clone()];
        let Some(last) = before.last() else {
            return Walk::start(base);
        };
        let from_base = Walk::start(base);
        let queues = entries
            .last_queues(range.start, range.end)
            .or(from_base.queues);
        let site = entries.last_site(range.start, range.end).or(from_base.site);
        let run = before
            .iter()
            .rev()
            .take_while(|e| same_run(e, last))
            .count();
        let since = if run == before.len() && from_base.last.is_some_and(|b| same_run(b, last)) {
            from_base.since
        } else {
            before[before.len() - run].ts
        };
        Walk {
            last: Some(last),
            queues,
            site,
            since,
        }
    }

    fn step(&mut self, e: &'a AgentEntry) {
        if !self.last.is_some_and(|l| same_run(l, e)) {
            self.since = e.ts;
        }
        if e.queues.is_some() {
            self.queues = e.queues.as_ref();
        }
        if e.site.is_some() {
            self.site = e.site;
        }
        self.last = Some(e);
    }

    fn span_until(&self, end: i64) -> Option<Span<'a>> {
        let last = self.last?;
        Some(Span {
            start: last.ts,
            end,
            state: last.state,
            away_reason: last.away_reason,
            queues: self.queues.map_or(&[], |q| &q[..]),
            site: self.site.unwrap_or(UNKNOWN),
            since: self.since,
            interaction: last.interaction.as_ref(),
        })
    }

    fn into_base(self, until: i64) -> Option<AgentBase> {
        let mut last = self.last?.clone();
        last.queues = self.queues.cloned();
        last.site = self.site;
        Some(AgentBase {
            until,
            last,
            since: self.since,
        })
    }
}

/// An agent's queues as a set of symbols (sorted, once each): the same skills compare
/// equal however an event listed them.
pub(crate) fn skills<'a>(symbols: &Symbols, queues: impl Iterator<Item = &'a str>) -> Arc<[Sym]> {
    let mut syms: Vec<Sym> = queues.map(|q| symbols.intern(Some(q))).collect();
    syms.sort_unstable();
    syms.dedup();
    syms.into()
}

/// Why an agent event was not kept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AgentRefusal {
    Duplicate,
    /// A new agent beyond `engine.max_agents`.
    TooManyAgents,
}

/// Every agent of one partition (or of a replica of one).
#[derive(Debug, Default)]
pub(crate) struct AgentBook {
    agents: DashMap<u64, AgentTimeline, FastHash>,
    /// Chunk starts changed since last taken (scale-out); `None`: not tracked.
    changed: Mutex<Option<BTreeSet<i64>>>,
    /// New agents refused because `engine.max_agents` were known.
    pub refused: AtomicU64,
    /// Oldest changes of one agent folded early, beyond `engine.max_agent_changes`.
    pub folded: AtomicU64,
    /// Every skill set in use, once: agents with the same skills share one allocation,
    /// which a snapshot then reads from the cache rather than once per agent. Sets no
    /// entry holds any more are dropped when the book is folded (a replica's: when its
    /// bases are replaced).
    skill_sets: Mutex<HashSet<Arc<[Sym]>, FastHash>>,
}

impl AgentBook {
    /// Applies a validated `agent_state` event.
    pub(crate) fn apply(
        &self,
        ev: &EventRecord<'_>,
        symbols: &Symbols,
        max_agents: usize,
        max_changes: usize,
    ) -> Result<(), AgentRefusal> {
        let (Some(agent), Some(state)) = (ev.agent_id.as_deref(), ev.agent_state) else {
            return Err(AgentRefusal::Duplicate);
        };
        let entry = AgentEntry {
            ts: ev.ts_ms,
            event: id_hash(&ev.event_id),
            state,
            away_reason: if state == AgentState::Away {
                symbols.intern(ev.away_reason.as_deref())
            } else {
                UNKNOWN
            },
            queues: ev
                .queues
                .as_ref()
                .map(|q| self.shared(skills(symbols, q.iter().map(|q| q.as_ref())))),
            site: ev.site.as_deref().map(|s| symbols.intern(Some(s))),
            interaction: (state == AgentState::OnContact && !ev.interaction_id.is_empty())
                .then(|| Arc::from(&*ev.interaction_id)),
        };
        let key = id_hash(agent);
        if !self.agents.contains_key(&key) && self.agents.len() >= max_agents {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(AgentRefusal::TooManyAgents);
        }
        let ts = entry.ts;
        let mut timeline = self
            .agents
            .entry(key)
            .or_insert_with(|| AgentTimeline::new(agent));
        if !timeline.insert(entry) {
            return Err(AgentRefusal::Duplicate);
        }
        let excess = timeline.entries.len().saturating_sub(max_changes);
        if excess > 0 {
            let until = timeline.entries[excess].ts;
            timeline.fold_first(excess, until);
            self.folded.fetch_add(excess as u64, Ordering::Relaxed);
        }
        drop(timeline);
        self.mark_changed(ts);
        Ok(())
    }

    /// The book's copy of a skill set.
    fn shared(&self, skills: Arc<[Sym]>) -> Arc<[Sym]> {
        let mut sets = self.skill_sets.lock();
        if let Some(known) = sets.get(&skills[..]) {
            return known.clone();
        }
        sets.insert(skills.clone());
        skills
    }

    fn mark_changed(&self, ts: i64) {
        if let Some(changed) = self.changed.lock().as_mut() {
            changed.insert(ts.div_euclid(CHUNK_MS) * CHUNK_MS);
        }
    }

    /// Agents known.
    pub(crate) fn len(&self) -> usize {
        self.agents.len()
    }

    /// Folds what is older than `before` into each timeline's base, and forgets agents
    /// logged out since before it.
    pub(crate) fn fold_before(&self, before: i64) {
        self.agents.retain(|_, t| {
            t.fold_before(before);
            !(t.entries.is_empty()
                && t.base
                    .as_ref()
                    .is_none_or(|b| b.last.state == AgentState::LoggedOut))
        });
        self.forget_unused_skills();
    }

    /// Drops the skill sets no entry holds any more.
    fn forget_unused_skills(&self) {
        self.skill_sets.lock().retain(|s| Arc::strong_count(s) > 1);
    }

    /// Calls `f` with every timeline.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&AgentTimeline)) {
        // Timelines are read in blocks, each block's entries (an allocation per agent,
        // seldom in the cache) touched all at once first: their cache misses then
        // overlap, rather than stall the walk one agent after the other.
        const BLOCK: usize = 32;
        let mut block = Vec::with_capacity(BLOCK);
        let mut timelines = self.agents.iter();
        loop {
            block.extend(timelines.by_ref().take(BLOCK));
            if block.is_empty() {
                return;
            }
            for t in &block {
                t.value().entries.touch();
            }
            for t in block.drain(..) {
                f(t.value());
            }
        }
    }

    /// Starts remembering which chunks change (scale-out).
    pub(crate) fn track_changes(&self) {
        let mut changed = self.changed.lock();
        if changed.is_none() {
            *changed = Some(BTreeSet::new());
        }
    }

    /// Starts of the chunks changed since the last call.
    pub(crate) fn take_changed(&self) -> BTreeSet<i64> {
        self.changed
            .lock()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Starts of the chunks holding entries.
    pub(crate) fn chunk_starts(&self) -> BTreeSet<i64> {
        let mut all = BTreeSet::new();
        for t in self.agents.iter() {
            all.extend(
                t.entries
                    .iter()
                    .map(|e| e.ts.div_euclid(CHUNK_MS) * CHUNK_MS),
            );
        }
        all
    }

    /// The entries with `ts` in `[from, to)`, with their agent, in order.
    pub(crate) fn entries_between(&self, from: i64, to: i64) -> Vec<(Arc<str>, AgentEntry)> {
        let mut out = Vec::new();
        for t in self.agents.iter() {
            let first = t.entries.partition_point(|e| e.ts < from);
            out.extend(
                t.entries[first..]
                    .iter()
                    .take_while(|e| e.ts < to)
                    .map(|e| (t.id.clone(), e.clone())),
            );
        }
        out.sort_by(|a, b| (a.1.order(), &a.0).cmp(&(b.1.order(), &b.0)));
        out
    }

    /// Every agent's base (what the folded entries left).
    pub(crate) fn bases(&self) -> Vec<(Arc<str>, AgentBase)> {
        let mut out: Vec<_> = self
            .agents
            .iter()
            .filter_map(|t| Some((t.id.clone(), t.base.clone()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Replica side: inserts an entry of `agent` (already known events are left alone).
    pub(crate) fn insert(&self, agent: &str, mut entry: AgentEntry) {
        entry.queues = entry.queues.map(|q| self.shared(q));
        self.agents
            .entry(id_hash(agent))
            .or_insert_with(|| AgentTimeline::new(agent))
            .insert(entry);
    }

    /// Replica side: removes an entry of `agent`.
    pub(crate) fn remove(&self, agent: &str, event: u64) {
        let key = id_hash(agent);
        let empty = self.agents.get_mut(&key).is_some_and(|mut t| {
            t.remove(event);
            t.entries.is_empty() && t.base.is_none()
        });
        if empty {
            self.agents.remove(&key);
        }
    }

    /// Replica side: replaces every base with the owner's.
    pub(crate) fn set_bases(&self, bases: Vec<(Arc<str>, AgentBase)>) {
        let mut by_key: std::collections::HashMap<u64, (Arc<str>, AgentBase), FastHash> = bases
            .into_iter()
            .map(|(id, b)| (id_hash(&id), (id, b)))
            .collect();
        self.agents.retain(|key, t| {
            t.base = by_key.remove(key).map(|(_, b)| b);
            if let Some(until) = t.base.as_ref().map(|b| b.until) {
                t.entries.retain(|e| e.ts >= until);
            }
            !(t.entries.is_empty() && t.base.is_none())
        });
        for (key, (id, base)) in by_key {
            let mut t = AgentTimeline::new(&id);
            t.base = Some(base);
            self.agents.insert(key, t);
        }
        self.forget_unused_skills();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, event: u64, state: AgentState, queues: Option<&[Sym]>) -> AgentEntry {
        AgentEntry {
            ts,
            event,
            state,
            away_reason: UNKNOWN,
            queues: queues.map(Arc::from),
            site: None,
            interaction: None,
        }
    }

    fn states(t: &AgentTimeline, to: i64) -> Vec<(i64, i64, AgentState, Vec<Sym>, i64)> {
        let mut out = Vec::new();
        t.spans(to, |s| {
            out.push((s.start, s.end, s.state, s.queues.to_vec(), s.since));
        });
        out
    }

    #[test]
    fn events_in_any_order_give_the_same_spans_and_redeliveries_count_once() {
        use AgentState::*;
        let events = [
            entry(100, 1, Available, Some(&[5])),
            entry(200, 2, OnContact, None),
            entry(300, 3, AfterContactWork, None),
            entry(350, 4, Available, Some(&[5, 6])),
            entry(400, 5, Available, None),
        ];
        let mut in_order = AgentTimeline::new("a");
        for e in events.iter().cloned() {
            assert!(in_order.insert(e));
        }
        let mut shuffled = AgentTimeline::new("a");
        for i in [3, 0, 4, 2, 1, 3, 0] {
            shuffled.insert(events[i].clone());
        }
        assert_eq!(shuffled.entries, in_order.entries);
        assert_eq!(
            states(&in_order, 500),
            vec![
                (100, 200, Available, vec![5], 100),
                (200, 300, OnContact, vec![5], 200),
                (300, 350, AfterContactWork, vec![5], 300),
                (350, 400, Available, vec![5, 6], 350),
                (400, 500, Available, vec![5, 6], 350),
            ]
        );
        assert_eq!(
            states(&in_order, 150),
            vec![(100, 150, Available, vec![5], 100)]
        );
        assert!(
            states(&in_order, 100).is_empty(),
            "state at t: events with ts < t"
        );
    }

    #[test]
    fn folding_keeps_the_state_queues_and_start_of_the_run() {
        use AgentState::*;
        let mut t = AgentTimeline::new("a");
        t.insert(entry(100, 1, Available, Some(&[5])));
        t.insert(entry(200, 2, Available, None));
        t.insert(entry(300, 3, Away, None));
        let before = states(&t, 1_000);
        assert_eq!(t.fold_before(250), 2);
        assert_eq!(t.entries.len(), 1);
        let after = states(&t, 1_000);
        assert_eq!(after.last(), before.last());
        assert_eq!(after[0], (200, 300, Available, vec![5], 100));
        assert!(
            !t.insert(entry(200, 2, Available, None)),
            "a redelivery of the last folded event is still recognised"
        );
    }

    proptest::proptest! {
        /// A window's walk starts at the change in force at `from` and gives exactly the
        /// spans of the whole walk that reach `from`, with the same run starts, folded
        /// base or not.
        #[test]
        fn the_window_walk_is_the_tail_of_the_whole_walk(
            changes in proptest::collection::vec((1i64..100, 0usize..5, proptest::option::of(0u32..4)), 1..30),
            fold in 0i64..3_000,
            from in 0i64..3_000,
            to in 0i64..3_500,
        ) {
            proptest::prop_assume!(from < to, "a window");
            let mut t = AgentTimeline::new("a");
            let mut ts = 0;
            for (i, (gap, state, queue)) in changes.into_iter().enumerate() {
                ts += gap;
                let queues = queue.map(|q| vec![q]);
                t.insert(entry(ts, i as u64, AgentState::ALL[state], queues.as_deref()));
            }
            t.fold_before(fold);
            let whole = states(&t, to);
            let mut tail = Vec::new();
            t.spans_between(from, to, |s| {
                tail.push((s.start, s.end, s.state, s.queues.to_vec(), s.since));
            });
            let want: Vec<_> = whole.into_iter().filter(|s| s.1 >= from).collect();
            proptest::prop_assert_eq!(tail, want);
        }
    }
}
