//! The autopilot in `act` mode through `vigie serve`, on a real broker (Tansu), with the
//! agent-based simulator producing live and following the switches: the phone billing
//! surge degrades the phone queue, the rule turns "phone · billing → visual IVR" on by
//! itself, the simulated IVR deflects, the phone recovers, the rule turns its flip off —
//! exactly once each, both audited under the rule's name, both told to chat.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigie_proto::AutopilotMode;
use vigie_testkit::autopilot::{simulate_surge_live, surge_settings};
use vigie_testkit::broker::create_topics;
use vigie_testkit::receiver::Receiver;
use vigie_testkit::{eventually, wait_for, Broker, VigieServe};

async fn switch(vigie: &VigieServe) -> Option<Value> {
    let (status, s) = vigie.get("/api/v1/switches/phone.billing.all.all").await?;
    (status == 200).then_some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_act_mode_the_autopilot_turns_the_switch_on_in_the_surge_and_off_after_recovery() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0).await;
    let settings = surge_settings(
        broker.kafka(),
        dir.path().join("state"),
        receiver.url("/chat"),
        AutopilotMode::Act,
    );
    create_topics(&settings.kafka, 2).await;
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    simulate_surge_live(&settings, stop.clone()).await;
    let vigie = VigieServe::start(dir.path(), "vigie", &settings);

    let on = wait_for(
        "the autopilot turns the switch on",
        Duration::from_secs(240),
        || switch(&vigie),
        |s| s["on"] == true,
    )
    .await;
    assert_eq!(on["changed_by"], "vigie (rule billing-surge)");
    assert!(
        on["expires_at"].as_i64().is_some(),
        "every automatic flip expires"
    );
    assert!(
        on["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("[rule billing-surge]")),
        "{on}"
    );
    let predicted = on["prediction"]["service_level_predicted"].as_f64();
    assert!(predicted.is_some_and(|p| p >= 0.5), "{on}");
    // On the wall and in chat: the autopilot's alert, while its flip is on.
    let told = wait_for(
        "the autopilot's alert",
        Duration::from_secs(10),
        || async { Some(vigie.get("/api/v1/alerts").await?.1["alerts"][0].clone()) },
        |a| a["rule"] == "autopilot.billing-surge",
    )
    .await;
    assert_eq!(told["autopilot"]["mode"], "act", "{told}");

    let off = wait_for(
        "the autopilot turns its flip off once the phone has recovered",
        Duration::from_secs(420),
        || switch(&vigie),
        |s| s["on"] == false,
    )
    .await;
    assert_eq!(off["changed_by"], "vigie (rule billing-surge)");
    assert!(
        off["why"].as_str().is_some_and(|w| w.contains("recovered")),
        "{off}"
    );
    // Chat was told of both: turned on (fired), turned off (resolved).
    eventually("both notices delivered", Duration::from_secs(30), || {
        receiver.count() >= 2
    })
    .await;
    // More rounds pass: nothing flips again (the cooldown), nothing else is said.
    let rounds = || vigie.metric("vigie_autopilot_evaluations_total");
    let now = wait_for("rounds counted", Duration::from_secs(10), rounds, |_| true).await;
    wait_for("five more rounds", Duration::from_secs(30), rounds, |r| {
        *r >= now + 5.0
    })
    .await;
    let (_, audit) = vigie
        .get("/api/v1/audit?switch=phone.billing.all.all")
        .await
        .expect("audit");
    let actions: Vec<(&str, &str)> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default(),
                r["who"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("switch_off", "vigie (rule billing-surge)"),
            ("create", "vigie (rule billing-surge)"),
        ],
        "exactly one flip on and one off, newest first"
    );
    let notices: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(notices, ["fired", "resolved"], "told once each");
}
