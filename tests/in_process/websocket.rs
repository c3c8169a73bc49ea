//! The websocket push (`/api/v1/ws`) through a real websocket client: snapshot and
//! status on connect, a push after events are applied, subscriptions with filters,
//! clear errors for bad messages, and a close frame with a reason at shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use vigie::engine::{Engine, EngineConfig, EngineSet};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::app::{ws_next_of, WsClient as Client};
use vigie_testkit::TestApp;

const DEADLINE: Duration = Duration::from_secs(10);
/// For the large snapshots of the slow-client test.
const SLOW_FRAMES: Duration = Duration::from_secs(30);

/// The API with one partition's engine (assigned, so snapshots include it).
async fn spawn() -> (TestApp, Arc<Engine>) {
    let engines = Arc::new(EngineSet::new(EngineConfig::default()));
    let engine = engines.assign(0);
    (TestApp::builder().engines(engines).spawn().await, engine)
}

async fn connect(app: &TestApp) -> Client {
    app.ws().await
}

/// The next JSON message whose `type` is `kind` (others, e.g. heartbeats, are skipped).
async fn next_of(client: &mut Client, kind: &str) -> Value {
    ws_next_of(client, kind, DEADLINE).await
}

fn simulated(contacts: u64, seed: u64) -> Vec<vigie::event::EventRecord<'static>> {
    Simulator::new(SimulationConfig {
        seed,
        contacts: Some(contacts),
        ..SimulationConfig::default()
    })
    .collect()
}

#[tokio::test]
async fn a_client_gets_status_and_snapshot_then_every_change() {
    let (app, engine) = spawn().await;
    let mut client = connect(&app).await;
    let status = next_of(&mut client, "status").await;
    assert_eq!(
        status["live"], false,
        "nothing assigned or rebuilt: {status}"
    );
    let first = next_of(&mut client, "snapshot").await;
    assert_eq!(first["subscription"]["window"], "15m");
    assert_eq!(first["snapshot"]["total"]["arrivals"], 0);

    let events = simulated(400, 41);
    for ev in &events {
        engine.apply(ev);
    }
    let want = engine
        .snapshot(&vigie::engine::SnapshotQuery::default())
        .expect("snapshot");
    // Pushed without asking: the latest state, possibly after intermediate ones.
    let pushed = tokio::time::timeout(DEADLINE, async {
        loop {
            let s = next_of(&mut client, "snapshot").await;
            if s["snapshot"]["watermark"] == json!(want.watermark) {
                return s;
            }
        }
    })
    .await
    .expect("the applied events are pushed");
    assert_eq!(pushed["snapshot"]["total"]["arrivals"], want.total.arrivals);
    assert_eq!(pushed["snapshot"]["window"]["to"], want.window.to);
    app.stop.cancel();
}

#[tokio::test]
async fn subscriptions_choose_the_window_and_filters() {
    let (app, engine) = spawn().await;
    for ev in &simulated(600, 42) {
        engine.apply(ev);
    }
    let mut client = connect(&app).await;
    let unfiltered = next_of(&mut client, "snapshot").await;
    client
        .send(Message::text(
            json!({"type": "subscribe", "window": "1h", "channel": "phone"}).to_string(),
        ))
        .await
        .expect("send");
    let phone = next_of(&mut client, "snapshot").await;
    assert_eq!(
        phone["subscription"],
        json!({"window": "1h", "channel": "phone"})
    );
    assert_eq!(
        phone["snapshot"]["window"]["to"].as_i64().expect("to")
            - phone["snapshot"]["window"]["from"].as_i64().expect("from"),
        3_600_000
    );
    let one_hour = engine
        .snapshot(&vigie::engine::SnapshotQuery {
            window: "1h".parse().expect("window"),
            ..Default::default()
        })
        .expect("snapshot");
    assert_eq!(
        phone["snapshot"]["total"]["arrivals"],
        one_hour.by_channel["phone"].arrivals
    );
    assert_ne!(
        phone["snapshot"]["total"]["arrivals"],
        unfiltered["snapshot"]["total"]["arrivals"]
    );
    app.stop.cancel();
}

/// The switchboard's pressure table: one channel broken down by contact reason, pushed.
#[tokio::test]
async fn a_subscription_can_break_the_snapshot_down() {
    let (app, engine) = spawn().await;
    for ev in &simulated(800, 43) {
        engine.apply(ev);
    }
    let mut client = connect(&app).await;
    next_of(&mut client, "snapshot").await;
    client
        .send(Message::text(
            json!({"type": "subscribe", "channel": "phone", "by": ["reason"]}).to_string(),
        ))
        .await
        .expect("send");
    let pushed = next_of(&mut client, "snapshot").await;
    assert_eq!(pushed["subscription"]["by"], json!(["reason"]));
    let want = engine
        .snapshot(&vigie::engine::SnapshotQuery {
            filter: vigie::engine::DimensionFilter::from_key(vigie_proto::DimensionKey {
                channel: Some("phone".into()),
                ..Default::default()
            }),
            breakdown: vec![vigie::engine::Dimension::Reason],
            ..Default::default()
        })
        .expect("snapshot");
    assert!(want.breakdown.len() > 2, "several reasons: {want:?}");
    let got: Vec<vigie_proto::Breakdown> =
        serde_json::from_value(pushed["snapshot"]["breakdown"].clone()).expect("breakdown");
    assert_eq!(got, want.breakdown);
    assert!(got
        .iter()
        .all(|b| b.key.reason.is_some() && b.key.channel.is_none()));
    assert_eq!(
        got.iter().map(|b| b.kpis.arrivals).sum::<u64>(),
        want.total.arrivals,
        "every phone contact in exactly one reason"
    );
    app.stop.cancel();
}

#[tokio::test]
async fn bad_client_messages_get_an_error_and_the_connection_stays() {
    let (app, _engine) = spawn().await;
    let mut client = connect(&app).await;
    next_of(&mut client, "snapshot").await;
    for (message, code, needle) in [
        (
            json!({"type": "subscribe", "window": "soon"}).to_string(),
            "bad_window",
            "neither a duration",
        ),
        (
            json!({"type": "subscribe", "by": ["reason", "motif"]}).to_string(),
            "bad_query",
            "unknown dimension \"motif\"",
        ),
        (json!({"type": "dance"}).to_string(), "bad_message", "dance"),
        (
            "not json".to_string(),
            "bad_message",
            "not a client message",
        ),
    ] {
        client.send(Message::text(message)).await.expect("send");
        let error = next_of(&mut client, "error").await;
        assert_eq!(error["code"], code);
        assert!(
            error["message"].as_str().expect("message").contains(needle),
            "{error}"
        );
    }
    client
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(next_of(&mut client, "error").await["code"], "bad_message");
    client
        .send(Message::text(
            json!({"type": "subscribe", "window": "today"}).to_string(),
        ))
        .await
        .expect("send");
    assert_eq!(
        next_of(&mut client, "snapshot").await["subscription"]["window"],
        "today"
    );
    app.stop.cancel();
}

#[tokio::test]
async fn status_messages_follow_the_rebuild() {
    let (app, _engine) = spawn().await;
    let mut client = connect(&app).await;
    assert_eq!(next_of(&mut client, "status").await["live"], false);
    app.status.track(0, 0, 100);
    app.status.advance(0, 49);
    let status = next_of(&mut client, "status").await;
    assert_eq!(status["rebuilding"], 0.5, "{status}");
    app.status.advance(0, 99);
    let status = next_of(&mut client, "status").await;
    assert_eq!(status["live"], true, "{status}");
    assert!(status["rebuilding"].is_null());
    app.stop.cancel();
}

#[tokio::test]
async fn shutdown_closes_websockets_with_a_reason() {
    let (app, _engine) = spawn().await;
    let mut client = connect(&app).await;
    next_of(&mut client, "snapshot").await;
    app.stop.cancel();
    let frame = tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("close frame with a reason");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "server shutting down");
}

/// A client that stops reading is disconnected with a reason, and does not slow others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_with_a_reason() {
    let (app, engine) = spawn().await;
    // Many queues make each snapshot large (hundreds of KB), so buffers fill fast.
    let big_stream = |seed: u64, from: usize| {
        (from..from + 3_000).map(move |n| {
            let mut ev = vigie::event::EventRecord::new(
                format!("{seed}-{n}"),
                vigie::event::EventKind::Arrived,
                1_795_593_600_000 + n as i64,
                format!("i{seed}-{n}"),
            );
            ev.channel = Some("phone".into());
            ev.queue = Some(format!("queue-{n}").into());
            ev.into_owned()
        })
    };
    for ev in big_stream(0, 0) {
        engine.apply(&ev);
    }

    // The stalled client: a tiny receive buffer, and it never reads.
    let addr = app.addr().to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let (mut stalled, _) = tokio_tungstenite::client_async(app.ws_url(), stream)
        .await
        .expect("handshake");
    let mut healthy = connect(&app).await;
    next_of(&mut healthy, "snapshot").await;

    // Keep changing the numbers: every tick publishes a new large snapshot.
    let feeder = engine.clone();
    // For as long as the loop below may wait (60 s), not less: aborted once detected.
    let feeding = tokio::spawn(async move {
        for round in 1..1_200u64 {
            for ev in big_stream(round, (round as usize % 3) * 1_000).take(50) {
                feeder.apply(&ev);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // The server notices the stalled client and closes it (counted in the metrics)...
    let metrics_url = format!("http://{addr}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::get(&metrics_url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("vigie_websocket_slow_clients_closed_total 1\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled client was never closed:\n{text}"
        );
        // ...while the healthy client keeps getting fresh snapshots (each of thousands of
        // queues: a debug build sharing 2 cores with other tests can take seconds a frame).
        ws_next_of(&mut healthy, "snapshot", SLOW_FRAMES).await;
    }
    ws_next_of(&mut healthy, "snapshot", SLOW_FRAMES).await;
    feeding.abort();
    // The stalled client, reading at last, finds the connection closed (with the reason,
    // if the close frame got through before the server gave up on it).
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    })
    .await
    .expect("the stalled connection ends");
    if let Some(frame) = end {
        assert_eq!(u16::from(frame.code), 1008);
        assert_eq!(frame.reason.as_str(), "client too slow: not reading");
    }
    app.stop.cancel();
}
