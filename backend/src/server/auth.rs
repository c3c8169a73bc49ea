//! Owns authentication and authorization of API calls: bearer tokens (stored hashed)
//! mapped to roles, the websocket Origin check, and the rate limit on mutations.
//!
//! With no token configured the API is open to its callers, who are on this machine:
//! the server refuses to bind anything but loopback then (see `check_listen_address`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::config::{AuthSettings, Role};

/// The caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// Refuses the call unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{:?} {:?} may not do this: it needs the {} role",
                self.role,
                self.name,
                role_name(role)
            )))
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Supervisor => "supervisor",
        Role::Admin => "admin",
    }
}

/// The configured tokens and limits.
#[derive(Debug, Default)]
pub struct Auth {
    /// SHA-256 hex of each token → (name, role).
    tokens: HashMap<String, (String, Role)>,
    allowed_origins: Vec<String>,
    mutations_per_minute: u32,
    recent_mutations: Mutex<HashMap<String, VecDeque<Instant>>>,
}

pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    pub fn from_settings(settings: &AuthSettings) -> Auth {
        Auth {
            tokens: settings
                .tokens
                .iter()
                .map(|t| (t.sha256.clone(), (t.name.clone(), t.role)))
                .collect(),
            allowed_origins: settings.allowed_origins.clone(),
            mutations_per_minute: settings.mutations_per_minute,
            recent_mutations: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller presenting `token` (anyone on this machine when auth is off).
    pub fn principal(&self, token: Option<&str>) -> Result<Principal, ApiError> {
        if !self.enabled() {
            return Ok(Principal {
                name: "local".into(),
                role: Role::Admin,
            });
        }
        let token =
            token.ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
        self.tokens
            .get(&sha256_hex(token))
            .map(|(name, role)| Principal {
                name: name.clone(),
                role: *role,
            })
            .ok_or_else(|| ApiError::Unauthorized("unknown bearer token".into()))
    }

    /// Counts one mutation by `who`; refuses it past the per-minute limit.
    pub fn check_rate(&self, who: &str) -> Result<(), ApiError> {
        if self.mutations_per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut recent = self.recent_mutations.lock();
        let calls = recent.entry(who.to_string()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            calls.pop_front();
        }
        if calls.len() >= self.mutations_per_minute as usize {
            return Err(ApiError::RateLimited(format!(
                "more than {} changes in a minute by {who:?}: wait a little",
                self.mutations_per_minute
            )));
        }
        calls.push_back(now);
        Ok(())
    }

    /// A browser may open a websocket from the API's own origin or a configured one;
    /// clients without an Origin header (not browsers) are not concerned.
    pub fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
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
        return parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "access_token")
                .map(|(_, v)| v.to_string())
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
        state.auth.principal(presented_token(parts).as_deref())
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
        })
    }

    #[test]
    fn tokens_map_to_roles_and_roles_include_lower_ones() {
        let a = auth();
        let wall = a.principal(Some("s3cret")).expect("known");
        assert_eq!((wall.name.as_str(), wall.role), ("wall", Role::Viewer));
        assert!(wall.require(Role::Viewer).is_ok());
        assert!(matches!(
            wall.require(Role::Supervisor),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            a.principal(Some("guess")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(a.principal(None), Err(ApiError::Unauthorized(_))));
        let open = Auth::default().principal(None).expect("open");
        assert_eq!(open.role, Role::Admin);
    }

    #[test]
    fn mutations_are_rate_limited_per_caller() {
        let a = auth();
        assert!(a.check_rate("ann").is_ok());
        assert!(a.check_rate("ann").is_ok());
        assert!(matches!(a.check_rate("ann"), Err(ApiError::RateLimited(_))));
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
