//! Alerting with several instances, black box on a real broker (Tansu): three `vigie
//! serve` with partials on, one rule and one webhook receiver on loopback. One instance
//! alerts for all (the owner of partition 0): one notification, not one per instance; an
//! acknowledgement through any instance; and when the alerting instance is killed with a
//! notification queued, the next one delivers it, without a second `fired`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vigie::config::{Settings, SinkKind};
use vigie::event::Format;
use vigie_testkit::broker::{create_topics, produce_events};
use vigie_testkit::cluster::{temp_dir, Instance, DEADLINE, PARTITIONS};
use vigie_testkit::receiver::{sink, Receiver};
use vigie_testkit::{eventually, phone_abandon_rule, phone_contact, Broker};

/// One phone abandon rule, evaluated every 100 ms, notifying `receiver` (signed JSON);
/// pending notifications kept in `state_dir`.
fn alerting(receiver: &Receiver, state_dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.alerts.default_rules = false;
    settings.alerts.evaluate_every = Duration::from_millis(100);
    settings.alerts.state_dir = Some(state_dir.to_path_buf());
    settings.alerts.rules = vec![phone_abandon_rule()];
    settings
        .alerts
        .sinks
        .insert("hook".into(), sink(SinkKind::Json, receiver.url("/hook")));
    settings
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
async fn settled(instances: &[&Instance]) -> (String, String) {
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

/// Every instance is ready and consumes some partitions, and together they consume each
/// partition once.
async fn group_settled(instances: &[&Instance]) {
    let start = Instant::now();
    loop {
        let mut owned = Vec::new();
        let mut ready = true;
        for v in instances {
            ready &= v
                .get("/readyz")
                .await
                .is_some_and(|(status, _)| status == 200);
            owned.push(v.metric("vigie_partitions_assigned").await.unwrap_or(0.0));
        }
        if ready
            && owned.iter().all(|n| *n > 0.0)
            && owned.iter().sum::<f64>() == f64::from(PARTITIONS)
        {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the group never settled: ready {ready}, partitions consumed per instance {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until each instance shows its first alert in `state`.
async fn shows_alert_state(instances: &[&Instance], state: &str) {
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
async fn rounds(instances: &[&Instance], rounds: f64) {
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
    let kafka = broker.kafka();
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let receiver = Receiver::start(0).await;
    let instances: Vec<Instance> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let config = alerting(&receiver, &dir.join(format!("{name}-state")));
            Instance::start_with(&dir, name, &kafka, true, &config)
        })
        .collect();

    // The group settles first, so that the alert fires on one owner of partition 0 and
    // not across a rebalance (whose handover may notify twice: at least once).
    group_settled(&instances.iter().collect::<Vec<_>>()).await;
    // Three abandoned phone contacts: 100 % abandon rate, on whichever partitions.
    let base = jiff::Timestamp::now().as_millisecond() - 600_000;
    let abandons: Vec<_> = (0..3)
        .flat_map(|n| phone_contact(n, base + n as i64 * 1_000, true))
        .collect();
    produce_events(&kafka, abandons.iter().cloned(), Format::Jsonl).await;
    eventually("an alert fired", DEADLINE, || {
        notified(&receiver, "fired") >= 1
    })
    .await;
    // Once the group has settled, each instance shows the same alert and names the same
    // alerting instance, the only one with vigie_alerting_instance = 1. Every instance
    // then evaluates 20 more rounds: still one notification, not one per instance.
    let all: Vec<&Instance> = instances.iter().collect();
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
    produce_events(&kafka, recovery.iter().cloned(), Format::Jsonl).await;
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
    let survivors: Vec<&Instance> = instances.iter().collect();
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

/// An alerting instance queued a notification (on its disk) and crashed before
/// publishing its state: only its disk has it. Restarted in a scale-out, it hands it to
/// whichever instance alerts, which delivers it once; the file is gone once handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_queued_before_a_crash_is_delivered_by_the_alerting_instance() {
    let broker = Broker::start();
    let kafka = broker.kafka();
    create_topics(&kafka, PARTITIONS).await;
    let dir = temp_dir();
    let receiver = Receiver::start(0).await;
    let outbox = dir.join("b-state").join("outbox").join("hook");
    std::fs::create_dir_all(&outbox).expect("outbox dir");
    let now = jiff::Timestamp::now().as_millisecond();
    let delivery = format!("phone-abandon.{now}.fired");
    let queued = json!({
        "id": delivery, "event": "fired", "created_at": now,
        "body": json!({"text": "queued before the crash"}).to_string(),
    });
    std::fs::write(
        outbox.join(format!("{now:013}-000000.json")),
        queued.to_string(),
    )
    .expect("queued notification");

    let instances: Vec<Instance> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let config = alerting(&receiver, &dir.join(format!("{name}-state")));
            Instance::start_with(&dir, name, &kafka, true, &config)
        })
        .collect();
    let delivered = |receiver: &Receiver| {
        receiver
            .received()
            .iter()
            .filter(|r| {
                r.status == 200
                    && r.headers
                        .get("x-vigie-delivery")
                        .is_some_and(|d| *d == delivery)
            })
            .count()
    };
    eventually("the queued notification delivered", DEADLINE, || {
        delivered(&receiver) >= 1
    })
    .await;
    let all: Vec<&Instance> = instances.iter().collect();
    group_settled(&all).await;
    rounds(&all, 20.0).await;
    assert_eq!(delivered(&receiver), 1, "delivered once");
    let left = std::fs::read_dir(&outbox).expect("outbox").count();
    assert_eq!(left, 0, "handed over: its file removed from b's disk");
    assert_eq!(
        instances[1]
            .metric("vigie_alert_notifications_handed_off_total")
            .await,
        Some(1.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
