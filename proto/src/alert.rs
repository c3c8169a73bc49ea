//! Alerts raised by rules on the live KPIs, and the rules themselves (read-only view).
//!
//! Values and thresholds are in the KPI's own unit: rates are fractions in `0..=1`,
//! durations milliseconds, counts plain numbers.

use serde::{Deserialize, Serialize};

use crate::{DimensionKey, Kpis};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// firing → (acknowledged) → resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

/// One occurrence of a rule's condition, from firing to resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// `<rule>.<since>`: unique, stable for the alert's whole life.
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    /// One line for humans, e.g. "service_level of channel=phone over 15m is 62.0 %, below 80.0 %".
    pub summary: String,
    /// Epoch ms when it started firing.
    pub since: i64,
    pub acknowledged_by: Option<String>,
    /// The KPI watched (`service_level`, `oldest_wait`, `consumer_lag`, ...).
    #[serde(default)]
    pub kpi: String,
    /// Where: `total`, or the dimension values, e.g. `channel=phone queue=billing`.
    #[serde(default)]
    pub scope: String,
    /// The KPI's value when the alert last changed state (fired, or resolved).
    #[serde(default)]
    pub value: Option<f64>,
    /// The value beyond which it fires.
    #[serde(default)]
    pub threshold: f64,
    /// The value it must come back to before it resolves (hysteresis).
    #[serde(default)]
    pub clear: f64,
    /// Epoch ms of the acknowledgement.
    #[serde(default)]
    pub acknowledged_at: Option<i64>,
    /// What the person who acknowledged said, if anything.
    #[serde(default)]
    pub ack_note: Option<String>,
    /// Epoch ms when it resolved.
    #[serde(default)]
    pub resolved_at: Option<i64>,
    /// Names of the sinks notified.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Set on the alerts of the autopilot: what its rule proposes, or did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autopilot: Option<AutopilotAction>,
}

/// How an autopilot rule acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AutopilotMode {
    /// Proposes the flip on the switchboard and in chat; a supervisor applies it.
    #[default]
    Propose,
    /// Flips by itself (author `vigie (rule NAME)`) and says so in chat.
    Act,
}

/// The flip an autopilot rule proposes (or made): which switch, where to, for how long,
/// and what the projection says it would do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutopilotAction {
    pub rule: String,
    pub mode: AutopilotMode,
    /// The switch's id (`phone.billing.all.all`).
    pub switch_id: String,
    pub channel: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    pub target: crate::DeflectionTarget,
    /// The switch turns itself off after this (`30m`).
    pub expires_in: String,
    /// The channel's projection now and without the scope's load, when the rule fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_if: Option<crate::WhatIf>,
}

/// An autopilot rule as configured (read-only in the cockpit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutopilotRuleView {
    pub name: String,
    pub mode: AutopilotMode,
    /// The flip it makes (no `what_if`).
    pub action: AutopilotAction,
    /// The condition in words (`service_level of channel=phone over 5m below 60 % for 2m`).
    pub condition: String,
    /// When it turns the switch off (`above 75 % for 5m`).
    pub clear: String,
    /// The projected service level with the deflection must reach this (a fraction).
    pub min_projected: f64,
    pub cooldown_ms: i64,
    pub max_flips_per_hour: u32,
}

/// Above or below the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    Below,
}

/// What an alert rule watches: a KPI of the snapshot, or a health figure of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Refused records that could not be written to the dead-letter topic during the
    /// rule's window (they stay in the source topic).
    DeadLetterFailures,
    /// Time since the newest event (a duration, by this server's clock): a feed that
    /// stopped upstream of Kafka, which the broker's health does not show.
    Silence,
    /// Partitions not live in the view (rebuilding, or missing an owner; 1 while an
    /// instance waits for any): the view is not whole.
    PartitionsNotLive,
    /// Arrivals against the mean of the same window in earlier weeks, as a change
    /// (0.5: 50 % more, −0.5: half): a spike, or a drop (a dead feed, a broken IVR).
    /// Not judged before a week of history, nor when fewer than `min_volume` contacts
    /// were expected.
    VolumeVsBaseline,
}

/// The unit of a KPI's values and thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A fraction in 0..=1, read as a percentage.
    Rate,
    /// Milliseconds, read as a duration (`3 min 05`); thresholds are written `"10m"`.
    Millis,
    Count,
    /// A relative change, read as a signed percentage (0.23: `+23 %`); thresholds from
    /// −1 (everything gone) up.
    Change,
}

impl Kpi {
    pub const ALL: [Kpi; 20] = [
        Kpi::ServiceLevel,
        Kpi::AnswerRate,
        Kpi::AbandonRate,
        Kpi::DeflectionRate,
        Kpi::RepeatRate,
        Kpi::CrossChannelRepeatRate,
        Kpi::OnceAndDoneRate,
        Kpi::Asa,
        Kpi::Aht,
        Kpi::WaitP90,
        Kpi::Arrivals,
        Kpi::InQueue,
        Kpi::OldestWait,
        Kpi::ConsumerLag,
        Kpi::Stale,
        Kpi::DeadLettered,
        Kpi::DeadLetterFailures,
        Kpi::Silence,
        Kpi::PartitionsNotLive,
        Kpi::VolumeVsBaseline,
    ];

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
            Kpi::DeadLetterFailures => "dead_letter_failures",
            Kpi::Silence => "silence",
            Kpi::PartitionsNotLive => "partitions_not_live",
            Kpi::VolumeVsBaseline => "volume_vs_baseline",
        }
    }

    /// The KPI of a code (`service_level`...).
    pub fn parse(code: &str) -> Option<Kpi> {
        Kpi::ALL.into_iter().find(|k| k.as_str() == code)
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
            Kpi::Arrivals
            | Kpi::InQueue
            | Kpi::ConsumerLag
            | Kpi::Stale
            | Kpi::DeadLettered
            | Kpi::DeadLetterFailures
            | Kpi::PartitionsNotLive => Unit::Count,
            Kpi::VolumeVsBaseline => Unit::Change,
        }
    }

    /// Read from the consumer's health rather than from a KPI snapshot.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            Kpi::ConsumerLag
                | Kpi::Stale
                | Kpi::DeadLettered
                | Kpi::DeadLetterFailures
                | Kpi::Silence
                | Kpi::PartitionsNotLive
        )
    }

    /// Judged only while the view is whole (partial numbers would mislead): the KPIs of
    /// the contacts. The consumer's health is judged whatever the view: it is what tells
    /// why the view is not whole.
    pub fn needs_ready(self) -> bool {
        !self.is_system()
    }

    /// The value in `kpis`, `None` when undefined or judged on fewer than `min_volume`
    /// contacts (health figures are not in a snapshot: always `None`).
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
            Kpi::VolumeVsBaseline => match kpis.baseline {
                Some(b) => (b.vs_mean, b.mean.unwrap_or(0.0).round() as u64),
                None => (None, 0),
            },
            Kpi::ConsumerLag
            | Kpi::Stale
            | Kpi::DeadLettered
            | Kpi::DeadLetterFailures
            | Kpi::Silence
            | Kpi::PartitionsNotLive => (None, 0),
        };
        value.filter(|_| volume >= min_volume)
    }
}

impl std::fmt::Display for Kpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule as configured (built-in or from the config file); secrets never appear here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRule {
    pub name: String,
    pub kpi: Kpi,
    /// Empty: the total over every contact.
    #[serde(default)]
    pub scope: DimensionKey,
    pub comparison: Comparison,
    pub threshold: f64,
    pub clear: f64,
    /// The KPI window (`15m`, `1h`, `today`).
    pub window: String,
    /// How long the condition must hold before firing, ms.
    pub for_ms: i64,
    pub severity: Severity,
    /// Sinks notified (names only).
    pub sinks: Vec<String>,
    /// Reminder period while firing and not acknowledged, ms.
    #[serde(default)]
    pub repeat_every_ms: Option<i64>,
    /// Rates are not judged on fewer contacts than this.
    #[serde(default)]
    pub min_volume: u64,
    /// One of Vigie's default rules.
    #[serde(default)]
    pub builtin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_judged_against_the_mean_once_enough_contacts_are_expected() {
        let kpis = |mean: Option<f64>| Kpis {
            arrivals: 30,
            baseline: Some(crate::Baseline {
                arrivals: 30,
                mean,
                vs_mean: mean.map(|m| 30.0 / m - 1.0),
                ..crate::Baseline::default()
            }),
            ..Kpis::default()
        };
        assert_eq!(
            Kpi::VolumeVsBaseline.read(&kpis(Some(60.0)), 50),
            Some(-0.5)
        );
        assert_eq!(
            Kpi::VolumeVsBaseline.read(&kpis(Some(40.0)), 50),
            None,
            "too few expected"
        );
        assert_eq!(
            Kpi::VolumeVsBaseline.read(&kpis(None), 0),
            None,
            "no history"
        );
        assert_eq!(Kpi::VolumeVsBaseline.read(&Kpis::default(), 0), None);
        assert_eq!(Kpi::VolumeVsBaseline.unit(), Unit::Change);
    }

    #[test]
    fn an_alert_of_the_first_schema_still_reads() {
        let old = r#"{"id":"a.1","rule":"a","severity":"critical","state":"firing",
                      "summary":"s","since":1,"acknowledged_by":null}"#;
        let alert: Alert = serde_json::from_str(old).expect("old alert");
        assert_eq!(alert.state, AlertState::Firing);
        assert!(alert.sinks.is_empty() && alert.resolved_at.is_none());
    }

    #[test]
    fn every_kpi_reads_back_from_its_code() {
        for kpi in Kpi::ALL {
            assert_eq!(Kpi::parse(kpi.as_str()), Some(kpi));
            let json = serde_json::to_string(&kpi).expect("encode");
            assert_eq!(json, format!("\"{kpi}\""));
        }
        assert_eq!(Kpi::parse("sla"), None);
    }
}
