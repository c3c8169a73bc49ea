//! Protobuf decoding of the event contract (`vigie.v1.InteractionEvent`), one message
//! at a time (Kafka payloads) or as a length-delimited stream (recorded files).

use std::borrow::Cow;
use std::io::{self, Read};

use prost::Message;
use vigie_proto::v1::{AgentStatus, EventType, InteractionEvent, QueueList};

use super::{AgentState, DecodeError, EventKind, EventRecord, MAX_RECORD_BYTES};

/// Decodes one protobuf message into an owned record.
pub fn decode_proto(bytes: &[u8]) -> Result<EventRecord<'static>, DecodeError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let msg = InteractionEvent::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    from_message(msg)
}

/// Validates a decoded protobuf message and turns it into a record.
pub(crate) fn from_message(msg: InteractionEvent) -> Result<EventRecord<'static>, DecodeError> {
    let kind = match EventType::try_from(msg.r#type) {
        Ok(EventType::Arrived) => EventKind::Arrived,
        Ok(EventType::Deflected) => EventKind::Deflected,
        Ok(EventType::Queued) => EventKind::Queued,
        Ok(EventType::Answered) => EventKind::Answered,
        Ok(EventType::Abandoned) => EventKind::Abandoned,
        Ok(EventType::Ended) => EventKind::Ended,
        Ok(EventType::AgentState) => EventKind::AgentState,
        Ok(EventType::Unspecified) => return Err(DecodeError::MissingField("type")),
        Err(_) => return Err(DecodeError::UnknownType(msg.r#type.to_string())),
    };
    let agent_state = match AgentStatus::try_from(msg.state) {
        Ok(AgentStatus::Unspecified) => None,
        Ok(AgentStatus::Available) => Some(AgentState::Available),
        Ok(AgentStatus::OnContact) => Some(AgentState::OnContact),
        Ok(AgentStatus::AfterContactWork) => Some(AgentState::AfterContactWork),
        Ok(AgentStatus::Away) => Some(AgentState::Away),
        Ok(AgentStatus::LoggedOut) => Some(AgentState::LoggedOut),
        Err(_) => return Err(DecodeError::UnknownAgentState(msg.state.to_string())),
    };
    let record = EventRecord {
        event_id: Cow::Owned(msg.event_id),
        kind,
        ts_ms: msg.ts_ms,
        interaction_id: Cow::Owned(msg.interaction_id),
        customer_id: msg.customer_id.filter(|c| !c.is_empty()).map(Cow::Owned),
        channel: msg.channel.map(Cow::Owned),
        queue: msg.queue.map(Cow::Owned),
        reason: msg.reason.map(Cow::Owned),
        segment: msg.segment.map(Cow::Owned),
        site: msg.site.map(Cow::Owned),
        deflected_to: msg.deflected_to.map(Cow::Owned),
        resolved: msg.resolved,
        agent_id: msg.agent_id.map(Cow::Owned),
        agent_state,
        away_reason: msg.away_reason.filter(|r| !r.is_empty()).map(Cow::Owned),
        queues: msg
            .queues
            .map(|q| q.names.into_iter().map(Cow::Owned).collect()),
    };
    record.validate()?;
    Ok(record)
}

/// Encodes a record as a protobuf message (used by the simulator and tests).
pub fn to_message(ev: &EventRecord<'_>) -> InteractionEvent {
    let own = |c: &Option<Cow<'_, str>>| c.as_ref().map(|c| c.to_string());
    InteractionEvent {
        event_id: ev.event_id.to_string(),
        r#type: match ev.kind {
            EventKind::Arrived => EventType::Arrived,
            EventKind::Deflected => EventType::Deflected,
            EventKind::Queued => EventType::Queued,
            EventKind::Answered => EventType::Answered,
            EventKind::Abandoned => EventType::Abandoned,
            EventKind::Ended => EventType::Ended,
            EventKind::AgentState => EventType::AgentState,
        } as i32,
        ts_ms: ev.ts_ms,
        interaction_id: ev.interaction_id.to_string(),
        customer_id: own(&ev.customer_id),
        channel: own(&ev.channel),
        queue: own(&ev.queue),
        reason: own(&ev.reason),
        segment: own(&ev.segment),
        site: own(&ev.site),
        deflected_to: own(&ev.deflected_to),
        resolved: ev.resolved,
        agent_id: own(&ev.agent_id),
        state: match ev.agent_state {
            None => AgentStatus::Unspecified,
            Some(AgentState::Available) => AgentStatus::Available,
            Some(AgentState::OnContact) => AgentStatus::OnContact,
            Some(AgentState::AfterContactWork) => AgentStatus::AfterContactWork,
            Some(AgentState::Away) => AgentStatus::Away,
            Some(AgentState::LoggedOut) => AgentStatus::LoggedOut,
        } as i32,
        away_reason: own(&ev.away_reason),
        queues: ev.queues.as_ref().map(|q| QueueList {
            names: q.iter().map(|c| c.to_string()).collect(),
        }),
    }
}

/// Reads a stream of length-delimited messages (varint length, then the message).
#[derive(Debug)]
pub struct ProtoStreamReader<R> {
    input: R,
    buf: Vec<u8>,
}

/// One frame read from a length-delimited stream.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    Message(&'a [u8]),
    /// The frame is unusable (bad length prefix or truncated body); the stream cannot go on.
    Broken(DecodeError),
}

impl<R: Read> ProtoStreamReader<R> {
    pub fn new(input: R) -> Self {
        ProtoStreamReader {
            input,
            buf: Vec::with_capacity(512),
        }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub(crate) fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let mut len: u64 = 0;
        for i in 0..10 {
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte)? {
                0 if i == 0 => return Ok(None),
                0 => {
                    return Ok(Some(Frame::Broken(DecodeError::Protobuf(
                        "truncated length prefix".into(),
                    ))))
                }
                _ => {}
            }
            len |= u64::from(byte[0] & 0x7f) << (7 * i);
            if byte[0] & 0x80 == 0 {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_RECORD_BYTES {
                    return Ok(Some(Frame::Broken(DecodeError::TooLarge {
                        len,
                        max: MAX_RECORD_BYTES,
                    })));
                }
                self.buf.resize(len, 0);
                return match self.input.read_exact(&mut self.buf) {
                    Ok(()) => Ok(Some(Frame::Message(&self.buf))),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(Frame::Broken(
                        DecodeError::Protobuf(format!("truncated message: {len} bytes announced")),
                    ))),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(Some(Frame::Broken(DecodeError::Protobuf(
            "length prefix longer than 10 bytes".into(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_json;

    #[test]
    fn a_json_event_survives_the_protobuf_round_trip() {
        let line = r#"{"event_id":"e1","type":"ended","ts":"2026-11-25T09:00:00.123Z","interaction_id":"i1","customer_id":"c1","resolved":true}"#;
        let ev = decode_json(line.as_bytes()).expect("valid").into_owned();
        let bytes = to_message(&ev).encode_to_vec();
        assert_eq!(decode_proto(&bytes).expect("valid"), ev);
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert!(matches!(
            decode_proto(&[0xff, 0xff]),
            Err(DecodeError::Protobuf(_))
        ));
        let mut msg = InteractionEvent {
            event_id: "e".into(),
            interaction_id: "i".into(),
            ts_ms: 1,
            ..Default::default()
        };
        assert_eq!(
            decode_proto(&msg.encode_to_vec()),
            Err(DecodeError::MissingField("type"))
        );
        msg.r#type = 42;
        assert_eq!(
            decode_proto(&msg.encode_to_vec()),
            Err(DecodeError::UnknownType("42".into()))
        );
        msg.r#type = EventType::Arrived as i32;
        assert_eq!(
            decode_proto(&msg.encode_to_vec()),
            Err(DecodeError::ChannelRequiredOnArrival)
        );
        msg.r#type = EventType::Queued as i32;
        msg.ts_ms = -5;
        assert_eq!(
            decode_proto(&msg.encode_to_vec()),
            Err(DecodeError::TimestampOutOfRange(-5))
        );
    }

    #[test]
    fn a_truncated_stream_reports_a_broken_frame() {
        let msg = InteractionEvent {
            event_id: "e".into(),
            ..Default::default()
        };
        let mut bytes = msg.encode_length_delimited_to_vec();
        bytes.truncate(bytes.len() - 1);
        let mut reader = ProtoStreamReader::new(&bytes[..]);
        assert!(matches!(reader.next_frame(), Ok(Some(Frame::Broken(_)))));
    }
}
