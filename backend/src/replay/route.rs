//! Owns which engine (partition) each event of a parallel replay goes to.
//!
//! The rule is the Kafka key's (`customer_id`, else `interaction_id`; an agent's
//! state change by `agent_id`), with one refinement a file allows: an interaction stays
//! on the engine of its first event. Producers often put `customer_id` on the arrival
//! only; keyed event by event, the interaction's later steps would land elsewhere and
//! never join it. Following the interaction keeps every interaction whole. Only a step
//! without `customer_id` read *before* its interaction's first step with one can leave
//! that customer's history split (its repeat classification may then differ from a
//! one-thread replay); such events are counted and reported.
//!
//! What an event alone tells ([`place`]: hashes of its ids) is worked out while it is
//! decoded, in parallel. Following interactions needs a map of the interactions the
//! engines may still hold: it is split in shards by interaction, each following its
//! own interactions in stream order, in parallel ([`Routers`]); one pass over the
//! batch first hands each shard its steps, with what the stream's time tells of them.
//!
//! A router forgets an interaction some time after its engine does, by the engine's
//! rule ([`Lifetimes`]): after the lateness once it has ended (or was deflected, or
//! abandoned and the failover grace is over, or never arrived), else after the TTL.
//! So it holds the interactions in flight, not a day of them, and its lookups stay in
//! the caches. An end or an abandon that may be later than the lateness (which its
//! engine then drops) is not taken as one. A later step of a forgotten interaction
//! finds no interaction to join on any engine, wherever it goes: it starts one anew,
//! as in a one-thread replay. Except after a gap of traffic: an engine that got no
//! event for longer than a sweep has not swept yet, and its first event after the gap
//! may join an interaction the router forgot; one engine would have swept before (each
//! engine's own watermark, as in the module's doc of the replay).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::engine::{id_hash, EngineConfig, IdHashes};
use crate::event::{EventKind, EventRecord};

/// Keys here are already xxh3 hashes: used as they are.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Where an event goes, as far as the event alone tells.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    /// An agent's state change: the engine of its agent (its time, for the routers'
    /// view of the engines' watermarks).
    Engine { engine: u32, ts: i64 },
    /// A step of an interaction: the engine of the interaction's first step, which is
    /// that of its customer or else of the interaction's own id (by their hashes, which
    /// the engine then keys by).
    Step {
        interaction: u64,
        customer: Option<u64>,
        ts: i64,
        kind: EventKind,
    },
}

/// Where `event` goes among `engines`, as far as it alone tells.
pub(super) fn place(event: &EventRecord<'_>, engines: usize) -> Place {
    if engines <= 1 {
        return Place::Engine {
            engine: 0,
            ts: event.ts_ms,
        };
    }
    if event.kind == EventKind::AgentState {
        if let Some(agent) = event.agent_id.as_deref() {
            return Place::Engine {
                engine: (id_hash(agent) % engines as u64) as u32,
                ts: event.ts_ms,
            };
        }
    }
    Place::Step {
        interaction: id_hash(&event.interaction_id),
        customer: event.customer_id.as_deref().map(id_hash),
        ts: event.ts_ms,
        kind: event.kind,
    }
}

impl Place {
    fn ts(&self) -> i64 {
        match *self {
            Place::Engine { ts, .. } | Place::Step { ts, .. } => ts,
        }
    }

    /// The hashes of a step's ids, for its engine ([`IdHashes::of`]'s).
    pub(super) fn ids(&self) -> Option<IdHashes> {
        match *self {
            Place::Engine { .. } => None,
            Place::Step {
                interaction,
                customer,
                kind,
                ..
            } => Some(IdHashes::new(kind, interaction, || customer)),
        }
    }
}

/// How long the engines hold an interaction (their configuration's), which the
/// routers outlast.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lifetimes {
    pub(super) lateness_ms: i64,
    pub(super) failover_grace_ms: i64,
    pub(super) ttl_ms: i64,
}

impl Lifetimes {
    pub(super) fn of(cfg: &EngineConfig) -> Lifetimes {
        Lifetimes {
            lateness_ms: cfg.allowed_lateness_ms,
            failover_grace_ms: cfg.failover_grace_ms,
            ttl_ms: cfg.interaction_ttl_ms,
        }
    }

    /// How often the engine sweeps (once per lateness, at least a minute): a router
    /// waits two of them more, so that the engine's own watermark, which may trail the
    /// router's by a little, has swept too.
    fn sweep_ms(&self) -> i64 {
        self.lateness_ms.max(60_000)
    }
}

/// The newest time of the stream read so far.
#[derive(Clone, Copy, Debug)]
struct StreamClock {
    newest: i64,
    lateness_ms: i64,
}

impl StreamClock {
    fn new(lifetimes: Lifetimes) -> StreamClock {
        StreamClock {
            newest: i64::MIN,
            lateness_ms: lifetimes.lateness_ms,
        }
    }

    /// Takes the time of the next event of the stream; `true` when it may be later
    /// than the lateness for its engine (which then drops it): no engine's watermark is
    /// past the stream's newest time.
    fn see(&mut self, ts: i64) -> bool {
        let maybe_late = ts < self.newest.saturating_sub(self.lateness_ms);
        self.newest = self.newest.max(ts);
        maybe_late
    }
}

/// A step of a batch handed to its shard: where it is in the batch, whether it may be
/// late, and then the engine the shard sends it to.
#[derive(Clone, Copy, Debug)]
struct ShardStep {
    slice: u32,
    index: u32,
    maybe_late: bool,
    engine: u32,
}

/// The routers of a replay: one per shard of the interactions, each used by one
/// thread at a time.
pub(super) struct Routers {
    engines: usize,
    shards: Vec<Router>,
    clock: StreamClock,
    /// Kept from batch to batch for their allocations (fresh ones would be faulted in
    /// again for every batch): per slice, the engine of each event; per shard, its
    /// steps of the batch.
    engine_of: Vec<Vec<u32>>,
    steps: Vec<Vec<ShardStep>>,
}

impl Routers {
    /// Routes among `engines` with as many shards, each remembering an interaction as
    /// long as its engine may hold it.
    pub(super) fn new(engines: usize, lifetimes: Lifetimes) -> Routers {
        let engines = engines.max(1);
        let shards = if engines == 1 { 0 } else { engines };
        Routers {
            engines,
            shards: (0..shards)
                .map(|_| Router::new(engines, lifetimes))
                .collect(),
            clock: StreamClock::new(lifetimes),
            engine_of: Vec::new(),
            steps: (0..shards).map(|_| Vec::new()).collect(),
        }
    }

    /// The engines routed among.
    pub(super) fn engines(&self) -> usize {
        self.engines
    }

    /// Events whose customer's history was split (see [`Router::split_customers`]).
    pub(super) fn split_customers(&self) -> u64 {
        self.shards.iter().map(|r| r.split_customers).sum()
    }

    /// Adds each event of `places` (slices of a batch, in stream order) to the route of
    /// its engine in `routes` (one per engine, emptied), as (slice, index in the slice),
    /// in stream order. The shards each follow their interactions through the whole
    /// batch, at once.
    pub(super) fn route(&mut self, places: &[&[Place]], routes: &mut [Vec<(u32, u32)>]) {
        self.engine_of.resize_with(places.len(), Vec::new);
        for steps in &mut self.steps {
            steps.clear();
        }
        let shards = self.shards.len() as u64;
        // The high bits (the low ones place interactions on engines), scaled.
        let shard_of = |interaction: u64| (((interaction >> 32) * shards) >> 32) as usize;
        for (s, (slice, engines)) in places.iter().zip(&mut self.engine_of).enumerate() {
            engines.clear();
            engines.extend(slice.iter().enumerate().map(|(i, p)| {
                let maybe_late = self.clock.see(p.ts());
                match *p {
                    Place::Engine { engine, .. } => engine,
                    Place::Step { interaction, .. } => {
                        if shards > 0 {
                            self.steps[shard_of(interaction)].push(ShardStep {
                                slice: s as u32,
                                index: i as u32,
                                maybe_late,
                                engine: 0,
                            });
                        }
                        0
                    }
                }
            }));
        }
        if shards > 0 {
            self.shards
                .par_iter_mut()
                .zip(&mut self.steps)
                .for_each(|(router, steps)| {
                    for step in steps.iter_mut() {
                        let place = places[step.slice as usize][step.index as usize];
                        if let Place::Step {
                            interaction,
                            customer,
                            ts,
                            kind,
                        } = place
                        {
                            step.engine =
                                router.step(interaction, customer, ts, kind, step.maybe_late);
                        }
                    }
                });
            for step in self.steps.iter().flatten() {
                self.engine_of[step.slice as usize][step.index as usize] = step.engine;
            }
        }
        for (s, engines) in self.engine_of[..places.len()].iter().enumerate() {
            for (i, &engine) in engines.iter().enumerate() {
                routes[engine as usize].push((s as u32, i as u32));
            }
        }
    }
}

/// The engine of every interaction its engine may still hold.
pub(super) struct Router {
    engines: u64,
    owners: HashMap<u64, Owner, BuildHasherDefault<Prehashed>>,
    lifetimes: Lifetimes,
    /// The newest time of this shard's steps (its sweeps go by it).
    newest: i64,
    /// A router alone (in tests) reads the stream's time itself.
    #[cfg(test)]
    clock: StreamClock,
    next_sweep: i64,
    /// Events with a `customer_id` whose interaction was already placed on another
    /// engine (by an earlier step without one).
    pub(super) split_customers: u64,
}

#[derive(Clone, Copy)]
struct Owner {
    engine: u32,
    newest_ts: i64,
    arrived: bool,
    /// Ended or deflected.
    over: bool,
    abandoned: bool,
}

impl Router {
    /// Routes among `engines`, remembering an interaction until its engine has surely
    /// forgotten it (see [`Lifetimes`]).
    pub(super) fn new(engines: usize, lifetimes: Lifetimes) -> Router {
        Router {
            engines: engines.max(1) as u64,
            owners: HashMap::default(),
            lifetimes,
            newest: i64::MIN,
            #[cfg(test)]
            clock: StreamClock::new(lifetimes),
            next_sweep: i64::MIN,
            split_customers: 0,
        }
    }

    /// Interactions remembered.
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.owners.len()
    }

    /// The engine of `event`.
    #[cfg(test)]
    pub(super) fn route(&mut self, event: &EventRecord<'_>) -> usize {
        let place = place(event, self.engines as usize);
        let maybe_late = self.clock.see(place.ts());
        match place {
            Place::Engine { engine, .. } => engine as usize,
            Place::Step {
                interaction,
                customer,
                ts,
                kind,
            } => self.step(interaction, customer, ts, kind, maybe_late) as usize,
        }
    }

    /// The engine of a step of `interaction`. An end or an abandon that may be late
    /// is not taken as one: its engine may drop it and hold the interaction open.
    fn step(
        &mut self,
        interaction: u64,
        customer: Option<u64>,
        ts: i64,
        kind: EventKind,
        maybe_late: bool,
    ) -> u32 {
        if self.engines == 1 {
            return 0;
        }
        let wanted = customer.map(|c| (c % self.engines) as u32);
        self.sweep(ts);
        let owner = self.owners.entry(interaction).or_insert(Owner {
            engine: wanted.unwrap_or((interaction % self.engines) as u32),
            newest_ts: ts,
            arrived: false,
            over: false,
            abandoned: false,
        });
        owner.newest_ts = owner.newest_ts.max(ts);
        match kind {
            // Even if dropped as late: kept longer then, never shorter.
            EventKind::Arrived => owner.arrived = true,
            EventKind::Ended | EventKind::Deflected if !maybe_late => owner.over = true,
            EventKind::Abandoned if !maybe_late => owner.abandoned = true,
            _ => {}
        }
        if wanted.is_some_and(|w| w != owner.engine) {
            self.split_customers += 1;
        }
        owner.engine
    }

    /// Forgets, once per engine sweep, the interactions the engine has forgotten: by
    /// the engine's rule (`Engine::maybe_sweep`), two of its sweeps later.
    fn sweep(&mut self, ts: i64) {
        self.newest = self.newest.max(ts);
        if self.newest < self.next_sweep {
            return;
        }
        let l = self.lifetimes;
        let margin = l.sweep_ms().saturating_mul(2);
        let settled = self
            .newest
            .saturating_sub(l.lateness_ms.saturating_add(margin));
        let grace = self
            .newest
            .saturating_sub(l.failover_grace_ms.saturating_add(margin));
        let expiry = self.newest.saturating_sub(l.ttl_ms.saturating_add(margin));
        self.owners.retain(|_, o| {
            let over = o.over || (o.abandoned && o.newest_ts < grace);
            let done = o.newest_ts < settled && (over || !o.arrived);
            !(done || o.newest_ts < expiry)
        });
        self.next_sweep = self.newest.saturating_add(l.sweep_ms());
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn event<'a>(interaction: &'a str, customer: Option<&'a str>, ts: i64) -> EventRecord<'a> {
        let mut ev = EventRecord::new(
            Cow::Owned(format!("{interaction}-{ts}")),
            EventKind::Queued,
            ts,
            interaction,
        );
        ev.customer_id = customer.map(Cow::Borrowed);
        ev
    }

    /// An interaction id and a customer id whose hashes fall on different engines.
    fn apart(engines: u64) -> (String, String) {
        let customer = "alice".to_string();
        let c = id_hash(&customer) % engines;
        let interaction = (0..)
            .map(|i| format!("c{i}"))
            .find(|i| id_hash(i) % engines != c)
            .expect("one");
        (interaction, customer)
    }

    #[test]
    fn an_interaction_follows_its_first_event_and_a_customer_its_key() {
        let (interaction, customer) = apart(2);
        let mut router = Router::new(2, Lifetimes::of(&EngineConfig::default()));
        let home = (id_hash(&customer) % 2) as usize;
        // The arrival names the customer; the later steps do not.
        assert_eq!(router.route(&event(&interaction, Some(&customer), 0)), home);
        assert_eq!(router.route(&event(&interaction, None, 1_000)), home);
        assert_eq!(router.route(&event(&interaction, None, 2_000)), home);
        assert_eq!(router.split_customers, 0);
        // A step without the customer read first places the interaction by its own id:
        // the customer's later step follows it, and is counted.
        let (other, _) = apart(2);
        let other = format!("{other}-x");
        let first = router.route(&event(&other, None, 3_000));
        assert_eq!(first, (id_hash(&other) % 2) as usize);
        assert_eq!(router.route(&event(&other, Some(&customer), 4_000)), first);
        assert_eq!(
            router.split_customers,
            u64::from(first != home),
            "counted only when the engines differ"
        );
    }

    /// The shards, each following its own interactions through slices of batches, send
    /// every event where one router reading the stream in order sends it. (Kept here for
    /// the whole stream: a shard forgets an idle interaction by the newest time of its
    /// own events, so a step coming more than the lifetime after the one before may be
    /// placed anew at another moment than one router would; the engine has forgotten
    /// that interaction too.)
    #[test]
    fn sharded_routers_route_as_one_router() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let ids: Vec<String> = (0..400).map(|i| format!("i{i}")).collect();
        let customers = ["alice", "bob", "carol", "dan", "erin"];
        let events: Vec<EventRecord<'_>> = (0..5_000)
            .map(|n| {
                let id = &ids[rng.random_range(0..ids.len())];
                let customer = rng
                    .random_bool(0.3)
                    .then(|| customers[rng.random_range(0..customers.len())]);
                let mut ev = event(id, customer, n * 1_000);
                if rng.random_bool(0.05) {
                    ev.kind = EventKind::AgentState;
                    ev.agent_id = Some(Cow::Owned(format!("agent{}", n % 7)));
                }
                ev
            })
            .collect();
        for engines in [2, 3] {
            let mut one = Router::new(engines, FOREVER);
            let expected: Vec<u32> = events.iter().map(|e| one.route(e) as u32).collect();
            let mut routers = Routers::new(engines, FOREVER);
            let mut got = Vec::new();
            for batch in events.chunks(700) {
                let places: Vec<Place> = batch.iter().map(|e| place(e, engines)).collect();
                let slices: Vec<&[Place]> = places.chunks(90).collect();
                let mut routes = vec![Vec::new(); engines];
                routers.route(&slices, &mut routes);
                // Back to the engine of each event, in stream order.
                let mut engine_of = vec![u32::MAX; batch.len()];
                for (engine, route) in routes.iter().enumerate() {
                    let mut last = None;
                    for &(s, i) in route {
                        assert!(last < Some((s, i)), "in stream order");
                        last = Some((s, i));
                        engine_of[s as usize * 90 + i as usize] = engine as u32;
                    }
                }
                got.extend(engine_of);
            }
            assert_eq!(got, expected, "{engines} engines");
            assert_eq!(routers.split_customers(), one.split_customers);
            assert!(one.split_customers > 0, "some customers split");
        }
    }

    /// Nothing is ever forgotten.
    const FOREVER: Lifetimes = Lifetimes {
        lateness_ms: i64::MAX / 8,
        failover_grace_ms: i64::MAX / 8,
        ttl_ms: i64::MAX / 8,
    };

    /// A router remembers every interaction its engines still hold, and forgets the
    /// finished ones soon after: random interactions that end, are abandoned (some
    /// answered after), deflected, left open or never arrive, reported out of order and
    /// twice, some steps later than the lateness (an end the engine drops leaves its
    /// interaction open), with gaps of traffic. Each engine has its own watermark, which
    /// trails the router's between its events. Only an engine that got no event for
    /// longer than a sweep (after a gap of traffic, until its first event) may hold
    /// more (see the module's doc).
    #[test]
    fn a_router_remembers_what_the_engine_holds_and_forgets_the_finished() {
        use rand::{Rng, SeedableRng};
        use std::collections::VecDeque;
        let cfg = EngineConfig {
            allowed_lateness_ms: 60_000,
            failover_grace_ms: 600_000,
            interaction_ttl_ms: 3_600_000,
            ..EngineConfig::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let engines = [
            crate::engine::Engine::new(cfg.clone()),
            crate::engine::Engine::new(cfg.clone()),
        ];
        let mut router = Router::new(2, Lifetimes::of(&cfg));
        // Steps to come, by time: (ts, interaction, kind).
        let mut pending: Vec<(i64, String, EventKind)> = Vec::new();
        let mut now = 1_795_600_000_000_i64;
        for n in 0..3_000 {
            now += if rng.random_range(0..200) == 0 {
                1_800_000
            } else {
                rng.random_range(0..3_000)
            };
            let id = format!("i{n}");
            let plan: &[(i64, EventKind)] = match rng.random_range(0..6) {
                0 => &[
                    (0, EventKind::Arrived),
                    (30_000, EventKind::Answered),
                    (200_000, EventKind::Ended),
                ],
                1 => &[(0, EventKind::Arrived), (50_000, EventKind::Abandoned)],
                2 => &[
                    (0, EventKind::Arrived),
                    (50_000, EventKind::Abandoned),
                    (400_000, EventKind::Answered),
                ],
                3 => &[(0, EventKind::Arrived), (5_000, EventKind::Deflected)],
                4 => &[(0, EventKind::Arrived), (20_000, EventKind::Queued)],
                _ => &[(0, EventKind::Answered)],
            };
            for &(after, kind) in plan {
                // Up to 30 s out of order; a tenth reported twice.
                let ts = now + after - rng.random_range(0..30_000);
                pending.push((ts, id.clone(), kind));
                if rng.random_range(0..10) == 0 {
                    pending.push((ts + rng.random_range(0..20_000), id.clone(), kind));
                }
            }
        }
        // Read in the order of a jittered time: out of order by up to 30 s more, a
        // twentieth later than the lateness.
        pending.sort_by_cached_key(|(ts, ..)| {
            *ts + match rng.random_range(0..20) {
                0 => rng.random_range(90_000..300_000),
                _ => rng.random_range(0..30_000),
            }
        });
        let mut held: VecDeque<String> = VecDeque::new();
        let mut newest_of: HashMap<String, i64> = HashMap::new();
        let (mut most, mut most_within_ttl) = (0, 0);
        for (i, (ts, id, kind)) in pending.iter().enumerate() {
            let mut ev = event(id, None, *ts);
            ev.event_id = Cow::Owned(format!("{id}-{kind:?}"));
            ev.kind = *kind;
            if *kind == EventKind::Arrived {
                ev.channel = Some(Cow::Borrowed("phone"));
            }
            engines[router.route(&ev)].apply(&ev);
            held.push_back(id.clone());
            let newest = newest_of.entry(id.clone()).or_insert(*ts);
            *newest = (*newest).max(*ts);
            if i % 10 == 0 {
                held.retain(|id| engines.iter().any(|e| e.holds_interaction(id)));
                let sweep = Lifetimes::of(&cfg).sweep_ms();
                let current = |e: &crate::engine::Engine| {
                    e.watermark().is_some_and(|w| w >= router.newest - sweep)
                };
                for id in &held {
                    let holds = |e: &&crate::engine::Engine| e.holds_interaction(id);
                    if engines.iter().filter(holds).any(current) {
                        let remembered = router.owners.contains_key(&id_hash(id));
                        assert!(remembered, "{id} forgotten at {i}");
                    }
                }
                most = most.max(router.remembered());
                let ttl_start = router.newest - cfg.interaction_ttl_ms;
                let within_ttl = newest_of.values().filter(|t| **t >= ttl_start).count();
                most_within_ttl = most_within_ttl.max(within_ttl);
            }
        }
        // About nine hours of traffic: the router held those in flight, far fewer than
        // the interactions seen within a TTL (all it forgot before).
        assert!(most * 2 < most_within_ttl, "{most} of {most_within_ttl}");
    }

    #[test]
    fn every_step_goes_to_engine_0_when_there_is_one() {
        let mut one = Router::new(1, Lifetimes::of(&EngineConfig::default()));
        assert_eq!(one.route(&event("x", Some("bob"), 0)), 0);
        assert_eq!(one.remembered(), 0);
    }
}
