//! Owns feeding a recorded stream (JSONL or length-delimited protobuf) through the
//! engines: line/record numbering, rejection reporting, `--strict` handling, and the
//! split of the work over threads.
//!
//! # Parallel replay
//! A thread reads records in batches ([`BatchLimits`], [`read`]), ahead of the workers
//! (one per engine). Two batches are worked on at once: while the workers apply one,
//! the worker running the loop decodes the next (in slices, which the others take up as
//! soon as they are done applying; when applying took longer than decoding, it applies
//! one engine's events first) and gives its events, in stream order, to engines by key
//! ([`route`]: as a Kafka producer partitions them, an interaction kept whole). Each
//! engine applies its own events of a batch in stream order, and the batches in turn.
//! So an engine sees the events a Kafka partition would, in the same order, and the
//! merged snapshot is the one `vigie serve` shows for a topic of that many partitions.
//! One thing differs from a single engine: each engine has its own watermark (as each
//! partition has), which only matters for events later than `engine.allowed_lateness`.

mod read;
mod route;

use std::io::{self, BufReader, Read};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use rayon::prelude::*;
use thiserror::Error;

use crate::engine::{Applied, Engine, EngineSet};
use crate::event::{decode_json_into, decode_proto_into, DecodeError, EventRecord, Format};
pub use read::newest_time_in_tail;
use read::{read_buffer_bytes, Batch, RecordReader, Span};
use route::{place, Lifetimes, Place, Routers};

/// How much a batch holds at most, in bytes of records and in records: whichever comes
/// first ends it. Each batch costs a few hand-offs between threads (a sleeping core woken,
/// which a virtual machine makes dear), so batches should be large; but a batch's decoded
/// events (about 300 bytes each) are read back by another worker, and they take memory
/// (two batches are held at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub bytes: usize,
    pub records: usize,
}

/// JSONL: 1 MiB, about 6,000 lines. With transparent huge pages off (the binary's
/// `main`), larger batches stopped costing fresh memory. 2 threads, runs in turn,
/// medians: on the DuckDB benchmark's file,
/// 256 KiB 0.515-0.525 s, 1 MiB 0.475-0.485 s, 2 MiB 0.475-0.500 s, 4 MiB 0.505 s (10
/// and 16 runs each); on the 24 h replay of `scripts/bench-replay.sh`'s file, 3.20 s,
/// 2.80 s, 2.73 s (3 runs). With huge pages, 512 KiB had been 15 % slower than 256 KiB.
pub const JSONL_BATCH: BatchLimits = BatchLimits {
    bytes: 1 << 20,
    records: 8_192,
};

/// Protobuf: 16,384 records (about 1.1 MiB: its records are about 70 bytes, so their
/// count ends a batch). The 24 h replay of `scripts/bench-replay.sh`'s file, 2 threads,
/// medians of 4 runs in turn: 8,192 records 2.84 s, 16,384 2.71 s, 32,768 2.71 s (and
/// 2,048 to 8,192 had been −10 %, a quarter of the threads' sleeps and wake-ups).
pub const PROTO_BATCH: BatchLimits = BatchLimits {
    bytes: 4 << 20,
    records: 16_384,
};

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
    /// Parallel replay: events naming a customer whose interaction was already placed
    /// on another engine by an earlier step without one (see [`route`]); that customer's
    /// repeat classification may differ from a one-thread replay.
    pub split_customers: u64,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("reading the input: {0}")]
    Io(#[from] io::Error),
    #[error("record {}: {}", .0.position, .0.error)]
    Strict(Rejection),
    #[error("starting the replay's threads: {0}")]
    Threads(String),
}

/// How a replay runs.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    pub format: Format,
    /// Stop at the first malformed record (nothing after it is applied).
    pub strict: bool,
    /// A lower bound of the input's newest event time, when known ahead
    /// ([`newest_time_in_tail`] of a file): the engines keep no aggregate older than a
    /// window ending then can reach ([`Engine::expect_end`]). Only the snapshot at the
    /// end is then exact, which is all a replay shows; a time the input never reaches
    /// makes it wrong.
    pub newest_ts: Option<i64>,
}

/// The engines of a replay over `threads` workers: partitions `0..threads` of a fresh set.
pub fn replay_engines(set: &EngineSet, threads: usize) -> Vec<Arc<Engine>> {
    (0..threads.max(1))
        .map(|p| set.assign(i32::try_from(p).unwrap_or(i32::MAX)))
        .collect()
}

/// Feeds every record of `input` to `engines` (one worker thread each: see
/// [`replay_engines`]), each event to the engine of its key. Bad records are counted,
/// passed to `on_reject` in order, and skipped; with `strict`, the first one stops the
/// replay (the records before it are applied, none after).
///
/// `input` needs no buffering: the replay buffers what needs it, and reads JSONL in
/// large blocks straight into its batches.
pub fn replay<R: Read + Send>(
    engines: &[Arc<Engine>],
    input: R,
    options: ReplayOptions,
    mut on_reject: impl FnMut(&Rejection) + Send,
) -> Result<ReplayCounts, ReplayError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(engines.len().max(1))
        .thread_name(|i| format!("vigie-replay-{i}"))
        .build()
        .map_err(|e| ReplayError::Threads(e.to_string()))?;
    if let Some(newest) = options.newest_ts {
        for engine in engines {
            engine.expect_end(newest);
        }
    }
    let mut counts = ReplayCounts::default();
    // A thread reads batches ahead (one waiting, one being filled); emptied ones come
    // back to it for their allocations. It makes two: the loop gives one back for each
    // it takes (and holds two), and the channel holds one, so whenever the reader
    // wants one, one is on its way back, until the loop stops.
    let (full, batches) = mpsc::sync_channel::<io::Result<Batch>>(1);
    let (returned, empties) = mpsc::channel::<Batch>();
    let read_ahead = move || {
        let mut reader = RecordReader::new(options.format);
        let mut input = BufReader::with_capacity(read_buffer_bytes(options.format), input);
        let mut made = 0;
        loop {
            let mut batch = if made < 2 {
                made += 1;
                Batch::default()
            } else {
                match empties.recv() {
                    Ok(batch) => batch,
                    // The loop stopped early (--strict, an error).
                    Err(_) => return,
                }
            };
            batch.clear();
            let read = reader.fill(&mut input, &mut batch);
            let more = matches!(read, Ok(true));
            // Nobody listening: the replay stopped early (--strict, an error).
            if full.send(read.map(|_| batch)).is_err() || !more {
                return;
            }
        }
    };
    let mut work = Work {
        batches,
        returned,
        options,
        spare: Vec::new(),
        spare_routes: Vec::new(),
        apply_first: false,
        routers: Routers::new(engines.len(), Lifetimes::of(engines[0].config())),
    };
    let mut report = |done: BatchDone, split: u64| -> Result<(), ReplayError> {
        counts.records += done.records;
        counts.applied += done.tally.applied;
        counts.late += done.tally.late;
        counts.duplicates += done.tally.duplicates;
        counts.split_customers = split;
        for rejection in done.rejections {
            engines[0].record_rejected();
            counts.rejected += 1;
            on_reject(&rejection);
            if options.strict {
                return Err(ReplayError::Strict(rejection));
            }
        }
        Ok(())
    };
    // Two batches in turn, one applied while the next is decoded and routed: written
    // out twice, so that each buffer stays borrowed by its own batch's events. The loop
    // runs on a worker of the pool, which decodes while the others apply (or after
    // applying one engine's events: see `Work::step`), then applies or decodes whatever
    // is left (work stealing balances them). It owns the receiving end:
    // once it returns, the reading thread stops at its next batch.
    let run = move || -> Result<(), ReplayError> {
        let (mut first, mut second) = (Batch::default(), Batch::default());
        let Some(mut applying) = work.prepare(&mut first)? else {
            return Ok(());
        };
        loop {
            let Some(next) = work.turn(engines, applying, &mut second, &mut report)? else {
                return Ok(());
            };
            let Some(after) = work.turn(engines, next, &mut first, &mut report)? else {
                return Ok(());
            };
            applying = after;
        }
    };
    std::thread::scope(|threads| {
        std::thread::Builder::new()
            .name("vigie-replay-read".into())
            .spawn_scoped(threads, read_ahead)
            .map_err(|e| ReplayError::Threads(e.to_string()))?;
        pool.install(run)
    })?;
    Ok(counts)
}

/// Decoding slices per worker: small enough that a worker done applying early takes
/// some of the next batch's decoding from the one running the loop.
const SLICES_PER_THREAD: usize = 4;

/// What became of one batch.
struct BatchDone {
    records: u64,
    tally: Tally,
    /// In stream order.
    rejections: Vec<Rejection>,
}

/// A batch read, decoded and routed: ready to be applied.
struct Stage<'b> {
    decoded: Vec<Decoded<'b>>,
    /// Per engine, its events of the batch: (slice, index in the slice), in stream order.
    routes: Vec<Vec<(u32, u32)>>,
    records: u64,
    /// In stream order.
    rejections: Vec<Rejection>,
}

/// What a replay keeps from batch to batch.
struct Work {
    /// Batches read ahead, in order; closed after the last one.
    batches: mpsc::Receiver<io::Result<Batch>>,
    /// Emptied batches, back to the reading thread.
    returned: mpsc::Sender<Batch>,
    options: ReplayOptions,
    /// Emptied vectors of decoded events and of their places: their allocations are
    /// reused rather than returned to the system and faulted in again for every batch.
    spare: Vec<SliceBuffers<'static>>,
    spare_routes: Vec<Vec<Vec<(u32, u32)>>>,
    /// The last batch took longer to apply (on one engine) than to prepare.
    apply_first: bool,
    routers: Routers,
}

impl Work {
    /// Applies `applying` while the next batch is taken into `into`, decoded and
    /// routed; reports what became of the applied one (before any error reading the
    /// next), and returns the next one.
    fn turn<'b>(
        &mut self,
        engines: &[Arc<Engine>],
        applying: Stage<'_>,
        into: &'b mut Batch,
        report: &mut impl FnMut(BatchDone, u64) -> Result<(), ReplayError>,
    ) -> Result<Option<Stage<'b>>, ReplayError> {
        let (done, next) = self.step(engines, applying, into);
        report(done, self.routers.split_customers())?;
        Ok(next?)
    }

    /// Applies `applying` while the next batch is taken into `into`, decoded and routed.
    fn step<'b>(
        &mut self,
        engines: &[Arc<Engine>],
        applying: Stage<'_>,
        into: &'b mut Batch,
    ) -> (BatchDone, io::Result<Option<Stage<'b>>>) {
        let mut tallies: Vec<Tally> = engines.iter().map(|_| Tally::default()).collect();
        let mut next = Ok(None);
        let mut prepare_ns = 0;
        rayon::in_place_scope(|scope| {
            let mut work: Vec<_> = engines
                .iter()
                .zip(&applying.routes)
                .zip(&mut tallies)
                .collect();
            // When applying an engine's events took longer than preparing a batch, this
            // worker applies one engine's itself at once, and prepares after: the decoding
            // (in slices) then fills whichever worker is done first. Otherwise it
            // prepares while the others apply: decoding beside applying keeps the cores
            // busier (one waits on memory, the other computes), and the last engine is
            // applied by whoever is done first.
            let own = if self.apply_first { work.pop() } else { None };
            let routed = engines.len() > 1;
            for ((engine, route), tally) in work {
                let decoded = &applying.decoded;
                scope.spawn(move |_| *tally = apply_route(engine, decoded, route, routed));
            }
            if let Some(((engine, route), tally)) = own {
                *tally = apply_route(engine, &applying.decoded, route, routed);
            }
            let started = Instant::now();
            next = self.prepare(into);
            prepare_ns = started.elapsed().as_nanos();
        });
        let tally = tallies.into_iter().fold(Tally::default(), |a, t| Tally {
            applied: a.applied + t.applied,
            late: a.late + t.late,
            duplicates: a.duplicates + t.duplicates,
            nanos: a.nanos.max(t.nanos),
        });
        // Wall time: it includes waiting for the reading thread, which then is not the
        // batch's to apply first.
        self.apply_first = tally.nanos > prepare_ns;
        let done = BatchDone {
            records: applying.records,
            tally,
            rejections: applying.rejections,
        };
        self.spare.extend(
            applying
                .decoded
                .into_iter()
                .map(|d| (relabel(d.events), d.places)),
        );
        self.spare_routes.push(applying.routes);
        (done, next)
    }

    /// Takes the next batch read into `into`, decodes it and routes its events; `None`
    /// once the input has ended.
    fn prepare<'b>(&mut self, into: &'b mut Batch) -> io::Result<Option<Stage<'b>>> {
        let Ok(read) = self.batches.recv() else {
            return Ok(None);
        };
        let emptied = std::mem::replace(into, read?);
        // The reading thread may have stopped already: the allocation is then dropped.
        let _ = self.returned.send(emptied);
        let batch: &'b Batch = into;
        if batch.spans.is_empty() && batch.broken.is_none() {
            return Ok(None);
        }
        let slices: Vec<_> = (0..SLICES_PER_THREAD * self.routers.engines())
            .map(|_| {
                let (events, places) = self.spare.pop().unwrap_or_default();
                (relabel(events), places)
            })
            .collect();
        let decoded = decode_batch(batch, self.options.format, slices, self.routers.engines());
        let mut rejections: Vec<Rejection> = decoded
            .iter()
            .flat_map(|d| d.rejected.iter().cloned())
            .collect();
        if let Some(broken) = &batch.broken {
            rejections.push(broken.clone());
        }
        // Under --strict nothing at or after the first rejection is applied.
        let cutoff = match rejections.first() {
            Some(first) if self.options.strict => first.position,
            _ => u64::MAX,
        };
        // A broken frame counts as a record (the one that could not be read).
        let records = batch
            .spans
            .iter()
            .map(|s| s.position)
            .chain(batch.broken.as_ref().map(|b| b.position))
            .filter(|p| *p < cutoff)
            .count() as u64;
        let mut routes = self.spare_routes.pop().unwrap_or_default();
        routes.resize_with(self.routers.engines(), Vec::new);
        for route in &mut routes {
            route.clear();
        }
        let places: Vec<&[Place]> = decoded
            .iter()
            .map(|slice| {
                let before_cutoff = slice.events.partition_point(|(p, _)| *p < cutoff);
                &slice.places[..before_cutoff]
            })
            .collect();
        self.routers.route(&places, &mut routes);
        Ok(Some(Stage {
            decoded,
            routes,
            records,
            rejections,
        }))
    }
}

/// An emptied vector of events borrowing from one batch as one for another, with its
/// allocation: the standard library collects a mapped `into_iter` in place when the
/// layouts are the same (they are: only the lifetime differs).
fn relabel<'b>(mut events: Vec<(u64, EventRecord<'_>)>) -> Vec<(u64, EventRecord<'b>)> {
    events.clear();
    events
        .into_iter()
        .map(|_| unreachable!("the vector was emptied"))
        .collect()
}

/// What one worker decoded from its slice of a batch.
struct Decoded<'a> {
    /// Its events with their positions, in stream order.
    events: Vec<(u64, EventRecord<'a>)>,
    /// Where each event goes, as far as it alone tells.
    places: Vec<Place>,
    rejected: Vec<Rejection>,
}

/// A slice's vectors of decoded events (with their positions) and of their places.
type SliceBuffers<'a> = (Vec<(u64, EventRecord<'a>)>, Vec<Place>);

/// Decodes the batch in as many slices as `into` has (emptied) vectors of events and
/// of places, at once, and places each event among `engines`.
fn decode_batch<'a>(
    batch: &'a Batch,
    format: Format,
    into: Vec<SliceBuffers<'a>>,
    engines: usize,
) -> Vec<Decoded<'a>> {
    let slice = batch.spans.len().div_ceil(into.len().max(1)).max(1);
    let decode = |(spans, (mut events, mut places)): (&[Span], SliceBuffers<'a>)| {
        places.clear();
        places.reserve(spans.len());
        let mut rejected = Vec::new();
        // Every record decoded in its place in the vector (see `decode_json_into`):
        // blank ones written all at once (one by one, each was built aside and copied).
        events.clear();
        events.extend(
            spans
                .iter()
                .map(|span| (span.position, EventRecord::blank())),
        );
        for (span, (_, slot)) in spans.iter().zip(events.iter_mut()) {
            let bytes = &batch.bytes[span.start..span.end];
            let decoded = match format {
                Format::Jsonl => decode_json_into(bytes, slot),
                Format::Proto => decode_proto_into(bytes, slot),
            };
            match decoded {
                Ok(()) => places.push(place(slot, engines)),
                Err(error) => rejected.push(Rejection {
                    position: span.position,
                    error,
                }),
            }
        }
        if !rejected.is_empty() {
            let mut refused = rejected.iter().map(|r| r.position).peekable();
            events.retain(|(position, _)| refused.next_if_eq(position).is_none());
        }
        Decoded {
            events,
            places,
            rejected,
        }
    };
    let work: Vec<_> = batch.spans.chunks(slice).zip(into).collect();
    if work.len() <= 1 {
        return work.into_iter().map(decode).collect();
    }
    work.into_par_iter().map(decode).collect()
}

/// What the workers applied.
#[derive(Default)]
struct Tally {
    applied: u64,
    late: u64,
    duplicates: u64,
    /// Time taken (the longest, once summed).
    nanos: u128,
}

/// One engine applies its events of a batch, in stream order; `routed`: the events were
/// routed among engines, their ids hashed on the way (see [`place`]).
fn apply_route(
    engine: &Engine,
    decoded: &[Decoded<'_>],
    route: &[(u32, u32)],
    routed: bool,
) -> Tally {
    let started = Instant::now();
    let mut tally = Tally::default();
    for &(s, i) in route {
        let slice = &decoded[s as usize];
        let ids = if routed {
            slice.places[i as usize].ids()
        } else {
            None
        };
        match engine.apply_hashed(&slice.events[i as usize].1, ids) {
            Applied::Applied => tally.applied += 1,
            Applied::Late => tally.late += 1,
            Applied::Duplicate => tally.duplicates += 1,
        }
    }
    tally.nanos = started.elapsed().as_nanos();
    tally
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::engine::EngineConfig;

    /// `n` arrivals (plus the bad lines at the given 1-based line numbers), over several
    /// batches: about 170 bytes a line.
    fn stream(n: usize, bad: &[usize]) -> String {
        let mut out = String::new();
        let mut written = 0;
        for line in 1.. {
            if written == n && !bad.contains(&line) {
                break;
            }
            if bad.contains(&line) {
                out.push_str("{\"event_id\":\"bad\",\"type\":\"teleported\"}\n");
                continue;
            }
            let ts = crate::event::format_rfc3339_ms(1_795_597_200_000 + written as i64 * 100);
            out.push_str(&format!(
                "{{\"event_id\":\"e{written}\",\"type\":\"arrived\",\"ts\":\"{ts}\",\"interaction_id\":\"i{written}\",\"customer_id\":\"c{}\",\"channel\":\"phone\"}}\n",
                written % 97
            ));
            written += 1;
        }
        out
    }

    /// Days of a simulated centre, as JSON lines: about 2.8 days up to the evening of
    /// 2026-10-25, when Paris falls back an hour (a 25-hour `today` there).
    fn days_of_history() -> (Vec<EventRecord<'static>>, String) {
        simulated(12_000, 0.05)
    }

    /// `contacts` of a simulated centre at `per_second` from 2026-10-23T05:00:00Z, as
    /// JSON lines.
    fn simulated(contacts: u64, per_second: f64) -> (Vec<EventRecord<'static>>, String) {
        let events: Vec<_> = crate::simulate::Simulator::new(crate::simulate::SimulationConfig {
            contacts: Some(contacts),
            seed: 5,
            contacts_per_second: per_second,
            start_ms: 1_792_731_600_000,
            ..crate::simulate::SimulationConfig::default()
        })
        .collect();
        let text = events
            .iter()
            .map(|e| crate::event::encode::to_json(e) + "\n")
            .collect();
        (events, text)
    }

    /// `input` replayed by two engines of a new set, told `newest_ts` ahead.
    fn replay_told(
        cfg: EngineConfig,
        input: &str,
        newest_ts: Option<i64>,
    ) -> (EngineSet, Vec<Arc<Engine>>) {
        let set = EngineSet::new(cfg);
        let engines = replay_engines(&set, 2);
        let options = ReplayOptions {
            format: Format::Jsonl,
            strict: false,
            newest_ts,
        };
        replay(&engines, input.as_bytes(), options, |_| {}).expect("replays");
        (set, engines)
    }

    /// The end told ahead: every window of the snapshot at the end is the one of a
    /// replay told nothing, although the history was not aggregated.
    #[test]
    fn a_replay_told_its_end_ahead_shows_the_same_snapshots() {
        use crate::engine::{Dimension, SnapshotQuery, WindowSpec};
        let (events, input) = days_of_history();
        let newest = newest_time_in_tail(&mut io::Cursor::new(input.as_bytes()), Format::Jsonl)
            .expect("reads");
        assert_eq!(newest, events.iter().map(|e| e.ts_ms).max());
        let paris = EngineConfig {
            time_zone: jiff::tz::TimeZone::get("Europe/Paris").expect("bundled tz database"),
            ..EngineConfig::default()
        };
        let snapshots = |newest_ts: Option<i64>| {
            let (set, _) = replay_told(paris.clone(), &input, newest_ts);
            let windows = [
                WindowSpec::Last(900_000),
                WindowSpec::Last(86_400_000),
                WindowSpec::Today,
            ];
            windows.map(|window| {
                let query = SnapshotQuery {
                    window,
                    breakdown: vec![Dimension::Queue, Dimension::Reason],
                    ..SnapshotQuery::default()
                };
                set.snapshot(&query).expect("snapshot")
            })
        };
        let told = snapshots(newest);
        assert!(told[0].total.arrivals > 0, "traffic at the end");
        let today = &told[2].window;
        assert!(
            today.to - today.from > 86_400_000,
            "a 25-hour day: {today:?}"
        );
        assert_eq!(told, snapshots(None));
    }

    /// Over nine days, the history read for the baselines (not aggregated, each
    /// arrival only counted, and moved when a `queued` changes its queue) gives the
    /// baselines of a replay told nothing.
    #[test]
    fn a_replay_told_its_end_ahead_shows_the_same_baselines() {
        use crate::engine::{SnapshotQuery, WindowSpec};
        let (events, input) = simulated(9_000, 0.0115);
        let newest = events.iter().map(|e| e.ts_ms).max().expect("events");
        let first = events.iter().map(|e| e.ts_ms).min().expect("events");
        assert!(newest - first > 8 * 86_400_000, "more than a week");
        let snapshot = |newest_ts: Option<i64>| {
            let (set, _) = replay_told(EngineConfig::default(), &input, newest_ts);
            let query = SnapshotQuery {
                window: WindowSpec::Last(3_600_000),
                ..SnapshotQuery::default()
            };
            set.snapshot(&query).expect("snapshot")
        };
        let told = snapshot(Some(newest));
        let queues = told
            .queues
            .values()
            .filter(|q| q.baseline.is_some())
            .count();
        assert!(
            told.total.baseline.is_some() && queues > 3,
            "{queues} queues"
        );
        assert_eq!(told, snapshot(None));
    }

    /// Told an end days later, a replay reads the history for the repeats but keeps no
    /// aggregate of it.
    #[test]
    fn history_older_than_the_retention_before_the_end_is_not_aggregated() {
        let (events, input) = days_of_history();
        let newest = events.iter().map(|e| e.ts_ms).max().expect("events");
        let kept = |newest_ts: Option<i64>| {
            let (_, engines) = replay_told(EngineConfig::default(), &input, newest_ts);
            let customers: usize = engines.iter().map(|e| e.tracked_customers()).sum();
            let entries: usize = engines.iter().map(|e| e.stored_entries()).sum();
            (customers, entries)
        };
        let (customers, entries) = kept(None);
        assert!(customers > 0 && entries > 0);
        let later = newest + EngineConfig::default().retention_ms() + 3_600_000;
        assert_eq!(kept(Some(later)), (customers, 0));
    }

    fn applied(engines: &[std::sync::Arc<Engine>]) -> u64 {
        engines
            .iter()
            .map(|e| e.stats().applied.load(Ordering::Relaxed))
            .sum()
    }

    /// `input` (JSONL) replayed by `threads` engines of a new set: what the replay
    /// returned, the positions of the records it refused (in the order reported), and
    /// the engines.
    fn replay_jsonl(
        input: &str,
        threads: usize,
        strict: bool,
    ) -> (
        Result<ReplayCounts, ReplayError>,
        Vec<u64>,
        Vec<Arc<Engine>>,
    ) {
        let engines = replay_engines(&EngineSet::new(EngineConfig::default()), threads);
        let options = ReplayOptions {
            format: Format::Jsonl,
            strict,
            newest_ts: None,
        };
        let mut seen = Vec::new();
        let result = replay(&engines, input.as_bytes(), options, |r| {
            seen.push(r.position);
        });
        (result, seen, engines)
    }

    #[test]
    fn strict_applies_every_record_before_the_first_bad_one_and_none_after() {
        let input = stream(60_000, &[40_001, 50_000]);
        assert!(input.len() > 3 * JSONL_BATCH.bytes, "several batches");
        for threads in [1, 2, 3] {
            let (result, seen, engines) = replay_jsonl(&input, threads, true);
            let err = result.expect_err("strict stops");
            let ReplayError::Strict(rejection) = err else {
                panic!("expected a strict stop, got {err:?}")
            };
            assert_eq!(rejection.position, 40_001);
            assert_eq!(seen, [40_001], "the first one only");
            assert_eq!(applied(&engines), 40_000, "{threads} threads");
        }
    }

    /// Batches of blank lines only between records: every record after them is read,
    /// with its line number.
    #[test]
    fn records_after_batches_of_blank_lines_are_applied() {
        let records = stream(3, &[]);
        let lines: Vec<&str> = records.lines().collect();
        // Blank lines, a newline each: the second batch holds nothing else.
        let blank = 3 * JSONL_BATCH.bytes;
        let input = format!(
            "{}\n{}{}\n{}\n{{\"bad\":1}}\n",
            lines[0],
            "\n".repeat(blank),
            lines[1],
            lines[2]
        );
        for threads in [1, 2] {
            let (result, seen, engines) = replay_jsonl(&input, threads, false);
            let counts = result.expect("replays");
            assert_eq!(counts.applied, 3, "{threads} threads");
            assert_eq!(applied(&engines), 3);
            // Line 1, `blank` blank lines, two records, the bad one.
            assert_eq!(seen, [blank as u64 + 4]);
        }
    }

    #[test]
    fn every_bad_record_is_reported_in_order_and_the_rest_applied() {
        let bad = [1, 7_000, 7_001, 19_999, 30_002];
        let input = stream(30_000, &bad);
        let (result, seen, engines) = replay_jsonl(&input, 2, false);
        let counts = result.expect("replays");
        assert_eq!(seen, bad.map(|b| b as u64));
        assert_eq!(
            counts,
            ReplayCounts {
                records: 30_005,
                applied: 30_000,
                late: 0,
                duplicates: 0,
                rejected: 5,
                split_customers: 0,
            }
        );
        assert_eq!(applied(&engines), 30_000);
        // Every customer's arrivals went to one engine: 97 customers in all.
        let customers: usize = engines.iter().map(|e| e.tracked_customers()).sum();
        assert_eq!(customers, 97);
        assert!(
            engines.iter().all(|e| e.tracked_customers() > 0),
            "both used"
        );
    }
}
