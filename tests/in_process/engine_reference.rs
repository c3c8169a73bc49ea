//! The engine against a brute-force reference over random streams.
//!
//! The reference below recomputes every KPI straight from the formulas of the
//! README, over the whole list of accepted events, with no windows, buckets,
//! retractions or eviction. Streams are shuffled within the allowed lateness,
//! carry redeliveries and a few late events; the engine must agree exactly.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use vigie::engine::{
    build_snapshot, id_hash, new_histogram, ChannelRules, Engine, EngineConfig, SnapshotQuery,
    Symbols, WindowSpec,
};
use vigie::event::{EventKind, EventRecord};
use vigie_proto::{Kpis, Snapshot};

// ---------------------------------------------------------------- reference

#[derive(Default, Clone)]
struct Contact<'a> {
    arrival: Option<&'a EventRecord<'static>>,
    queued: Option<&'a EventRecord<'static>>,
    deflected: Option<i64>,
    answered: Option<i64>,
    abandoned: Option<i64>,
    ended: Option<(i64, bool)>,
}

#[derive(Default)]
struct Tally {
    arrivals: u64,
    deflected: u64,
    answered: u64,
    abandoned: u64,
    short: u64,
    wait_sum: i64,
    waits: Vec<u64>,
    sl_met: u64,
    sl_eligible: u64,
    handled: u64,
    handle_sum: i64,
    rep_eligible: u64,
    repeats: u64,
    cross: u64,
    ood_eligible: u64,
    ood_met: u64,
    in_queue: u64,
    oldest_arrival: Option<i64>,
}

fn ratio(n: impl Into<f64>, d: impl Into<f64>) -> Option<f64> {
    let d = d.into();
    (d > 0.0).then(|| n.into() / d)
}

impl Tally {
    /// Nothing of this scope falls in the window (the engine then has no entry for it).
    fn is_empty(&self) -> bool {
        self.arrivals
            + self.deflected
            + self.answered
            + self.abandoned
            + self.short
            + self.handled
            + self.rep_eligible
            + self.ood_eligible
            + self.in_queue
            == 0
    }

    fn kpis(&self, now: i64) -> Kpis {
        let mut h = new_histogram();
        for w in &self.waits {
            h.record(*w).expect("record");
        }
        let q = |p: f64| (!h.is_empty()).then(|| h.value_at_quantile(p));
        Kpis {
            arrivals: self.arrivals,
            deflected: self.deflected,
            answered: self.answered,
            abandoned: self.abandoned,
            short_abandoned: self.short,
            answer_rate: ratio(
                self.answered as f64,
                (self.answered + self.abandoned) as f64,
            ),
            abandon_rate: ratio(
                self.abandoned as f64,
                (self.answered + self.abandoned) as f64,
            ),
            deflection_rate: ratio(self.deflected as f64, self.arrivals as f64),
            asa_ms: ratio(self.wait_sum as f64, self.answered as f64),
            wait_p50_ms: q(0.5),
            wait_p90_ms: q(0.9),
            wait_p99_ms: q(0.99),
            service_level: ratio(self.sl_met as f64, self.sl_eligible as f64),
            aht_ms: ratio(self.handle_sum as f64, self.handled as f64),
            repeat_rate: ratio(self.repeats as f64, self.rep_eligible as f64),
            cross_channel_repeat_rate: ratio(self.cross as f64, self.rep_eligible as f64),
            once_and_done_rate: ratio(self.ood_met as f64, self.ood_eligible as f64),
            in_queue: self.in_queue,
            oldest_wait_ms: self.oldest_arrival.map(|a| now - a),
            // No agent in these streams: no staffing block (tests/in_process/agents_reference.rs).
            staffing: None,
            occupancy: None,
            projection: None,
            what_if: None,
            baseline: None,
        }
    }
}

fn rules(cfg: &EngineConfig, channel: &str) -> ChannelRules {
    cfg.channels
        .get(channel)
        .copied()
        .unwrap_or(cfg.default_rules)
}

/// KPIs straight from the formulas, over the events in processing order.
fn reference(events: &[EventRecord<'static>], cfg: &EngineConfig, window_ms: i64) -> Snapshot {
    // Acceptance: late first (behind the newest time seen so far), then redeliveries.
    let mut watermark: Option<i64> = None;
    let mut seen = HashSet::new();
    let (mut late, mut duplicates) = (0u64, 0u64);
    let mut accepted = Vec::new();
    for ev in events {
        if watermark.is_some_and(|w| ev.ts_ms < w - cfg.allowed_lateness_ms) {
            late += 1;
        } else if !seen.insert(ev.event_id.clone()) {
            duplicates += 1;
        } else {
            accepted.push(ev);
            watermark = Some(watermark.map_or(ev.ts_ms, |w| w.max(ev.ts_ms)));
        }
    }
    // Join: first `arrived` stands; for other steps the earliest report wins.
    let mut contacts: BTreeMap<&str, Contact<'_>> = BTreeMap::new();
    for ev in &accepted {
        let c = contacts.entry(&ev.interaction_id).or_default();
        let min = |slot: &mut Option<i64>| *slot = Some(slot.map_or(ev.ts_ms, |t| t.min(ev.ts_ms)));
        match ev.kind {
            EventKind::Arrived => {
                c.arrival.get_or_insert(ev);
            }
            EventKind::Queued => {
                if c.queued.is_none_or(|q| ev.ts_ms < q.ts_ms) {
                    c.queued = Some(ev);
                }
            }
            EventKind::Deflected => min(&mut c.deflected),
            EventKind::Answered => min(&mut c.answered),
            EventKind::Abandoned => min(&mut c.abandoned),
            EventKind::Ended => {
                let e = (ev.ts_ms, ev.resolved.unwrap_or(false));
                c.ended = Some(c.ended.map_or(e, |x| x.min(e)));
            }
            EventKind::AgentState => {}
        }
    }
    // Arrivals of each customer, ordered by (time, interaction id hash).
    let mut by_customer: HashMap<&str, Vec<(i64, u64, &str)>> = HashMap::new();
    for (iid, c) in &contacts {
        if let Some(a) = c.arrival {
            if let Some(cust) = a.customer_id.as_deref() {
                let ch = a.channel.as_deref().unwrap_or("unknown");
                by_customer
                    .entry(cust)
                    .or_default()
                    .push((a.ts_ms, id_hash(iid), ch));
            }
        }
    }
    let repeat_of = |iid: &str, a: &EventRecord<'_>| -> Option<(bool, bool)> {
        let cust = a.customer_id.as_deref()?;
        let me = (a.ts_ms, id_hash(iid));
        let pred = by_customer[cust]
            .iter()
            .filter(|p| (p.0, p.1) < me)
            .max_by_key(|p| (p.0, p.1));
        Some(match pred {
            Some(p) if a.ts_ms - p.0 <= cfg.repeat_horizon_ms => {
                (true, p.2 != a.channel.as_deref().unwrap_or("unknown"))
            }
            _ => (false, false),
        })
    };

    let to = watermark.map_or(0, |w| (w.div_euclid(1000) + 1) * 1000);
    let from = to - window_ms;
    let inside = |t: i64| from <= t && t < to;
    let mut total = Tally::default();
    let mut by_channel: BTreeMap<String, Tally> = BTreeMap::new();
    for (iid, c) in &contacts {
        let Some(a) = c.arrival else { continue };
        let channel = a.channel.as_deref().unwrap_or("unknown").to_string();
        let r = rules(cfg, &channel);
        let repeat = repeat_of(iid, a);
        for t in [&mut total, by_channel.entry(channel).or_default()] {
            let ta = a.ts_ms;
            if inside(ta) {
                t.arrivals += 1;
                if let Some((rep, cross)) = repeat {
                    t.rep_eligible += 1;
                    t.repeats += u64::from(rep);
                    t.cross += u64::from(cross);
                }
            }
            if c.deflected.is_some_and(inside) {
                t.deflected += 1;
            }
            if let Some(tn) = c.answered {
                if inside(tn) {
                    let wait = (tn - ta).max(0);
                    t.answered += 1;
                    t.wait_sum += wait;
                    t.waits.push(wait as u64);
                    if let Some(thr) = r.sl_threshold_ms {
                        t.sl_eligible += 1;
                        t.sl_met += u64::from(wait <= thr);
                    }
                }
            } else if let Some(tb) = c.abandoned.filter(|tb| inside(*tb)) {
                let wait = (tb - ta).max(0);
                if wait < r.short_abandon_ms {
                    t.short += 1;
                } else {
                    t.abandoned += 1;
                    t.sl_eligible += u64::from(r.sl_threshold_ms.is_some());
                }
            }
            if let Some((te, resolved)) = c.ended.filter(|e| inside(e.0)) {
                if let Some(tn) = c.answered {
                    t.handled += 1;
                    t.handle_sum += (te - tn).max(0);
                }
                if let Some((rep, _)) = repeat {
                    t.ood_eligible += 1;
                    t.ood_met += u64::from(resolved && !rep);
                }
            }
            if c.queued.is_some()
                && c.deflected.is_none()
                && c.answered.is_none()
                && c.abandoned.is_none()
                && c.ended.is_none()
            {
                t.in_queue += 1;
                t.oldest_arrival = Some(t.oldest_arrival.map_or(ta, |o| o.min(ta)));
            }
        }
    }
    Snapshot {
        window: vigie_proto::WindowBounds { from, to },
        watermark,
        late_events: late,
        duplicates,
        total: total.kpis(to),
        by_channel: by_channel
            .into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(c, t)| (c, t.kpis(to)))
            .collect(),
        ..Snapshot::default()
    }
}

/// One line per event, for failure messages.
fn compact(events: &[EventRecord<'static>]) -> String {
    let base = events.iter().map(|e| e.ts_ms).min().unwrap_or(0);
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} +{}ms ch={:?} cust={:?} q={:?} res={:?}",
                e.interaction_id,
                e.kind.as_str(),
                e.ts_ms - base,
                e.channel.as_deref(),
                e.customer_id.as_deref(),
                e.queue.as_deref(),
                e.resolved
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- random streams

const CHANNELS: [&str; 5] = ["phone", "chat", "email", "visual_ivr", "carrier_pigeon"];
const QUEUES: [&str; 3] = ["billing", "tech", "sales"];

#[derive(Debug, Clone)]
struct ContactPlan {
    start: i64,
    customer: Option<u8>,
    channel: usize,
    queue: Option<usize>,
    refine_queue: Option<usize>,
    outcome: u8,
    routing: i64,
    wait: i64,
    handle: i64,
    resolved: bool,
}

fn contact_plan(span_ms: i64) -> impl Strategy<Value = ContactPlan> {
    (
        0..span_ms,
        proptest::option::weighted(0.8, 0u8..6),
        0..CHANNELS.len(),
        proptest::option::of(0..QUEUES.len()),
        proptest::option::weighted(0.2, 0..QUEUES.len()),
        0u8..11,
        0i64..15_000,
        prop_oneof![0i64..8_000, 0i64..120_000, 0i64..900_000],
        1_000i64..600_000,
        any::<bool>(),
    )
        .prop_map(
            |(
                start,
                customer,
                channel,
                queue,
                refine_queue,
                outcome,
                routing,
                wait,
                handle,
                resolved,
            )| {
                ContactPlan {
                    start,
                    customer,
                    channel,
                    queue,
                    refine_queue,
                    outcome,
                    routing,
                    wait,
                    handle,
                    resolved,
                }
            },
        )
}

fn events_of(n: usize, p: &ContactPlan, base: i64) -> Vec<EventRecord<'static>> {
    let iid = format!("i{n}");
    let ev = |kind: EventKind, ts: i64| {
        EventRecord::new(
            format!("{iid}-{}", kind.as_str()),
            kind,
            base + ts,
            iid.clone(),
        )
    };
    let mut arrived = ev(EventKind::Arrived, p.start);
    arrived.customer_id = p.customer.map(|c| Cow::Owned(format!("c{c}")));
    arrived.channel = Some(Cow::Borrowed(CHANNELS[p.channel]));
    arrived.queue = p.queue.map(|q| Cow::Borrowed(QUEUES[q]));
    let mut out = vec![arrived];
    let tq = p.start + p.routing;
    match p.outcome {
        0 => out.push(ev(EventKind::Deflected, tq)),
        1 => {} // arrived only: still routing
        _ => {
            let mut queued = ev(EventKind::Queued, tq);
            queued.queue = p.refine_queue.map(|q| Cow::Borrowed(QUEUES[q]));
            out.push(queued);
            match p.outcome {
                2 => {}                                               // still waiting
                9 => out.push(ev(EventKind::Deflected, tq + p.wait)), // deflected out of the queue
                3 | 4 => out.push(ev(EventKind::Abandoned, tq + p.wait)),
                5 => out.push(ev(EventKind::Answered, tq + p.wait)),
                _ => {
                    out.push(ev(EventKind::Answered, tq + p.wait));
                    let mut ended = ev(EventKind::Ended, tq + p.wait + p.handle);
                    ended.resolved = Some(p.resolved);
                    out.push(ended);
                }
            }
        }
    }
    out
}

/// A stream: contacts, redeliveries, transport disorder within the lateness, and up to
/// `max_very_late` events delayed far beyond it.
fn stream_with(
    max_very_late: usize,
) -> impl Strategy<Value = (Vec<EventRecord<'static>>, i64, i64, i64)> {
    let lateness = prop_oneof![Just(60_000i64), Just(300_000i64)];
    let horizon = prop_oneof![Just(600_000i64), Just(7 * 86_400_000i64)];
    (lateness, horizon).prop_flat_map(move |(lateness, horizon)| {
        (
            proptest::collection::vec(contact_plan(3_600_000), 1..60),
            proptest::collection::vec((any::<prop::sample::Index>(), 0i64..lateness), 0..20),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..=max_very_late),
            any::<u64>(),
            prop_oneof![
                Just(60_000i64),
                Just(900_000),
                Just(3_600_000),
                Just(86_400_000)
            ],
        )
            .prop_map(
                move |(plans, redeliveries, very_late, shuffle_seed, window)| {
                    let base = 1_795_593_600_000; // 2026-11-25T08:00:00Z
                    let mut events: Vec<EventRecord<'static>> = plans
                        .iter()
                        .enumerate()
                        .flat_map(|(n, p)| events_of(n, p, base))
                        .collect();
                    // Each event is delayed in transport by up to the lateness.
                    let mut rng = shuffle_seed;
                    let mut jitter = || {
                        rng = rng
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((rng >> 33) as i64).rem_euclid(lateness)
                    };
                    let mut keyed: Vec<(i64, EventRecord<'static>)> =
                        events.drain(..).map(|e| (e.ts_ms + jitter(), e)).collect();
                    for (index, delay) in &redeliveries {
                        let (_, e) = &keyed[index.index(keyed.len())];
                        let e = e.clone();
                        keyed.push((e.ts_ms + delay, e));
                    }
                    for index in &very_late {
                        let i = index.index(keyed.len());
                        keyed[i].0 += 10 * lateness;
                    }
                    keyed.sort_by_key(|(emit, e)| (*emit, e.event_id.clone()));
                    (
                        keyed.into_iter().map(|(_, e)| e).collect(),
                        lateness,
                        horizon,
                        window,
                    )
                },
            )
    })
}

fn stream() -> impl Strategy<Value = (Vec<EventRecord<'static>>, i64, i64, i64)> {
    stream_with(2)
}

fn engine_config(lateness: i64, horizon: i64) -> EngineConfig {
    let mut cfg = EngineConfig {
        allowed_lateness_ms: lateness,
        repeat_horizon_ms: horizon,
        shards: 3,
        // Streams of hours: no week of history. Baselines have their own test against
        // a brute force (engine::partial's `baselines_compare_with_...`).
        baseline_weeks: 0,
        ..EngineConfig::default()
    };
    cfg.channels.get_mut("chat").expect("chat").short_abandon_ms = 0; // disabled on chat
    cfg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_brute_force_reference((events, lateness, horizon, window) in stream()) {
        let cfg = engine_config(lateness, horizon);
        let engine = Engine::new(cfg.clone());
        for ev in &events {
            engine.apply(ev);
        }
        let got = engine
            .snapshot(&SnapshotQuery { window: WindowSpec::Last(window), ..SnapshotQuery::default() })
            .expect("snapshot");
        let want = reference(&events, &cfg, window);
        prop_assert_eq!(got.window, want.window);
        prop_assert_eq!(got.watermark, want.watermark);
        prop_assert_eq!(got.late_events, want.late_events);
        prop_assert_eq!(got.duplicates, want.duplicates);
        prop_assert_eq!(&got.total, &want.total);
        prop_assert_eq!(
            &got.by_channel.keys().collect::<Vec<_>>(),
            &want.by_channel.keys().collect::<Vec<_>>(),
            "{}",
            compact(&events)
        );
        for (channel, kpis) in &want.by_channel {
            prop_assert_eq!(&got.by_channel[channel], kpis, "channel {}", channel);
        }
    }

    #[test]
    fn arrival_order_does_not_change_the_result((events, lateness, horizon, window) in stream_with(0)) {
        // Same accepted events, fed in time order instead of transport order.
        let cfg = engine_config(lateness, horizon);
        let shuffled = Engine::new(cfg.clone());
        for ev in &events {
            shuffled.apply(ev);
        }
        let mut ordered_events = events.clone();
        ordered_events.sort_by_key(|e| e.ts_ms);
        let ordered = Engine::new(cfg);
        let query = SnapshotQuery { window: WindowSpec::Last(window), ..SnapshotQuery::default() };
        let (a, b) = (shuffled.snapshot(&query).expect("snapshot"), {
            for ev in &ordered_events {
                ordered.apply(ev);
            }
            ordered.snapshot(&query).expect("snapshot")
        });
        // Transport disorder stays within the lateness: nothing is late either way.
        prop_assert_eq!((a.late_events, b.late_events), (0, 0));
        prop_assert_eq!(a.total, b.total);
        prop_assert_eq!(a.by_channel, b.by_channel);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// Several ingest tasks, each owning the customers of its partitions (as Kafka's
    /// keying gives), apply in parallel and reach the sequential result. The lateness
    /// is longer than the stream, so no task's progress makes another's events late.
    #[test]
    fn parallel_ingest_tasks_reach_the_sequential_result((events, _lateness, horizon, window) in stream(), tasks in 2usize..4) {
        let cfg = engine_config(4 * 3_600_000, horizon);
        let sequential = Engine::new(cfg.clone());
        for ev in &events {
            sequential.apply(ev);
        }
        let owner: HashMap<String, String> = events
            .iter()
            .filter(|e| e.kind == EventKind::Arrived)
            .map(|e| {
                let key = e.customer_id.as_deref().unwrap_or(&e.interaction_id).to_string();
                (e.interaction_id.to_string(), key)
            })
            .collect();
        let partition = |e: &EventRecord<'_>| {
            let key = owner.get(&*e.interaction_id).map_or(&*e.interaction_id, String::as_str);
            (id_hash(key) % tasks as u64) as usize
        };
        let parallel = Engine::new(cfg.clone());
        std::thread::scope(|s| {
            for task in 0..tasks {
                let (parallel, events, partition) = (&parallel, &events, &partition);
                s.spawn(move || {
                    for ev in events.iter().filter(|e| partition(e) == task) {
                        parallel.apply(ev);
                    }
                });
            }
        });
        let query = SnapshotQuery { window: WindowSpec::Last(window), ..SnapshotQuery::default() };
        let (a, b) = (sequential.snapshot(&query).expect("snapshot"), parallel.snapshot(&query).expect("snapshot"));
        prop_assert_eq!(a.late_events, 0);
        prop_assert_eq!(&a, &b);

        // One engine per partition (as with Kafka), merged at snapshot time.
        let symbols = std::sync::Arc::new(Symbols::default());
        let engines: Vec<Engine> = (0..tasks).map(|_| Engine::with_symbols(cfg.clone(), symbols.clone())).collect();
        for ev in &events {
            engines[partition(ev)].apply(ev);
        }
        let merged = build_snapshot(&engines.iter().collect::<Vec<_>>(), &query).expect("snapshot");
        prop_assert_eq!(&a, &merged);
    }
}
