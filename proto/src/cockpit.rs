//! What the cockpit needs besides the live numbers: who the caller is, the targets the
//! tiles are coloured against, the values the filters offer, and the last hour's trend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a caller may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May only post events (`POST /api/v1/events`): a producer's token, never a viewer.
    Ingest,
    Viewer,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// `GET /api/v1/cockpit`: everything the cockpit loads once at start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CockpitInfo {
    /// The caller, as the server sees the presented token.
    pub me: Option<Me>,
    pub targets: Targets,
    /// Values seen so far per dimension (`site`, `segment`, `reason`, `channel`, `queue`),
    /// sorted, for the filter selectors.
    pub dimensions: BTreeMap<String, Vec<String>>,
    /// IANA time zone of the `today` window.
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub name: String,
    pub role: Role,
}

/// Targets a KPI is coloured against: `ok` when it meets the target, `warning` when it
/// misses it by less than `margin` (rates) or passes the warning level, `breach` beyond.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Targets {
    /// Service-level rule per channel that has one.
    pub channels: BTreeMap<String, ChannelTarget>,
    /// Answer-rate target, fraction (e.g. 0.9).
    pub answer_rate: f64,
    /// Once-and-done target, fraction.
    pub once_and_done: f64,
    /// How far below a rate target is still a warning rather than a breach (fraction).
    pub margin: f64,
    /// Abandon rate (fraction) from which the tile turns warning, then breach.
    pub abandon_rate_warning: f64,
    pub abandon_rate_breach: f64,
    /// Cross-channel reiteration (fraction) from which the tile turns warning, then breach.
    pub cross_channel_warning: f64,
    pub cross_channel_breach: f64,
    /// Oldest wait (ms) from which a queue turns warning, then breach.
    pub oldest_wait_warning_ms: u64,
    pub oldest_wait_breach_ms: u64,
    /// No event for this long (ms, the newest event's time against the screen's clock):
    /// the wall says so and greys its numbers, as a dead feed and a quiet hour look alike.
    #[serde(default = "default_quiet_after_ms")]
    pub quiet_after_ms: u64,
    /// Occupancy (fraction) from which it turns warning, then breach: agents busy all
    /// the time burn out.
    #[serde(default = "default_occupancy_warning")]
    pub occupancy_warning: f64,
    #[serde(default = "default_occupancy_breach")]
    pub occupancy_breach: f64,
}

fn default_occupancy_warning() -> f64 {
    0.85
}

fn default_occupancy_breach() -> f64 {
    0.92
}

fn default_quiet_after_ms() -> u64 {
    120_000
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            channels: BTreeMap::new(),
            answer_rate: 0.9,
            once_and_done: 0.7,
            margin: 0.05,
            abandon_rate_warning: 0.05,
            abandon_rate_breach: 0.1,
            cross_channel_warning: 0.15,
            cross_channel_breach: 0.25,
            oldest_wait_warning_ms: 120_000,
            oldest_wait_breach_ms: 300_000,
            quiet_after_ms: default_quiet_after_ms(),
            occupancy_warning: default_occupancy_warning(),
            occupancy_breach: default_occupancy_breach(),
        }
    }
}

/// "`target` of contacts answered within `threshold_ms`".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelTarget {
    pub threshold_ms: u64,
    pub target: f64,
}

/// How a subscription's KPIs moved: point `i` is the subscription's window ending at
/// `times[i]` (for `today`, the day so far at that time), one point per `step_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trend {
    pub step_ms: i64,
    pub times: Vec<i64>,
    pub total: Vec<TrendPoint>,
    pub by_channel: BTreeMap<String, Vec<TrendPoint>>,
}

/// The flow KPIs of one trend point (queue sizes are not kept in history).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrendPoint {
    pub arrivals: u64,
    pub answer_rate: Option<f64>,
    pub service_level: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub asa_ms: Option<f64>,
    pub once_and_done_rate: Option<f64>,
    pub cross_channel_repeat_rate: Option<f64>,
}

impl TrendPoint {
    pub fn of(kpis: &crate::Kpis) -> TrendPoint {
        TrendPoint {
            arrivals: kpis.arrivals,
            answer_rate: kpis.answer_rate,
            service_level: kpis.service_level,
            abandon_rate: kpis.abandon_rate,
            asa_ms: kpis.asa_ms,
            once_and_done_rate: kpis.once_and_done_rate,
            cross_channel_repeat_rate: kpis.cross_channel_repeat_rate,
        }
    }
}
