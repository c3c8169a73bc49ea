//! Owns the rule model: the KPIs a rule may watch, compiling the configured and built-in
//! rules into [`Rule`]s, and checking them (every problem named by its key).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_proto::{AlertRule, Comparison, DimensionKey, Kpis, Severity};

use crate::config::{AlertRuleSettings, Settings, Threshold};
use crate::engine::WindowSpec;

/// What a rule watches: a KPI of the snapshot, or a health figure of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kpi {
    ServiceLevel,
    AnswerRate,
    AbandonRate,
    DeflectionRate,
    RepeatRate,
    CrossChannelRepeatRate,
    OnceAndDoneRate,
    /// Average speed of answer (a duration).
    Asa,
    /// Average handling time (a duration).
    Aht,
    /// 90th percentile of waits (a duration).
    WaitP90,
    Arrivals,
    /// Contacts waiting now.
    InQueue,
    /// Age of the oldest contact waiting now (a duration): a stuck queue.
    OldestWait,
    /// Records behind the high watermark, summed over the partitions held.
    ConsumerLag,
    /// 1 while the broker is unreachable (the numbers shown are the last known), else 0.
    Stale,
    /// Records sent to the dead-letter topic during the rule's window.
    DeadLettered,
    /// Time since the newest event (a duration, by this server's clock): a feed that
    /// stopped upstream of Kafka, which the broker's health does not show.
    Silence,
}

/// The unit of a KPI's values and thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A fraction in 0..=1, shown as a percentage.
    Rate,
    /// Milliseconds; thresholds are written as durations ("10m").
    Millis,
    Count,
}

impl Kpi {
    pub fn as_str(self) -> &'static str {
        match self {
            Kpi::ServiceLevel => "service_level",
            Kpi::AnswerRate => "answer_rate",
            Kpi::AbandonRate => "abandon_rate",
            Kpi::DeflectionRate => "deflection_rate",
            Kpi::RepeatRate => "repeat_rate",
            Kpi::CrossChannelRepeatRate => "cross_channel_repeat_rate",
            Kpi::OnceAndDoneRate => "once_and_done_rate",
            Kpi::Asa => "asa",
            Kpi::Aht => "aht",
            Kpi::WaitP90 => "wait_p90",
            Kpi::Arrivals => "arrivals",
            Kpi::InQueue => "in_queue",
            Kpi::OldestWait => "oldest_wait",
            Kpi::ConsumerLag => "consumer_lag",
            Kpi::Stale => "stale",
            Kpi::DeadLettered => "dead_lettered",
            Kpi::Silence => "silence",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Kpi::ServiceLevel
            | Kpi::AnswerRate
            | Kpi::AbandonRate
            | Kpi::DeflectionRate
            | Kpi::RepeatRate
            | Kpi::CrossChannelRepeatRate
            | Kpi::OnceAndDoneRate => Unit::Rate,
            Kpi::Asa | Kpi::Aht | Kpi::WaitP90 | Kpi::OldestWait | Kpi::Silence => Unit::Millis,
            Kpi::Arrivals | Kpi::InQueue | Kpi::ConsumerLag | Kpi::Stale | Kpi::DeadLettered => {
                Unit::Count
            }
        }
    }

    /// Read from the consumer's health rather than from a KPI snapshot.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            Kpi::ConsumerLag | Kpi::Stale | Kpi::DeadLettered | Kpi::Silence
        )
    }

    /// Judged only once the partitions are rebuilt (partial numbers would mislead).
    pub fn needs_ready(self) -> bool {
        !matches!(self, Kpi::Stale | Kpi::DeadLettered)
    }

    /// The value in `kpis`, `None` when undefined or judged on fewer than `min_volume`
    /// contacts.
    pub fn read(self, kpis: &Kpis, min_volume: u64) -> Option<f64> {
        let (value, volume) = match self {
            Kpi::ServiceLevel => (kpis.service_level, kpis.answered + kpis.abandoned),
            Kpi::AnswerRate => (kpis.answer_rate, kpis.answered + kpis.abandoned),
            Kpi::AbandonRate => (kpis.abandon_rate, kpis.answered + kpis.abandoned),
            Kpi::DeflectionRate => (kpis.deflection_rate, kpis.arrivals),
            Kpi::RepeatRate => (kpis.repeat_rate, kpis.arrivals),
            Kpi::CrossChannelRepeatRate => (kpis.cross_channel_repeat_rate, kpis.arrivals),
            Kpi::OnceAndDoneRate => (kpis.once_and_done_rate, kpis.arrivals),
            Kpi::Asa => (kpis.asa_ms, kpis.answered),
            Kpi::Aht => (kpis.aht_ms, kpis.answered),
            Kpi::WaitP90 => (kpis.wait_p90_ms.map(|v| v as f64), kpis.answered),
            Kpi::Arrivals => (Some(kpis.arrivals as f64), u64::MAX),
            Kpi::InQueue => (Some(kpis.in_queue as f64), u64::MAX),
            // No contact waiting: nothing is stuck.
            Kpi::OldestWait => (Some(kpis.oldest_wait_ms.unwrap_or(0) as f64), u64::MAX),
            Kpi::ConsumerLag | Kpi::Stale | Kpi::DeadLettered | Kpi::Silence => (None, 0),
        };
        value.filter(|_| volume >= min_volume)
    }
}

/// A compiled rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kpi: Kpi,
    pub scope: DimensionKey,
    pub comparison: Comparison,
    pub threshold: f64,
    pub clear: f64,
    pub window: WindowSpec,
    pub for_ms: i64,
    pub severity: Severity,
    pub sinks: Vec<String>,
    pub repeat_every_ms: Option<i64>,
    pub min_volume: u64,
    pub builtin: bool,
}

impl Rule {
    /// The condition holds: beyond the threshold.
    pub fn breaching(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }

    /// Back to normal: on the right side of the clear threshold (no value: nothing wrong).
    pub fn cleared(&self, value: Option<f64>) -> bool {
        value.is_none_or(|v| match self.comparison {
            Comparison::Above => v <= self.clear,
            Comparison::Below => v >= self.clear,
        })
    }

    /// `total`, or `channel=phone queue=billing`.
    pub fn scope_text(&self) -> String {
        scope_text(&self.scope)
    }

    /// The read-only view of the API.
    pub fn view(&self) -> AlertRule {
        AlertRule {
            name: self.name.clone(),
            kpi: self.kpi.as_str().into(),
            scope: self.scope.clone(),
            comparison: self.comparison,
            threshold: self.threshold,
            clear: self.clear,
            window: self.window.to_string(),
            for_ms: self.for_ms,
            severity: self.severity,
            sinks: self.sinks.clone(),
            repeat_every_ms: self.repeat_every_ms,
            min_volume: self.min_volume,
            builtin: self.builtin,
        }
    }

    /// A value in the KPI's unit, for humans: `62.0 %`, `12m 30s`, `1500`.
    pub fn format(&self, value: f64) -> String {
        format_value(self.kpi.unit(), value)
    }
}

pub fn scope_text(scope: &DimensionKey) -> String {
    let parts: Vec<String> = [
        ("channel", &scope.channel),
        ("queue", &scope.queue),
        ("reason", &scope.reason),
        ("segment", &scope.segment),
        ("site", &scope.site),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "total".into()
    } else {
        parts.join(" ")
    }
}

pub fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Rate => format!("{:.1} %", value * 100.0),
        Unit::Millis => {
            let secs = (value.max(0.0) / 1000.0).round() as u64;
            humantime::format_duration(Duration::from_secs(secs)).to_string()
        }
        Unit::Count => format!("{value}"),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Vigie's default rules, from the engine's channel targets.
pub fn builtin_rules(settings: &Settings) -> Vec<AlertRuleSettings> {
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
    for (channel, c) in &settings.engine.channels {
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
        "dead-letter-growth".into(),
        Kpi::DeadLettered,
        Comparison::Above,
        Threshold::Number(100.0),
        Threshold::Number(10.0),
        0,
        Severity::Warning,
    ));
    rules
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// The rules in force (built-in ones first, replaced by configured ones of the same
/// name), checked; or every problem, naming its key and the fix.
pub fn compile(settings: &Settings) -> Result<Vec<Rule>, Vec<String>> {
    let a = &settings.alerts;
    let mut errors = Vec::new();
    if a.evaluate_every < Duration::from_millis(10) {
        errors.push("alerts.evaluate_every: at least 10ms (e.g. \"1s\")".to_string());
    }
    if !a.sinks.is_empty() && a.state_dir.is_none() {
        errors.push(
            "alerts.state_dir: required when alerts.sinks are configured (pending notifications \
             are kept there across restarts), e.g. \"/var/lib/vigie/alerts\""
                .into(),
        );
    }
    for (name, sink) in &a.sinks {
        let key = format!("alerts.sinks.{name}");
        if !valid_name(name) {
            errors.push(format!(
                "{key}: a sink name is 1 to 64 characters among a-z, 0-9, '.', '_' and '-'"
            ));
        }
        // The URL is a secret: say what is wrong with it, never what it is.
        match reqwest::Url::parse(sink.url.expose()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => errors.push(format!(
                "{key}.url: not an http(s) URL (the value is not shown: it is a secret)"
            )),
        }
        match (sink.kind, &sink.secret) {
            (crate::config::SinkKind::Json, None) => errors.push(format!(
                "{key}.secret: required for kind \"json\": the HMAC-SHA256 key of X-Vigie-Signature"
            )),
            (crate::config::SinkKind::Json, Some(s)) if s.expose().len() < 16 => errors.push(
                format!("{key}.secret: at least 16 characters (e.g. openssl rand -hex 32)"),
            ),
            (crate::config::SinkKind::Json, Some(_)) | (_, None) => {}
            (kind, Some(_)) => errors.push(format!(
                "{key}.secret: only the \"json\" kind signs its payloads, not {:?}",
                kind.as_str()
            )),
        }
        if sink.timeout.is_zero() {
            errors.push(format!(
                "{key}.timeout: must be longer than 0s (e.g. \"10s\")"
            ));
        }
        if sink.queue_capacity == 0 {
            errors.push(format!("{key}.queue_capacity: at least 1 (e.g. 1000)"));
        }
        if sink.retry_initial.is_zero() || sink.retry_max < sink.retry_initial {
            errors.push(format!(
                "{key}.retry_initial / retry_max: 0 < retry_initial <= retry_max (e.g. \"1s\" and \"5m\")"
            ));
        }
    }

    let mut by_name: BTreeMap<String, (AlertRuleSettings, bool)> = BTreeMap::new();
    if a.default_rules {
        for r in builtin_rules(settings) {
            by_name.insert(r.name.clone(), (r, true));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in a.rules.iter().enumerate() {
        if !seen.insert(r.name.as_str()) {
            errors.push(format!(
                "alerts.rules[{i}].name: {:?} is used twice; rule names are unique",
                r.name
            ));
        }
        by_name.insert(r.name.clone(), (r.clone(), false));
    }
    let position = |name: &str| {
        a.rules.iter().position(|r| r.name == name).map_or_else(
            || format!("built-in rule {name}"),
            |i| format!("alerts.rules[{i}]"),
        )
    };
    let max_window = settings.engine.max_window;
    let mut rules = Vec::new();
    for (name, (r, builtin)) in by_name {
        let key = position(&name);
        let before = errors.len();
        if !valid_name(&name) {
            errors.push(format!(
                "{key}.name: {name:?} must be 1 to 64 characters among a-z, 0-9, '.', '_' and '-'"
            ));
        }
        let unit = r.kpi.unit();
        let value = |t: Threshold, field: &str, errors: &mut Vec<String>| -> f64 {
            match (unit, t) {
                (Unit::Millis, Threshold::Duration(d)) => ms(d) as f64,
                (Unit::Millis, Threshold::Number(_)) => {
                    errors.push(format!(
                        "{key}.{field}: {} is a time: write a duration (e.g. \"10m\")",
                        r.kpi.as_str()
                    ));
                    0.0
                }
                (_, Threshold::Duration(_)) => {
                    errors.push(format!(
                        "{key}.{field}: {} is not a time: write a number",
                        r.kpi.as_str()
                    ));
                    0.0
                }
                (Unit::Rate, Threshold::Number(n)) if !(0.0..=1.0).contains(&n) => {
                    errors.push(format!(
                        "{key}.{field}: {n} is not a fraction in [0, 1] (e.g. 0.8 for 80 %)"
                    ));
                    0.0
                }
                (_, Threshold::Number(n)) if !n.is_finite() => {
                    errors.push(format!("{key}.{field}: must be a finite number"));
                    0.0
                }
                (_, Threshold::Number(n)) => n,
            }
        };
        let threshold = value(r.threshold, "threshold", &mut errors);
        let clear = r
            .clear
            .map_or(threshold, |c| value(c, "clear", &mut errors));
        let consistent = match r.comparison {
            Comparison::Above => clear <= threshold,
            Comparison::Below => clear >= threshold,
        };
        if !consistent {
            errors.push(format!(
                "{key}.clear: must be on the healthy side of the threshold ({} for \"{}\")",
                if r.comparison == Comparison::Above {
                    "at most the threshold"
                } else {
                    "at least the threshold"
                },
                if r.comparison == Comparison::Above {
                    "above"
                } else {
                    "below"
                }
            ));
        }
        let window = match r.window.parse::<WindowSpec>() {
            Ok(WindowSpec::Last(w)) if w > ms(max_window) => {
                errors.push(format!(
                    "{key}.window: {} is longer than engine.max_window ({})",
                    r.window,
                    humantime::format_duration(max_window)
                ));
                WindowSpec::Last(w)
            }
            Ok(WindowSpec::Today) if r.kpi == Kpi::DeadLettered => {
                errors.push(format!(
                    "{key}.window: dead_lettered counts over a duration (e.g. \"15m\"), not today"
                ));
                WindowSpec::Today
            }
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("{key}.window: {e}"));
                WindowSpec::Today
            }
        };
        let sinks = match &r.sinks {
            None => a.sinks.keys().cloned().collect(),
            Some(list) => {
                for s in list {
                    if !a.sinks.contains_key(s) {
                        errors.push(format!(
                            "{key}.sinks: no sink {s:?}; declare [alerts.sinks.{s}] or remove it"
                        ));
                    }
                }
                list.clone()
            }
        };
        if r.repeat_every.is_some_and(|d| d < Duration::from_secs(1)) {
            errors.push(format!(
                "{key}.repeat_every: at least 1s (e.g. \"1h\"), or leave it out"
            ));
        }
        let scope = DimensionKey {
            channel: r.channel.clone(),
            queue: r.queue.clone(),
            reason: r.reason.clone(),
            segment: r.segment.clone(),
            site: r.site.clone(),
        };
        if r.kpi.is_system() && scope != DimensionKey::default() {
            errors.push(format!(
                "{key}: {} is a health figure of the consumer: it has no channel/queue/reason/segment/site scope",
                r.kpi.as_str()
            ));
        }
        if errors.len() == before {
            rules.push(Rule {
                name,
                kpi: r.kpi,
                scope,
                comparison: r.comparison,
                threshold,
                clear,
                window,
                for_ms: ms(r.for_),
                severity: r.severity,
                sinks,
                repeat_every_ms: r.repeat_every.map(ms),
                min_volume: r.min_volume,
                builtin,
            });
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SinkKind, SinkSettings};

    fn sink(kind: SinkKind, secret: Option<&str>) -> SinkSettings {
        SinkSettings {
            kind,
            url: Secret::new("https://hooks.example/T0/B0/XXXX"),
            secret: secret.map(Secret::new),
            timeout: Duration::from_secs(5),
            queue_capacity: 10,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
            notify_acknowledged: false,
            language: Default::default(),
        }
    }

    #[test]
    fn built_in_rules_cover_the_issue_and_follow_the_channel_targets() {
        let rules = compile(&Settings::default()).expect("defaults are valid");
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        for expected in [
            "service-level-phone",
            "service-level-email",
            "queue-stuck-phone",
            "abandon-spike",
            "consumer-lag",
            "stale-data",
            "dead-letter-growth",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        let phone = rules
            .iter()
            .find(|r| r.name == "service-level-phone")
            .expect("phone");
        assert_eq!(
            (phone.threshold, phone.comparison),
            (0.8, Comparison::Below)
        );
        assert!(phone.breaching(0.7) && !phone.breaching(0.8));
        assert!(!phone.cleared(Some(0.84)) && phone.cleared(Some(0.85)));
        let stuck = rules
            .iter()
            .find(|r| r.name == "queue-stuck-email")
            .expect("email");
        assert_eq!(stuck.threshold, 8.0 * 3_600_000.0, "twice the 4 h norm");
        assert!(rules.iter().all(|r| r.builtin && r.sinks.is_empty()));
    }

    #[test]
    fn configured_rules_replace_built_ins_by_name_and_every_problem_is_named() {
        let mut s = Settings::default();
        s.alerts.state_dir = Some("/tmp/x".into());
        s.alerts
            .sinks
            .insert("ops".into(), sink(SinkKind::Slack, None));
        let mut r = builtin_rules(&s)
            .into_iter()
            .find(|r| r.name == "abandon-spike")
            .expect("built-in");
        r.threshold = Threshold::Number(0.3);
        r.sinks = Some(vec!["ops".into()]);
        s.alerts.rules.push(r.clone());
        let rules = compile(&s).expect("valid");
        let spike = rules
            .iter()
            .find(|r| r.name == "abandon-spike")
            .expect("spike");
        assert_eq!((spike.threshold, spike.builtin), (0.3, false));
        assert_eq!(spike.sinks, vec!["ops".to_string()]);

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
        let errors = compile(&s).expect_err("invalid");
        let all = errors.join("\n");
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
        let all = compile(&s).expect_err("invalid").join("\n");
        assert!(all.contains("alerts.sinks.teams.url"), "{all}");
        assert!(all.contains("alerts.sinks.teams.secret"), "{all}");
        assert!(!all.contains("xoxb"), "{all}");
    }

    #[test]
    fn values_read_respect_the_minimum_volume() {
        let kpis = Kpis {
            answered: 5,
            abandoned: 5,
            abandon_rate: Some(0.5),
            ..Kpis::default()
        };
        assert_eq!(Kpi::AbandonRate.read(&kpis, 10), Some(0.5));
        assert_eq!(Kpi::AbandonRate.read(&kpis, 11), None);
        assert_eq!(Kpi::OldestWait.read(&kpis, 1000), Some(0.0), "no queue");
        assert_eq!(format_value(Unit::Rate, 0.625), "62.5 %");
        assert_eq!(format_value(Unit::Millis, 750_000.0), "12m 30s");
    }
}
