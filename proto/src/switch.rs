//! Deflection switches: (channel, optional reason/segment/queue) → target, on or off,
//! with who flipped it, when and why; and the audit record of every change.

use serde::{Deserialize, Serialize};

/// Where a deflected flow is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeflectionTarget {
    VisualIvr,
    Callback,
    Chat,
    Messaging,
    Dissuasion,
}

impl DeflectionTarget {
    pub const ALL: [DeflectionTarget; 5] = [
        DeflectionTarget::VisualIvr,
        DeflectionTarget::Callback,
        DeflectionTarget::Chat,
        DeflectionTarget::Messaging,
        DeflectionTarget::Dissuasion,
    ];

    /// Its code on the wire (`visual_ivr`...), also the channel it sends contacts to.
    pub fn code(self) -> &'static str {
        match self {
            DeflectionTarget::VisualIvr => "visual_ivr",
            DeflectionTarget::Callback => "callback",
            DeflectionTarget::Chat => "chat",
            DeflectionTarget::Messaging => "messaging",
            DeflectionTarget::Dissuasion => "dissuasion",
        }
    }

    pub fn parse(code: &str) -> Option<DeflectionTarget> {
        DeflectionTarget::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// Longest switch id, alert rule name or sink name.
pub const MAX_NAME_LEN: usize = 64;

/// The one rule for switch ids, alert rule names and sink names: 1 to 64 characters
/// among a-z, 0-9, '.', '_' and '-' (safe in URLs, Kafka keys, file names and logs).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// The id of the switch of a scope: `phone.billing.all.all` (an unset part is `all`),
/// lowercase, any other character as `-`, cut to [`MAX_NAME_LEN`]: always
/// [`is_valid_name`] for a non-empty channel.
pub fn switch_id(
    channel: &str,
    reason: Option<&str>,
    segment: Option<&str>,
    queue: Option<&str>,
) -> String {
    let part = |v: Option<&str>| v.unwrap_or("all").to_lowercase();
    let raw = format!(
        "{}.{}.{}.{}",
        channel.to_lowercase(),
        part(reason),
        part(segment),
        part(queue)
    );
    raw.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '-'
            }
        })
        .take(MAX_NAME_LEN)
        .collect()
}

/// A supervisor-controlled switch. The record on the `vigie.deflections` topic (key: `id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeflectionSwitch {
    pub id: String,
    pub channel: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    pub target: DeflectionTarget,
    pub on: bool,
    /// Optimistic-concurrency version: 1 at creation, +1 on every change.
    pub version: u64,
    pub changed_by: String,
    /// Epoch ms of the last change.
    pub changed_at: i64,
    pub why: String,
    /// Epoch ms after which the switch turns itself off.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// What the projection said when it was turned on (the channel's service level with
    /// the scope's load removed), so the team learns how far to trust it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<SwitchPrediction>,
}

/// The projection made when a switch was turned on, over the last 15 minutes then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchPrediction {
    /// The scope's share of its channel's offered load.
    pub share: f64,
    /// The channel's projected service level then...
    pub service_level_before: f64,
    /// ...and the one projected without the scope's load: what the flip should give.
    pub service_level_predicted: f64,
}

impl From<crate::WhatIf> for SwitchPrediction {
    /// The prediction a what-if makes of turning its scope's switch on.
    fn from(w: crate::WhatIf) -> Self {
        SwitchPrediction {
            share: w.share,
            service_level_before: w.projected_service_level,
            service_level_predicted: w.projected_service_level_without,
        }
    }
}

impl DeflectionSwitch {
    /// Both on, same channel, different targets, and scopes that share some contacts
    /// (each of reason, segment and queue equal, or unset on one side).
    pub fn conflicts_with(&self, other: &DeflectionSwitch) -> bool {
        let overlap = |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
        self.id != other.id
            && self.on
            && other.on
            && self.channel == other.channel
            && self.target != other.target
            && overlap(&self.reason, &other.reason)
            && overlap(&self.segment, &other.segment)
            && overlap(&self.queue, &other.queue)
    }
}

/// A change asked for by a supervisor: the whole desired state, the reason, and the
/// version the supervisor saw (0 to create).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlipRequest {
    pub channel: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    pub target: DeflectionTarget,
    pub on: bool,
    /// Why: required, shown to everyone and kept in the audit trail.
    #[serde(default)]
    pub why: String,
    /// The version this change is based on; 0 creates the switch.
    pub expected_version: u64,
    /// Turn off by itself after this long (`30m`, `2h`); only when switching on.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// The measured effect of a switch that is on, since it was turned on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchEffect {
    /// When the switch was turned on (epoch ms): the start of the measurement.
    pub since: i64,
    /// Contacts of identified customers deflected in the switch's scope since then.
    pub deflected: u64,
    /// Of those, customers who arrived again on any channel within the repeat horizon.
    pub came_back: u64,
    /// 1 − came_back / deflected, "so far" until the horizon has passed; `null` before any deflection.
    pub containment: Option<f64>,
    /// The service level the projection predicted for the channel at the flip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_service_level: Option<f64>,
    /// The channel's service level measured since the flip, over its first 15 minutes at
    /// most; `null` until a contact was answered or abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_service_level: Option<f64>,
    /// The end of that measurement (epoch ms): the flip + 15 min, or now if sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_until: Option<i64>,
}

/// One effective change, on the `vigie.audit` topic: a switch created, turned on or off
/// (`switch_id`, `before`, `after`), or an alert acknowledged (`alert_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Epoch ms.
    pub at: i64,
    pub who: String,
    /// `create`, `switch_on`, `switch_off`, `acknowledge`.
    pub action: String,
    /// The switch changed (empty for an acknowledgement).
    #[serde(default)]
    pub switch_id: String,
    pub why: String,
    #[serde(default)]
    pub before: Option<DeflectionSwitch>,
    /// The switch as changed (none for an acknowledgement).
    #[serde(default)]
    pub after: Option<DeflectionSwitch>,
    /// The alert acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switch(id: &str, reason: Option<&str>, target: DeflectionTarget) -> DeflectionSwitch {
        DeflectionSwitch {
            id: id.into(),
            channel: "phone".into(),
            reason: reason.map(Into::into),
            segment: None,
            queue: None,
            target,
            on: true,
            version: 1,
            changed_by: "ann".into(),
            changed_at: 0,
            why: "queue degraded".into(),
            expires_at: None,
            prediction: None,
        }
    }

    #[test]
    fn switch_ids_follow_the_naming_rule() {
        assert_eq!(
            switch_id("phone", Some("billing"), None, None),
            "phone.billing.all.all"
        );
        let id = switch_id(
            "Phone",
            Some("Facture électricité"),
            Some("pro"),
            Some("q 1"),
        );
        assert_eq!(id, "phone.facture--lectricit-.pro.q-1");
        assert!(is_valid_name(&id));
        assert!(is_valid_name(&switch_id(
            &"x".repeat(100),
            None,
            None,
            None
        )));
        for bad in ["", "Billing", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_target_has_a_code_and_back() {
        for t in DeflectionTarget::ALL {
            assert_eq!(DeflectionTarget::parse(t.code()), Some(t));
            let json = serde_json::to_string(&t).expect("encode");
            assert_eq!(json, format!("\"{}\"", t.code()));
        }
    }

    #[test]
    fn overlapping_scopes_with_other_targets_conflict() {
        let billing = switch("a", Some("billing"), DeflectionTarget::VisualIvr);
        let all = switch("b", None, DeflectionTarget::Callback);
        let claims = switch("c", Some("claim"), DeflectionTarget::Callback);
        assert!(billing.conflicts_with(&all), "all reasons include billing");
        assert!(!billing.conflicts_with(&claims), "disjoint reasons");
        let same_target = switch("d", None, DeflectionTarget::VisualIvr);
        assert!(!billing.conflicts_with(&same_target));
        let mut off = all.clone();
        off.on = false;
        assert!(
            !billing.conflicts_with(&off),
            "a switch that is off conflicts with nothing"
        );
    }
}
