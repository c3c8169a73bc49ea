//! Scale-out against a real broker (Tansu) on loopback, black box: three `vigie serve`
//! processes in one consumer group with partials on, compared with a fourth, single
//! instance (its own group, partials off) consuming the same stream. Each instance's
//! merged view must equal the single instance's; after one instance is killed (SIGKILL)
//! mid-stream, the survivors take its partitions over once the group expires it, rebuild
//! them, and still equal it (nothing lost, nothing counted twice). A flip on one instance
//! reaches another's websocket, and the switch's measured effect, merged from every
//! partition's owner, equals the single instance's. A late foreign claim is claimed over.
//! Alerting with several instances: `scaleout_alerts.rs`. Random topics and groups;
//! deadlines and polling, never bare sleeps.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use vigie::event::{EventRecord, Format};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::broker::{create_topics, produce_events, read_topic};
use vigie_testkit::cluster::{temp_dir, Instance, DEADLINE, PARTITIONS};
use vigie_testkit::Broker;

/// Simulated contacts dated from 20 h ago: every event is in the past, so the clock-skew
/// check never depends on when an instance reads it.
fn events(contacts: u64) -> Vec<EventRecord<'static>> {
    Simulator::new(SimulationConfig {
        seed: 77,
        contacts: Some(contacts),
        start_ms: jiff::Timestamp::now().as_millisecond() - 20 * 3_600_000,
        contacts_per_second: 2.0,
        ..SimulationConfig::default()
    })
    .collect()
}

/// Waits until the single instance consumed `sent` records and is ready; its KPIs.
async fn reference(single: &Instance, sent: u64, window: &str) -> Value {
    let start = Instant::now();
    loop {
        let consumed = single.metric("vigie_events_consumed_total").await;
        let ready = single.get("/readyz").await.map(|r| r.0);
        if consumed == Some(sent as f64) && ready == Some(200) {
            if let Some(kpis) = single.kpis(window).await {
                return kpis;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "single instance: consumed {consumed:?} of {sent}, ready {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `instance` is ready with every partition live and shows `want`.
async fn converges(instance: &Instance, window: &str, want: &Value) -> Duration {
    let start = Instant::now();
    loop {
        let ready = instance.get("/readyz").await;
        let live = ready
            .as_ref()
            .and_then(|(_, r)| r["partitions"]["live"].as_i64());
        if ready.as_ref().map(|r| r.0) == Some(200) && live == Some(i64::from(PARTITIONS)) {
            let got = instance.kpis(window).await;
            if got.as_ref() == Some(want) {
                return start.elapsed();
            }
            if start.elapsed() >= DEADLINE {
                let got = got.unwrap_or_default();
                eprintln!("{}: readyz {ready:?}", instance.name);
                assert_eq!(
                    got["total"], want["total"],
                    "{}: merged total ≠ single instance's",
                    instance.name
                );
                assert_eq!(
                    got, *want,
                    "{}: merged view ≠ single instance's",
                    instance.name
                );
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{}: not ready with {PARTITIONS} partitions live: {ready:?}",
            instance.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_merge_to_the_single_instance_view_and_survive_a_kill() {
    let broker = Broker::start();
    let kafka = broker.kafka();
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let all = events(3_000);
    let (first, second) = all.split_at(all.len() / 2);
    let mut sent = produce_events(&kafka, first.iter().cloned(), Format::Jsonl).await;

    let single = Instance::start(&dir, "single", &kafka, false);
    let a = Instance::start(&dir, "a", &kafka, true);
    let b = Instance::start(&dir, "b", &kafka, true);
    let c = Instance::start(&dir, "c", &kafka, true);

    for window in ["15m", "24h"] {
        let want = reference(&single, sent, window).await;
        assert!(
            want["total"]["arrivals"].as_u64() > Some(0),
            "{window}: the window holds traffic: {want}"
        );
        // Agents too (keyed by agent): their states merge exactly like contacts.
        assert!(
            want["total"]["staffing"]["staffed"].as_u64() > Some(0),
            "{window}: the simulated centre's agents: {}",
            want["total"]
        );
        for instance in [&a, &b, &c] {
            converges(instance, window, &want).await;
        }
    }
    // Kill one instance mid-stream (SIGKILL: no goodbye; the group expires it after
    // session.timeout.ms); the rest of the stream arrives meanwhile.
    drop(c);
    sent += produce_events(&kafka, second.iter().cloned(), Format::Jsonl).await;
    let want = reference(&single, sent, "1h").await;
    let mut rebalance = Duration::ZERO;
    for instance in [&a, &b] {
        rebalance = rebalance.max(converges(instance, "1h", &want).await);
    }
    eprintln!(
        "after the kill, both survivors showed the single instance's view within {rebalance:?}"
    );
    let want = reference(&single, sent, "24h").await;
    for instance in [&a, &b] {
        converges(instance, "24h", &want).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_on_one_instance_reaches_another_and_its_effect_is_merged() {
    let broker = Broker::start();
    let kafka = broker.kafka();
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let a = Instance::start(&dir, "a", &kafka, true);
    let b = Instance::start(&dir, "b", &kafka, true);
    let url = format!("{}/api/v1/ws", b.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let flipped = Instant::now();
    let response = reqwest::Client::new()
        .put(format!("{}/api/v1/switches/phone-all", a.base))
        .json(&json!({"channel": "phone", "target": "visual_ivr",
                      "on": true, "why": "queue degraded", "expected_version": 0}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status().as_u16(), 200);
    let seen = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(frame)) = ws.next().await {
            let WsMessage::Text(text) = frame else {
                continue;
            };
            let msg: Value = serde_json::from_str(&text).expect("JSON frame");
            let on = msg["switches"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["id"] == "phone-all" && s["on"] == true));
            if msg["type"] == "switches" && on {
                return true;
            }
        }
        false
    })
    .await
    .expect("the flip reaches B's websocket");
    assert!(seen, "B's websocket closed before the flip arrived");
    eprintln!(
        "flip on A seen on B's websocket after {:?}",
        flipped.elapsed()
    );

    // Traffic after the flip: each instance measures the switch's effect on the
    // partitions it consumes and publishes it; A and B show the single instance's total.
    let single = Instance::start(&dir, "single", &kafka, false);
    let live: Vec<_> = Simulator::new(SimulationConfig {
        seed: 78,
        contacts: Some(1_500),
        start_ms: jiff::Timestamp::now().as_millisecond() + 1_000,
        contacts_per_second: 100.0,
        ..SimulationConfig::default()
    })
    .collect();
    let sent = produce_events(&kafka, live.iter().cloned(), Format::Jsonl).await;
    let _ = reference(&single, sent, "15m").await;
    let effect = |v: Option<(u16, Value)>| v.map(|(_, v)| v["effects"]["phone-all"].clone());
    let want = effect(single.get("/api/v1/switches").await).expect("single's switches");
    assert!(
        want["deflected"].as_u64() > Some(0),
        "phone contacts were deflected after the flip: {want}"
    );
    let start = Instant::now();
    for instance in [&a, &b] {
        loop {
            let got = effect(instance.get("/api/v1/switches").await);
            if got.as_ref() == Some(&want) {
                break;
            }
            if start.elapsed() >= DEADLINE {
                let phone = |v: Option<Value>| v.map(|v| v["by_channel"]["phone"].clone());
                eprintln!(
                    "diagnostics: single 5m phone {:?}",
                    phone(single.kpis("5m").await)
                );
                eprintln!(
                    "DEBUG {} 5m phone {:?}",
                    instance.name,
                    phone(instance.kpis("5m").await)
                );
                eprintln!(
                    "diagnostics: single readyz {:?}",
                    single.get("/readyz").await
                );
                eprintln!(
                    "DEBUG {} readyz {:?}",
                    instance.name,
                    instance.get("/readyz").await
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{}: switch effect {got:?}, single instance's {want}",
                instance.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A claim of partition 3 by an instance that does not consume it (what a former owner's
/// late claim looks like) reaches the topic after the real owner's: the owner claims it
/// again above it, so readers fence the zombie, not the owner. One instance in the group,
/// so that no rebalance makes a new claim of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_foreign_claim_is_claimed_over_by_the_owner() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let broker = Broker::start();
    let kafka = broker.kafka();
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let sent = produce_events(&kafka, events(1_500).iter().cloned(), Format::Jsonl).await;
    let single = Instance::start(&dir, "single", &kafka, false);
    let a = Instance::start(&dir, "a", &kafka, true);
    let want = reference(&single, sent, "24h").await;
    converges(&a, "24h", &want).await;

    let key = format!("{}/3", kafka.topic);
    let zombie = json!({
        // (`v`: the partials format, 2 since agents travel compactly.)
        "v": 2, "owner": "zombie", "epoch": null, "rebuilding": 0.0, "watermark": null,
        "late_events": 0, "rejected": 0, "duplicates": 0, "waiting": [],
        "published_at": jiff::Timestamp::now().as_millisecond(),
    })
    .to_string();
    let producer: FutureProducer = vigie::kafka::client_config(&kafka)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(&kafka.partials_topic)
                .partition(0)
                .key(&key)
                .payload(&zombie),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("zombie claim produced");

    // The owner's new claim follows the zombie's in the topic.
    let claimed = key.clone();
    let claims_after_zombie = move |records: &[(String, Value)]| {
        let key = &claimed;
        records
            .iter()
            .skip_while(|(k, v)| !(k == key && v["owner"] == "zombie"))
            .skip(1)
            .filter(|(k, v)| k == key && v["epoch"].is_null() && v["owner"] == "a")
            .count()
    };
    let partials = kafka.partials_topic.clone();
    let kafka_read = kafka.clone();
    let enough = claims_after_zombie.clone();
    let records =
        tokio::task::spawn_blocking(move || read_topic(&kafka_read, &partials, |r| enough(r) > 0))
            .await
            .expect("reader");
    assert!(
        claims_after_zombie(&records) > 0,
        "a did not claim {key} again after the zombie's claim"
    );
    converges(&a, "24h", &want).await;
    let _ = std::fs::remove_dir_all(&dir);
}
