//! Owns the evaluable rule: compiled from the rules in force of valid settings (the
//! settings check them, see [`crate::config::AlertSettings`]), with how a value reads.

use std::time::Duration;

use vigie_proto::{AlertRule, Comparison, DimensionKey, Kpi, Severity, Unit};

use crate::config::{RuleInForce, Settings, WindowSpec};

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
    pub(crate) fn breaching(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }

    /// Back to normal: on the right side of the clear threshold (no value: nothing wrong).
    pub(crate) fn cleared(&self, value: Option<f64>) -> bool {
        value.is_none_or(|v| match self.comparison {
            Comparison::Above => v <= self.clear,
            Comparison::Below => v >= self.clear,
        })
    }

    /// `total`, or `channel=phone queue=billing`.
    pub(crate) fn scope_text(&self) -> String {
        scope_text(&self.scope)
    }

    /// The read-only view of the API.
    pub fn view(&self) -> AlertRule {
        AlertRule {
            name: self.name.clone(),
            kpi: self.kpi,
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
        Unit::Change => format!("{:+.1} %", value * 100.0),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The rules in force of `settings`, which must be valid ([`Settings::validate`]): a
/// value the checks would refuse cannot occur, and is read as 0 (or a 15-minute window).
pub fn compile(settings: &Settings) -> Vec<Rule> {
    let a = &settings.alerts;
    a.rules_in_force(&settings.engine)
        .into_iter()
        .map(|RuleInForce { rule: r, builtin }| {
            let threshold = r.threshold.value(r.kpi).unwrap_or(0.0);
            let clear = r
                .clear
                .map_or(threshold, |c| c.value(r.kpi).unwrap_or(threshold));
            Rule {
                kpi: r.kpi,
                scope: r.scope(),
                comparison: r.comparison,
                threshold,
                clear,
                window: r.window.parse().unwrap_or(WindowSpec::Last(15 * 60_000)),
                for_ms: ms(r.for_),
                severity: r.severity,
                sinks: r.sinks.unwrap_or_else(|| a.sinks.keys().cloned().collect()),
                repeat_every_ms: r.repeat_every.map(ms),
                min_volume: r.min_volume,
                builtin,
                name: r.name,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_proto::Kpis;

    #[test]
    fn built_in_rules_cover_the_issue_and_follow_the_channel_targets() {
        let rules = compile(&Settings::default());
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        for expected in [
            "service-level-phone",
            "service-level-email",
            "queue-stuck-phone",
            "abandon-spike",
            "consumer-lag",
            "stale-data",
            "dead-letter-growth",
            "view-not-whole",
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
    fn configured_rules_replace_built_ins_by_name() {
        use crate::config::{builtin_rules, Secret, SinkKind, SinkSettings, Threshold};
        let mut s = Settings::default();
        s.alerts.state_dir = Some("/tmp/x".into());
        s.alerts.sinks.insert(
            "ops".into(),
            SinkSettings::new(
                SinkKind::Slack,
                Secret::new("https://hooks.example/T0/B0/XXXX"),
            ),
        );
        let mut r = builtin_rules(&s.engine)
            .into_iter()
            .find(|r| r.name == "abandon-spike")
            .expect("built-in");
        r.threshold = Threshold::Number(0.3);
        r.sinks = Some(vec!["ops".into()]);
        s.alerts.rules.push(r);
        s.validate().expect("valid");
        let rules = compile(&s);
        let spike = rules
            .iter()
            .find(|r| r.name == "abandon-spike")
            .expect("spike");
        assert_eq!((spike.threshold, spike.builtin), (0.3, false));
        assert_eq!(spike.sinks, vec!["ops".to_string()]);
        let phone = rules
            .iter()
            .find(|r| r.name == "service-level-phone")
            .expect("phone");
        assert_eq!(phone.sinks, vec!["ops".to_string()], "absent: every sink");
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
