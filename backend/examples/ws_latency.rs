//! Measures event-applied → websocket-frame latency with many connected clients, and
//! the health probe's latency, optionally while other clients flood the server.
//!
//! Run: `cargo run --release -p vigie --example ws_latency -- [CLIENTS] [EVENTS_PER_S]
//! [SECONDS] [FLOODERS] [HISTORY_MINUTES]` (defaults 500, 10000, 20, 0, 0;
//! `scripts/bench-ws.sh` and `scripts/bench-flood.sh` run it). HISTORY_MINUTES of past
//! traffic (20 contacts/s, as `vigie demo`) is applied first, so that snapshots cost what
//! they cost on a full wall. Each of FLOODERS clients sends 250 `subscribe` messages a
//! second, each with another 24 h window broken down by queue and reason (the hardening
//! issue's hostile viewer); meanwhile `/healthz` is probed every 10 ms. One thread applies simulated
//! events at the given rate in 10 ms batches and records when each watermark was reached;
//! CLIENTS websocket clients in the same process (so they compete for the same 2 cores)
//! read every frame; a frame delivers every batch applied since the client's previous
//! frame, and each such batch counts once with latency = frame received − batch applied
//! (so an event applied just after a publish waits for the next one, as in reality).
//! Reports p50/p90/p99/max over (client, batch) deliveries, and frames/s.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vigie::engine::{EngineConfig, EngineSet};
use vigie::server::{serve, AppState};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie::status::InstanceStatus;

fn watermark_of(frame: &str) -> Option<i64> {
    let at = frame.find("\"watermark\":")? + "\"watermark\":".len();
    let digits: String = frame[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (clients, rate, seconds) = (arg(1, 500), arg(2, 10_000), arg(3, 20));
    let (flooders, history_minutes) = (arg(4, 0), arg(5, 0) as i64);

    let engines = Arc::new(EngineSet::new(EngineConfig::default()));
    let engine = engines.assign(0);
    let status = Arc::new(InstanceStatus::default());
    status.track(0, 0, 0);
    let now_ms = jiff::Timestamp::now().as_millisecond();
    if history_minutes > 0 {
        let history = Simulator::new(SimulationConfig {
            seed: 4,
            contacts: Some(history_minutes as u64 * 60 * 20),
            start_ms: now_ms - history_minutes * 60_000,
            contacts_per_second: 20.0,
            ..SimulationConfig::default()
        });
        for ev in history {
            engine.apply(&ev);
        }
    }
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("ws://{addr}/api/v1/ws");
    // Every client here is the same caller (`local`): lift the per-caller and total
    // connection limits, keep the others (the flooders are what they are for).
    let limits = vigie::config::ServerSettings {
        max_connections_per_caller: 1_000_000,
        max_connections: 1_000_000,
        ..vigie::config::ServerSettings::default()
    };
    tokio::spawn(serve(
        listener,
        AppState::new(engines.clone(), status, stop.clone()).with_limits(&limits),
    ));

    // When each watermark was reached, in order.
    let applied_at: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let latencies = Arc::new(Mutex::new(vigie::engine::new_histogram()));
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut readers = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let (applied_at, latencies, frames, bytes, measuring) = (
            applied_at.clone(),
            latencies.clone(),
            frames.clone(),
            bytes.clone(),
            measuring.clone(),
        );
        readers.push(tokio::spawn(async move {
            // Newest watermark this client has seen: each frame delivers every batch
            // applied since, and each of those batches waited from its own apply time.
            let mut seen = i64::MIN;
            while let Some(Ok(message)) = ws.next().await {
                let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                    continue;
                };
                let received = Instant::now();
                if !text.starts_with("{\"type\":\"snapshot\"") {
                    continue;
                }
                let Some(w) = watermark_of(&text) else {
                    continue;
                };
                if measuring.load(Relaxed) {
                    frames.fetch_add(1, Relaxed);
                    bytes.fetch_add(text.len() as u64, Relaxed);
                    let delivered: Vec<Instant> = {
                        let applied = applied_at.lock();
                        let from = applied.partition_point(|(wm, _)| *wm <= seen);
                        let to = applied.partition_point(|(wm, _)| *wm <= w);
                        applied[from..to].iter().map(|(_, at)| *at).collect()
                    };
                    let mut h = latencies.lock();
                    for at in delivered {
                        let _ = h.record(received.saturating_duration_since(at).as_micros() as u64);
                    }
                }
                seen = seen.max(w);
            }
        }));
    }
    println!("{clients} clients connected to {url}");
    let refused = Arc::new(AtomicU64::new(0));
    for f in 0..flooders {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let (stop, refused) = (stop.clone(), refused.clone());
        tokio::spawn(async move {
            use futures::SinkExt;
            let mut tick = tokio::time::interval(Duration::from_millis(4));
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        n += 1;
                        let window = 86_000 + (f * 100_000 + n) % 400;
                        let message = format!(r#"{{"type":"subscribe","window":"{window}s","by":["queue","reason"]}}"#);
                        if ws.send(tokio_tungstenite::tungstenite::Message::text(message)).await.is_err() {
                            break;
                        }
                    }
                    frame = ws.next() => match frame {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                            if t.starts_with("{\"type\":\"error\"") {
                                refused.fetch_add(1, Relaxed);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        });
    }
    // The health probe, every 10 ms while measuring.
    let probes = Arc::new(Mutex::new(vigie::engine::new_histogram()));
    let prober = {
        let (probes, measuring, stop) = (probes.clone(), measuring.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let health = format!("http://{addr}/healthz");
            while !stop.is_cancelled() {
                let sent = Instant::now();
                let ok = client
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok && measuring.load(Relaxed) {
                    let _ = probes.lock().record(sent.elapsed().as_micros() as u64);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The live stream: contacts answered by bots (a centre of 10 k events/s would need
    // hundreds of thousands of agents); the history's agents (about 8,500, at 20 contacts
    // a second) keep staffing, occupancy and the projections in every frame.
    let mut bots = vigie::simulate::Scenario::steady();
    for queue in &mut bots.queues {
        queue.self_service = true;
    }
    bots.teams.clear();
    let events: Vec<_> = Simulator::new(SimulationConfig {
        seed: 3,
        contacts: Some(rate * (seconds + 5) / 3),
        start_ms: now_ms,
        contacts_per_second: rate as f64 / 3.7,
        scenario: bots,
        agent_events: false,
        ..SimulationConfig::default()
    })
    .collect();
    let feeder = {
        let (applied_at, measuring) = (applied_at.clone(), measuring.clone());
        std::thread::spawn(move || {
            let batch = (rate / 100).max(1) as usize;
            let started = Instant::now();
            let mut watermark = i64::MIN;
            for (n, chunk) in events.chunks(batch).enumerate() {
                let due = started + Duration::from_millis(10 * n as u64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                for ev in chunk {
                    engine.apply(ev);
                }
                if let Some(w) = engine.watermark().filter(|w| *w > watermark) {
                    watermark = w;
                    applied_at.lock().push((w, Instant::now()));
                }
                if n == 300 {
                    measuring.store(true, Relaxed); // after a 3 s warm-up
                }
                if started.elapsed() > Duration::from_secs(seconds + 3) {
                    break;
                }
            }
        })
    };
    let _ = tokio::task::spawn_blocking(move || feeder.join()).await;
    measuring.store(false, Relaxed);
    stop.cancel();
    for r in readers {
        let _ = r.await;
    }
    let _ = prober.await;
    let h = latencies.lock();
    let frames = frames.load(Relaxed);
    println!(
        "{rate} events/s, {clients} clients, {seconds} s measured: {} frames/s delivered ({:.1} KB each); \
         latency event applied → frame received: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        frames / seconds,
        bytes.load(Relaxed) as f64 / frames.max(1) as f64 / 1024.0,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    let p = probes.lock();
    println!(
        "{flooders} flooding clients ({} subscribe messages refused): GET /healthz every 10 ms: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} probes)",
        refused.load(Relaxed),
        p.value_at_quantile(0.5) as f64 / 1000.0,
        p.value_at_quantile(0.99) as f64 / 1000.0,
        p.max() as f64 / 1000.0,
        p.len()
    );
    Ok(())
}
