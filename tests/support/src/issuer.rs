//! A fake OpenID Connect issuer on loopback: discovery document and JWKS served by axum
//! on port 0, with the test-only keys of `tests/fixtures/oidc`, and tokens minted with them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vigie::config::{OidcSettings, Role};

/// The audience Vigie's tokens carry in these tests.
pub const AUDIENCE: &str = "vigie";

/// A test key: `rsa-1`, `rsa-2` (RS256) or `ec-1` (ES256); its file name is its `kid`.
pub fn key(kid: &str) -> (EncodingKey, Algorithm) {
    let path = crate::repo_root().join(format!("tests/fixtures/oidc/{kid}.pem"));
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if kid.starts_with("ec") {
        (
            EncodingKey::from_ec_pem(&pem).expect("EC key"),
            Algorithm::ES256,
        )
    } else {
        (
            EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
            Algorithm::RS256,
        )
    }
}

fn public_jwk(kid: &str) -> Value {
    let (key, alg) = key(kid);
    let mut jwk = Jwk::from_encoding_key(&key, alg).expect("JWK");
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).expect("JWK JSON")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
pub struct Issuer {
    /// The issuer URL (`iss`), `http://127.0.0.1:PORT`.
    pub url: String,
    published: Arc<Mutex<Vec<Value>>>,
    /// JWKS downloads so far.
    pub jwks_fetches: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Issuer {
    /// Serves discovery and a JWKS holding the public halves of `kids`.
    pub async fn start(kids: &[&str]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let published = Arc::new(Mutex::new(Vec::new()));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/protocol/certs")});
        let (keys, fetches) = (published.clone(), jwks_fetches.clone());
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/protocol/certs",
                get(move || async move {
                    fetches.fetch_add(1, Relaxed);
                    Json(json!({"keys": keys.lock().clone()}))
                }),
            );
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancelled.cancelled().await })
                .await
        });
        let issuer = Issuer {
            url,
            published,
            jwks_fetches,
            stop,
        };
        issuer.publish(kids);
        issuer
    }

    /// Replaces the published keys (a rotation).
    pub fn publish(&self, kids: &[&str]) {
        *self.published.lock() = kids.iter().map(|k| public_jwk(k)).collect();
    }

    /// Vigie's settings for this issuer: roles in Keycloak's `realm_access.roles`.
    pub fn settings(&self) -> OidcSettings {
        let roles: BTreeMap<String, Role> = [
            ("vigie-viewer", Role::Viewer),
            ("vigie-supervisor", Role::Supervisor),
            ("vigie-admin", Role::Admin),
        ]
        .into_iter()
        .map(|(v, r)| (v.to_string(), r))
        .collect();
        let mut settings = OidcSettings::new(&self.url, AUDIENCE, roles);
        settings.role_claim = "realm_access.roles".into();
        settings.leeway = Duration::from_secs(5);
        settings
    }

    /// Valid claims for `name` holding `roles`, expiring in 5 minutes.
    pub fn claims(&self, name: &str, roles: &[&str]) -> Value {
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": format!("sub-{name}"),
            "preferred_username": name, "iat": now(), "exp": now() + 300,
            "realm_access": {"roles": roles},
        })
    }

    /// `claims` signed with key `kid` (named in the header).
    pub fn mint(&self, kid: &str, claims: &Value) -> String {
        let (key, alg) = key(kid);
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    /// A valid token of `name` with `roles`, signed with `rsa-1`.
    pub fn token(&self, name: &str, roles: &[&str]) -> String {
        self.mint("rsa-1", &self.claims(name, roles))
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
