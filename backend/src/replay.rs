//! Owns feeding a recorded stream (JSONL or length-delimited protobuf) through the
//! engine: line/record numbering, rejection reporting, and `--strict` handling.

use std::io::{self, BufRead};

use thiserror::Error;

use crate::engine::{Applied, Engine};
use crate::event::protobuf::Frame;
use crate::event::{decode_json, decode_proto, DecodeError, Format, ProtoStreamReader};

/// A record that was refused, with its 1-based position (line for JSONL, message for protobuf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub position: u64,
    pub error: DecodeError,
}

/// What a replay read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    pub records: u64,
    pub applied: u64,
    pub late: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("reading the input: {0}")]
    Io(#[from] io::Error),
    #[error("record {}: {}", .0.position, .0.error)]
    Strict(Rejection),
}

/// Feeds every record of `input` to `engine`. Bad records are counted, passed to
/// `on_reject`, and skipped; with `strict`, the first one stops the replay.
pub fn replay<R: BufRead>(
    engine: &Engine,
    mut input: R,
    format: Format,
    strict: bool,
    mut on_reject: impl FnMut(&Rejection),
) -> Result<ReplayCounts, ReplayError> {
    let mut counts = ReplayCounts::default();
    let mut reject = |counts: &mut ReplayCounts, position: u64, error: DecodeError| {
        let rejection = Rejection { position, error };
        engine.record_rejected();
        counts.rejected += 1;
        on_reject(&rejection);
        if strict {
            Err(ReplayError::Strict(rejection))
        } else {
            Ok(())
        }
    };
    match format {
        Format::Jsonl => {
            let mut line = Vec::with_capacity(512);
            let mut number = 0u64;
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                number += 1;
                let record = line.trim_ascii();
                if record.is_empty() {
                    continue;
                }
                counts.records += 1;
                match decode_json(record) {
                    Ok(ev) => tally(&mut counts, engine.apply(&ev)),
                    Err(error) => reject(&mut counts, number, error)?,
                }
            }
        }
        Format::Proto => {
            let mut reader = ProtoStreamReader::new(input);
            let mut number = 0u64;
            while let Some(frame) = reader.next_frame()? {
                number += 1;
                counts.records += 1;
                match frame {
                    Frame::Message(bytes) => match decode_proto(bytes) {
                        Ok(ev) => tally(&mut counts, engine.apply(&ev)),
                        Err(error) => reject(&mut counts, number, error)?,
                    },
                    Frame::Broken(error) => {
                        // Framing is lost: nothing after this point can be read reliably.
                        reject(&mut counts, number, error)?;
                        break;
                    }
                }
            }
        }
    }
    Ok(counts)
}

fn tally(counts: &mut ReplayCounts, applied: Applied) {
    match applied {
        Applied::Applied => counts.applied += 1,
        Applied::Late => counts.late += 1,
        Applied::Duplicate => counts.duplicates += 1,
    }
}
