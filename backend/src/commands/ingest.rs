//! `vigie ingest <source>`: bridges from an ACD to the events topic (Asterisk's
//! queue_log, Amazon Connect's records on a Kafka topic).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vigie::config::Settings;
use vigie::connector::bridge::{follow_queue_log, BridgeOptions};
use vigie::event::Format;

use super::shutdown_on_signal;

#[derive(Args, Debug)]
pub struct IngestArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Subcommand, Debug)]
enum Source {
    /// Follow an Asterisk queue_log (like `tail -F`: rotation, truncation, position kept
    /// across restarts) and produce its calls and agent states to Kafka.
    Asterisk(AsteriskArgs),
    /// Read Amazon Connect's contact events and agent events from the Kafka topic an
    /// EventBridge or Kinesis connector writes them to, and produce their events.
    Connect(ConnectArgs),
}

#[derive(Args, Debug)]
struct ConnectArgs {
    /// The topic Connect's records arrive on (EventBridge events, their `detail`, or
    /// agent events; one JSON record, or an array, per message).
    #[arg(long)]
    from_topic: String,
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Kafka topic of the events (overrides kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// Consumer group of the bridge (its committed offsets are its position).
    #[arg(long, default_value = "vigie-connect-bridge")]
    group: String,
    /// A JSON object naming queues by ARN; unnamed queues show their id (or the name
    /// agents' routing profiles give).
    #[arg(long)]
    queue_names: Option<PathBuf>,
    /// Encoding of the records produced: jsonl or proto.
    #[arg(long, default_value = "jsonl")]
    format: Format,
    /// Stop once caught up with the topic (a backfill).
    #[arg(long)]
    once: bool,
}

#[derive(Args, Debug)]
struct AsteriskArgs {
    /// The queue_log file (e.g. /var/log/asterisk/queue_log).
    #[arg(long)]
    queue_log: PathBuf,
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Kafka topic (overrides kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// Where the position is kept (default: `<queue-log>.vigie-position`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Encoding of the records produced: jsonl or proto.
    #[arg(long, default_value = "jsonl")]
    format: Format,
    /// How often the file is looked at once read to its end.
    #[arg(long, default_value = "250ms")]
    poll: humantime::Duration,
    /// Stop at the first refused line, with a non-zero exit.
    #[arg(long)]
    strict: bool,
    /// Read the file to its end and stop (a backfill) instead of following it.
    #[arg(long)]
    once: bool,
}

pub fn run(settings: &Settings, args: IngestArgs) -> Result<()> {
    let args = match args.source {
        Source::Asterisk(args) => args,
        Source::Connect(args) => return run_connect(settings, args),
    };
    let mut kafka = settings.kafka.clone();
    if let Some(brokers) = args.brokers {
        kafka.brokers = brokers;
    }
    let options = BridgeOptions {
        state: args.state.unwrap_or_else(|| {
            let mut name = args.queue_log.clone().into_os_string();
            name.push(".vigie-position");
            PathBuf::from(name)
        }),
        queue_log: args.queue_log,
        topic: args.topic.unwrap_or_else(|| kafka.topic.clone()),
        format: args.format,
        poll: args.poll.into(),
        strict: args.strict,
        once: args.once,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        tracing::info!(queue_log = %options.queue_log.display(), topic = %options.topic, brokers = %kafka.brokers, "following the queue_log");
        let report = follow_queue_log(&kafka, &options, shutdown).await?;
        eprintln!("{report}");
        Ok(())
    })
}

fn run_connect(settings: &Settings, args: ConnectArgs) -> Result<()> {
    let mut kafka = settings.kafka.clone();
    if let Some(brokers) = args.brokers {
        kafka.brokers = brokers;
    }
    let options = vigie::connector::bridge::ConnectBridgeOptions {
        topic: args.topic.unwrap_or_else(|| kafka.topic.clone()),
        from_topic: args.from_topic,
        group: args.group,
        format: args.format,
        queue_names: super::replay::queue_names(args.queue_names.as_deref())?,
        once: args.once,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        tracing::info!(from = %options.from_topic, topic = %options.topic, brokers = %kafka.brokers, "bridging Amazon Connect");
        let report =
            vigie::connector::bridge::follow_connect_topic(&kafka, &options, shutdown).await?;
        eprintln!("{report}");
        Ok(())
    })
}
