//! `vigie replay`: a recorded stream through the engine, one JSON snapshot on stdout.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use vigie::config::Settings;
use vigie::engine::{Dimension, DimensionFilter, EngineSet, SnapshotQuery, WindowSpec};
use vigie::event::Format;
use vigie::replay::{newest_time_in_tail, replay, replay_engines, ReplayError, ReplayOptions};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Recorded stream, or `-` for standard input.
    input: PathBuf,
    /// Window length (5m … 24h) or `today` (in engine.time_zone).
    #[arg(long, default_value = "15m")]
    window: WindowSpec,
    /// Input: jsonl or proto (contract events, length-delimited messages for proto),
    /// asterisk (a `queue_log`), or connect (Amazon Connect contact events and agent
    /// events: JSON lines, arrays or documents).
    #[arg(long, default_value = "jsonl")]
    format: InputFormat,
    /// Breakdown beyond total and per channel: comma-separated dimensions among
    /// channel, queue, reason, segment, site (e.g. `channel,queue`).
    #[arg(long, value_delimiter = ',', default_value = "channel")]
    by: Vec<Dimension>,
    /// Rows of the breakdown: the busiest N (by arrivals), the others summed in one
    /// `(other)` row (default: every row).
    #[arg(long)]
    rows: Option<usize>,
    /// Stop at the first malformed record, with a non-zero exit.
    #[arg(long)]
    strict: bool,
    /// Only contacts of this channel.
    #[arg(long)]
    channel: Option<String>,
    /// Only contacts of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only contacts of this contact reason.
    #[arg(long)]
    reason: Option<String>,
    /// Only contacts of this customer segment.
    #[arg(long)]
    segment: Option<String>,
    /// Only contacts of this site.
    #[arg(long)]
    site: Option<String>,
    /// With --format connect: a JSON object naming queues by ARN
    /// (`{"arn:aws:connect:…/queue/…": "billing"}`); unnamed queues show their id.
    #[arg(long)]
    queue_names: Option<PathBuf>,
    /// Indent the JSON output.
    #[arg(long)]
    pretty: bool,
    /// Worker threads for jsonl and proto (default: one per core). Events are split
    /// among them by key (`customer_id`, else `interaction_id`) as among Kafka
    /// partitions, so the result is `vigie serve`'s for a topic of that many partitions.
    #[arg(long)]
    threads: Option<std::num::NonZeroUsize>,
}

/// What `vigie replay` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Jsonl,
    Proto,
    Asterisk,
    Connect,
}

/// At most this many rejected records are listed on stderr; the rest are counted.
const MAX_REPORTED_REJECTIONS: u64 = 100;

pub fn run(settings: &Settings, args: ReplayArgs) -> Result<()> {
    let mut engine_config = vigie::engine::EngineConfig::from_settings(&settings.engine)?;
    // Each engine of a replay has one writer and no reader until the end: one shard
    // (lock striping would only multiply the buckets to make, find and drop).
    engine_config.shards = 1;
    let engines = EngineSet::new(engine_config);
    let threads = match args.format {
        InputFormat::Jsonl | InputFormat::Proto => args
            .threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, std::num::NonZeroUsize::get),
        // The connectors rebuild calls in order: one engine.
        InputFormat::Asterisk | InputFormat::Connect => 1,
    };
    let workers = replay_engines(&engines, threads);
    let engine = &workers[0];
    // Sent to the replay's worker threads (standard input is locked per read).
    let mut newest_ts = None;
    let input: Box<dyn Read + Send> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        let open =
            || File::open(&args.input).with_context(|| format!("opening {}", args.input.display()));
        let mut file = open()?;
        // A regular file's end can be read first (not a pipe's).
        if args.format == InputFormat::Jsonl && file.metadata().is_ok_and(|m| m.is_file()) {
            // Only a saving: a file whose end cannot be read is replayed without it, from
            // its start (opened again: where the failed read left it is unknown).
            match newest_time_in_tail(&mut file, Format::Jsonl) {
                Ok(newest) => newest_ts = newest,
                Err(e) => {
                    eprintln!("warning: reading the end of {}: {e}", args.input.display());
                    file = open()?;
                }
            }
        }
        Box::new(file)
    };
    let filter = DimensionFilter::from_key(vigie_proto::DimensionKey {
        channel: args.channel,
        queue: args.queue,
        reason: args.reason,
        segment: args.segment,
        site: args.site,
    });
    let query = SnapshotQuery {
        window: args.window,
        filter,
        // `by_channel` is always there; a breakdown is only worth it for finer groupings.
        breakdown: if args.by == [Dimension::Channel] {
            Vec::new()
        } else {
            args.by
        },
        rows: args.rows.unwrap_or(usize::MAX).max(1),
        agent_list: false,
    };
    // Refuse a bad window before reading a large file.
    engines.snapshot(&query)?;

    let started = Instant::now();
    let format = match args.format {
        InputFormat::Jsonl => Format::Jsonl,
        InputFormat::Proto => Format::Proto,
        InputFormat::Asterisk => {
            let report = vigie::connector::asterisk::read_queue_log(
                BufReader::with_capacity(1 << 20, input),
                args.strict,
                |ev| {
                    engine.apply(&ev);
                },
            )?;
            report_queue_log(&report, started.elapsed());
            return print_snapshot(&engines, &query, args.pretty);
        }
        InputFormat::Connect => {
            let names = queue_names(args.queue_names.as_deref())?;
            let input = BufReader::with_capacity(1 << 20, input);
            let report =
                vigie::connector::connect::read_connect(input, names, args.strict, |ev| {
                    engine.apply(&ev);
                })?;
            eprintln!("{report}");
            return print_snapshot(&engines, &query, args.pretty);
        }
    };
    let position = if format == Format::Jsonl {
        "line"
    } else {
        "message"
    };
    let mut reported = 0u64;
    let options = ReplayOptions {
        format,
        strict: args.strict,
        newest_ts,
    };
    let result = replay(&workers, input, options, |r| {
        reported += 1;
        if reported <= MAX_REPORTED_REJECTIONS {
            eprintln!("{position} {}: rejected: {}", r.position, r.error);
        }
    });
    let counts = match result {
        Ok(counts) => counts,
        Err(ReplayError::Strict(r)) => {
            anyhow::bail!("--strict: {position} {}: {}", r.position, r.error)
        }
        Err(e) => return Err(e.into()),
    };
    let elapsed = started.elapsed();
    // The engines were told the time read at the file's end: a file cut while it was
    // replayed (a log rotated by truncation) never reached it, and the windows reaching
    // before it would miss the aggregates left out.
    if let Some(newest) = newest_ts.filter(|n| engines.watermark() < Some(*n)) {
        anyhow::bail!(
            "{} changed while it was replayed: its end held an event at {}, which the \
             replay never reached; replay it again (or from standard input: `vigie replay - < FILE`)",
            args.input.display(),
            vigie::event::format_rfc3339_ms(newest)
        );
    }
    if counts.rejected > MAX_REPORTED_REJECTIONS {
        eprintln!("... {} rejected records in all", counts.rejected);
    }
    if counts.split_customers > 0 {
        eprintln!(
            "warning: {} events named a customer only after a step of their interaction \
             without one: those customers' repeats may differ from --threads 1",
            counts.split_customers
        );
    }
    tracing::info!(
        records = counts.records,
        applied = counts.applied,
        late = counts.late,
        duplicates = counts.duplicates,
        rejected = counts.rejected,
        threads,
        seconds = elapsed.as_secs_f64(),
        events_per_second = (counts.records as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        "replay done"
    );
    print_snapshot(&engines, &query, args.pretty)
}

/// The queue names of `--queue-names` (ARN → name), if given.
pub fn queue_names(
    path: Option<&std::path::Path>,
) -> Result<std::collections::HashMap<String, String>> {
    let Some(path) = path else {
        return Ok(Default::default());
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: expected a JSON object of queue ARN → name (e.g. {{\"arn:aws:connect:…/queue/…\": \"billing\"}})",
            path.display()
        )
    })
}

/// What became of a queue_log's lines, on stderr (the snapshot goes to stdout).
fn report_queue_log(r: &vigie::connector::ConvertReport, elapsed: std::time::Duration) {
    eprintln!("{r}");
    tracing::info!(
        lines = r.lines,
        seconds = elapsed.as_secs_f64(),
        lines_per_second = (r.lines as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        "replay done"
    );
}

fn print_snapshot(engines: &EngineSet, query: &SnapshotQuery, pretty: bool) -> Result<()> {
    let snapshot = engines.snapshot(query)?;
    let mut out = BufWriter::new(io::stdout().lock());
    if pretty {
        serde_json::to_writer_pretty(&mut out, &snapshot)?;
    } else {
        serde_json::to_writer(&mut out, &snapshot)?;
    }
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
