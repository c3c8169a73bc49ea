//! Owns the `[autopilot]` section: automatic deflection rules (a condition on a KPI of a
//! switch's channel, the flip it makes, and its guard rails), their defaults and checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_proto::{is_valid_name, AutopilotMode, Comparison, DeflectionTarget, Kpi};

use super::alerts::Threshold;
use super::engine::EngineSettings;
use super::window::WindowSpec;

/// Automatic deflection: rules that propose (or make) a flip when a queue degrades and
/// the projection says the flip would fix it, and undo it once it has recovered.
///
/// ```toml
/// [[autopilot.rules]]
/// name = "phone-billing-surge"
/// mode = "propose"                 # or "act"
/// channel = "phone"                # the switch: channel, and any of reason/segment/queue
/// reason = "billing"
/// target = "visual_ivr"
/// kpi = "service_level"            # of the channel (and queue, if set) over `window`
/// comparison = "below"
/// threshold = 0.6                  # phone service level below 60 %...
/// for = "2m"                       # ...for 2 minutes,
/// min_projected = 0.8              # and the projection with the deflection reaches 80 %
/// clear = 0.75                     # turned off once above 75 %...
/// clear_for = "5m"                 # ...for 5 minutes (act mode)
/// expires_in = "45m"               # the switch turns itself off after this anyway
/// cooldown = "15m"                 # no new flip so soon after one ended
/// max_flips_per_hour = 2
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutopilotSettings {
    pub rules: Vec<AutopilotRuleSettings>,
}

/// One automatic deflection rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutopilotRuleSettings {
    /// Unique; 1 to 64 characters among a-z, 0-9, '.', '_' and '-'.
    pub name: String,
    #[serde(default)]
    pub mode: AutopilotMode,
    /// The switch's scope: its channel...
    pub channel: String,
    /// ...and any of these (the KPI is watched on the channel, and the queue if set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    pub target: DeflectionTarget,
    #[serde(default = "default_kpi")]
    pub kpi: Kpi,
    #[serde(default = "default_comparison")]
    pub comparison: Comparison,
    pub threshold: Threshold,
    /// Back beyond this (hysteresis) for `clear_for`, the rule turns its flip off.
    pub clear: Threshold,
    /// KPI window (`5m` … `24h`).
    #[serde(default = "default_window")]
    pub window: String,
    /// The condition must hold this long.
    #[serde(rename = "for", default = "default_for", with = "humantime_serde")]
    pub for_: Duration,
    #[serde(default = "default_clear_for", with = "humantime_serde")]
    pub clear_for: Duration,
    /// The channel's projected service level with the scope deflected must reach this;
    /// default: the channel's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_projected: Option<f64>,
    /// Every flip expires (`1s` … 31 days).
    #[serde(with = "humantime_serde")]
    pub expires_in: Duration,
    /// After a flip of this rule ends (or a person turned the switch off), no new one
    /// for this long.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// Most flips on by this rule in any hour.
    #[serde(default = "default_max_flips")]
    pub max_flips_per_hour: u32,
    /// The KPI is not judged on fewer contacts than this.
    #[serde(default = "default_min_volume")]
    pub min_volume: u64,
    /// Sinks told (absent: every sink, `[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<String>>,
}

fn default_kpi() -> Kpi {
    Kpi::ServiceLevel
}
fn default_comparison() -> Comparison {
    Comparison::Below
}
fn default_window() -> String {
    "5m".into()
}
fn default_for() -> Duration {
    Duration::from_secs(120)
}
fn default_clear_for() -> Duration {
    Duration::from_secs(300)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(900)
}
fn default_max_flips() -> u32 {
    2
}
fn default_min_volume() -> u64 {
    20
}

impl AutopilotSettings {
    /// Pushes one line per problem, each naming its key and the fix.
    pub(super) fn validate(
        &self,
        engine: &EngineSettings,
        sinks: &[String],
        errors: &mut Vec<String>,
    ) {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("autopilot.rules[{i}]");
            if !is_valid_name(&r.name) {
                errors.push(format!(
                    "{at}.name: {:?} must be 1 to 64 characters among a-z, 0-9, '.', '_' and '-'",
                    r.name
                ));
            } else if !names.insert(r.name.clone()) {
                errors.push(format!(
                    "{at}.name: {:?} is used twice; names are unique",
                    r.name
                ));
            }
            if r.channel.trim().is_empty() {
                errors.push(format!("{at}.channel: must not be empty (e.g. \"phone\")"));
            }
            if r.kpi.is_system() {
                errors.push(format!(
                    "{at}.kpi: {} is not a KPI of contacts (e.g. \"service_level\")",
                    r.kpi
                ));
            }
            let threshold = r.threshold.value(r.kpi);
            let clear = r.clear.value(r.kpi);
            for (key, v) in [("threshold", &threshold), ("clear", &clear)] {
                if let Err(e) = v {
                    errors.push(format!("{at}.{key}: {e}"));
                }
            }
            if let (Ok(t), Ok(c)) = (threshold, clear) {
                let ok = match r.comparison {
                    Comparison::Below => c >= t,
                    Comparison::Above => c <= t,
                };
                if !ok {
                    errors.push(format!(
                        "{at}.clear: must be on the recovered side of threshold (hysteresis: e.g. threshold 0.6, clear 0.75 for \"below\")"
                    ));
                }
            }
            match r.window.parse::<WindowSpec>() {
                Ok(WindowSpec::Last(_)) => {}
                _ => errors.push(format!(
                    "{at}.window: {:?} is not a sliding window (e.g. \"5m\")",
                    r.window
                )),
            }
            if r.expires_in.is_zero() || r.expires_in > Duration::from_secs(31 * 86_400) {
                errors.push(format!(
                    "{at}.expires_in: between 1s and 31days (e.g. \"45m\"); every automatic flip expires"
                ));
            }
            if r.max_flips_per_hour == 0 || r.max_flips_per_hour > 60 {
                errors.push(format!(
                    "{at}.max_flips_per_hour: between 1 and 60 (e.g. 2)"
                ));
            }
            let target = engine
                .channels
                .get(&r.channel)
                .and_then(|c| c.service_level.as_ref())
                .map(|sl| sl.target);
            match (r.min_projected, target) {
                (Some(p), _) if !(p > 0.0 && p <= 1.0) => errors.push(format!(
                    "{at}.min_projected: {p} is not a fraction in (0, 1] (e.g. 0.8)"
                )),
                (None, None) => errors.push(format!(
                    "{at}.min_projected: channel {:?} has no service-level target; set the projected service level to reach (e.g. 0.8)",
                    r.channel
                )),
                _ => {}
            }
            for sink in r.sinks.iter().flatten() {
                if !sinks.contains(sink) {
                    errors.push(format!(
                        "{at}.sinks: no sink named {sink:?} in [alerts.sinks]"
                    ));
                }
            }
        }
    }
}

impl AutopilotRuleSettings {
    /// The projected service level the rule requires of a flip.
    pub fn min_projected(&self, engine: &EngineSettings) -> f64 {
        self.min_projected
            .or_else(|| {
                engine
                    .channels
                    .get(&self.channel)
                    .and_then(|c| c.service_level.as_ref())
                    .map(|sl| sl.target)
            })
            .unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn rule() -> AutopilotRuleSettings {
        AutopilotRuleSettings {
            name: "billing".into(),
            mode: AutopilotMode::Act,
            channel: "phone".into(),
            reason: Some("billing".into()),
            segment: None,
            queue: None,
            target: DeflectionTarget::VisualIvr,
            kpi: Kpi::ServiceLevel,
            comparison: Comparison::Below,
            threshold: Threshold::Number(0.6),
            clear: Threshold::Number(0.75),
            window: "5m".into(),
            for_: Duration::from_secs(120),
            clear_for: Duration::from_secs(300),
            min_projected: None,
            expires_in: Duration::from_secs(2_700),
            cooldown: Duration::from_secs(900),
            max_flips_per_hour: 2,
            min_volume: 20,
            sinks: None,
        }
    }

    #[test]
    fn every_problem_of_a_rule_names_its_key_and_the_fix() {
        let mut s = Settings::default();
        s.autopilot.rules = vec![rule()];
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        assert_eq!(
            s.autopilot.rules[0].min_projected(&s.engine),
            0.8,
            "phone's target"
        );

        let mut bad = rule();
        bad.name = "Bad Name".into();
        bad.clear = Threshold::Number(0.5); // on the wrong side of 0.6 for "below"
        bad.window = "today".into();
        bad.expires_in = Duration::ZERO;
        bad.max_flips_per_hour = 0;
        bad.kpi = Kpi::ServiceLevel;
        bad.sinks = Some(vec!["pager".into()]);
        let mut chatbot = rule();
        chatbot.channel = "chatbot".into(); // no service-level target
        chatbot.threshold = Threshold::Number(1.5);
        s.autopilot.rules = vec![bad, chatbot.clone(), chatbot];
        let errors = s.validate().expect_err("invalid").0.join("\n");
        for expected in [
            "autopilot.rules[0].name: \"Bad Name\"",
            "autopilot.rules[0].clear: must be on the recovered side",
            "autopilot.rules[0].window: \"today\" is not a sliding window",
            "autopilot.rules[0].expires_in: between 1s and 31days",
            "autopilot.rules[0].max_flips_per_hour: between 1 and 60",
            "autopilot.rules[0].sinks: no sink named \"pager\"",
            "autopilot.rules[1].threshold: 1.5 is not a fraction",
            "autopilot.rules[1].min_projected: channel \"chatbot\" has no service-level target",
            "autopilot.rules[2].name: \"billing\" is used twice",
        ] {
            assert!(
                errors.contains(expected),
                "missing {expected:?} in:\n{errors}"
            );
        }
    }
}
