//! Owns the colouring of KPIs against targets: `ok`, `warning`, `breach`, or no data.
//! Rates with a target (service level, answer rate, once-and-done) are `warning` when
//! they miss it by less than the margin; rates and waits that should stay low have a
//! warning and a breach level.

use vigie_proto::{Kpis, Targets};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    NoData,
    Ok,
    Warning,
    Breach,
}

impl Level {
    pub fn class(self) -> &'static str {
        match self {
            Level::NoData => "nodata",
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Breach => "breach",
        }
    }
}

/// A rate that should reach `target`.
pub fn at_least(value: Option<f64>, target: f64, margin: f64) -> Level {
    match value {
        None => Level::NoData,
        Some(v) if v >= target => Level::Ok,
        Some(v) if v >= target - margin => Level::Warning,
        Some(_) => Level::Breach,
    }
}

/// A rate or wait that should stay below `warning` (and never reach `breach`).
pub fn at_most(value: Option<f64>, warning: f64, breach: f64) -> Level {
    match value {
        None => Level::NoData,
        Some(v) if v >= breach => Level::Breach,
        Some(v) if v >= warning => Level::Warning,
        Some(_) => Level::Ok,
    }
}

/// Occupancy against its warning and breach levels (too high is the risk).
pub fn occupancy_level(occupancy: Option<f64>, t: &Targets) -> Level {
    at_most(occupancy, t.occupancy_warning, t.occupancy_breach)
}

/// The service-level target of a scope: the channel's own, or for the total the targets
/// of the channels with one, weighted by their arrivals (as the total's service level
/// counts each contact against its own channel's threshold).
pub fn service_level_target<'a>(
    targets: &Targets,
    channel: Option<&str>,
    by_channel: impl Iterator<Item = (&'a String, &'a Kpis)>,
) -> Option<f64> {
    if let Some(channel) = channel {
        return targets.channels.get(channel).map(|t| t.target);
    }
    let (weighted, weight) = by_channel
        .filter_map(|(c, k)| Some((targets.channels.get(c)?.target, k.arrivals as f64)))
        .fold((0.0, 0.0), |(s, w), (t, a)| (s + t * a, w + a));
    (weight > 0.0).then(|| weighted / weight)
}

/// The oldest-wait limits (warning, breach) of a channel, in ms: the global ones, raised
/// for a channel whose service-level threshold T is longer: warning from T (that contact
/// already misses the service level), breach from 2T, as the built-in queue-stuck alert.
/// An e-mail waiting 10 minutes is normal when the norm is 4 hours; a call is not.
pub fn oldest_wait_limits(t: &Targets, channel: Option<&str>) -> (f64, f64) {
    let threshold = channel
        .and_then(|c| t.channels.get(c))
        .map_or(0, |c| c.threshold_ms);
    (
        t.oldest_wait_warning_ms.max(threshold) as f64,
        t.oldest_wait_breach_ms.max(threshold.saturating_mul(2)) as f64,
    )
}

/// The level of an oldest wait in `channel` (none: a queue of several channels, judged
/// by the global limits).
pub fn oldest_wait_level(wait_ms: Option<i64>, t: &Targets, channel: Option<&str>) -> Level {
    let (warning, breach) = oldest_wait_limits(t, channel);
    at_most(wait_ms.map(|ms| ms as f64), warning, breach)
}

/// The oldest-wait level of the total: its worst channel, each judged by its own norm
/// (the total's oldest wait is usually an e-mail's, which says nothing of the phones).
pub fn total_oldest_wait_level<'a>(
    t: &Targets,
    by_channel: impl Iterator<Item = (&'a String, &'a Kpis)>,
) -> Level {
    by_channel
        .map(|(c, k)| oldest_wait_level(k.oldest_wait_ms, t, Some(c)))
        .max()
        .unwrap_or(Level::NoData)
}

/// The levels of one flow of `channel` (a channel's tile, or one of its contact reasons):
/// the service level against the channel's own target, the oldest wait by its norm.
pub fn flow_levels(kpis: &Kpis, channel: &str, t: &Targets) -> TileLevels {
    TileLevels::of(
        kpis,
        t.channels.get(channel).map(|c| c.target),
        oldest_wait_level(kpis.oldest_wait_ms, t, Some(channel)),
        t,
    )
}

/// The levels of one tile's KPIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileLevels {
    /// The headline's: the service level's when the scope has a target, else the
    /// answer rate's.
    pub headline: Level,
    pub service_level: Level,
    pub answer_rate: Level,
    pub abandon_rate: Level,
    pub oldest_wait: Level,
    pub once_and_done: Level,
    pub cross_channel: Level,
    /// Capacity, not service: it colours the staffing line, never the tile.
    pub occupancy: Level,
}

impl TileLevels {
    /// `oldest_wait`: from [`oldest_wait_level`] or [`total_oldest_wait_level`], which
    /// need the tile's channel or every channel.
    pub fn of(kpis: &Kpis, sl_target: Option<f64>, oldest_wait: Level, t: &Targets) -> TileLevels {
        let answer_rate = at_least(kpis.answer_rate, t.answer_rate, t.margin);
        let service_level = match sl_target {
            Some(target) => at_least(kpis.service_level, target, t.margin),
            None => Level::NoData,
        };
        TileLevels {
            headline: if sl_target.is_some() {
                service_level
            } else {
                answer_rate
            },
            service_level,
            answer_rate,
            abandon_rate: at_most(
                kpis.abandon_rate,
                t.abandon_rate_warning,
                t.abandon_rate_breach,
            ),
            oldest_wait,
            once_and_done: at_least(kpis.once_and_done_rate, t.once_and_done, t.margin),
            cross_channel: at_most(
                kpis.cross_channel_repeat_rate,
                t.cross_channel_warning,
                t.cross_channel_breach,
            ),
            occupancy: occupancy_level(kpis.occupancy, t),
        }
    }

    /// How hard the flow is pressed: the worst of its headline, abandon rate and oldest
    /// wait. Once-and-done and reiteration say nothing of the queue, so they stay out.
    pub fn pressure(&self) -> Level {
        self.headline.max(self.abandon_rate).max(self.oldest_wait)
    }

    /// The tile's own colour: its worst KPI.
    pub fn worst(&self) -> Level {
        [
            self.service_level,
            self.answer_rate,
            self.abandon_rate,
            self.oldest_wait,
            self.once_and_done,
            self.cross_channel,
        ]
        .into_iter()
        .max()
        .unwrap_or(Level::NoData)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use vigie_proto::ChannelTarget;

    /// The default targets, and phone's service level: 80 % within 20 s.
    pub(crate) fn phone_at_80() -> Targets {
        Targets {
            channels: BTreeMap::from([(
                "phone".to_string(),
                ChannelTarget {
                    threshold_ms: 20_000,
                    target: 0.8,
                },
            )]),
            ..Targets::default()
        }
    }

    #[test]
    fn rates_with_a_target_turn_warning_within_the_margin_then_breach() {
        assert_eq!(
            at_least(Some(0.80), 0.80, 0.05),
            Level::Ok,
            "meeting the target is ok"
        );
        assert_eq!(at_least(Some(0.77), 0.80, 0.05), Level::Warning);
        assert_eq!(
            at_least(Some(0.75), 0.80, 0.05),
            Level::Warning,
            "edge of the margin"
        );
        assert_eq!(at_least(Some(0.74), 0.80, 0.05), Level::Breach);
        assert_eq!(at_least(None, 0.80, 0.05), Level::NoData);
    }

    #[test]
    fn a_flows_pressure_is_its_worst_queue_kpi() {
        let targets = phone_at_80();
        let calm = Kpis {
            service_level: Some(0.9),
            answer_rate: Some(0.5),
            abandon_rate: Some(0.01),
            oldest_wait_ms: Some(10_000),
            once_and_done_rate: Some(0.1),
            ..Kpis::default()
        };
        assert_eq!(
            flow_levels(&calm, "phone", &targets).pressure(),
            Level::Ok,
            "the service level is phone's headline; once-and-done is not pressure"
        );
        assert_eq!(
            flow_levels(&calm, "chatbot", &targets).pressure(),
            Level::Breach,
            "without a service-level target, the answer rate is the headline"
        );
        let waiting = Kpis {
            oldest_wait_ms: Some(200_000),
            ..calm.clone()
        };
        assert_eq!(
            flow_levels(&waiting, "phone", &targets).pressure(),
            Level::Warning
        );
        let abandoning = Kpis {
            abandon_rate: Some(0.12),
            ..waiting
        };
        assert_eq!(
            flow_levels(&abandoning, "phone", &targets).pressure(),
            Level::Breach
        );
        assert_eq!(
            flow_levels(&Kpis::default(), "phone", &targets).pressure(),
            Level::NoData
        );
    }

    #[test]
    fn rates_that_should_stay_low_have_two_levels() {
        assert_eq!(at_most(Some(0.04), 0.05, 0.10), Level::Ok);
        assert_eq!(at_most(Some(0.05), 0.05, 0.10), Level::Warning);
        assert_eq!(at_most(Some(0.10), 0.05, 0.10), Level::Breach);
    }

    #[test]
    fn the_total_target_weighs_channel_targets_by_arrivals() {
        let targets = Targets {
            channels: BTreeMap::from([
                (
                    "phone".to_string(),
                    ChannelTarget {
                        threshold_ms: 20_000,
                        target: 0.8,
                    },
                ),
                (
                    "email".to_string(),
                    ChannelTarget {
                        threshold_ms: 14_400_000,
                        target: 1.0,
                    },
                ),
            ]),
            ..Targets::default()
        };
        let kpis = |arrivals| Kpis {
            arrivals,
            ..Kpis::default()
        };
        let by_channel = BTreeMap::from([
            ("phone".to_string(), kpis(300)),
            ("email".to_string(), kpis(100)),
            ("visual_ivr".to_string(), kpis(600)),
        ]);
        let total = service_level_target(&targets, None, by_channel.iter()).expect("target");
        assert!((total - 0.85).abs() < 1e-9, "{total}");
        assert_eq!(
            service_level_target(&targets, Some("phone"), by_channel.iter()),
            Some(0.8)
        );
        assert_eq!(
            service_level_target(&targets, Some("visual_ivr"), by_channel.iter()),
            None
        );
    }

    #[test]
    fn a_tile_takes_the_colour_of_its_worst_kpi() {
        let t = Targets::default();
        let kpis = Kpis {
            service_level: Some(0.9),
            answer_rate: Some(0.95),
            abandon_rate: Some(0.12),
            ..Kpis::default()
        };
        let levels = TileLevels::of(&kpis, Some(0.8), Level::Ok, &t);
        assert_eq!(levels.service_level, Level::Ok);
        assert_eq!(levels.abandon_rate, Level::Breach);
        assert_eq!(levels.once_and_done, Level::NoData);
        assert_eq!(levels.worst(), Level::Breach);
    }

    #[test]
    fn oldest_waits_are_judged_by_their_channel_norm() {
        let target = |threshold_ms| ChannelTarget {
            threshold_ms,
            target: 0.8,
        };
        let t = Targets {
            channels: BTreeMap::from([
                ("phone".to_string(), target(20_000)),
                ("email".to_string(), target(4 * 3_600_000)),
            ]),
            ..Targets::default()
        };
        let min = |m: i64| Some(m * 60_000);
        // Phone: the global limits (2 min, 5 min) are above its 20 s norm.
        assert_eq!(oldest_wait_level(min(1), &t, Some("phone")), Level::Ok);
        assert_eq!(oldest_wait_level(min(3), &t, Some("phone")), Level::Warning);
        assert_eq!(oldest_wait_level(min(6), &t, Some("phone")), Level::Breach);
        // E-mail: 4 h norm, so warning from 4 h and breach from 8 h.
        assert_eq!(oldest_wait_level(min(30), &t, Some("email")), Level::Ok);
        assert_eq!(
            oldest_wait_level(min(300), &t, Some("email")),
            Level::Warning
        );
        assert_eq!(
            oldest_wait_level(min(481), &t, Some("email")),
            Level::Breach
        );
        // No norm, or a queue of several channels: the global limits.
        assert_eq!(
            oldest_wait_level(min(3), &t, Some("webform")),
            Level::Warning
        );
        assert_eq!(oldest_wait_level(min(3), &t, None), Level::Warning);
        assert_eq!(oldest_wait_level(None, &t, Some("phone")), Level::NoData);

        let waiting = |m| Kpis {
            oldest_wait_ms: min(m),
            ..Kpis::default()
        };
        let calm = BTreeMap::from([
            ("phone".to_string(), waiting(1)),
            ("email".to_string(), waiting(120)),
        ]);
        assert_eq!(
            total_oldest_wait_level(&t, calm.iter()),
            Level::Ok,
            "a 2-hour e-mail does not turn the total red"
        );
        let stuck_phones = BTreeMap::from([
            ("phone".to_string(), waiting(6)),
            ("email".to_string(), waiting(1)),
        ]);
        assert_eq!(
            total_oldest_wait_level(&t, stuck_phones.iter()),
            Level::Breach
        );
        assert_eq!(
            total_oldest_wait_level(&t, BTreeMap::new().iter()),
            Level::NoData
        );
    }
}
