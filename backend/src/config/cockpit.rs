//! Owns the `[cockpit]` section: where the cockpit's bundle is and the targets its tiles
//! are coloured against, with their defaults (shared with the cockpit through
//! [`vigie_proto::Targets`]) and checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_proto::Targets;

/// `[cockpit]`: where the bundle is and what the tiles are coloured against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CockpitSettings {
    /// Directory of the built cockpit; default: `cockpit/` next to the binary, else the
    /// source tree's `frontend/dist` (built by `scripts/build-cockpit.sh`).
    pub dir: Option<PathBuf>,
    /// Answer-rate target (fraction, e.g. 0.9).
    pub answer_rate_target: f64,
    /// Once-and-done target (fraction).
    pub once_and_done_target: f64,
    /// How far below a rate target is still `warning` rather than `breach` (fraction).
    pub margin: f64,
    /// Abandon rate (fraction) from which a tile is `warning`, then `breach`.
    pub abandon_rate_warning: f64,
    pub abandon_rate_breach: f64,
    /// Cross-channel reiteration rate (fraction) from which a tile is `warning`, then `breach`.
    pub cross_channel_warning: f64,
    pub cross_channel_breach: f64,
    /// Oldest wait from which a queue is `warning`, then `breach`.
    #[serde(with = "humantime_serde")]
    pub oldest_wait_warning: Duration,
    #[serde(with = "humantime_serde")]
    pub oldest_wait_breach: Duration,
    /// No event for this long: the wall's badge says "no event for …" and greys the
    /// numbers (a dead feed and a quiet hour look alike from here).
    #[serde(with = "humantime_serde")]
    pub quiet_after: Duration,
    /// Occupancy (fraction) from which it is `warning`, then `breach` (agents burn out
    /// above about 85–90 %).
    pub occupancy_warning: f64,
    pub occupancy_breach: f64,
}

impl Default for CockpitSettings {
    fn default() -> Self {
        let t = Targets::default();
        CockpitSettings {
            dir: None,
            answer_rate_target: t.answer_rate,
            once_and_done_target: t.once_and_done,
            margin: t.margin,
            abandon_rate_warning: t.abandon_rate_warning,
            abandon_rate_breach: t.abandon_rate_breach,
            cross_channel_warning: t.cross_channel_warning,
            cross_channel_breach: t.cross_channel_breach,
            oldest_wait_warning: Duration::from_millis(t.oldest_wait_warning_ms),
            oldest_wait_breach: Duration::from_millis(t.oldest_wait_breach_ms),
            quiet_after: Duration::from_millis(t.quiet_after_ms),
            occupancy_warning: t.occupancy_warning,
            occupancy_breach: t.occupancy_breach,
        }
    }
}

impl CockpitSettings {
    /// Every problem, each naming its key and the fix.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let fractions = [
            ("answer_rate_target", self.answer_rate_target),
            ("once_and_done_target", self.once_and_done_target),
            ("margin", self.margin),
            ("abandon_rate_warning", self.abandon_rate_warning),
            ("abandon_rate_breach", self.abandon_rate_breach),
            ("cross_channel_warning", self.cross_channel_warning),
            ("cross_channel_breach", self.cross_channel_breach),
            ("occupancy_warning", self.occupancy_warning),
            ("occupancy_breach", self.occupancy_breach),
        ];
        for (key, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                errors.push(format!(
                    "cockpit.{key}: {value} is not a fraction in [0, 1] (e.g. 0.05 for 5 %)"
                ));
            }
        }
        let ordered = [
            (
                "abandon_rate",
                self.abandon_rate_warning <= self.abandon_rate_breach,
            ),
            (
                "cross_channel",
                self.cross_channel_warning <= self.cross_channel_breach,
            ),
            (
                "oldest_wait",
                self.oldest_wait_warning <= self.oldest_wait_breach,
            ),
            ("occupancy", self.occupancy_warning <= self.occupancy_breach),
        ];
        for (kpi, ok) in ordered {
            if !ok {
                errors.push(format!(
                    "cockpit.{kpi}_warning: must not exceed cockpit.{kpi}_breach (warning comes first)"
                ));
            }
        }
        if self.quiet_after < Duration::from_secs(10) {
            errors.push("cockpit.quiet_after: at least 10s (e.g. \"2m\")".into());
        }
        if let Some(dir) = &self.dir {
            if !dir.join("index.html").is_file() {
                errors.push(format!(
                    "cockpit.dir: {} has no index.html; build the cockpit with scripts/build-cockpit.sh or remove the key",
                    dir.display()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mistakes_name_their_key() {
        let problems = |s: &CockpitSettings| {
            let mut errors = Vec::new();
            s.validate(&mut errors);
            errors
        };
        assert!(problems(&CockpitSettings::default()).is_empty());
        let bad = CockpitSettings {
            abandon_rate_warning: 0.2,
            abandon_rate_breach: 0.1,
            margin: 5.0,
            dir: Some(PathBuf::from("/nonexistent")),
            ..CockpitSettings::default()
        };
        let problems = problems(&bad).join("\n");
        assert!(
            problems.contains("cockpit.margin: 5 is not a fraction"),
            "{problems}"
        );
        assert!(
            problems.contains("cockpit.abandon_rate_warning: must not exceed"),
            "{problems}"
        );
        assert!(
            problems.contains("cockpit.dir: /nonexistent has no index.html"),
            "{problems}"
        );
    }
}
