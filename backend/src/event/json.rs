//! JSON-lines decoding of the event contract (the canonical form).

use std::borrow::Cow;

use serde::Deserialize;

use super::scan::Head;
use super::{parse_rfc3339_ms, AgentState, DecodeError, EventKind, EventRecord, MAX_RECORD_BYTES};

/// The JSON object as written by producers; every field optional here so that a
/// missing one is reported by name. Unknown fields are ignored (forward compatibility).
#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct JsonEvent<'a> {
    #[serde(borrow)]
    pub(super) event_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) interaction_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) customer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) queue: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) segment: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) site: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) deflected_to: Option<Cow<'a, str>>,
    pub(super) resolved: Option<bool>,
    #[serde(borrow)]
    pub(super) agent_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) away_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) queues: Option<Vec<Cow<'a, str>>>,
}

/// Decodes one JSON object (one line of a JSONL stream).
pub fn decode_json(bytes: &[u8]) -> Result<EventRecord<'_>, DecodeError> {
    let mut record = EventRecord::blank();
    decode_json_into(bytes, &mut record)?;
    Ok(record)
}

/// Decodes one JSON object into `out`, a blank record ([`EventRecord::blank`]): a
/// caller keeping records in a vector decodes each where it stays. A record is about
/// 300 bytes, and moving it from the scanner to the result to the vector cost a tenth
/// of a replay. On an error, `out` holds nothing meaningful.
pub fn decode_json_into<'a>(bytes: &'a [u8], out: &mut EventRecord<'a>) -> Result<(), DecodeError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    debug_assert!(out == &EventRecord::blank(), "decoded into a blank record");
    // The usual flat line borrows every string; anything else goes through serde.
    let mut head = Head::default();
    if super::scan::scan_event(bytes, &mut head, out).is_none() {
        let raw = serde_json::from_slice::<JsonEvent<'_>>(bytes)
            .map_err(|_| explain_json_error(bytes))?;
        head = take_from_serde(raw, out);
    }
    let Head {
        event_id: raw_event_id,
        kind: raw_kind,
        ts: raw_ts,
        ts_ms: usual_ts_ms,
        interaction_id: raw_interaction_id,
        state: raw_state,
    } = head;
    let kind_str = raw_kind.ok_or(DecodeError::MissingField("type"))?;
    out.kind = EventKind::parse(&kind_str)
        .ok_or_else(|| DecodeError::UnknownType(kind_str.chars().take(64).collect()))?;
    // Read already when written the usual way.
    let ts_text = match usual_ts_ms {
        Some(_) => None,
        None => Some(raw_ts.ok_or(DecodeError::MissingField("ts"))?),
    };
    out.agent_state = match raw_state {
        Some(state) => Some(
            AgentState::parse(&state)
                .ok_or_else(|| DecodeError::UnknownAgentState(state.chars().take(64).collect()))?,
        ),
        None => None,
    };
    out.interaction_id = match (raw_interaction_id, out.kind) {
        (Some(id), _) => id,
        (None, EventKind::AgentState) => Cow::Borrowed(""),
        (None, _) => return Err(DecodeError::MissingField("interaction_id")),
    };
    out.event_id = raw_event_id.ok_or(DecodeError::MissingField("event_id"))?;
    out.ts_ms = match (usual_ts_ms, ts_text) {
        (Some(ms), _) => ms,
        (None, Some(text)) => parse_rfc3339_ms(&text)?,
        (None, None) => return Err(DecodeError::MissingField("ts")),
    };
    out.finish_decoding()
}

/// Moves what serde read into `out`'s optional fields (every one of them: the scanner
/// may have set some before giving up) and returns the rest.
fn take_from_serde<'a>(raw: JsonEvent<'a>, out: &mut EventRecord<'a>) -> Head<'a> {
    // Every field named: one added to the record cannot be left unset here.
    let EventRecord {
        event_id: _,
        kind: _,
        ts_ms: _,
        interaction_id: _,
        customer_id,
        channel,
        queue,
        reason,
        segment,
        site,
        deflected_to,
        resolved,
        agent_id,
        agent_state: _,
        away_reason,
        queues,
    } = out;
    *customer_id = raw.customer_id;
    *channel = raw.channel;
    *queue = raw.queue;
    *reason = raw.reason;
    *segment = raw.segment;
    *site = raw.site;
    *deflected_to = raw.deflected_to;
    *resolved = raw.resolved;
    *agent_id = raw.agent_id;
    *away_reason = raw.away_reason;
    *queues = raw.queues;
    Head {
        event_id: raw.event_id,
        kind: raw.kind,
        ts: raw.ts,
        ts_ms: None,
        interaction_id: raw.interaction_id,
        state: raw.state,
    }
}

/// Slow path, only for bad records: decode again tracking the path, so the error
/// says which field was wrong (`resolved: invalid type: string "yes", expected a boolean`).
fn explain_json_error(bytes: &[u8]) -> DecodeError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize::<_, JsonEvent<'_>>(&mut de) {
        Ok(_) => {
            // The object itself parsed: what follows it is the problem.
            let message = de
                .end()
                .err()
                .map_or_else(|| "undecodable JSON".to_string(), |e| e.to_string());
            return DecodeError::Json {
                path: "line".into(),
                message,
            };
        }
        Err(err) => err,
    };
    let path = err.path().to_string();
    let inner = err.into_inner();
    DecodeError::Json {
        path: if path == "." {
            "line".into()
        } else {
            format!("field `{path}`")
        },
        message: inner.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id":"e1","type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"i1","customer_id":"c1","channel":"phone","queue":"billing","extra":1}"#;

    #[test]
    fn decodes_a_full_arrival_and_ignores_unknown_fields() {
        let ev = decode_json(GOOD.as_bytes()).expect("valid");
        assert_eq!(ev.kind, EventKind::Arrived);
        assert_eq!(ev.customer_id.as_deref(), Some("c1"));
        assert_eq!(ev.queue.as_deref(), Some("billing"));
        assert_eq!(ev.ts_ms, 1_795_597_200_000);
    }

    fn err(line: &str) -> DecodeError {
        decode_json(line.as_bytes()).expect_err(line)
    }

    #[test]
    fn every_malformed_form_gets_its_own_error() {
        assert!(matches!(err("{"), DecodeError::Json { .. }));
        assert!(matches!(err("[1,2]"), DecodeError::Json { .. }));
        assert!(matches!(err(""), DecodeError::Json { .. }));
        assert_eq!(
            err(
                r#"{"type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"i","channel":"phone"}"#
            ),
            DecodeError::MissingField("event_id")
        );
        assert_eq!(
            err(r#"{"event_id":"e","ts":"2026-11-25T09:00:00Z","interaction_id":"i"}"#),
            DecodeError::MissingField("type")
        );
        assert_eq!(
            err(r#"{"event_id":"e","type":"arrived","interaction_id":"i","channel":"phone"}"#),
            DecodeError::MissingField("ts")
        );
        assert_eq!(
            err(
                r#"{"event_id":"e","type":"arrived","ts":"2026-11-25T09:00:00Z","channel":"phone"}"#
            ),
            DecodeError::MissingField("interaction_id")
        );
        assert_eq!(
            err(
                r#"{"event_id":"e","type":"exploded","ts":"2026-11-25T09:00:00Z","interaction_id":"i"}"#
            ),
            DecodeError::UnknownType("exploded".into())
        );
        assert!(matches!(
            err(r#"{"event_id":"e","type":"queued","ts":"yesterday","interaction_id":"i"}"#),
            DecodeError::BadTimestamp { .. }
        ));
        assert_eq!(
            err(
                r#"{"event_id":"e","type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"i"}"#
            ),
            DecodeError::ChannelRequiredOnArrival
        );
        assert_eq!(
            err(
                r#"{"event_id":"","type":"queued","ts":"2026-11-25T09:00:00Z","interaction_id":"i"}"#
            ),
            DecodeError::EmptyField { field: "event_id" }
        );
        let long = format!(r#"{{"event_id":"{}"}}"#, "x".repeat(MAX_RECORD_BYTES));
        assert!(matches!(err(&long), DecodeError::TooLarge { .. }));
    }

    #[test]
    fn agent_events_decode_and_bad_ones_name_their_field() {
        let ev = decode_json(
            br#"{"event_id":"a1","type":"agent_state","ts":"2026-11-25T09:00:00Z","agent_id":"ag7","state":"away","away_reason":"lunch","queues":["billing","sales"],"site":"lyon"}"#,
        )
        .expect("valid");
        assert_eq!(ev.kind, EventKind::AgentState);
        assert_eq!(ev.agent_state, Some(AgentState::Away));
        assert_eq!(ev.away_reason.as_deref(), Some("lunch"));
        assert_eq!(
            ev.queues.as_deref(),
            Some(&[Cow::Borrowed("billing"), Cow::Borrowed("sales")][..])
        );
        assert_eq!(ev.interaction_id, "", "optional on agent events");
        let base = r#""event_id":"a","type":"agent_state","ts":"2026-11-25T09:00:00Z""#;
        assert_eq!(
            err(&format!(r#"{{{base},"agent_id":"x","state":"napping"}}"#)),
            DecodeError::UnknownAgentState("napping".into())
        );
        assert_eq!(
            err(&format!(r#"{{{base},"state":"available"}}"#)),
            DecodeError::MissingField("agent_id")
        );
        assert_eq!(
            err(&format!(r#"{{{base},"agent_id":"x"}}"#)),
            DecodeError::MissingField("state")
        );
        let e = err(&format!(
            r#"{{{base},"agent_id":"x","state":"available","queues":"billing"}}"#
        ));
        assert!(e.to_string().contains("queues"), "{e}");
        let e = err(&format!(
            r#"{{{base},"agent_id":"x","state":"available","queues":[1]}}"#
        ));
        assert!(e.to_string().contains("queues"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let e = err(
            r#"{"event_id":"e","type":"ended","ts":"2026-11-25T09:00:00Z","interaction_id":"i","resolved":"yes"}"#,
        );
        let DecodeError::Json { path, message } = e else {
            panic!("expected a JSON error, got {e:?}")
        };
        assert_eq!(path, "field `resolved`");
        assert!(message.contains("expected a boolean"), "{message}");
        let e = err(
            r#"{"event_id":5,"type":"ended","ts":"2026-11-25T09:00:00Z","interaction_id":"i"}"#,
        );
        assert!(e.to_string().contains("event_id"), "{e}");
    }
}
