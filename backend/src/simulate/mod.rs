//! Owns the traffic generator: a contact centre simulated event by event, giving a
//! realistic, reproducible stream of contact and agent events.
//!
//! # Layout
//! - [`scenario`]: the centre simulated ([`Scenario`]): queues, teams, arrival curve,
//!   surges; the defaults and the scenario file.
//! - `centre`: the discrete-event simulation: arrivals (a Poisson process following the
//!   curve), routing, FIFO queues, agents (skills, shifts, breaks, after-contact work),
//!   patience, deflection by the switches that are on.
//! - here: the stream as it reaches Kafka: events in order of (event time + transport
//!   jitter), so a few arrive out of order (never more than `max_disorder_ms` late), and
//!   about 1 % are delivered twice.

mod centre;
pub mod scenario;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigie_proto::DeflectionSwitch;

use crate::event::EventRecord;
pub use scenario::{QueueSpec, Scenario, ScenarioError, Surge, TeamSpec};

/// The switches as they are now: read at each arrival, so that a flip deflects the next
/// contacts of its scope (live mode).
pub type SwitchView = Arc<dyn Fn() -> Arc<Vec<DeflectionSwitch>> + Send + Sync>;

/// Generator settings.
#[derive(Clone)]
pub struct SimulationConfig {
    pub seed: u64,
    /// Number of contacts (interactions) to generate; `None` = endless.
    pub contacts: Option<u64>,
    /// Event time of the start, epoch ms.
    pub start_ms: i64,
    /// Mean arrivals per second (event time) at an arrival factor of 1 (the scenario's
    /// curve gives the factor of each hour).
    pub contacts_per_second: f64,
    /// Share of contacts without a customer id.
    pub anonymous_share: f64,
    /// Share of identified contacts from a customer seen recently (repeat contacts).
    pub repeat_share: f64,
    /// Share of events delivered twice.
    pub redelivery_share: f64,
    /// Share of events delayed in transport, by up to `max_disorder_ms`.
    pub disorder_share: f64,
    pub max_disorder_ms: i64,
    /// The centre (default: [`Scenario::steady`]; `vigie simulate` and the demo use
    /// [`Scenario::default`], with its curve and surge).
    pub scenario: Scenario,
    /// Emit the agents' `agent_state` events (the simulation runs with agents either way).
    pub agent_events: bool,
    /// Added to event time to read the hour of the day on the curve (the demo starts
    /// its centre in the morning whatever the time it runs).
    pub clock_shift_ms: i64,
    /// Live mode: the switches that are on deflect the next contacts of their scope.
    pub switches: Option<SwitchView>,
}

impl std::fmt::Debug for SimulationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulationConfig")
            .field("seed", &self.seed)
            .field("contacts", &self.contacts)
            .field("start_ms", &self.start_ms)
            .field("contacts_per_second", &self.contacts_per_second)
            .field("switches", &self.switches.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            seed: 1,
            contacts: Some(1_000),
            start_ms: 1_795_593_600_000, // 2026-11-25T08:00:00Z
            contacts_per_second: 10.0,
            anonymous_share: 0.2,
            repeat_share: 0.3,
            redelivery_share: 0.01,
            disorder_share: 0.05,
            max_disorder_ms: 60_000,
            scenario: Scenario::steady(),
            agent_events: true,
            clock_shift_ms: 0,
            switches: None,
        }
    }
}

/// An event waiting to be emitted, ordered by emission time then sequence: the keys
/// inline (a heap comparison reads no event), the event boxed (heap moves stay small).
struct Pending {
    emit_at: i64,
    seq: u64,
    event: Box<EventRecord<'static>>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.emit_at, self.seq) == (other.emit_at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.emit_at, self.seq).cmp(&(other.emit_at, other.seq))
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending@{}", self.emit_at)
    }
}

/// Endless or bounded iterator of simulated events, in emission order.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimulationConfig,
    /// Transport: jitter and redeliveries (apart from the centre's own randomness).
    rng: StdRng,
    centre: centre::Centre,
    seq: u64,
    heap: BinaryHeap<Reverse<Pending>>,
    /// The centre's events not yet given their emission time.
    fresh: Vec<EventRecord<'static>>,
}

impl Simulator {
    /// A simulator of `cfg`'s scenario (check it first with [`Scenario::validate`]: an
    /// invalid one simulates what it can).
    pub fn new(cfg: SimulationConfig) -> Simulator {
        Simulator {
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x5eed_7a3e),
            centre: centre::Centre::new(&cfg),
            seq: 0,
            heap: BinaryHeap::new(),
            fresh: Vec::new(),
            cfg,
        }
    }

    fn push(&mut self, event: EventRecord<'static>) {
        let mut emit_at = event.ts_ms;
        if self.rng.random_bool(self.cfg.disorder_share) {
            emit_at += self.rng.random_range(0..=self.cfg.max_disorder_ms.max(0));
        }
        let redeliver = self.rng.random_bool(self.cfg.redelivery_share);
        if redeliver {
            let again = event.ts_ms + self.rng.random_range(0..=self.cfg.max_disorder_ms.max(0));
            self.enqueue(again, event.clone());
        }
        self.enqueue(emit_at, event);
    }

    fn enqueue(&mut self, emit_at: i64, event: EventRecord<'static>) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            emit_at,
            seq: self.seq,
            event: Box::new(event),
        }));
    }
}

impl Iterator for Simulator {
    type Item = EventRecord<'static>;

    fn next(&mut self) -> Option<EventRecord<'static>> {
        loop {
            // Everything due before the centre's next step can be emitted: later steps
            // only make events at or after their own time. Once the last contact has
            // arrived, the recording ends there: contacts still in progress stay in
            // progress, as in a real capture.
            let horizon = self.centre.next_time();
            let ready = self.heap.peek().is_some_and(|top| top.0.emit_at < horizon);
            if ready {
                return self.heap.pop().map(|p| *p.0.event);
            }
            if self.centre.finished() {
                self.heap.clear();
                return None;
            }
            self.centre.step(&self.cfg, &mut self.fresh);
            let fresh = std::mem::take(&mut self.fresh);
            for event in fresh {
                self.push(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AgentState, EventKind};
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::time::Duration;

    fn sample(contacts: u64, seed: u64) -> Vec<EventRecord<'static>> {
        Simulator::new(SimulationConfig {
            seed,
            contacts: Some(contacts),
            ..SimulationConfig::default()
        })
        .collect()
    }

    #[test]
    fn same_seed_same_stream() {
        assert_eq!(sample(200, 7), sample(200, 7));
        assert_ne!(sample(200, 7), sample(200, 8));
    }

    #[test]
    fn the_stream_has_the_realistic_features_tests_rely_on() {
        let events = sample(5_000, 3);
        let kinds: HashSet<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds.len(),
            7,
            "every lifecycle step and agent states appear"
        );
        let channels: HashSet<_> = events.iter().filter_map(|e| e.channel.as_deref()).collect();
        assert!(channels.len() >= 8, "{channels:?}");
        let ids: Vec<_> = events.iter().map(|e| &e.event_id).collect();
        let unique: HashSet<_> = ids.iter().collect();
        assert!(unique.len() < ids.len(), "some redeliveries");
        assert!(
            events.windows(2).any(|w| w[1].ts_ms < w[0].ts_ms),
            "some disorder"
        );
        let max_disorder = events
            .iter()
            .scan(i64::MIN, |max, e| {
                *max = (*max).max(e.ts_ms);
                Some(*max - e.ts_ms)
            })
            .max()
            .unwrap_or(0);
        assert!(
            max_disorder <= 60_000,
            "disorder stays within a minute: {max_disorder}"
        );
        let anonymous = events
            .iter()
            .filter(|e| e.kind == EventKind::Arrived && e.customer_id.is_none())
            .count();
        assert!(anonymous > 0);
        let mut per_customer: HashMap<_, HashSet<_>> = HashMap::new();
        for e in events.iter().filter(|e| e.kind == EventKind::Arrived) {
            if let (Some(c), Some(ch)) = (&e.customer_id, &e.channel) {
                per_customer
                    .entry(c.clone())
                    .or_default()
                    .insert(ch.clone());
            }
        }
        assert!(
            per_customer.values().any(|chs| chs.len() > 1),
            "cross-channel customers"
        );
        // Written channels are never abandoned; live ones are, some within seconds.
        let channel_of: HashMap<_, _> = events
            .iter()
            .filter_map(|e| Some((e.interaction_id.clone(), e.channel.clone()?)))
            .collect();
        let abandoned: HashMap<_, usize> = events
            .iter()
            .filter(|e| e.kind == EventKind::Abandoned)
            .filter_map(|e| channel_of.get(&e.interaction_id))
            .fold(HashMap::new(), |mut n, ch| {
                *n.entry(ch.as_ref()).or_default() += 1;
                n
            });
        for written in ["email", "webform", "social"] {
            assert_eq!(abandoned.get(written), None, "{written}: {abandoned:?}");
        }
        assert!(abandoned.get("phone") > Some(&0), "{abandoned:?}");
    }

    #[test]
    fn every_written_event_decodes_back() {
        let events = sample(300, 5);
        let mut jsonl = Vec::new();
        crate::event::write_events(
            events.clone().into_iter(),
            crate::event::Format::Jsonl,
            &mut jsonl,
        )
        .expect("write");
        for (line, original) in jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .zip(&events)
        {
            assert_eq!(
                &crate::event::decode_json(line).expect("valid").into_owned(),
                original
            );
        }
    }

    /// The switch of the demo's story, on since `changed_at`: phone · billing → visual IVR.
    fn billing_to_visual_ivr(changed_at: i64) -> vigie_proto::DeflectionSwitch {
        vigie_proto::DeflectionSwitch {
            id: "phone.billing.all.all".into(),
            channel: "phone".into(),
            reason: Some("billing".into()),
            segment: None,
            queue: None,
            target: vigie_proto::DeflectionTarget::VisualIvr,
            on: true,
            version: 1,
            changed_by: "test".into(),
            changed_at,
            why: "test".into(),
            expires_at: None,
            prediction: None,
        }
    }

    /// One queue, constant Poisson arrivals, exponential handling, nobody giving up, a
    /// fixed team without breaks: the M/M/c queue Erlang C describes.
    fn erlang_scenario(agents: u32, handle_s: u64) -> Scenario {
        Scenario {
            curve: vec![1.0; 24],
            channel_shares: [("phone".to_string(), 1.0)].into_iter().collect(),
            queues: vec![QueueSpec {
                name: "support".into(),
                channel: "phone".into(),
                reasons: Vec::new(),
                mean_handle: Duration::from_secs(handle_s),
                mean_after_contact_work: Duration::ZERO,
                mean_patience: None,
                hang_up_share: 0.0,
                mean_routing: Duration::ZERO,
                deflect_share: 0.0,
                self_service: false,
                threshold: Duration::from_secs(20),
            }],
            teams: vec![TeamSpec {
                name: "all".into(),
                queues: vec!["support".into()],
                site: "paris".into(),
                agents: Some(agents),
                breaks: false,
            }],
            surges: Vec::new(),
            ..Scenario::default()
        }
    }

    #[test]
    fn the_simulated_service_level_matches_erlang_c() {
        use crate::engine::erlang::service_level;
        use crate::engine::{Engine, EngineConfig, SnapshotQuery, WindowSpec};
        // 1 contact/s × 60 s = 60 Erlangs; 63, 65 and 68 agents: SL from 54 % to 91 %.
        for (agents, seed) in [(63, 3), (65, 4), (68, 5)] {
            let engine = Engine::new(EngineConfig::default());
            for ev in Simulator::new(SimulationConfig {
                seed,
                contacts: Some(40_000),
                contacts_per_second: 1.0,
                anonymous_share: 1.0,
                scenario: erlang_scenario(agents, 60),
                ..SimulationConfig::default()
            }) {
                engine.apply(&ev);
            }
            let snapshot = engine
                .snapshot(&SnapshotQuery {
                    window: WindowSpec::Last(24 * 3_600_000),
                    ..SnapshotQuery::default()
                })
                .expect("snapshot");
            let simulated = snapshot.total.service_level.expect("answered contacts");
            let erlang = service_level(agents, 60.0, 60.0, 20.0);
            assert!(
                (simulated - erlang).abs() <= 0.03,
                "{agents} agents: simulated {simulated:.3}, Erlang C {erlang:.3}"
            );
            let occupancy = snapshot.total.occupancy.expect("agents");
            assert!(
                (occupancy - 60.0 / f64::from(agents)).abs() <= 0.03,
                "{agents} agents: occupancy {occupancy:.3} is the load over the agents"
            );
        }
    }

    #[test]
    fn agents_and_contacts_tell_the_same_story() {
        let events: Vec<_> = Simulator::new(SimulationConfig {
            seed: 9,
            // Five hours: past the first breaks and lunch.
            contacts: Some(20_000),
            contacts_per_second: 1.0,
            redelivery_share: 0.0,
            disorder_share: 0.0,
            ..SimulationConfig::default()
        })
        .collect();
        // Each agent's own events, in time order: on contact with the contact it answered.
        let mut by_agent: BTreeMap<&str, Vec<&EventRecord<'static>>> = BTreeMap::new();
        for ev in events.iter().filter(|e| e.kind == EventKind::AgentState) {
            by_agent
                .entry(ev.agent_id.as_deref().unwrap_or_default())
                .or_default()
                .push(ev);
        }
        assert!(
            by_agent.len() > 100,
            "a centre of agents: {}",
            by_agent.len()
        );
        let on_contact: HashMap<(&str, i64), &str> = by_agent
            .iter()
            .flat_map(|(agent, evs)| {
                evs.iter()
                    .filter(|e| e.agent_state == Some(AgentState::OnContact))
                    .map(|e| ((*agent, e.ts_ms), &*e.interaction_id))
            })
            .collect();
        let mut answered_by_agent = 0;
        for ev in events.iter().filter(|e| e.kind == EventKind::Answered) {
            if let Some(agent) = ev.agent_id.as_deref() {
                answered_by_agent += 1;
                assert_eq!(
                    on_contact.get(&(agent, ev.ts_ms)).copied(),
                    Some(&*ev.interaction_id),
                    "{agent} goes on contact with what it answers"
                );
            }
        }
        assert!(answered_by_agent > 1_000);
        let mut reasons = HashSet::new();
        for (agent, evs) in &by_agent {
            assert!(
                evs[0].queues.is_some() && evs[0].site.is_some(),
                "{agent}: first event says its skills"
            );
            for pair in evs.windows(2) {
                assert!(pair[0].ts_ms <= pair[1].ts_ms);
                assert_ne!(
                    (pair[0].agent_state, pair[0].ts_ms),
                    (pair[1].agent_state, pair[1].ts_ms),
                    "{agent}: no two changes at one instant"
                );
                if pair[1].agent_state == Some(AgentState::AfterContactWork) {
                    assert_eq!(pair[0].agent_state, Some(AgentState::OnContact), "{agent}");
                }
            }
            reasons.extend(evs.iter().filter_map(|e| e.away_reason.as_deref()));
        }
        assert!(
            reasons.contains("lunch") && reasons.contains("break"),
            "{reasons:?}"
        );
        let multi_skilled = by_agent
            .values()
            .any(|evs| evs[0].queues.as_ref().is_some_and(|q| q.len() > 1));
        assert!(multi_skilled);
    }

    #[test]
    fn a_switch_that_is_on_deflects_its_scope_and_some_customers_come_back() {
        let switches = Arc::new(vec![billing_to_visual_ivr(0)]);
        let events: Vec<_> = Simulator::new(SimulationConfig {
            seed: 2,
            contacts: Some(10_000),
            switches: Some(Arc::new(move || switches.clone())),
            ..SimulationConfig::default()
        })
        .collect();
        let arrivals: HashMap<&str, &EventRecord<'static>> = events
            .iter()
            .filter(|e| e.kind == EventKind::Arrived)
            .map(|e| (&*e.interaction_id, e))
            .collect();
        let mut deflected = 0;
        for ev in events.iter().filter(|e| e.kind == EventKind::Queued) {
            // (An arrival delayed in transport past the end of the recording is not in it.)
            let Some(arrival) = arrivals.get(&*ev.interaction_id) else {
                continue;
            };
            assert!(
                !(arrival.channel.as_deref() == Some("phone")
                    && arrival.reason.as_deref() == Some("billing")),
                "no phone billing contact reaches a queue"
            );
        }
        for ev in events.iter().filter(|e| e.kind == EventKind::Deflected) {
            let Some(arrival) = arrivals.get(&*ev.interaction_id) else {
                continue;
            };
            if arrival.channel.as_deref() == Some("phone")
                && arrival.reason.as_deref() == Some("billing")
            {
                assert_eq!(ev.deflected_to.as_deref(), Some("visual_ivr"));
                deflected += 1;
            }
        }
        assert!(deflected > 500, "{deflected}");
        // Customers deflected by the switch who arrive again later (on phone or chat).
        let mut deflected_at: HashMap<&str, i64> = HashMap::new();
        for ev in events.iter().filter(|e| e.kind == EventKind::Deflected) {
            let by_switch = arrivals.get(&*ev.interaction_id).is_some_and(|a| {
                a.channel.as_deref() == Some("phone") && a.reason.as_deref() == Some("billing")
            });
            if let (true, Some(c)) = (by_switch, ev.customer_id.as_deref()) {
                deflected_at.entry(c).or_insert(ev.ts_ms);
            }
        }
        let came_back = events
            .iter()
            .filter(|e| e.kind == EventKind::Arrived)
            .filter(|e| {
                e.customer_id
                    .as_deref()
                    .and_then(|c| deflected_at.get(c))
                    .is_some_and(|at| e.ts_ms >= at + 5 * 60_000)
            })
            .count();
        assert!(
            came_back > 20,
            "{came_back} of {} came back",
            deflected_at.len()
        );
    }

    /// The story of the demo: the billing surge degrades the phone; a flip of phone ·
    /// billing → visual IVR brings the phone service level back within minutes, where
    /// without it the phone stays degraded.
    #[test]
    fn a_flip_during_the_surge_brings_the_phone_service_level_back() {
        use crate::engine::{Engine, EngineConfig, SnapshotQuery, WindowSpec};
        let start = SimulationConfig::default().start_ms;
        let minute = 60_000;
        // The default surge starts 30 minutes in; the flip comes 20 minutes later.
        let flip_at = start + 50 * minute;
        let switch = billing_to_visual_ivr(flip_at);
        let phone_sl = |flip: bool, until: i64| {
            let switches = Arc::new(vec![switch.clone()]);
            let engine = Engine::new(EngineConfig::default());
            let sim = Simulator::new(SimulationConfig {
                seed: 12,
                contacts: None,
                contacts_per_second: 2.0,
                scenario: Scenario::default(),
                switches: flip.then(|| -> SwitchView { Arc::new(move || switches.clone()) }),
                ..SimulationConfig::default()
            });
            for ev in sim.take_while(|e| e.ts_ms < until) {
                engine.apply(&ev);
            }
            let s = engine
                .snapshot(&SnapshotQuery {
                    window: WindowSpec::Last(10 * minute),
                    ..SnapshotQuery::default()
                })
                .expect("snapshot");
            s.by_channel["phone"].service_level.expect("phone contacts")
        };
        let calm = phone_sl(false, start + 30 * minute);
        let degraded = phone_sl(false, flip_at);
        let still = phone_sl(false, flip_at + 15 * minute);
        let recovered = phone_sl(true, flip_at + 15 * minute);
        eprintln!(
            "phone SL over 10 min: {calm:.3} before the surge, {degraded:.3} at the flip, \
             15 min later {recovered:.3} with the flip, {still:.3} without"
        );
        assert!(calm >= 0.7, "the centre copes before the surge: {calm:.2}");
        assert!(
            degraded < calm - 0.15,
            "the surge degrades the phone: {calm:.2} → {degraded:.2}"
        );
        assert!(
            still < calm - 0.15,
            "without a flip it stays degraded: {still:.2}"
        );
        assert!(
            recovered > still + 0.15 && recovered >= 0.7,
            "the flip brings it back: {degraded:.2} → {recovered:.2} (without: {still:.2})"
        );
    }
}
