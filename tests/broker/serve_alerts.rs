//! `vigie serve` alerting through its public surface, on a real broker (Tansu): a
//! webhook receiver down across a restart gets the `fired` queued before it, once, then
//! the `resolved`, signed.

use std::time::Duration;

use vigie::config::{Secret, Settings, SinkKind};
use vigie::event::{EventRecord, Format};
use vigie_testkit::broker::{create_topics, produce_events};
use vigie_testkit::receiver::{sink, Received, Receiver};
use vigie_testkit::{
    eventually, free_addr, phone_abandon_rule, phone_contact, wait_for, Broker, VigieServe,
};

const DEADLINE: Duration = Duration::from_secs(20);
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_vigie_serve_a_receiver_down_across_a_restart_gets_fired_then_resolved() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hook_addr = free_addr();
    let mut settings = Settings {
        kafka: broker.kafka(),
        ..Settings::default()
    };
    settings.alerts.default_rules = false;
    settings.alerts.evaluate_every = Duration::from_millis(100);
    settings.alerts.state_dir = Some(dir.path().join("state"));
    settings.alerts.rules = vec![phone_abandon_rule()];
    settings.alerts.sinks.insert(
        "hook".into(),
        sink(
            SinkKind::Json,
            Secret::new(format!("http://{hook_addr}/hook")),
        ),
    );
    create_topics(&settings.kafka, 1).await;
    let base = jiff::Timestamp::now().as_millisecond() - 600_000;
    let events: Vec<EventRecord<'static>> = (0..3)
        .flat_map(|n| phone_contact(n, base + n as i64 * 1_000, true))
        .collect();
    produce_events(&settings.kafka, events.into_iter(), Format::Jsonl).await;

    let listen = free_addr().to_string();
    let vigie = VigieServe::start_on(dir.path(), "vigie", &settings, &listen);
    let firing = wait_for(
        "an alert fired",
        Duration::from_secs(60),
        || async {
            let (_, list) = vigie.get("/api/v1/alerts").await?;
            list["alerts"][0]["id"].as_str().map(str::to_string)
        },
        |_| true,
    )
    .await;
    eventually("the notification is on disk", DEADLINE, || {
        std::fs::read_dir(dir.path().join("state/outbox/hook")).is_ok_and(|d| d.count() == 1)
    })
    .await;
    assert!(vigie.terminate(), "clean exit on SIGTERM");

    let vigie = VigieServe::start_on(dir.path(), "vigie", &settings, &listen);
    let receiver = Receiver::start_on(hook_addr, 0).await;
    eventually(
        "fired delivered after the restart",
        Duration::from_secs(60),
        || receiver.count() >= 1,
    )
    .await;
    // Recovery: the abandon rate falls below the clear level.
    let recovery: Vec<EventRecord<'static>> = (3..13)
        .flat_map(|n| phone_contact(n, base + n as i64 * 1_000, false))
        .collect();
    produce_events(&settings.kafka, recovery.into_iter(), Format::Jsonl).await;
    eventually("resolved delivered", Duration::from_secs(60), || {
        receiver.count() >= 2
    })
    .await;
    // A few more rounds: nothing else comes.
    let evaluations = || vigie.metric("vigie_alert_evaluations_total");
    let rounds = wait_for("evaluations counted", DEADLINE, evaluations, |_| true).await;
    wait_for("ten more evaluation rounds", DEADLINE, evaluations, |n| {
        *n >= rounds + 10.0
    })
    .await;
    let received = receiver.received();
    let events: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["alert"]["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("fired".to_string(), firing.clone()),
            ("resolved".to_string(), firing)
        ],
        "exactly one fired and one resolved across the restart"
    );
    received.iter().for_each(Received::assert_signed);
    assert!(vigie.terminate(), "clean exit on SIGTERM");
}
