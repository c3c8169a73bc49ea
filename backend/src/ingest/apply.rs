//! Owns applying a batch of consumed records: grouped by partition, each partition's
//! records decoded and applied in offset order by one thread, partitions in parallel on
//! the apply pool (`kafka.apply_threads`); refused records handed to the dead-letter
//! topic afterwards, in order; one offset stored per partition and batch.
//!
//! Partitions have an engine each, so applying them in parallel changes nothing an
//! engine sees: the result is the one-task consumer's, event for event.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};

use super::dead_letter::DeadLetters;
use super::{format_of, millis};
use crate::config::KafkaSettings;
use crate::engine::{Applied, Engine, EngineSet};
use crate::event::{decode, DecodeError};
use crate::status::InstanceStatus;

/// Most records taken from the consumer's queue for one batch: a batch is whatever is
/// already fetched, up to this (librdkafka's `queued.max.messages.kbytes` bounds what
/// is fetched ahead).
pub(super) const MAX_BATCH: usize = 4_096;

/// Records of one batch, with the engine of their partition when each was received (a
/// rebalance between two of them gives the later ones the new engine).
#[derive(Default)]
pub(super) struct Batch<'c> {
    messages: Vec<(BorrowedMessage<'c>, Option<Arc<Engine>>)>,
    engines: HashMap<i32, Option<Arc<Engine>>>,
    generation: u64,
}

impl<'c> Batch<'c> {
    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(super) fn push(&mut self, message: BorrowedMessage<'c>, engines: &EngineSet) {
        let generation = engines.assignment_generation();
        if generation != self.generation {
            self.engines.clear();
            self.generation = generation;
        }
        let engine = self
            .engines
            .entry(message.partition())
            .or_insert_with(|| engines.get(message.partition()))
            .clone();
        self.messages.push((message, engine));
    }

    fn clear(&mut self) {
        self.messages.clear();
        self.engines.clear();
    }
}

/// Applies batches, partitions in parallel on its own threads.
pub(super) struct Applier {
    /// `None`: one thread (the consumer's task) applies everything.
    pool: Option<rayon::ThreadPool>,
}

/// What one partition's records of a batch gave.
struct PartitionDone {
    applied: u64,
    /// Records refused: their index in the batch, and why.
    refused: Vec<(usize, DecodeError)>,
}

impl Applier {
    /// An applier of `threads` threads (1: none, the caller's task applies).
    pub(super) fn new(threads: usize) -> Result<Applier, rayon::ThreadPoolBuildError> {
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("vigie-apply-{i}"))
                    .build()
            })
            .transpose()?;
        Ok(Applier { pool })
    }

    /// Decodes and applies `batch`, dead-letters what it refuses, stores each
    /// partition's offset, and empties it.
    pub(super) fn apply<C: Consumer<impl rdkafka::consumer::ConsumerContext>>(
        &self,
        batch: &mut Batch<'_>,
        consumer: &C,
        settings: &KafkaSettings,
        status: &InstanceStatus,
        dlq: &DeadLetters,
    ) {
        // Per partition, its records (indexes) in offset order: the batch keeps the
        // queue's order.
        let messages = &batch.messages;
        let mut partitions: Vec<(i32, Vec<usize>)> = Vec::new();
        for (index, (message, _)) in messages.iter().enumerate() {
            let partition = message.partition();
            match partitions.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, records)) => records.push(index),
                None => partitions.push((partition, vec![index])),
            }
        }
        let now = jiff::Timestamp::now().as_millisecond();
        let apply_partition = |records: &[usize]| {
            let mut done = PartitionDone {
                applied: 0,
                refused: Vec::new(),
            };
            for &index in records {
                let (message, engine) = &messages[index];
                let Some(engine) = engine else {
                    continue; // revoked before it was received
                };
                match apply_record(message, engine, settings, now) {
                    Ok(applied) => done.applied += u64::from(applied),
                    Err(error) => done.refused.push((index, error)),
                }
            }
            done
        };
        let done: Vec<PartitionDone> = match &self.pool {
            Some(pool) if partitions.len() > 1 => pool.install(|| {
                use rayon::prelude::*;
                partitions
                    .par_iter()
                    .map(|(_, records)| apply_partition(records))
                    .collect()
            }),
            _ => partitions
                .iter()
                .map(|(_, records)| apply_partition(records))
                .collect(),
        };
        // Counted once applied (as the rebuild counts): whoever sees every record
        // consumed then finds them all in the engine.
        status.consumed.fetch_add(messages.len() as u64, Relaxed);
        for done in &done {
            status.applied.fetch_add(done.applied, Relaxed);
            for (index, error) in &done.refused {
                status.decode_errors.fetch_add(1, Relaxed);
                dlq.send(&messages[*index].0, error);
            }
        }
        for (partition, records) in &partitions {
            let Some(&last) = records.last() else {
                continue;
            };
            let last = &messages[last].0;
            status.advance(*partition, last.offset());
            if let Err(e) = consumer.store_offset_from_message(last) {
                // The partition may have been revoked meanwhile: it will be replayed.
                tracing::debug!(error = %e, "offset not stored");
            }
        }
        batch.clear();
    }
}

/// Decodes one record and applies it to `engine`: whether it counted (not a duplicate
/// nor late), or why it was refused (counted by the engine; the caller dead-letters it).
pub(super) fn apply_record(
    message: &BorrowedMessage<'_>,
    engine: &Engine,
    settings: &KafkaSettings,
    now_ms: i64,
) -> Result<bool, DecodeError> {
    let decoded = match message.payload() {
        None => Err(DecodeError::MissingField("payload")),
        Some(payload) => decode(payload, format_of(message, settings.payload_format))
            .and_then(|event| event.not_ahead_of(now_ms, millis(settings.max_clock_skew))),
    };
    match decoded {
        Ok(event) => Ok(engine.apply(&event) == Applied::Applied),
        Err(error) => {
            engine.record_rejected();
            Err(error)
        }
    }
}
