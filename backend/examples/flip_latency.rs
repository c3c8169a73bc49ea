//! Measures flip → cockpit latency across instances: a switch flipped by REST on
//! instance A, until the `switches` websocket message showing it arrives from instance B.
//!
//! Run with two `vigie serve` instances on one broker (`scripts/bench-flip.sh` starts
//! them): `cargo run --release -p vigie --example flip_latency -- A_URL B_URL [FLIPS] [PAUSE_MS]`
//! (defaults 200 flips, 100 ms apart). A websocket client on B records when each switch
//! version first shows; each flip's latency = that time − when its PUT was sent to A.
//! The PUT returns once A has read the flip back from the topic; B reads it on its own.
//! Reports p50/p90/p99/max of flip → B, and of the PUT round trip on A for comparison.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Version of our switch → when B first showed it.
type Seen = Arc<Mutex<HashMap<u64, Instant>>>;

fn percentiles(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{name}: n={} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        ms[ms.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(a), Some(b)) = (args.get(1), args.get(2)) else {
        bail!("usage: flip_latency A_URL B_URL [FLIPS] [PAUSE_MS]");
    };
    let flips: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(200);
    let pause = Duration::from_millis(args.get(4).and_then(|v| v.parse().ok()).unwrap_or(100));
    let id = format!("bench-{}", std::process::id());

    let seen: Seen = Arc::default();
    let ws_url = format!("{}/api/v1/ws", b.replace("http://", "ws://"));
    let (socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .with_context(|| format!("websocket to {ws_url}"))?;
    let (_sink, mut stream) = socket.split();
    let (reader_seen, reader_id) = (seen.clone(), id.clone());
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let at = Instant::now();
            // Cheap filter before parsing: snapshots and status pass by.
            if !text.contains("\"switches\"") || !text.contains(reader_id.as_str()) {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if value["type"] != "switches" {
                continue;
            }
            for switch in value["switches"].as_array().into_iter().flatten() {
                if switch["id"] == reader_id.as_str() {
                    if let Some(v) = switch["version"].as_u64() {
                        reader_seen.lock().entry(v).or_insert(at);
                    }
                }
            }
        }
    });

    let http = reqwest::Client::new();
    let put_url = format!("{a}/api/v1/switches/{id}");
    let (mut to_b, mut put_rtt) = (Vec::new(), Vec::new());
    let mut version = 0u64;
    for i in 0..flips {
        let body = json!({"channel": "phone", "reason": format!("bench-{}", std::process::id()),
                          "target": "callback", "on": i % 2 == 0, "why": "flip latency benchmark",
                          "expected_version": version});
        let sent = Instant::now();
        let response = http.put(&put_url).json(&body).send().await?;
        let returned = Instant::now();
        let status = response.status();
        let state: Value = response.json().await?;
        if !status.is_success() {
            bail!("flip {i}: HTTP {status}: {state}");
        }
        version = state["version"].as_u64().context("version in the answer")?;
        put_rtt.push(returned.duration_since(sent).as_secs_f64() * 1e3);
        let deadline = Instant::now() + Duration::from_secs(10);
        let shown = loop {
            if let Some(at) = seen.lock().get(&version) {
                break *at;
            }
            if Instant::now() > deadline {
                bail!("flip {i} (version {version}) never reached B within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        to_b.push(shown.saturating_duration_since(sent).as_secs_f64() * 1e3);
        tokio::time::sleep(pause).await;
    }
    println!("{flips} flips on A ({a}), shown on B ({b}):");
    percentiles("flip sent on A → switches message on B", to_b);
    percentiles("PUT round trip on A (confirmed from the topic)", put_rtt);
    Ok(())
}
