//! Owns one agent's list of state changes in order, with an index of the few that carry
//! queues or a site.
//!
//! An agent usually gives its queues and site once, at login, and changes state every
//! few minutes after that. To know the queues in force at the start of a snapshot's
//! window, walking back from there to the login reads every change of the shift; the
//! index finds the last one that carried queues with two binary searches instead. It is
//! kept in step by every change of the list, which only this module can make.

use std::ops::Deref;
use std::sync::Arc;

use super::agents::AgentEntry;
use super::symbols::Sym;

/// Where an entry sorts: `(ts, event hash)`, unique within one agent.
type Order = (i64, u64);

/// Entries sorted by [`AgentEntry::order`], read as a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    list: Vec<AgentEntry>,
    /// The entries carrying queues: their orders and queues, sorted.
    with_queues: Vec<(Order, Arc<[Sym]>)>,
    /// The entries carrying a site: their orders and sites, sorted.
    with_site: Vec<(Order, Sym)>,
}

impl Deref for Entries {
    type Target = [AgentEntry];

    fn deref(&self) -> &[AgentEntry] {
        &self.list
    }
}

impl Entries {
    /// Inserts `entry` where it sorts (its order must not be held already).
    pub(crate) fn insert(&mut self, entry: AgentEntry) {
        let order = entry.order();
        let at = self.list.partition_point(|e| e.order() < order);
        if let Some(queues) = &entry.queues {
            insert_sorted(&mut self.with_queues, (order, queues.clone()));
        }
        if let Some(site) = entry.site {
            insert_sorted(&mut self.with_site, (order, site));
        }
        self.list.insert(at, entry);
    }

    /// Removes the entry of `event`, if held.
    pub(crate) fn remove(&mut self, event: u64) {
        let Some(at) = self.list.iter().position(|e| e.event == event) else {
            return;
        };
        let order = self.list.remove(at).order();
        if let Ok(i) = self.with_queues.binary_search_by(|(m, _)| m.cmp(&order)) {
            self.with_queues.remove(i);
        }
        if let Ok(i) = self.with_site.binary_search_by(|(m, _)| m.cmp(&order)) {
            self.with_site.remove(i);
        }
    }

    /// Keeps only the entries `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&AgentEntry) -> bool) {
        self.list.retain(|e| keep(e));
        self.reindex();
    }

    /// Removes the first `n` entries.
    pub(crate) fn drain_front(&mut self, n: usize) {
        let n = n.min(self.list.len());
        let Some(last) = n.checked_sub(1).map(|i| self.list[i].order()) else {
            return;
        };
        self.list.drain(..n);
        drain_until(&mut self.with_queues, last);
        drain_until(&mut self.with_site, last);
    }

    /// The queues of the last entry of `self[from..to]` that carries some.
    pub(crate) fn last_queues(&self, from: usize, to: usize) -> Option<&Arc<[Sym]>> {
        self.last_marked(&self.with_queues, from, to)
    }

    /// The site of the last entry of `self[from..to]` that carries one.
    pub(crate) fn last_site(&self, from: usize, to: usize) -> Option<Sym> {
        self.last_marked(&self.with_site, from, to).copied()
    }

    fn last_marked<'s, T>(&self, marks: &'s [(Order, T)], from: usize, to: usize) -> Option<&'s T> {
        if from >= to {
            return None;
        }
        let (first, last) = (self.list.get(from)?.order(), self.list.get(to - 1)?.order());
        let before = marks.partition_point(|(m, _)| *m <= last);
        let (mark, value) = marks[..before].last()?;
        (*mark >= first).then_some(value)
    }

    /// Reads the newest entries (those a window of the last minutes walks) and the
    /// index, for the cache (see [`super::agents::AgentBook::for_each`]).
    pub(crate) fn touch(&self) {
        for e in self.list.iter().rev().take(TOUCHED) {
            std::hint::black_box(e.ts);
        }
        std::hint::black_box(self.with_queues.first().map(|m| m.0));
        std::hint::black_box(self.with_site.first().map(|m| m.0));
    }

    fn reindex(&mut self) {
        self.with_queues = self
            .list
            .iter()
            .filter_map(|e| Some((e.order(), e.queues.clone()?)))
            .collect();
        self.with_site = self
            .list
            .iter()
            .filter_map(|e| Some((e.order(), e.site?)))
            .collect();
    }
}

/// Entries [`Entries::touch`] reads: enough for an hour of an agent's changes.
const TOUCHED: usize = 16;

fn insert_sorted<T>(marks: &mut Vec<(Order, T)>, mark: (Order, T)) {
    let at = marks.partition_point(|(m, _)| *m < mark.0);
    marks.insert(at, mark);
}

/// Drops the marks of entries up to `last` (included).
fn drain_until<T>(marks: &mut Vec<(Order, T)>, last: Order) {
    let gone = marks.partition_point(|(m, _)| *m <= last);
    marks.drain(..gone);
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use vigie_proto::AgentState;

    use super::*;

    /// The same lookups by walking back, as the index replaces.
    fn walked_queues(list: &[AgentEntry], from: usize, to: usize) -> Option<&Arc<[Sym]>> {
        list.get(from..to)?
            .iter()
            .rev()
            .find_map(|e| e.queues.as_ref())
    }

    fn walked_site(list: &[AgentEntry], from: usize, to: usize) -> Option<Sym> {
        list.get(from..to)?.iter().rev().find_map(|e| e.site)
    }

    #[test]
    fn the_index_finds_what_walking_back_finds_through_every_change() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for _ in 0..50 {
            let mut entries = Entries::default();
            let mut event = 0u64;
            for _ in 0..300 {
                match rng.random_range(0..10) {
                    0..=5 => {
                        event += 1;
                        let queues = rng
                            .random_bool(0.15)
                            .then(|| Arc::from(vec![rng.random_range(0..5u32)]));
                        let entry = AgentEntry {
                            ts: rng.random_range(0..400),
                            event,
                            state: AgentState::Available,
                            away_reason: 0,
                            queues,
                            site: rng.random_bool(0.1).then(|| rng.random_range(0..3u32)),
                            interaction: None,
                        };
                        entries.insert(entry);
                    }
                    6 => {
                        let n = rng.random_range(0..=entries.len().min(5) + 1);
                        entries.drain_front(n);
                    }
                    7 => {
                        let cut = rng.random_range(0..400);
                        entries.retain(|e| e.ts >= cut || e.event % 3 == 0);
                    }
                    8 if !entries.is_empty() => {
                        let gone = entries[rng.random_range(0..entries.len())].event;
                        entries.remove(gone);
                        assert!(entries.iter().all(|e| e.event != gone));
                    }
                    _ => {}
                }
                let list: Vec<AgentEntry> = entries.to_vec();
                assert!(list.windows(2).all(|w| w[0].order() < w[1].order()));
                let n = list.len();
                for _ in 0..5 {
                    let from = rng.random_range(0..=n);
                    let to = rng.random_range(from..=n);
                    assert_eq!(
                        entries.last_queues(from, to),
                        walked_queues(&list, from, to)
                    );
                    assert_eq!(entries.last_site(from, to), walked_site(&list, from, to));
                }
            }
        }
    }
}
