//! Owns the typed settings tree: defaults, layering (default → TOML file →
//! `VIGIE__SECTION__KEY` environment), and validation that reports every problem at once.
//!
//! Example (`deploy/vigie.example.toml` has the full, commented tree):
//! ```toml
//! [engine]
//! allowed_lateness = "5m"
//! repeat_horizon = "7d"
//! time_zone = "Europe/Paris"
//!
//! # NF345 reading: 80 % of calls answered within 1 min 30.
//! [engine.channels.phone.service_level]
//! threshold = "90s"
//! target = 0.8
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::alert::Kpi;
use crate::engine::{ChannelRules, EngineConfig};
use vigie_proto::{Comparison, Severity};

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub engine: EngineSettings,
    pub kafka: KafkaSettings,
    pub auth: AuthSettings,
    pub alerts: AlertSettings,
    pub log: LogSettings,
    pub cockpit: crate::server::cockpit::CockpitSettings,
}

/// KPI engine rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Events older than this behind the newest event time are counted as late, not applied.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Repeat-contact horizon H: an arrival is a repeat if the customer arrived within H before.
    #[serde(with = "humantime_serde")]
    pub repeat_horizon: Duration,
    /// Longest window a snapshot can cover (aggregates are kept this long, and at least 25 h).
    #[serde(with = "humantime_serde")]
    pub max_window: Duration,
    /// An unfinished interaction is forgotten this long after its last event.
    #[serde(with = "humantime_serde")]
    pub interaction_ttl: Duration,
    /// Most distinct dimension values (queues, reasons, segments and sites together)
    /// kept; new values beyond are counted as `(other)` and in
    /// `vigie_dimension_values_overflow_total`. Bounds memory and snapshot size when a
    /// producer puts ids in a dimension field. Channels are always kept (they carry the
    /// service-level rules and the cross-channel logic).
    pub max_dimension_values: usize,
    /// IANA time zone of the `today` window (e.g. `Europe/Paris`).
    pub time_zone: String,
    /// Short-abandon threshold of channels that do not set their own (0s disables).
    #[serde(with = "humantime_serde")]
    pub short_abandon: Duration,
    /// Per-channel rules, by channel name. Channels not listed have no service-level target.
    pub channels: BTreeMap<String, ChannelSettings>,
}

/// Rules of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Overrides `engine.short_abandon` for this channel.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub short_abandon: Option<Duration>,
    /// Service-level target; absent = the channel has no service level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<ServiceLevelSettings>,
}

/// "`target` of contacts answered within `threshold`".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLevelSettings {
    #[serde(with = "humantime_serde")]
    pub threshold: Duration,
    /// Fraction in (0, 1], e.g. 0.8 for 80 %.
    pub target: f64,
}

/// Kafka ingestion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topic of interaction events (keyed by customer_id, else interaction_id).
    pub topic: String,
    /// Where undecodable records go, with the reason in the `vigie-error` header.
    pub dlq_topic: String,
    /// Compacted topic holding the deflection switches (key: switch id): the source of
    /// truth shared by every instance and the routing systems.
    pub switches_topic: String,
    /// Audit trail of every switch change.
    pub audit_topic: String,
    /// Consumer group; instances of one group share the partitions.
    pub group_id: String,
    /// Payload encoding: `auto` (the `content-type` header, else sniffed), `json` or `proto`.
    pub payload_format: PayloadFormat,
    /// How far back to replay on start and on assignment; default: the longer of the
    /// repeat horizon and the longest window.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub rebuild_span: Option<Duration>,
    /// Events dated further ahead of this server's clock are dead-lettered: one
    /// producer with a wrong clock would otherwise make every other event "late".
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// librdkafka properties (security.protocol, sasl.*, ssl.*, ...), applied last. In
    /// the environment, where a name cannot hold dots, write them as underscores:
    /// `VIGIE__KAFKA__PROPERTIES__SASL_PASSWORD` sets `sasl.password`. Numbers and
    /// booleans are taken as written (`"fetch.wait.max.ms" = 100`).
    #[serde(deserialize_with = "scalars_as_strings")]
    pub properties: BTreeMap<String, String>,
    /// Scale-out: publish this instance's partitions as mergeable partials to
    /// `partials_topic` and merge every instance's partials, so that several instances
    /// in one group each serve the whole cockpit. Off: this instance shows only the
    /// partitions it consumes (right for a single instance).
    pub partials: bool,
    /// Compacted topic of partials (key `<topic>/<partition>[/<chunk start>]`), created
    /// with one partition if missing: its offsets order every owner's claim.
    pub partials_topic: String,
    /// How often changed partials are published (freshness of the merged view).
    #[serde(with = "humantime_serde")]
    pub partials_every: Duration,
    /// Name of this instance in the partials (owner of its partitions); default:
    /// host name, process id and a random suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            topic: "vigie.interactions".into(),
            dlq_topic: "vigie.interactions.dlq".into(),
            switches_topic: "vigie.deflections".into(),
            audit_topic: "vigie.audit".into(),
            group_id: "vigie".into(),
            payload_format: PayloadFormat::Auto,
            rebuild_span: None,
            max_clock_skew: Duration::from_secs(300),
            properties: BTreeMap::new(),
            partials: false,
            partials_topic: "vigie.partials".into(),
            partials_every: Duration::from_millis(250),
            instance_id: None,
        }
    }
}

/// Who may call the API. With no token configured, the API is open but binds loopback only.
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
    pub fn discovery_url(&self) -> String {
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

/// Alerting to chat ops: rules on the live KPIs, and the webhooks notified.
///
/// ```toml
/// [alerts]
/// state_dir = "/var/lib/vigie/alerts"
///
/// [[alerts.rules]]
/// name = "phone-sl"
/// kpi = "service_level"
/// channel = "phone"
/// comparison = "below"
/// threshold = 0.8
/// clear = 0.85
/// for = "2m"
/// severity = "critical"
/// sinks = ["ops"]
///
/// [alerts.sinks.ops]
/// kind = "slack"
/// url = "https://hooks.slack.com/services/..."   # or VIGIE__ALERTS__SINKS__OPS__URL
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Include Vigie's built-in rules (service level below target per channel, abandon
    /// spike, queue stuck, consumer lag, stale data, dead-letter growth). A rule of the
    /// same name in `rules` replaces the built-in one.
    pub default_rules: bool,
    /// How often rules are evaluated on the live state.
    #[serde(with = "humantime_serde")]
    pub evaluate_every: Duration,
    /// Where alert states and pending notifications are kept across restarts. Required
    /// when sinks are configured; without it alerts live in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Resolved alerts stay in the websocket's alert list this long.
    #[serde(with = "humantime_serde")]
    pub show_resolved_for: Duration,
    /// Rules, on top of (or replacing, by name) the built-in ones.
    pub rules: Vec<AlertRuleSettings>,
    /// Webhooks, by name (the name rules refer to).
    pub sinks: BTreeMap<String, SinkSettings>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            default_rules: true,
            evaluate_every: Duration::from_secs(1),
            state_dir: None,
            show_resolved_for: Duration::from_secs(300),
            rules: Vec::new(),
            sinks: BTreeMap::new(),
        }
    }
}

/// One alert rule: `kpi` of `scope` over `window` is `comparison` `threshold` for `for`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSettings {
    /// Unique; 1 to 64 characters among a-z, 0-9, '.', '_' and '-'.
    pub name: String,
    pub kpi: Kpi,
    /// Scope: any of the five dimensions; none = the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// `above` or `below`.
    pub comparison: Comparison,
    /// A fraction for rates (0.8), a duration for times ("10m"), a number for counts.
    pub threshold: Threshold,
    /// Resolves only once back beyond this (hysteresis); default: the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<Threshold>,
    /// KPI window (`5m` … `24h`, or `today`); for `dead_lettered`, the growth period.
    #[serde(default = "default_rule_window")]
    pub window: String,
    /// The condition must hold this long before the alert fires.
    #[serde(rename = "for", default, with = "humantime_serde")]
    pub for_: Duration,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Sinks notified; absent = every sink, `[]` = none (cockpit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<String>>,
    /// Reminder while firing and not acknowledged; absent = never.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat_every: Option<Duration>,
    /// Rates and waits are not judged on fewer contacts than this (they would flap).
    #[serde(default)]
    pub min_volume: u64,
}

fn default_rule_window() -> String {
    "15m".into()
}

fn default_severity() -> Severity {
    Severity::Warning
}

/// A threshold: a number, or a duration for time KPIs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    Number(f64),
    Duration(#[serde(with = "humantime_serde")] Duration),
}

/// One webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// `slack`, `mattermost`, `teams` or `json` (generic, signed).
    pub kind: SinkKind,
    /// The webhook URL (a secret: it carries the token). Never logged nor shown.
    pub url: Secret,
    /// HMAC-SHA256 key of the `X-Vigie-Signature` header; required for `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Longest wait for one delivery attempt.
    #[serde(default = "default_sink_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Pending notifications kept for this sink; past it the oldest is dropped.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// First retry delay; doubles on each failure, with jitter.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between two retries.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// A notification still undelivered this long after it was raised is dropped.
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Also post when someone acknowledges (incoming webhooks cannot edit the first message).
    #[serde(default)]
    pub notify_acknowledged: bool,
}

fn default_sink_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_capacity() -> usize {
    1_000
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_give_up_after() -> Duration {
    Duration::from_secs(86_400)
}

/// Payload format of a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Slack,
    Mattermost,
    Teams,
    Json,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Mattermost => "mattermost",
            SinkKind::Teams => "teams",
            SinkKind::Json => "json",
        }
    }
}

/// A secret string (webhook URL, HMAC key): `Debug` and `Serialize` show `<redacted>`,
/// so it cannot leak through logs, error messages or API responses; read it with
/// [`Secret::expose`] where it is used.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

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

/// Encoding of Kafka payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    Auto,
    Json,
    Proto,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `tracing` filter directive (`RUST_LOG` overrides it), e.g. `info,vigie=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        let sl = |threshold_s: u64, target: f64| ChannelSettings {
            short_abandon: None,
            service_level: Some(ServiceLevelSettings {
                threshold: Duration::from_secs(threshold_s),
                target,
            }),
        };
        EngineSettings {
            allowed_lateness: Duration::from_secs(300),
            repeat_horizon: Duration::from_secs(7 * 86_400),
            max_window: Duration::from_secs(86_400),
            interaction_ttl: Duration::from_secs(86_400),
            max_dimension_values: 10_000,
            time_zone: "UTC".into(),
            short_abandon: Duration::from_secs(5),
            channels: [
                ("phone", sl(20, 0.8)),
                ("chat", sl(40, 0.8)),
                ("messaging", sl(60, 0.8)),
                ("social", sl(3_600, 1.0)),
                ("email", sl(4 * 3_600, 1.0)),
                ("callback", sl(1_800, 0.9)),
            ]
            .into_iter()
            .map(|(name, c)| (name.to_string(), c))
            .collect(),
        }
    }
}

/// Every problem found in the configuration, each naming its key and the fix.
#[derive(Debug, Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A map of strings, numbers or booleans, each kept as its text (librdkafka takes text).
fn scalars_as_strings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error as _;
    BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(D::Error::custom(format!(
                "property {key:?}: expected a string, number or boolean, found {other}"
            ))),
        })
        .collect()
}

/// librdkafka property names from the environment: a name without a dot has its
/// underscores read as dots (`sasl_password` → `sasl.password`). No string property of
/// librdkafka has an underscore (only callbacks and pointers, set through its API).
fn librdkafka_keys(properties: BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .into_iter()
        .map(|(key, value)| match key.contains('.') {
            true => (key, value),
            false => (key.replace('_', "."), value),
        })
        .collect()
}

impl Settings {
    /// Loads defaults, then `file` (if given), then `VIGIE__SECTION__KEY` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, Env::prefixed("VIGIE__").split("__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(vec![format!(
                    "config file {} does not exist; pass an existing TOML file or none",
                    path.display()
                )]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut settings: Settings = figment.merge(env).extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| {
                        let key = e.path.join(".");
                        let source = e
                            .metadata
                            .as_ref()
                            .map(|m| m.name.to_string())
                            .unwrap_or_default();
                        let kind = e.kind.to_string();
                        match (key.is_empty(), source.is_empty()) {
                            (true, _) => kind,
                            (false, true) => format!("{key}: {kind}"),
                            (false, false) => format!("{key}: {kind} (from {source})"),
                        }
                    })
                    .collect(),
            )
        })?;
        settings.kafka.properties = librdkafka_keys(std::mem::take(&mut settings.kafka.properties));
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every rule and reports all violations together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.engine;
        let mut errors = Vec::new();
        if e.repeat_horizon.is_zero() {
            errors.push("engine.repeat_horizon: must be longer than 0s (e.g. \"7d\")".to_string());
        }
        if e.max_window < Duration::from_secs(1) || e.max_window.subsec_nanos() != 0 {
            errors.push(
                "engine.max_window: must be a whole number of seconds, at least 1s (e.g. \"24h\")"
                    .into(),
            );
        }
        if e.max_window > Duration::from_secs(31 * 86_400) {
            errors.push("engine.max_window: at most 31 days (e.g. \"24h\")".into());
        }
        if !(16..=10_000_000).contains(&e.max_dimension_values) {
            errors.push("engine.max_dimension_values: between 16 and 10000000 (e.g. 10000)".into());
        }
        if e.interaction_ttl <= e.allowed_lateness {
            errors.push("engine.interaction_ttl: must be longer than engine.allowed_lateness (e.g. \"24h\")".into());
        }
        if jiff::tz::TimeZone::get(&e.time_zone).is_err() {
            errors.push(format!(
                "engine.time_zone: unknown time zone {:?}; use an IANA name such as \"Europe/Paris\" or \"UTC\"",
                e.time_zone
            ));
        }
        for (name, channel) in &e.channels {
            if name.is_empty() {
                errors.push("engine.channels: a channel name is empty".into());
            }
            if let Some(sl) = &channel.service_level {
                if sl.threshold.is_zero() {
                    errors.push(format!(
                        "engine.channels.{name}.service_level.threshold: must be longer than 0s (e.g. \"20s\")"
                    ));
                }
                if !(sl.target > 0.0 && sl.target <= 1.0) {
                    errors.push(format!(
                        "engine.channels.{name}.service_level.target: {} is not a fraction in (0, 1] (e.g. 0.8 for 80 %)",
                        sl.target
                    ));
                }
            }
        }
        let k = &self.kafka;
        for (key, value) in [
            ("brokers", &k.brokers),
            ("topic", &k.topic),
            ("dlq_topic", &k.dlq_topic),
            ("group_id", &k.group_id),
        ] {
            if value.trim().is_empty() {
                errors.push(format!("kafka.{key}: must not be empty"));
            }
        }
        if k.partials {
            if k.partials_topic.trim().is_empty() {
                errors.push(
                    "kafka.partials_topic: must not be empty (e.g. \"vigie.partials\")".into(),
                );
            }
            for (key, other) in [
                ("topic", &k.topic),
                ("dlq_topic", &k.dlq_topic),
                ("switches_topic", &k.switches_topic),
                ("audit_topic", &k.audit_topic),
            ] {
                if k.partials_topic == *other {
                    errors.push(format!("kafka.partials_topic: must differ from kafka.{key} (e.g. \"vigie.partials\")"));
                }
            }
        }
        if k.partials_every < Duration::from_millis(10)
            || k.partials_every > Duration::from_secs(10)
        {
            errors
                .push("kafka.partials_every: must be between 10ms and 10s (e.g. \"250ms\")".into());
        }
        if k.instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.contains('/'))
        {
            errors.push("kafka.instance_id: must not be empty nor contain '/' (e.g. \"vigie-0\"); remove it for a generated one".into());
        }
        if k.topic == k.dlq_topic {
            errors.push(
                "kafka.dlq_topic: must differ from kafka.topic (e.g. \"vigie.interactions.dlq\")"
                    .into(),
            );
        }
        for (i, token) in self.auth.tokens.iter().enumerate() {
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
        errors.extend(self.cockpit.problems());
        if let Err(alerts) = crate::alert::compile(self) {
            errors.extend(alerts);
        }
        if let Some(oidc) = &self.auth.oidc {
            oidc.validate(&mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The engine rules, in milliseconds. Call on validated settings.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let e = &self.engine;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let time_zone = jiff::tz::TimeZone::get(&e.time_zone)
            .map_err(|err| ConfigError(vec![format!("engine.time_zone: {err}")]))?;
        let rules = |c: Option<&ChannelSettings>| ChannelRules {
            sl_threshold_ms: c
                .and_then(|c| c.service_level.as_ref())
                .map(|sl| ms(sl.threshold)),
            short_abandon_ms: ms(c.and_then(|c| c.short_abandon).unwrap_or(e.short_abandon)),
        };
        Ok(EngineConfig {
            allowed_lateness_ms: ms(e.allowed_lateness),
            repeat_horizon_ms: ms(e.repeat_horizon),
            max_window_ms: ms(e.max_window),
            interaction_ttl_ms: ms(e.interaction_ttl),
            time_zone,
            channels: e
                .channels
                .iter()
                .map(|(n, c)| (n.clone(), rules(Some(c))))
                .collect(),
            default_rules: rules(None),
            max_dimension_values: e.max_dimension_values,
            ..EngineConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_toml(toml: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile_in_target();
        file.1.write_all(toml.as_bytes()).expect("write");
        Settings::load_from(Some(&file.0), Env::prefixed("VIGIE_TEST_NONE__"))
    }

    fn tempfile_in_target() -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "vigie-config-{}-{}.toml",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let file = std::fs::File::create(&path).expect("create");
        (path, file)
    }

    #[test]
    fn defaults_match_the_domain_norms() {
        let cfg = Settings::default().engine_config().expect("valid");
        assert_eq!(cfg.channels["phone"].sl_threshold_ms, Some(20_000));
        assert_eq!(cfg.channels["email"].sl_threshold_ms, Some(4 * 3_600_000));
        assert_eq!(
            cfg.default_rules.sl_threshold_ms, None,
            "visual_ivr & unknown: no target"
        );
        assert_eq!(cfg.allowed_lateness_ms, 300_000);
        assert_eq!(cfg.repeat_horizon_ms, 7 * 86_400_000);
    }

    #[test]
    fn nf345_is_expressible_and_merges_over_defaults() {
        let s = load_toml(
            "[engine.channels.phone.service_level]\nthreshold = \"90s\"\ntarget = 0.8\n[engine]\ntime_zone = \"Europe/Paris\"\n",
        )
        .expect("valid");
        let cfg = s.engine_config().expect("valid");
        assert_eq!(cfg.channels["phone"].sl_threshold_ms, Some(90_000));
        assert_eq!(
            cfg.channels["chat"].sl_threshold_ms,
            Some(40_000),
            "other defaults kept"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_all_reported_by_key() {
        let err = load_toml("[engine]\nlateness = \"5m\"\n").expect_err("unknown key");
        assert!(err.to_string().contains("lateness"), "{err}");
        let err = load_toml(
            "[engine]\ntime_zone = \"Mars/Olympus\"\nrepeat_horizon = \"0s\"\n[engine.channels.chat.service_level]\nthreshold = \"40s\"\ntarget = 80\n",
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.to_string().contains("engine.time_zone"), "{err}");
        assert!(
            err.to_string()
                .contains("engine.channels.chat.service_level.target"),
            "{err}"
        );
        let err =
            load_toml("[engine]\nallowed_lateness = \"five minutes\"\n").expect_err("bad duration");
        assert!(err.to_string().contains("engine.allowed_lateness"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test harness returns its own error type
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VIGIE__ENGINE__ALLOWED_LATENESS", "2m");
            jail.create_file("vigie.toml", "[engine]\nallowed_lateness = \"10m\"\n")?;
            let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.engine.allowed_lateness, Duration::from_secs(120));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test harness returns its own error type
    fn librdkafka_properties_come_from_the_environment_with_underscores_for_dots() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VIGIE__KAFKA__PROPERTIES__SASL_PASSWORD", "s3cr3t");
            jail.set_env("VIGIE__KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS", "100");
            jail.create_file(
                "vigie.toml",
                "[kafka.properties]\n\"sasl.username\" = \"vigie\"\n\"sasl.password\" = \"change-me\"\n",
            )?;
            let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
            let p = &s.kafka.properties;
            assert_eq!(p["sasl.username"], "vigie");
            assert_eq!(p["sasl.password"], "s3cr3t", "the environment wins");
            assert_eq!(p["fetch.wait.max.ms"], "100");
            assert_eq!(p.len(), 3, "{p:?}");
            Ok(())
        });
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.example.toml");
        let s = Settings::load_from(Some(&path), Env::prefixed("VIGIE_TEST_NONE__"))
            .expect("example is valid");
        assert_eq!(s.engine.time_zone, "Europe/Paris");
        assert_eq!(
            s.engine_config().expect("valid").channels["callback"].short_abandon_ms,
            0
        );
        assert_eq!(s.alerts.rules[0].name, "phone-nf345");
        assert_eq!(s.alerts.rules[0].for_, Duration::from_secs(120));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test harness returns its own error type
    fn alert_sinks_load_from_file_and_environment_and_secrets_stay_hidden() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "VIGIE__ALERTS__SINKS__OPS__URL",
                "https://hooks.slack.com/services/T0/B0/s3cr3t",
            );
            jail.create_file(
                "vigie.toml",
                "[alerts]\nstate_dir = \"state\"\n[alerts.sinks.ops]\nkind = \"slack\"\n\
                 [alerts.sinks.hook]\nkind = \"json\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"k3y-k3y-k3y-k3y-k3y\"\n\
                 [[alerts.rules]]\nname = \"stuck\"\nkpi = \"oldest_wait\"\nqueue = \"billing\"\n\
                 comparison = \"above\"\nthreshold = \"10m\"\nclear = \"5m\"\nsinks = [\"ops\"]\n",
            )?;
            let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
            let ops = &s.alerts.sinks["ops"];
            assert_eq!(
                ops.url.expose(),
                "https://hooks.slack.com/services/T0/B0/s3cr3t"
            );
            assert_eq!(ops.retry_max, Duration::from_secs(300), "defaults");
            let shown = format!("{s:?}");
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("k3y"),
                "{shown}"
            );
            let rules = crate::alert::compile(&s).map_err(|e| e.join(", "))?;
            let stuck = rules.iter().find(|r| r.name == "stuck").expect("rule");
            assert_eq!((stuck.threshold, stuck.clear), (600_000.0, 300_000.0));
            Ok(())
        });
        let err = load_toml("[[alerts.rules]]\nname = \"x\"\nkpi = \"happiness\"\n")
            .expect_err("unknown kpi");
        assert!(err.to_string().contains("kpi"), "{err}");
    }

    #[test]
    fn the_managed_kafka_example_passes_properties_through() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.managed-kafka.toml");
        let s = Settings::load_from(Some(&path), Env::prefixed("VIGIE_TEST_NONE__"))
            .expect("example is valid");
        assert_eq!(s.kafka.properties["security.protocol"], "SASL_SSL");
        assert_eq!(s.kafka.group_id, "vigie-hypervision");
    }

    /// The configuration shipped in the Kubernetes ConfigMap is valid as it stands.
    #[test]
    fn the_kubernetes_configmap_holds_a_valid_scale_out_config() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/configmap.yaml");
        let yaml = std::fs::read_to_string(&path).expect("configmap");
        // The block scalar under `vigie.toml: |`, indented by four spaces.
        let toml: String = yaml
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("vigie.toml: |"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
            .collect();
        assert!(
            toml.contains("[kafka]"),
            "no vigie.toml block found in {}",
            path.display()
        );
        let s = load_toml(&toml).expect("the ConfigMap's vigie.toml is valid");
        assert!(s.kafka.partials, "replicas merge their partials");
        assert_eq!(s.kafka.properties["heartbeat.interval.ms"], "3000");
    }

    #[test]
    fn tokens_are_checked_and_roles_parsed() {
        let s = load_toml(&format!(
            "[[auth.tokens]]\nname = \"wall\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            "a".repeat(64)
        ))
        .expect("valid");
        assert_eq!(s.auth.tokens[0].role, Role::Viewer);
        assert!(s.auth.enabled());
        let err =
            load_toml("[[auth.tokens]]\nname = \"\"\nrole = \"admin\"\nsha256 = \"secret\"\n")
                .expect_err("invalid");
        assert_eq!(err.0.len(), 2, "{err}");
        let err = load_toml(&format!(
            "[[auth.tokens]]\nname = \"x\"\nrole = \"god\"\nsha256 = \"{}\"\n",
            "a".repeat(64)
        ))
        .expect_err("unknown role");
        assert!(err.to_string().contains("role"), "{err}");
    }

    #[test]
    fn the_commented_oidc_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.example.toml");
        let text = std::fs::read_to_string(path).expect("example");
        let block: String = text
            .lines()
            .skip_while(|l| *l != "# [auth.oidc]")
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let s = load_toml(&block).expect("valid");
        assert!(s.auth.enabled(), "OIDC alone counts as authentication");
        let oidc = s.auth.oidc.expect("oidc");
        assert_eq!(oidc.role_claim, "realm_access.roles");
        assert_eq!(oidc.roles["vigie-supervisors"], Role::Supervisor);
        assert_eq!(oidc.leeway, Duration::from_secs(60));
    }

    #[test]
    fn oidc_settings_take_defaults_and_every_problem_is_named() {
        let s = load_toml(
            "[auth.oidc]\nissuer = \"https://sso.example.com/\"\naudience = \"vigie\"\n[auth.oidc.roles]\nwall = \"viewer\"\n",
        )
        .expect("valid");
        let oidc = s.auth.oidc.expect("oidc");
        assert_eq!(oidc.name_claim, "preferred_username");
        assert_eq!(oidc.algorithms, [JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
        assert_eq!(
            oidc.discovery_url(),
            "https://sso.example.com/.well-known/openid-configuration"
        );
        let err = load_toml(
            "[auth.oidc]\nissuer = \"sso.example.com\"\naudience = \"\"\nrole_claim = \"a..b\"\nalgorithms = []\nleeway = \"1h\"\nroles = {}\n",
        )
        .expect_err("invalid");
        for key in [
            "auth.oidc.issuer",
            "auth.oidc.audience",
            "auth.oidc.role_claim",
            "auth.oidc.algorithms",
            "auth.oidc.leeway",
            "auth.oidc.roles",
        ] {
            assert!(err.to_string().contains(key), "{key} in {err}");
        }
        assert_eq!(err.0.len(), 6, "{err}");
        let err = load_toml("[auth.oidc]\naudience = \"vigie\"\nroles = {}\n")
            .expect_err("missing issuer");
        assert!(err.to_string().contains("issuer"), "{err}");
        let err = load_toml(
            "[auth.oidc]\nissuer = \"https://sso.example.com\"\naudience = \"vigie\"\nroles = {}\nalgorithms = [\"HS256\"]\n",
        )
        .expect_err("a shared-secret algorithm");
        assert!(
            err.to_string().contains("auth.oidc.algorithms") && err.to_string().contains("HS256"),
            "{err}"
        );
    }

    #[test]
    fn kafka_settings_are_checked() {
        let err = load_toml("[kafka]\ntopic = \"t\"\ndlq_topic = \"t\"\nbrokers = \" \"\n")
            .expect_err("invalid");
        assert!(err.to_string().contains("kafka.dlq_topic"), "{err}");
        assert!(err.to_string().contains("kafka.brokers"), "{err}");
        let err = load_toml("[kafka]\npartials = true\npartials_topic = \"vigie.interactions\"\npartials_every = \"1ms\"\ninstance_id = \"a/b\"\n")
            .expect_err("invalid");
        for key in [
            "kafka.partials_topic",
            "kafka.partials_every",
            "kafka.instance_id",
        ] {
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let err = load_toml("[kafka]\npayload_format = \"xml\"\n").expect_err("invalid");
        assert!(err.to_string().contains("payload_format"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Settings::load(Some(Path::new("/nonexistent/vigie.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/vigie.toml"), "{err}");
    }
}
