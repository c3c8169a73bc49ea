//! The KPI snapshot: one type for `vigie replay`, the REST API and the websocket.
//!
//! Every snapshot states its exact window bounds and the newest event time seen,
//! so any consumer can recompute it from the raw stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Window bounds `[from, to)` in event time, epoch milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowBounds {
    pub from: i64,
    pub to: i64,
}

/// One KPI snapshot over one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub window: WindowBounds,
    /// Newest event time seen (epoch ms); `null` before the first event.
    pub watermark: Option<i64>,
    /// Events older than the allowed lateness behind the watermark: counted, not applied.
    pub late_events: u64,
    /// Records that could not be decoded (or failed validation).
    pub rejected: u64,
    /// Redeliveries: events whose `event_id` was already applied.
    pub duplicates: u64,
    /// KPIs over every contact in the window.
    pub total: Kpis,
    /// The same KPIs per channel (unknown channel strings are kept as their own channel).
    pub by_channel: BTreeMap<String, Kpis>,
    /// Live queue state and estimated wait range, per queue.
    pub queues: BTreeMap<String, QueueStatus>,
    /// Finer breakdown (e.g. channel × queue × reason × segment × site), when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<Breakdown>,
}

/// KPIs of one scope (total, one channel, one dimension combination).
///
/// Rates are fractions in `0..=1`, `null` when their denominator is zero.
/// Durations are milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpis {
    pub arrivals: u64,
    pub deflected: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub answer_rate: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub deflection_rate: Option<f64>,
    pub asa_ms: Option<f64>,
    pub wait_p50_ms: Option<u64>,
    pub wait_p90_ms: Option<u64>,
    pub wait_p99_ms: Option<u64>,
    pub service_level: Option<f64>,
    pub aht_ms: Option<f64>,
    pub repeat_rate: Option<f64>,
    pub cross_channel_repeat_rate: Option<f64>,
    pub once_and_done_rate: Option<f64>,
    /// Contacts queued now and not yet answered or abandoned (live, not windowed).
    pub in_queue: u64,
    /// Age of the oldest contact in queue, from its arrival (live, not windowed).
    pub oldest_wait_ms: Option<i64>,
    /// Agents of the scope by state at `to` (live); absent when no agent event was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staffing: Option<crate::Staffing>,
    /// Time on contact or in after-contact work / time available, on contact or in
    /// after-contact work, over the window, summed over the scope's agents; absent when
    /// that denominator is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy: Option<f64>,
    /// In `by_channel`: the channel's Erlang C projection (its queues pooled), once
    /// agents are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
    /// In breakdown rows of one channel: what deflecting this row's contacts would do to
    /// the channel's projected service level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_if: Option<WhatIf>,
    /// In `total` and `by_channel`: arrivals against the same window in earlier weeks;
    /// absent before a week of history, when baselines are off, or when the scope filters
    /// on reason, segment or site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// Is today normal? The scope's arrivals in the window against the same window one week
/// earlier and on average over the last weeks (`engine.baseline_weeks`) that history
/// covers. Expected counts take the share of minutes cut by the window's edges, so they
/// may have decimals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Baseline {
    /// Arrivals in the window.
    pub arrivals: u64,
    /// Arrivals in the same window 7 days earlier.
    pub last_week: Option<f64>,
    /// Mean of the same window over the last `weeks` weeks; null with none.
    pub mean: Option<f64>,
    /// Weeks of history in `mean` (1 to `engine.baseline_weeks`).
    pub weeks: u32,
    /// arrivals / last_week − 1 (0.23: "+23 % vs last week"); null when last_week is 0 or null.
    pub vs_last_week: Option<f64>,
    /// arrivals / mean − 1; null when the mean is 0 or null.
    pub vs_mean: Option<f64>,
}

/// Erlang C's view of a queue (or a channel) from its window: the load offered, the
/// agents there now, and what they would achieve if the load went on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Projection {
    /// Contacts that reached the queue in the window (arrivals − deflected).
    pub offered: u64,
    pub aht_ms: Option<f64>,
    /// Agents available, on contact or in after-contact work at `to`.
    pub agents: u64,
    /// 1 − C(N, a)·e^(−(N − a)·T/AHT), 0 when N ≤ a; null when nothing was offered, the
    /// AHT is unknown or the channel has no service-level target.
    pub projected_service_level: Option<f64>,
    /// The fewest agents reaching the target (to within 0.05 point); null with the above.
    pub agents_needed: Option<u32>,
    /// Erlang C's mean wait over every contact (ASA), ms; null when N ≤ a or no projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_wait_ms: Option<f64>,
    /// The occupancy the projection implies (a / N, at most 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy: Option<f64>,
}

/// What deflecting a scope would do to its channel's projection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhatIf {
    /// The scope's share of the channel's offered load over the window.
    pub share: f64,
    /// The channel's projected service level now...
    pub projected_service_level: f64,
    /// ...and with the scope's load removed (same agents, same AHT).
    pub projected_service_level_without: f64,
}

/// Live state of one queue with its estimated wait range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    /// The channel of the queue's contacts when they all share one (the usual case: a
    /// queue serves one channel, whose norms judge its waits); absent when mixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub in_queue: u64,
    pub oldest_wait_ms: Option<i64>,
    pub estimated_wait: Option<EstimatedWait>,
    /// The queue's agents (those serving it) by state at `to`; absent without agent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staffing: Option<crate::Staffing>,
    /// Occupancy of the queue's agents over the window (see [`Kpis::occupancy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy: Option<f64>,
    /// Erlang C's projection of the queue, once agents are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
    /// The queue's arrivals against earlier weeks (see [`Kpis::baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// A wait range ("5 to 10 minutes"), as users expect, rather than one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EstimatedWait {
    pub low_ms: u64,
    /// `null` when open-ended: contacts wait and none was answered in the window
    /// ("more than `low_ms`").
    pub high_ms: Option<u64>,
}

/// The value of a dimension an event did not give.
pub const UNKNOWN_VALUE: &str = "unknown";
/// The value standing for every value beyond a dimension's limit of distinct values.
pub const OTHER_VALUE: &str = "(other)";

/// The values of the five dimensions; a missing value is `"unknown"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DimensionKey {
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
}

/// KPIs of one combination of dimension values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breakdown {
    pub key: DimensionKey,
    pub kpis: Kpis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_rates_and_window_serialise_as_the_replay_contract() {
        let snapshot = Snapshot {
            window: WindowBounds { from: 1, to: 2 },
            ..Snapshot::default()
        };
        let json = serde_json::to_value(&snapshot).expect("serialise");
        assert_eq!(json["window"]["from"], 1);
        assert!(json["total"]["answer_rate"].is_null());
        assert!(
            json.get("breakdown").is_none(),
            "empty breakdown is omitted"
        );
        let back: Snapshot = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, snapshot);
    }
}
