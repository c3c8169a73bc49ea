//! `vigie serve`: the production entry point — Kafka consumer, engine, HTTP API.

use anyhow::{Context, Result};
use clap::Args;
use std::sync::Arc;
use vigie::config::Settings;

use super::{report_progress, run_pipeline, shutdown_on_signal, PipelineParts};

#[derive(Args, Debug)]
pub struct ServeArgs {
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

pub fn run(settings: Settings, args: ServeArgs) -> Result<()> {
    let mut kafka = settings.kafka.clone();
    if let Some(brokers) = args.brokers {
        kafka.brokers = brokers;
    }
    if let Some(topic) = args.topic {
        kafka.topic = topic;
    }
    let engines = Arc::new(vigie::engine::EngineSet::new(
        vigie::engine::EngineConfig::from_settings(&settings.engine)?,
    ));
    let status = Arc::new(vigie::status::InstanceStatus::default());
    let alerts = vigie::alert::AlertService::new(&settings, engines.clone(), status.clone())?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        let reporter = tokio::spawn(report_progress(status.clone(), shutdown.clone()));
        let result = run_pipeline(
            &kafka,
            &settings,
            args.listen,
            PipelineParts {
                engines,
                status,
                alerts,
                switches: None,
            },
            shutdown,
        )
        .await;
        let _ = reporter.await;
        result
    })
}
