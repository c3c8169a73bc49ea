//! Staffing, occupancy and the agent list against a brute-force reference over random
//! streams of agent events: shuffled within the allowed lateness, redelivered, agents
//! changing skills mid-shift and agents who never log out.
//!
//! The reference applies the rule of the domain reference literally: an agent's state at
//! t is the `state` of its latest event with `ts < t`, its queues those of its latest
//! event with `ts < t` that carries them; occupancy sums each state's span clipped to
//! the window (the last span runs to `to`).

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use vigie::engine::{AgentQuery, Engine, EngineConfig, SnapshotQuery, WindowSpec};
use vigie::event::{AgentState, EventKind, EventRecord};
use vigie_proto::Staffing;

const QUEUES: [&str; 4] = ["q0", "q1", "q2", "q3"];
/// The channel of each queue's contacts; `q3` has none (its agents count in no channel).
const QUEUE_CHANNEL: [Option<&str>; 4] = [Some("phone"), Some("phone"), Some("chat"), None];

#[derive(Default, Debug, Clone, PartialEq)]
struct Tally {
    staffing: Staffing,
    busy: i64,
    productive: i64,
}

impl Tally {
    fn occupancy(&self) -> Option<f64> {
        (self.productive > 0).then(|| self.busy as f64 / self.productive as f64)
    }
}

#[derive(Default, Debug)]
struct Reference {
    total: Tally,
    by_queue: BTreeMap<String, Tally>,
    by_channel: BTreeMap<String, Tally>,
    /// Agent id → (state, since) at `to`, for agents not logged out.
    states: BTreeMap<String, (AgentState, i64)>,
}

/// The brute-force reference over the accepted agent events of a stream.
fn reference(events: &[EventRecord<'static>], from: i64, to: i64) -> Reference {
    let mut seen = HashSet::new();
    let mut by_agent: BTreeMap<String, Vec<&EventRecord<'static>>> = BTreeMap::new();
    for ev in events {
        if ev.kind == EventKind::AgentState && seen.insert(ev.event_id.to_string()) {
            let agent = ev.agent_id.as_deref().unwrap_or_default().to_string();
            by_agent.entry(agent).or_default().push(ev);
        }
    }
    let channels_of = |queues: &[String]| -> Vec<String> {
        let mut out: Vec<String> = queues
            .iter()
            .filter_map(|q| {
                let i = QUEUES.iter().position(|x| x == q)?;
                QUEUE_CHANNEL[i].map(str::to_string)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let mut r = Reference::default();
    for (agent, mut evs) in by_agent {
        // Distinct times per agent (see the generator): no tie to break.
        evs.sort_by_key(|e| e.ts_ms);
        let evs: Vec<_> = evs.into_iter().filter(|e| e.ts_ms < to).collect();
        for (i, ev) in evs.iter().enumerate() {
            let start = ev.ts_ms;
            let end = evs.get(i + 1).map_or(to, |n| n.ts_ms);
            let state = ev.agent_state.expect("agent state");
            let queues: Vec<String> = evs[..=i]
                .iter()
                .rev()
                .find_map(|e| e.queues.as_ref())
                .map(|q| {
                    let mut q: Vec<String> = q.iter().map(|c| c.to_string()).collect();
                    q.sort();
                    q.dedup();
                    q
                })
                .unwrap_or_default();
            let ms = end.min(to) - start.max(from);
            let live = end == to;
            if ms <= 0 && !live {
                continue;
            }
            let reason = ev.away_reason.as_deref();
            let add = |t: &mut Tally| {
                if ms > 0 && state.is_busy() {
                    t.busy += ms;
                }
                if ms > 0 && state.is_productive() {
                    t.productive += ms;
                }
                if live {
                    t.staffing.add(state, reason);
                }
            };
            add(&mut r.total);
            for q in &queues {
                add(r.by_queue.entry(q.clone()).or_default());
            }
            for c in channels_of(&queues) {
                add(r.by_channel.entry(c).or_default());
            }
            if live && state != AgentState::LoggedOut {
                // Since: the start of the run of this state (same reason, same contact).
                let mut since = start;
                for prev in evs[..i].iter().rev() {
                    let same = prev.agent_state == Some(state)
                        && prev.away_reason == ev.away_reason
                        && (state != AgentState::OnContact
                            || prev.interaction_id == ev.interaction_id);
                    if !same {
                        break;
                    }
                    since = prev.ts_ms;
                }
                r.states.insert(agent.clone(), (state, since));
            }
        }
    }
    r
}

/// One agent's shift: (gap before the change in s, state, queues if carried, reason).
type Plan = Vec<(i64, usize, Option<Vec<usize>>, usize)>;

fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec(
        (
            1i64..240,
            0usize..5,
            prop::option::weighted(0.35, prop::collection::vec(0usize..4, 0..3)),
            0usize..3,
        ),
        1..14,
    )
}

fn events_of(plans: &[(i64, Plan)], base: i64) -> Vec<EventRecord<'static>> {
    let mut out = Vec::new();
    for (a, (offset, plan)) in plans.iter().enumerate() {
        let mut ts = base + offset * 1000 + a as i64; // distinct times per agent
        for (i, (gap, state, queues, reason)) in plan.iter().enumerate() {
            ts += gap * 1000 + 7;
            let state = AgentState::ALL[*state];
            let mut ev = EventRecord::agent(format!("a{a}-{i}"), ts, format!("agent{a}"), state);
            ev.queues = match (i, queues) {
                (0, None) => Some(vec![QUEUES[a % 4].into()]),
                (_, q) => q
                    .as_ref()
                    .map(|q| q.iter().map(|i| QUEUES[*i].into()).collect()),
            };
            if i == 0 {
                ev.site = Some(if a % 2 == 0 { "lyon" } else { "lille" }.into());
            }
            if state == AgentState::Away {
                ev.away_reason = [None, Some("lunch"), Some("break")][*reason].map(Into::into);
            }
            if state == AgentState::OnContact {
                ev.interaction_id = format!("c{a}-{}", i / 2).into();
            }
            out.push(ev);
        }
    }
    out
}

/// One contact per queue with a channel, at `ts`: the queue → channel map of the window.
fn contacts(ts: i64) -> Vec<EventRecord<'static>> {
    let mut out = Vec::new();
    for (i, q) in QUEUES.iter().enumerate() {
        let Some(channel) = QUEUE_CHANNEL[i] else {
            continue;
        };
        let mut arrived =
            EventRecord::new(format!("k{i}-a"), EventKind::Arrived, ts, format!("k{i}"));
        arrived.channel = Some(channel.into());
        let mut queued =
            EventRecord::new(format!("k{i}-q"), EventKind::Queued, ts, format!("k{i}"));
        queued.queue = Some((*q).into());
        out.push(arrived);
        out.push(queued);
    }
    out
}

fn stream() -> impl Strategy<Value = (Vec<EventRecord<'static>>, i64)> {
    (
        prop::collection::vec((0i64..600, plan()), 1..7),
        prop::collection::vec(any::<u16>(), 200),
        prop::sample::select(vec![300_000i64, 900_000, 3_600_000]),
    )
        .prop_map(|(plans, noise, window)| {
            let base = 1_795_597_200_000;
            let mut events = events_of(&plans, base);
            let end = events.iter().map(|e| e.ts_ms).max().unwrap_or(base) + 1;
            events.extend(contacts(end));
            // Redeliveries, then a shuffle within half the lateness (60 s): none is late.
            let again: Vec<_> = events
                .iter()
                .enumerate()
                .filter(|(i, _)| noise[i % noise.len()] % 5 == 0)
                .map(|(_, e)| e.clone())
                .collect();
            events.extend(again);
            let mut keyed: Vec<(i64, EventRecord<'static>)> = events
                .into_iter()
                .enumerate()
                .map(|(i, e)| (e.ts_ms + i64::from(noise[i % noise.len()]) % 30_000, e))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            (keyed.into_iter().map(|(_, e)| e).collect(), window)
        })
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        allowed_lateness_ms: 60_000,
        ..EngineConfig::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn staffing_and_occupancy_match_the_brute_force_reference((events, window) in stream()) {
        let engine = engine();
        for ev in &events {
            engine.apply(ev);
        }
        let snapshot = engine
            .snapshot(&SnapshotQuery { window: WindowSpec::Last(window), ..SnapshotQuery::default() })
            .expect("snapshot");
        let (from, to) = (snapshot.window.from, snapshot.window.to);
        let r = reference(&events, from, to);

        prop_assert_eq!(snapshot.total.staffing.as_ref(), Some(&r.total.staffing));
        prop_assert_eq!(snapshot.total.occupancy, r.total.occupancy());
        let s = &r.total.staffing;
        prop_assert_eq!(s.available + s.on_contact + s.after_contact_work + s.away, s.staffed);
        for (q, t) in &r.by_queue {
            let got = snapshot.queues.get(q);
            prop_assert!(got.is_some(), "queue {} missing", q);
            let got = got.expect("checked");
            prop_assert_eq!(got.staffing.as_ref(), Some(&t.staffing), "queue {}", q);
            prop_assert_eq!(got.occupancy, t.occupancy(), "queue {}", q);
        }
        for (q, status) in &snapshot.queues {
            if !r.by_queue.contains_key(q) {
                prop_assert_eq!(status.staffing.as_ref(), Some(&Staffing::default()), "queue {}", q);
            }
        }
        for (c, t) in &r.by_channel {
            let got = snapshot.by_channel.get(c);
            prop_assert!(got.is_some(), "channel {} missing", c);
            let got = got.expect("checked");
            prop_assert_eq!(got.staffing.as_ref(), Some(&t.staffing), "channel {}", c);
            prop_assert_eq!(got.occupancy, t.occupancy(), "channel {}", c);
        }

        let list = engine
            .agent_list(WindowSpec::Last(window), &AgentQuery { limit: 1_000, ..AgentQuery::default() })
            .expect("agent list");
        let listed: BTreeMap<String, (AgentState, i64)> = list
            .agents
            .iter()
            .map(|a| (a.agent_id.clone(), (a.state.expect("state"), a.since)))
            .collect();
        prop_assert_eq!(&listed, &r.states);
        prop_assert_eq!(list.total as usize, r.states.len());
        let order: Vec<(AgentState, i64)> = list.agents.iter().map(|a| (a.state.expect("state"), a.since)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(order, sorted, "by state, longest in state first");
    }

    #[test]
    fn arrival_order_does_not_change_staffing((events, window) in stream()) {
        let query = SnapshotQuery { window: WindowSpec::Last(window), ..SnapshotQuery::default() };
        let shuffled = engine();
        for ev in &events {
            shuffled.apply(ev);
        }
        let mut sorted_events = events.clone();
        sorted_events.sort_by_key(|e| e.ts_ms);
        let sorted = engine();
        for ev in &sorted_events {
            sorted.apply(ev);
        }
        let a = shuffled.snapshot(&query).expect("snapshot");
        let b = sorted.snapshot(&query).expect("snapshot");
        prop_assert_eq!(a, b);
    }
}

#[test]
fn a_page_of_the_agent_list_is_bounded_and_says_where_the_next_starts() {
    let engine = engine();
    let base = 1_795_597_200_000;
    for a in 0..7 {
        let mut ev = EventRecord::agent(
            format!("e{a}"),
            base + a * 1000,
            format!("ag{a}"),
            AgentState::Available,
        );
        ev.queues = Some(vec!["billing".into()]);
        engine.apply(&ev);
    }
    let page = |offset, limit| {
        engine
            .agent_list(
                WindowSpec::Last(900_000),
                &AgentQuery {
                    offset,
                    limit,
                    ..AgentQuery::default()
                },
            )
            .expect("list")
    };
    let first = page(0, 3);
    assert_eq!(
        (first.total, first.agents.len(), first.next_offset),
        (7, 3, Some(3))
    );
    assert_eq!(first.agents[0].agent_id, "ag0", "longest available first");
    let last = page(6, 3);
    assert_eq!((last.agents.len(), last.next_offset), (1, None));
    let mut seen: HashMap<String, ()> = HashMap::new();
    for offset in [0, 3, 6] {
        for a in page(offset, 3).agents {
            assert!(
                seen.insert(a.agent_id, ()).is_none(),
                "pages do not overlap"
            );
        }
    }
    assert_eq!(seen.len(), 7);
}
