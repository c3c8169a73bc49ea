//! Deflection switches against a real broker (Tansu): flips through the REST API land
//! on the compacted topic with an audit record, reach websockets of every instance,
//! survive a restart, refuse bad or concurrent changes, and expire by themselves.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use vigie::config::KafkaSettings;
use vigie::deflection::SwitchStore;
use vigie_testkit::broker::{read_topic, read_topic_to_end};
use vigie_testkit::{eventually, Broker, TestApp};

const DEADLINE: Duration = Duration::from_secs(30);

fn settings(broker: &Broker) -> KafkaSettings {
    broker.kafka()
}

/// One Vigie instance: HTTP API with switches on `settings`' topics (expiry running).
struct Instance {
    app: TestApp,
    store: Arc<SwitchStore>,
}

impl std::ops::Deref for Instance {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Instance {
    /// An instance that expires switches (the leader).
    async fn start(settings: &KafkaSettings) -> Instance {
        Instance::start_as(settings, true).await
    }

    /// An instance that expires switches if `leading`.
    async fn start_as(settings: &KafkaSettings, leading: bool) -> Instance {
        let stop = CancellationToken::new();
        let store = SwitchStore::start(settings, stop.clone())
            .await
            .expect("switch store");
        tokio::spawn(store.clone().run_expiry(move || leading, stop.clone()));
        let app = TestApp::builder()
            .switches(store.clone())
            .shutdown(stop)
            .spawn()
            .await;
        Instance { app, store }
    }

    async fn put(&self, id: &str, body: Value) -> (u16, Value) {
        self.app
            .put_json(&format!("/api/v1/switches/{id}"), &body)
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.app.get_json(path).await
    }
}

fn flip(on: bool, version: u64) -> Value {
    json!({"channel": "phone", "reason": "billing", "segment": "low", "target": "visual_ivr",
           "on": on, "why": "phone queue degraded", "expected_version": version})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_is_on_the_topic_audited_and_pushed_to_every_instance() {
    let broker = Broker::start();
    let settings = settings(&broker);
    let a = Instance::start(&settings).await;
    let b = Instance::start_as(&settings, false).await;
    let url = b.ws_url();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");

    let (status, created) = a.put("phone-billing-low", flip(true, 0)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        (created["version"].as_u64(), created["on"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(created["changed_by"], "local");

    // The other instance's websocket client sees it.
    let pushed = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Ok(WsMessage::Text(text))) = ws.next().await {
                let v: Value = serde_json::from_str(&text).expect("JSON");
                if v["type"] == "switches"
                    && v["switches"].as_array().is_some_and(|s| !s.is_empty())
                {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the flip reaches the other instance's websocket");
    assert_eq!(pushed["switches"][0], created);
    assert_eq!(
        b.get("/api/v1/switches/phone-billing-low").await,
        (200, created.clone())
    );

    let records = read_topic(&settings, &settings.switches_topic, |r| !r.is_empty());
    assert_eq!(
        records,
        vec![("phone-billing-low".to_string(), created.clone())]
    );
    let audit = read_topic(&settings, &settings.audit_topic, |r| !r.is_empty());
    assert_eq!(audit[0].1["who"], "local");
    assert_eq!(audit[0].1["why"], "phone queue degraded");
    assert_eq!(audit[0].1["after"], created);
    assert_eq!(audit.len(), 1, "one audit record per change");
    let (_, trail) = b.get("/api/v1/audit?switch=phone-billing-low").await;
    assert_eq!(trail["records"][0]["action"], "create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_concurrent_changes_are_refused_clearly() {
    let broker = Broker::start();
    let settings = settings(&broker);
    let a = Instance::start(&settings).await;
    let b = Instance::start_as(&settings, false).await;
    assert_eq!(a.put("phone-billing-low", flip(true, 0)).await.0, 200);
    eventually("b has read the switch", DEADLINE, || {
        b.store.get("phone-billing-low").is_some()
    })
    .await;

    let mut no_reason = flip(false, 1);
    no_reason["why"] = json!("");
    let conflicting = json!({"channel": "phone", "target": "callback", "on": true, "why": "overflow", "expected_version": 0});
    for (id, body, status, code) in [
        ("phone-billing-low", no_reason, 400, "missing_reason"),
        ("phone-billing-low", flip(false, 0), 409, "version_conflict"),
        ("phone-all", conflicting, 409, "conflicting_switch"),
        ("Phone Billing", flip(true, 0), 400, "bad_switch_id"),
        ("x", json!({"channel": "phone"}), 400, "bad_body"),
        (
            "x",
            json!({"channel": "phone", "target": "carrier_pigeon", "on": true, "why": "w", "expected_version": 0}),
            400,
            "bad_body",
        ),
    ] {
        let (got, body) = a.put(id, body).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
        assert_eq!(body["status"], status);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let huge = json!({"channel": "phone", "target": "chat", "on": true, "why": "x".repeat(100_000), "expected_version": 0});
    assert_eq!(a.put("huge", huge).await.0, 413);
    assert_eq!(a.get("/api/v1/switches/nope").await.0, 404);

    // Two supervisors on two instances turn the same switch off from version 1: one wins.
    // (Two identical requests in the same millisecond would both succeed: they ask for
    // exactly the same state, so nothing is overwritten.)
    let mut from_a = flip(false, 1);
    from_a["why"] = json!("recovered, says ann");
    let mut from_b = flip(false, 1);
    from_b["why"] = json!("recovered, says bob");
    let (ra, rb) = tokio::join!(
        a.put("phone-billing-low", from_a),
        b.put("phone-billing-low", from_b)
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "a: {ra:?}, b: {rb:?}");
    let winner = if ra.0 == 200 { ra.1 } else { rb.1 };
    eventually("both instances agree", DEADLINE, || {
        a.store.get("phone-billing-low").map(|s| s.version) == Some(2)
            && b.store.get("phone-billing-low").map(|s| s.version) == Some(2)
    })
    .await;
    assert_eq!(
        serde_json::to_value(a.store.get("phone-billing-low")).expect("json"),
        winner
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_survive_a_restart_and_expire_by_themselves() {
    let broker = Broker::start();
    let settings = settings(&broker);
    let first = Instance::start(&settings).await;
    let mut timed = flip(true, 0);
    timed["expires_in"] = json!("2s");
    let (status, created) = first.put("phone-billing-low", timed).await;
    assert_eq!(status, 200, "{created}");
    let mut chat = json!({"channel": "chat", "target": "messaging", "on": true, "why": "chat overloaded", "expected_version": 0});
    assert_eq!(first.put("chat-all", chat.clone()).await.0, 200);
    drop(first);

    // A new instance rebuilds the state from the topic.
    let second = Instance::start(&settings).await;
    let (_, list) = second.get("/api/v1/switches").await;
    let ids: Vec<&str> = list["switches"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["chat-all", "phone-billing-low"]);
    chat["expected_version"] = json!(1);
    chat["on"] = json!(false);
    assert_eq!(
        second.put("chat-all", chat).await.0,
        200,
        "versions continue after a restart"
    );

    eventually("the timed switch turns itself off", DEADLINE, || {
        second.store.get("phone-billing-low").is_some_and(|s| !s.on)
    })
    .await;
    let expired = second.store.get("phone-billing-low").expect("switch");
    assert_eq!(
        (expired.version, expired.changed_by.as_str()),
        (2, "vigie (expiry)")
    );
    assert!(expired.why.starts_with("expired"), "{}", expired.why);
}

/// Next to each switch that is on: contacts deflected since the flip in its scope, and
/// how many of those customers came back on any channel (containment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_switch_shows_its_measured_effect() {
    use vigie::event::{EventKind, EventRecord};
    let broker = Broker::start();
    let settings = settings(&broker);
    let app = Instance::start(&settings).await;
    let flip_billing = json!({"channel": "phone", "reason": "billing", "target": "visual_ivr", "on": true,
                              "why": "billing queue degraded", "expected_version": 0});
    let (status, switch) = app.put("phone-billing", flip_billing).await;
    assert_eq!(status, 200, "{switch}");
    let flipped_at = switch["changed_at"].as_i64().expect("changed_at");

    let engine = app.engines.assign(0);
    let contact = |n: u32, customer: &str, channel: &str, reason: &str, at: i64, deflect: bool| {
        let iid = format!("i{n}");
        let mut arrived = EventRecord::new(
            format!("{iid}-a"),
            EventKind::Arrived,
            flipped_at + at,
            iid.clone(),
        );
        arrived.customer_id = Some(customer.to_string().into());
        arrived.channel = Some(channel.to_string().into());
        arrived.reason = Some(reason.to_string().into());
        let mut events = vec![arrived];
        if deflect {
            events.push(EventRecord::new(
                format!("{iid}-d"),
                EventKind::Deflected,
                flipped_at + at + 2_000,
                iid,
            ));
        }
        events
    };
    let stream = [
        contact(1, "ann", "phone", "billing", 1_000, true),
        contact(2, "bob", "phone", "billing", 1_500, true),
        contact(3, "cat", "phone", "sales", 1_700, true), // another scope
        contact(4, "ann", "chat", "billing", 60_000, false), // ann came back, on chat
    ];
    for ev in stream.iter().flatten() {
        engine.apply(ev);
    }
    let (_, list) = app.get("/api/v1/switches").await;
    let effect = &list["effects"]["phone-billing"];
    assert_eq!(effect["since"], flipped_at);
    assert_eq!(
        (effect["deflected"].as_u64(), effect["came_back"].as_u64()),
        (Some(2), Some(1)),
        "{list}"
    );
    assert_eq!(effect["containment"].as_f64(), Some(0.5));

    // Websocket clients get the same effects pushed, without asking.
    let url = app.ws_url();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let pushed = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Ok(WsMessage::Text(text))) = ws.next().await {
                let v: Value = serde_json::from_str(&text).expect("JSON");
                if v["type"] == "switches" && v["effects"]["phone-billing"]["deflected"] == 2 {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the effects reach the websocket");
    assert_eq!(&pushed["effects"]["phone-billing"], effect);
}

/// The last record of each key in the topic: what Kafka's compaction keeps, and so what
/// routing systems and instances started later read.
fn compacted(settings: &KafkaSettings) -> std::collections::HashMap<String, Value> {
    read_topic_to_end(settings, &settings.switches_topic)
        .into_iter()
        .collect()
}

/// Two instances racing on one switch, round after round: each round one write wins
/// (200) and one loses (409); the topic always ends on the confirmed state (the loser
/// rewrites it over its own record), each confirmed change has exactly one audit record
/// (the loser's has none), and an expiry both instances see is written and audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_leave_the_topic_on_the_confirmed_state_with_one_audit_each() {
    let broker = Broker::start();
    let settings = settings(&broker);
    // Both expire switches: the race of their expiry writes is part of the test.
    let a = Instance::start(&settings).await;
    let b = Instance::start(&settings).await;
    let id = "phone-billing-low";
    let mut version = 0;
    for round in 0..6 {
        let on = round % 2 == 0;
        let mut from_a = flip(on, version);
        from_a["why"] = json!(format!("round {round}, says ann"));
        let mut from_b = flip(on, version);
        from_b["why"] = json!(format!("round {round}, says bob"));
        let (ra, rb) = tokio::join!(a.put(id, from_a), b.put(id, from_b));
        let winners = [&ra, &rb].iter().filter(|r| r.0 == 200).count();
        assert!(winners >= 1, "one write wins: {ra:?} {rb:?}");
        let confirmed = if ra.0 == 200 { &ra.1 } else { &rb.1 };
        version = confirmed["version"].as_u64().expect("version");
        eventually("both instances hold the confirmed state", DEADLINE, || {
            let want: vigie_proto::DeflectionSwitch =
                serde_json::from_value(confirmed.clone()).expect("switch");
            a.store.get(id) == Some(want.clone()) && b.store.get(id) == Some(want)
        })
        .await;
        let last = compacted(&settings);
        assert_eq!(
            &last[id], confirmed,
            "round {round}: the topic ends on the confirmed state"
        );
    }
    let audit = read_topic(&settings, &settings.audit_topic, |r| r.len() >= 6);
    assert_eq!(
        audit.len(),
        6,
        "one audit record per confirmed change: {audit:?}"
    );
    // An instance started now reads the confirmed state.
    let c = Instance::start_as(&settings, false).await;
    assert_eq!(c.store.get(id), a.store.get(id));

    // A switch that expires: both instances see it due; it is turned off and audited once.
    let mut timed = flip(true, version);
    timed["expires_in"] = json!("1s");
    assert_eq!(a.put(id, timed).await.0, 200);
    eventually("the switch expired everywhere", DEADLINE, || {
        [&a, &b, &c].iter().all(|i| {
            i.store
                .get(id)
                .is_some_and(|s| !s.on && s.changed_by == "vigie (expiry)")
        })
    })
    .await;
    let expiries = |records: &[(String, Value)]| {
        records
            .iter()
            .filter(|(_, r)| r["who"] == "vigie (expiry)")
            .count()
    };
    // Any second expiry write would land within a few of the store's one-second rounds.
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < until {
        let audit = read_topic(&settings, &settings.audit_topic, |r| r.len() >= 8);
        assert!(expiries(&audit) <= 1, "one expiry, audited once: {audit:?}");
    }
    let audit = read_topic(&settings, &settings.audit_topic, |r| r.len() >= 8);
    assert_eq!(expiries(&audit), 1);
    let off = a.store.get(id).expect("switch");
    assert_eq!(
        compacted(&settings)[id],
        serde_json::to_value(off).expect("json"),
        "the topic ends on the expiry"
    );
}

/// Turning a switch on keeps what the projection predicted for its channel (the
/// service level without the scope's load); its effect then shows the prediction beside
/// the service level measured since the flip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_keeps_its_prediction_and_shows_it_beside_what_is_measured() {
    use vigie::event::{AgentState, EventKind, EventRecord};
    let broker = Broker::start();
    let settings = settings(&broker);
    let app = Instance::start(&settings).await;
    let engine = app.engines.assign(0);
    let now = jiff::Timestamp::now().as_millisecond();
    // Three phone agents; 60 contacts in the last 10 minutes (40 billing), 2 min each:
    // 8 Erlangs on 3 agents, hopeless; without billing, 2.7 Erlangs: some hope.
    for a in 0..3 {
        let mut ev = EventRecord::agent(
            format!("ag{a}"),
            now - 600_000,
            format!("agent{a}"),
            AgentState::Available,
        );
        ev.queues = Some(vec!["phone_billing".into()]);
        engine.apply(&ev);
    }
    let contact = |n: i64, reason: &str, at: i64, wait: i64| {
        let iid = format!("c{n}");
        let mut arrived = EventRecord::new(format!("{iid}-a"), EventKind::Arrived, at, iid.clone());
        arrived.channel = Some("phone".into());
        arrived.reason = Some(reason.to_string().into());
        let mut queued = EventRecord::new(format!("{iid}-q"), EventKind::Queued, at, iid.clone());
        queued.queue = Some("phone_billing".into());
        let answered = EventRecord::new(
            format!("{iid}-b"),
            EventKind::Answered,
            at + wait,
            iid.clone(),
        );
        let ended = EventRecord::new(
            format!("{iid}-e"),
            EventKind::Ended,
            at + wait + 120_000,
            iid,
        );
        [arrived, queued, answered, ended]
    };
    for n in 0..60 {
        let reason = if n % 3 == 2 { "sales" } else { "billing" };
        for ev in contact(n, reason, now - 590_000 + n * 8_000, 90_000) {
            engine.apply(&ev);
        }
    }
    let flip = json!({"channel": "phone", "reason": "billing", "target": "visual_ivr", "on": true,
                      "why": "billing floods the phone", "expected_version": 0});
    let (status, switch) = app.put("phone-billing", flip).await;
    assert_eq!(status, 200, "{switch}");
    let prediction = &switch["prediction"];
    let share = prediction["share"].as_f64().expect("a prediction");
    assert!((share - 40.0 / 60.0).abs() < 0.05, "{prediction}");
    let (before, predicted) = (
        prediction["service_level_before"].as_f64().expect("before"),
        prediction["service_level_predicted"]
            .as_f64()
            .expect("predicted"),
    );
    assert_eq!(before, 0.0, "8 Erlangs on 3 agents: {prediction}");
    assert!(predicted > before, "{prediction}");

    // After the flip, sales calls answered within 5 s: the measured service level is 100 %.
    let flipped_at = switch["changed_at"].as_i64().expect("changed_at");
    for n in 100..110 {
        for ev in contact(n, "sales", flipped_at + 2_000 + (n - 100) * 1_000, 5_000) {
            engine.apply(&ev);
        }
    }
    let (_, list) = app.get("/api/v1/switches").await;
    let effect = &list["effects"]["phone-billing"];
    assert_eq!(
        effect["predicted_service_level"].as_f64(),
        Some(predicted),
        "{effect}"
    );
    assert_eq!(
        effect["measured_service_level"].as_f64(),
        Some(1.0),
        "{effect}"
    );
    let until = effect["measured_until"].as_i64().expect("measured until");
    assert!(
        until > flipped_at && until <= flipped_at + 15 * 60_000,
        "{effect}"
    );
    // Turned off, the prediction goes with the state it was made for.
    let off = json!({"channel": "phone", "reason": "billing", "target": "visual_ivr", "on": false,
                     "why": "over", "expected_version": switch["version"]});
    let (status, switch) = app.put("phone-billing", off).await;
    assert_eq!(status, 200, "{switch}");
    assert!(switch.get("prediction").is_none(), "{switch}");
}
