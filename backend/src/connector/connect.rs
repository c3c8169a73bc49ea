//! Owns Amazon Connect's events: the contact events EventBridge delivers (`detail-type:
//! "Amazon Connect Contact Event"`, or their bare `detail`) and the agent event stream's
//! `AgentEvent` records, turned into contract events.
//!
//! Contacts. One customer contact is the chain of Connect contacts that share an
//! `initialContactId` (a transfer or a queue transfer makes a new Connect contact): its
//! id is the chain's first contact id, its arrival the first contact's
//! `initiationTimestamp`, its channel `VOICE` → `phone`, `CHAT` → `chat`, `EMAIL` →
//! `email`, `TASK` → `task` (`callback` when initiated by a callback). `queueInfo.enqueueTimestamp`
//! = queued (the queue ARN named by the map, else by its id), `agentInfo.connectedToAgentTimestamp`
//! = answered by the agent, and `DISCONNECTED`: ended if an agent was connected, abandoned
//! if it was queued and no agent came (a later leg of the chain that is answered — a
//! transfer, a queued callback — makes it answered: the engine keeps an abandoned
//! contact for `engine.failover_grace`), else ended in the flow. Outbound, monitoring
//! and disconnect-flow contacts are not customer demand: counted, left out. Keys are
//! matched whatever their case (AWS's own samples mix `agentInfo` and `AgentInfo`).
//!
//! Agents. `LOGOUT` or an `OFFLINE` status = logged out; a contact `CONNECTED` (or on
//! hold) = on contact; `ENDED` and still listed = after-contact work; a `CUSTOM` status
//! = away with its name as the reason; else available. The routing profile's inbound
//! queues are the agent's queues. A `HEART_BEAT` only says something when the state
//! differs from the last one seen.
//!
//! Event ids derive from the Connect ids (`connect-<contact>-answered`,
//! `connect-agent-<EventId>`): EventBridge's redeliveries are recognised.

use std::collections::HashMap;

use serde_json::Value;
use vigie_proto::AgentState;

use crate::event::{parse_rfc3339_ms, EventKind, EventRecord};

/// Why a record was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("not an Amazon Connect contact event nor an agent event")]
    Unknown,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}`: {value:?} is not an ISO 8601 time")]
    BadTime { field: &'static str, value: String },
}

/// What became of the records read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectReport {
    pub records: u64,
    pub contact_events: u64,
    pub agent_events: u64,
    pub events: u64,
    /// Outbound, monitoring, disconnect-flow contacts; heartbeats that change nothing;
    /// contact data updates.
    pub ignored: u64,
    pub refused: u64,
    /// The first refused records: (position, why).
    pub first_refused: Vec<(u64, ConnectError)>,
}

/// The refused records with their position, then what became of all of them.
impl std::fmt::Display for ConnectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (at, why) in &self.first_refused {
            writeln!(f, "record {at}: refused: {why}")?;
        }
        if self.refused > self.first_refused.len() as u64 {
            writeln!(f, "... {} refused records in all", self.refused)?;
        }
        write!(
            f,
            "connect: {} records ({} contact events, {} agent events), {} events; {} ignored, {} refused",
            self.records, self.contact_events, self.agent_events, self.events, self.ignored, self.refused
        )
    }
}

/// Converts Connect records into contract events.
#[derive(Debug, Default)]
pub struct ConnectConverter {
    /// Queue ARN → name: configured, and learned from agents' routing profiles.
    queue_names: HashMap<String, String>,
    /// Each agent's last state and reason (a heartbeat repeating it says nothing).
    agents: HashMap<String, (AgentState, Option<String>)>,
    pub report: ConnectReport,
}

/// `obj[key]`, the key matched whatever its case.
fn get<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn text<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    get(obj, key)?
        .as_str()
        .filter(|s| !s.is_empty() && *s != "null")
}

fn time(obj: &Value, key: &'static str) -> Result<Option<i64>, ConnectError> {
    match text(obj, key) {
        None => Ok(None),
        Some(v) => parse_rfc3339_ms(v)
            .map(Some)
            .map_err(|_| ConnectError::BadTime {
                field: key,
                value: v.chars().take(64).collect(),
            }),
    }
}

/// The id at the end of an ARN (`…/queue/<id>`).
fn arn_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

const MAX_KEPT: usize = 100;

impl ConnectConverter {
    /// `queue_names`: queue ARN → the name to show.
    pub fn new(queue_names: HashMap<String, String>) -> ConnectConverter {
        ConnectConverter {
            queue_names,
            ..ConnectConverter::default()
        }
    }

    /// Converts one record (an EventBridge event, its `detail`, or an agent event) at
    /// `position` into `out`.
    pub fn convert(
        &mut self,
        position: u64,
        record: &Value,
        out: &mut Vec<EventRecord<'static>>,
    ) -> Result<(), ConnectError> {
        self.report.records += 1;
        let before = out.len();
        let result = if get(record, "EventType").is_some() && get(record, "AgentARN").is_some() {
            self.report.agent_events += 1;
            self.agent(record, out)
        } else {
            let detail = get(record, "detail").unwrap_or(record);
            if get(detail, "eventType").is_some() && get(detail, "contactId").is_some() {
                self.report.contact_events += 1;
                // The envelope's time stands for a missing disconnect time.
                let sent = time(record, "time").ok().flatten();
                self.contact(detail, sent, out)
            } else {
                Err(ConnectError::Unknown)
            }
        };
        if let Err(e) = &result {
            self.report.refused += 1;
            if self.report.first_refused.len() < MAX_KEPT {
                self.report.first_refused.push((position, e.clone()));
            }
        }
        self.report.events += (out.len() - before) as u64;
        result
    }

    fn queue_name(&self, arn: &str) -> String {
        self.queue_names
            .get(arn)
            .cloned()
            .unwrap_or_else(|| arn_id(arn).to_string())
    }

    fn contact(
        &mut self,
        d: &Value,
        sent: Option<i64>,
        out: &mut Vec<EventRecord<'static>>,
    ) -> Result<(), ConnectError> {
        let event_type = text(d, "eventType")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let contact = text(d, "contactId").ok_or(ConnectError::Missing("contactId"))?;
        let chain = text(d, "initialContactId").unwrap_or(contact).to_string();
        let method = text(d, "initiationMethod")
            .unwrap_or("INBOUND")
            .to_ascii_uppercase();
        if matches!(
            method.as_str(),
            "OUTBOUND" | "EXTERNAL_OUTBOUND" | "MONITOR" | "DISCONNECT"
        ) || !matches!(
            event_type.as_str(),
            "INITIATED" | "CONNECTED_TO_SYSTEM" | "QUEUED" | "CONNECTED_TO_AGENT" | "DISCONNECTED"
        ) {
            self.report.ignored += 1;
            return Ok(());
        }
        let channel = match (method.as_str(), text(d, "channel")) {
            ("CALLBACK", _) => "callback".to_string(),
            (_, Some(c)) => match c.to_ascii_uppercase().as_str() {
                "VOICE" => "phone".to_string(),
                other => other.to_ascii_lowercase(),
            },
            (_, None) => "phone".to_string(),
        };
        let queue_info = get(d, "queueInfo");
        let queue = queue_info
            .and_then(|q| text(q, "queueArn"))
            .map(|arn| self.queue_name(arn));
        let enqueued = match queue_info {
            Some(q) => time(q, "enqueueTimestamp")?,
            None => None,
        };
        let agent_info = get(d, "agentInfo");
        let connected = match agent_info {
            Some(a) => time(a, "connectedToAgentTimestamp")?,
            None => None,
        };
        let agent = agent_info
            .and_then(|a| text(a, "agentArn"))
            .map(|arn| arn_id(arn).to_string());
        let initiated = time(d, "initiationTimestamp")?;
        let disconnected = time(d, "disconnectTimestamp")?;
        let event = |suffix: &str, kind: EventKind, ts: i64| {
            EventRecord::new(
                format!("connect-{contact}-{suffix}"),
                kind,
                ts,
                chain.clone(),
            )
        };
        // The chain's arrival is its first contact's, repeated by each of its events
        // (the same id: one arrival, whichever event comes first).
        if contact == chain {
            if let Some(ts) = initiated {
                let mut arrived = event("arrived", EventKind::Arrived, ts);
                arrived.channel = Some(channel.into());
                arrived.queue = queue.clone().map(Into::into);
                out.push(arrived);
            }
        }
        if let Some(ts) = enqueued {
            let mut queued = event("queued", EventKind::Queued, ts);
            queued.queue = queue.map(Into::into);
            out.push(queued);
        }
        if let Some(ts) = connected {
            let mut answered = event("answered", EventKind::Answered, ts);
            answered.agent_id = agent.map(Into::into);
            out.push(answered);
        }
        if event_type == "DISCONNECTED" {
            let ts = disconnected
                .or(sent)
                .ok_or(ConnectError::Missing("disconnectTimestamp"))?;
            let kind = if connected.is_none() && enqueued.is_some() {
                EventKind::Abandoned
            } else {
                EventKind::Ended
            };
            out.push(event("disconnected", kind, ts));
        }
        Ok(())
    }

    fn agent(
        &mut self,
        r: &Value,
        out: &mut Vec<EventRecord<'static>>,
    ) -> Result<(), ConnectError> {
        let event_type = text(r, "EventType")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let ts = time(r, "EventTimestamp")?.ok_or(ConnectError::Missing("EventTimestamp"))?;
        let event_id = text(r, "EventId").ok_or(ConnectError::Missing("EventId"))?;
        let snapshot = get(r, "CurrentAgentSnapshot");
        let config = snapshot.and_then(|s| get(s, "Configuration"));
        let arn = text(r, "AgentARN").unwrap_or_default();
        let name = config
            .and_then(|c| text(c, "Username"))
            .filter(|u| *u != "(Removed)")
            .unwrap_or_else(|| arn_id(arn))
            .to_string();
        let mut queues = Vec::new();
        for q in config
            .and_then(|c| get(c, "RoutingProfile"))
            .and_then(|p| get(p, "InboundQueues"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(arn) = text(q, "ARN") else { continue };
            // Each agent's own queue (transfers to that agent) is not a skill.
            if arn.contains("/queue/agent/") {
                continue;
            }
            if let Some(name) = text(q, "Name") {
                self.queue_names.insert(arn.to_string(), name.to_string());
            }
            queues.push(self.queue_name(arn));
        }
        let status = snapshot.and_then(|s| get(s, "AgentStatus"));
        let status_type = status
            .and_then(|s| text(s, "Type"))
            .unwrap_or_default()
            .to_ascii_uppercase();
        let status_name = status.and_then(|s| text(s, "Name"));
        let contact_states: Vec<String> = snapshot
            .and_then(|s| get(s, "Contacts"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| text(c, "State").map(str::to_ascii_uppercase))
            .collect();
        let has = |s: &str| contact_states.iter().any(|c| c == s);
        let (state, reason) = if event_type == "LOGOUT"
            || status_type == "OFFLINE"
            || (status_type.is_empty() && status_name == Some("Offline"))
        {
            (AgentState::LoggedOut, None)
        } else if has("CONNECTED") || has("CONNECTED_ONHOLD") {
            (AgentState::OnContact, None)
        } else if has("ENDED") {
            (AgentState::AfterContactWork, None)
        } else if status_type == "CUSTOM"
            || (status_type.is_empty() && status_name.is_some_and(|n| n != "Available"))
        {
            (AgentState::Away, status_name.map(str::to_string))
        } else {
            (AgentState::Available, None)
        };
        let last = self.agents.insert(name.clone(), (state, reason.clone()));
        if event_type == "HEART_BEAT" && last.as_ref() == Some(&(state, reason.clone())) {
            self.report.ignored += 1;
            return Ok(());
        }
        let mut ev = EventRecord::agent(format!("connect-agent-{event_id}"), ts, name, state);
        ev.away_reason = reason.map(Into::into);
        if config.is_some() {
            ev.queues = Some(queues.into_iter().map(Into::into).collect());
        }
        out.push(ev);
        Ok(())
    }
}

/// Reads Connect records: JSON lines, a JSON array, or JSON documents one after the
/// other (pretty-printed), handing each event to `each`; with `strict`, stops at the
/// first refused record.
pub fn read_connect(
    reader: impl std::io::Read,
    queue_names: HashMap<String, String>,
    strict: bool,
    mut each: impl FnMut(EventRecord<'static>),
) -> Result<ConnectReport, ReadError> {
    let mut converter = ConnectConverter::new(queue_names);
    let mut out = Vec::new();
    let mut position = 0;
    for doc in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
        let doc = doc.map_err(|e| ReadError::Json(position + 1, e.to_string()))?;
        let records = match doc {
            Value::Array(items) => items,
            one => vec![one],
        };
        for record in records {
            position += 1;
            if let Err(e) = converter.convert(position, &record, &mut out) {
                if strict {
                    return Err(ReadError::Strict(position, e));
                }
            }
            out.drain(..).for_each(&mut each);
        }
    }
    Ok(converter.report)
}

/// Why reading Connect records stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("record {0}: not JSON ({1})")]
    Json(u64, String),
    #[error("--strict: record {0}: {1}")]
    Strict(u64, ConnectError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(records: &[Value]) -> (Vec<EventRecord<'static>>, ConnectReport) {
        let mut c = ConnectConverter::new(HashMap::from([(
            "arn:q/queue/billing-id".to_string(),
            "billing".to_string(),
        )]));
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let _ = c.convert(i as u64 + 1, r, &mut out);
        }
        (out, c.report)
    }

    fn contact(event_type: &str, extra: Value) -> Value {
        let mut d = json!({
            "eventType": event_type,
            "contactId": "c-1",
            "channel": "VOICE",
            "initiationMethod": "INBOUND",
            "initiationTimestamp": "2026-12-01T10:00:00.000Z",
        });
        for (k, v) in extra.as_object().expect("object") {
            d[k] = v.clone();
        }
        json!({"detail-type": "Amazon Connect Contact Event", "source": "aws.connect", "detail": d})
    }

    #[test]
    fn a_queued_call_answered_then_disconnected() {
        let queue = json!({"queueArn": "arn:q/queue/billing-id", "enqueueTimestamp": "2026-12-01T10:00:30.000Z"});
        let agent = json!({"agentArn": "arn:a/agent/ann", "connectedToAgentTimestamp": "2026-12-01T10:00:45.000Z"});
        let (events, report) = convert(&[
            contact("INITIATED", json!({})),
            contact("QUEUED", json!({"queueInfo": queue})),
            contact(
                "CONNECTED_TO_AGENT",
                json!({"queueInfo": queue, "agentInfo": agent}),
            ),
            contact(
                "DISCONNECTED",
                json!({"queueInfo": queue, "agentInfo": agent, "disconnectTimestamp": "2026-12-01T10:05:45.000Z"}),
            ),
        ]);
        let seen: Vec<(EventKind, &str, i64)> = events
            .iter()
            .map(|e| (e.kind, e.event_id.as_ref(), e.ts_ms))
            .collect();
        let t0 = 1_796_119_200_000;
        // Each event repeats what is known so far: the same ids, so one of each counts.
        assert!(seen.contains(&(EventKind::Arrived, "connect-c-1-arrived", t0)));
        assert!(seen.contains(&(EventKind::Queued, "connect-c-1-queued", t0 + 30_000)));
        assert!(seen.contains(&(EventKind::Answered, "connect-c-1-answered", t0 + 45_000)));
        assert!(seen.contains(&(EventKind::Ended, "connect-c-1-disconnected", t0 + 345_000)));
        assert!(!seen.iter().any(|e| e.0 == EventKind::Abandoned));
        let queued = events
            .iter()
            .find(|e| e.kind == EventKind::Queued)
            .expect("queued");
        assert_eq!(queued.queue.as_deref(), Some("billing"), "named by the map");
        let answered = events
            .iter()
            .find(|e| e.kind == EventKind::Answered)
            .expect("answered");
        assert_eq!(answered.agent_id.as_deref(), Some("ann"));
        assert_eq!(events[0].channel.as_deref(), Some("phone"));
        assert_eq!(report.contact_events, 4);
    }

    #[test]
    fn queued_then_gone_is_an_abandon_and_a_transfer_leg_joins_its_chain() {
        let queue = json!({"queueArn": "arn:q/queue/other-id", "enqueueTimestamp": "2026-12-01T10:00:30.000Z"});
        let (events, _) = convert(&[
            contact(
                "DISCONNECTED",
                json!({"queueInfo": queue, "disconnectTimestamp": "2026-12-01T10:02:00.000Z"}),
            ),
            // The next leg: a queue transfer, answered.
            json!({"detail": {
                "eventType": "CONNECTED_TO_AGENT", "contactId": "c-2", "initialContactId": "c-1",
                "previousContactId": "c-1", "channel": "VOICE", "initiationMethod": "QUEUE_TRANSFER",
                "initiationTimestamp": "2026-12-01T10:02:00.000Z",
                "agentInfo": {"agentArn": "arn:a/agent/bob", "connectedToAgentTimestamp": "2026-12-01T10:03:00.000Z"}
            }}),
            // Not customer demand.
            json!({"eventType": "QUEUED", "contactId": "o-1", "initiationMethod": "OUTBOUND"}),
        ]);
        let seen: Vec<(EventKind, &str)> = events
            .iter()
            .map(|e| (e.kind, e.interaction_id.as_ref()))
            .collect();
        assert_eq!(
            seen,
            [
                (EventKind::Arrived, "c-1"),
                (EventKind::Queued, "c-1"),
                (EventKind::Abandoned, "c-1"),
                (EventKind::Answered, "c-1"),
            ],
            "the leg c-2 joins c-1, whose answer wins over the abandon"
        );
        assert_eq!(
            events[1].queue.as_deref(),
            Some("other-id"),
            "unmapped: the queue id"
        );
    }

    #[test]
    fn agent_states_from_snapshots_and_heartbeats_that_repeat_say_nothing() {
        let agent = |id: &str, kind: &str, status: Value, contacts: Value| {
            json!({
                "AgentARN": "arn:i/agent/ann-id", "EventId": id, "EventType": kind,
                "EventTimestamp": "2026-12-01T10:00:00.000Z",
                "CurrentAgentSnapshot": {
                    "AgentStatus": status,
                    "Configuration": {"Username": "ann", "RoutingProfile": {"InboundQueues": [
                        {"ARN": "arn:q/queue/billing-id", "Name": "Billing"},
                        {"ARN": "arn:i/queue/agent/ann-id", "Name": null}
                    ]}},
                    "Contacts": contacts
                }
            })
        };
        let available = json!({"Name": "Available", "Type": "ROUTABLE"});
        let (events, report) = convert(&[
            agent("e1", "LOGIN", available.clone(), json!([])),
            agent("e2", "HEART_BEAT", available.clone(), json!([])),
            agent(
                "e3",
                "STATE_CHANGE",
                available.clone(),
                json!([{"State": "CONNECTED"}]),
            ),
            agent(
                "e4",
                "STATE_CHANGE",
                available.clone(),
                json!([{"State": "ENDED"}]),
            ),
            agent(
                "e5",
                "STATE_CHANGE",
                json!({"Name": "Lunch", "Type": "CUSTOM"}),
                json!([]),
            ),
            agent(
                "e6",
                "LOGOUT",
                json!({"Name": "Offline", "Type": "OFFLINE"}),
                json!([]),
            ),
        ]);
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.event_id.to_string(),
                    e.agent_state,
                    e.away_reason.as_deref().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("connect-agent-e1".into(), Some(AgentState::Available), None),
                ("connect-agent-e3".into(), Some(AgentState::OnContact), None),
                (
                    "connect-agent-e4".into(),
                    Some(AgentState::AfterContactWork),
                    None
                ),
                (
                    "connect-agent-e5".into(),
                    Some(AgentState::Away),
                    Some("Lunch".into())
                ),
                ("connect-agent-e6".into(), Some(AgentState::LoggedOut), None),
            ]
        );
        assert_eq!(
            events[0]
                .queues
                .as_ref()
                .map(|q| q.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(vec!["Billing".to_string()]),
            "named by the routing profile; the agent's own queue left out"
        );
        assert_eq!(report.ignored, 1, "the heartbeat");
    }

    #[test]
    fn bad_records_are_counted_with_their_position() {
        let (_, report) = convert(&[
            json!({"hello": 1}),
            json!({"eventType": "QUEUED", "contactId": "c", "initiationTimestamp": "yesterday"}),
        ]);
        assert_eq!(report.refused, 2);
        assert_eq!(report.first_refused[0], (1, ConnectError::Unknown));
        assert!(matches!(
            report.first_refused[1],
            (
                2,
                ConnectError::BadTime {
                    field: "initiationTimestamp",
                    ..
                }
            )
        ));
    }
}
