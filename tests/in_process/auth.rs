//! Roles through the public API: the whole role × endpoint matrix (hashed tokens and
//! OIDC JWTs side by side), websocket token and Origin checks, the mutation rate limit,
//! the refusal to run open unless asked and beyond loopback, the `Host` allow-list (DNS
//! rebinding) and the security headers.

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
                TokenSettings {
                    name: "base64".into(),
                    role: Role::Viewer,
                    sha256: sha256_hex(BASE64_TOKEN),
                },
            ],
            allowed_origins: vec!["https://cockpit.example".into()],
            mutations_per_minute,
            oidc: Some(issuer.settings()),
            ..AuthSettings::default()
        },
        stop.clone(),
    )
    .await
    .expect("auth");
    let app = TestApp::builder().auth(auth).shutdown(stop).spawn().await;
    (app, issuer)
}

/// A token as base64 makes them: `+`, `/` and `=` in it.
const BASE64_TOKEN: &str = "q+Zr/9w=";

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
    // The cockpit percent-encodes the token in the URL (encodeURIComponent).
    assert!(
        tokio_tungstenite::connect_async(url("q%2BZr%2F9w%3D"))
            .await
            .is_ok(),
        "a percent-encoded token is decoded"
    );
    assert!(
        tokio_tungstenite::connect_async(url(BASE64_TOKEN))
            .await
            .is_ok(),
        "a raw `+` stays a `+`"
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
    let (_, metrics) = app.call("GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("vigie_limit_refusals_total{limit=\"auth.mutations_per_minute\"} 1"),
        "counted as a limit"
    );
}

#[test]
fn an_open_api_must_be_asked_for_and_stays_on_loopback() {
    let serve = |listen: &str, open: Option<&str>| {
        let mut command = vigie_testkit::serve::vigie();
        command.args(["serve", "--brokers", "127.0.0.1:9", "--listen", listen]);
        if let Some(open) = open {
            command.env("VIGIE__AUTH__OPEN", open);
        }
        let out = command.output().expect("vigie runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = serve("127.0.0.1:0", None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no authentication configured") && stderr.contains("auth.open = true"),
        "the error names the key: {stderr}"
    );
    let (code, stderr) = serve("0.0.0.0:0", Some("true"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 with auth.open = true"),
        "{stderr}"
    );
}

/// GET `path` with `host` as the `Host` header: status and JSON body (if any).
async fn with_host(app: &TestApp, path: &str, host: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(app.url(path))
        .header(reqwest::header::HOST, host);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn an_open_api_answers_loopback_names_only() {
    // Open (no token): a page of evil.example whose name now resolves to 127.0.0.1 sends
    // `Host: evil.example` and is refused.
    let app = TestApp::builder().spawn().await;
    let port = app.base.rsplit(':').next().expect("port");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            with_host(&app, "/api/v1/snapshot", &host, None).await.0,
            200,
            "{host}"
        );
    }
    let (status, body) = with_host(
        &app,
        "/api/v1/snapshot",
        &format!("evil.example:{port}"),
        None,
    )
    .await;
    assert_eq!(status, 421, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(body["code"], "host_not_allowed");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("auth.allowed_hosts")));
    assert_eq!(
        with_host(&app, "/", "evil.example", None).await.0,
        421,
        "nor the cockpit"
    );
    assert_eq!(
        with_host(&app, "/healthz", "10.1.2.3:8080", None).await.0,
        200,
        "probes call by address"
    );
    let (_, metrics) = with_host(&app, "/metrics", "127.0.0.1", None).await;
    assert!(
        metrics.contains("vigie_auth_failures_total{reason=\"host_not_allowed\"} 2"),
        "counted"
    );
}

#[tokio::test]
async fn allowed_hosts_are_the_only_ones_answered() {
    let auth = Auth::from_settings(&AuthSettings {
        tokens: vec![TokenSettings {
            name: "wall".into(),
            role: Role::Viewer,
            sha256: sha256_hex("wall-token"),
        }],
        allowed_hosts: vec!["Vigie.Example.com".into()],
        ..AuthSettings::default()
    });
    let app = TestApp::builder().auth(auth).spawn().await;
    let token = Some("wall-token");
    let ok = with_host(&app, "/api/v1/snapshot", "vigie.example.com:443", token).await;
    assert_eq!(ok.0, 200, "{ok:?}");
    let refused = with_host(&app, "/api/v1/snapshot", "127.0.0.1", token).await;
    assert_eq!(refused.0, 421, "not in the list, loopback or not");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::builder().spawn().await;
    for path in ["/", "/wall", "/api/v1/snapshot", "/api/v1/nothing"] {
        let response = reqwest::get(app.url(path)).await.expect("request");
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{path}: {csp}"
        );
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        assert_eq!(
            headers.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..]),
            "{path}"
        );
    }
}
