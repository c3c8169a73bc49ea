//! Owns the `[alerts]` section's types: rules, thresholds, webhook sinks and the
//! [`Secret`] wrapper that keeps webhook URLs and keys out of logs and responses. The rules
//! are checked by [`crate::alert::compile`], which turns them into evaluable rules.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Kpi;
use vigie_proto::words::Lang;
use vigie_proto::{Comparison, Severity};

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
    /// Language of the messages posted to `slack`, `mattermost` and `teams` sinks: `en`
    /// or `fr` (the wall's words: "Téléphone — Niveau de service 62 % (seuil 80 %)").
    /// The `json` sink is for programs: its fields do not change.
    #[serde(default)]
    pub language: Lang,
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
