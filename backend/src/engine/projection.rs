//! Owns the projection of a queue (or a channel) from its window: the offered load, the
//! agents there now, and what Erlang C says of them (service level, expected wait,
//! occupancy, agents needed), and the what-if of deflecting part of the load.
//!
//! `offered` = arrivals − deflected in the window; λ = offered / |W|; a = λ × AHT
//! (Erlangs); N = available + on contact + after-contact work at `to`; T and the target
//! are those of the channel. The projected service level is 1 − C(N, a)·e^(−(N − a)·T/AHT)
//! when N > a, else 0; null when nothing was offered, the AHT is unknown or the channel
//! has no target. `agents_needed` is the smallest N ≥ 1 reaching the target to within
//! half a tenth of a point.

use vigie_proto::{Projection, WhatIf};

use super::erlang;

/// What a projection needs of its scope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Load {
    /// Contacts that reached the queue in the window (arrivals − deflected).
    pub offered: u64,
    pub window_ms: i64,
    pub aht_ms: Option<f64>,
    /// Agents available, on contact or in after-contact work at `to`.
    pub agents: u64,
}

/// The channel's service-level rule: threshold (ms) and target (fraction).
pub(super) type Rule = (i64, f64);

/// Most agents `agents_needed` searches (beyond, it is null: no centre is that large).
const MAX_AGENTS: u32 = 100_000;

impl Load {
    /// Offered load in Erlangs; `None` without an AHT or a window.
    fn erlangs(&self) -> Option<f64> {
        let aht = self.aht_ms.filter(|a| *a > 0.0 && a.is_finite())?;
        (self.window_ms > 0).then(|| self.offered as f64 / self.window_ms as f64 * aht)
    }

    /// The projection of this load with `rule` (none: the channel has no target).
    pub(super) fn project(&self, rule: Option<Rule>) -> Projection {
        let mut p = Projection {
            offered: self.offered,
            aht_ms: self.aht_ms,
            agents: self.agents,
            ..Projection::default()
        };
        let (Some(a), Some((threshold_ms, target)), true) =
            (self.erlangs(), rule, self.offered > 0)
        else {
            return p;
        };
        let aht_s = self.aht_ms.unwrap_or(0.0) / 1000.0;
        let n = u32::try_from(self.agents).unwrap_or(u32::MAX);
        let t_s = threshold_ms as f64 / 1000.0;
        p.projected_service_level = Some(erlang::service_level(n, a, aht_s, t_s));
        p.agents_needed =
            erlang::agents_needed(a, aht_s, t_s, target - 0.0005, MAX_AGENTS).map(|n| n.max(1));
        p.expected_wait_ms = erlang::expected_wait(n, a, aht_s).map(|s| s * 1000.0);
        p.occupancy = (n > 0).then(|| (a / f64::from(n)).min(1.0));
        p
    }

    /// The what-if of deflecting `part` of this load (`part.offered` of it): its share,
    /// and the projected service level now and without it (same agents, same AHT).
    pub(super) fn what_if(&self, part_offered: u64, rule: Option<Rule>) -> Option<WhatIf> {
        if self.offered == 0 {
            return None;
        }
        let now = self.project(rule).projected_service_level?;
        let rest = Load {
            offered: self.offered.saturating_sub(part_offered),
            ..*self
        };
        Some(WhatIf {
            share: part_offered.min(self.offered) as f64 / self.offered as f64,
            projected_service_level: now,
            // Nothing left to serve: every remaining contact (none) is within the target.
            projected_service_level_without: rest
                .project(rule)
                .projected_service_level
                .unwrap_or(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PHONE: Option<Rule> = Some((20_000, 0.8));

    fn load(offered: u64, aht_s: f64, agents: u64) -> Load {
        Load {
            offered,
            window_ms: 900_000,
            aht_ms: Some(aht_s * 1000.0),
            agents,
        }
    }

    #[test]
    fn nulls_exactly_where_the_reference_says() {
        assert_eq!(
            load(0, 180.0, 10).project(PHONE).projected_service_level,
            None
        );
        assert_eq!(load(0, 180.0, 10).project(PHONE).agents_needed, None);
        let no_aht = Load {
            aht_ms: None,
            ..load(50, 1.0, 10)
        };
        assert_eq!(no_aht.project(PHONE).projected_service_level, None);
        assert_eq!(
            load(50, 180.0, 10).project(None).projected_service_level,
            None
        );
        // N ≤ a: everyone waits for ever, 0.
        // 900 contacts in 15 min × 180 s = 180 Erlangs on 100 agents.
        let p = load(900, 180.0, 100).project(PHONE);
        assert_eq!(p.projected_service_level, Some(0.0));
        assert_eq!(p.expected_wait_ms, None);
        assert!(p.agents_needed.is_some_and(|n| n > 180));
    }

    #[test]
    fn a_published_case() {
        // 50 contacts in 15 min with AHT 180 s = 10 Erlangs; 12 agents: SL(20 s) 0.6402
        // (published Erlang C tables); 14 agents reach 80 %.
        let p = load(50, 180.0, 12).project(PHONE);
        assert!(
            (p.projected_service_level.expect("sl") - 0.6402).abs() < 1e-4,
            "{p:?}"
        );
        assert_eq!(p.agents_needed, Some(14));
        assert!((p.occupancy.expect("occupancy") - 10.0 / 12.0).abs() < 1e-9);
        // ASA = C × AHT / (N − a) = 0.4494 × 180 / 2 ≈ 40.4 s.
        assert!(
            (p.expected_wait_ms.expect("asa") - 40_445.0).abs() < 100.0,
            "{p:?}"
        );
    }

    #[test]
    fn a_hundred_percent_target_is_reachable() {
        let p = load(50, 180.0, 12).project(Some((4 * 3_600_000, 1.0)));
        assert!(p.agents_needed.is_some(), "{p:?}");
    }

    proptest! {
        /// The what-if is the projection recomputed with the part's load removed.
        #[test]
        fn the_what_if_is_the_projection_without_the_part(
            offered in 1u64..5_000, part in 0u64..5_000, aht_s in 10.0f64..900.0, agents in 0u64..800,
        ) {
            let whole = load(offered, aht_s, agents);
            let part = part.min(offered);
            let w = whole.what_if(part, PHONE).expect("a projection");
            let rest = load(offered - part, aht_s, agents).project(PHONE).projected_service_level;
            prop_assert_eq!(Some(w.projected_service_level), whole.project(PHONE).projected_service_level);
            prop_assert_eq!(w.projected_service_level_without, rest.unwrap_or(1.0));
            prop_assert!(w.projected_service_level_without >= w.projected_service_level - 1e-12);
            prop_assert!((w.share - part as f64 / offered as f64).abs() < 1e-12);
        }

        /// More agents never lower the projection; agents_needed reaches the target.
        #[test]
        fn more_agents_never_hurt(offered in 1u64..5_000, aht_s in 10.0f64..900.0, agents in 0u64..800) {
            let a = load(offered, aht_s, agents).project(PHONE);
            let b = load(offered, aht_s, agents + 1).project(PHONE);
            prop_assert!(b.projected_service_level >= a.projected_service_level);
            let needed = a.agents_needed.expect("reachable");
            let at = load(offered, aht_s, u64::from(needed)).project(PHONE);
            prop_assert!(at.projected_service_level.expect("sl") >= 0.8 - 0.0005);
        }
    }
}
