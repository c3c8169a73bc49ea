//! Owns OpenID Connect bearer tokens: the issuer's signing keys (JWKS, found by
//! discovery unless configured), their cache and refresh (periodic, and on a token with
//! an unknown `kid`, at most once per `jwks_min_interval`), and the validation of a JWT
//! into a [`Principal`]: signature, algorithm, issuer, audience, expiry, then the role
//! claim mapped to a Vigie role and the name claim used as the author in audits.
//!
//! Tokens are never logged; errors say what is wrong with a token, not what it is.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::caller::Principal;
use crate::config::{JwtAlgorithm, OidcSettings, Role};

/// Why a JWT was refused: 401, except `NoRole` (403) and `KeysUnavailable` (503).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the bearer token is not a well-formed JWT ({0})")]
    Malformed(String),
    #[error("the token is signed with {0}, which this API does not accept (accepted: {1})")]
    Algorithm(String, String),
    #[error("the token's signing key (kid {0:?}) is not among the keys the issuer publishes")]
    UnknownKid(String),
    #[error("the token has no `kid` and no published key of its algorithm verifies it")]
    NoKid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("the token was not issued by {0} (iss)")]
    Issuer(String),
    #[error("the token is not meant for this API: its audience (aud) does not include {0:?}")]
    Audience(String),
    #[error("the token's signature does not verify with the issuer's key")]
    Signature,
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error(
        "cannot check the token now: the issuer's signing keys could not be fetched; retry shortly"
    )]
    KeysUnavailable,
    #[error("{name:?} has no Vigie role: none of the token's `{claim}` values ({values}) is mapped in auth.oidc.roles")]
    NoRole {
        name: String,
        claim: String,
        values: String,
    },
}

impl JwtError {
    /// Bounded label of `vigie_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "malformed",
            JwtError::Algorithm(..) => "algorithm",
            JwtError::UnknownKid(_) | JwtError::NoKid => "unknown_kid",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::Issuer(_) => "issuer",
            JwtError::Audience(_) => "audience",
            JwtError::Signature => "signature",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::KeysUnavailable => "keys_unavailable",
            JwtError::NoRole { .. } => "no_role",
        }
    }
}

/// Failure to build the OIDC client at start.
#[derive(Debug, Error)]
#[error("auth.oidc: {0}")]
pub struct OidcError(String);

/// One usable key of the issuer's JWKS.
struct PublishedKey {
    kid: Option<String>,
    /// The `alg` the JWK restricts itself to, if any.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl PublishedKey {
    fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && self.key.family() == alg.family()
    }
}

/// When a token with an unknown `kid` last caused a fetch (the rate limit: periodic
/// fetches do not count, so a key rotated in just after one is still picked up at once).
#[derive(Default)]
struct FetchState {
    last_on_demand: Option<Instant>,
}

/// The issuer's keys and how to check its tokens.
pub struct Oidc {
    settings: OidcSettings,
    allowed: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<Arc<Vec<PublishedKey>>>,
    /// The JWKS address: configured, or from discovery (kept once found).
    jwks_url: RwLock<Option<String>>,
    /// One fetch at a time; callers that waited find the keys just fetched.
    fetch: tokio::sync::Mutex<FetchState>,
    /// The last fetch failed (until one succeeds).
    failing: std::sync::atomic::AtomicBool,
    pub fetches_ok: AtomicU64,
    pub fetches_failed: AtomicU64,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer)
            .field("keys", &self.keys.read().len())
            .finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Largest discovery document or JWKS accepted.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

impl Oidc {
    /// Fetches the keys once (a failure is logged, not fatal: tokens of the `[[auth.tokens]]`
    /// list keep working and the fetch is retried), then refreshes them in the background
    /// until `shutdown`.
    pub async fn start(
        settings: &OidcSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Oidc>, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .build()
            .map_err(|e| OidcError(format!("cannot build the HTTP client: {e}")))?;
        let oidc = Arc::new(Oidc {
            allowed: settings.algorithms.iter().map(|a| algorithm(*a)).collect(),
            jwks_url: RwLock::new(settings.jwks_url.clone()),
            settings: settings.clone(),
            http,
            keys: RwLock::new(Arc::new(Vec::new())),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            failing: std::sync::atomic::AtomicBool::new(false),
            fetches_ok: AtomicU64::new(0),
            fetches_failed: AtomicU64::new(0),
        });
        oidc.refresh("start").await;
        tokio::spawn(oidc.clone().run_refresh(shutdown));
        Ok(oidc)
    }

    /// Number of usable keys held.
    pub(crate) fn key_count(&self) -> usize {
        self.keys.read().len()
    }

    async fn run_refresh(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            // After a failure, retry sooner than the periodic refresh.
            let wait = if self.failing.load(Relaxed) {
                self.settings.jwks_min_interval
            } else {
                self.settings.jwks_refresh
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            self.refresh("periodic").await;
        }
    }

    /// Fetches the keys now (one fetch at a time).
    async fn refresh(&self, why: &'static str) {
        let _one_at_a_time = self.fetch.lock().await;
        self.fetch_now(why).await;
    }

    /// Fetches the keys unless a fetch started less than `jwks_min_interval` ago.
    async fn refresh_rate_limited(&self) {
        let mut state = self.fetch.lock().await;
        if state
            .last_on_demand
            .is_some_and(|t| t.elapsed() < self.settings.jwks_min_interval)
        {
            return;
        }
        state.last_on_demand = Some(Instant::now());
        self.fetch_now("unknown kid").await;
    }

    async fn fetch_now(&self, why: &'static str) {
        let span = tracing::info_span!("jwks_fetch", issuer = %self.settings.issuer, why);
        match self.fetch_keys().instrument(span.clone()).await {
            Ok(keys) => {
                let _enter = span.enter();
                tracing::info!(keys = keys.len(), "OIDC signing keys fetched");
                *self.keys.write() = Arc::new(keys);
                self.failing.store(false, Relaxed);
                self.fetches_ok.fetch_add(1, Relaxed);
            }
            Err(error) => {
                let _enter = span.enter();
                tracing::error!(%error, "cannot fetch the OIDC signing keys; keeping the previous ones");
                self.failing.store(true, Relaxed);
                self.fetches_failed.fetch_add(1, Relaxed);
            }
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    async fn discover(&self) -> Result<String, String> {
        if let Some(url) = self.jwks_url.read().clone() {
            return Ok(url);
        }
        let url = self.settings.discovery_url();
        let doc = self.get_json(&url).await?;
        let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if issuer != self.settings.issuer {
            return Err(format!(
                "{url} names the issuer {issuer:?}, but auth.oidc.issuer is {:?}: they must be identical",
                self.settings.issuer
            ));
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{url} has no jwks_uri: set auth.oidc.jwks_url"))?
            .to_string();
        *self.jwks_url.write() = Some(jwks.clone());
        Ok(jwks)
    }

    async fn fetch_keys(&self) -> Result<Vec<PublishedKey>, String> {
        let url = self.discover().await?;
        let set = self.get_json(&url).await?;
        let entries = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{url} is not a JWKS (no `keys` array)"))?;
        let mut keys = Vec::new();
        for entry in entries {
            // One key we cannot use (another type, encryption) does not spoil the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                tracing::debug!("skipping an unreadable JWK");
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let alg = match jwk.common.key_algorithm {
                Some(a) => match Algorithm::try_from(a) {
                    Ok(a) => Some(a),
                    Err(_) => continue,
                },
                None => None,
            };
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => keys.push(PublishedKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                }),
                Err(e) => tracing::debug!(kid = ?jwk.common.key_id, error = %e, "skipping a JWK"),
            }
        }
        if keys.is_empty() {
            return Err(format!("{url} holds no usable signing key"));
        }
        Ok(keys)
    }

    /// Checks for a token signed with `alg` (already checked against the allowed ones:
    /// jsonwebtoken wants the algorithms of one call to be of the key's family).
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    /// The caller presenting the JWT `token`.
    pub(crate) async fn principal(&self, token: &str) -> Result<Principal, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !self.allowed.contains(&header.alg) {
            return Err(JwtError::Algorithm(
                format!("{:?}", header.alg),
                self.allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let mut refetched = false;
        loop {
            let keys = self.keys.read().clone();
            let candidates: Vec<&PublishedKey> = keys
                .iter()
                .filter(|k| k.fits(header.alg))
                .filter(|k| header.kid.is_none() || k.kid == header.kid)
                .collect();
            if candidates.is_empty() {
                if !refetched {
                    // A key rotated in since the last fetch?
                    self.refresh_rate_limited().await;
                    refetched = true;
                    continue;
                }
                if self.failing.load(Relaxed) && keys.is_empty() {
                    return Err(JwtError::KeysUnavailable);
                }
                return Err(match header.kid {
                    Some(kid) => JwtError::UnknownKid(kid),
                    None => JwtError::NoKid,
                });
            }
            let validation = self.validation(header.alg);
            let mut error = JwtError::Signature;
            for candidate in candidates {
                match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation)
                {
                    Ok(data) => return self.principal_of(&data.claims),
                    Err(e) => error = self.error_of(e),
                }
            }
            return Err(error);
        }
    }

    fn error_of(&self, e: jsonwebtoken::errors::Error) -> JwtError {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => JwtError::Expired,
            K::ImmatureSignature => JwtError::NotYetValid,
            K::InvalidIssuer => JwtError::Issuer(self.settings.issuer.clone()),
            K::InvalidAudience => JwtError::Audience(self.settings.audience.clone()),
            K::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
            K::InvalidAlgorithm | K::MissingAlgorithm => JwtError::Algorithm(
                "an algorithm that does not match its key".into(),
                self.allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            K::InvalidSignature
            | K::InvalidEcdsaKey
            | K::InvalidEddsaKey
            | K::InvalidRsaKey(_)
            | K::InvalidKeyFormat => JwtError::Signature,
            other => JwtError::Malformed(format!("{other:?}")),
        }
    }

    fn principal_of(&self, claims: &Map<String, Value>) -> Result<Principal, JwtError> {
        let s = &self.settings;
        let name = [s.name_claim.as_str(), "sub"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| JwtError::MissingClaim(s.name_claim.clone()))?
            .to_string();
        let values = claim_values(claims, &s.role_claim);
        let role: Option<Role> = values.iter().filter_map(|v| s.roles.get(*v)).max().copied();
        match role {
            Some(role) => Ok(Principal {
                name,
                role,
                expires_at: claims
                    .get("exp")
                    .and_then(Value::as_u64)
                    // An `exp` beyond what a SystemTime holds (≥ 2^63 s) never comes.
                    .and_then(|exp| {
                        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(exp))
                    }),
            }),
            None => Err(JwtError::NoRole {
                name,
                claim: s.role_claim.clone(),
                values: if values.is_empty() {
                    "none".into()
                } else {
                    values
                        .iter()
                        .take(10)
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }
}

/// The string values of `claim`: a top-level claim of that exact name (names may hold
/// dots, e.g. Auth0's `https://example.com/roles`), else the dotted path into nested
/// objects (Keycloak's `realm_access.roles`). A string is one value, an array gives its strings.
pub fn claim_values<'a>(claims: &'a Map<String, Value>, claim: &str) -> Vec<&'a str> {
    let found = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    });
    let values: BTreeSet<&str> = match found {
        Some(Value::String(s)) => [s.as_str()].into_iter().collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    };
    values.into_iter().collect()
}

/// A JWT has three base64url parts; the hashed tokens never look like that in practice.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_claims_are_found_by_name_or_dotted_path() {
        let claims = json!({
            "roles": ["vigie-viewer", "other"],
            "groups": "supervisors",
            "realm_access": {"roles": ["vigie-admin"]},
            "https://vigie.example.com/roles": ["sup"],
        });
        let claims = claims.as_object().expect("object");
        assert_eq!(claim_values(claims, "roles"), ["other", "vigie-viewer"]);
        assert_eq!(claim_values(claims, "groups"), ["supervisors"]);
        assert_eq!(claim_values(claims, "realm_access.roles"), ["vigie-admin"]);
        assert_eq!(
            claim_values(claims, "https://vigie.example.com/roles"),
            ["sup"]
        );
        assert!(claim_values(claims, "realm_access.nothing").is_empty());
        assert!(claim_values(claims, "realm_access").is_empty());
    }

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("wall-token"));
        assert!(!looks_like_jwt("a.b c.d"));
    }
}
