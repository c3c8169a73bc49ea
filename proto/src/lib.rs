//! Vigie wire types: what crosses a process boundary.
//!
//! Owns the JSON shapes shared by the backend and the WASM cockpit (snapshots,
//! switches, alerts, websocket messages) and the protobuf interaction event
//! generated from `proto/interaction.proto`. Builds for `wasm32-unknown-unknown`:
//! no I/O, no runtime, only `serde` and `prost` (and, for the server's OpenAPI document
//! only, `utoipa` behind the `openapi` feature, so the cockpit's bundle does not grow).
//!
//! # Layout
//! - [`snapshot`]: [`Snapshot`], [`Kpis`], [`QueueStatus`]: the KPI snapshot printed by
//!   `vigie replay` and pushed live, one type everywhere.
//! - [`agent`]: capacity: [`AgentState`], the [`Staffing`] block, the [`AgentList`].
//! - [`switch`]: deflection switches ([`DeflectionSwitch`]).
//! - [`cockpit`]: what the cockpit loads at start ([`CockpitInfo`]: caller, targets,
//!   filter values) and the last hour's [`Trend`].
//! - [`alert`]: alerts and their rules ([`Alert`], [`AlertRule`]).
//! - [`ws`]: websocket messages ([`ServerMessage`], [`ClientMessage`]).
//! - [`api`]: the other REST bodies: lists and pages ([`SwitchList`], [`AlertList`]...),
//!   probes ([`Readiness`]) and the one error shape ([`ErrorBody`]).
//! - [`words`]: what people read, in French and English, shared by the cockpit and the
//!   chat notifications: KPI and channel names, numbers, an alert as one line.
//! - [`v1`]: generated protobuf types ([`v1::InteractionEvent`]).

pub mod agent;
pub mod alert;
pub mod api;
pub mod cockpit;
pub mod snapshot;
pub mod switch;
pub mod words;
pub mod ws;

pub use agent::{AgentList, AgentRow, AgentState, Staffing};
pub use alert::{
    Alert, AlertRule, AlertState, AutopilotAction, AutopilotMode, AutopilotRuleView, Comparison,
    Kpi, Severity, Unit,
};
pub use api::{
    AckRequest, AlertList, AuditPage, AutopilotRules, ErrorBody, Health, IngestReport, Readiness,
    RecordError, RulesView, SinkView, SwitchList,
};
pub use cockpit::{ChannelTarget, CockpitInfo, Me, Role, Targets, Trend, TrendPoint};
pub use snapshot::{
    Baseline, Breakdown, DimensionKey, EstimatedWait, Kpis, Projection, QueueStatus, Snapshot,
    WhatIf, WindowBounds,
};
pub use snapshot::{OTHER_VALUE, UNKNOWN_VALUE};
pub use switch::{
    is_valid_name, switch_id, AuditRecord, DeflectionSwitch, DeflectionTarget, FlipRequest,
    SwitchEffect, SwitchPrediction,
};
pub use ws::{ClientMessage, PartitionsReport, ServerMessage, StatusReport, Subscription};

/// Generated protobuf types of `proto/interaction.proto` (package `vigie.v1`).
#[allow(missing_debug_implementations, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/vigie.v1.rs"));
}
