//! Owns what a snapshot reads from the agents: staffing at `to` and occupancy over the
//! window per scope (total, queue, channel, breakdown row), and the agent list.
//!
//! An agent counts once in the total, in every queue it serves, in every channel of those
//! queues (a queue's channels are those of its contacts in the window: a queue without
//! contacts has none), and in its site. Filters on queue, channel and site apply to
//! agents; reason and segment do not (agents are not per contact reason).

use std::collections::{BTreeMap, HashMap};

use vigie_proto::{AgentList, AgentRow, AgentState, Staffing, WindowBounds};

use super::agents::{AgentBook, AgentTimeline};
use super::snapshot::{Dimension, DimensionFilter};
use super::symbols::{FastHash, Sym, Symbols, UNKNOWN};

/// Staffing and occupancy of one scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Tally {
    pub staffing: Staffing,
    /// Time on contact or in after-contact work, ms.
    pub busy_ms: i64,
    /// Time available, on contact or in after-contact work, ms.
    pub productive_ms: i64,
}

impl Tally {
    pub(super) fn occupancy(&self) -> Option<f64> {
        (self.productive_ms > 0).then(|| self.busy_ms as f64 / self.productive_ms as f64)
    }
}

/// The channels of each queue, from the contacts of the window.
pub(super) type QueueChannels = HashMap<Sym, Vec<Sym>, FastHash>;

/// Capacity of every scope of a snapshot.
#[derive(Debug, Default)]
pub(super) struct Capacity {
    /// Some agent is known: the snapshot carries staffing.
    pub any: bool,
    pub total: Tally,
    pub by_channel: BTreeMap<Sym, Tally>,
    pub by_queue: BTreeMap<Sym, Tally>,
    /// Per breakdown row, when the breakdown is by channel, queue and site only.
    pub breakdown: BTreeMap<Vec<Sym>, Tally>,
}

/// Whether a breakdown by `dims` is well defined for agents.
pub(super) fn breakdown_has_agents(dims: &[Dimension]) -> bool {
    !dims.is_empty()
        && dims
            .iter()
            .all(|d| matches!(d, Dimension::Channel | Dimension::Queue | Dimension::Site))
}

/// The agent-relevant part of a filter, as symbols (`Some(None)`: a value never seen).
struct AgentFilter {
    channel: Option<Option<Sym>>,
    queue: Option<Option<Sym>>,
    site: Option<Option<Sym>>,
}

impl AgentFilter {
    fn new(filter: &DimensionFilter, symbols: &Symbols) -> AgentFilter {
        let get = |dim: Dimension| filter.get(dim).map(|v| symbols.lookup(v));
        AgentFilter {
            channel: get(Dimension::Channel),
            queue: get(Dimension::Queue),
            site: get(Dimension::Site),
        }
    }

    fn site_matches(&self, site: Sym) -> bool {
        self.site.is_none_or(|s| s == Some(site))
    }

    /// Whether one queue of an agent is in the filter's scope.
    fn queue_matches(&self, queue: Sym, channels: &QueueChannels) -> bool {
        self.queue.is_none_or(|q| q == Some(queue))
            && self.channel.is_none_or(|c| {
                c.is_some_and(|c| channels.get(&queue).is_some_and(|cs| cs.contains(&c)))
            })
    }

    fn restricts_queues(&self) -> bool {
        self.queue.is_some() || self.channel.is_some()
    }
}

/// The scopes one span of an agent counts in.
struct Scopes {
    queues: Vec<Sym>,
    channels: Vec<Sym>,
    rows: Vec<Vec<Sym>>,
    counts: bool,
}

fn scopes_of(
    span_queues: &[Sym],
    span_site: Sym,
    filter: &AgentFilter,
    channels: &QueueChannels,
    breakdown: &[Dimension],
) -> Scopes {
    let queues: Vec<Sym> = span_queues
        .iter()
        .copied()
        .filter(|q| filter.queue_matches(*q, channels))
        .collect();
    let counts =
        filter.site_matches(span_site) && (!filter.restricts_queues() || !queues.is_empty());
    let mut chans: Vec<Sym> = queues
        .iter()
        .flat_map(|q| channels.get(q).into_iter().flatten().copied())
        .filter(|c| filter.channel.is_none_or(|f| f == Some(*c)))
        .collect();
    chans.sort_unstable();
    chans.dedup();
    let mut rows: Vec<Vec<Sym>> = vec![Vec::new()];
    if breakdown_has_agents(breakdown) {
        for d in breakdown {
            let values: Vec<Sym> = match d {
                Dimension::Channel => chans.clone(),
                Dimension::Queue => queues.clone(),
                _ => vec![span_site],
            };
            rows = rows
                .iter()
                .flat_map(|r| {
                    values.iter().map(move |v| {
                        let mut r = r.clone();
                        r.push(*v);
                        r
                    })
                })
                .collect();
        }
        rows.sort_unstable();
        rows.dedup();
    } else {
        rows.clear();
    }
    Scopes {
        queues,
        channels: chans,
        rows,
        counts,
    }
}

/// Staffing at `bounds.to` and occupancy over `bounds` of the agents of `books`.
pub(super) fn capacity(
    books: &[&AgentBook],
    bounds: WindowBounds,
    filter: &DimensionFilter,
    symbols: &Symbols,
    channels: &QueueChannels,
    breakdown: &[Dimension],
) -> Capacity {
    let filter = AgentFilter::new(filter, symbols);
    let mut out = Capacity::default();
    // Agents are summed per skill set (queues and site) first: a centre has thousands of
    // agents and a few dozen skill sets, whose scopes are then computed and filled once.
    let mut by_skills: HashMap<Box<[Sym]>, Acc, FastHash> = HashMap::default();
    // The key of a skill set (queues, then site), built in one reused buffer: a new
    // set is allocated once, a known one not at all.
    let mut key: Vec<Sym> = Vec::new();
    for book in books {
        out.any |= book.len() > 0;
        book.for_each(|timeline| {
            let mut current: Option<(*const [Sym], Sym)> = None;
            let mut time = Time::default();
            let mut live: Option<(AgentState, Sym)> = None;
            let mut flush = |q: &[Sym], site: Sym, time: &Time, live: Option<(AgentState, Sym)>| {
                if !time.touched && live.is_none() {
                    return;
                }
                key.clear();
                key.extend_from_slice(q);
                key.push(site);
                if !by_skills.contains_key(key.as_slice()) {
                    by_skills.insert(key.as_slice().into(), Acc::default());
                }
                let Some(acc) = by_skills.get_mut(key.as_slice()) else {
                    return;
                };
                acc.time.add(time);
                if let Some((state, reason)) = live {
                    acc.live.push((state, reason));
                }
            };
            let mut last_queues: &[Sym] = &[];
            timeline.spans_between(bounds.from, bounds.to, |span| {
                let same = current
                    .is_some_and(|(q, site)| std::ptr::eq(q, span.queues) && site == span.site);
                if !same {
                    if let Some((_, site)) = current {
                        flush(last_queues, site, &time, None);
                    }
                    time = Time::default();
                    current = Some((span.queues as *const [Sym], span.site));
                }
                last_queues = span.queues;
                let ms = span.end.min(bounds.to) - span.start.max(bounds.from);
                if ms > 0 {
                    time.touched = true;
                    if span.state.is_busy() {
                        time.busy_ms += ms;
                    }
                    if span.state.is_productive() {
                        time.productive_ms += ms;
                    }
                }
                if span.end == bounds.to {
                    live = Some((span.state, span.away_reason));
                }
            });
            if let Some((_, site)) = current {
                flush(last_queues, site, &time, live);
            }
        });
    }
    let mut reasons: HashMap<Sym, std::sync::Arc<str>, FastHash> = HashMap::default();
    for (skills, acc) in &by_skills {
        let (site, queues) = skills
            .split_last()
            .map_or((UNKNOWN, &[][..]), |(s, q)| (*s, q));
        let scopes = scopes_of(queues, site, &filter, channels, breakdown);
        if !scopes.counts {
            continue;
        }
        if acc.time.touched {
            scopes.each(&mut out, |t| {
                t.busy_ms += acc.time.busy_ms;
                t.productive_ms += acc.time.productive_ms;
            });
        }
        for &(state, reason) in &acc.live {
            let reason = (state == AgentState::Away).then(|| {
                reasons
                    .entry(reason)
                    .or_insert_with(|| {
                        if reason == UNKNOWN {
                            std::sync::Arc::from(vigie_proto::UNKNOWN_VALUE)
                        } else {
                            symbols.name(reason)
                        }
                    })
                    .clone()
            });
            scopes.each(&mut out, |t| t.staffing.add(state, reason.as_deref()));
        }
    }
    out
}

/// The agents of one skill set: their time in the window, their states at its end.
#[derive(Default)]
struct Acc {
    time: Time,
    live: Vec<(AgentState, Sym)>,
}

/// The time of an agent's spans in one set of scopes, not yet added to them.
#[derive(Default)]
struct Time {
    busy_ms: i64,
    productive_ms: i64,
    /// Some span of these scopes lies in the window (the scopes are listed even at 0).
    touched: bool,
}

impl Time {
    fn add(&mut self, other: &Time) {
        self.busy_ms += other.busy_ms;
        self.productive_ms += other.productive_ms;
        self.touched |= other.touched;
    }
}

impl Scopes {
    /// Applies `f` to the total and to every scope of these.
    fn each(&self, out: &mut Capacity, mut f: impl FnMut(&mut Tally)) {
        f(&mut out.total);
        for q in &self.queues {
            f(out.by_queue.entry(*q).or_default());
        }
        for c in &self.channels {
            f(out.by_channel.entry(*c).or_default());
        }
        for r in &self.rows {
            f(out.breakdown.entry(r.clone()).or_default());
        }
    }
}

/// What the agent list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentQuery {
    pub queue: Option<String>,
    pub site: Option<String>,
    /// `None`: every state but `logged_out`.
    pub state: Option<AgentState>,
    pub offset: usize,
    pub limit: usize,
}

impl AgentQuery {
    /// The first `limit` agents of the queue and site of a snapshot filter.
    pub fn of_filter(filter: &DimensionFilter, limit: usize) -> AgentQuery {
        let get = |dim: Dimension| filter.get(dim).map(str::to_string);
        AgentQuery {
            queue: get(Dimension::Queue),
            site: get(Dimension::Site),
            state: None,
            offset: 0,
            limit,
        }
    }
}

/// The agent list at `bounds.to`, contacts handled counted over `bounds`.
pub(super) fn agent_list(
    books: &[&AgentBook],
    bounds: WindowBounds,
    query: &AgentQuery,
    symbols: &Symbols,
) -> AgentList {
    let queue = query.queue.as_deref().map(|q| symbols.lookup(q));
    let site = query.site.as_deref().map(|s| symbols.lookup(s));
    let mut rows = Vec::new();
    for book in books {
        book.for_each(|t| {
            if let Some(row) = row_of(t, bounds, symbols) {
                let (queues, site_sym) = row.1;
                let keep = queue.is_none_or(|q| q.is_some_and(|q| queues.contains(&q)))
                    && site.is_none_or(|s| s == Some(site_sym))
                    && match query.state {
                        Some(state) => row.0.state == Some(state),
                        None => row.0.state != Some(AgentState::LoggedOut),
                    };
                if keep {
                    rows.push(row.0);
                }
            }
        });
    }
    rows.sort_by(|a, b| (a.state, a.since, &a.agent_id).cmp(&(b.state, b.since, &b.agent_id)));
    let total = rows.len();
    let end = query.offset.saturating_add(query.limit).min(total);
    let page: Vec<AgentRow> = rows
        .into_iter()
        .skip(query.offset)
        .take(end.saturating_sub(query.offset))
        .collect();
    AgentList {
        at: bounds.to,
        total: total as u64,
        agents: page,
        next_offset: (end < total).then_some(end as u64),
    }
}

/// One agent's row, with its queues and site at `to` (for filtering).
fn row_of(
    t: &AgentTimeline,
    bounds: WindowBounds,
    symbols: &Symbols,
) -> Option<(AgentRow, (Vec<Sym>, Sym))> {
    let mut last: Option<(AgentRow, (Vec<Sym>, Sym))> = None;
    // Start of the contact being handled (on contact, then its after-contact work).
    let mut contact: Option<i64> = None;
    let (mut handled, mut handle_ms) = (0u64, 0i64);
    t.spans_between(bounds.from, bounds.to, |span| {
        let new_contact = span.state == AgentState::OnContact && span.since == span.start;
        if let Some(start) = contact {
            if new_contact || !span.state.is_busy() {
                if (bounds.from..bounds.to).contains(&span.start) {
                    handled += 1;
                    handle_ms += span.start - start;
                }
                contact = None;
            }
        }
        if span.state == AgentState::OnContact && contact.is_none() {
            contact = Some(span.since);
        }
        if span.end == bounds.to {
            let name = |s: Sym| symbols.name(s).to_string();
            last = Some((
                AgentRow {
                    agent_id: t.id.to_string(),
                    state: Some(span.state),
                    since: span.since,
                    time_in_state_ms: bounds.to - span.since,
                    away_reason: (span.state == AgentState::Away && span.away_reason != UNKNOWN)
                        .then(|| name(span.away_reason)),
                    queues: span.queues.iter().map(|q| name(*q)).collect(),
                    site: (span.site != UNKNOWN).then(|| name(span.site)),
                    handled: 0,
                    aht_ms: None,
                    interaction_id: span.interaction.map(|i| i.to_string()),
                },
                (span.queues.to_vec(), span.site),
            ));
        }
    });
    let (mut row, scope) = last?;
    row.handled = handled;
    row.aht_ms = (handled > 0).then(|| handle_ms as f64 / handled as f64);
    Some((row, scope))
}
