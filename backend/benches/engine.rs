//! Criterion benches: decoding, engine apply rate, and replay of an in-memory recording.
//!
//! Run: `cargo bench -p vigie --bench engine` (numbers in the README's performance section).
//! Throughput is reported per event; everything runs on one thread (per core).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use vigie::engine::{Engine, EngineConfig, SnapshotQuery, TrendShape};
use vigie::event::{decode_json, decode_proto, EventRecord};
use vigie::event::{to_json, write_events, Format};
use vigie::replay::{replay, replay_engines, ReplayOptions};
use vigie::simulate::{SimulationConfig, Simulator};

const CONTACTS: u64 = 50_000;

fn events() -> Vec<EventRecord<'static>> {
    Simulator::new(SimulationConfig {
        contacts: Some(CONTACTS),
        contacts_per_second: 20.0,
        ..SimulationConfig::default()
    })
    .collect()
}

fn recording(format: Format, events: &[EventRecord<'static>]) -> Vec<u8> {
    let mut out = Vec::new();
    write_events(events.iter().cloned(), format, &mut out).expect("in-memory write");
    out
}

fn benches(c: &mut Criterion) {
    let events = events();
    let n = events.len() as u64;
    let jsonl = recording(Format::Jsonl, &events);
    let proto = recording(Format::Proto, &events);
    let json_lines: Vec<String> = events.iter().map(to_json).collect();
    let proto_msgs: Vec<Vec<u8>> = events
        .iter()
        .map(|e| vigie::event::protobuf::to_message(e).encode_to_vec())
        .collect();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("json", |b| {
        b.iter(|| {
            json_lines
                .iter()
                .filter(|l| decode_json(l.as_bytes()).is_ok())
                .count()
        })
    });
    g.bench_function("protobuf", |b| {
        b.iter(|| {
            proto_msgs
                .iter()
                .filter(|m| decode_proto(m).is_ok())
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("apply", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |engine| {
                for ev in &events {
                    engine.apply(ev);
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    let engine = Engine::new(EngineConfig::default());
    for ev in &events {
        engine.apply(ev);
    }
    g.throughput(Throughput::Elements(1));
    // The same contacts without their agents: what staffing, occupancy and the
    // projections add to a snapshot is the difference.
    let contacts_only = Engine::new(EngineConfig::default());
    for ev in Simulator::new(SimulationConfig {
        contacts: Some(CONTACTS),
        contacts_per_second: 20.0,
        agent_events: false,
        ..SimulationConfig::default()
    }) {
        contacts_only.apply(&ev);
    }
    for window in ["15m", "24h"] {
        let query = SnapshotQuery {
            window: window.parse().expect("window"),
            ..SnapshotQuery::default()
        };
        g.bench_function(format!("snapshot_{window}_without_agents"), |b| {
            b.iter(|| contacts_only.snapshot(&query).expect("snapshot"))
        });
    }
    // Baselines: 29 days of contacts (the 4 weeks of history a window's baseline reads),
    // with baselines on and off; what the baseline adds to a snapshot is the difference.
    let month: Vec<EventRecord<'static>> = Simulator::new(SimulationConfig {
        contacts: Some(300_000),
        contacts_per_second: 0.12,
        agent_events: false,
        ..SimulationConfig::default()
    })
    .collect();
    for weeks in [4, 0] {
        let engine = Engine::new(EngineConfig {
            baseline_weeks: weeks,
            ..EngineConfig::default()
        });
        for ev in &month {
            engine.apply(ev);
        }
        for window in ["15m", "24h"] {
            let query = SnapshotQuery {
                window: window.parse().expect("window"),
                ..SnapshotQuery::default()
            };
            g.bench_function(
                format!("snapshot_{window}_after_29_days_baseline_weeks_{weeks}"),
                |b| b.iter(|| engine.snapshot(&query).expect("snapshot")),
            );
        }
    }
    // The pressure table: one channel by reason, a what-if per row.
    let pressure = SnapshotQuery {
        window: "15m".parse().expect("window"),
        filter: vigie::engine::DimensionFilter(vec![(
            vigie::engine::Dimension::Channel,
            "phone".into(),
        )]),
        breakdown: vec![vigie::engine::Dimension::Reason],
        ..SnapshotQuery::default()
    };
    g.bench_function("snapshot_15m_phone_by_reason", |b| {
        b.iter(|| engine.snapshot(&pressure).expect("snapshot"))
    });
    for window in ["15m", "24h"] {
        let query = SnapshotQuery {
            window: window.parse().expect("window"),
            ..SnapshotQuery::default()
        };
        g.bench_function(format!("snapshot_{window}"), |b| {
            b.iter(|| engine.snapshot(&query).expect("snapshot"))
        });
        // The last hour, one point a minute, of the same window (the sparklines).
        g.bench_function(format!("trend_{window}"), |b| {
            b.iter(|| {
                vigie::engine::build_trend(&[&engine], &query, TrendShape::default())
                    .expect("trend")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    for (name, format, bytes) in [
        ("jsonl", Format::Jsonl, &jsonl),
        ("proto", Format::Proto, &proto),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || vigie::engine::EngineSet::new(EngineConfig::default()),
                |engines| {
                    let options = ReplayOptions {
                        format,
                        strict: false,
                        newest_ts: None,
                    };
                    let workers = replay_engines(&engines, 1);
                    replay(&workers, &bytes[..], options, |_| {}).expect("replay");
                    engines
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
