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

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::{create_topics, free_port, kafka_table, read_topic, unique, Broker, VigieProcess};
use vigie::config::KafkaSettings;
use vigie::ingest::produce::{produce, Pace};
use vigie::replay::InputFormat;
use vigie::server::sha256_hex;
use vigie::simulate::{SimulationConfig, Simulator};

const DEADLINE: Duration = Duration::from_secs(40);
const VIEWER_TOKEN: &str = "wall-screen-token";
const SUPERVISOR_TOKEN: &str = "supervisor-token";

fn bundle_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/dist");
    assert!(
        dir.join("index.html").is_file(),
        "the cockpit bundle is not built: run scripts/build-cockpit.sh (scripts/test.sh does)"
    );
    dir
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// chromedriver and the browsers it started (its process group), killed when the test
/// ends whatever way it ends: a failed test leaves no Chromium behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, in a process group of its own.
fn start_chromedriver() -> (Killed, String) {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let child = Command::new("chromedriver")
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; scripts/setup.sh installs it)");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(start.elapsed() < DEADLINE, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), format!("http://{addr}"))
}

/// A new headless Chromium session with its own empty profile.
async fn browser(webdriver: &str, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1920,1080",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a Chromium session")
}

fn kafka(broker: &Broker) -> KafkaSettings {
    KafkaSettings {
        brokers: broker.brokers(),
        topic: unique("interactions"),
        dlq_topic: unique("dlq"),
        switches_topic: unique("switches"),
        audit_topic: unique("audit"),
        group_id: unique("group"),
        ..KafkaSettings::default()
    }
}

/// `vigie serve` with a viewer and a supervisor token, serving the built cockpit;
/// `extra` is appended to its config file.
/// `quiet_after`: `[cockpit] quiet_after`, or the default (2 min) when `None`.
fn start_vigie(
    kafka: &KafkaSettings,
    dir: &Path,
    quiet_after: Option<&str>,
    extra: &str,
) -> VigieProcess {
    let config = dir.join("vigie.toml");
    std::fs::write(
        &config,
        format!(
            r#"
{kafka}
[[auth.tokens]]
name = "wall-lyon"
role = "viewer"
sha256 = "{viewer}"

[[auth.tokens]]
name = "ann-supervisor"
role = "supervisor"
sha256 = "{supervisor}"

[cockpit]
dir = "{bundle}"
{quiet}

{extra}
"#,
            quiet = quiet_after.map_or(String::new(), |q| format!("quiet_after = \"{q}\"")),
            kafka = kafka_table(kafka),
            viewer = sha256_hex(VIEWER_TOKEN),
            supervisor = sha256_hex(SUPERVISOR_TOKEN),
            bundle = bundle_dir().display(),
        ),
    )
    .expect("config file");
    VigieProcess::start(
        Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(["--config", &config.display().to_string()])
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn"),
    )
}

/// `contacts` simulated contacts arriving from `minutes_ago` on, produced to Kafka.
async fn produce_contacts(kafka: &KafkaSettings, contacts: u64, seed: u64, minutes_ago: i64) {
    let events = Simulator::new(SimulationConfig {
        seed,
        contacts: Some(contacts),
        start_ms: jiff::Timestamp::now().as_millisecond() - minutes_ago * 60_000,
        contacts_per_second: 2.0,
        ..SimulationConfig::default()
    });
    produce(
        kafka,
        &kafka.topic,
        events,
        InputFormat::Jsonl,
        Pace::Unbounded,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("produced");
}

/// Polls `read` until it gives a value accepted by `accept`, or panics naming `what`.
async fn wait_for<T: std::fmt::Debug>(
    what: &str,
    mut read: impl AsyncFnMut() -> Option<T>,
    accept: impl Fn(&T) -> bool,
) -> T {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(value) = read().await {
            if accept(&value) {
                return value;
            }
            last = Some(value);
        }
        assert!(start.elapsed() < DEADLINE, "{what}: last seen {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The element at `css` once the page shows it, or panics naming `what`.
async fn element(client: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    wait_for(
        what,
        async || client.find(Locator::Css(css)).await.ok(),
        |_| true,
    )
    .await
}

async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

fn number(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}
/// A TV wall cannot scroll: on a 1920×1080 screen every channel's tile is in view.
async fn tiles_fit_a_wall_screen(client: &Client, what: &str) {
    let layout = client
        .execute(
            "const tiles = [...document.querySelectorAll('article.tile')];
             return { width: window.innerWidth, tiles: tiles.length,
                      bottom: Math.max(...tiles.map(t => t.getBoundingClientRect().bottom + window.scrollY)) };",
            vec![],
        )
        .await
        .expect("tile layout");
    assert_eq!(
        layout["width"], 1920,
        "{what}: the wall is laid out for 1920 px"
    );
    assert!(
        layout["tiles"].as_u64() >= Some(10),
        "{what}: every channel of the stream has a tile: {layout}"
    );
    assert!(
        layout["bottom"].as_f64() <= Some(1080.0),
        "{what}: the tiles end within a 1080-pixel screen: {layout}"
    );
}

async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(name), png).expect("write screenshot");
}

/// What every browser test runs on: a broker whose event topic holds simulated contacts,
/// `vigie serve` on it (with `extra` config), and chromedriver.
struct Rig {
    kafka: KafkaSettings,
    base: String,
    webdriver: String,
    vigie: Option<VigieProcess>,
    _driver: Killed,
    dir: tempfile::TempDir,
    _broker: Broker,
}

impl Rig {
    /// `contacts` contacts (simulator `seed`) arriving from `minutes_ago` on, already on
    /// the topic when Vigie starts. They end minutes ago: with the default
    /// `quiet_after` (2 min, `None`), the wall says "no event for …".
    async fn start(
        contacts: u64,
        seed: u64,
        minutes_ago: i64,
        quiet_after: Option<&str>,
        extra: &str,
    ) -> Rig {
        let broker = Broker::start();
        let kafka = kafka(&broker);
        create_topics(&kafka, 2).await;
        produce_contacts(&kafka, contacts, seed, minutes_ago).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let vigie = start_vigie(&kafka, dir.path(), quiet_after, extra);
        let (driver, webdriver) = start_chromedriver();
        Rig {
            kafka,
            base: vigie.base.clone(),
            webdriver,
            vigie: Some(vigie),
            _driver: driver,
            dir,
            _broker: broker,
        }
    }

    /// A new browser session with a profile of its own.
    async fn browser(&self, name: &str) -> Client {
        browser(
            &self.webdriver,
            &self.dir.path().join(format!("profile-{name}")),
        )
        .await
    }

    /// Kills `vigie serve` (the browsers stay).
    fn kill_vigie(&mut self) {
        self.vigie = None;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_live_numbers_that_follow_kafka_and_boots_into_its_url() {
    let mut rig = Rig::start(300, 101, 12, Some("1h"), "").await;
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
    let url = wall.current_url().await.expect("url");
    assert!(
        url.fragment().is_none(),
        "the token left the address bar: {url}"
    );

    produce_contacts(&rig.kafka, 200, 102, 6).await;
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
    let rig = Rig::start(200, 201, 10, Some("1h"), "").await;
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
    let rule = r#"
[alerts]
default_rules = false

[[alerts.rules]]
name = "abandon-test"
kpi = "abandon_rate"
comparison = "above"
threshold = 0.01
clear = 0.005
window = "15m"
for = "0s"
severity = "critical"
min_volume = 1
sinks = []
"#;
    let rig = Rig::start(300, 301, 10, None, rule).await;
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
