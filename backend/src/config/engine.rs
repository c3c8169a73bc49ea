//! Owns the `[engine]` section: the KPI rules (lateness, repeat horizon H, windows,
//! per-channel service-level targets and short-abandon thresholds), their defaults from the
//! domain's norms, and their checks. The engine reads them in milliseconds
//! (`EngineConfig::from_settings`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// KPI engine rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Events older than this behind the newest event time are counted as late, not applied.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Repeat-contact horizon H: an arrival is a repeat if the customer arrived within H before.
    #[serde(with = "humantime_serde")]
    pub repeat_horizon: Duration,
    /// Longest window a snapshot can cover (aggregates are kept this long, and at least 25 h).
    #[serde(with = "humantime_serde")]
    pub max_window: Duration,
    /// An unfinished interaction is forgotten this long after its last event.
    #[serde(with = "humantime_serde")]
    pub interaction_ttl: Duration,
    /// An abandoned contact is kept this long after its last event, so that an answer
    /// or an end that follows still joins it (Asterisk: a call that times out of one
    /// queue and is answered in another); at most `interaction_ttl`.
    #[serde(with = "humantime_serde")]
    pub failover_grace: Duration,
    /// Most distinct dimension values (queues, reasons, segments and sites together)
    /// kept; new values beyond are counted as `(other)` and in
    /// `vigie_dimension_values_overflow_total`. Bounds memory and snapshot size when a
    /// producer puts ids in a dimension field. Channels are always kept (they carry the
    /// service-level rules and the cross-channel logic).
    pub max_dimension_values: usize,
    /// Most channels beyond the ten of the contract and those configured below; more
    /// are counted as the channel `(other)` (with the default rules: no service-level
    /// target) and in `vigie_channels_overflow_total`.
    pub max_channels: usize,
    /// Most dimension keys (channel × queue × reason × segment × site combinations) in
    /// use at once; a new one beyond is counted under its channel with every other
    /// dimension `(other)` (`vigie_dimension_keys_overflow_total`). A key unused for
    /// longer than anything can hold it (the horizon or the TTL, plus the longest window)
    /// is freed (`vigie_dimension_keys_freed_total`).
    pub max_dimension_keys: usize,
    /// Most arrivals of one customer id held within the allowed lateness: an id shared
    /// by many contacts (an anonymous placeholder such as `0`) would make each arrival
    /// cost as much as all of them. The oldest beyond are settled early
    /// (`vigie_customer_arrivals_folded_total`).
    pub max_recent_arrivals_per_customer: usize,
    /// Most agents known at once per partition: an agent id put in the wrong field would
    /// otherwise add one agent per event. A new agent beyond is refused and counted in
    /// `vigie_agents_refused_total`; an agent logged out for longer than the retention is
    /// forgotten.
    pub max_agents: usize,
    /// Most state changes kept per agent within the retention (a flapping softphone
    /// sending thousands a day); the oldest beyond are folded into the state they leave,
    /// counted in `vigie_agent_changes_folded_total` (older occupancy becomes inexact).
    pub max_agent_changes: usize,
    /// Weeks of arrivals kept per (channel, queue) for baselines ("+23 % vs last week",
    /// the `volume_vs_baseline` alert): 0 turns baselines off. A rebuild reads this many
    /// weeks back (or the repeat horizon, if longer), so the topic's retention should
    /// cover them. About 6 KB per key per day of history.
    pub baseline_weeks: u32,
    /// Most (channel, queue) keys with a baseline per partition; arrivals of new keys
    /// beyond are counted under their channel's `(other)` queue
    /// (`vigie_baseline_keys_overflow_total`).
    pub max_baseline_keys: usize,
    /// IANA time zone of the `today` window (e.g. `Europe/Paris`).
    pub time_zone: String,
    /// Short-abandon threshold of channels that do not set their own (0s disables).
    #[serde(with = "humantime_serde")]
    pub short_abandon: Duration,
    /// Per-channel rules, by channel name. Channels not listed have no service-level target.
    pub channels: BTreeMap<String, ChannelSettings>,
}

/// Rules of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Overrides `engine.short_abandon` for this channel.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub short_abandon: Option<Duration>,
    /// Service-level target; absent = the channel has no service level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<ServiceLevelSettings>,
}

/// "`target` of contacts answered within `threshold`".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLevelSettings {
    #[serde(with = "humantime_serde")]
    pub threshold: Duration,
    /// Fraction in (0, 1], e.g. 0.8 for 80 %.
    pub target: f64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        let sl = |threshold_s: u64, target: f64| ChannelSettings {
            short_abandon: None,
            service_level: Some(ServiceLevelSettings {
                threshold: Duration::from_secs(threshold_s),
                target,
            }),
        };
        EngineSettings {
            allowed_lateness: Duration::from_secs(300),
            repeat_horizon: Duration::from_secs(7 * 86_400),
            max_window: Duration::from_secs(86_400),
            interaction_ttl: Duration::from_secs(86_400),
            failover_grace: Duration::from_secs(3_600),
            max_dimension_values: 10_000,
            max_channels: 64,
            max_dimension_keys: 100_000,
            max_recent_arrivals_per_customer: 1_000,
            max_agents: 50_000,
            max_agent_changes: 5_000,
            baseline_weeks: 4,
            max_baseline_keys: 2_000,
            time_zone: "UTC".into(),
            short_abandon: Duration::from_secs(5),
            channels: [
                ("phone", sl(20, 0.8)),
                ("chat", sl(40, 0.8)),
                ("messaging", sl(60, 0.8)),
                ("social", sl(3_600, 1.0)),
                ("email", sl(4 * 3_600, 1.0)),
                ("callback", sl(1_800, 0.9)),
            ]
            .into_iter()
            .map(|(name, c)| (name.to_string(), c))
            .collect(),
        }
    }
}

impl EngineSettings {
    /// Pushes one line per problem, each naming its key and the fix.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let e = self;
        if e.repeat_horizon.is_zero() {
            errors.push("engine.repeat_horizon: must be longer than 0s (e.g. \"7d\")".to_string());
        }
        if e.max_window < Duration::from_secs(1) || e.max_window.subsec_nanos() != 0 {
            errors.push(
                "engine.max_window: must be a whole number of seconds, at least 1s (e.g. \"24h\")"
                    .into(),
            );
        }
        if e.max_window > Duration::from_secs(31 * 86_400) {
            errors.push("engine.max_window: at most 31 days (e.g. \"24h\")".into());
        }
        if !(16..=10_000_000).contains(&e.max_dimension_values) {
            errors.push("engine.max_dimension_values: between 16 and 10000000 (e.g. 10000)".into());
        }
        if !(1..=10_000).contains(&e.max_channels) {
            errors.push("engine.max_channels: between 1 and 10000 (e.g. 64)".into());
        }
        if !(1..=1_000_000).contains(&e.max_recent_arrivals_per_customer) {
            errors.push(
                "engine.max_recent_arrivals_per_customer: between 1 and 1000000 (e.g. 1000)".into(),
            );
        }
        if !(1..=10_000_000).contains(&e.max_agents) {
            errors.push("engine.max_agents: between 1 and 10000000 (e.g. 50000)".into());
        }
        if !(16..=1_000_000).contains(&e.max_agent_changes) {
            errors.push("engine.max_agent_changes: between 16 and 1000000 (e.g. 5000)".into());
        }
        if e.baseline_weeks > 8 {
            errors.push("engine.baseline_weeks: between 0 (off) and 8 (e.g. 4)".into());
        }
        if !(16..=1_000_000).contains(&e.max_baseline_keys) {
            errors.push("engine.max_baseline_keys: between 16 and 1000000 (e.g. 2000)".into());
        }
        if !(64..=100_000_000).contains(&e.max_dimension_keys) {
            errors.push("engine.max_dimension_keys: between 64 and 100000000 (e.g. 100000)".into());
        }
        // Upper bounds: beyond them nothing real is described, and the engine's time
        // arithmetic stays far from overflow.
        let day = Duration::from_secs(86_400);
        for (key, value, max, example) in [
            ("allowed_lateness", e.allowed_lateness, day, "5m"),
            ("repeat_horizon", e.repeat_horizon, 90 * day, "7days"),
            ("interaction_ttl", e.interaction_ttl, 31 * day, "1day"),
            (
                "short_abandon",
                e.short_abandon,
                Duration::from_secs(3_600),
                "5s",
            ),
        ] {
            if value > max {
                errors.push(format!(
                    "engine.{key}: at most {} (e.g. \"{example}\")",
                    humantime::format_duration(max)
                ));
            }
        }
        if e.failover_grace > e.interaction_ttl {
            errors
                .push("engine.failover_grace: at most engine.interaction_ttl (e.g. \"1h\")".into());
        }
        if e.interaction_ttl <= e.allowed_lateness {
            errors.push("engine.interaction_ttl: must be longer than engine.allowed_lateness (e.g. \"24h\")".into());
        }
        if jiff::tz::TimeZone::get(&e.time_zone).is_err() {
            errors.push(format!(
            "engine.time_zone: unknown time zone {:?}; use an IANA name such as \"Europe/Paris\" or \"UTC\"",
            e.time_zone
        ));
        }
        for (name, channel) in &e.channels {
            if name.is_empty() {
                errors.push("engine.channels: a channel name is empty".into());
            }
            if channel
                .short_abandon
                .is_some_and(|d| d > Duration::from_secs(3_600))
            {
                errors.push(format!(
                    "engine.channels.{name}.short_abandon: at most 1h (e.g. \"5s\")"
                ));
            }
            if let Some(sl) = &channel.service_level {
                if sl.threshold > Duration::from_secs(7 * 86_400) {
                    errors.push(format!(
                        "engine.channels.{name}.service_level.threshold: at most 7days (e.g. \"20s\")"
                    ));
                }
                if sl.threshold.is_zero() {
                    errors.push(format!(
                    "engine.channels.{name}.service_level.threshold: must be longer than 0s (e.g. \"20s\")"
                ));
                }
                if !(sl.target > 0.0 && sl.target <= 1.0) {
                    errors.push(format!(
                    "engine.channels.{name}.service_level.target: {} is not a fraction in (0, 1] (e.g. 0.8 for 80 %)",
                    sl.target
                ));
                }
            }
        }
    }
}
