//! Owns cutting the input into numbered records, in batches (at most [`BatchLimits`])
//! copied back to back into one buffer.

use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::Range;

use super::{BatchLimits, Rejection, JSONL_BATCH, PROTO_BATCH};
use crate::event::protobuf::{whole_frame, Frame};
use crate::event::{decode_json, Format, ProtoStreamReader};

/// Bytes read at the end of a JSONL file for its newest event time: a few hundred lines.
const TAIL_BYTES: u64 = 64 << 10;

/// The newest event time of the records that decode among the whole lines of the last
/// [`TAIL_BYTES`] of a JSONL input: a lower bound of the stream's newest time, so it is
/// safe to tell the engines ahead ([`super::ReplayOptions::newest_ts`]). `None` for
/// protobuf, whose framing cannot be read backwards, or when no line there decodes.
/// Leaves the input at offset 0.
pub fn newest_time_in_tail<R: Read + Seek>(
    input: &mut R,
    format: Format,
) -> io::Result<Option<i64>> {
    if format != Format::Jsonl {
        return Ok(None);
    }
    let start = input.seek(SeekFrom::End(0))?.saturating_sub(TAIL_BYTES);
    input.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    input.by_ref().take(TAIL_BYTES).read_to_end(&mut tail)?;
    input.seek(SeekFrom::Start(0))?;
    let mut lines = tail.split(|b| *b == b'\n');
    if start > 0 {
        lines.next(); // the end of a line cut by the tail's start
    }
    Ok(lines
        .filter_map(|line| decode_json(line.trim_ascii()).ok())
        .map(|event| event.ts_ms)
        .max())
}

/// One record of a batch: where it is in the batch's bytes and in the stream.
#[derive(Debug, Clone)]
pub(super) struct Span {
    pub(super) position: u64,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// Records read, back to back in one buffer.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    pub(super) spans: Vec<Span>,
    /// Protobuf framing lost at this record: the stream ends there.
    pub(super) broken: Option<Rejection>,
}

impl Batch {
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.broken = None;
    }

    /// Holds `limits`' bytes or records: whichever comes first ends it.
    fn is_full(&self, limits: BatchLimits) -> bool {
        self.bytes.len() >= limits.bytes || self.spans.len() >= limits.records
    }
}

/// Bytes of JSONL asked of the input at a time.
const READ_BYTES: usize = 128 << 10;

/// The buffer to put in front of the input. JSONL is read straight into the batches, in
/// blocks: a buffer would only add a copy of every byte (a third of the reading
/// thread's time). The protobuf framing reads its length prefixes from a buffer.
pub(super) fn read_buffer_bytes(format: Format) -> usize {
    match format {
        Format::Jsonl => 0,
        Format::Proto => 1 << 20,
    }
}

/// Cuts the input into records and numbers them.
pub(super) struct RecordReader {
    format: Format,
    /// Lines (JSONL) or messages (protobuf) read so far.
    position: u64,
    done: bool,
    /// JSONL: the start of a line read after the last whole one of a batch, for the next.
    carry: Vec<u8>,
}

impl RecordReader {
    pub(super) fn new(format: Format) -> Self {
        RecordReader {
            format,
            position: 0,
            done: false,
            carry: Vec::new(),
        }
    }

    /// JSONL: reads blocks straight into the batch (no copy line by line) and cuts
    /// them at their newlines, found a vector at a time.
    fn fill_lines<R: Read>(&mut self, input: &mut R, batch: &mut Batch) -> io::Result<bool> {
        debug_assert!(
            batch.bytes.is_empty(),
            "lines are cut from the batch's start"
        );
        batch.bytes.append(&mut self.carry);
        let (mut line_start, mut searched) = (0, 0);
        loop {
            // Room for a whole block: `read_to_end` then reads into it at once, without
            // growing the vector by probing reads.
            batch.bytes.reserve(READ_BYTES);
            let got = input
                .by_ref()
                .take(READ_BYTES as u64)
                .read_to_end(&mut batch.bytes)?;
            let (bytes, spans) = (&batch.bytes, &mut batch.spans);
            for at in memchr::memchr_iter(b'\n', &bytes[searched..]) {
                let end = searched + at;
                add_line(bytes, spans, &mut self.position, line_start..end);
                line_start = end + 1;
            }
            searched = bytes.len();
            if got < READ_BYTES {
                // The input has ended: its last line may have no newline.
                if line_start < bytes.len() {
                    add_line(bytes, spans, &mut self.position, line_start..bytes.len());
                }
                self.done = true;
                return Ok(false);
            }
            if batch.is_full(JSONL_BATCH) && line_start > 0 {
                if batch.spans.is_empty() {
                    // Blank lines only so far: dropped, and the batch goes on (the replay
                    // takes a batch without a record for the end of the input).
                    batch.bytes.drain(..line_start);
                    searched -= line_start;
                    line_start = 0;
                    continue;
                }
                self.carry.extend_from_slice(&batch.bytes[line_start..]);
                batch.bytes.truncate(line_start);
                return Ok(true);
            }
        }
    }

    /// Fills an emptied `batch` ([`Batch::clear`]) with records until it holds
    /// its format's [`BatchLimits`] (JSONL: checked after each block read), or
    /// the input ends; `false` once the input has ended. A batch filled before the end
    /// holds at least one record.
    pub(super) fn fill<R: BufRead>(
        &mut self,
        input: &mut R,
        batch: &mut Batch,
    ) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        match self.format {
            Format::Jsonl => return self.fill_lines(input, batch),
            Format::Proto => {
                while !batch.is_full(PROTO_BATCH) {
                    // A whole frame in the input's buffer is copied from there at once.
                    let buffered = input.fill_buf()?;
                    if let Some((prefix, len)) = whole_frame(buffered) {
                        self.position += 1;
                        let start = batch.bytes.len();
                        batch
                            .bytes
                            .extend_from_slice(&buffered[prefix..prefix + len]);
                        batch.spans.push(Span {
                            position: self.position,
                            start,
                            end: batch.bytes.len(),
                        });
                        input.consume(prefix + len);
                        continue;
                    }
                    // Anything else (a frame across the buffer's end, the input's end, a
                    // bad length) to the framing reader, which borrows its own buffer: the
                    // frame is copied into the batch's.
                    let mut frames = ProtoStreamReader::new(&mut *input);
                    let Some(frame) = frames.next_frame()? else {
                        self.done = true;
                        return Ok(false);
                    };
                    self.position += 1;
                    match frame {
                        Frame::Message(bytes) => {
                            let start = batch.bytes.len();
                            batch.bytes.extend_from_slice(bytes);
                            batch.spans.push(Span {
                                position: self.position,
                                start,
                                end: batch.bytes.len(),
                            });
                        }
                        Frame::Broken(error) => {
                            // Framing is lost: nothing after this point can be read reliably.
                            batch.broken = Some(Rejection {
                                position: self.position,
                                error,
                            });
                            self.done = true;
                            return Ok(false);
                        }
                    }
                }
            }
        }
        Ok(true)
    }
}

/// Numbers the line `bytes[line]` (without its newline) and adds it to `spans`, unless
/// it is blank.
fn add_line(bytes: &[u8], spans: &mut Vec<Span>, position: &mut u64, line: Range<usize>) {
    *position += 1;
    let start = line.start;
    let line = &bytes[line];
    let trimmed = line.trim_ascii();
    if !trimmed.is_empty() {
        let lead = line.len() - line.trim_ascii_start().len();
        spans.push(Span {
            position: *position,
            start: start + lead,
            end: start + lead + trimmed.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::event::{format_rfc3339_ms, MAX_RECORD_BYTES};

    fn arrival(i: usize, ts: i64) -> String {
        format!(
            "{{\"event_id\":\"e{i}\",\"type\":\"arrived\",\"ts\":\"{}\",\"interaction_id\":\"i{i}\",\"channel\":\"chat\"}}\n",
            format_rfc3339_ms(ts)
        )
    }

    /// Every batch `format`'s `input` is cut into, in order.
    fn batches_of(mut input: impl BufRead, format: Format) -> Vec<Batch> {
        let mut reader = RecordReader::new(format);
        let mut batches = Vec::new();
        loop {
            let mut batch = Batch::default();
            let more = reader.fill(&mut input, &mut batch).expect("reads");
            batches.push(batch);
            if !more {
                return batches;
            }
        }
    }

    /// A pipe: short reads of random sizes.
    struct Trickle<'a>(&'a [u8], rand::rngs::StdRng);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            use rand::Rng;
            let n = buf
                .len()
                .min(self.0.len())
                .min(self.1.random_range(1..5_000));
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Lines cut by reads, blocks and batches; blank ones, CRLF, one longer than a
    /// block, a last one without its newline: each line is read whole, at its number.
    #[test]
    fn lines_are_read_whole_and_numbered_across_blocks_and_batches() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (mut text, mut expected) = (Vec::new(), Vec::new());
        // Enough lines (about 160 bytes each) for several batches.
        let lines = 70_000u64;
        for position in 1..=lines {
            let line = match (position, rng.random_range(0..50)) {
                (777, _) => format!(" long {}", "x".repeat(READ_BYTES + 1_000)),
                (_, 0) => " \t ".to_string(),
                _ => format!("line {position} {}", "y".repeat(rng.random_range(0..300))),
            };
            if !line.trim().is_empty() {
                expected.push((position, line.trim().to_string()));
            }
            text.extend_from_slice(line.as_bytes());
            if position < lines {
                text.extend_from_slice(if rng.random_bool(0.1) { b"\r\n" } else { b"\n" });
            }
        }
        let input = io::BufReader::new(Trickle(&text, rand::rngs::StdRng::seed_from_u64(4)));
        let batches = batches_of(input, Format::Jsonl);
        let mut read = Vec::new();
        for batch in &batches {
            for span in &batch.spans {
                let line = String::from_utf8(batch.bytes[span.start..span.end].to_vec());
                read.push((span.position, line.expect("UTF-8")));
            }
        }
        assert!(batches.len() > 4, "{} batches", batches.len());
        assert_eq!(read.len(), expected.len());
        assert!(read == expected, "lines differ");
    }

    /// Frames cut by reads and by the input's buffer (of a few bytes or of many), of
    /// every size up to the largest taken, then one announcing more than that: each
    /// frame is read whole, at its number, and the bad length ends the stream there.
    #[test]
    fn frames_are_read_whole_across_buffers_and_a_bad_length_ends_the_stream() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut stream, mut expected) = (Vec::new(), Vec::new());
        for position in 1..=3_000u64 {
            let len = match position {
                100 => MAX_RECORD_BYTES,
                200 => 0,
                _ => rng.random_range(1..400),
            };
            let frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            prost::encode_length_delimiter(len, &mut stream).expect("encodes");
            stream.extend_from_slice(&frame);
            expected.push((position, frame));
        }
        prost::encode_length_delimiter(MAX_RECORD_BYTES + 1, &mut stream).expect("encodes");
        stream.extend_from_slice(&[0; 10]);
        for capacity in [3, 1 << 20] {
            let input = io::BufReader::with_capacity(
                capacity,
                Trickle(&stream, rand::rngs::StdRng::seed_from_u64(6)),
            );
            let batches = batches_of(input, Format::Proto);
            let read: Vec<(u64, Vec<u8>)> = batches
                .iter()
                .flat_map(|b| {
                    b.spans
                        .iter()
                        .map(|s| (s.position, b.bytes[s.start..s.end].to_vec()))
                })
                .collect();
            assert!(read == expected, "frames differ, buffer of {capacity}");
            let broken = batches.last().and_then(|b| b.broken.as_ref());
            assert_eq!(broken.map(|b| b.position), Some(3_001));
        }
    }

    /// Short records fill a batch by their count, not their bytes: a protobuf batch
    /// holds at most its limit of records, a JSONL one is cut after the block that reached
    /// it; every record is read once, in order.
    #[test]
    fn short_records_fill_a_batch_by_their_count() {
        let count = PROTO_BATCH.records + 17;
        let events = (0..count).map(|i| {
            let line = arrival(i, 1_795_597_200_000 + i as i64);
            crate::event::decode_json(line.trim().as_bytes())
                .expect("decodes")
                .into_owned()
        });
        let mut proto = Vec::new();
        crate::event::write_events(events, Format::Proto, &mut proto).expect("encodes");
        assert!(proto.len() < PROTO_BATCH.bytes, "short of a batch by bytes");
        // Two blocks of one-byte lines: a batch by bytes would take both.
        let lines = "x\n".repeat(READ_BYTES);
        for (format, input, most) in [
            (Format::Proto, proto.as_slice(), PROTO_BATCH.records),
            (Format::Jsonl, lines.as_bytes(), READ_BYTES / 2),
        ] {
            let batches: Vec<Vec<u64>> = batches_of(input, format)
                .iter()
                .map(|b| b.spans.iter().map(|s| s.position).collect())
                .collect();
            let all: Vec<u64> = batches.iter().flatten().copied().collect();
            let records = all.len() as u64;
            assert_eq!(all, (1..=records).collect::<Vec<_>>(), "{format:?}");
            assert!(records > most as u64, "{format:?}");
            assert!(batches.iter().all(|b| b.len() <= most), "{format:?}");
        }
    }

    #[test]
    fn the_newest_time_is_that_of_the_whole_lines_at_the_end() {
        let base = 1_795_597_200_000;
        let mut text = String::new();
        for i in 0..2_000 {
            let ts = match i {
                0 => base + 1_000_000_000, // newest of all, but far from the end
                1_996 => base + 5_000_000, // newest of the end, out of order
                _ => base + i as i64 * 1_000,
            };
            text.push_str(&arrival(i, ts));
        }
        text.push_str("{\"event_id\":\"cut\",\"type\":\"arr");
        assert!(text.len() as u64 > 2 * TAIL_BYTES);
        let mut input = Cursor::new(text.as_bytes());
        let newest = newest_time_in_tail(&mut input, Format::Jsonl).expect("reads");
        assert_eq!(newest, Some(base + 5_000_000));
        assert_eq!(input.position(), 0, "left at its start");
        assert_eq!(
            newest_time_in_tail(&mut input, Format::Proto).expect("reads"),
            None
        );
        // Shorter than the tail: its first line counts too.
        let short = arrival(0, base + 9_000) + &arrival(1, base);
        let newest = newest_time_in_tail(&mut Cursor::new(short.as_bytes()), Format::Jsonl);
        assert_eq!(newest.expect("reads"), Some(base + 9_000));
        let garbage = newest_time_in_tail(&mut Cursor::new(&b"not json\n"[..]), Format::Jsonl);
        assert_eq!(garbage.expect("reads"), None);
    }
}
