//! The `vigie` binary: parses the command line and the configuration, then wires
//! library pieces together. Everything it calls is a library function.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use vigie::config::Settings;
use vigie::engine::{Dimension, DimensionFilter, Engine, SnapshotQuery, WindowSpec};
use vigie::event::parse_rfc3339_ms;
use vigie::replay::{replay, InputFormat, ReplayError};
use vigie::simulate::{write_events, SimulationConfig, Simulator};

#[derive(Parser, Debug)]
#[command(
    name = "vigie",
    version,
    about = "Real-time hypervision of omnichannel customer-service centres"
)]
struct Cli {
    /// TOML configuration file (defaults, then this file, then VIGIE__SECTION__KEY variables).
    #[arg(long, global = true, env = "VIGIE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Feed a recorded stream through the engine and print one KPI snapshot as JSON.
    Replay(ReplayArgs),
    /// Write a realistic simulated stream of interaction events.
    Simulate(SimulateArgs),
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Recorded stream, or `-` for standard input.
    input: PathBuf,
    /// Window length (5m … 24h) or `today` (in engine.time_zone).
    #[arg(long, default_value = "15m")]
    window: WindowSpec,
    /// Input encoding: jsonl or proto (length-delimited messages).
    #[arg(long, default_value = "jsonl")]
    format: InputFormat,
    /// Breakdown beyond total and per channel: comma-separated dimensions among
    /// channel, queue, reason, segment, site (e.g. `channel,queue`).
    #[arg(long, value_delimiter = ',', default_value = "channel")]
    by: Vec<Dimension>,
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
    /// Indent the JSON output.
    #[arg(long)]
    pretty: bool,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Where to write the stream (`-` for standard output).
    #[arg(long, short)]
    output: PathBuf,
    /// Number of contacts (each gives 2 to 4 events, plus redeliveries).
    #[arg(long, default_value_t = 10_000)]
    contacts: u64,
    /// Random seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output encoding: jsonl or proto.
    #[arg(long, default_value = "jsonl")]
    format: InputFormat,
    /// Mean contacts per second, in event time.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Event time of the first contact (RFC 3339).
    #[arg(long, default_value = "2026-11-25T08:00:00Z")]
    start: String,
}

/// At most this many rejected records are listed on stderr; the rest are counted.
const MAX_REPORTED_REJECTIONS: u64 = 100;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    vigie::telemetry::init(&settings.log.filter);
    match cli.command {
        Command::Replay(args) => run_replay(&settings, args),
        Command::Simulate(args) => run_simulate(args),
    }
}

fn run_replay(settings: &Settings, args: ReplayArgs) -> Result<()> {
    let engine = Engine::new(settings.engine_config()?);
    let input: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?,
        )
    };
    let filter = [
        (Dimension::Channel, args.channel),
        (Dimension::Queue, args.queue),
        (Dimension::Reason, args.reason),
        (Dimension::Segment, args.segment),
        (Dimension::Site, args.site),
    ]
    .into_iter()
    .filter_map(|(d, v)| v.map(|v| (d, v)))
    .collect();
    let query = SnapshotQuery {
        window: args.window,
        filter: DimensionFilter(filter),
        // `by_channel` is always there; a breakdown is only worth it for finer groupings.
        breakdown: if args.by == [Dimension::Channel] {
            Vec::new()
        } else {
            args.by
        },
    };
    // Refuse a bad window before reading a large file.
    engine.snapshot(&query)?;

    let started = Instant::now();
    let position = if args.format == InputFormat::Jsonl {
        "line"
    } else {
        "message"
    };
    let mut reported = 0u64;
    let result = replay(
        &engine,
        BufReader::with_capacity(1 << 20, input),
        args.format,
        args.strict,
        |r| {
            reported += 1;
            if reported <= MAX_REPORTED_REJECTIONS {
                eprintln!("{position} {}: rejected: {}", r.position, r.error);
            }
        },
    );
    let counts = match result {
        Ok(counts) => counts,
        Err(ReplayError::Strict(r)) => {
            anyhow::bail!("--strict: {position} {}: {}", r.position, r.error)
        }
        Err(e) => return Err(e.into()),
    };
    let elapsed = started.elapsed();
    if counts.rejected > MAX_REPORTED_REJECTIONS {
        eprintln!("... {} rejected records in all", counts.rejected);
    }
    tracing::info!(
        records = counts.records,
        applied = counts.applied,
        late = counts.late,
        duplicates = counts.duplicates,
        rejected = counts.rejected,
        seconds = elapsed.as_secs_f64(),
        events_per_second = (counts.records as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        "replay done"
    );
    let snapshot = engine.snapshot(&query)?;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.pretty {
        serde_json::to_writer_pretty(&mut out, &snapshot)?;
    } else {
        serde_json::to_writer(&mut out, &snapshot)?;
    }
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn run_simulate(args: SimulateArgs) -> Result<()> {
    let start_ms = parse_rfc3339_ms(&args.start).context("--start")?;
    anyhow::ensure!(
        args.rate > 0.0,
        "--rate must be above 0 contacts per second"
    );
    let sim = Simulator::new(SimulationConfig {
        seed: args.seed,
        contacts: Some(args.contacts),
        start_ms,
        contacts_per_second: args.rate,
        ..SimulationConfig::default()
    });
    let written = if args.output.as_os_str() == "-" {
        write_events(sim, args.format, &mut BufWriter::new(io::stdout().lock()))?
    } else {
        let file = File::create(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        write_events(
            sim,
            args.format,
            &mut BufWriter::with_capacity(1 << 20, file),
        )?
    };
    tracing::info!(events = written, contacts = args.contacts, output = %args.output.display(), "simulated stream written");
    Ok(())
}
