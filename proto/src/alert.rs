//! Alerts raised by rules on the live KPIs, and the rules themselves (read-only view).
//!
//! Values and thresholds are in the KPI's own unit: rates are fractions in `0..=1`,
//! durations milliseconds, counts plain numbers.

use serde::{Deserialize, Serialize};

use crate::DimensionKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// firing → (acknowledged) → resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

/// One occurrence of a rule's condition, from firing to resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// Above or below the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    Below,
}

/// A rule as configured (built-in or from the config file); secrets never appear here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub name: String,
    pub kpi: String,
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
    fn an_alert_of_the_first_schema_still_reads() {
        let old = r#"{"id":"a.1","rule":"a","severity":"critical","state":"firing",
                      "summary":"s","since":1,"acknowledged_by":null}"#;
        let alert: Alert = serde_json::from_str(old).expect("old alert");
        assert_eq!(alert.state, AlertState::Firing);
        assert!(alert.sinks.is_empty() && alert.resolved_at.is_none());
    }
}
