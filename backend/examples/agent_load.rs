//! Agent load for the benchmarks: AGENTS agents each changing state CHANGES times a day.
//!
//! - `agent_load merge AGENTS CHANGES < contacts.jsonl > mixed.jsonl`: the contact stream
//!   with the agents' `agent_state` events interleaved in time order (the replay's cost of
//!   agents, `scripts/bench-replay.sh`).
//! - `agent_load memory AGENTS CHANGES`: applies a day of those events to an engine and
//!   reports the resident memory growth per agent.

use std::io::{self, BufRead, BufWriter, Write};

use vigie::engine::{Engine, EngineConfig};
use vigie::event::{decode_json, to_json, AgentState, EventRecord};

const DAY_MS: i64 = 86_400_000;
const QUEUES: [&str; 6] = [
    "phone_billing",
    "phone_technical",
    "phone_general",
    "chat",
    "messaging",
    "email",
];

/// The `k`-th change of agent `a` (evenly spread over the day, agents offset).
fn change(a: u64, k: u64, changes: u64, start: i64) -> EventRecord<'static> {
    let step = DAY_MS / changes.max(1) as i64;
    let ts = start + k as i64 * step + (a as i64 * 7_919) % step.max(1);
    let state = match k % 5 {
        0 | 3 => AgentState::Available,
        1 => AgentState::OnContact,
        2 => AgentState::AfterContactWork,
        _ => AgentState::Away,
    };
    let mut ev = EventRecord::agent(format!("ag{a}-{k}"), ts, format!("agent-{a}"), state);
    if k == 0 {
        ev.queues = Some(vec![
            QUEUES[(a % 6) as usize].into(),
            QUEUES[((a + 1) % 6) as usize].into(),
        ]);
        ev.site = Some(["paris", "lyon", "lille"][(a % 3) as usize].into());
    }
    if state == AgentState::Away {
        ev.away_reason = Some(["break", "lunch"][(k % 2) as usize].into());
    }
    if state == AgentState::OnContact {
        ev.interaction_id = format!("call-{a}-{k}").into();
    }
    ev
}

/// Every change of the day, in time order.
fn day(agents: u64, changes: u64, start: i64) -> Vec<EventRecord<'static>> {
    let mut all: Vec<_> = (0..agents)
        .flat_map(|a| (0..changes).map(move |k| change(a, k, changes, start)))
        .collect();
    all.sort_by_key(|e| e.ts_ms);
    all
}

#[path = "support/resident.rs"]
mod resident;
use resident::resident_bytes;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (agents, changes) = (number(2, 5_000), number(3, 50));
    match args.get(1).map(String::as_str) {
        Some("merge") => {
            let stdin = io::stdin().lock();
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let mut pending: Option<std::iter::Peekable<std::vec::IntoIter<EventRecord>>> = None;
            for line in stdin.lines() {
                let line = line?;
                let ts = decode_json(line.as_bytes()).map(|e| e.ts_ms).ok();
                if let Some(ts) = ts {
                    let queue = pending
                        .get_or_insert_with(|| day(agents, changes, ts).into_iter().peekable());
                    while let Some(ev) = queue.next_if(|e| e.ts_ms <= ts) {
                        writeln!(out, "{}", to_json(&ev))?;
                    }
                }
                writeln!(out, "{line}")?;
            }
            out.flush()
        }
        Some("memory") => {
            let events = day(agents, changes, 1_795_593_600_000);
            let engine = Engine::new(EngineConfig::default());
            let before = resident_bytes();
            for ev in &events {
                engine.apply(ev);
            }
            let after = resident_bytes();
            println!(
                "agents: {}\nchanges: {}\nresident growth bytes: {}\nbytes per agent: {:.0}",
                engine.tracked_agents(),
                events.len(),
                after - before,
                (after - before) as f64 / agents.max(1) as f64
            );
            Ok(())
        }
        _ => {
            eprintln!("usage: agent_load merge|memory AGENTS CHANGES");
            std::process::exit(2);
        }
    }
}
