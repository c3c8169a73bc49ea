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
use vigie::ingest::produce::Pace;
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
    /// Write a realistic simulated stream of interaction events, to a file or to Kafka.
    Simulate(SimulateArgs),
    /// Consume interaction events from Kafka into the engine (rebuilding state first).
    Serve(ServeArgs),
    /// The whole path with nothing installed: an in-process Kafka cluster, the simulator
    /// producing live traffic into it, the consumer and the engine; prints the KPIs.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Simulated contacts per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Window of the KPIs printed.
    #[arg(long, default_value = "15m")]
    window: WindowSpec,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<humantime::Duration>,
    /// Seconds between two printed snapshots.
    #[arg(long, default_value_t = 5)]
    every: u64,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Topic of interaction events (overrides kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// Address of the HTTP API (port 0 picks a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
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
#[command(group(clap::ArgGroup::new("sink").required(true).args(["output", "brokers"])))]
struct SimulateArgs {
    /// Where to write the stream (`-` for standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Produce to Kafka instead (bootstrap servers), keyed by customer_id else interaction_id.
    #[arg(long)]
    brokers: Option<String>,
    /// Kafka topic (overrides kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// With --brokers: stop after this long (e.g. 10m); default: when the contacts run out.
    #[arg(long)]
    duration: Option<humantime::Duration>,
    /// Number of contacts (each gives 2 to 4 events, plus redeliveries); with --brokers
    /// and --duration, endless unless given.
    #[arg(long)]
    contacts: Option<u64>,
    /// Random seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output encoding: jsonl or proto.
    #[arg(long, default_value = "jsonl")]
    format: InputFormat,
    /// Mean contacts per second, in event time (with --brokers, also in wall-clock time).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Event time of the first contact (RFC 3339); with --brokers, default: now.
    #[arg(long)]
    start: Option<String>,
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
        Command::Simulate(args) => run_simulate(&settings, args),
        Command::Serve(args) => run_serve(settings, args),
        Command::Demo(args) => run_demo(settings, args),
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

fn run_simulate(settings: &Settings, args: SimulateArgs) -> Result<()> {
    anyhow::ensure!(
        args.rate > 0.0,
        "--rate must be above 0 contacts per second"
    );
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let start_ms = match &args.start {
        Some(start) => parse_rfc3339_ms(start).context("--start")?,
        None if args.brokers.is_some() => now_ms,
        None => parse_rfc3339_ms("2026-11-25T08:00:00Z").context("default start")?,
    };
    let contacts = match (args.contacts, &args.brokers, args.duration) {
        (Some(n), _, _) => Some(n),
        (None, Some(_), Some(_)) => None,
        (None, _, _) => Some(10_000),
    };
    let sim = Simulator::new(SimulationConfig {
        seed: args.seed,
        contacts,
        start_ms,
        contacts_per_second: args.rate,
        ..SimulationConfig::default()
    });
    if let Some(brokers) = args.brokers {
        let mut kafka = settings.kafka.clone();
        kafka.brokers = brokers;
        let topic = args.topic.unwrap_or_else(|| kafka.topic.clone());
        return produce_live(
            kafka,
            topic,
            sim,
            args.format,
            args.rate,
            args.duration.map(Into::into),
        );
    }
    let output = args.output.context("--output or --brokers is required")?;
    let written = if output.as_os_str() == "-" {
        write_events(sim, args.format, &mut BufWriter::new(io::stdout().lock()))?
    } else {
        let file =
            File::create(&output).with_context(|| format!("creating {}", output.display()))?;
        write_events(
            sim,
            args.format,
            &mut BufWriter::with_capacity(1 << 20, file),
        )?
    };
    tracing::info!(events = written, output = %output.display(), "simulated stream written");
    Ok(())
}

/// Produces simulated traffic in real time: events are sent when their event time comes.
fn produce_live(
    kafka: vigie::config::KafkaSettings,
    topic: String,
    sim: Simulator,
    format: InputFormat,
    rate: f64,
    duration: Option<std::time::Duration>,
) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        if let Some(duration) = duration {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                stop.cancel();
            });
        }
        tracing::info!(%topic, brokers = %kafka.brokers, contacts_per_second = rate, "producing simulated traffic");
        let sent = vigie::ingest::produce::produce(&kafka, &topic, sim, format, Pace::EventTime, shutdown)
            .await
            .context("producing to Kafka")?;
        tracing::info!(events = sent, "simulated traffic produced");
        Ok(())
    })
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

fn run_serve(settings: Settings, args: ServeArgs) -> Result<()> {
    let mut kafka = settings.kafka.clone();
    if let Some(brokers) = args.brokers {
        kafka.brokers = brokers;
    }
    if let Some(topic) = args.topic {
        kafka.topic = topic;
    }
    let engines = std::sync::Arc::new(vigie::engine::EngineSet::new(settings.engine_config()?));
    let status = std::sync::Arc::new(vigie::ingest::IngestStatus::default());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        let reporter = tokio::spawn(report_progress(status.clone(), shutdown.clone()));
        let http = start_http(
            args.listen,
            engines.clone(),
            status.clone(),
            shutdown.clone(),
        )
        .await?;
        let consumed = vigie::ingest::run_consumer(&kafka, engines, status, shutdown.clone()).await;
        shutdown.cancel();
        let _ = reporter.await;
        http.await
            .context("HTTP server task")?
            .context("HTTP server")?;
        consumed.context("Kafka consumer")?;
        Ok(())
    })
}

/// Binds the API (loopback only: no authentication exists yet) and serves it until `shutdown`.
async fn start_http(
    listen: std::net::SocketAddr,
    engines: std::sync::Arc<vigie::engine::EngineSet>,
    status: std::sync::Arc<vigie::ingest::IngestStatus>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    vigie::server::check_listen_address(listen, false).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the HTTP API to {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, "HTTP API listening (no authentication: loopback only)");
    eprintln!("listening on http://{addr}");
    let state = vigie::server::AppState::new(engines, status, shutdown);
    Ok(tokio::spawn(vigie::server::serve(listener, state)))
}

fn run_demo(settings: Settings, args: DemoArgs) -> Result<()> {
    use rdkafka::mocking::MockCluster;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    anyhow::ensure!(
        args.rate > 0.0,
        "--rate must be above 0 contacts per second"
    );
    let mut kafka = settings.kafka.clone();
    // librdkafka's in-process mock cluster: the real client code paths, no broker to install.
    let cluster = MockCluster::new(1).context("starting the in-process Kafka cluster")?;
    cluster
        .create_topic(&kafka.topic, 4, 1)
        .context("creating the topic")?;
    cluster
        .create_topic(&kafka.dlq_topic, 1, 1)
        .context("creating the dead-letter topic")?;
    kafka.brokers = cluster.bootstrap_servers();
    let engines = Arc::new(vigie::engine::EngineSet::new(settings.engine_config()?));
    let status = Arc::new(vigie::ingest::IngestStatus::default());
    let query = SnapshotQuery {
        window: args.window,
        ..SnapshotQuery::default()
    };
    engines.snapshot(&query)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        if let Some(duration) = args.duration {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(duration.into()).await;
                stop.cancel();
            });
        }
        let sim = Simulator::new(SimulationConfig {
            seed: 42,
            contacts: None,
            start_ms: jiff::Timestamp::now().as_millisecond(),
            contacts_per_second: args.rate,
            ..SimulationConfig::default()
        });
        let producer = {
            let (kafka, shutdown) = (kafka.clone(), shutdown.clone());
            tokio::spawn(async move {
                let topic = kafka.topic.clone();
                vigie::ingest::produce::produce(
                    &kafka,
                    &topic,
                    sim,
                    InputFormat::Proto,
                    Pace::EventTime,
                    shutdown,
                )
                .await
            })
        };
        let printer = {
            let (engines, status, shutdown) = (engines.clone(), status.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(std::time::Duration::from_secs(args.every.max(1)));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    if let Ok(snapshot) = engines.snapshot(&query) {
                        print_summary(&snapshot, &status, status.consumed.load(Relaxed));
                    }
                }
            })
        };
        println!(
            "Vigie demo: in-process Kafka at {}, {} contacts/s, window {}; Ctrl-C to stop.",
            kafka.brokers, args.rate, args.window
        );
        let http = start_http(
            args.listen,
            engines.clone(),
            status.clone(),
            shutdown.clone(),
        )
        .await?;
        let consumed = vigie::ingest::run_consumer(&kafka, engines, status, shutdown.clone()).await;
        shutdown.cancel();
        let _ = printer.await;
        http.await
            .context("HTTP server task")?
            .context("HTTP server")?;
        let produced = producer
            .await
            .context("producer task")?
            .context("producing to the demo cluster")?;
        consumed.context("Kafka consumer")?;
        tracing::info!(produced, "demo stopped");
        Ok(())
    });
    drop(cluster);
    result
}

/// One line per channel: the headline KPIs of the window.
fn print_summary(s: &vigie_proto::Snapshot, status: &vigie::ingest::IngestStatus, consumed: u64) {
    let pct = |x: Option<f64>| x.map_or("   -  ".to_string(), |v| format!("{:5.1}%", v * 100.0));
    let secs = |x: Option<f64>| x.map_or("    - ".to_string(), |v| format!("{:5.0}s", v / 1000.0));
    let state = match status.rebuild_progress() {
        Some(p) => format!("rebuilding {:.0} %", p * 100.0),
        None if status.is_stale() => "stale".to_string(),
        None => "live".to_string(),
    };
    println!(
        "\n[{state}] events consumed {consumed}, watermark {}",
        s.watermark
            .map_or("-".into(), vigie::event::format_rfc3339_ms)
    );
    println!(
        "{:<11} {:>8} {:>7} {:>7} {:>7} {:>6} {:>9}",
        "channel", "arrivals", "answer", "SL", "ASA", "queue", "repeat"
    );
    for (name, k) in std::iter::once(("TOTAL", &s.total))
        .chain(s.by_channel.iter().map(|(n, k)| (n.as_str(), k)))
    {
        println!(
            "{:<11} {:>8} {:>7} {:>7} {:>7} {:>6} {:>9}",
            name,
            k.arrivals,
            pct(k.answer_rate),
            pct(k.service_level),
            secs(k.asa_ms),
            k.in_queue,
            pct(k.repeat_rate)
        );
    }
}

/// Rebuild progress: a progress bar on a terminal, else a log line every 5 s; then
/// one line every 5 s when live.
async fn report_progress(
    status: std::sync::Arc<vigie::ingest::IngestStatus>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use std::io::IsTerminal;
    use std::sync::atomic::Ordering::Relaxed;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(1000);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("rebuilding [{bar:40}] {percent:>3}% {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut last_log = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let consumed = status.consumed.load(Relaxed);
        let progress = status.rebuild_progress();
        if let Some(bar) = &bar {
            match progress {
                Some(p) => {
                    bar.set_position((p * 1000.0) as u64);
                    bar.set_message(format!("{consumed} events"));
                }
                None if !bar.is_finished() && status.is_ready() => {
                    bar.finish_with_message(format!("{consumed} events: live"));
                }
                None => {}
            }
        }
        if last_log.elapsed() >= std::time::Duration::from_secs(5) {
            last_log = tokio::time::Instant::now();
            match progress {
                Some(p) => tracing::info!(
                    progress = format!("{:.0} %", p * 100.0),
                    consumed,
                    "rebuilding"
                ),
                None => tracing::info!(
                    consumed,
                    dead_lettered = status.dead_lettered.load(Relaxed),
                    stale = status.is_stale(),
                    "live"
                ),
            }
        }
    }
}
