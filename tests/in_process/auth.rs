//! Roles through the public API: the whole role × endpoint matrix (hashed tokens and
//! OIDC JWTs side by side), websocket token and Origin checks, the mutation rate limit,
//! and the refusal to expose an open API.

use tokio_util::sync::CancellationToken;
use vigie::config::{AuthSettings, Role, TokenSettings};
use vigie::server::{sha256_hex, Auth};
use vigie_testkit::issuer::Issuer;
use vigie_testkit::TestApp;

/// The API with a viewer, a supervisor and an admin token, an OIDC issuer, and the
/// cockpit's origin allowed; and the issuer of the matrix's JWTs.
async fn spawn(mutations_per_minute: u32) -> (TestApp, Issuer) {
    let token = |name: &str, role| TokenSettings {
        name: name.into(),
        role,
        sha256: sha256_hex(&format!("{name}-token")),
    };
    let issuer = Issuer::start(&["rsa-1"]).await;
    let stop = CancellationToken::new();
    let auth = Auth::start(
        &AuthSettings {
            tokens: vec![
                token("wall", Role::Viewer),
                token("sup", Role::Supervisor),
                token("adm", Role::Admin),
            ],
            allowed_origins: vec!["https://cockpit.example".into()],
            mutations_per_minute,
            oidc: Some(issuer.settings()),
        },
        stop.clone(),
    )
    .await
    .expect("auth");
    let app = TestApp::builder().auth(auth).shutdown(stop).spawn().await;
    (app, issuer)
}

const FLIP: &str =
    r#"{"channel":"phone","target":"callback","on":true,"why":"test","expected_version":0}"#;

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> u16 {
    let flip: serde_json::Value = serde_json::from_str(FLIP).expect("JSON");
    let body = (method == "PUT").then_some(&flip);
    let (status, text) = app.call(method, path, token, body).await;
    if status >= 400 {
        let body: serde_json::Value = serde_json::from_str(&text).expect("every error is JSON");
        assert_eq!(body["status"], status, "{method} {path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    status
}

#[tokio::test]
async fn every_role_gets_exactly_its_rights_on_every_endpoint() {
    let (app, issuer) = spawn(0).await;
    // 503 = authorized, then refused because this instance has no switch store or alerting.
    #[rustfmt::skip]
    let matrix: [(&str, &str, [u16; 9]); 10] = [
        //                              hashed tokens: none  bad viewer sup admin | JWTs: viewer sup admin no-role
        ("GET", "/api/v1/snapshot",     [401, 401, 200, 200, 200, 200, 200, 200, 403]),
        ("GET", "/api/v1/switches",     [401, 401, 503, 503, 503, 503, 503, 503, 403]),
        ("GET", "/api/v1/switches/x",   [401, 401, 503, 503, 503, 503, 503, 503, 403]),
        ("PUT", "/api/v1/switches/x",   [401, 401, 403, 503, 503, 403, 503, 503, 403]),
        ("GET", "/api/v1/audit",        [401, 401, 403, 503, 503, 403, 503, 503, 403]),
        ("GET", "/api/v1/alerts",       [401, 401, 503, 503, 503, 503, 503, 503, 403]),
        ("GET", "/api/v1/alerts/rules", [401, 401, 503, 503, 503, 503, 503, 503, 403]),
        ("POST", "/api/v1/alerts/x/ack", [401, 401, 403, 503, 503, 403, 503, 503, 403]),
        ("GET", "/healthz",             [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("GET", "/metrics",             [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ];
    let jwt = |role: &str| issuer.token(&format!("{role}-jwt"), &[role]);
    let callers = [
        None,
        Some("guessed".to_string()),
        Some("wall-token".into()),
        Some("sup-token".into()),
        Some("adm-token".into()),
        Some(jwt("vigie-viewer")),
        Some(jwt("vigie-supervisor")),
        Some(jwt("vigie-admin")),
        Some(jwt("offline_access")),
    ];
    for (method, path, expected) in matrix {
        for (i, (caller, want)) in callers.iter().zip(expected).enumerate() {
            assert_eq!(
                call(&app, method, path, caller.as_deref()).await,
                want,
                "{method} {path} as caller #{i}"
            );
        }
    }
}

#[tokio::test]
async fn websockets_check_the_token_and_the_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (app, _issuer) = spawn(0).await;
    let url = |token: &str| format!("{}?access_token={token}", app.ws_url());
    let status_of = |e: tokio_tungstenite::tungstenite::Error| match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    assert!(
        tokio_tungstenite::connect_async(url("wall-token"))
            .await
            .is_ok(),
        "a viewer may watch"
    );
    let refused = tokio_tungstenite::connect_async(url("guessed"))
        .await
        .expect_err("unknown token");
    assert_eq!(status_of(refused), 401);
    let refused = tokio_tungstenite::connect_async(app.ws_url())
        .await
        .expect_err("no token");
    assert_eq!(status_of(refused), 401);

    let mut request = url("wall-token").into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(request)
        .await
        .expect_err("foreign origin");
    assert_eq!(status_of(refused), 403);
    let mut request = url("wall-token").into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "https://cockpit.example".parse().expect("header"));
    assert!(
        tokio_tungstenite::connect_async(request).await.is_ok(),
        "configured origin"
    );
}

#[tokio::test]
async fn mutations_are_rate_limited_per_caller() {
    let (app, _issuer) = spawn(2).await;
    assert_eq!(
        call(&app, "PUT", "/api/v1/switches/x", Some("sup-token")).await,
        503
    );
    assert_eq!(
        call(&app, "PUT", "/api/v1/switches/x", Some("sup-token")).await,
        503
    );
    assert_eq!(
        call(&app, "PUT", "/api/v1/switches/x", Some("sup-token")).await,
        429
    );
    assert_eq!(
        call(&app, "PUT", "/api/v1/switches/x", Some("adm-token")).await,
        503,
        "another caller"
    );
}

#[test]
fn an_open_api_is_refused_beyond_loopback() {
    let out = vigie_testkit::serve::vigie()
        .args(["serve", "--brokers", "127.0.0.1:9", "--listen", "0.0.0.0:0"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("vigie runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
}
