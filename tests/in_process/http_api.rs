//! The HTTP API through a real HTTP client: snapshot equal to `vigie replay`, JSON
//! errors for every bad request, readiness while rebuilding, Prometheus metrics, and
//! the route table served and documented.

use std::sync::Arc;

use serde_json::Value;
use vigie::engine::{SnapshotQuery, WindowSpec};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::TestApp;

fn feed(app: &TestApp, contacts: u64) -> Arc<vigie::engine::Engine> {
    let engine = app.engines.assign(0);
    for ev in Simulator::new(SimulationConfig {
        contacts: Some(contacts),
        seed: 31,
        ..SimulationConfig::default()
    }) {
        engine.apply(&ev);
    }
    engine
}

#[tokio::test]
async fn the_snapshot_endpoint_returns_the_replay_snapshot() {
    let app = TestApp::spawn().await;
    let engine = feed(&app, 800);
    for (path, window) in [
        ("/api/v1/snapshot", "15m"),
        ("/api/v1/snapshot?window=1h", "1h"),
        ("/api/v1/snapshot?window=today", "today"),
    ] {
        let (status, got) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}: {got}");
        let want = engine
            .snapshot(&SnapshotQuery {
                window: window.parse::<WindowSpec>().expect("window"),
                ..SnapshotQuery::default()
            })
            .expect("snapshot");
        // Through the same text → Value parse on both sides (serde_json's fast float
        // parsing may differ from a direct to_value by one unit in the last place).
        let want: Value =
            serde_json::from_str(&serde_json::to_string(&want).expect("json")).expect("parse");
        assert!(got == want, "{path}: the API and the engine disagree");
    }
    let (_, all) = app.get_json("/api/v1/snapshot?window=1h").await;
    let (_, phone) = app
        .get_json("/api/v1/snapshot?window=1h&channel=phone")
        .await;
    assert_eq!(
        phone["total"], all["by_channel"]["phone"],
        "a channel filter gives that channel's numbers"
    );
    let (_, by) = app
        .get_json("/api/v1/snapshot?window=1h&by=channel,site")
        .await;
    let rows = by["breakdown"].as_array().expect("breakdown");
    let sum: u64 = rows
        .iter()
        .map(|r| r["kpis"]["arrivals"].as_u64().expect("n"))
        .sum();
    assert_eq!(Some(sum), all["total"]["arrivals"].as_u64());
}

#[tokio::test]
async fn bad_requests_get_a_json_error_saying_what_is_wrong() {
    let app = TestApp::spawn().await;
    for (path, status, code, needle) in [
        (
            "/api/v1/snapshot?window=soon",
            400,
            "bad_window",
            "neither a duration",
        ),
        (
            "/api/v1/snapshot?window=30d",
            400,
            "bad_window",
            "engine.max_window",
        ),
        (
            "/api/v1/snapshot?window=1500ms",
            400,
            "bad_window",
            "whole number of seconds",
        ),
        (
            "/api/v1/snapshot?by=planet",
            400,
            "bad_query",
            "unknown dimension \"planet\"",
        ),
        ("/api/v1/snapshot?colour=blue", 400, "bad_query", "colour"),
        ("/api/v1/nothing", 404, "not_found", "/api/v1/nothing"),
    ] {
        let (got_status, body) = app.get_json(path).await;
        assert_eq!(got_status, status, "{path}: {body}");
        assert_eq!(body["status"], status, "{path}");
        assert_eq!(body["code"], code, "{path}");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(needle), "{path}: {message}");
    }
    // A method a route does not have (found by scripts/fuzz-api.sh: axum's own 405 was empty).
    for (method, path) in [("TRACE", "/healthz"), ("DELETE", "/api/v1/snapshot")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = reqwest::Client::new()
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        let body: serde_json::Value = response.json().await.expect("a JSON error");
        assert_eq!(
            body["code"], "method_not_allowed",
            "{method} {path}: {body}"
        );
        assert_eq!(body["status"], 405);
    }
}

#[tokio::test]
async fn readiness_follows_the_rebuild() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "no partition assigned yet: {body}");
    app.status.track(0, 100, 300);
    app.status.advance(0, 199);
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["rebuilding"].as_f64(), Some(0.5));
    app.status.advance(0, 299);
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn metrics_expose_the_counters_in_prometheus_format() {
    let app = TestApp::spawn().await;
    let engine = feed(&app, 300);
    app.status.track(0, 0, 10);
    app.status.set_lag(0, 7);
    app.status
        .consumed
        .store(1234, std::sync::atomic::Ordering::Relaxed);
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
            .parse()
            .expect("number")
    };
    assert_eq!(value("vigie_events_consumed_total"), 1234.0);
    assert_eq!(value("vigie_consumer_lag{partition=\"0\"}"), 7.0);
    assert_eq!(value("vigie_rebuild_progress"), 0.0);
    assert_eq!(
        value("vigie_partitions_assigned"),
        1.0,
        "partition 0 tracked above"
    );
    assert_eq!(value("vigie_ready"), 0.0);
    let duplicates = engine
        .stats()
        .duplicates
        .load(std::sync::atomic::Ordering::Relaxed) as f64;
    assert!(duplicates > 0.0);
    assert_eq!(value("vigie_duplicate_events_total"), duplicates);
    assert_eq!(
        value("vigie_tracked_customers"),
        engine.tracked_customers() as f64
    );
    assert!(text.contains("# TYPE vigie_events_consumed_total counter"));
}

/// Every route of the table is served by the router (with its method), and the OpenAPI
/// document served lists exactly the table: a route added beside the table, or a
/// handler behind the wrong method, fails here.
#[tokio::test]
async fn every_route_of_the_table_is_served_and_documented() {
    let app = TestApp::spawn().await;
    let routes = vigie::server::routes();
    assert!(routes.len() >= 14, "{routes:?}");
    for route in &routes {
        let path = route.path.replace("{id}", "x");
        let (status, body) = app.call(route.method.as_str(), &path, None, None).await;
        assert_ne!(status, 405, "{route}: method not routed: {body}");
        // Unrouted paths under /api/ are JSON 404s naming the route; a routed one may
        // answer 404 for an unknown id, never "no route".
        assert!(
            !body.contains("no route for"),
            "{route}: not routed: {body}"
        );
        if !path.starts_with("/api/") {
            assert!(
                !body.contains("<!doctype html>"),
                "{route}: got the cockpit page"
            );
        }
    }
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    let mut routed: Vec<String> = routes.iter().map(ToString::to_string).collect();
    routed.sort();
    assert_eq!(documented, routed);
}
