//! Owns the `[auth]` section: hashed bearer tokens, the optional OpenID Connect issuer,
//! websocket origins and the mutation rate limit, with their defaults and checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who may call the API. Without tokens or OIDC, `vigie serve` starts only with
/// `open = true` (anyone reaching the API is admin), and then binds loopback only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Bearer tokens, stored as SHA-256 hashes (`printf %s "$TOKEN" | sha256sum`).
    pub tokens: Vec<TokenSettings>,
    /// Origins allowed to open websockets besides the API's own (e.g. a cockpit served elsewhere).
    pub allowed_origins: Vec<String>,
    /// Mutations (switch flips) allowed per caller and minute; 0 disables the limit.
    pub mutations_per_minute: u32,
    /// JWTs of an OpenID Connect issuer, accepted besides the tokens above; absent = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
    /// No authentication at all: whoever reaches the API is admin. Only on loopback, for
    /// a laptop or the demo; `vigie serve` refuses to start with neither tokens, OIDC nor
    /// this.
    pub open: bool,
    /// Host names (`Host` header, port ignored) the API answers to; others get 421. Empty:
    /// any host when authentication is on; in open mode, loopback names only (`localhost`,
    /// `127.0.0.1`, `[::1]`), which defeats DNS rebinding. `/healthz` and `/readyz`
    /// answer any host (probes).
    pub allowed_hosts: Vec<String>,
}

/// OpenID Connect: a bearer JWT signed by `issuer` for `audience`, its role read from a claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer exactly as in the tokens' `iss` (e.g. `https://sso.example.com/realms/cc`).
    pub issuer: String,
    /// This API's identifier, required in the tokens' `aud` (e.g. the client id `vigie`).
    pub audience: String,
    /// Where the issuer publishes its signing keys; default: `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Claim holding the caller's roles or groups: a string or an array of strings, at a
    /// top-level name (`roles`, `groups`, `https://vigie.example.com/roles`) or a dotted
    /// path (`realm_access.roles`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim value → Vigie role (`viewer`, `supervisor`, `admin`); the highest match wins,
    /// a token with none is refused (403).
    pub roles: BTreeMap<String, Role>,
    /// Claim naming the caller in audits; falls back to `sub` when absent.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Signature algorithms accepted (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock difference tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// The keys are fetched again this often (and on a token with an unknown `kid`).
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// At most one fetch caused by unknown `kid`s per this interval.
    #[serde(default = "default_jwks_min_interval", with = "humantime_serde")]
    pub jwks_min_interval: Duration,
    /// Time limit of one discovery or key fetch.
    #[serde(default = "default_fetch_timeout", with = "humantime_serde")]
    pub fetch_timeout: Duration,
}

fn default_role_claim() -> String {
    "roles".into()
}
fn default_name_claim() -> String {
    "preferred_username".into()
}
fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]
}
fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_jwks_refresh() -> Duration {
    Duration::from_secs(3_600)
}
fn default_jwks_min_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_fetch_timeout() -> Duration {
    Duration::from_secs(10)
}

impl OidcSettings {
    /// Defaults for everything but the issuer, audience and role mapping.
    pub fn new(issuer: &str, audience: &str, roles: BTreeMap<String, Role>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            role_claim: default_role_claim(),
            roles,
            name_claim: default_name_claim(),
            algorithms: default_algorithms(),
            leeway: default_leeway(),
            jwks_refresh: default_jwks_refresh(),
            jwks_min_interval: default_jwks_min_interval(),
            fetch_timeout: default_fetch_timeout(),
        }
    }

    /// The discovery document's address.
    pub(crate) fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// JWT signature algorithms with a public key (shared secrets have no place in a JWKS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            mutations_per_minute: 30,
            oidc: None,
            open: false,
            allowed_hosts: Vec::new(),
        }
    }
}

impl AuthSettings {
    /// Tokens or OIDC configured: callers must authenticate.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.oidc.is_some()
    }
}

/// One bearer token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who holds it: shown as the author of the changes made with it.
    pub name: String,
    /// `viewer` (wall screens: read only), `supervisor` (flip switches, ack alerts) or `admin`.
    pub role: Role,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

/// What a caller may do (shared with the cockpit, which hides what the role cannot do).
pub use vigie_proto::Role;

impl OidcSettings {
    fn validate(&self, errors: &mut Vec<String>) {
        let url_ok = |u: &str| {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            rest.is_some_and(|r| {
                !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace)
            })
        };
        if !url_ok(&self.issuer) {
            errors.push(format!(
                "auth.oidc.issuer: {:?} is not an http(s) URL; use the issuer exactly as in the tokens' `iss` \
                 (e.g. \"https://sso.example.com/realms/contact-center\")",
                self.issuer
            ));
        }
        if self.audience.trim().is_empty() {
            errors.push("auth.oidc.audience: must not be empty; use the `aud` your issuer puts in Vigie's tokens (e.g. its client id \"vigie\")".into());
        }
        if let Some(url) = &self.jwks_url {
            if !url_ok(url) {
                errors.push(format!(
                    "auth.oidc.jwks_url: {url:?} is not an http(s) URL; remove it to discover it from the issuer"
                ));
            }
        }
        if self.role_claim.is_empty() || self.role_claim.split('.').any(str::is_empty) {
            errors.push(format!(
                "auth.oidc.role_claim: {:?} is not a claim name or dotted path (e.g. \"roles\", \"realm_access.roles\")",
                self.role_claim
            ));
        }
        if self.roles.is_empty() {
            errors.push("auth.oidc.roles: map at least one claim value to a role (e.g. \"vigie-supervisors\" = \"supervisor\")".into());
        }
        if self.roles.keys().any(|k| k.is_empty()) {
            errors.push("auth.oidc.roles: a claim value is empty".into());
        }
        if self.name_claim.trim().is_empty() {
            errors.push(
                "auth.oidc.name_claim: must not be empty (e.g. \"preferred_username\")".into(),
            );
        }
        if self.algorithms.is_empty() {
            errors.push(
                "auth.oidc.algorithms: list at least one algorithm (e.g. [\"RS256\"])".into(),
            );
        }
        if self.leeway > Duration::from_secs(600) {
            errors.push("auth.oidc.leeway: at most 10m (e.g. \"60s\")".into());
        }
        if self.jwks_refresh < Duration::from_secs(60) {
            errors.push("auth.oidc.jwks_refresh: at least 1m (e.g. \"1h\")".into());
        }
        if self.jwks_min_interval.is_zero() || self.jwks_min_interval > self.jwks_refresh {
            errors.push("auth.oidc.jwks_min_interval: longer than 0s and at most auth.oidc.jwks_refresh (e.g. \"30s\")".into());
        }
        if self.fetch_timeout.is_zero() {
            errors.push("auth.oidc.fetch_timeout: must be longer than 0s (e.g. \"10s\")".into());
        }
    }
}

impl AuthSettings {
    /// Pushes one line per problem, each naming its key and the fix.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        for (i, token) in self.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                errors.push(format!("auth.tokens[{i}].name: must not be empty"));
            }
            if token.sha256.len() != 64
                || !token
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                errors.push(format!(
                "auth.tokens[{i}].sha256: must be 64 lowercase hex digits (printf %s \"$TOKEN\" | sha256sum)"
            ));
            }
        }
        if let Some(oidc) = &self.oidc {
            oidc.validate(errors);
        }
        if self.open && self.enabled() {
            errors.push("auth.open: true while tokens or OIDC are configured; remove `open` (callers authenticate) or the tokens and [auth.oidc]".into());
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            let bad =
                host.is_empty() || host.contains(['/', ' ', '@', '*']) || host.contains("://");
            if bad {
                errors.push(format!(
                    "auth.allowed_hosts[{i}]: {host:?} is not a host name; write it as in the address bar, without scheme or path (e.g. \"vigie.example.com\")"
                ));
            }
        }
    }
}
