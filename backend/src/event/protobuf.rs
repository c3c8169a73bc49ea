//! Protobuf decoding of the event contract (`vigie.v1.InteractionEvent`), one message
//! at a time (Kafka payloads) or as a length-delimited stream (recorded files). The
//! usual message is read by a wire scanner that borrows its strings (no allocation);
//! prost decides everything else.

use std::borrow::Cow;
use std::io::{self, Read};

use prost::Message;
use vigie_proto::v1::{AgentStatus, EventType, InteractionEvent, QueueList};

use super::{AgentState, DecodeError, EventKind, EventRecord, MAX_RECORD_BYTES};

/// Decodes one protobuf message. The usual message borrows its strings from `bytes`
/// ([`scan_message`]); anything else goes through prost, which reports the errors.
pub fn decode_proto(bytes: &[u8]) -> Result<EventRecord<'_>, DecodeError> {
    let mut record = EventRecord::blank();
    decode_proto_into(bytes, &mut record)?;
    Ok(record)
}

/// Decodes one protobuf message into `out`, a blank record ([`EventRecord::blank`]):
/// see [`super::decode_json_into`]. On an error, `out` holds nothing meaningful.
pub fn decode_proto_into<'a>(
    bytes: &'a [u8],
    out: &mut EventRecord<'a>,
) -> Result<(), DecodeError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    debug_assert!(out == &EventRecord::blank(), "decoded into a blank record");
    let enums = match scan_message(bytes, out) {
        Some(enums) => enums,
        None => {
            let msg = InteractionEvent::decode(bytes)
                .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
            // The scanner may have set some fields before giving up.
            *out = EventRecord::blank();
            take_from_prost(msg, out)
        }
    };
    out.kind = match EventType::try_from(enums.kind) {
        Ok(EventType::Arrived) => EventKind::Arrived,
        Ok(EventType::Deflected) => EventKind::Deflected,
        Ok(EventType::Queued) => EventKind::Queued,
        Ok(EventType::Answered) => EventKind::Answered,
        Ok(EventType::Abandoned) => EventKind::Abandoned,
        Ok(EventType::Ended) => EventKind::Ended,
        Ok(EventType::AgentState) => EventKind::AgentState,
        Ok(EventType::Unspecified) => return Err(DecodeError::MissingField("type")),
        Err(_) => return Err(DecodeError::UnknownType(enums.kind.to_string())),
    };
    out.agent_state = match AgentStatus::try_from(enums.state) {
        Ok(AgentStatus::Unspecified) => None,
        Ok(AgentStatus::Available) => Some(AgentState::Available),
        Ok(AgentStatus::OnContact) => Some(AgentState::OnContact),
        Ok(AgentStatus::AfterContactWork) => Some(AgentState::AfterContactWork),
        Ok(AgentStatus::Away) => Some(AgentState::Away),
        Ok(AgentStatus::LoggedOut) => Some(AgentState::LoggedOut),
        Err(_) => return Err(DecodeError::UnknownAgentState(enums.state.to_string())),
    };
    out.finish_decoding()
}

/// A message's enum fields as written (0 when absent), checked once read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Enums {
    kind: i32,
    state: i32,
}

/// Moves what prost read into `out` (blank), but for the enums, returned.
fn take_from_prost(msg: InteractionEvent, out: &mut EventRecord<'_>) -> Enums {
    let own = |s: Option<String>| s.map(Cow::Owned);
    // Every field named: one added to the record cannot be left unset here.
    let EventRecord {
        event_id,
        kind: _,
        ts_ms,
        interaction_id,
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
    *event_id = Cow::Owned(msg.event_id);
    *ts_ms = msg.ts_ms;
    *interaction_id = Cow::Owned(msg.interaction_id);
    *customer_id = own(msg.customer_id);
    *channel = own(msg.channel);
    *queue = own(msg.queue);
    *reason = own(msg.reason);
    *segment = own(msg.segment);
    *site = own(msg.site);
    *deflected_to = own(msg.deflected_to);
    *resolved = msg.resolved;
    *agent_id = own(msg.agent_id);
    *away_reason = own(msg.away_reason);
    *queues = msg
        .queues
        .map(|q| q.names.into_iter().map(Cow::Owned).collect());
    Enums {
        kind: msg.r#type,
        state: msg.state,
    }
}

/// The fields of the usual message, its strings borrowed: every field of the schema
/// with its own wire type, each message field once. Anything else (an unknown field, a
/// wire type the schema does not give, a varint of ten bytes, a string that is not
/// UTF-8, a truncated field) is `None`, for prost to decide: so this never accepts what
/// prost refuses nor reads anything differently (the unit tests compare them).
/// Fills `f`, which starts blank, but for the enums, returned; on `None` it may hold
/// part of the message.
fn scan_message<'a>(bytes: &'a [u8], f: &mut EventRecord<'a>) -> Option<Enums> {
    let mut enums = Enums::default();
    let mut wire = Wire::new(bytes);
    while !wire.done() {
        let tag = wire.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => f.event_id = Cow::Borrowed(wire.string()?),
            // prost reads an enum or int32 as the varint's low 32 bits, a bool as non-zero.
            (2, 0) => enums.kind = wire.varint()? as i32,
            (3, 0) => f.ts_ms = wire.varint()? as i64,
            (4, 2) => f.interaction_id = Cow::Borrowed(wire.string()?),
            (5, 2) => f.customer_id = Some(Cow::Borrowed(wire.string()?)),
            (6, 2) => f.channel = Some(Cow::Borrowed(wire.string()?)),
            (7, 2) => f.queue = Some(Cow::Borrowed(wire.string()?)),
            (8, 2) => f.reason = Some(Cow::Borrowed(wire.string()?)),
            (9, 2) => f.segment = Some(Cow::Borrowed(wire.string()?)),
            (10, 2) => f.site = Some(Cow::Borrowed(wire.string()?)),
            (11, 2) => f.deflected_to = Some(Cow::Borrowed(wire.string()?)),
            (12, 0) => f.resolved = Some(wire.varint()? != 0),
            (13, 2) => f.agent_id = Some(Cow::Borrowed(wire.string()?)),
            (14, 0) => enums.state = wire.varint()? as i32,
            (15, 2) => f.away_reason = Some(Cow::Borrowed(wire.string()?)),
            // A second QueueList would be merged into the first: left to prost.
            (16, 2) if f.queues.is_none() => {
                let mut list = Wire::new(wire.bytes_field()?);
                let mut names = Vec::new();
                while !list.done() {
                    if list.varint()? != (1 << 3) | 2 {
                        return None;
                    }
                    names.push(Cow::Borrowed(list.string()?));
                }
                f.queues = Some(names);
            }
            _ => return None,
        }
    }
    Some(enums)
}

/// A cursor over protobuf wire bytes.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8]) -> Wire<'a> {
        Wire { bytes, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// A varint of at most nine bytes (63 bits): a longer one is left to prost.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..9 {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn bytes_field(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.at.checked_add(len)?;
        let field = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(field)
    }

    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes_field()?).ok()
    }
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

/// Takes the `i`th byte (from 0) of a frame's length prefix (a varint of at most ten
/// bytes) into `len`: `true` when it is the last one.
fn length_prefix_byte(len: &mut u64, i: usize, byte: u8) -> bool {
    *len |= u64::from(byte & 0x7f) << (7 * i);
    byte & 0x80 == 0
}

/// The length prefix's size and the message's length of a frame that `buffered` (the
/// start of a stream's unread bytes) holds whole, with a length
/// [`ProtoStreamReader::next_frame`] would take: a frame read with no copy into the
/// reader's buffer. Anything else (a frame past `buffered`'s end, a length over the
/// limit, a prefix not ended in ten bytes) is the reader's to read or to report.
pub(crate) fn whole_frame(buffered: &[u8]) -> Option<(usize, usize)> {
    let mut len: u64 = 0;
    for (i, byte) in buffered.iter().take(10).enumerate() {
        if length_prefix_byte(&mut len, i, *byte) {
            let len = usize::try_from(len).ok()?;
            let prefix = i + 1;
            return (len <= MAX_RECORD_BYTES && buffered.len() - prefix >= len)
                .then_some((prefix, len));
        }
    }
    None
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
            if length_prefix_byte(&mut len, i, byte[0]) {
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

    /// Whenever the scanner takes a message, prost reads the same fields from it: on
    /// random messages, and on each of them mutated (bytes changed, cut, or appended).
    #[test]
    fn the_scanner_reads_every_message_it_takes_as_prost_does() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(17);
        let words = ["", "a", "phone", "billing", "é", "c-42", "x\u{0}y"];
        let word = |rng: &mut StdRng| -> Option<String> {
            rng.random_bool(0.7)
                .then(|| words[rng.random_range(0..words.len())].to_string())
        };
        for _ in 0..20_000 {
            let msg = InteractionEvent {
                event_id: word(&mut rng).unwrap_or_default(),
                r#type: rng.random_range(-2..10),
                ts_ms: rng.random_range(-5..2_000_000_000_000),
                interaction_id: word(&mut rng).unwrap_or_default(),
                customer_id: word(&mut rng),
                channel: word(&mut rng),
                queue: word(&mut rng),
                reason: word(&mut rng),
                segment: word(&mut rng),
                site: word(&mut rng),
                deflected_to: word(&mut rng),
                resolved: rng.random_bool(0.5).then(|| rng.random_bool(0.5)),
                agent_id: word(&mut rng),
                state: rng.random_range(-1..8),
                away_reason: word(&mut rng),
                queues: rng.random_bool(0.3).then(|| QueueList {
                    names: (0..rng.random_range(0..3))
                        .filter_map(|_| word(&mut rng))
                        .collect(),
                }),
            };
            let mut bytes = msg.encode_to_vec();
            let mutation = rng.random_range(0..4);
            match mutation {
                0 if !bytes.is_empty() => {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random();
                }
                1 => bytes.truncate(rng.random_range(0..=bytes.len())),
                2 => {
                    let more = msg.encode_to_vec();
                    let from = rng.random_range(0..=more.len());
                    bytes.extend_from_slice(&more[from..]);
                }
                _ => {}
            }
            let prost = InteractionEvent::decode(&bytes[..]).map(|msg| {
                let mut record = EventRecord::blank();
                let enums = take_from_prost(msg, &mut record);
                (record, enums)
            });
            let mut scanned = EventRecord::blank();
            match scan_message(&bytes, &mut scanned) {
                Some(enums) => assert_eq!(Ok((scanned, enums)), prost, "{bytes:?}"),
                // Negative numbers take ten-byte varints, left to prost.
                None => assert!(
                    mutation < 3 || msg.r#type < 0 || msg.state < 0 || msg.ts_ms < 0,
                    "an intact message is scanned: {msg:?}"
                ),
            }
        }
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
