//! The limits of `[server]` through the public API: a flood of subscribe messages, of
//! distinct subscriptions, of websockets and of REST snapshots is refused with a clear
//! error naming the limit's key, counted in `vigie_limit_refusals_total`, and leaves
//! the server serving everyone else; breakdowns are capped to their busiest rows with
//! totals unchanged.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vigie::config::{AuthSettings, Role, ServerSettings, TokenSettings};
use vigie::engine::{Engine, EngineConfig, EngineSet};
use vigie::event::{EventKind, EventRecord};
use vigie::server::{sha256_hex, Auth};
use vigie_testkit::app::{ws_connect, ws_next_of, ws_send, WsClient};
use vigie_testkit::TestApp;

const DEADLINE: Duration = Duration::from_secs(10);

/// A value of a metric (labels included in `name`).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let (_, text) = app.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

/// `n` phone contacts arrived, each of its own reason `r0..`, the first ones most often.
fn feed_reasons(engine: &Engine, reasons: usize) {
    let mut n = 0;
    for r in 0..reasons {
        for _ in 0..(reasons - r) {
            let mut ev = EventRecord::new(
                format!("e{n}"),
                EventKind::Arrived,
                1_795_593_600_000 + n,
                format!("i{n}"),
            );
            ev.channel = Some("phone".into());
            ev.reason = Some(format!("r{r}").into());
            engine.apply(&ev);
            n += 1;
        }
    }
}

async fn spawn(limits: ServerSettings) -> (TestApp, Arc<Engine>) {
    let engines = Arc::new(EngineSet::new(EngineConfig::default()));
    let engine = engines.assign(0);
    let app = TestApp::builder()
        .engines(engines)
        .limits(limits)
        .spawn()
        .await;
    (app, engine)
}

/// The next message of type `error` or `snapshot`, whichever comes first.
async fn next_answer(client: &mut WsClient) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Message::Text(text) = client.next().await.expect("open").expect("frame") {
                let v: Value = serde_json::from_str(&text).expect("JSON");
                if v["type"] == "error" || v["type"] == "snapshot" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("an answer")
}

/// The snapshot of `window` (earlier ones skipped), or the error that came first.
async fn answer_for(client: &mut WsClient, window: &str) -> Value {
    loop {
        let answer = next_answer(client).await;
        if answer["type"] == "error" || answer["subscription"]["window"] == window {
            return answer;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_subscribe_messages_is_refused_past_the_burst_and_others_keep_their_frames() {
    let (app, engine) = spawn(ServerSettings {
        subscribe_burst: 5,
        // Next to nothing refills during the test: exactly the burst gets through.
        subscribe_per_second: 0.001,
        ..ServerSettings::default()
    })
    .await;
    feed_reasons(&engine, 5);
    let mut watcher = app.ws().await;
    ws_next_of(&mut watcher, "snapshot", DEADLINE).await;
    let mut flooder = app.ws().await;
    ws_next_of(&mut flooder, "snapshot", DEADLINE).await;
    for i in 0..50 {
        ws_send(
            &mut flooder,
            &json!({"type": "subscribe", "window": format!("{}s", 86_000 + i)}),
        )
        .await;
    }
    // The first five pass (each replacing the one before, computed or not), the others
    // are refused with the limit's key; the last one accepted is served.
    let mut refused = 0;
    let mut served = false;
    while refused < 45 || !served {
        let answer = next_answer(&mut flooder).await;
        if answer["type"] == "error" {
            assert_eq!(answer["code"], "too_many_messages", "{answer}");
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(message.contains("server.subscribe_per_second"), "{message}");
            refused += 1;
        } else {
            served |= answer["subscription"]["window"] == "86004s";
        }
    }
    assert_eq!(
        refused, 45,
        "the burst of 5 passed, the 45 others were refused"
    );
    assert_eq!(
        metric(
            &app,
            "vigie_limit_refusals_total{limit=\"server.subscribe_per_second\"}"
        )
        .await,
        45.0
    );
    // The flooder held one subscription at a time: the watcher's and its own.
    assert!(metric(&app, "vigie_websocket_subscriptions").await <= 2.0);
    // The watcher still gets its frames.
    feed_reasons(&engine, 7);
    let fresh = ws_next_of(&mut watcher, "snapshot", DEADLINE).await;
    assert!(
        fresh["snapshot"]["total"]["arrivals"].as_u64() > Some(15),
        "{fresh}"
    );
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_subscriptions_are_capped_per_caller_and_in_all() {
    let token = |name: &str| TokenSettings {
        name: name.into(),
        role: Role::Viewer,
        sha256: sha256_hex(&format!("{name}-token")),
    };
    let stop = CancellationToken::new();
    let auth = Auth::start(
        &AuthSettings {
            tokens: vec![token("ann"), token("bob")],
            ..AuthSettings::default()
        },
        stop.clone(),
    )
    .await
    .expect("auth");
    let app = TestApp::builder()
        .auth(auth)
        .shutdown(stop)
        .limits(ServerSettings {
            max_subscriptions: 3,
            max_subscriptions_per_caller: 2,
            ..ServerSettings::default()
        })
        .spawn()
        .await;
    let connect = |who: &str| {
        let url = format!("{}?access_token={who}-token", app.ws_url());
        async move { ws_connect(&url).await }
    };
    let subscribe = |window: &str| json!({"type": "subscribe", "window": window});
    let refusal = |frame: &Value, key: &str| {
        assert_eq!(frame["code"], "too_many_subscriptions", "{frame}");
        let message = frame["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("({key})")), "{message}");
    };
    // Ann holds two distinct subscriptions: the default (15m) and 1h.
    let mut ann1 = connect("ann").await;
    ws_next_of(&mut ann1, "status", DEADLINE).await;
    let mut ann2 = connect("ann").await;
    ws_send(&mut ann2, &subscribe("1h")).await;
    assert_eq!(
        answer_for(&mut ann2, "1h").await["subscription"]["window"],
        "1h"
    );
    // A third connection may share one of hers, not ask for a third one.
    let mut ann3 = connect("ann").await;
    ws_next_of(&mut ann3, "status", DEADLINE).await;
    ws_send(&mut ann3, &subscribe("60m")).await;
    assert_eq!(
        answer_for(&mut ann3, "1h").await["subscription"]["window"],
        "1h",
        "60m is 1h, hers"
    );
    ws_send(&mut ann3, &subscribe("2h")).await;
    refusal(
        &ws_next_of(&mut ann3, "error", DEADLINE).await,
        "server.max_subscriptions_per_caller",
    );
    // Bob adds 4h: three in all, the server's limit; then no fourth, even for him.
    let mut bob1 = connect("bob").await;
    ws_send(&mut bob1, &subscribe("4h")).await;
    assert_eq!(
        answer_for(&mut bob1, "4h").await["subscription"]["window"],
        "4h"
    );
    let mut bob2 = connect("bob").await;
    ws_next_of(&mut bob2, "status", DEADLINE).await;
    ws_send(&mut bob2, &subscribe("3h")).await;
    refusal(
        &ws_next_of(&mut bob2, "error", DEADLINE).await,
        "server.max_subscriptions",
    );
    let (_, metrics) = app.call("GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("vigie_websocket_subscriptions 3\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_capped_per_caller() {
    let (app, _engine) = spawn(ServerSettings {
        max_connections_per_caller: 2,
        ..ServerSettings::default()
    })
    .await;
    let first = app.ws().await;
    let _second = app.ws().await;
    let refused = tokio_tungstenite::connect_async(app.ws_url())
        .await
        .expect_err("a third websocket of the same caller");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 429);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("a JSON error");
            assert_eq!(body["code"], "too_many_connections", "{body}");
            assert!(body["message"]
                .as_str()
                .is_some_and(|m| m.contains("server.max_connections_per_caller")));
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    drop(first);
    vigie_testkit::eventually("the closed websocket is released", DEADLINE, || {
        app.limits.connections() == 1
    })
    .await;
    let _third = app.ws().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_snapshots_beyond_the_concurrency_limit_get_a_json_503() {
    let (app, engine) = spawn(ServerSettings {
        max_concurrent_snapshots: 2,
        snapshot_wait: Duration::from_millis(100),
        ..ServerSettings::default()
    })
    .await;
    feed_reasons(&engine, 3);
    let held = app
        .limits
        .hold_every_snapshot_permit()
        .expect("two permits");
    let response = app
        .client
        .get(app.url("/api/v1/snapshot"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "busy", "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("server.max_concurrent_snapshots")));
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "probes never wait for snapshots"
    );
    drop(held);
    let (status, snapshot) = app.get_json("/api/v1/snapshot").await;
    assert_eq!(
        (status, snapshot["total"]["arrivals"].as_u64()),
        (200, Some(6))
    );
    assert_eq!(
        metric(
            &app,
            "vigie_limit_refusals_total{limit=\"server.max_concurrent_snapshots\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_breakdown_keeps_its_busiest_rows_and_sums_the_others() {
    let (app, engine) = spawn(ServerSettings {
        breakdown_rows: 4,
        max_breakdown_rows: 10,
        ..ServerSettings::default()
    })
    .await;
    // Reasons r0..r11 with 12, 11, ..., 1 contacts: 78 in all.
    feed_reasons(&engine, 12);
    let (status, s) = app.get_json("/api/v1/snapshot?window=24h&by=reason").await;
    assert_eq!(status, 200, "{s}");
    let rows = s["breakdown"].as_array().expect("rows");
    let reasons: Vec<&str> = rows
        .iter()
        .map(|r| r["key"]["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["r0", "r1", "r2", "(other)"],
        "the three busiest, then the rest"
    );
    let arrivals: Vec<u64> = rows
        .iter()
        .map(|r| r["kpis"]["arrivals"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(arrivals, [12, 11, 10, 45]);
    assert_eq!(s["total"]["arrivals"], 78, "totals never change");
    let (_, s) = app
        .get_json("/api/v1/snapshot?window=24h&by=reason&rows=10")
        .await;
    assert_eq!(s["breakdown"].as_array().map(Vec::len), Some(10));
    let (status, e) = app
        .get_json("/api/v1/snapshot?window=24h&by=reason&rows=11")
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("bad_query")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.max_breakdown_rows")),
        "{e}"
    );
}
