//! `vigie simulate`: realistic traffic, to a file or live to Kafka.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vigie::config::Settings;
use vigie::event::parse_rfc3339_ms;
use vigie::event::write_events;
use vigie::event::Format;
use vigie::ingest::produce::Pace;
use vigie::simulate::{Scenario, SimulationConfig, Simulator, SwitchView};

use super::{cancel_after, shutdown_on_signal};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["output", "brokers"])))]
pub struct SimulateArgs {
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
    format: Format,
    /// Mean contacts per second, in event time (with --brokers, also in wall-clock time).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Event time of the first contact (RFC 3339); with --brokers, default: now.
    #[arg(long)]
    start: Option<String>,
    /// The centre to simulate (TOML: queues, teams, arrival curve, surges); default: a
    /// mid-size omnichannel centre (see the README).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Leave the agents' `agent_state` events out (contacts only; the centre is still
    /// simulated with its agents).
    #[arg(long)]
    no_agent_events: bool,
}

pub fn run(settings: &Settings, args: SimulateArgs) -> Result<()> {
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
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path)
            .with_context(|| format!("reading the scenario {}", path.display()))?,
        None => Scenario::default(),
    };
    let cfg = SimulationConfig {
        seed: args.seed,
        contacts,
        start_ms,
        contacts_per_second: args.rate,
        scenario,
        agent_events: !args.no_agent_events,
        ..SimulationConfig::default()
    };
    if let Some(brokers) = args.brokers {
        let mut kafka = settings.kafka.clone();
        kafka.brokers = brokers;
        let topic = args.topic.unwrap_or_else(|| kafka.topic.clone());
        return produce_live(
            kafka,
            topic,
            cfg,
            args.format,
            args.rate,
            args.duration.map(Into::into),
        );
    }
    let sim = Simulator::new(cfg);
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

/// Produces simulated traffic in real time: events are sent when their event time comes;
/// the switches that are on deflect the next contacts of their scope.
fn produce_live(
    kafka: vigie::config::KafkaSettings,
    topic: String,
    mut cfg: SimulationConfig,
    format: Format,
    rate: f64,
    duration: Option<std::time::Duration>,
) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        cancel_after(duration, &shutdown);
        cfg.switches = follow_switches(&kafka, &shutdown).await;
        let sim = Simulator::new(cfg);
        tracing::info!(%topic, brokers = %kafka.brokers, contacts_per_second = rate, "producing simulated traffic");
        let sent = vigie::ingest::produce::produce(&kafka, &topic, sim, format, Pace::EventTime, shutdown)
            .await
            .context("producing to Kafka")?;
        tracing::info!(events = sent, "simulated traffic produced");
        Ok(())
    })
}

/// What the simulator reads of `store`: its switches as they are now.
pub(super) fn switch_view(store: &vigie::deflection::SwitchStore) -> SwitchView {
    let changes = store.subscribe();
    std::sync::Arc::new(move || changes.borrow().clone())
}

/// The switches of the cluster as they change, for the simulator; `None` (no deflection
/// by switch) if they cannot be read.
pub(super) async fn follow_switches(
    kafka: &vigie::config::KafkaSettings,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<SwitchView> {
    match vigie::deflection::SwitchStore::start(kafka, shutdown.clone()).await {
        Ok(store) => Some(switch_view(&store)),
        Err(e) => {
            tracing::warn!(error = %e, "the deflection switches cannot be read: the simulation ignores them");
            None
        }
    }
}
