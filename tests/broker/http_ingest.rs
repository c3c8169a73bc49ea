//! `POST /api/v1/events` through `vigie serve` on a real broker (Tansu): a producer with
//! the `ingest` role posts JSON lines and arrays of events; bad records come back with
//! their index, field and why, the rest reach Kafka, and the server then shows exactly
//! what `vigie replay` gives for them. Viewers and supervisors may not post; batches over
//! the limits are refused whole.

use std::time::Duration;

use serde_json::Value;
use vigie::config::{Role, Settings, TokenSettings};
use vigie::event::to_json;
use vigie::server::sha256_hex;
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::broker::create_topics;
use vigie_testkit::serve::replay_kpis;
use vigie_testkit::{Broker, VigieServe};

const INGEST: &str = "ingest-token";
const VIEWER: &str = "viewer-token";
const SUPERVISOR: &str = "supervisor-token";

async fn post(serve: &VigieServe, token: Option<&str>, body: String) -> (u16, Value) {
    let mut request = serve
        .client
        .post(format!("{}/api/v1/events", serve.base))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_token_posts_events_that_serve_counts_as_replay_does() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = |name: &str, role, secret: &str| TokenSettings {
        name: name.into(),
        role,
        sha256: sha256_hex(secret),
    };
    let mut settings = Settings {
        kafka: broker.kafka(),
        ..Settings::default()
    };
    settings.auth.tokens = vec![
        token("crm-bridge", Role::Ingest, INGEST),
        token("wall", Role::Viewer, VIEWER),
        token("ann", Role::Supervisor, SUPERVISOR),
    ];
    settings.auth.mutations_per_minute = 0;
    settings.server.max_ingest_records = 100;
    settings.server.max_ingest_body = 64 * 1024;
    create_topics(&settings.kafka, 2).await;
    let serve = VigieServe::start(dir.path(), "vigie", &settings);

    let lines: Vec<String> = Simulator::new(SimulationConfig {
        seed: 3,
        contacts: Some(150),
        start_ms: jiff::Timestamp::now().as_millisecond() - 3_600_000,
        contacts_per_second: 0.1,
        ..SimulationConfig::default()
    })
    .map(|e| to_json(&e))
    .collect();
    assert!(lines.len() > 300, "{} events", lines.len());

    // Not a producer's token: refused, whatever the role.
    let one = lines[0].clone();
    assert_eq!(post(&serve, None, one.clone()).await.0, 401);
    for other in [VIEWER, SUPERVISOR] {
        let (status, body) = post(&serve, Some(other), one.clone()).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "forbidden", "{body}");
    }

    // The first batch as JSON lines with two bad records and a blank line among them.
    let (first, rest) = lines.split_at(60);
    let mut batch = first.to_vec();
    batch.insert(
        10,
        r#"{"event_id":"x1","type":"arrived","interaction_id":"i","channel":"phone"}"#.into(),
    );
    batch.insert(20, String::new());
    batch.insert(
        30,
        r#"{"event_id":"x2","type":"teleported","ts":"2026-12-01T10:00:00Z","interaction_id":"i"}"#
            .into(),
    );
    let (status, report) = post(&serve, Some(INGEST), batch.join("\n")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 60, "{report}");
    assert_eq!(report["rejected"], 2, "{report}");
    assert_eq!(report["errors"][0]["index"], 10);
    assert_eq!(report["errors"][0]["field"], "ts");
    assert_eq!(
        report["errors"][1]["index"], 30,
        "its line, the blank one counted"
    );
    assert_eq!(report["errors"][1]["field"], "type");

    // The others as JSON arrays of at most 100 records.
    for chunk in rest.chunks(100) {
        let array = format!("[{}]", chunk.join(","));
        let (status, report) = post(&serve, Some(INGEST), array).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["accepted"], chunk.len(), "{report}");
    }
    // Over the limits: refused whole, the key named.
    let too_many = format!("[{}]", lines[..101].join(","));
    let (status, body) = post(&serve, Some(INGEST), too_many).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.max_ingest_records")),
        "{body}"
    );
    let (status, _) = post(&serve, Some(INGEST), "x".repeat(70 * 1024)).await;
    assert_eq!(status, 413);
    let (status, body) = post(&serve, Some(INGEST), "{not json".into()).await;
    assert_eq!(
        (status, body["rejected"].as_u64()),
        (200, Some(1)),
        "{body}"
    );

    // What serve shows is what replay gives for the accepted records.
    let file = dir.path().join("accepted.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let expected = replay_kpis(&["--window", "1h"], &file);
    serve
        .shows("1h", Some(VIEWER), &expected, Duration::from_secs(60))
        .await;
    assert_eq!(
        serve.metric("vigie_http_events_ingested_total").await,
        Some(lines.len() as f64)
    );
}
