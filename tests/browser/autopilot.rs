//! The autopilot in `propose` mode, in a real headless Chromium against `vigie serve` on
//! Tansu, the simulated centre live: when the phone billing surge degrades the phone, the
//! rule proposes "phone · billing → visual IVR" (on the switchboard, and to chat);
//! nothing changes until a supervisor clicks "Apply", and then the switch is on with
//! that supervisor as author, and the proposal says who applied it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigie::config::{Role, TokenSettings};
use vigie::server::sha256_hex;
use vigie_proto::AutopilotMode;
use vigie_testkit::autopilot::{simulate_surge_live, surge_settings};
use vigie_testkit::broker::create_topics;
use vigie_testkit::browser::{bundle_dir, element, save_screenshot, Chromedriver};
use vigie_testkit::receiver::Receiver;
use vigie_testkit::{wait_for, Broker, VigieServe};

const SUPERVISOR_TOKEN: &str = "supervisor-token";
const DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_propose_mode_nothing_changes_until_a_supervisor_applies_the_proposal() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0).await;
    let mut settings = surge_settings(
        broker.kafka(),
        dir.path().join("state"),
        receiver.url("/chat"),
        AutopilotMode::Propose,
    );
    settings.auth.tokens = vec![TokenSettings {
        name: "ann-supervisor".into(),
        role: Role::Supervisor,
        sha256: sha256_hex(SUPERVISOR_TOKEN),
    }];
    settings.cockpit.dir = Some(bundle_dir());
    create_topics(&settings.kafka, 2).await;
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    simulate_surge_live(&settings, stop.clone()).await;
    let vigie = VigieServe::start(dir.path(), "vigie", &settings);
    let token = Some(SUPERVISOR_TOKEN);
    let switch = async || {
        vigie
            .get_as("/api/v1/switches/phone.billing.all.all", token)
            .await
    };

    // The proposal: an open alert of the rule, with what it would flip; told to chat.
    // Should it never come, the last readiness seen says whether the view was whole.
    let (proposal, _) = wait_for(
        "the autopilot proposes the flip",
        DEADLINE,
        || async {
            let alert = vigie.get_as("/api/v1/alerts", token).await?.1["alerts"][0].clone();
            Some((alert, vigie.get("/readyz").await.map(|(_, r)| r)))
        },
        |(a, _)| a["rule"] == "autopilot.billing-surge",
    )
    .await;
    assert_eq!(proposal["autopilot"]["mode"], "propose", "{proposal}");
    assert_eq!(proposal["autopilot"]["switch_id"], "phone.billing.all.all");
    assert!(
        proposal["autopilot"]["what_if"]["projected_service_level_without"]
            .as_f64()
            .is_some_and(|p| p >= 0.5),
        "{proposal}"
    );
    vigie_testkit::eventually("the proposal reaches chat", Duration::from_secs(30), || {
        receiver.count() >= 1
    })
    .await;
    // Rounds pass with the condition holding: the switch is not created.
    let rounds = || vigie.metric("vigie_autopilot_evaluations_total");
    let now = wait_for("rounds counted", Duration::from_secs(10), rounds, |_| true).await;
    wait_for("ten more rounds", Duration::from_secs(30), rounds, |r| {
        *r >= now + 10.0
    })
    .await;
    assert_eq!(
        switch().await.map(|(status, _)| status),
        Some(404),
        "nothing changes before a supervisor applies the proposal"
    );

    let driver = Chromedriver::start();
    let supervisor = driver.session(&dir.path().join("profile-supervisor")).await;
    supervisor
        .goto(&format!(
            "{}/switchboard?lang=en#token={SUPERVISOR_TOKEN}",
            vigie.base
        ))
        .await
        .expect("open the switchboard");
    element(
        &supervisor,
        "#autopilot-rules li[data-rule='billing-surge']",
        "the rule is shown, read-only",
        Duration::from_secs(40),
    )
    .await;
    let apply = element(
        &supervisor,
        ".alert-list button.apply",
        "the proposal with its Apply button",
        Duration::from_secs(40),
    )
    .await;
    save_screenshot(&supervisor, "switchboard-autopilot.png").await;
    apply.click().await.expect("apply the proposal");

    let (_, on) = wait_for(
        "the switch is on, by the supervisor",
        Duration::from_secs(40),
        switch,
        |(status, s)| *status == 200 && s["on"] == true,
    )
    .await;
    assert_eq!(on["changed_by"], "ann-supervisor", "{on}");
    assert!(on["expires_at"].as_i64().is_some(), "{on}");
    assert!(
        on["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("[rule billing-surge] proposal applied")),
        "{on}"
    );
    let resolved = wait_for(
        "the proposal says who applied it",
        Duration::from_secs(40),
        || async { Some(vigie.get_as("/api/v1/alerts", token).await?.1) },
        |list| {
            list["alerts"].as_array().into_iter().flatten().any(|a| {
                a["state"] == "resolved" && a["summary"] == "proposal applied by ann-supervisor"
            })
        },
    )
    .await;
    assert!(
        resolved["alerts"].as_array().is_some_and(|a| a.len() == 1),
        "{resolved}"
    );
    supervisor.close().await.expect("close");
}
