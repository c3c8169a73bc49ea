//! Capacity: agent states, the staffing block of a snapshot, and the agent list.
//!
//! An agent's state at a time t is the `state` of its latest `agent_state` event with
//! `ts < t`; its queues, those of its latest event with `ts < t` that carries them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What an agent is doing, as its `agent_state` events say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Available,
    OnContact,
    AfterContactWork,
    Away,
    LoggedOut,
}

impl AgentState {
    pub const ALL: [AgentState; 5] = [
        AgentState::Available,
        AgentState::OnContact,
        AgentState::AfterContactWork,
        AgentState::Away,
        AgentState::LoggedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::OnContact => "on_contact",
            AgentState::AfterContactWork => "after_contact_work",
            AgentState::Away => "away",
            AgentState::LoggedOut => "logged_out",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Logged in: counts in `staffed`.
    pub fn is_staffed(self) -> bool {
        self != AgentState::LoggedOut
    }

    /// Handling a contact (on it or wrapping it up): the numerator of occupancy.
    pub fn is_busy(self) -> bool {
        matches!(self, AgentState::OnContact | AgentState::AfterContactWork)
    }

    /// Ready for or handling contacts: the denominator of occupancy.
    pub fn is_productive(self) -> bool {
        matches!(
            self,
            AgentState::Available | AgentState::OnContact | AgentState::AfterContactWork
        )
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Agents of one scope by state, live at the snapshot's `to` (like `in_queue`).
/// `available + on_contact + after_contact_work + away = staffed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Staffing {
    /// Logged in (any state but `logged_out`).
    pub staffed: u64,
    pub available: u64,
    pub on_contact: u64,
    pub after_contact_work: u64,
    pub away: u64,
    /// `away` by `away_reason` (`unknown` when the event gave none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub away_reasons: BTreeMap<String, u64>,
}

impl Staffing {
    /// Counts one agent in `state` (away with `away_reason`).
    pub fn add(&mut self, state: AgentState, away_reason: Option<&str>) {
        if !state.is_staffed() {
            return;
        }
        self.staffed += 1;
        match state {
            AgentState::Available => self.available += 1,
            AgentState::OnContact => self.on_contact += 1,
            AgentState::AfterContactWork => self.after_contact_work += 1,
            AgentState::Away => {
                self.away += 1;
                *self
                    .away_reasons
                    .entry(away_reason.unwrap_or(crate::UNKNOWN_VALUE).to_string())
                    .or_default() += 1;
            }
            AgentState::LoggedOut => {}
        }
    }
}

/// One agent as the agent list shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRow {
    pub agent_id: String,
    pub state: Option<AgentState>,
    /// When the current state began (event time, epoch ms).
    pub since: i64,
    /// `to - since`: time in the current state at the snapshot's end.
    pub time_in_state_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_reason: Option<String>,
    pub queues: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Contacts whose `on_contact` span ended in the window.
    pub handled: u64,
    /// Mean of those contacts' time on contact plus the after-contact work that followed.
    pub aht_ms: Option<f64>,
    /// The contact being handled, while `on_contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
}

/// A page of the agent list: longest in state first within each state (states in the
/// order available, on contact, after-contact work, away, logged out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentList {
    /// The end of the window the list describes (event time, epoch ms).
    pub at: i64,
    /// Agents matching the filters (all pages).
    pub total: u64,
    /// The rows of this page.
    pub agents: Vec<AgentRow>,
    /// Offset of the next page, absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_and_write_as_the_contract_spells_them() {
        for s in AgentState::ALL {
            assert_eq!(AgentState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).expect("json"),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(AgentState::parse("busy"), None);
    }

    #[test]
    fn staffing_adds_up_and_keeps_away_reasons() {
        let mut s = Staffing::default();
        s.add(AgentState::Available, None);
        s.add(AgentState::Away, Some("lunch"));
        s.add(AgentState::Away, None);
        s.add(AgentState::LoggedOut, None);
        assert_eq!(s.staffed, 3);
        assert_eq!(
            s.available + s.on_contact + s.after_contact_work + s.away,
            3
        );
        assert_eq!(s.away_reasons["lunch"], 1);
        assert_eq!(s.away_reasons["unknown"], 1);
    }
}
