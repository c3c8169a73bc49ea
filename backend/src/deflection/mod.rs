//! Deflection switches: owns the switch model's rules (validation, guard rails,
//! optimistic concurrency) and the Kafka-backed store every instance shares.
//!
//! The compacted topic `kafka.switches_topic` (key: switch id, value: the switch as JSON)
//! is the source of truth: each instance replays it at start and follows it, so every
//! instance and the routing systems (IVR, ACD) see the same states; each change also
//! goes to `kafka.audit_topic`. A flip is confirmed only once it has been read back
//! from the topic as the winning version, so two supervisors on two instances cannot
//! overwrite each other silently.

mod store;

use std::time::Duration;

use thiserror::Error;
use vigie_proto::DeflectionSwitch;

pub use store::SwitchStore;

use std::collections::BTreeMap;

use vigie_proto::{DimensionKey, SwitchEffect, SwitchPrediction};

use crate::engine::partial::SwitchShare;
use crate::engine::{DimensionFilter, Engine, EngineSet};

/// Longest `expires_in` of a flip: a deflection is an operational decision of the day or
/// the week, not a setting (a switch without expiry stays on until turned off).
pub(crate) const MAX_EXPIRES_IN: Duration = Duration::from_secs(31 * 86_400);

/// The contacts a switch acts on: its channel and scope, every site.
fn switch_scope(s: &DeflectionSwitch) -> DimensionFilter {
    DimensionFilter::from_key(DimensionKey {
        channel: Some(s.channel.clone()),
        queue: s.queue.clone(),
        reason: s.reason.clone(),
        segment: s.segment.clone(),
        site: None,
    })
}

/// The measured effect of every switch that is on, since it was turned on: over the
/// partitions consumed here, plus (scale-out) the shares other instances publish for theirs.
pub(crate) fn switch_effects(
    engines: &EngineSet,
    switches: &[DeflectionSwitch],
) -> BTreeMap<String, SwitchEffect> {
    switches
        .iter()
        .filter(|s| s.on)
        .map(|s| {
            let local = engines.deflection_effect(&switch_scope(s), s.changed_at);
            let remote = engines.remote_switch_share(&s.id, s.changed_at);
            let (deflected, came_back) = (
                local.deflected + remote.deflected,
                local.came_back + remote.came_back,
            );
            // The channel's service level in the first 15 minutes after the flip (so far).
            let measured_until = engines
                .watermark()
                .map(|w| crate::engine::window_end(Some(w)).min(s.changed_at + MEASURED_FOR_MS))
                .filter(|until| *until > s.changed_at);
            let effect = SwitchEffect {
                since: s.changed_at,
                deflected,
                came_back,
                containment: (deflected > 0).then(|| 1.0 - came_back as f64 / deflected as f64),
                predicted_service_level: s.prediction.as_ref().map(|p| p.service_level_predicted),
                measured_service_level: measured_until.and_then(|until| {
                    engines.service_level_between(&s.channel, s.changed_at, until)
                }),
                measured_until,
            };
            (s.id.clone(), effect)
        })
        .collect()
}

/// How long after a flip its measured service level is taken (against the prediction).
pub(crate) const MEASURED_FOR_MS: i64 = 15 * 60_000;

/// The effect of every switch that is on, on one partition's engine: what its owner
/// publishes in the partition's partial header (scale-out).
pub(crate) fn partition_shares(engine: &Engine, switches: &[DeflectionSwitch]) -> Vec<SwitchShare> {
    switches
        .iter()
        .filter(|s| s.on)
        .map(|s| {
            let effect = engine.deflection_effect(&switch_scope(s), s.changed_at);
            SwitchShare {
                switch: s.id.clone(),
                since: s.changed_at,
                deflected: effect.deflected,
                came_back: effect.came_back,
            }
        })
        .collect()
}

pub use vigie_proto::FlipRequest;

#[derive(Debug, Error)]
pub enum SwitchError {
    #[error("switch id {0:?} must be 1 to 64 characters among a-z, 0-9, '.', '_' and '-'")]
    BadId(String),
    #[error("a reason is required: say why in `why`")]
    MissingReason,
    #[error("{0}")]
    Invalid(String),
    #[error("switch {id:?} is at version {current}, not {expected}: reload it and decide again")]
    VersionConflict {
        id: String,
        expected: u64,
        current: u64,
    },
    #[error("conflicts with switch {other:?} (same channel and overlapping scope, another target): turn it off first")]
    Conflicting { other: String },
    #[error("the switch store is unavailable: {0}")]
    Unavailable(String),
}

/// A switch id follows the one naming rule of `vigie_proto` (that of rule and sink names).
pub fn validate_id(id: &str) -> Result<(), SwitchError> {
    if vigie_proto::is_valid_name(id) {
        Ok(())
    } else {
        Err(SwitchError::BadId(id.chars().take(80).collect()))
    }
}

/// The next state of switch `id` if `request` is accepted, checked against `current`
/// and every other switch. Pure: the store calls it under its write lock.
pub(crate) fn next_state<'a>(
    id: &str,
    request: &FlipRequest,
    who: &str,
    now_ms: i64,
    current: Option<&DeflectionSwitch>,
    others: impl Iterator<Item = &'a DeflectionSwitch>,
    prediction: Option<SwitchPrediction>,
) -> Result<DeflectionSwitch, SwitchError> {
    validate_id(id)?;
    if request.why.trim().is_empty() {
        return Err(SwitchError::MissingReason);
    }
    if request.channel.trim().is_empty() {
        return Err(SwitchError::Invalid("`channel` must not be empty".into()));
    }
    let current_version = current.map_or(0, |c| c.version);
    if request.expected_version != current_version {
        return Err(SwitchError::VersionConflict {
            id: id.into(),
            expected: request.expected_version,
            current: current_version,
        });
    }
    let expires_at = match (&request.expires_in, request.on) {
        (None, _) => None,
        (Some(_), false) => {
            return Err(SwitchError::Invalid(
                "`expires_in` only applies when switching on".into(),
            ))
        }
        (Some(d), true) => {
            let d: Duration = humantime::parse_duration(d).map_err(|e| {
                SwitchError::Invalid(format!("`expires_in` {d:?}: {e} (e.g. \"30m\")"))
            })?;
            if d.is_zero() || d > MAX_EXPIRES_IN {
                return Err(SwitchError::Invalid(format!(
                    "`expires_in` must be between 1s and {} (e.g. \"30m\"); leave it out for a switch that stays on",
                    humantime::format_duration(MAX_EXPIRES_IN)
                )));
            }
            Some(now_ms.saturating_add(d.as_millis() as i64))
        }
    };
    let next = DeflectionSwitch {
        id: id.into(),
        channel: request.channel.clone(),
        reason: request.reason.clone(),
        segment: request.segment.clone(),
        queue: request.queue.clone(),
        target: request.target,
        on: request.on,
        version: current_version + 1,
        changed_by: who.into(),
        changed_at: now_ms,
        why: request.why.trim().into(),
        expires_at,
        prediction: prediction.filter(|_| request.on),
    };
    if let Some(other) = others.into_iter().find(|o| next.conflicts_with(o)) {
        return Err(SwitchError::Conflicting {
            other: other.id.clone(),
        });
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_proto::DeflectionTarget;

    fn request(on: bool, expected_version: u64) -> FlipRequest {
        FlipRequest {
            channel: "phone".into(),
            reason: Some("billing".into()),
            segment: Some("low".into()),
            queue: None,
            target: DeflectionTarget::VisualIvr,
            on,
            why: "phone queue degraded".into(),
            expected_version,
            expires_in: None,
        }
    }

    /// Scale-out: an instance that consumes none of the partitions shows, from the
    /// owners' published shares, exactly the effect the owner measures.
    #[test]
    fn switch_effects_merge_exactly_from_partition_shares() {
        use crate::engine::partial::{PartialHeader, PARTIAL_VERSION};
        use crate::engine::{id_hash, EngineConfig};
        use crate::simulate::{SimulationConfig, Simulator};

        let events: Vec<_> = Simulator::new(SimulationConfig {
            contacts: Some(4_000),
            contacts_per_second: 1.0,
            seed: 11,
            ..SimulationConfig::default()
        })
        .collect();
        let since = events[events.len() / 3].ts_ms;
        let mut switch = next_state(
            "phone-all",
            &request(true, 0),
            "ann",
            since,
            None,
            [].iter(),
            None,
        )
        .expect("created");
        (switch.reason, switch.segment) = (None, None);
        let switches = vec![switch.clone()];

        let local = EngineSet::new(EngineConfig::default());
        for p in 0..3 {
            local.assign(p);
        }
        for ev in &events {
            let key = ev.customer_id.as_deref().unwrap_or(&ev.interaction_id);
            local
                .get((id_hash(key) % 3) as i32)
                .expect("assigned")
                .apply(ev);
        }
        let remote = EngineSet::new(EngineConfig::default());
        for p in local.partitions() {
            let engine = local.get(p).expect("engine");
            let mut shares = partition_shares(&engine, &switches);
            // A share of an earlier flip of the same switch is not counted.
            shares.push(SwitchShare {
                since: since - 1,
                deflected: 1_000,
                ..shares[0].clone()
            });
            let header = PartialHeader {
                v: PARTIAL_VERSION,
                switches: shares,
                watermark: engine.watermark(),
                ..PartialHeader::default()
            };
            let applied = remote.update_replica(p, |r, s| r.apply_header(header, 1, s));
            assert_eq!(applied, Ok(true));
            // The effect log too: the service level measured since the flip is merged.
            for start in engine.chunk_starts() {
                let chunk = engine.export_chunk(start, 1);
                let applied = remote.update_replica(p, |r, s| r.apply_chunk(&chunk, s));
                assert_eq!(applied, Ok(true));
            }
        }
        let want = switch_effects(&local, &switches);
        let effect = &want["phone-all"];
        assert!(effect.deflected > 0 && effect.came_back > 0, "{effect:?}");
        assert!(effect.measured_service_level.is_some(), "{effect:?}");
        assert_eq!(switch_effects(&remote, &switches), want);
        // Once the switch is off, no effect is shown.
        switch.on = false;
        assert!(switch_effects(&remote, &[switch]).is_empty());
    }

    #[test]
    fn a_flip_needs_a_reason_a_valid_id_and_the_current_version() {
        let created = next_state(
            "billing-low",
            &request(true, 0),
            "ann",
            10,
            None,
            [].iter(),
            None,
        )
        .expect("created");
        assert_eq!(
            (created.version, created.on, created.changed_by.as_str()),
            (1, true, "ann")
        );
        let mut no_reason = request(false, 1);
        no_reason.why = "  ".into();
        assert!(matches!(
            next_state(
                "billing-low",
                &no_reason,
                "bob",
                20,
                Some(&created),
                [].iter(),
                None
            ),
            Err(SwitchError::MissingReason)
        ));
        assert!(matches!(
            next_state(
                "billing-low",
                &request(false, 0),
                "bob",
                20,
                Some(&created),
                [].iter(),
                None
            ),
            Err(SwitchError::VersionConflict { current: 1, .. })
        ));
        assert!(matches!(
            next_state(
                "Billing Low",
                &request(true, 0),
                "bob",
                20,
                None,
                [].iter(),
                None
            ),
            Err(SwitchError::BadId(_))
        ));
        let off = next_state(
            "billing-low",
            &request(false, 1),
            "bob",
            20,
            Some(&created),
            [].iter(),
            None,
        )
        .expect("off");
        assert_eq!((off.version, off.on), (2, false));
    }

    #[test]
    fn expiry_and_conflicts_are_checked() {
        let mut timed = request(true, 0);
        timed.expires_in = Some("30m".into());
        let s = next_state("a", &timed, "ann", 1_000, None, [].iter(), None).expect("valid");
        assert_eq!(s.expires_at, Some(1_000 + 1_800_000));
        for bad in [
            "soon",
            "0s",
            "32days",
            "9223372036854775807ms",
            "584942417355years",
        ] {
            timed.expires_in = Some(bad.into());
            assert!(
                matches!(
                    next_state("a", &timed, "ann", 0, None, [].iter(), None),
                    Err(SwitchError::Invalid(_))
                ),
                "{bad}"
            );
        }
        timed.expires_in = Some("31days".into());
        let s = next_state("a", &timed, "ann", 1_000, None, [].iter(), None).expect("a month");
        assert_eq!(s.expires_at, Some(1_000 + 31 * 86_400_000));
        let mut callback = request(true, 0);
        callback.target = DeflectionTarget::Callback;
        callback.reason = None;
        assert!(matches!(
            next_state("b", &callback, "bob", 0, None, [s.clone()].iter(), None),
            Err(SwitchError::Conflicting { other }) if other == "a"
        ));
    }
}
