//! The interaction event contract: owns the decoded event type, its decoders and its
//! encoders.
//!
//! A record becomes an [`EventRecord`] (borrowing from the input where it can) or a
//! typed [`DecodeError`] naming the field and the reason; decoding never panics.
//! JSON lines are decoded by [`json::decode_json`], protobuf messages by
//! [`protobuf::decode_proto`]; both validate through [`EventRecord::validate`].
//! [`encode`] writes them back in either [`Format`].

pub mod encode;
pub mod json;
pub mod protobuf;
mod scan;

use std::borrow::Cow;

use thiserror::Error;
pub use vigie_proto::AgentState;

pub use encode::{encode, event_key, to_json, write_events, Format};
pub use json::{decode_json, decode_json_into};
pub use protobuf::{decode_proto, decode_proto_into, ProtoStreamReader};

/// Decodes one record in `format`, or, without one, sniffs it: a JSON event starts with
/// `{`, a protobuf one cannot (0x7b would be field 15, which the schema does not have).
pub fn decode(payload: &[u8], format: Option<Format>) -> Result<EventRecord<'_>, DecodeError> {
    match format {
        Some(Format::Jsonl) => decode_json(payload),
        Some(Format::Proto) => decode_proto(payload),
        None => match payload.trim_ascii_start().first() {
            Some(b'{') => decode_json(payload),
            _ => decode_proto(payload),
        },
    }
}

/// The six lifecycle steps of an interaction, and the change of state of an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Arrived,
    Deflected,
    Queued,
    Answered,
    Abandoned,
    Ended,
    /// An agent's state change (capacity): `agent_id` and `agent_state` set.
    AgentState,
}

impl EventKind {
    pub(crate) const ALL: [EventKind; 7] = [
        EventKind::Arrived,
        EventKind::Deflected,
        EventKind::Queued,
        EventKind::Answered,
        EventKind::Abandoned,
        EventKind::Ended,
        EventKind::AgentState,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Arrived => "arrived",
            EventKind::Deflected => "deflected",
            EventKind::Queued => "queued",
            EventKind::Answered => "answered",
            EventKind::Abandoned => "abandoned",
            EventKind::Ended => "ended",
            EventKind::AgentState => "agent_state",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One decoded, validated event: a step of an interaction, or an agent's state change
/// (then `interaction_id` is the contact being handled, empty when none). Strings borrow
/// from the input when possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord<'a> {
    pub event_id: Cow<'a, str>,
    pub kind: EventKind,
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    pub interaction_id: Cow<'a, str>,
    pub customer_id: Option<Cow<'a, str>>,
    pub channel: Option<Cow<'a, str>>,
    pub queue: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
    pub segment: Option<Cow<'a, str>>,
    pub site: Option<Cow<'a, str>>,
    pub deflected_to: Option<Cow<'a, str>>,
    pub resolved: Option<bool>,
    /// The agent: required on `agent_state`, optional on `answered` (who answered).
    pub agent_id: Option<Cow<'a, str>>,
    /// On `agent_state`: the state that begins at `ts`.
    pub agent_state: Option<AgentState>,
    /// On `agent_state` `away`: break, lunch, training, ...
    pub away_reason: Option<Cow<'a, str>>,
    /// On `agent_state`: the queues served from this event on; `None` = unchanged.
    pub queues: Option<Vec<Cow<'a, str>>>,
}

/// Why a record was refused. Each variant names the field at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is empty")]
    EmptyField { field: &'static str },
    #[error("field `type`: unknown event type {0:?} (expected arrived, deflected, queued, answered, abandoned, ended or agent_state)")]
    UnknownType(String),
    #[error("field `state`: unknown agent state {0:?} (expected available, on_contact, after_contact_work, away or logged_out)")]
    UnknownAgentState(String),
    #[error("field `ts`: {value:?} is not an RFC 3339 time with offset ({reason})")]
    BadTimestamp { value: String, reason: String },
    #[error("field `ts`: {0} ms is outside the supported range (years 1970 to 9999)")]
    TimestampOutOfRange(i64),
    #[error("field `channel` is required on `arrived` events")]
    ChannelRequiredOnArrival,
    #[error("invalid JSON at {path}: {message}")]
    Json { path: String, message: String },
    #[error("invalid protobuf message: {0}")]
    Protobuf(String),
    #[error("record of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("field `ts` is {ahead_s} s ahead of this server's clock (more than kafka.max_clock_skew): check the producer's clock")]
    FromTheFuture { ahead_s: i64 },
}

impl DecodeError {
    /// The field at fault, when one is (`ts`, `channel`, a JSON path).
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::MissingField(f) | DecodeError::EmptyField { field: f } => Some(f),
            DecodeError::UnknownType(_) => Some("type"),
            DecodeError::UnknownAgentState(_) => Some("state"),
            DecodeError::BadTimestamp { .. }
            | DecodeError::TimestampOutOfRange(_)
            | DecodeError::FromTheFuture { .. } => Some("ts"),
            DecodeError::ChannelRequiredOnArrival => Some("channel"),
            DecodeError::Json { path, .. } if !path.is_empty() && path != "." => Some(path),
            _ => None,
        }
    }
}

/// Largest epoch millisecond accepted (9999-12-31T23:59:59.999Z).
pub(crate) const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Largest record accepted, in bytes: events are small; a huge line is a broken producer.
pub(crate) const MAX_RECORD_BYTES: usize = 64 * 1024;

impl<'a> EventRecord<'a> {
    /// An event with its required fields; every optional field empty.
    pub fn new(
        event_id: impl Into<Cow<'a, str>>,
        kind: EventKind,
        ts_ms: i64,
        interaction_id: impl Into<Cow<'a, str>>,
    ) -> Self {
        EventRecord {
            event_id: event_id.into(),
            kind,
            ts_ms,
            interaction_id: interaction_id.into(),
            customer_id: None,
            channel: None,
            queue: None,
            reason: None,
            segment: None,
            site: None,
            deflected_to: None,
            resolved: None,
            agent_id: None,
            agent_state: None,
            away_reason: None,
            queues: None,
        }
    }

    /// An agent's change to `state` at `ts_ms`; every optional field empty.
    pub fn agent(
        event_id: impl Into<Cow<'a, str>>,
        ts_ms: i64,
        agent_id: impl Into<Cow<'a, str>>,
        state: AgentState,
    ) -> Self {
        let mut ev = EventRecord::new(event_id, EventKind::AgentState, ts_ms, "");
        ev.agent_id = Some(agent_id.into());
        ev.agent_state = Some(state);
        ev
    }
}

impl<'a> EventRecord<'a> {
    /// The event, unless dated more than `max_skew_ms` ahead of `now_ms` (a producer's
    /// clock gone wrong): the check of Kafka records and of `POST /api/v1/events`.
    pub fn not_ahead_of(self, now_ms: i64, max_skew_ms: i64) -> Result<Self, DecodeError> {
        if self.ts_ms > now_ms.saturating_add(max_skew_ms) {
            Err(DecodeError::FromTheFuture {
                ahead_s: (self.ts_ms - now_ms) / 1000,
            })
        } else {
            Ok(self)
        }
    }
}

impl EventRecord<'_> {
    /// Checks the rules that hold whatever the encoding.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.event_id.is_empty() {
            return Err(DecodeError::EmptyField { field: "event_id" });
        }
        if self.kind == EventKind::AgentState {
            match self.agent_id.as_deref() {
                None => return Err(DecodeError::MissingField("agent_id")),
                Some("") => return Err(DecodeError::EmptyField { field: "agent_id" }),
                Some(_) => {}
            }
            if self.agent_state.is_none() {
                return Err(DecodeError::MissingField("state"));
            }
        } else if self.interaction_id.is_empty() {
            return Err(DecodeError::EmptyField {
                field: "interaction_id",
            });
        }
        if !(0..=MAX_TS_MS).contains(&self.ts_ms) {
            return Err(DecodeError::TimestampOutOfRange(self.ts_ms));
        }
        if self.kind == EventKind::Arrived && self.channel.as_deref().is_none_or(str::is_empty) {
            return Err(DecodeError::ChannelRequiredOnArrival);
        }
        Ok(())
    }

    /// The last step of every decoder: an empty customer id or away reason is read as
    /// none, whatever the encoding; then the rules are checked ([`EventRecord::validate`]).
    pub(crate) fn finish_decoding(&mut self) -> Result<(), DecodeError> {
        if self.customer_id.as_deref() == Some("") {
            self.customer_id = None;
        }
        if self.away_reason.as_deref() == Some("") {
            self.away_reason = None;
        }
        self.validate()
    }

    /// A record to decode into ([`decode_json_into`], [`decode_proto_into`]).
    pub fn blank() -> EventRecord<'static> {
        EventRecord::new("", EventKind::Arrived, 0, "")
    }

    /// An owned copy, independent of the input buffer.
    pub fn into_owned(self) -> EventRecord<'static> {
        fn own(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        EventRecord {
            event_id: Cow::Owned(self.event_id.into_owned()),
            kind: self.kind,
            ts_ms: self.ts_ms,
            interaction_id: Cow::Owned(self.interaction_id.into_owned()),
            customer_id: own(self.customer_id),
            channel: own(self.channel),
            queue: own(self.queue),
            reason: own(self.reason),
            segment: own(self.segment),
            site: own(self.site),
            deflected_to: own(self.deflected_to),
            resolved: self.resolved,
            agent_id: own(self.agent_id),
            agent_state: self.agent_state,
            away_reason: own(self.away_reason),
            queues: self
                .queues
                .map(|q| q.into_iter().map(|c| Cow::Owned(c.into_owned())).collect()),
        }
    }
}

/// Parses an RFC 3339 time with offset into epoch milliseconds.
pub fn parse_rfc3339_ms(value: &str) -> Result<i64, DecodeError> {
    if let Some(ms) = scan::parse_timestamp(value) {
        return Ok(ms);
    }
    let ts: jiff::Timestamp =
        value
            .parse()
            .map_err(|e: jiff::Error| DecodeError::BadTimestamp {
                value: value.chars().take(64).collect(),
                reason: e.to_string(),
            })?;
    Ok(ts.as_millisecond())
}

/// Formats epoch milliseconds as RFC 3339 UTC (`2026-11-25T09:00:00.250Z`).
pub fn format_rfc3339_ms(ts_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ts_ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => ts_ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty customer id or away reason is none, in JSON and in protobuf alike.
    #[test]
    fn empty_customer_and_away_reason_decode_as_none() {
        let json = br#"{"event_id":"a","type":"agent_state","ts":"2026-11-25T09:00:00Z","agent_id":"x","state":"away","away_reason":"","customer_id":""}"#;
        let ev = decode_json(json).expect("valid");
        assert_eq!(
            (ev.customer_id.as_deref(), ev.away_reason.as_deref()),
            (None, None)
        );
        let mut named = ev.clone();
        named.customer_id = Some("c".into());
        named.away_reason = Some("lunch".into());
        let mut msg = protobuf::to_message(&named);
        msg.customer_id = Some(String::new());
        msg.away_reason = Some(String::new());
        let bytes = prost::Message::encode_to_vec(&msg);
        assert_eq!(decode_proto(&bytes), Ok(ev));
    }

    #[test]
    fn rfc3339_requires_an_offset_and_keeps_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Ok(0));
        assert!(matches!(
            parse_rfc3339_ms("2026-11-25T09:00:00"),
            Err(DecodeError::BadTimestamp { .. })
        ));
        assert_eq!(format_rfc3339_ms(1500), "1970-01-01T00:00:01.500Z");
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes, decoding returns a record or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_json(&bytes);
            let _ = decode_proto(&bytes);
            let mut reader = ProtoStreamReader::new(&bytes[..]);
            while let Ok(Some(protobuf::Frame::Message(_))) = reader.next_frame() {}
        }

        /// JSON-shaped input with random field values: same guarantee, deeper paths.
        #[test]
        fn json_objects_with_random_values_never_panic(
            kind in prop_oneof![Just("arrived".to_string()), Just("ended".to_string()), ".{0,8}"],
            ts in prop_oneof![Just("2026-11-25T09:00:00Z".to_string()), ".{0,30}"],
            id in ".{0,10}",
            channel in proptest::option::of(".{0,8}"),
            resolved in prop_oneof![Just("true"), Just("\"yes\""), Just("1"), Just("null")],
        ) {
            let line = serde_json::json!({
                "event_id": id, "type": kind, "ts": ts, "interaction_id": id, "channel": channel,
            })
            .to_string();
            let line = line.replacen('}', &format!(",\"resolved\":{resolved}}}"), 1);
            if let Ok(ev) = decode_json(line.as_bytes()) {
                prop_assert!(ev.validate().is_ok());
            }
        }
    }
}
