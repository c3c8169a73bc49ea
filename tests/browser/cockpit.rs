//! The cockpit in a real headless Chromium, driven through chromedriver (WebDriver),
//! against the real `vigie serve` binary on a real broker (Tansu):
//! - the wall view shows numbers, which change after more events are produced to Kafka,
//!   boots into the window and language given in its URL, and greys its numbers and says
//!   "offline" when the server goes away;
//! - the switchboard's pressure table lists every phone contact reason with the server's
//!   numbers, opens the flip dialog on a reason, says which reasons a switch deflects,
//!   and follows the channel chosen in its title;
//! - a supervisor flips a switch (reason required, confirmation); a second browser
//!   session sees it, and the switch record is on the Kafka topic;
//! - a viewer session has no flip control, and a request forged from it is refused;
//! - a firing alert is a banner on the wall; a supervisor acknowledges it from the
//!   switchboard and the wall says who did.
//!
//! Needs the built bundle (`scripts/build-cockpit.sh`) and Debian's `chromium` and
//! `chromium-driver`; `scripts/test.sh` provides both. Screenshots of both views are
//! written to `docs/screenshots/` for the README.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;
use vigie::config::{AlertRuleSettings, KafkaSettings, Role, Settings, Threshold, TokenSettings};
use vigie::server::sha256_hex;
use vigie_proto::{Comparison, Kpi, Severity};
use vigie_testkit::broker::{create_topics, produce_simulated, read_topic};
use vigie_testkit::browser::{bundle_dir, number, save_screenshot, text_of, Chromedriver};
use vigie_testkit::{Broker, VigieServe};

const DEADLINE: Duration = Duration::from_secs(40);
const VIEWER_TOKEN: &str = "wall-screen-token";
const SUPERVISOR_TOKEN: &str = "supervisor-token";

/// Polls the page until `read` gives a value `accept`s (40 s at most).
async fn wait_for<T: std::fmt::Debug>(
    what: &str,
    read: impl AsyncFnMut() -> Option<T>,
    accept: impl Fn(&T) -> bool,
) -> T {
    vigie_testkit::wait_for(what, DEADLINE, read, accept).await
}

/// The element at `css` once the page shows it (40 s at most).
async fn element(client: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    vigie_testkit::browser::element(client, css, what, DEADLINE).await
}

/// `vigie serve` settings: `kafka`, a viewer and a supervisor token, the built cockpit,
/// and `quiet_after` (`[cockpit] quiet_after`; the default, 2 min, when `None`).
fn vigie_settings(kafka: &KafkaSettings, quiet_after: Option<Duration>) -> Settings {
    let token = |name: &str, role, token: &str| TokenSettings {
        name: name.into(),
        role,
        sha256: sha256_hex(token),
    };
    let mut settings = Settings {
        kafka: kafka.clone(),
        ..Settings::default()
    };
    settings.auth.tokens = vec![
        token("wall-lyon", Role::Viewer, VIEWER_TOKEN),
        token("ann-supervisor", Role::Supervisor, SUPERVISOR_TOKEN),
    ];
    settings.cockpit.dir = Some(bundle_dir());
    if let Some(quiet) = quiet_after {
        settings.cockpit.quiet_after = quiet;
    }
    settings
}

/// A TV wall cannot scroll: on a 1920×1080 screen every channel's tile is in view.
async fn tiles_fit_a_wall_screen(client: &Client, what: &str) {
    // The total tile is drawn at once; the channels' with the first snapshot frame.
    let layout = wait_for(
        &format!("{what}: every channel of the stream has a tile"),
        async || {
            client
                .execute(
                    "const tiles = [...document.querySelectorAll('article.tile')];
                     return { width: window.innerWidth, tiles: tiles.length,
                              bottom: Math.max(...tiles.map(t => t.getBoundingClientRect().bottom + window.scrollY)) };",
                    vec![],
                )
                .await
                .ok()
        },
        |layout| layout["tiles"].as_u64() >= Some(10),
    )
    .await;
    assert_eq!(
        layout["width"], 1920,
        "{what}: the wall is laid out for 1920 px"
    );
    assert!(
        layout["bottom"].as_f64() <= Some(1080.0),
        "{what}: the tiles end within a 1080-pixel screen: {layout}"
    );
}

/// What every browser test runs on: a broker whose event topic holds simulated contacts,
/// `vigie serve` on it, and chromedriver.
struct Rig {
    kafka: KafkaSettings,
    base: String,
    vigie: Option<VigieServe>,
    driver: Chromedriver,
    dir: tempfile::TempDir,
    _broker: Broker,
}

impl Rig {
    /// `contacts` contacts (simulator `seed`) arriving from `minutes_ago` on, already on
    /// the topic when Vigie starts (with the settings `configure` leaves). They end
    /// minutes ago: with the default `quiet_after` (2 min), the wall says "no event for …".
    async fn start(
        contacts: u64,
        seed: u64,
        minutes_ago: i64,
        quiet_after: Option<Duration>,
        configure: impl FnOnce(&mut Settings),
    ) -> Rig {
        let broker = Broker::start();
        let kafka = broker.kafka();
        create_topics(&kafka, 2).await;
        produce_simulated(&kafka, contacts, seed, minutes_ago).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = vigie_settings(&kafka, quiet_after);
        configure(&mut settings);
        let vigie = VigieServe::start(dir.path(), "vigie", &settings);
        Rig {
            kafka,
            base: vigie.base.clone(),
            vigie: Some(vigie),
            driver: Chromedriver::start(),
            dir,
            _broker: broker,
        }
    }

    /// A new browser session with a profile of its own.
    async fn browser(&self, name: &str) -> Client {
        self.driver
            .session(&self.dir.path().join(format!("profile-{name}")))
            .await
    }

    /// Kills `vigie serve` (the browsers stay).
    fn kill_vigie(&mut self) {
        self.vigie = None;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_live_numbers_that_follow_kafka_and_boots_into_its_url() {
    let mut rig = Rig::start(300, 101, 12, Some(Duration::from_secs(3_600)), |_| {}).await;
    let base = rig.base.clone();
    let wall = rig.browser("wall").await;

    wall.goto(&format!("{base}/wall#token={VIEWER_TOKEN}"))
        .await
        .expect("open the wall");
    wait_for(
        "the freshness badge says live",
        async || text_of(&wall, "#freshness").await,
        |t| t == "live",
    )
    .await;
    let arrivals = "article[data-channel=total] [data-kpi=arrivals]";
    let before = wait_for(
        "the total tile counts the first contacts",
        async || number(&text_of(&wall, arrivals).await?),
        |n| *n > 0,
    )
    .await;
    assert!(
        text_of(&wall, "article[data-channel=phone] [data-kpi=headline]")
            .await
            .is_some_and(|t| t.ends_with('%')),
        "the phone tile shows its service level"
    );
    // Staffing at a glance, the server's numbers (the simulated centre's agents).
    let (_, api) = rig
        .vigie
        .as_ref()
        .expect("running")
        .get_as("/api/v1/snapshot", Some(VIEWER_TOKEN))
        .await
        .expect("the snapshot");
    let staffed = api["total"]["staffing"]["staffed"]
        .as_u64()
        .expect("staffing");
    assert!(staffed > 0, "{}", api["total"]);
    let line = wait_for(
        "the total tile shows its agents",
        async || text_of(&wall, "article[data-channel=total] [data-kpi=staffing]").await,
        |t| t.contains(" agents · "),
    )
    .await;
    let first = line.split(" agents").next().unwrap_or_default();
    assert_eq!(number(first), Some(staffed), "{line}");
    assert!(
        text_of(&wall, "article[data-channel=total] [data-kpi=occupancy]")
            .await
            .is_some_and(|t| t.ends_with('%')),
        "the total tile shows its occupancy"
    );
    assert!(
        text_of(
            &wall,
            "section.queues tr[data-queue=phone_billing] [data-kpi=staffing]"
        )
        .await
        .is_some_and(|t| t.contains("free")),
        "the queue table shows each queue's agents"
    );
    let url = wall.current_url().await.expect("url");
    assert!(
        url.fragment().is_none(),
        "the token left the address bar: {url}"
    );

    produce_simulated(&rig.kafka, 200, 102, 6).await;
    let after = wait_for(
        "the total tile follows the new events",
        async || number(&text_of(&wall, arrivals).await?),
        |n| *n > before,
    )
    .await;
    assert!(after > before);

    // The formulas are one click away, with the exact window.
    wall.find(Locator::Css("article[data-channel=total] .formula-toggle"))
        .await
        .expect("formula button")
        .click()
        .await
        .expect("click");
    let formulas = wait_for(
        "the total tile shows its formulas",
        async || text_of(&wall, "article[data-channel=total] .formulas").await,
        |t| t.contains("Answered ÷ (answered + abandoned)"),
    )
    .await;
    assert!(formulas.contains("(15m)"), "{formulas}");
    wall.find(Locator::Css("article[data-channel=total] .formula-toggle"))
        .await
        .expect("formula button")
        .click()
        .await
        .expect("click");
    save_screenshot(&wall, "wall.png").await;

    tiles_fit_a_wall_screen(&wall, "English").await;

    // A wall screen boots straight into the view of its URL.
    wall.goto(&format!("{base}/wall?window=1h&lang=fr"))
        .await
        .expect("open the French wall");
    wait_for(
        "the French wall names its total tile",
        async || text_of(&wall, "article[data-channel=total] h2").await,
        |t| t == "Tous canaux",
    )
    .await;
    let active = text_of(&wall, "button.window.active").await;
    assert_eq!(active.as_deref(), Some("1 h"));
    tiles_fit_a_wall_screen(&wall, "French (longer labels)").await;
    wait_for(
        "the 1-hour wall counts every contact",
        async || number(&text_of(&wall, arrivals).await?),
        |n| *n >= after,
    )
    .await;
    assert!(
        wall.find(Locator::Css("main.live")).await.is_ok(),
        "live numbers are not greyed"
    );

    // The server goes away: the badge says so and the numbers are greyed, never live.
    rig.kill_vigie();
    wait_for(
        "the badge says the wall is offline",
        async || text_of(&wall, "#freshness").await,
        |t| t.starts_with("hors ligne"),
    )
    .await;
    assert!(
        wall.find(Locator::Css("main.not-live")).await.is_ok(),
        "numbers of a lost server are greyed"
    );
    assert!(
        number(&text_of(&wall, arrivals).await.unwrap_or_default()).is_some(),
        "the last numbers stay readable"
    );
    wall.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_flips_a_switch_another_session_sees_it_and_a_viewer_cannot() {
    let rig = Rig::start(200, 201, 10, Some(Duration::from_secs(3_600)), |_| {}).await;
    let (base, kafka) = (rig.base.clone(), &rig.kafka);
    let supervisor = rig.browser("supervisor").await;
    let viewer = rig.browser("viewer").await;

    viewer
        .goto(&format!("{base}/switchboard#token={VIEWER_TOKEN}"))
        .await
        .expect("open as viewer");
    wait_for(
        "the viewer is told the board is read-only",
        async || text_of(&viewer, "#read-only").await,
        |t| t.contains("cannot flip"),
    )
    .await;
    assert!(
        viewer.find(Locator::Css("#new-switch")).await.is_err(),
        "a viewer has no control to create a switch"
    );

    supervisor
        .goto(&format!("{base}/switchboard#token={SUPERVISOR_TOKEN}"))
        .await
        .expect("open as supervisor");

    // Beside it, the phone queues' staffing and the agent list, with the server's numbers.
    let agents = supervisor
        .execute_async(
            r#"const [token, done] = arguments;
               fetch("/api/v1/agents?queue=phone_billing&limit=500",
                     {headers: {"Authorization": "Bearer " + token}})
                 .then(async r => done(await r.json()));"#,
            vec![json!(SUPERVISOR_TOKEN)],
        )
        .await
        .expect("the REST agent list");
    let billing_agents = agents["total"].as_u64().expect("total");
    assert!(billing_agents > 0, "{agents}");
    wait_for(
        "the staffing panel lists phone_billing's agents",
        async || {
            text_of(
                &supervisor,
                "#staffing tr[data-queue=phone_billing] [data-kpi=staffed]",
            )
            .await
        },
        |t| number(t) == Some(billing_agents),
    )
    .await;
    let first_agent = wait_for(
        "the agent list shows agents, time in state ticking",
        async || text_of(&supervisor, "#agents tbody tr [data-kpi=time_in_state]").await,
        |t| t.contains(" s") || t.contains(" min") || t.contains(" h"),
    )
    .await;
    supervisor
        .find(Locator::Css("select[name=agents-queue]"))
        .await
        .expect("queue filter")
        .select_by_value("phone_billing")
        .await
        .expect("select phone_billing");
    wait_for(
        "the agent list shows only phone_billing's agents",
        async || {
            let rows = supervisor
                .find_all(Locator::Css("#agents tbody tr td:nth-child(4)"))
                .await
                .ok()?;
            let mut queues = Vec::new();
            for row in rows {
                queues.push(row.text().await.ok()?);
            }
            Some(queues)
        },
        |q| !q.is_empty() && q.iter().all(|q| q.contains("phone_billing")),
    )
    .await;
    eprintln!("first agent's time in state: {first_agent}");
    // Foresight: each queue's projection beside its staffing, each reason's what-if.
    wait_for(
        "the staffing panel shows phone_billing's projected service level",
        async || {
            text_of(
                &supervisor,
                "#staffing tr[data-queue=phone_billing] [data-kpi=projected_service_level]",
            )
            .await
        },
        |t| t.ends_with('%'),
    )
    .await;
    let what_if = wait_for(
        "the pressure table says what deflecting billing would do",
        async || {
            text_of(
                &supervisor,
                "#pressure tr[data-reason=billing] [data-kpi=what_if]",
            )
            .await
        },
        |t| t.contains("of the load") && t.contains('→'),
    )
    .await;
    eprintln!("billing if deflected: {what_if}");

    // Above the switches, the phone flow by contact reason, the most pressed first:
    // every reason with the server's own numbers for it.
    let rest = supervisor
        .execute_async(
            r#"const [token, done] = arguments;
               fetch("/api/v1/snapshot?channel=phone&by=reason",
                     {headers: {"Authorization": "Bearer " + token}})
                 .then(async r => done(await r.json()));"#,
            vec![json!(SUPERVISOR_TOKEN)],
        )
        .await
        .expect("the REST snapshot by reason");
    let want: Vec<(String, u64)> = {
        let mut rows: Vec<(String, u64)> = rest["breakdown"]
            .as_array()
            .expect("a breakdown")
            .iter()
            .map(|b| {
                let reason = b["key"]["reason"].as_str().unwrap_or_default().to_string();
                (reason, b["kpis"]["arrivals"].as_u64().unwrap_or_default())
            })
            .collect();
        rows.sort();
        rows
    };
    assert!(want.len() > 2, "several phone reasons: {rest}");
    let pressure_rows = async |client: &Client| {
        let rows = client
            .execute(
                "return [...document.querySelectorAll('#pressure tbody tr')]
                   .map(tr => [tr.dataset.reason, tr.children[1].textContent,
                               tr.querySelector('.deflecting').textContent,
                               tr.querySelector('button.deflect') !== null]);",
                vec![],
            )
            .await
            .ok()?;
        serde_json::from_value::<Vec<(String, String, String, bool)>>(rows).ok()
    };
    let shown = wait_for(
        "the pressure table lists every phone reason with its contacts",
        async || {
            let mut rows: Vec<(String, u64)> = pressure_rows(&supervisor)
                .await?
                .into_iter()
                .map(|(reason, arrivals, _, _)| (reason, number(&arrivals).unwrap_or(0)))
                .collect();
            rows.sort();
            Some(rows)
        },
        |rows| *rows == want,
    )
    .await;
    assert_eq!(shown, want);
    let top = text_of(&supervisor, "#pressure tbody tr td.reason")
        .await
        .expect("a most pressed reason");
    element(
        &supervisor,
        &format!("#pressure tr[data-reason='{top}'] button.deflect"),
        "a supervisor can deflect a reason from its row",
    )
    .await
    .click()
    .await
    .expect("deflect");
    wait_for(
        "the flip dialog opens on that channel and reason",
        async || text_of(&supervisor, "#flip-dialog h3").await,
        |t| t.contains(&format!("phone · {top} · *")),
    )
    .await;
    supervisor
        .find(Locator::Css("#flip-dialog button.cancel"))
        .await
        .expect("cancel button")
        .click()
        .await
        .expect("cancel");

    let create = element(
        &supervisor,
        "#new-switch button.create",
        "the supervisor gets the new-switch control",
    )
    .await;
    create.click().await.expect("create");
    let confirm = element(
        &supervisor,
        "#flip-dialog button.confirm",
        "the confirmation dialog opens",
    )
    .await;
    confirm.click().await.expect("confirm without a reason");
    wait_for(
        "a flip without a reason is refused in the dialog",
        async || text_of(&supervisor, "#flip-dialog .problem").await,
        |t| t.contains("required"),
    )
    .await;
    supervisor
        .find(Locator::Css("#flip-dialog textarea[name=why]"))
        .await
        .expect("reason field")
        .send_keys("phone queue saturated, billing to visual IVR")
        .await
        .expect("type the reason");
    let row = "tr[data-switch='phone.all.all.all'] td.state";
    confirm.click().await.expect("confirm");
    let clicked = Instant::now();
    wait_for(
        "the viewer's session shows the switch on",
        async || text_of(&viewer, row).await,
        |t| t == "ON",
    )
    .await;
    println!(
        "flip seen by the other browser session {} ms after the click (including its polling)",
        clicked.elapsed().as_millis()
    );
    assert!(
        viewer.find(Locator::Css("button.flip")).await.is_err(),
        "a viewer has no flip control on an existing switch either"
    );
    // The switch keeps what the projection said at the flip, beside what is measured.
    let effect = wait_for(
        "the switch's effect shows its prediction",
        async || text_of(&viewer, "tr[data-switch='phone.all.all.all'] td.effect").await,
        |t| t.contains("SL predicted"),
    )
    .await;
    eprintln!("switch effect: {effect}");
    // The switch covers every phone reason: each row says where its calls go now.
    let rows = wait_for(
        "every phone reason shows the channel's deflection",
        async || pressure_rows(&viewer).await,
        |rows| !rows.is_empty() && rows.iter().all(|r| r.2 == "→ Visual IVR"),
    )
    .await;
    assert!(
        rows.iter().all(|r| !r.3),
        "a viewer has no deflect control: {rows:?}"
    );
    wait_for(
        "a deflected reason offers no second deflection",
        async || pressure_rows(&supervisor).await,
        |rows| !rows.is_empty() && rows.iter().all(|r| r.2 == "→ Visual IVR" && !r.3),
    )
    .await;
    // Another channel's pressure, from the table's title; the phone switch is not its.
    viewer
        .find(Locator::Css(
            "select[name=pressure-channel] option[value=chat]",
        ))
        .await
        .expect("chat is offered")
        .click()
        .await
        .expect("choose chat");
    wait_for(
        "the table shows chat by reason, not deflected",
        async || pressure_rows(&viewer).await,
        |rows| !rows.is_empty() && rows.iter().all(|r| r.2.is_empty()),
    )
    .await;
    let url = viewer.current_url().await.expect("url");
    assert!(url.as_str().ends_with("/switchboard?channel=chat"), "{url}");

    // The record is on the compacted topic the routing systems read.
    let records = read_topic(kafka, &kafka.switches_topic, |r| {
        r.iter().any(|(k, _)| k == "phone.all.all.all")
    });
    let (_, record) = records
        .iter()
        .find(|(k, _)| k == "phone.all.all.all")
        .expect("the switch record is on the topic");
    assert_eq!(record["on"], true);
    assert_eq!(record["changed_by"], "ann-supervisor");
    assert_eq!(
        record["why"],
        "phone queue saturated, billing to visual IVR"
    );

    // The supervisor's board shows it with its author and the audit trail.
    wait_for(
        "the audit trail lists the flip",
        async || text_of(&supervisor, "#audit tbody").await,
        |t| t.contains("ann-supervisor") && t.contains("phone.all.all.all"),
    )
    .await;
    save_screenshot(&supervisor, "switchboard.png").await;

    // A request forged from the viewer's page, with its token, is refused.
    let forged = viewer
        .execute_async(
            r#"const [token, done] = arguments;
               fetch("/api/v1/switches/phone.all.all.all", {
                 method: "PUT",
                 headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
                 body: JSON.stringify({channel: "phone", target: "visual_ivr", on: false,
                                       why: "forged", expected_version: 1})
               }).then(async r => done([r.status, await r.json()]));"#,
            vec![json!(VIEWER_TOKEN)],
        )
        .await
        .expect("forged request");
    assert_eq!(forged[0], 403, "{forged}");
    assert_eq!(forged[1]["code"], "forbidden", "{forged}");
    assert_eq!(
        text_of(&viewer, row).await.as_deref(),
        Some("ON"),
        "the forged flip changed nothing"
    );
    supervisor.close().await.expect("close");
    viewer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_shows_on_the_wall_and_a_supervisor_acknowledges_it() {
    // The simulated centre abandons far more than 1 %: this rule fires at once.
    let rule = AlertRuleSettings {
        name: "abandon-test".into(),
        kpi: Kpi::AbandonRate,
        channel: None,
        queue: None,
        reason: None,
        segment: None,
        site: None,
        comparison: Comparison::Above,
        threshold: Threshold::Number(0.01),
        clear: Some(Threshold::Number(0.005)),
        window: "15m".into(),
        for_: Duration::ZERO,
        severity: Severity::Critical,
        sinks: Some(Vec::new()),
        repeat_every: None,
        min_volume: 1,
    };
    let rig = Rig::start(300, 301, 10, None, |s| {
        s.alerts.default_rules = false;
        s.alerts.rules = vec![rule];
    })
    .await;
    let wall = rig.browser("wall").await;
    let supervisor = rig.browser("supervisor").await;

    wall.goto(&format!("{}/wall?lang=en#token={VIEWER_TOKEN}", rig.base))
        .await
        .expect("open the wall");
    let banner = wait_for(
        "the wall shows the firing alert as a banner",
        async || text_of(&wall, "#alerts .alert.critical").await,
        |t| t.starts_with("All channels — Abandon rate"),
    )
    .await;
    assert!(banner.ends_with("(threshold 1.0%)"), "{banner}");
    // The recorded contacts ended minutes ago and nothing came since (beyond the 2-minute
    // default): the wall says so and greys its numbers rather than show them as live.
    wait_for(
        "the badge says no event came for minutes",
        async || text_of(&wall, "#freshness").await,
        |t| t.starts_with("no event for ") && t.contains(" min "),
    )
    .await;
    assert!(
        wall.find(Locator::Css("main.not-live")).await.is_ok(),
        "numbers of a quiet feed are greyed"
    );
    tiles_fit_a_wall_screen(&wall, "with an alert banner").await;

    supervisor
        .goto(&format!(
            "{}/switchboard#token={SUPERVISOR_TOKEN}",
            rig.base
        ))
        .await
        .expect("open the switchboard");
    let ack = element(
        &supervisor,
        ".alert-list button.ack",
        "the switchboard lists the alert with an acknowledge button",
    )
    .await;
    ack.click().await.expect("acknowledge");
    wait_for(
        "the wall shows who acknowledged it",
        async || text_of(&wall, "#alerts .alert.acked").await,
        |t| t.contains("acknowledged by ann-supervisor"),
    )
    .await;
    wall.close().await.expect("close");
    supervisor.close().await.expect("close");
}
