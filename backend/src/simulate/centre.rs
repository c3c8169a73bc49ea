//! Owns the discrete-event simulation of a contact centre: arrivals following the
//! scenario's curve and surges (a Poisson process, by thinning), routing, one FIFO per
//! queue, agents with skills who take the longest-waiting contact of their queues, after-
//! contact work, shifts sized hour by hour from the load (Erlang C), breaks and lunch,
//! customer patience, and the switches that are on deflecting new contacts of their scope
//! (some of those customers come back later, so containment can be measured).
//!
//! Every step emits the contact and agent events it causes, dated at the step's time or
//! later, so the stream the caller orders is consistent: `answered.agent_id` is the agent
//! who goes `on_contact` with that contact at the same instant.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigie_proto::AgentState;

use super::scenario::{Scenario, REASONS};
use super::SimulationConfig;
use crate::engine::erlang::agents_needed;
use crate::event::{EventKind, EventRecord};

const SEGMENTS: [(&str, f64); 3] = [("high", 0.15), ("standard", 0.6), ("low", 0.25)];
const SITES: [(&str, f64); 4] = [
    ("paris", 0.4),
    ("lyon", 0.3),
    ("lille", 0.2),
    ("rabat", 0.1),
];
const DEFLECT_TARGETS: [(&str, f64); 3] = [("visual_ivr", 0.5), ("callback", 0.35), ("chat", 0.15)];
const HOUR_MS: i64 = 3_600_000;
/// Longest shift before an agent is relieved.
const MAX_SHIFT_MS: i64 = 9 * HOUR_MS;
/// Rest between two shifts of one agent.
const MIN_REST_MS: i64 = 8 * HOUR_MS;
/// Share of deflected customers who come back later on a channel with agents.
const RETURN_SHARE: f64 = 0.3;

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T], share: impl Fn(&T) -> f64) -> &'a T {
    let total: f64 = items.iter().map(&share).sum();
    let mut x = rng.random::<f64>() * total;
    for item in items {
        x -= share(item);
        if x < 0.0 {
            return item;
        }
    }
    &items[items.len() - 1]
}

/// An exponential duration of mean `mean_ms` (0 for a mean of 0).
fn exp_ms(rng: &mut StdRng, mean_ms: f64) -> i64 {
    if mean_ms <= 0.0 {
        return 0;
    }
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms) as i64
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A surge as the arrivals read it: its channel and reason, its share of arrivals on top
/// of the usual ones, and when it runs (ms after the start).
#[derive(Clone, Copy, Debug)]
struct SurgeAt {
    channel: usize,
    reason: Option<usize>,
    extra: f64,
    from_ms: i64,
    until_ms: i64,
}

/// A step of the simulation: 16 bytes, so the schedule's heap moves little memory (agents
/// are `u32` indexes, reasons and channels `u8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// The next candidate arrival (thinning), of the hour's generation.
    Arrival(u32),
    /// Staffing changes at each hour.
    Hour,
    /// A contact reaches its queue after routing.
    Enqueue(u64),
    /// A waiting contact's patience runs out.
    Patience(u64),
    HandleDone(u32),
    WrapUpDone(u32),
    /// (agent, shift, reason index, minutes)
    BreakDue(u32, u32, u8, u8),
    BreakEnd(u32, u32),
    /// A deflected customer comes back: (customer, channel index, reason).
    Return(u64, u8, u8),
}

const BREAK_REASONS: [&str; 3] = ["break", "lunch", "meeting"];

#[derive(Debug)]
struct Queue {
    name: String,
    channel: usize,
    reasons: Vec<usize>,
    handle_ms: f64,
    wrap_up_ms: f64,
    patience_ms: Option<f64>,
    hang_up_share: f64,
    routing_ms: f64,
    deflect_share: f64,
    self_service: bool,
    waiting: VecDeque<u64>,
    /// Agents available for this queue, longest idle first (stale entries skipped).
    idle: VecDeque<usize>,
}

#[derive(Debug)]
struct Contact {
    iid: String,
    customer: Option<u64>,
    queue: usize,
    arrival: i64,
    /// When its patience runs out (never for e-mail).
    gives_up_at: Option<i64>,
    waiting: bool,
    agent: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Break(usize, i64),
    Logout,
}

#[derive(Debug)]
struct Agent {
    id: String,
    team: usize,
    queues: Vec<usize>,
    site: String,
    /// `None`: off shift.
    state: Option<AgentState>,
    on_shift: bool,
    shift: u32,
    shift_start: i64,
    shift_end: i64,
    contact: Option<u64>,
    pending: Pending,
    /// The next event carries the queues and site (the first of a shift).
    announce: bool,
    events: u64,
}

#[derive(Debug)]
struct Team {
    fixed: Option<u32>,
    breaks: bool,
    /// Agents needed at each hour of the day (shifts), with shrinkage.
    plan: [u32; 24],
    members: Vec<usize>,
}

/// The simulated centre.
#[derive(Debug)]
pub(super) struct Centre {
    rng: StdRng,
    /// The schedule, by time (ties by step: deterministic).
    steps: BinaryHeap<Reverse<(i64, Step)>>,
    now: i64,
    queues: Vec<Queue>,
    /// Channel names and shares (arrivals), channels with at least one queue.
    channels: Vec<(String, f64)>,
    contacts: HashMap<u64, Contact>,
    agents: Vec<Agent>,
    teams: Vec<Team>,
    generated: u64,
    next_customer: u64,
    /// Recently seen customers with their last channel, for repeat contacts.
    recent: VecDeque<(u64, usize)>,
    /// Upper bound of the arrival rate (per ms) this hour, for thinning.
    max_rate: f64,
    /// Bumped at each hour: a candidate arrival drawn at an older bound is dropped.
    arrival_gen: u32,
    /// Upper bound of the surges' extra share of arrivals (all of them at once).
    surge_extra: f64,
    surges: Vec<SurgeAt>,
    finished: bool,
}

impl Centre {
    pub(super) fn new(cfg: &SimulationConfig) -> Centre {
        let sc = &cfg.scenario;
        let mut channels: Vec<(String, f64)> = Vec::new();
        for q in &sc.queues {
            if !channels.iter().any(|(c, _)| *c == q.channel) {
                let share = sc.channel_shares.get(&q.channel).copied().unwrap_or(0.0);
                channels.push((q.channel.clone(), share));
            }
        }
        let reason_ix = |r: &str| REASONS.iter().position(|(n, _)| *n == r);
        let queues: Vec<Queue> = sc
            .queues
            .iter()
            .map(|q| Queue {
                name: q.name.clone(),
                channel: channels
                    .iter()
                    .position(|(c, _)| *c == q.channel)
                    .unwrap_or(0),
                reasons: q.reasons.iter().filter_map(|r| reason_ix(r)).collect(),
                handle_ms: ms(q.mean_handle).max(1_000.0),
                wrap_up_ms: ms(q.mean_after_contact_work),
                patience_ms: q.mean_patience.map(ms),
                hang_up_share: q.hang_up_share,
                routing_ms: ms(q.mean_routing),
                deflect_share: q.deflect_share,
                self_service: q.self_service,
                waiting: VecDeque::new(),
                idle: VecDeque::new(),
            })
            .collect();
        let total_share: f64 = channels.iter().map(|(_, s)| s).sum();
        // Each surge's extra share of arrivals, computed once (a surge of a channel
        // without queues adds nothing).
        let surges: Vec<SurgeAt> = sc
            .surges
            .iter()
            .filter_map(|s| {
                let channel = channels.iter().position(|(c, _)| *c == s.channel)?;
                let reason = s
                    .reason
                    .as_deref()
                    .and_then(|r| REASONS.iter().position(|(n, _)| *n == r));
                let after = ms(s.after) as i64;
                Some(SurgeAt {
                    channel,
                    reason,
                    extra: (s.factor - 1.0).max(0.0) * channels[channel].1 / total_share.max(1e-12)
                        * reason.map_or(1.0, |r| REASONS[r].1),
                    from_ms: after,
                    until_ms: after + ms(s.duration) as i64,
                })
            })
            .collect();
        let surge_extra: f64 = surges.iter().map(|s| s.extra).sum();
        let mut centre = Centre {
            rng: StdRng::seed_from_u64(cfg.seed),
            steps: BinaryHeap::new(),
            now: cfg.start_ms,
            queues,
            channels,
            contacts: HashMap::new(),
            agents: Vec::new(),
            teams: Vec::new(),
            generated: 0,
            next_customer: 0,
            recent: VecDeque::new(),
            max_rate: 1e-12,
            arrival_gen: 0,
            surge_extra,
            surges,
            finished: total_share <= 0.0 || cfg.contacts_per_second <= 0.0,
        };
        centre.teams = sc
            .teams
            .iter()
            .map(|t| Team {
                fixed: t.agents,
                breaks: t.breaks,
                plan: centre.plan(cfg, t),
                members: Vec::new(),
            })
            .collect();
        // The first hour starts the arrivals.
        centre.schedule(cfg.start_ms, Step::Hour);
        centre
    }

    /// Agents a shift-based team needs at each hour: Erlang C on its share of the load
    /// of its queues, plus shrinkage.
    fn plan(&self, cfg: &SimulationConfig, team: &super::TeamSpec) -> [u32; 24] {
        let sc = &cfg.scenario;
        let total_share: f64 = self.channels.iter().map(|(_, s)| s).sum::<f64>().max(1e-12);
        let mut plan = [0u32; 24];
        for (h, slot) in plan.iter_mut().enumerate() {
            let (mut load, mut work, mut threshold) = (0.0, 0.0, f64::MAX);
            for name in &team.queues {
                let Some(qi) = self.queues.iter().position(|q| &q.name == name) else {
                    continue;
                };
                let q = &self.queues[qi];
                let serving = sc.teams.iter().filter(|t| t.queues.contains(name)).count();
                let rate = cfg.contacts_per_second * sc.curve[h] * self.channels[q.channel].1
                    / total_share
                    * self.reason_share(qi)
                    / serving.max(1) as f64;
                let aht_s = (q.handle_ms + q.wrap_up_ms) / 1000.0;
                load += rate * aht_s;
                work += rate;
                threshold = threshold.min(ms(sc.queues[qi].threshold) / 1000.0);
            }
            if work <= 0.0 {
                continue;
            }
            let aht_s = load / work;
            let needed = agents_needed(load, aht_s, threshold, sc.target_service_level, 1_000_000)
                .unwrap_or(1_000_000);
            *slot = (f64::from(needed) / (1.0 - sc.shrinkage)).ceil() as u32;
        }
        plan
    }

    /// Share of its channel's contacts a queue receives (by contact reason).
    fn reason_share(&self, qi: usize) -> f64 {
        REASONS
            .iter()
            .enumerate()
            .filter(|(r, _)| self.route(self.queues[qi].channel, *r) == Some(qi))
            .map(|(_, (_, share))| share)
            .sum()
    }

    /// The queue of a channel's contact for a reason: the first listing the reason, else
    /// the first listing none.
    fn route(&self, channel: usize, reason: usize) -> Option<usize> {
        let of_channel = || {
            self.queues
                .iter()
                .enumerate()
                .filter(|(_, q)| q.channel == channel)
        };
        of_channel()
            .find(|(_, q)| q.reasons.contains(&reason))
            .or_else(|| of_channel().find(|(_, q)| q.reasons.is_empty()))
            .map(|(i, _)| i)
    }

    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// Time of the next step; no event is made before it.
    pub(super) fn next_time(&self) -> i64 {
        if self.finished {
            return self.now;
        }
        self.steps.peek().map_or(i64::MAX, |s| s.0 .0)
    }

    fn schedule(&mut self, at: i64, step: Step) {
        self.steps.push(Reverse((at, step)));
    }

    /// Time to the next candidate arrival (thinning at the peak rate).
    fn gap(&mut self) -> i64 {
        exp_ms(&mut self.rng, 1.0 / self.max_rate).max(1)
    }

    /// Runs the next step, pushing the events it makes to `out`.
    pub(super) fn step(&mut self, cfg: &SimulationConfig, out: &mut Vec<EventRecord<'static>>) {
        let Some(Reverse((at, step))) = self.steps.pop() else {
            self.finished = true;
            return;
        };
        self.now = at;
        match step {
            Step::Arrival(generation) if generation == self.arrival_gen => {
                self.arrival(cfg, at, out);
            }
            Step::Arrival(_) => {}
            Step::Hour => self.hour(cfg, at, out),
            Step::Enqueue(c) => self.enqueue(cfg, c, at, out),
            Step::Patience(c) => self.give_up(c, at, out),
            Step::HandleDone(a) => self.handle_done(cfg, a as usize, at, out),
            Step::WrapUpDone(a) => self.free(cfg, a as usize, at, out),
            Step::BreakDue(a, shift, reason, minutes) => {
                let (a, reason, minutes) = (a as usize, usize::from(reason), i64::from(minutes));
                let agent = &mut self.agents[a];
                if agent.shift != shift || !agent.on_shift || agent.pending == Pending::Logout {
                    return;
                }
                agent.pending = Pending::Break(reason, minutes);
                if agent.state == Some(AgentState::Available) {
                    self.free(cfg, a, at, out);
                }
            }
            Step::BreakEnd(a, shift) => {
                let a = a as usize;
                if self.agents[a].shift == shift && self.agents[a].state == Some(AgentState::Away) {
                    self.free(cfg, a, at, out);
                }
            }
            Step::Return(customer, channel, reason) => {
                let (channel, reason) = (usize::from(channel), usize::from(reason));
                self.contact(cfg, at, Some(customer), channel, reason, out);
            }
        }
    }

    fn hour_of(&self, cfg: &SimulationConfig, t: i64) -> usize {
        (t.saturating_add(cfg.clock_shift_ms)
            .div_euclid(HOUR_MS)
            .rem_euclid(24)) as usize
    }

    /// A candidate arrival: accepted with the probability of the current rate over the
    /// peak rate; then a usual contact or one of a surge, in proportion.
    fn arrival(&mut self, cfg: &SimulationConfig, t: i64, out: &mut Vec<EventRecord<'static>>) {
        if cfg.contacts.is_some_and(|n| self.generated >= n) {
            self.finished = true;
            return;
        }
        let next = t + self.gap();
        self.schedule(next, Step::Arrival(self.arrival_gen));
        let sc = &cfg.scenario;
        let factor = sc.curve[self.hour_of(cfg, t)];
        let elapsed = t - cfg.start_ms;
        let active = |s: &&SurgeAt| elapsed >= s.from_ms && elapsed < s.until_ms;
        let extra: f64 = self.surges.iter().filter(active).map(|s| s.extra).sum();
        let rate = cfg.contacts_per_second / 1000.0 * factor * (1.0 + extra);
        if self.rng.random::<f64>() * self.max_rate >= rate {
            return;
        }
        let mut x = self.rng.random::<f64>() * (1.0 + extra);
        let surge = self.surges.iter().filter(active).copied().find(|s| {
            let hit = x < s.extra;
            x -= s.extra;
            hit
        });
        if let Some(s) = surge {
            let reason = s.reason.unwrap_or_else(|| self.pick_reason());
            let customer = self.new_or_repeat_customer(cfg, Some(s.channel)).0;
            self.contact(cfg, t, customer, s.channel, reason, out);
            return;
        }
        let (customer, ch) = self.new_or_repeat_customer(cfg, None);
        let reason = self.pick_reason();
        self.contact(cfg, t, customer, ch, reason, out);
    }

    fn pick_reason(&mut self) -> usize {
        let name = pick(&mut self.rng, &REASONS, |r| r.1).0;
        REASONS.iter().position(|(n, _)| *n == name).unwrap_or(0)
    }

    fn fresh_channel(&mut self) -> usize {
        let total: f64 = self.channels.iter().map(|(_, s)| s).sum();
        let mut x = self.rng.random::<f64>() * total;
        for (i, (_, share)) in self.channels.iter().enumerate() {
            x -= share;
            if x < 0.0 {
                return i;
            }
        }
        self.channels.len().saturating_sub(1)
    }

    /// A customer (or none) and the channel of this contact (`channel` if given).
    fn new_or_repeat_customer(
        &mut self,
        cfg: &SimulationConfig,
        channel: Option<usize>,
    ) -> (Option<u64>, usize) {
        if self.rng.random_bool(cfg.anonymous_share.clamp(0.0, 1.0)) {
            let ch = channel.unwrap_or_else(|| self.fresh_channel());
            return (None, ch);
        }
        if !self.recent.is_empty() && self.rng.random_bool(cfg.repeat_share.clamp(0.0, 1.0)) {
            let i = self.rng.random_range(0..self.recent.len());
            let (customer, last_channel) = self.recent[i];
            // Over half of repeat contacts switch channel (57 % of callers tried another channel).
            let ch = channel.unwrap_or_else(|| {
                if self.rng.random_bool(0.57) {
                    self.fresh_channel()
                } else {
                    last_channel
                }
            });
            self.recent[i].1 = ch;
            return (Some(customer), ch);
        }
        let customer = self.next_customer;
        self.next_customer += 1;
        let ch = channel.unwrap_or_else(|| self.fresh_channel());
        self.recent.push_back((customer, ch));
        if self.recent.len() > 5_000 {
            self.recent.pop_front();
        }
        (Some(customer), ch)
    }

    fn contact_event(&self, c: &Contact, kind: EventKind, ts: i64) -> EventRecord<'static> {
        EventRecord {
            customer_id: c.customer.map(|n| Cow::Owned(format!("cust-{n}"))),
            ..EventRecord::new(
                format!("{}-{}", c.iid, kind.as_str()),
                kind,
                ts,
                c.iid.clone(),
            )
        }
    }

    /// A new contact arrives on `channel` for `reason`.
    fn contact(
        &mut self,
        cfg: &SimulationConfig,
        t: i64,
        customer: Option<u64>,
        channel: usize,
        reason: usize,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let Some(qi) = self.route(channel, reason) else {
            return;
        };
        let n = self.generated;
        self.generated += 1;
        let segment = pick(&mut self.rng, &SEGMENTS, |s| s.1).0;
        let site = pick(&mut self.rng, &SITES, |s| s.1).0;
        let q = &self.queues[qi];
        let patience = match q.patience_ms {
            Some(_) if self.rng.random_bool(q.hang_up_share) => {
                Some(self.rng.random_range(0..5_000))
            }
            Some(mean) => Some(exp_ms(&mut self.rng, mean)),
            None => None,
        };
        let routing = if q.routing_ms > 0.0 {
            2_000 + exp_ms(&mut self.rng, q.routing_ms)
        } else {
            0
        };
        let contact = Contact {
            iid: format!("s{}-i{n}", cfg.seed),
            customer,
            queue: qi,
            arrival: t,
            gives_up_at: patience.map(|p| t + p),
            waiting: false,
            agent: None,
        };
        let (channel_name, reason_name) = (self.channels[channel].0.clone(), REASONS[reason].0);
        let mut arrived = self.contact_event(&contact, EventKind::Arrived, t);
        arrived.channel = Some(Cow::Owned(channel_name.clone()));
        arrived.reason = Some(Cow::Borrowed(reason_name));
        arrived.segment = Some(Cow::Borrowed(segment));
        arrived.site = Some(Cow::Borrowed(site));
        out.push(arrived);

        let switched = self.switch_target(cfg, &channel_name, reason_name, segment, qi, t);
        let by_switch = switched.is_some();
        let target = switched.or_else(|| {
            // The IVR's own deflections, switches aside.
            let share = self.queues[qi].deflect_share;
            (share > 0.0 && self.rng.random_bool(share))
                .then(|| pick(&mut self.rng, &DEFLECT_TARGETS, |t| t.1).0.to_string())
        });
        if let Some(target) = target {
            let mut ev = self.contact_event(&contact, EventKind::Deflected, t + routing);
            ev.deflected_to = Some(Cow::Owned(target));
            out.push(ev);
            // Some customers sent elsewhere by a switch come back, on the channel they
            // left or on chat: what the switch's measured containment sees.
            if let (true, Some(customer)) = (by_switch, customer) {
                if self.rng.random_bool(RETURN_SHARE) {
                    let back = if self.rng.random_bool(0.5) {
                        channel
                    } else {
                        self.channels
                            .iter()
                            .position(|(c, _)| c == "chat")
                            .unwrap_or(channel)
                    };
                    let at = t + 5 * 60_000 + self.rng.random_range(0..40 * 60_000);
                    // (At most 256 channels and reasons: the scenario's, a handful.)
                    self.schedule(at, Step::Return(customer, back as u8, reason as u8));
                }
            }
            return;
        }
        self.contacts.insert(n, contact);
        self.schedule(t + routing, Step::Enqueue(n));
    }

    /// The target of the switch that is on for this contact's scope, if any.
    fn switch_target(
        &self,
        cfg: &SimulationConfig,
        channel: &str,
        reason: &str,
        segment: &str,
        queue: usize,
        t: i64,
    ) -> Option<String> {
        let view = cfg.switches.as_ref()?;
        let switches = view();
        let fits = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        switches
            .iter()
            .find(|s| {
                s.on && s.channel == channel
                    && fits(&s.reason, reason)
                    && fits(&s.segment, segment)
                    && fits(&s.queue, &self.queues[queue].name)
                    // On since `changed_at`: a flip deflects contacts arriving after it,
                    // never the history produced before it.
                    && t >= s.changed_at
                    && s.expires_at.is_none_or(|e| t < e)
            })
            .map(|s| s.target.code().to_string())
    }

    fn enqueue(
        &mut self,
        cfg: &SimulationConfig,
        c: u64,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let Some(contact) = self.contacts.get(&c) else {
            return;
        };
        let (qi, gives_up_at) = (contact.queue, contact.gives_up_at);
        let mut queued = self.contact_event(contact, EventKind::Queued, t);
        queued.queue = Some(Cow::Owned(self.queues[qi].name.clone()));
        out.push(queued);
        if gives_up_at.is_some_and(|g| g <= t) {
            // Gave up during routing.
            if let Some(contact) = self.contacts.remove(&c) {
                out.push(self.contact_event(&contact, EventKind::Abandoned, t));
            }
            return;
        }
        if self.queues[qi].self_service {
            // A bot answers within seconds; nobody waits for an agent.
            let answered_at = t + self.rng.random_range(0..3_000);
            let end_at = answered_at + exp_ms(&mut self.rng, self.queues[qi].handle_ms).max(1_000);
            let resolved = self.rng.random_bool(0.6);
            let Some(contact) = self.contacts.remove(&c) else {
                return;
            };
            if contact.gives_up_at.is_some_and(|g| g <= answered_at) {
                out.push(self.contact_event(&contact, EventKind::Abandoned, answered_at));
                return;
            }
            out.push(self.contact_event(&contact, EventKind::Answered, answered_at));
            let mut ended = self.contact_event(&contact, EventKind::Ended, end_at);
            ended.resolved = Some(resolved);
            out.push(ended);
            return;
        }
        if let Some(a) = self.idle_agent(qi) {
            self.answer(cfg, a, c, t, out);
            return;
        }
        if let Some(contact) = self.contacts.get_mut(&c) {
            contact.waiting = true;
        }
        self.queues[qi].waiting.push_back(c);
        if let Some(at) = gives_up_at {
            self.schedule(at, Step::Patience(c));
        }
    }

    /// The longest-idle agent available for queue `qi`.
    fn idle_agent(&mut self, qi: usize) -> Option<usize> {
        while let Some(a) = self.queues[qi].idle.pop_front() {
            let agent = &self.agents[a];
            if agent.state == Some(AgentState::Available) && agent.on_shift {
                return Some(a);
            }
        }
        None
    }

    fn give_up(&mut self, c: u64, t: i64, out: &mut Vec<EventRecord<'static>>) {
        if !self.contacts.get(&c).is_some_and(|contact| contact.waiting) {
            return;
        }
        if let Some(contact) = self.contacts.remove(&c) {
            out.push(self.contact_event(&contact, EventKind::Abandoned, t));
        }
    }

    fn agent_event(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        t: i64,
        state: AgentState,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let agent = &mut self.agents[a];
        agent.state = Some(state);
        if !cfg.agent_events {
            return;
        }
        agent.events += 1;
        let mut ev = EventRecord::agent(
            format!("{}-{}", agent.id, agent.events),
            t,
            agent.id.clone(),
            state,
        );
        if agent.announce {
            agent.announce = false;
            ev.queues = Some(
                agent
                    .queues
                    .iter()
                    .map(|q| Cow::Owned(self.queues[*q].name.clone()))
                    .collect(),
            );
            ev.site = Some(Cow::Owned(agent.site.clone()));
        }
        if let (AgentState::Away, Pending::Break(reason, _)) = (state, agent.pending) {
            ev.away_reason = Some(Cow::Borrowed(BREAK_REASONS[reason]));
        }
        if state == AgentState::OnContact {
            if let Some(c) = agent.contact.and_then(|c| self.contacts.get(&c)) {
                ev.interaction_id = Cow::Owned(c.iid.clone());
            }
        }
        out.push(ev);
    }

    fn answer(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        c: u64,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let Some(contact) = self.contacts.get_mut(&c) else {
            return;
        };
        contact.waiting = false;
        contact.agent = Some(a);
        let qi = contact.queue;
        let mut answered = self.contact_event(&self.contacts[&c], EventKind::Answered, t);
        answered.agent_id = Some(Cow::Owned(self.agents[a].id.clone()));
        out.push(answered);
        self.agents[a].contact = Some(c);
        self.agent_event(cfg, a, t, AgentState::OnContact, out);
        let handle = exp_ms(&mut self.rng, self.queues[qi].handle_ms).max(1_000);
        self.schedule(t + handle, Step::HandleDone(a as u32));
    }

    fn handle_done(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let Some(c) = self.agents[a].contact.take() else {
            return;
        };
        let Some(contact) = self.contacts.remove(&c) else {
            return;
        };
        let mut ended = self.contact_event(&contact, EventKind::Ended, t);
        ended.resolved = Some(self.rng.random_bool(0.72));
        out.push(ended);
        let wrap_up = exp_ms(&mut self.rng, self.queues[contact.queue].wrap_up_ms);
        if wrap_up > 0 {
            self.agent_event(cfg, a, t, AgentState::AfterContactWork, out);
            self.schedule(t + wrap_up.max(1_000), Step::WrapUpDone(a as u32));
        } else {
            self.free(cfg, a, t, out);
        }
    }

    /// The agent is done with what it was doing: logs out, goes on its break, takes the
    /// longest-waiting contact of its queues, or becomes available.
    fn free(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        match self.agents[a].pending {
            Pending::Logout => {
                self.agent_event(cfg, a, t, AgentState::LoggedOut, out);
                let agent = &mut self.agents[a];
                agent.pending = Pending::None;
                agent.on_shift = false;
                agent.shift_end = t;
                agent.state = None;
                return;
            }
            Pending::Break(_, minutes) => {
                self.agent_event(cfg, a, t, AgentState::Away, out);
                self.agents[a].pending = Pending::None;
                let shift = self.agents[a].shift;
                self.schedule(t + minutes * 60_000, Step::BreakEnd(a as u32, shift));
                return;
            }
            Pending::None => {}
        }
        if let Some(c) = self.oldest_waiting(a) {
            self.answer(cfg, a, c, t, out);
            return;
        }
        if self.agents[a].state != Some(AgentState::Available) {
            self.agent_event(cfg, a, t, AgentState::Available, out);
        }
        for qi in self.agents[a].queues.clone() {
            self.queues[qi].idle.push_back(a);
        }
    }

    /// The longest-waiting contact among the agent's queues.
    fn oldest_waiting(&mut self, a: usize) -> Option<u64> {
        let mut best: Option<(i64, usize)> = None;
        for &qi in &self.agents[a].queues {
            let q = &mut self.queues[qi];
            while let Some(&c) = q.waiting.front() {
                match self.contacts.get(&c) {
                    Some(contact) if contact.waiting => {
                        if best.is_none_or(|(at, _)| contact.arrival < at) {
                            best = Some((contact.arrival, qi));
                        }
                        break;
                    }
                    _ => {
                        q.waiting.pop_front();
                    }
                }
            }
        }
        let (_, qi) = best?;
        self.queues[qi].waiting.pop_front()
    }

    fn hire(&mut self, team: usize, sc: &Scenario) -> usize {
        let spec = &sc.teams[team];
        let a = self.agents.len();
        let n = self.teams.get(team).map_or(0, |t| t.members.len());
        self.agents.push(Agent {
            id: format!("{}-{:03}", spec.name, n + 1),
            team,
            queues: spec
                .queues
                .iter()
                .filter_map(|q| self.queues.iter().position(|x| &x.name == q))
                .collect(),
            site: spec.site.clone(),
            state: None,
            on_shift: false,
            shift: 0,
            shift_start: i64::MIN,
            shift_end: i64::MIN,
            contact: None,
            pending: Pending::None,
            announce: true,
            events: 0,
        });
        if let Some(t) = self.teams.get_mut(team) {
            t.members.push(a);
        }
        a
    }

    /// Starts a shift: logged in with its queues and site, breaks planned.
    fn login(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let breaks = self
            .teams
            .get(self.agents[a].team)
            .is_none_or(|team| team.breaks);
        let agent = &mut self.agents[a];
        agent.shift += 1;
        agent.on_shift = true;
        agent.shift_start = t;
        agent.announce = true;
        agent.state = None;
        agent.pending = Pending::None;
        let shift = agent.shift;
        if breaks {
            let jitter = |rng: &mut StdRng, minutes: i64| rng.random_range(0..minutes * 60_000);
            let plan = [(120, 30, 0, 15), (240, 60, 1, 40), (390, 30, 0, 15)];
            for (after, spread, reason, minutes) in plan {
                let at = t + after * 60_000 + jitter(&mut self.rng, spread);
                self.schedule(at, Step::BreakDue(a as u32, shift, reason, minutes));
            }
            if self.rng.random_bool(0.05) {
                let at = t + 180 * 60_000 + jitter(&mut self.rng, 60);
                self.schedule(at, Step::BreakDue(a as u32, shift, 2, 30));
            }
        }
        self.free(cfg, a, t, out);
    }

    /// At each hour: shift-based teams log agents in or out to match their plan, and
    /// relieve those at the end of a long shift.
    fn hour(&mut self, cfg: &SimulationConfig, t: i64, out: &mut Vec<EventRecord<'static>>) {
        // The next hour of the centre's clock (shifted like the curve).
        let shift = cfg.clock_shift_ms;
        let next = ((t.saturating_add(shift)).div_euclid(HOUR_MS) + 1) * HOUR_MS - shift;
        self.schedule(next, Step::Hour);
        // Thinning at this hour's bound (the curve is flat within an hour; any surge may
        // start): few candidates are drawn in vain, even at night.
        let factor = cfg.scenario.curve[self.hour_of(cfg, t)];
        self.max_rate =
            (cfg.contacts_per_second / 1000.0 * factor * (1.0 + self.surge_extra)).max(1e-12);
        self.arrival_gen = self.arrival_gen.wrapping_add(1);
        let first = t + self.gap();
        self.schedule(first, Step::Arrival(self.arrival_gen));
        let h = self.hour_of(cfg, t);
        for ti in 0..self.teams.len() {
            if let Some(n) = self.teams[ti].fixed {
                // A fixed team is all there from the start, all along.
                while self.teams[ti].members.len() < n as usize {
                    let a = self.hire(ti, &cfg.scenario);
                    self.login(cfg, a, t, out);
                }
                continue;
            }
            let want = self.teams[ti].plan[h] as usize;
            let mut on: Vec<usize> = self.teams[ti]
                .members
                .iter()
                .copied()
                .filter(|&a| self.agents[a].on_shift && self.agents[a].pending != Pending::Logout)
                .collect();
            // Relieve the long shifts, then those beyond the plan (longest on first).
            on.sort_by_key(|&a| self.agents[a].shift_start);
            let mut leaving: Vec<usize> = on
                .iter()
                .copied()
                .filter(|&a| t - self.agents[a].shift_start >= MAX_SHIFT_MS)
                .collect();
            let staying = on.len() - leaving.len();
            if staying > want {
                let extra: Vec<usize> = on
                    .iter()
                    .copied()
                    .filter(|a| !leaving.contains(a))
                    .take(staying - want)
                    .collect();
                leaving.extend(extra);
            }
            let staying = on.len() - leaving.len();
            for a in leaving {
                self.logout(cfg, a, t, out);
            }
            for _ in staying..want {
                let rested = self.teams[ti].members.iter().copied().find(|&a| {
                    !self.agents[a].on_shift && t - self.agents[a].shift_end >= MIN_REST_MS
                });
                let a = rested.unwrap_or_else(|| self.hire(ti, &cfg.scenario));
                self.login(cfg, a, t, out);
            }
        }
    }

    fn logout(
        &mut self,
        cfg: &SimulationConfig,
        a: usize,
        t: i64,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        self.agents[a].pending = Pending::Logout;
        if self.agents[a].state == Some(AgentState::Available) {
            self.free(cfg, a, t, out);
        }
    }
}
