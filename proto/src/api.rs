//! The bodies of the REST API that are not KPI snapshots, switches or alerts themselves:
//! lists and pages, probes, and the one error shape every failure has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Alert, AlertRule, AuditRecord, DeflectionSwitch, PartitionsReport, SwitchEffect};

/// Every error of the API: `{"status": 400, "code": "bad_window", "message": "..."}`.
/// `code` is stable (programs match on it); `message` says what is wrong, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// `GET /healthz`: the process runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`: 200 when this instance can serve a cockpit (its own partitions
/// rebuilt; scale-out: every instance's partials read once), 503 before. Whether the view
/// is whole (every partition live) is said apart, and shown by the cockpit's badge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    pub ready: bool,
    /// Every partition is live in the view (scale-out: here or in its owner's partial).
    #[serde(default)]
    pub whole: bool,
    /// Member of the consumer group but holding no partition yet: nothing to show.
    #[serde(default)]
    pub waiting_for_partitions: bool,
    /// Share of the rebuild done (0..1) while rebuilding, `null` once live.
    pub rebuilding: Option<f64>,
    /// The broker is unreachable: the numbers are the last known.
    pub stale: bool,
    /// Scale-out only: which partitions of the topic the merged view holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionsReport>,
}

/// `GET /api/v1/switches`: every switch, and the measured effect of each one that is on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchList {
    pub switches: Vec<DeflectionSwitch>,
    /// By switch id, for the switches that are on.
    #[serde(default)]
    pub effects: BTreeMap<String, SwitchEffect>,
}

/// `GET /api/v1/audit`: the newest audit records first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
}

/// `GET /api/v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertList {
    /// Firing and acknowledged alerts, and those resolved in the last
    /// `alerts.show_resolved_for`.
    pub alerts: Vec<Alert>,
    /// Resolved alerts, newest first (`limit` of them).
    pub history: Vec<Alert>,
    /// Scale-out: the instance that evaluates and notifies; `null` for a single instance.
    pub alerting_instance: Option<String>,
}

/// A webhook as the API shows it: never its URL nor its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SinkView {
    pub name: String,
    /// `slack`, `mattermost`, `teams` or `json`.
    pub kind: String,
}

/// `GET /api/v1/alerts/rules`: the rules in force and the sinks they notify.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulesView {
    pub rules: Vec<AlertRule>,
    pub sinks: Vec<SinkView>,
}

/// `POST /api/v1/events`: what became of the records posted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestReport {
    /// Records produced to the events topic.
    pub accepted: u64,
    /// Records refused (not produced).
    pub rejected: u64,
    /// Why, for the first 100 refused records.
    pub errors: Vec<RecordError>,
}

/// One refused record of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordError {
    /// Its position in the batch, from 0 (JSONL: its line, blank lines counted).
    pub index: u64,
    /// The field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub error: String,
}

/// `GET /api/v1/autopilot`: the automatic deflection rules in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutopilotRules {
    pub rules: Vec<crate::AutopilotRuleView>,
}

/// `POST /api/v1/alerts/{id}/ack`: an optional note (the body may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckRequest {
    /// At most 500 characters.
    #[serde(default)]
    pub note: Option<String>,
}
