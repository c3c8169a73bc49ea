//! Owns the `[alerts]` section: rules, thresholds, webhook sinks and the [`Secret`]
//! wrapper that keeps webhook URLs and keys out of logs and responses; Vigie's built-in
//! rules; and every check of them, so that the alerting service only builds rules from
//! valid settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_proto::words::Lang;
use vigie_proto::{is_valid_name, Comparison, DimensionKey, Kpi, Severity, Unit};

use super::engine::EngineSettings;
use super::window::WindowSpec;

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
    /// spike, queue stuck, consumer lag, stale data, dead-letter growth, dead-lettering
    /// failing, view not whole). A rule of the
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

impl SinkSettings {
    /// A sink of `kind` posting to `url`, with every default of the file format (10 s
    /// per attempt, 1,000 pending, retries from 1 s to 5 min, given up after 24 h).
    pub fn new(kind: SinkKind, url: Secret) -> SinkSettings {
        SinkSettings {
            kind,
            url,
            secret: None,
            timeout: default_sink_timeout(),
            queue_capacity: default_queue_capacity(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            give_up_after: default_give_up_after(),
            notify_acknowledged: false,
            language: Lang::default(),
        }
    }
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

impl Threshold {
    /// The value in `unit` (milliseconds for times), or why it cannot be one.
    pub fn value(self, kpi: Kpi) -> Result<f64, String> {
        match (kpi.unit(), self) {
            (Unit::Millis, Threshold::Duration(d)) => Ok(millis(d) as f64),
            (Unit::Millis, Threshold::Number(_)) => {
                Err(format!("{kpi} is a time: write a duration (e.g. \"10m\")"))
            }
            (_, Threshold::Duration(_)) => Err(format!("{kpi} is not a time: write a number")),
            (Unit::Rate, Threshold::Number(n)) if !(0.0..=1.0).contains(&n) => Err(format!(
                "{n} is not a fraction in [0, 1] (e.g. 0.8 for 80 %)"
            )),
            (Unit::Change, Threshold::Number(n)) if !(-1.0..=100.0).contains(&n) => Err(format!(
                "{n} is not a change from -1 (everything gone) up (e.g. 0.5 for +50 %, -0.5 for -50 %)"
            )),
            (_, Threshold::Number(n)) if !n.is_finite() => Err("must be a finite number".into()),
            (_, Threshold::Number(n)) => Ok(n),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AlertRuleSettings {
    /// Where the rule applies: the dimensions it names; none = the total.
    pub fn scope(&self) -> DimensionKey {
        DimensionKey {
            channel: self.channel.clone(),
            queue: self.queue.clone(),
            reason: self.reason.clone(),
            segment: self.segment.clone(),
            site: self.site.clone(),
        }
    }
}

/// A rule in force, and whether it is one of Vigie's built-in rules.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInForce {
    pub rule: AlertRuleSettings,
    pub builtin: bool,
}

impl AlertSettings {
    /// The rules in force, by name: the built-in ones (with `default_rules`), replaced by
    /// configured ones of the same name.
    pub(crate) fn rules_in_force(&self, engine: &EngineSettings) -> Vec<RuleInForce> {
        let mut by_name: BTreeMap<String, RuleInForce> = BTreeMap::new();
        if self.default_rules {
            for rule in builtin_rules(engine) {
                by_name.insert(
                    rule.name.clone(),
                    RuleInForce {
                        rule,
                        builtin: true,
                    },
                );
            }
        }
        for rule in &self.rules {
            by_name.insert(
                rule.name.clone(),
                RuleInForce {
                    rule: rule.clone(),
                    builtin: false,
                },
            );
        }
        by_name.into_values().collect()
    }

    /// Pushes one line per problem of the sinks and of every rule in force, each naming
    /// its key and the fix.
    pub(super) fn validate(&self, engine: &EngineSettings, errors: &mut Vec<String>) {
        if self.evaluate_every < Duration::from_millis(10) {
            errors.push("alerts.evaluate_every: at least 10ms (e.g. \"1s\")".to_string());
        }
        if !self.sinks.is_empty() && self.state_dir.is_none() {
            errors.push(
                "alerts.state_dir: required when alerts.sinks are configured (pending notifications \
                 are kept there across restarts), e.g. \"/var/lib/vigie/alerts\""
                    .into(),
            );
        }
        for (name, sink) in &self.sinks {
            sink.validate(&format!("alerts.sinks.{name}"), name, errors);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !seen.insert(r.name.as_str()) {
                errors.push(format!(
                    "alerts.rules[{i}].name: {:?} is used twice; rule names are unique",
                    r.name
                ));
            }
        }
        for RuleInForce { rule, .. } in self.rules_in_force(engine) {
            let key = self
                .rules
                .iter()
                .position(|r| r.name == rule.name)
                .map_or_else(
                    || format!("built-in rule {}", rule.name),
                    |i| format!("alerts.rules[{i}]"),
                );
            self.validate_rule(&rule, &key, engine, errors);
        }
    }

    fn validate_rule(
        &self,
        r: &AlertRuleSettings,
        key: &str,
        engine: &EngineSettings,
        errors: &mut Vec<String>,
    ) {
        if !is_valid_name(&r.name) {
            errors.push(format!(
                "{key}.name: {:?} must be 1 to 64 characters among a-z, 0-9, '.', '_' and '-'",
                r.name
            ));
        }
        if r.name.starts_with("autopilot.") {
            errors.push(format!(
                "{key}.name: {:?}: names starting with \"autopilot.\" are the autopilot's alerts; choose another",
                r.name
            ));
        }
        let threshold = r.threshold.value(r.kpi);
        let clear = r.clear.map(|c| c.value(r.kpi));
        for (field, value) in [("threshold", Some(&threshold)), ("clear", clear.as_ref())] {
            if let Some(Err(problem)) = value {
                errors.push(format!("{key}.{field}: {problem}"));
            }
        }
        if let (Ok(threshold), Some(Ok(clear))) = (threshold, clear) {
            let consistent = match r.comparison {
                Comparison::Above => clear <= threshold,
                Comparison::Below => clear >= threshold,
            };
            if !consistent {
                let (bound, side) = match r.comparison {
                    Comparison::Above => ("at most the threshold", "above"),
                    Comparison::Below => ("at least the threshold", "below"),
                };
                errors.push(format!(
                    "{key}.clear: must be on the healthy side of the threshold ({bound} for \"{side}\")"
                ));
            }
        }
        match r.window.parse::<WindowSpec>() {
            Ok(WindowSpec::Last(w)) if w > millis(engine.max_window) => errors.push(format!(
                "{key}.window: {} is longer than engine.max_window ({})",
                r.window,
                humantime::format_duration(engine.max_window)
            )),
            Ok(WindowSpec::Today)
                if matches!(r.kpi, Kpi::DeadLettered | Kpi::DeadLetterFailures) =>
            {
                errors.push(format!(
                    "{key}.window: {} counts over a duration (e.g. \"15m\"), not today",
                    r.kpi
                ))
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{key}.window: {e}")),
        }
        for s in r.sinks.iter().flatten() {
            if !self.sinks.contains_key(s) {
                errors.push(format!(
                    "{key}.sinks: no sink {s:?}; declare [alerts.sinks.{s}] or remove it"
                ));
            }
        }
        if r.repeat_every.is_some_and(|d| d < Duration::from_secs(1)) {
            errors.push(format!(
                "{key}.repeat_every: at least 1s (e.g. \"1h\"), or leave it out"
            ));
        }
        if r.kpi.is_system() && r.scope() != DimensionKey::default() {
            errors.push(format!(
                "{key}: {} is a health figure of the consumer: it has no channel/queue/reason/segment/site scope",
                r.kpi
            ));
        }
    }
}

impl SinkSettings {
    fn validate(&self, key: &str, name: &str, errors: &mut Vec<String>) {
        if !is_valid_name(name) {
            errors.push(format!(
                "{key}: a sink name is 1 to 64 characters among a-z, 0-9, '.', '_' and '-'"
            ));
        }
        // The URL is a secret: say what is wrong with it, never what it is.
        match reqwest::Url::parse(self.url.expose()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => errors.push(format!(
                "{key}.url: not an http(s) URL (the value is not shown: it is a secret)"
            )),
        }
        match (self.kind, &self.secret) {
            (SinkKind::Json, None) => errors.push(format!(
                "{key}.secret: required for kind \"json\": the HMAC-SHA256 key of X-Vigie-Signature"
            )),
            (SinkKind::Json, Some(s)) if s.expose().len() < 16 => errors.push(format!(
                "{key}.secret: at least 16 characters (e.g. openssl rand -hex 32)"
            )),
            (SinkKind::Json, Some(_)) | (_, None) => {}
            (kind, Some(_)) => errors.push(format!(
                "{key}.secret: only the \"json\" kind signs its payloads, not {:?}",
                kind.as_str()
            )),
        }
        if self.timeout.is_zero() {
            errors.push(format!(
                "{key}.timeout: must be longer than 0s (e.g. \"10s\")"
            ));
        }
        if self.queue_capacity == 0 {
            errors.push(format!("{key}.queue_capacity: at least 1 (e.g. 1000)"));
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            errors.push(format!(
                "{key}.retry_initial / retry_max: 0 < retry_initial <= retry_max (e.g. \"1s\" and \"5m\")"
            ));
        }
    }
}

/// Vigie's default rules, from the engine's channel targets.
pub fn builtin_rules(engine: &EngineSettings) -> Vec<AlertRuleSettings> {
    let rule =
        |name: String, kpi, comparison, threshold, clear, for_s: u64, severity| AlertRuleSettings {
            name,
            kpi,
            channel: None,
            queue: None,
            reason: None,
            segment: None,
            site: None,
            comparison,
            threshold,
            clear: Some(clear),
            window: "15m".into(),
            for_: Duration::from_secs(for_s),
            severity,
            sinks: None,
            repeat_every: None,
            min_volume: 0,
        };
    let mut rules = Vec::new();
    for (channel, c) in &engine.channels {
        // An invalid target is reported by the engine's own checks.
        let Some(sl) = c
            .service_level
            .as_ref()
            .filter(|sl| sl.target > 0.0 && sl.target <= 1.0)
        else {
            continue;
        };
        let mut r = rule(
            format!("service-level-{channel}"),
            Kpi::ServiceLevel,
            Comparison::Below,
            Threshold::Number(sl.target),
            // Five points of hysteresis, rounded (0.8 + 0.05 is not 0.85 in binary).
            Threshold::Number(((sl.target + 0.05).min(1.0) * 1000.0).round() / 1000.0),
            120,
            Severity::Critical,
        );
        r.channel = Some(channel.clone());
        r.min_volume = 20;
        rules.push(r);
        // A queue is stuck when its oldest contact waits far beyond the channel's norm.
        let stuck = (sl.threshold * 2).max(Duration::from_secs(600));
        let mut r = rule(
            format!("queue-stuck-{channel}"),
            Kpi::OldestWait,
            Comparison::Above,
            Threshold::Duration(stuck),
            Threshold::Duration(stuck / 2),
            0,
            Severity::Critical,
        );
        r.channel = Some(channel.clone());
        rules.push(r);
    }
    let mut abandon = rule(
        "abandon-spike".into(),
        Kpi::AbandonRate,
        Comparison::Above,
        Threshold::Number(0.2),
        Threshold::Number(0.15),
        120,
        Severity::Warning,
    );
    abandon.min_volume = 20;
    rules.push(abandon);
    rules.push(rule(
        "consumer-lag".into(),
        Kpi::ConsumerLag,
        Comparison::Above,
        Threshold::Number(10_000.0),
        Threshold::Number(1_000.0),
        60,
        Severity::Warning,
    ));
    rules.push(rule(
        "stale-data".into(),
        Kpi::Stale,
        Comparison::Above,
        Threshold::Number(0.5),
        Threshold::Number(0.5),
        30,
        Severity::Critical,
    ));
    rules.push(rule(
        "dead-letter-failing".into(),
        Kpi::DeadLetterFailures,
        Comparison::Above,
        Threshold::Number(0.0),
        Threshold::Number(0.0),
        0,
        Severity::Critical,
    ));
    rules.push(rule(
        "view-not-whole".into(),
        Kpi::PartitionsNotLive,
        Comparison::Above,
        Threshold::Number(0.0),
        Threshold::Number(0.0),
        600,
        Severity::Warning,
    ));
    rules.push(rule(
        "dead-letter-growth".into(),
        Kpi::DeadLettered,
        Comparison::Above,
        Threshold::Number(100.0),
        Threshold::Number(10.0),
        0,
        Severity::Warning,
    ));
    // Against the usual volume of the hour (weeks of history): a drop is as telling as
    // a spike (a dead feed or a broken IVR looks like a quiet hour).
    if engine.baseline_weeks > 0 {
        for (name, comparison, threshold, clear) in [
            ("volume-spike", Comparison::Above, 0.5, 0.3),
            ("volume-drop", Comparison::Below, -0.5, -0.3),
        ] {
            let mut r = rule(
                name.into(),
                Kpi::VolumeVsBaseline,
                comparison,
                Threshold::Number(threshold),
                Threshold::Number(clear),
                600,
                Severity::Warning,
            );
            r.window = "30m".into();
            r.min_volume = 50;
            rules.push(r);
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn sink(kind: SinkKind, secret: Option<&str>) -> SinkSettings {
        SinkSettings {
            secret: secret.map(Secret::new),
            ..SinkSettings::new(kind, Secret::new("https://hooks.example/T0/B0/XXXX"))
        }
    }

    fn problems(s: &Settings) -> String {
        s.validate().expect_err("invalid").0.join("\n")
    }

    #[test]
    fn every_problem_of_a_rule_is_named() {
        let mut s = Settings::default();
        s.alerts.state_dir = Some("/tmp/x".into());
        s.alerts
            .sinks
            .insert("ops".into(), sink(SinkKind::Slack, None));
        let mut r = builtin_rules(&s.engine)
            .into_iter()
            .find(|r| r.name == "abandon-spike")
            .expect("built-in");
        r.threshold = Threshold::Number(0.3);
        r.sinks = Some(vec!["ops".into()]);
        s.alerts.rules.push(r.clone());
        assert!(s.validate().is_ok());

        r.name = "Bad Name".into();
        r.threshold = Threshold::Number(1.5);
        r.clear = Some(Threshold::Duration(Duration::from_secs(60)));
        r.window = "forever".into();
        r.sinks = Some(vec!["pager".into()]);
        s.alerts.rules.push(r);
        s.alerts
            .sinks
            .insert("hook".into(), sink(SinkKind::Json, None));
        s.alerts.state_dir = None;
        let all = problems(&s);
        for needle in [
            "alerts.state_dir",
            "alerts.sinks.hook.secret",
            "alerts.rules[1].name",
            "alerts.rules[1].threshold",
            "alerts.rules[1].clear",
            "alerts.rules[1].window",
            "alerts.rules[1].sinks",
        ] {
            assert!(all.contains(needle), "{needle} in {all}");
        }
        assert!(!all.contains("hooks.example"), "the URL is a secret: {all}");
    }

    #[test]
    fn a_bad_url_is_reported_without_showing_it() {
        let mut s = Settings::default();
        s.alerts.state_dir = Some("/tmp/x".into());
        let mut bad = sink(SinkKind::Teams, Some("0123456789abcdef"));
        bad.url = Secret::new("not a url with token xoxb-123");
        s.alerts.sinks.insert("teams".into(), bad);
        let all = problems(&s);
        assert!(all.contains("alerts.sinks.teams.url"), "{all}");
        assert!(all.contains("alerts.sinks.teams.secret"), "{all}");
        assert!(!all.contains("xoxb"), "{all}");
    }

    #[test]
    fn thresholds_read_in_the_unit_of_their_kpi() {
        let ten_minutes = Threshold::Duration(Duration::from_secs(600));
        assert_eq!(ten_minutes.value(Kpi::OldestWait), Ok(600_000.0));
        assert!(ten_minutes.value(Kpi::AbandonRate).is_err());
        assert!(Threshold::Number(0.5).value(Kpi::OldestWait).is_err());
        assert!(Threshold::Number(1.5).value(Kpi::AbandonRate).is_err());
        assert_eq!(Threshold::Number(1.5e4).value(Kpi::ConsumerLag), Ok(1.5e4));
        assert!(Threshold::Number(f64::NAN).value(Kpi::ConsumerLag).is_err());
    }
}
