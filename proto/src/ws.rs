//! Websocket messages (`/api/v1/ws`): every frame is a JSON object with a `type`.

use serde::{Deserialize, Serialize};

use crate::{AgentList, Alert, DeflectionSwitch, Snapshot, SwitchEffect, Trend};

/// Server → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The KPIs of the client's subscription; sent on connect and whenever they change.
    Snapshot {
        /// The subscription this answers (window and filters), as the client asked.
        subscription: Subscription,
        snapshot: Box<Snapshot>,
        /// The agent list of the subscription's queue and site, when it asks for it
        /// (`agents`): the first `server.max_agent_rows`, longest in state first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agents: Option<Box<AgentList>>,
    },
    /// The last hour of the subscription's KPIs, one point a minute, for sparklines:
    /// sent on connect and refreshed every few seconds while traffic flows.
    Trend {
        subscription: Subscription,
        trend: Box<Trend>,
    },
    /// Data freshness: sent on connect and whenever it changes.
    Status(StatusReport),
    /// Every deflection switch, with the measured effect of those that are on: sent on
    /// connect, on every flip, and when the effects change (at most once a second).
    Switches {
        switches: Vec<DeflectionSwitch>,
        #[serde(default)]
        effects: std::collections::BTreeMap<String, SwitchEffect>,
    },
    /// Every alert firing or acknowledged, plus those resolved in the last few minutes:
    /// sent on connect and whenever the set or any state changes.
    Alerts { alerts: Vec<Alert> },
    /// Sent when nothing else was for a while, so clients can tell a dead link from a quiet one.
    Heartbeat {
        /// Server time, epoch ms.
        server_time: i64,
    },
    /// A client message was refused; the connection stays open.
    Error { code: String, message: String },
}

/// Whether the numbers are live.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    /// Every assigned partition is rebuilt and consumed live.
    pub live: bool,
    /// Share of the rebuild done (0..1) while rebuilding.
    pub rebuilding: Option<f64>,
    /// The broker is unreachable: numbers are the last known.
    pub stale: bool,
    /// Newest event time seen, epoch ms.
    pub watermark: Option<i64>,
    /// Scale-out (several instances merging partials): which partitions of the topic
    /// the merged view holds live, and which it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionsReport>,
    /// Member of its consumer group but holding no partition yet (just restarted, or more
    /// instances than partitions): nothing to show.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// Coverage of the merged view: every partition is live, rebuilding, or missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionsReport {
    /// Partitions of the topic.
    pub total: usize,
    /// Partitions held live (rebuilt, by this instance or another).
    pub live: usize,
    /// Partitions whose owner is rebuilding them.
    pub rebuilding: Vec<i32>,
    /// Partitions without a live owner: never published yet, or their owner left and no
    /// other has claimed them (the last known numbers are shown meanwhile).
    pub missing: Vec<i32>,
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Replace the subscription (default: 15 minutes, no filter).
    Subscribe(Subscription),
}

/// A window, optional filters and an optional finer breakdown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// `5m` … `24h`, or `today`.
    #[serde(default = "default_window")]
    pub window: String,
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
    /// Dimensions to break the snapshot down by (`channel`, `queue`, `reason`, `segment`,
    /// `site`), as the REST `by=`: e.g. `["reason"]` with `channel: "phone"` gives the
    /// phone KPIs of every contact reason (the switchboard's pressure table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<String>,
    /// Most rows of the breakdown: the busiest, the others summed in one `(other)` row
    /// (default and ceiling: the server's `server.breakdown_rows` / `max_breakdown_rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u32>,
    /// Also send the agent list (queue and site filters apply): `agents` frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agents: bool,
}

fn default_window() -> String {
    "15m".into()
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            window: default_window(),
            channel: None,
            queue: None,
            reason: None,
            segment: None,
            site: None,
            by: Vec::new(),
            rows: None,
            agents: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_type() {
        let json = serde_json::to_value(ServerMessage::Heartbeat { server_time: 5 }).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type": "heartbeat", "server_time": 5})
        );
        let json =
            serde_json::to_value(ServerMessage::Alerts { alerts: Vec::new() }).expect("json");
        assert_eq!(json, serde_json::json!({"type": "alerts", "alerts": []}));
        let sub: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","window":"1h","channel":"phone"}"#)
                .expect("valid");
        assert_eq!(
            sub,
            ClientMessage::Subscribe(Subscription {
                window: "1h".into(),
                channel: Some("phone".into()),
                ..Subscription::default()
            })
        );
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"subscribe","colour":"red"}"#)
                .is_err()
        );
    }
}
