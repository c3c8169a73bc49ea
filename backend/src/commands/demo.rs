//! `vigie demo`: the whole path with nothing installed, on librdkafka's mock cluster.

use anyhow::{Context, Result};
use clap::Args;
use vigie::config::Settings;
use vigie::engine::{SnapshotQuery, WindowSpec};
use vigie::ingest::produce::Pace;
use vigie::replay::InputFormat;
use vigie::simulate::{SimulationConfig, Simulator};

use super::{cancel_after, run_pipeline, shutdown_on_signal};

#[derive(Args, Debug)]
pub struct DemoArgs {
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

pub fn run(settings: Settings, args: DemoArgs) -> Result<()> {
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
    // The mock cluster does not implement topic creation by the admin API.
    for topic in [&kafka.switches_topic, &kafka.audit_topic] {
        cluster
            .create_topic(topic, 1, 1)
            .context("creating the switch topics")?;
    }
    kafka.brokers = cluster.bootstrap_servers();
    let engines = Arc::new(vigie::engine::EngineSet::new(settings.engine_config()?));
    let status = Arc::new(vigie::ingest::IngestStatus::default());
    let alerts = vigie::alert::AlertService::new(&settings, engines.clone(), status.clone())?;
    let query = SnapshotQuery {
        window: args.window,
        ..SnapshotQuery::default()
    };
    engines.snapshot(&query)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = shutdown_on_signal();
        cancel_after(args.duration.map(Into::into), &shutdown);
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
            "Vigie demo: in-process Kafka at {}, {} contacts/s, window {}; Ctrl-C to stop.\n\
             Cockpit: wall http://{listen}/wall, switchboard http://{listen}/switchboard",
            kafka.brokers,
            args.rate,
            args.window,
            listen = args.listen
        );
        let result = run_pipeline(
            &kafka,
            &settings,
            args.listen,
            engines,
            status,
            alerts,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        let _ = printer.await;
        let produced = producer
            .await
            .context("producer task")?
            .context("producing to the demo cluster")?;
        result?;
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
