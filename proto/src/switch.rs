//! Deflection switches: (channel, optional reason/segment/queue) → target, on or off.

use serde::{Deserialize, Serialize};

/// Where a deflected flow is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeflectionTarget {
    VisualIvr,
    Callback,
    Chat,
    Messaging,
    Dissuasion,
}

/// A supervisor-controlled switch, with who flipped it, when and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeflectionSwitch {
    pub id: String,
    pub channel: String,
    pub reason: Option<String>,
    pub segment: Option<String>,
    pub queue: Option<String>,
    pub target: DeflectionTarget,
    pub on: bool,
    /// Optimistic-concurrency version, incremented on every flip.
    pub version: u64,
    pub changed_by: String,
    /// Epoch ms of the last flip.
    pub changed_at: i64,
    pub why: String,
    /// Epoch ms after which the switch turns itself off.
    pub expires_at: Option<i64>,
}
