//! Owns cutting the input into numbered records, in batches of about [`BATCH_BYTES`]
//! copied back to back into one buffer.

use std::io::{self, BufRead};

use super::{Rejection, BATCH_BYTES};
use crate::event::protobuf::Frame;
use crate::event::{Format, ProtoStreamReader};

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
}

/// Cuts the input into records and numbers them.
pub(super) struct RecordReader {
    format: Format,
    /// Lines (JSONL) or messages (protobuf) read so far.
    position: u64,
    done: bool,
}

impl RecordReader {
    pub(super) fn new(format: Format) -> Self {
        RecordReader {
            format,
            position: 0,
            done: false,
        }
    }

    /// Appends records to `batch` until it holds [`BATCH_BYTES`] or the input ends;
    /// `false` once the input has ended.
    pub(super) fn fill<R: BufRead>(
        &mut self,
        input: &mut R,
        batch: &mut Batch,
    ) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        match self.format {
            Format::Jsonl => {
                while batch.bytes.len() < BATCH_BYTES {
                    let start = batch.bytes.len();
                    if input.read_until(b'\n', &mut batch.bytes)? == 0 {
                        self.done = true;
                        return Ok(false);
                    }
                    self.position += 1;
                    let line = &batch.bytes[start..];
                    let trimmed = line.trim_ascii();
                    if trimmed.is_empty() {
                        batch.bytes.truncate(start);
                        continue;
                    }
                    let lead = line.len() - line.trim_ascii_start().len();
                    batch.spans.push(Span {
                        position: self.position,
                        start: start + lead,
                        end: start + lead + trimmed.len(),
                    });
                }
            }
            Format::Proto => {
                // The framing reader borrows its own buffer: copied into the batch's.
                let mut frames = ProtoStreamReader::new(input);
                while batch.bytes.len() < BATCH_BYTES {
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
