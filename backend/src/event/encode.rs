//! Owns encoding events: the canonical JSON form, the protobuf message, the framed
//! streams `vigie simulate` writes and `vigie replay` reads (JSONL, length-delimited
//! protobuf), and the Kafka key convention.

use std::io::{self, Write};
use std::str::FromStr;

use prost::Message;
use serde::Serialize;

use super::protobuf::to_message;
use super::{format_rfc3339_ms, AgentState, EventKind, EventRecord};

/// Encoding of events: in a recorded stream, and in a Kafka record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line (the canonical form).
    #[default]
    Jsonl,
    /// `vigie.v1.InteractionEvent` messages (length-delimited in a stream).
    Proto,
}

impl Format {
    /// The `content-type` header of a Kafka record in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/json",
            Format::Proto => "application/x-protobuf",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "proto" | "protobuf" => Ok(Format::Proto),
            other => Err(format!(
                "unknown format {other:?} (expected jsonl or proto)"
            )),
        }
    }
}

/// The Kafka key of an event: its customer, else its interaction, so that one
/// customer's contacts land on one partition; an agent event's agent, so that one
/// agent's states land on one partition in order.
pub fn event_key<'a>(event: &'a EventRecord<'_>) -> &'a str {
    if event.kind == EventKind::AgentState {
        if let Some(agent) = event.agent_id.as_deref() {
            return agent;
        }
    }
    event
        .customer_id
        .as_deref()
        .unwrap_or(&event.interaction_id)
}

/// One event as one record (no framing): a Kafka payload.
pub fn encode(event: &EventRecord<'_>, format: Format) -> Vec<u8> {
    match format {
        Format::Jsonl => to_json(event).into_bytes(),
        Format::Proto => to_message(event).encode_to_vec(),
    }
}

/// The canonical JSON form of an event.
#[derive(Serialize)]
struct JsonOut<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    ts: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    interaction_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deflected_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    away_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queues: Option<Vec<&'a str>>,
}

/// Encodes one event as a JSON object (no newline).
pub fn to_json(ev: &EventRecord<'_>) -> String {
    let out = JsonOut {
        event_id: &ev.event_id,
        kind: ev.kind.as_str(),
        ts: format_rfc3339_ms(ev.ts_ms),
        interaction_id: &ev.interaction_id,
        customer_id: ev.customer_id.as_deref(),
        channel: ev.channel.as_deref(),
        queue: ev.queue.as_deref(),
        reason: ev.reason.as_deref(),
        segment: ev.segment.as_deref(),
        site: ev.site.as_deref(),
        deflected_to: ev.deflected_to.as_deref(),
        resolved: ev.resolved,
        agent_id: ev.agent_id.as_deref(),
        state: ev.agent_state.map(AgentState::as_str),
        away_reason: ev.away_reason.as_deref(),
        queues: ev
            .queues
            .as_ref()
            .map(|q| q.iter().map(|c| c.as_ref()).collect()),
    };
    serde_json::to_string(&out).unwrap_or_default()
}

/// Writes events in `format`; returns how many were written.
pub fn write_events(
    events: impl Iterator<Item = EventRecord<'static>>,
    format: Format,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut n = 0;
    let mut buf = Vec::with_capacity(256);
    for ev in events {
        match format {
            Format::Jsonl => {
                out.write_all(to_json(&ev).as_bytes())?;
                out.write_all(b"\n")?;
            }
            Format::Proto => {
                buf.clear();
                to_message(&ev)
                    .encode_length_delimited(&mut buf)
                    .map_err(io::Error::other)?;
                out.write_all(&buf)?;
            }
        }
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode_json, decode_proto, EventKind};

    #[test]
    fn an_encoded_event_decodes_to_itself_in_both_formats() {
        let mut ev = EventRecord::new("e1", EventKind::Ended, 1_795_593_600_250, "i1");
        ev.customer_id = Some("c1".into());
        ev.resolved = Some(true);
        assert_eq!(decode_json(&encode(&ev, Format::Jsonl)), Ok(ev.clone()));
        assert_eq!(decode_proto(&encode(&ev, Format::Proto)), Ok(ev.clone()));
        assert_eq!(event_key(&ev), "c1");
        ev.customer_id = None;
        assert_eq!(event_key(&ev), "i1", "anonymous: keyed by interaction");
        assert_eq!("protobuf".parse(), Ok(Format::Proto));
        let mut agent = EventRecord::agent("a1", 1_795_593_600_250, "ag7", AgentState::Away);
        agent.away_reason = Some("lunch".into());
        agent.queues = Some(vec!["billing".into(), "sales".into()]);
        agent.site = Some("lyon".into());
        assert_eq!(
            decode_json(&encode(&agent, Format::Jsonl)),
            Ok(agent.clone())
        );
        assert_eq!(
            decode_proto(&encode(&agent, Format::Proto)),
            Ok(agent.clone())
        );
        assert_eq!(event_key(&agent), "ag7");
        agent.queues = Some(Vec::new());
        assert_eq!(
            decode_proto(&encode(&agent, Format::Proto)),
            Ok(agent.clone()),
            "an empty queue list is not an absent one"
        );
        assert!("xml".parse::<Format>().is_err());
    }
}
