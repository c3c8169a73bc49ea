//! Alerting to chat ops against real HTTP receivers on loopback: the payload of each
//! kind of sink and its signature, fire → resolve as exactly two messages, silence while
//! the value flaps within the hysteresis, a failing receiver served once it recovers,
//! a receiver down across a restart served after it, and alerts on the REST API and
//! the websocket. (`vigie serve` alerting on a broker: `tests/broker/serve_alerts.rs`.)

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vigie::alert::AlertService;
use vigie::config::{AlertRuleSettings, Secret, Settings, SinkKind, SinkSettings, Threshold};
use vigie::engine::{Engine, EngineConfig, EngineSet};
use vigie::status::InstanceStatus;
use vigie_proto::{Comparison, Severity};
use vigie_testkit::app::{ws_next_of, WsClient};
use vigie_testkit::receiver::{sink, Received, Receiver, SINK_KEY as KEY};
use vigie_testkit::{eventually, free_addr, phone_abandon_rule, phone_contact, TestApp};

const DEADLINE: Duration = Duration::from_secs(20);
fn settings(sinks: Vec<(&str, SinkSettings)>, state_dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.alerts.default_rules = false;
    s.alerts.evaluate_every = Duration::from_millis(50);
    s.alerts.state_dir = Some(state_dir.to_path_buf());
    s.alerts.rules = vec![phone_abandon_rule()];
    s.alerts.sinks = sinks.into_iter().map(|(n, k)| (n.to_string(), k)).collect();
    s.validate().expect("valid settings");
    s
}

/// Engines fed directly (one partition, rebuilt), like a consumer would.
struct Live {
    engines: Arc<EngineSet>,
    engine: Arc<Engine>,
    status: Arc<InstanceStatus>,
    next: usize,
    base: i64,
}

impl Live {
    fn new() -> Live {
        let engines = Arc::new(EngineSet::new(EngineConfig::default()));
        let engine = engines.assign(0);
        let status = Arc::new(InstanceStatus::default());
        status.track(0, 0, 0);
        Live {
            engines,
            engine,
            status,
            next: 0,
            base: jiff::Timestamp::now().as_millisecond() - 600_000,
        }
    }

    /// One phone contact, answered or abandoned after 30 s in queue.
    fn contact(&mut self, abandoned: bool) {
        for ev in phone_contact(self.next, self.base + self.next as i64 * 1_000, abandoned) {
            self.engine.apply(&ev);
        }
        self.next += 1;
    }

    fn contacts(&mut self, answered: usize, abandoned: usize) {
        (0..answered).for_each(|_| self.contact(false));
        (0..abandoned).for_each(|_| self.contact(true));
    }
}

/// An alert service running on `live`, stopped on drop.
struct Running {
    service: Arc<AlertService>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(settings: &Settings, live: &Live) -> Running {
        let service = AlertService::new(settings, live.engines.clone(), live.status.clone())
            .expect("alert service");
        let stop = CancellationToken::new();
        let task = tokio::spawn(service.clone().run(stop.clone()));
        Running {
            service,
            stop,
            task,
        }
    }

    /// Waits until `rounds` more evaluation rounds have passed.
    async fn rounds(&self, rounds: u64) {
        let target = self.service.evaluations.load(Relaxed) + rounds;
        eventually("evaluation rounds", DEADLINE, || {
            self.service.evaluations.load(Relaxed) >= target
        })
        .await;
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("alert task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sink_gets_its_payload_shape_and_json_is_signed() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(
        vec![
            ("slack", sink(SinkKind::Slack, receiver.url("/slack"))),
            ("mm", sink(SinkKind::Mattermost, receiver.url("/mm"))),
            ("teams", sink(SinkKind::Teams, receiver.url("/teams"))),
            ("hook", sink(SinkKind::Json, receiver.url("/hook"))),
            (
                "slack-fr",
                SinkSettings {
                    language: vigie_proto::words::Lang::Fr,
                    ..sink(SinkKind::Slack, receiver.url("/slack-fr"))
                },
            ),
        ],
        dir.path(),
    );
    let mut live = Live::new();
    live.contacts(1, 3); // before the first round: the value is exactly 75 %
    let running = Running::start(&settings, &live);
    eventually("one message per sink", DEADLINE, || receiver.count() == 5).await;

    let by_path = |path: &str| {
        receiver
            .received()
            .into_iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("nothing on {path}"))
    };
    let slack = by_path("/slack").json();
    let text = slack["text"].as_str().expect("slack text");
    assert!(
        text.contains("FIRING") && text.contains("phone-abandon"),
        "{slack}"
    );
    assert!(text.contains("75.0 %"), "the value, formatted: {slack}");
    assert_eq!(slack["attachments"][0]["color"], "#d00000", "critical");
    assert!(slack.get("username").is_none());
    // A French team reads the wall's words.
    let french = by_path("/slack-fr").json();
    assert_eq!(
        french["text"],
        "[ALERTE] phone-abandon (critique)\u{a0}: Téléphone — Taux d'abandon 75\u{202f}% (seuil 50\u{202f}%)",
        "{french}"
    );
    let mm = by_path("/mm").json();
    assert_eq!(mm["username"], "Vigie");
    assert_eq!(
        mm["attachments"][0]["text"],
        slack["attachments"][0]["text"]
    );
    let teams = by_path("/teams").json();
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(card["content"]["body"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("FIRING")));

    let hook = by_path("/hook");
    hook.assert_signed();
    assert_eq!(
        hook.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(
        hook.headers
            .get("x-vigie-event")
            .and_then(|v| v.to_str().ok()),
        Some("fired")
    );
    let body = hook.json();
    assert_eq!(body["schema"], "vigie.alert.v1");
    assert_eq!(body["event"], "fired");
    let alert = &body["alert"];
    assert_eq!(
        hook.headers
            .get("x-vigie-delivery")
            .and_then(|v| v.to_str().ok()),
        body["delivery_id"].as_str()
    );
    assert_eq!(
        body["delivery_id"],
        format!("{}.fired", alert["id"].as_str().expect("id"))
    );
    assert_eq!(alert["rule"], "phone-abandon");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["kpi"], "abandon_rate");
    assert_eq!(alert["scope"], "channel=phone");
    assert_eq!(alert["value"], 0.75);
    assert_eq!(
        (alert["threshold"].as_f64(), alert["clear"].as_f64()),
        (Some(0.5), Some(0.3))
    );
    assert_eq!(alert["severity"], "critical");
    // No secret anywhere the API shows the configuration.
    let rules = serde_json::to_string(
        &json!({"rules": running.service.rules(), "sinks": running.service.sinks()}),
    )
    .expect("json");
    assert!(
        !rules.contains(&receiver.addr.to_string()) && !rules.contains(KEY),
        "{rules}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_then_resolve_is_exactly_two_messages_and_flapping_within_hysteresis_none() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(
        vec![("hook", sink(SinkKind::Json, receiver.url("/hook")))],
        dir.path(),
    );
    let mut live = Live::new();
    let running = Running::start(&settings, &live);
    running.rounds(2).await;
    assert_eq!(receiver.count(), 0, "nothing wrong yet");

    live.contacts(0, 1); // 1 abandoned of 1: 100 %
    eventually("fired", DEADLINE, || receiver.count() == 1).await;

    // Around the 50 % threshold, never down to the 30 % clear level.
    for (answered, abandoned) in [
        (1, 0),
        (0, 1),
        (1, 0),
        (1, 0),
        (0, 1),
        (0, 1),
        (1, 0),
        (1, 0),
    ] {
        live.contacts(answered, abandoned);
        running.rounds(2).await;
    }
    assert_eq!(
        receiver.count(),
        1,
        "flapping within the hysteresis says nothing"
    );
    assert_eq!(running.service.alerts().len(), 1);

    live.contacts(6, 0); // 4 abandoned of 15: 26.7 %
    eventually("resolved", DEADLINE, || receiver.count() == 2).await;
    running.rounds(5).await;
    let received = receiver.received();
    assert_eq!(received.len(), 2, "exactly two messages");
    let (fired, resolved) = (received[0].json(), received[1].json());
    assert_eq!(
        (fired["event"].as_str(), resolved["event"].as_str()),
        (Some("fired"), Some("resolved"))
    );
    assert_eq!(fired["alert"]["id"], resolved["alert"]["id"]);
    assert_eq!(resolved["alert"]["state"], "resolved");
    assert!(resolved["alert"]["resolved_at"].is_i64());
    received.iter().for_each(Received::assert_signed);
    running.stop().await;
}

/// A feed that stops upstream of Kafka (the broker is fine) shows as silence: the newest
/// event is 10 minutes old, the rule fires; an event of now resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_fires_and_the_next_event_resolves_it() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings(
        vec![("hook", sink(SinkKind::Json, receiver.url("/hook")))],
        dir.path(),
    );
    settings.alerts.rules = vec![AlertRuleSettings {
        name: "feed-silent".into(),
        kpi: vigie::alert::Kpi::Silence,
        channel: None,
        comparison: Comparison::Above,
        threshold: Threshold::Duration(Duration::from_secs(300)),
        clear: Some(Threshold::Duration(Duration::from_secs(60))),
        window: "15m".into(),
        severity: Severity::Warning,
        ..phone_abandon_rule()
    }];
    settings.validate().expect("valid");
    let mut live = Live::new();
    let running = Running::start(&settings, &live);
    running.rounds(2).await;
    assert_eq!(
        receiver.count(),
        0,
        "no event yet: nothing to say of silence"
    );

    live.contacts(1, 0); // dated 10 minutes ago
    eventually("fired", DEADLINE, || receiver.count() == 1).await;
    let fired = receiver.received()[0].json();
    assert_eq!(fired["alert"]["kpi"], "silence");
    let silence = fired["alert"]["value"].as_f64().expect("value");
    assert!(
        (540_000.0..3_600_000.0).contains(&silence),
        "about 10 minutes since the newest event: {silence}"
    );

    live.base = jiff::Timestamp::now().as_millisecond() - live.next as i64 * 1_000;
    live.contacts(1, 0); // dated now
    eventually("resolved", DEADLINE, || receiver.count() == 2).await;
    assert_eq!(receiver.received()[1].json()["event"], "resolved");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_then_recovering_gets_the_notification_once() {
    let receiver = Receiver::start(3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(
        vec![("hook", sink(SinkKind::Json, receiver.url("/hook")))],
        dir.path(),
    );
    let mut live = Live::new();
    let running = Running::start(&settings, &live);
    live.contacts(0, 2);
    eventually("three 500s, then a success", DEADLINE, || {
        receiver.count() == 4
    })
    .await;
    running.rounds(10).await;
    let received = receiver.received();
    assert_eq!(received.len(), 4, "nothing after the success");
    let ids: Vec<&str> = received
        .iter()
        .map(|r| {
            r.headers
                .get("x-vigie-delivery")
                .and_then(|v| v.to_str().ok())
                .expect("delivery id")
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same notification retried: {ids:?}"
    );
    let sink = running.service.sink_stats().next().expect("sink");
    assert_eq!(sink.stats.delivered.load(Relaxed), 1);
    assert_eq!(sink.stats.failed_attempts.load(Relaxed), 3);
    assert_eq!(sink.queued(), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_across_a_restart_gets_the_notification_after_it_once() {
    let addr = free_addr(); // nothing listens there yet
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(
        vec![(
            "hook",
            sink(SinkKind::Json, Secret::new(format!("http://{addr}/hook"))),
        )],
        dir.path(),
    );
    let mut live = Live::new();
    let first = Running::start(&settings, &live);
    live.contacts(0, 2);
    // The round publishes its alerts just after queueing them: a refused connection can
    // fail before, so both are awaited.
    eventually("a delivery attempt failed", DEADLINE, || {
        first
            .service
            .sink_stats()
            .next()
            .is_some_and(|s| s.stats.failed_attempts.load(Relaxed) >= 1)
            && !first.service.alerts().is_empty()
    })
    .await;
    let fired_id = first.service.alerts()[0].id.clone();
    first.stop().await;
    let outbox = dir.path().join("outbox/hook");
    assert_eq!(
        std::fs::read_dir(&outbox).expect("outbox").count(),
        1,
        "kept on disk"
    );

    // A new process: same state directory, same (still bad) numbers.
    let second = Running::start(&settings, &live);
    second.rounds(3).await;
    assert_eq!(
        second.service.alerts()[0].id,
        fired_id,
        "the alert survived"
    );
    let receiver = Receiver::start_on(addr, 0).await;
    eventually("delivered after the restart", DEADLINE, || {
        receiver.count() == 1
    })
    .await;
    second.rounds(10).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "no second \"fired\" after the restart");
    assert_eq!(received[0].json()["alert"]["id"], fired_id.as_str());
    assert_eq!(std::fs::read_dir(&outbox).expect("outbox").count(), 0);
    second.stop().await;
}

/// The next `alerts` message (others skipped).
async fn next_alerts(ws: &mut WsClient) -> Value {
    ws_next_of(ws, "alerts", DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websocket_show_alerts_and_a_supervisor_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0).await;
    let mut hook = sink(SinkKind::Json, receiver.url("/hook"));
    hook.notify_acknowledged = true;
    let settings = settings(vec![("hook", hook)], dir.path());
    let mut live = Live::new();
    let running = Running::start(&settings, &live);
    let audited: Arc<parking_lot::Mutex<Vec<vigie_proto::AuditRecord>>> = Arc::default();
    running.service.audit_to({
        let audited = audited.clone();
        Arc::new(move |record| audited.lock().push(record))
    });
    let app = TestApp::builder()
        .engines(live.engines.clone())
        .status(live.status.clone())
        .alerts(running.service.clone())
        .spawn()
        .await;
    let base = app.base.clone();
    let mut ws = app.ws().await;
    assert_eq!(
        next_alerts(&mut ws).await["alerts"],
        json!([]),
        "sent on connect"
    );

    live.contacts(0, 1);
    let firing = next_alerts(&mut ws).await;
    assert_eq!(firing["alerts"][0]["state"], "firing", "{firing}");
    let id = firing["alerts"][0]["id"].as_str().expect("id").to_string();

    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["alerts"][0]["id"], id.as_str());
    let ack = http
        .post(format!("{base}/api/v1/alerts/{id}/ack"))
        .json(&json!({"note": "calling the telco"}))
        .send()
        .await
        .expect("ack");
    assert_eq!(ack.status(), 200);
    let acked: Value = ack.json().await.expect("json");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "local");
    let pushed = next_alerts(&mut ws).await;
    assert_eq!(pushed["alerts"][0]["state"], "acknowledged");
    assert_eq!(pushed["alerts"][0]["ack_note"], "calling the telco");
    let empty_body = http
        .post(format!("{base}/api/v1/alerts/{id}/ack"))
        .send()
        .await
        .expect("ack again");
    assert_eq!(empty_body.status(), 200, "idempotent, body optional");
    {
        let audited = audited.lock();
        assert_eq!(
            audited.len(),
            1,
            "acknowledged twice, audited once: {audited:?}"
        );
        let record = &audited[0];
        assert_eq!(
            (
                record.action.as_str(),
                record.who.as_str(),
                record.why.as_str()
            ),
            ("acknowledge", "local", "calling the telco")
        );
        assert_eq!(record.alert_id.as_deref(), Some(id.as_str()));
    }
    let unknown = http
        .post(format!("{base}/api/v1/alerts/nope/ack"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), 404);
    let bad = http
        .post(format!("{base}/api/v1/alerts/{id}/ack"))
        .body("{\"colour\":1}")
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 400);
    eventually("fired and acknowledged posted", DEADLINE, || {
        receiver.count() == 2
    })
    .await;
    assert_eq!(
        receiver.received()[1].json()["alert"]["acknowledged_by"],
        "local"
    );

    let rules: Value = http
        .get(format!("{base}/api/v1/alerts/rules"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    assert_eq!(rules["rules"][0]["name"], "phone-abandon");
    assert_eq!(rules["sinks"], json!([{"name": "hook", "kind": "json"}]));
    assert!(!rules.to_string().contains(&receiver.addr.to_string()));
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("vigie_alerts_active{severity=\"critical\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("vigie_alert_notifications_delivered_total{sink=\"hook\"}"));

    live.contacts(5, 0);
    let resolved = next_alerts(&mut ws).await;
    assert_eq!(
        resolved["alerts"][0]["state"], "resolved",
        "shown a while after resolving"
    );
    let listed: Value = http
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["history"][0]["id"], id.as_str());
    assert_eq!(
        http.post(format!("{base}/api/v1/alerts/{id}/ack"))
            .send()
            .await
            .expect("late ack")
            .status(),
        409
    );
    drop(app);
    running.stop().await;
}
