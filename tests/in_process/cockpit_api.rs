//! What the cockpit gets from the server, through a real HTTP client and websocket:
//! its bundle on every non-API path, `/api/v1/cockpit` (caller, targets, filter values)
//! and the last-hour trend pushed on the websocket.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use vigie::config::{CockpitSettings, Settings};
use vigie::engine::{EngineConfig, EngineSet};
use vigie::server::cockpit::Cockpit;
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::TestApp;

/// The API serving the cockpit of `settings`, on `engines`.
async fn spawn(settings: &Settings, engines: Arc<EngineSet>) -> TestApp {
    TestApp::builder()
        .engines(engines)
        .cockpit(Cockpit::from_settings(settings))
        .spawn()
        .await
}

fn fed_engines(contacts: u64) -> Arc<EngineSet> {
    let engines = Arc::new(EngineSet::new(EngineConfig::default()));
    let engine = engines.assign(0);
    for ev in Simulator::new(SimulationConfig {
        contacts: Some(contacts),
        seed: 7,
        ..SimulationConfig::default()
    }) {
        engine.apply(&ev);
    }
    engines
}

#[tokio::test]
async fn the_bundle_is_served_on_every_page_path_and_the_api_keeps_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<html>cockpit page</html>").expect("write");
    std::fs::write(dir.path().join("app.wasm"), b"\0asm wasm bytes").expect("write");
    let settings = Settings {
        cockpit: CockpitSettings {
            dir: Some(dir.path().to_path_buf()),
            ..CockpitSettings::default()
        },
        ..Settings::default()
    };
    let app = spawn(&settings, Arc::new(EngineSet::new(EngineConfig::default()))).await;
    let base = &app.base;
    let client = reqwest::Client::new();
    for path in ["/", "/switchboard", "/wall?window=1h&site=lyon"] {
        let response = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.text().await.expect("body"),
            "<html>cockpit page</html>",
            "{path}"
        );
    }
    let wasm = client
        .get(format!("{base}/app.wasm"))
        .send()
        .await
        .expect("get");
    assert_eq!(wasm.status(), 200);
    assert_eq!(
        wasm.headers()[reqwest::header::CONTENT_TYPE],
        "application/wasm",
        "browsers compile wasm streams only with this type"
    );
    let missing = client
        .get(format!("{base}/api/v1/nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("JSON error");
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn without_a_bundle_pages_say_how_to_build_it() {
    let mut cockpit = Cockpit::from_settings(&Settings::default());
    cockpit.dir = None;
    let app = TestApp::builder().cockpit(cockpit).spawn().await;
    let response = reqwest::get(app.url("/")).await.expect("get");
    assert_eq!(response.status(), 503);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("scripts/build-cockpit.sh"));
}

#[tokio::test]
async fn cockpit_info_has_the_caller_targets_and_filter_values() {
    let mut settings = Settings::default();
    settings.cockpit.answer_rate_target = 0.85;
    let app = spawn(&settings, fed_engines(400)).await;
    let info: vigie_proto::CockpitInfo = reqwest::get(app.url("/api/v1/cockpit"))
        .await
        .expect("get")
        .json()
        .await
        .expect("cockpit info");
    let me = info.me.expect("caller");
    assert_eq!(
        (me.name.as_str(), me.role),
        ("local", vigie_proto::Role::Admin)
    );
    assert_eq!(info.targets.answer_rate, 0.85);
    assert_eq!(info.targets.channels["phone"].threshold_ms, 20_000);
    let sites = &info.dimensions["site"];
    assert!(!sites.is_empty(), "the simulator's sites are offered");
    assert!(sites.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert!(info.dimensions["channel"].contains(&"phone".to_string()));
}

#[tokio::test]
async fn the_websocket_pushes_the_last_hour_trend_of_the_subscription() {
    let engines = fed_engines(3_000);
    let app = spawn(&Settings::default(), engines.clone()).await;
    let mut socket = app.ws().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let trend = loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a trend message before the deadline")
            .expect("open")
            .expect("frame");
        let value: Value = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
        if value["type"] == "trend" {
            break value;
        }
    };
    assert_eq!(trend["subscription"]["window"], "15m");
    let trend: vigie_proto::Trend = serde_json::from_value(trend["trend"].clone()).expect("trend");
    assert_eq!(trend.times.len(), 60);
    assert_eq!(trend.step_ms, 60_000);
    // The newest point is the live 15-minute window itself.
    let snapshot = engines
        .snapshot(&vigie::engine::SnapshotQuery::default())
        .expect("snapshot");
    assert_eq!(
        trend.total.last().copied(),
        Some(vigie_proto::TrendPoint::of(&snapshot.total))
    );
    assert!(trend.by_channel.contains_key("phone"));
}
