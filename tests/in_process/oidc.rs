//! OIDC bearer JWTs through the public API, against a fake issuer on loopback (discovery
//! and JWKS served by axum, test keys in tests/fixtures/oidc): roles from a claim, the
//! caller's name in the audit, every kind of bad token refused with what is wrong, key
//! rotation, periodic refresh, and websockets.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vigie::config::{AuthSettings, KafkaSettings, OidcSettings};
use vigie::deflection::SwitchStore;
use vigie::server::Auth;
use vigie_testkit::issuer::{now, Issuer, AUDIENCE};
use vigie_testkit::{eventually, Broker, TestApp};

const DEADLINE: Duration = Duration::from_secs(30);

/// The API with OIDC only (no hashed token), and switches when a broker is given.
async fn spawn(oidc: OidcSettings, kafka: Option<&KafkaSettings>) -> TestApp {
    let stop = CancellationToken::new();
    let auth = Auth::start(
        &AuthSettings {
            oidc: Some(oidc),
            ..AuthSettings::default()
        },
        stop.clone(),
    )
    .await
    .expect("auth");
    let mut app = TestApp::builder().auth(auth).shutdown(stop.clone());
    if let Some(kafka) = kafka {
        let store = SwitchStore::start(kafka, stop).await.expect("switch store");
        app = app.switches(store);
    }
    app.spawn().await
}

/// (status, JSON body or null) of a GET, or of a PUT of `body`, with `token`.
async fn call(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let method = if body.is_some() { "PUT" } else { "GET" };
    let (status, text) = app.call(method, path, Some(token), body.as_ref()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.1
}

fn flip(on: bool, version: u64) -> Value {
    json!({"channel": "phone", "reason": "billing", "target": "visual_ivr",
           "on": on, "why": "phone queue degraded", "expected_version": version})
}

/// Asserts a JSON error of `status` whose message contains `needle`.
fn refused(got: (u16, Value), status: u16, needle: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(got.1["status"], status, "{what}: {}", got.1);
    let message = got.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: {message:?} should say {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_jwt_flips_a_switch_and_the_audit_names_the_caller() {
    let broker = Broker::start();
    let kafka = broker.kafka();
    let issuer = Issuer::start(&["rsa-1", "ec-1"]).await;
    let app = spawn(issuer.settings(), Some(&kafka)).await;

    let marie = issuer.token("marie.dupont", &["offline_access", "vigie-supervisor"]);
    let (status, body) = call(
        &app,
        "/api/v1/switches/phone-billing",
        &marie,
        Some(flip(true, 0)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed_by"], "marie.dupont", "{body}");

    // A viewer reads but may not flip.
    let wall = issuer.token("wall-paris", &["vigie-viewer"]);
    let (status, list) = call(&app, "/api/v1/switches", &wall, None).await;
    assert_eq!(status, 200, "{list}");
    refused(
        call(
            &app,
            "/api/v1/switches/phone-billing",
            &wall,
            Some(flip(false, 1)),
        )
        .await,
        403,
        "supervisor",
        "viewer flips",
    );

    // ES256, and the name falls back to `sub` without `preferred_username`: admin wins
    // over viewer when both are held.
    let mut claims = issuer.claims("ignored", &["vigie-viewer", "vigie-admin"]);
    claims
        .as_object_mut()
        .expect("object")
        .remove("preferred_username");
    let admin = issuer.mint("ec-1", &claims);
    let (status, body) = call(
        &app,
        "/api/v1/switches/phone-billing",
        &admin,
        Some(flip(false, 1)),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, trail) = call(&app, "/api/v1/audit?switch=phone-billing", &admin, None).await;
    assert_eq!(status, 200, "{trail}");
    let authors: Vec<&str> = trail["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["who"].as_str())
        .collect();
    assert!(
        authors.contains(&"marie.dupont") && authors.contains(&"sub-ignored"),
        "{trail}"
    );
}

#[tokio::test]
async fn bad_jwts_are_refused_saying_what_is_wrong() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let app = spawn(issuer.settings(), None).await;
    let snapshot = "/api/v1/snapshot";
    let ok = issuer.token("ann", &["vigie-viewer"]);
    assert_eq!(call(&app, snapshot, &ok, None).await.0, 200);

    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = issuer.claims("ann", &["vigie-viewer"]);
        change(claims.as_object_mut().expect("object"));
        issuer.mint("rsa-1", &claims)
    };
    // An `exp` beyond what a SystemTime holds: valid, never expiring, no panic (REST and
    // the websocket, which closes at expiry).
    for exp in [u64::MAX, 1 << 63] {
        let far = with(&|c| {
            c.insert("exp".into(), json!(exp));
        });
        assert_eq!(call(&app, snapshot, &far, None).await.0, 200, "exp {exp}");
        let url = format!("{}?access_token={far}", app.ws_url());
        assert!(
            tokio_tungstenite::connect_async(url).await.is_ok(),
            "websocket with exp {exp}"
        );
    }
    let expired = with(&|c| {
        c.insert("exp".into(), json!(now() - 600));
    });
    refused(
        call(&app, snapshot, &expired, None).await,
        401,
        "expired",
        "expired",
    );
    let other_audience = with(&|c| {
        c.insert("aud".into(), json!("another-api"));
    });
    refused(
        call(&app, snapshot, &other_audience, None).await,
        401,
        &format!("audience (aud) does not include {AUDIENCE:?}"),
        "wrong audience",
    );
    let other_issuer = with(&|c| {
        c.insert("iss".into(), json!("https://evil.example"));
    });
    refused(
        call(&app, snapshot, &other_issuer, None).await,
        401,
        &format!("not issued by {}", issuer.url),
        "wrong issuer",
    );
    let not_yet = with(&|c| {
        c.insert("nbf".into(), json!(now() + 600));
    });
    refused(
        call(&app, snapshot, &not_yet, None).await,
        401,
        "not valid yet",
        "nbf",
    );
    // Claims changed after signing (a viewer making itself admin).
    let (head, rest) = ok.split_once('.').expect("JWT");
    let signature = rest.split_once('.').expect("JWT").1;
    let forged_claims = {
        use base64_claims::encode;
        encode(&issuer.claims("ann", &["vigie-admin"]))
    };
    let tampered = format!("{head}.{forged_claims}.{signature}");
    refused(
        call(&app, snapshot, &tampered, None).await,
        401,
        "signature does not verify",
        "tampered",
    );
    // Signed by a key the issuer does not publish.
    let fetches = issuer.jwks_fetches.load(Relaxed);
    let unknown = issuer.mint("rsa-2", &issuer.claims("ann", &["vigie-viewer"]));
    refused(
        call(&app, snapshot, &unknown, None).await,
        401,
        "kid \"rsa-2\"",
        "unknown kid",
    );
    assert_eq!(
        issuer.jwks_fetches.load(Relaxed),
        fetches + 1,
        "an unknown kid fetches the keys again"
    );
    refused(
        call(&app, snapshot, &unknown, None).await,
        401,
        "kid \"rsa-2\"",
        "unknown kid again",
    );
    assert_eq!(
        issuer.jwks_fetches.load(Relaxed),
        fetches + 1,
        "at most one fetch per jwks_min_interval"
    );
    // An algorithm that is not allowed (a shared secret).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &issuer.claims("ann", &["vigie-admin"]),
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .expect("sign");
    refused(call(&app, snapshot, &hs, None).await, 401, "HS256", "HS256");
    refused(
        call(&app, snapshot, "not.a.jwt", None).await,
        401,
        "not a well-formed JWT",
        "garbage",
    );
    // Valid, but no role of Vigie.
    let no_role = issuer.token("bob", &["offline_access"]);
    refused(
        call(&app, snapshot, &no_role, None).await,
        403,
        "\"bob\" has no Vigie role",
        "no role",
    );

    let metrics = metrics(&app).await;
    for line in [
        "vigie_auth_failures_total{reason=\"expired\"} 1",
        "vigie_auth_failures_total{reason=\"audience\"} 1",
        "vigie_auth_failures_total{reason=\"issuer\"} 1",
        "vigie_auth_failures_total{reason=\"signature\"} 1",
        "vigie_auth_failures_total{reason=\"unknown_kid\"} 2",
        "vigie_auth_failures_total{reason=\"algorithm\"} 1",
        "vigie_auth_failures_total{reason=\"no_role\"} 1",
        "vigie_oidc_signing_keys 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// The base64url of a JSON value, as in a JWT's middle part.
mod base64_claims {
    pub fn encode(value: &serde_json::Value) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = serde_json::to_vec(value).expect("JSON");
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let app = spawn(issuer.settings(), None).await;
    let old = issuer.token("ann", &["vigie-viewer"]);
    assert_eq!(call(&app, "/api/v1/snapshot", &old, None).await.0, 200);
    let fetched = issuer.jwks_fetches.load(Relaxed);

    issuer.publish(&["rsa-2"]);
    let new = issuer.mint("rsa-2", &issuer.claims("ann", &["vigie-viewer"]));
    let (status, body) = call(&app, "/api/v1/snapshot", &new, None).await;
    assert_eq!(status, 200, "new key accepted after a fetch: {body}");
    assert_eq!(issuer.jwks_fetches.load(Relaxed), fetched + 1);
    refused(
        call(&app, "/api/v1/snapshot", &old, None).await,
        401,
        "kid \"rsa-1\"",
        "the retired key",
    );
}

#[tokio::test]
async fn the_keys_are_refreshed_periodically() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let mut settings = issuer.settings();
    settings.jwks_refresh = Duration::from_millis(200);
    settings.jwks_min_interval = Duration::from_secs(3_600);
    let _app = spawn(settings, None).await;
    let fetches = issuer.jwks_fetches.clone();
    eventually("three periodic fetches", DEADLINE, || {
        fetches.load(Relaxed) >= 3
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_issuer_answers_503_without_internals() {
    // Keys at an address nothing listens on: the API starts anyway.
    let issuer = Issuer::start(&["rsa-1"]).await;
    let mut settings = issuer.settings();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/certs", closed.local_addr().expect("addr"));
    drop(closed);
    settings.jwks_url = Some(dead);
    let app = spawn(settings, None).await;
    let token = issuer.token("ann", &["vigie-viewer"]);
    let (status, body) = call(&app, "/api/v1/snapshot", &token, None).await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("signing keys could not be fetched"),
        "{message}"
    );
    assert!(!message.contains("127.0.0.1"), "no internals: {message}");
}

#[tokio::test]
async fn a_websocket_is_closed_when_its_jwt_expires() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let issuer = Issuer::start(&["rsa-1"]).await;
    let app = spawn(issuer.settings(), None).await;
    let mut claims = issuer.claims("wall-paris", &["vigie-viewer"]);
    claims["exp"] = json!(now() + 2);
    let token = issuer.mint("rsa-1", &claims);
    let ws = app.base.replace("http://", "ws://");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?access_token={token}"))
            .await
            .expect("a valid JWT may watch");
    let close = tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed before the deadline")
    .expect("with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("token expired"), "{}", close.reason);
}

#[tokio::test]
async fn websockets_accept_a_jwt_as_access_token() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let app = spawn(issuer.settings(), None).await;
    let ws = app.base.replace("http://", "ws://");
    let token = issuer.token("wall-paris", &["vigie-viewer"]);
    assert!(
        tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?access_token={token}"))
            .await
            .is_ok(),
        "a viewer JWT may watch"
    );
    let mut claims = issuer.claims("wall-paris", &["vigie-viewer"]);
    claims["exp"] = json!(now() - 600);
    let expired = issuer.mint("rsa-1", &claims);
    match tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?access_token={expired}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
    }
}
