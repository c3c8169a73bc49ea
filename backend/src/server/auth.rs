//! Owns authentication and authorization of API calls: bearer tokens (stored hashed)
//! mapped to roles, OIDC JWTs (see [`super::oidc`]), the websocket Origin check, the
//! rate limit on mutations, and the count of refused callers by reason.
//!
//! With neither tokens nor OIDC configured the API is open to its callers, who are on this
//! machine: the server refuses to bind anything but loopback then (see `check_listen_address`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use tokio_util::sync::CancellationToken;

use super::caller::Principal;
use super::oidc::{looks_like_jwt, JwtError, Oidc, OidcError};
use super::{ApiError, AppState};
use crate::config::{AuthSettings, Role};

/// Labels of `vigie_auth_failures_total`: a bounded set.
pub(crate) const FAILURE_REASONS: [&str; 14] = [
    "missing_token",
    "unknown_token",
    "malformed",
    "algorithm",
    "unknown_kid",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "signature",
    "missing_claim",
    "no_role",
    "keys_unavailable",
    "host_not_allowed",
];

/// The configured tokens and limits.
#[derive(Debug, Default)]
pub struct Auth {
    /// SHA-256 hex of each token → (name, role).
    tokens: HashMap<String, (String, Role)>,
    /// JWTs of an OIDC issuer, when configured.
    oidc: Option<Arc<Oidc>>,
    allowed_origins: Vec<String>,
    /// Host names answered (lower case, no port); empty: see [`Auth::host_allowed`].
    allowed_hosts: Vec<String>,
    mutations_per_minute: u32,
    recent_mutations: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Refused callers, by `FAILURE_REASONS` index.
    failures: [AtomicU64; FAILURE_REASONS.len()],
}

pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    /// The hashed tokens and limits of `settings` (not its OIDC part: see [`Auth::start`]).
    pub fn from_settings(settings: &AuthSettings) -> Auth {
        Auth {
            tokens: settings
                .tokens
                .iter()
                .map(|t| (t.sha256.clone(), (t.name.clone(), t.role)))
                .collect(),
            oidc: None,
            allowed_origins: settings.allowed_origins.clone(),
            allowed_hosts: settings
                .allowed_hosts
                .iter()
                .map(|h| super::guard::host_name(h))
                .collect(),
            mutations_per_minute: settings.mutations_per_minute,
            recent_mutations: Mutex::new(HashMap::new()),
            failures: Default::default(),
        }
    }

    /// Everything in `settings`, OIDC included: fetches the issuer's keys once and keeps
    /// them fresh until `shutdown`.
    pub async fn start(
        settings: &AuthSettings,
        shutdown: CancellationToken,
    ) -> Result<Auth, OidcError> {
        let mut auth = Auth::from_settings(settings);
        if let Some(oidc) = &settings.oidc {
            auth.oidc = Some(Oidc::start(oidc, shutdown).await?);
        }
        Ok(auth)
    }

    /// Tokens or OIDC configured: every API call must authenticate.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.oidc.is_some()
    }

    /// The OIDC part, if configured.
    pub fn oidc(&self) -> Option<&Oidc> {
        self.oidc.as_deref()
    }

    /// Refused callers so far, per reason of [`FAILURE_REASONS`].
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FAILURE_REASONS
            .iter()
            .zip(&self.failures)
            .map(|(r, n)| (*r, n.load(Relaxed)))
    }

    fn refuse(&self, reason: &str, error: ApiError) -> ApiError {
        self.count_failure(reason);
        error
    }

    fn count_failure(&self, reason: &str) {
        if let Some(i) = FAILURE_REASONS.iter().position(|r| *r == reason) {
            self.failures[i].fetch_add(1, Relaxed);
        }
    }

    /// The caller presenting `token` (anyone on this machine when auth is off): a
    /// configured token, else a JWT of the OIDC issuer.
    pub(crate) async fn principal(&self, token: Option<&str>) -> Result<Principal, ApiError> {
        if !self.enabled() {
            return Ok(Principal {
                name: "local".into(),
                role: Role::Admin,
                expires_at: None,
            });
        }
        let Some(token) = token else {
            return Err(self.refuse(
                "missing_token",
                ApiError::Unauthorized("a bearer token is required".into()),
            ));
        };
        if let Some((name, role)) = self.tokens.get(&sha256_hex(token)) {
            return Ok(Principal {
                name: name.clone(),
                role: *role,
                expires_at: None,
            });
        }
        if let Some(oidc) = &self.oidc {
            if looks_like_jwt(token) {
                return oidc.principal(token).await.map_err(|e| {
                    let reason = e.reason();
                    let error = match e {
                        JwtError::NoRole { .. } => ApiError::Forbidden(e.to_string()),
                        JwtError::KeysUnavailable => ApiError::Unavailable(e.to_string()),
                        e => ApiError::Unauthorized(e.to_string()),
                    };
                    tracing::debug!(reason, "bearer JWT refused");
                    self.refuse(reason, error)
                });
            }
        }
        Err(self.refuse(
            "unknown_token",
            ApiError::Unauthorized("unknown bearer token".into()),
        ))
    }

    /// Counts one mutation by `who`; past the per-minute limit, says why it is refused.
    pub(crate) fn check_rate(&self, who: &str) -> Result<(), String> {
        if self.mutations_per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut recent = self.recent_mutations.lock();
        if recent.len() > 10_000 {
            // Callers come and go (every user of an identity provider): forget the quiet.
            recent.retain(|_, calls| {
                calls
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= Duration::from_secs(60))
            });
        }
        let calls = recent.entry(who.to_string()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            calls.pop_front();
        }
        if calls.len() >= self.mutations_per_minute as usize {
            return Err(format!(
                "more than {} changes in a minute by {who:?} (auth.mutations_per_minute): wait a little",
                self.mutations_per_minute
            ));
        }
        calls.push_back(now);
        Ok(())
    }

    /// Whether a request with this `Host` is answered: one of `auth.allowed_hosts` when
    /// set; else any host when callers authenticate, and only loopback names when the API
    /// is open (DNS rebinding: a page of another site whose name now points to 127.0.0.1
    /// still sends its own name).
    pub(crate) fn host_allowed(&self, host: Option<&str>) -> bool {
        let name = host.map(super::guard::host_name);
        let allowed = if !self.allowed_hosts.is_empty() {
            name.is_some_and(|n| self.allowed_hosts.contains(&n))
        } else if self.enabled() {
            true
        } else {
            name.is_some_and(|n| super::guard::is_loopback_name(&n))
        };
        if !allowed {
            self.count_failure("host_not_allowed");
        }
        allowed
    }

    /// A browser may open a websocket from the API's own origin or a configured one;
    /// clients without an Origin header (not browsers) are not concerned.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let own = host
            .is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        own || self.allowed_origins.iter().any(|o| o == origin)
    }
}

/// `Authorization: Bearer <token>`; for websockets also `?access_token=<token>`
/// (browsers cannot set headers on a websocket).
fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    if parts.uri.path() == "/api/v1/ws" {
        // The cockpit percent-encodes it (a base64 token holds `+`, `/`, `=`); a raw `+`
        // stays a `+` (tokens have no spaces).
        return parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "access_token")
                .and_then(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8().ok())
                .map(|v| v.into_owned())
        });
    }
    None
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .auth
            .principal(presented_token(parts).as_deref())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenSettings;

    fn auth() -> Auth {
        Auth::from_settings(&AuthSettings {
            tokens: vec![TokenSettings {
                name: "wall".into(),
                role: Role::Viewer,
                sha256: sha256_hex("s3cret"),
            }],
            allowed_origins: vec!["https://cockpit.example".into()],
            mutations_per_minute: 2,
            ..AuthSettings::default()
        })
    }

    #[tokio::test]
    async fn tokens_map_to_roles_and_roles_include_lower_ones() {
        let a = auth();
        let wall = a.principal(Some("s3cret")).await.expect("known");
        assert_eq!((wall.name.as_str(), wall.role), ("wall", Role::Viewer));
        assert!(wall.require(Role::Viewer).is_ok());
        assert!(matches!(
            wall.require(Role::Supervisor),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            a.principal(Some("guess")).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            a.principal(None).await,
            Err(ApiError::Unauthorized(_))
        ));
        let open = Auth::default().principal(None).await.expect("open");
        assert_eq!(open.role, Role::Admin);
        let failures: HashMap<_, _> = a.failures().collect();
        assert_eq!(
            (failures["unknown_token"], failures["missing_token"]),
            (1, 1)
        );
    }

    #[test]
    fn mutations_are_rate_limited_per_caller() {
        let a = auth();
        assert!(a.check_rate("ann").is_ok());
        assert!(a.check_rate("ann").is_ok());
        assert!(a
            .check_rate("ann")
            .is_err_and(|e| e.contains("auth.mutations_per_minute")));
        assert!(a.check_rate("bob").is_ok(), "per caller");
    }

    #[test]
    fn websocket_origins_are_checked() {
        let a = auth();
        assert!(a.origin_allowed(None, Some("127.0.0.1:8080")));
        assert!(a.origin_allowed(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(a.origin_allowed(Some("https://cockpit.example"), Some("127.0.0.1:8080")));
        assert!(!a.origin_allowed(Some("https://evil.example"), Some("127.0.0.1:8080")));
    }
}
