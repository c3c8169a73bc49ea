//! Scale-out against a real broker (Tansu) on loopback, black box: three `vigie serve`
//! processes in one consumer group with partials on, compared with a fourth, single
//! instance (its own group, partials off) consuming the same stream. Each instance's
//! merged view must equal the single instance's; after one instance is killed (SIGKILL)
//! mid-stream, the survivors take its partitions over once the group expires it, rebuild
//! them, and still equal it (nothing lost, nothing counted twice). A flip on one instance reaches another's
//! websocket, and the switch's measured effect, merged from every partition's owner,
//! equals the single instance's. Random topics and groups; deadlines and polling, never bare sleeps.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::receiver::Receiver;
use support::{
    create_topics, eventually, kafka_table, phone_contact, read_topic, unique, Broker,
    VigieProcess, PHONE_ABANDON_RULE,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use vigie::config::KafkaSettings;
use vigie::event::EventRecord;
use vigie::ingest::produce::{produce, Pace};
use vigie::replay::InputFormat;
use vigie::simulate::{SimulationConfig, Simulator};

const DEADLINE: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 6;

/// `vigie serve` started from a config file; killed (SIGKILL) on drop.
struct Vigie {
    /// Held for its drop: the process is killed (SIGKILL) with it.
    _process: VigieProcess,
    base: String,
    name: String,
}

impl Vigie {
    fn start(dir: &Path, name: &str, kafka: &KafkaSettings, partials: bool) -> Vigie {
        Vigie::start_with(dir, name, kafka, partials, "")
    }

    /// Same, with more configuration (TOML tables) appended.
    fn start_with(
        dir: &Path,
        name: &str,
        kafka: &KafkaSettings,
        partials: bool,
        extra: &str,
    ) -> Vigie {
        let config = dir.join(format!("{name}.toml"));
        // The single reference instance consumes everything in a group of its own.
        let group = if partials {
            kafka.group_id.clone()
        } else {
            unique("vigie-single")
        };
        let kafka_keys = kafka_table(&KafkaSettings {
            group_id: group,
            ..kafka.clone()
        });
        std::fs::write(
            &config,
            format!(
                r#"
{kafka_keys}partials = {partials}
partials_topic = "{partials_topic}"
instance_id = "{name}"
[kafka.properties]
"session.timeout.ms" = "6000"
[auth]
mutations_per_minute = 0
{extra}
"#,
                partials_topic = kafka.partials_topic,
            ),
        )
        .expect("config file");
        // Its log (info) is kept next to the config, for a failing run.
        let process = VigieProcess::start_logged(
            Command::new(env!("CARGO_BIN_EXE_vigie"))
                .args(["--config", &config.display().to_string()])
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1"),
            Some(dir.join(format!("{name}.log"))),
        );
        Vigie {
            base: process.base.clone(),
            _process: process,
            name: name.to_string(),
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let r = reqwest::get(format!("{}{path}", self.base)).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The KPIs compared: everything but `breakdown` (whose row order follows interning).
    async fn kpis(&self, window: &str) -> Option<Value> {
        let (status, mut s) = self
            .get(&format!("/api/v1/snapshot?window={window}"))
            .await?;
        if status != 200 {
            return None;
        }
        s.as_object_mut()?.remove("breakdown");
        Some(s)
    }
}

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

async fn produce_events(kafka: &KafkaSettings, events: &[EventRecord<'static>]) -> u64 {
    produce(
        kafka,
        &kafka.topic,
        events.iter().cloned(),
        InputFormat::Jsonl,
        Pace::Unbounded,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("produced")
}

/// Waits until the single instance consumed `sent` records and is ready; its KPIs.
async fn reference(single: &Vigie, sent: u64, window: &str) -> Value {
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
async fn converges(instance: &Vigie, window: &str, want: &Value) -> Duration {
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

fn settings(broker: &Broker) -> KafkaSettings {
    let topic = unique("scale");
    KafkaSettings {
        brokers: broker.brokers(),
        dlq_topic: format!("{topic}.dlq"),
        topic,
        group_id: unique("scale-group"),
        switches_topic: unique("switches"),
        audit_topic: unique("audit"),
        partials_topic: unique("partials"),
        ..KafkaSettings::default()
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("vigie-scaleout"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_merge_to_the_single_instance_view_and_survive_a_kill() {
    let broker = Broker::start();
    let kafka = settings(&broker);
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let all = events(3_000);
    let (first, second) = all.split_at(all.len() / 2);
    let mut sent = produce_events(&kafka, first).await;

    let single = Vigie::start(&dir, "single", &kafka, false);
    let a = Vigie::start(&dir, "a", &kafka, true);
    let b = Vigie::start(&dir, "b", &kafka, true);
    let c = Vigie::start(&dir, "c", &kafka, true);

    for window in ["15m", "24h"] {
        let want = reference(&single, sent, window).await;
        assert!(
            want["total"]["arrivals"].as_u64() > Some(0),
            "{window}: the window holds traffic: {want}"
        );
        for instance in [&a, &b, &c] {
            converges(instance, window, &want).await;
        }
    }
    // Kill one instance mid-stream (SIGKILL: no goodbye; the group expires it after
    // session.timeout.ms); the rest of the stream arrives meanwhile.
    drop(c);
    sent += produce_events(&kafka, second).await;
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
    let kafka = settings(&broker);
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let a = Vigie::start(&dir, "a", &kafka, true);
    let b = Vigie::start(&dir, "b", &kafka, true);
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
    let single = Vigie::start(&dir, "single", &kafka, false);
    let live: Vec<_> = Simulator::new(SimulationConfig {
        seed: 78,
        contacts: Some(1_500),
        start_ms: jiff::Timestamp::now().as_millisecond() + 1_000,
        contacts_per_second: 100.0,
        ..SimulationConfig::default()
    })
    .collect();
    let sent = produce_events(&kafka, &live).await;
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

/// One phone abandon rule, evaluated every 100 ms, notifying `receiver` (signed JSON);
/// pending notifications kept in `state_dir`.
fn alerting(receiver: &Receiver, state_dir: &Path) -> String {
    format!(
        r#"
[alerts]
default_rules = false
evaluate_every = "100ms"
state_dir = "{state_dir}"

{rule}
[alerts.sinks.hook]
kind = "json"
url = "{url}"
secret = "scale-out-hmac-key-0123456789"
retry_initial = "100ms"
retry_max = "500ms"
"#,
        url = receiver.url("/hook").expose(),
        state_dir = state_dir.display(),
        rule = PHONE_ABANDON_RULE,
    )
}

/// Notifications of `event` (`fired`, `resolved`, ...) the receiver accepted.
fn notified(receiver: &Receiver, event: &str) -> usize {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200 && r.headers.get("x-vigie-event").is_some_and(|e| e == event))
        .count()
}

/// Waits until every instance is ready with every partition live, shows the same first
/// alert and names the same alerting instance, whose `vigie_alerting_instance` alone is 1:
/// (alert id, alerting instance).
async fn settled(instances: &[&Vigie]) -> (String, String) {
    let start = Instant::now();
    loop {
        let mut seen = Vec::new();
        for i in instances {
            let live = i
                .get("/readyz")
                .await
                .and_then(|(_, r)| r["partitions"]["live"].as_i64());
            let list = i
                .get("/api/v1/alerts")
                .await
                .map(|(_, l)| l)
                .unwrap_or_default();
            let flag = i.metric("vigie_alerting_instance").await;
            seen.push((
                i.name.clone(),
                live,
                list["alerts"][0]["id"].as_str().map(str::to_string),
                list["alerting_instance"].as_str().map(str::to_string),
                flag,
            ));
        }
        let (_, _, id, named, _) = seen[0].clone();
        let agreed = seen.iter().all(|(name, live, i, n, flag)| {
            *live == Some(i64::from(PARTITIONS))
                && *i == id
                && *n == named
                && (*flag == Some(1.0)) == (n.as_deref() == Some(name.as_str()))
        });
        if let (true, Some(id), Some(named)) = (agreed, id, named) {
            return (id, named);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "instances do not agree on the alert and the alerting instance: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until each instance shows its first alert in `state`.
async fn shows_alert_state(instances: &[&Vigie], state: &str) {
    let start = Instant::now();
    for i in instances {
        loop {
            let (_, list) = i.get("/api/v1/alerts").await.expect("alerts");
            if list["alerts"][0]["state"] == state {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{}: not {state}: {list}",
                i.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until every instance has run `rounds` more alert evaluations.
async fn rounds(instances: &[&Vigie], rounds: f64) {
    let mut base = Vec::new();
    for i in instances {
        base.push(
            i.metric("vigie_alert_evaluations_total")
                .await
                .unwrap_or(0.0),
        );
    }
    let start = Instant::now();
    for (i, from) in instances.iter().zip(base) {
        while i
            .metric("vigie_alert_evaluations_total")
            .await
            .unwrap_or(0.0)
            < from + rounds
        {
            assert!(
                start.elapsed() < DEADLINE,
                "{}: evaluations stalled",
                i.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_alerts_for_all_acks_go_through_any_and_a_kill_loses_nothing() {
    let broker = Broker::start();
    let kafka = settings(&broker);
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let receiver = Receiver::start(0).await;
    let instances: Vec<Vigie> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let config = alerting(&receiver, &dir.join(format!("{name}-state")));
            Vigie::start_with(&dir, name, &kafka, true, &config)
        })
        .collect();

    // Three abandoned phone contacts: 100 % abandon rate, on whichever partitions.
    let base = jiff::Timestamp::now().as_millisecond() - 600_000;
    let abandons: Vec<_> = (0..3)
        .flat_map(|n| phone_contact(n, base + n as i64 * 1_000, true))
        .collect();
    produce_events(&kafka, &abandons).await;
    eventually("an alert fired", DEADLINE, || {
        notified(&receiver, "fired") >= 1
    })
    .await;
    // Once the group has settled, each instance shows the same alert and names the same
    // alerting instance, the only one with vigie_alerting_instance = 1. Every instance
    // then evaluates 20 more rounds: still one notification, not one per instance.
    let all: Vec<&Vigie> = instances.iter().collect();
    let (id, alerting_name) = settled(&all).await;
    rounds(&all, 20.0).await;
    assert_eq!(
        notified(&receiver, "fired"),
        1,
        "one instance notifies, once"
    );
    let follower = instances
        .iter()
        .find(|i| i.name != alerting_name)
        .expect("an instance that does not alert");

    // A supervisor acknowledges through an instance that does not alert: forwarded, applied
    // by the alerting instance, and shown everywhere.
    let acked: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/{id}/ack", follower.base))
        .json(&json!({"note": "callback opened"}))
        .send()
        .await
        .expect("ack")
        .json()
        .await
        .expect("ack JSON");
    assert_eq!(acked["state"], "acknowledged", "{acked}");
    assert_eq!(acked["ack_note"], "callback opened");
    shows_alert_state(&all, "acknowledged").await;

    // The receiver goes down (503) and the queue recovers: the alerting instance resolves
    // the alert but cannot deliver `resolved`, then dies (SIGKILL) with it queued. The next
    // owner of partition 0 takes the alert and its outbox over and delivers `resolved` once
    // the receiver is back: nothing lost, and no second `fired`.
    receiver.set_down(true);
    let recovery: Vec<_> = (3..13)
        .flat_map(|n| phone_contact(n, base + n as i64 * 1_000, false))
        .collect();
    produce_events(&kafka, &recovery).await;
    shows_alert_state(&all, "resolved").await;
    // Whoever alerts now (the group may still move partition 0) holds it.
    let start = Instant::now();
    let holder = loop {
        let mut holding = Vec::new();
        for (n, i) in instances.iter().enumerate() {
            let alerting = i.metric("vigie_alerting_instance").await == Some(1.0);
            let depth = i.metric("vigie_alert_queue_depth{sink=\"hook\"}").await;
            if alerting && depth == Some(1.0) {
                holding.push(n);
            }
        }
        if let [n] = holding[..] {
            break n;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no single alerting instance holds `resolved`: {holding:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut instances = instances;
    let killed_name = instances[holder].name.clone();
    drop(instances.remove(holder));
    let killed = Instant::now();
    assert_eq!(
        notified(&receiver, "resolved"),
        0,
        "not delivered before the kill"
    );
    receiver.set_down(false);
    eventually("resolved delivered after the takeover", DEADLINE, || {
        notified(&receiver, "resolved") >= 1
    })
    .await;
    eprintln!(
        "`resolved` delivered by the next alerting instance {:?} after the kill",
        killed.elapsed()
    );
    let survivors: Vec<&Vigie> = instances.iter().collect();
    rounds(&survivors, 20.0).await;
    assert_eq!(
        (
            notified(&receiver, "fired"),
            notified(&receiver, "resolved")
        ),
        (1, 1),
        "fired once and resolved once, across the takeover"
    );
    let resolved = receiver
        .received()
        .into_iter()
        .find(|r| {
            r.status == 200
                && r.headers
                    .get("x-vigie-event")
                    .is_some_and(|e| e == "resolved")
        })
        .expect("resolved")
        .json();
    assert_eq!(resolved["alert"]["id"], id.as_str());
    assert_eq!(
        resolved["alert"]["ack_note"], "callback opened",
        "{resolved}"
    );
    let mut names = Vec::new();
    for i in &survivors {
        let (_, list) = i.get("/api/v1/alerts").await.expect("alerts");
        names.push(list["alerting_instance"].clone());
        assert_eq!(list["alerts"][0]["state"], "resolved", "{}: {list}", i.name);
    }
    assert_eq!(names[0], names[1], "both name the new alerting instance");
    assert_ne!(names[0], json!(killed_name));
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
    let kafka = settings(&broker);
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let sent = produce_events(&kafka, &events(1_500)).await;
    let single = Vigie::start(&dir, "single", &kafka, false);
    let a = Vigie::start(&dir, "a", &kafka, true);
    let want = reference(&single, sent, "24h").await;
    converges(&a, "24h", &want).await;

    let key = format!("{}/3", kafka.topic);
    let zombie = json!({
        "v": 1, "owner": "zombie", "epoch": null, "rebuilding": 0.0, "watermark": null,
        "late_events": 0, "rejected": 0, "duplicates": 0, "waiting": [],
        "published_at": jiff::Timestamp::now().as_millisecond(),
    })
    .to_string();
    let producer: FutureProducer = vigie::ingest::client_config(&kafka)
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
