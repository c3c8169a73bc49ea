//! `vigie demo`: the whole path with nothing installed, on librdkafka's mock cluster.

use anyhow::{Context, Result};
use clap::Args;
use vigie::config::Settings;
use vigie::engine::{SnapshotQuery, WindowSpec};
use vigie::event::Format;
use vigie::ingest::produce::Pace;
use vigie::simulate::{Scenario, SimulationConfig, Simulator};

use super::{cancel_after, run_pipeline, shutdown_on_signal, PipelineParts};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Simulated contacts per second (at an arrival factor of 1: the centre's curve
    /// makes it vary over the day).
    #[arg(long, default_value_t = 5.0)]
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
    /// Simulated past traffic produced first and replayed, so that the wall opens full,
    /// with last-hour sparklines, instead of filling up for an hour (0s: start empty).
    #[arg(long, default_value = "2h")]
    history: humantime::Duration,
    /// When the story's phone billing surge starts, from the start of the history
    /// (default: three minutes after the demo starts).
    #[arg(long)]
    surge_after: Option<humantime::Duration>,
}

pub fn run(mut settings: Settings, args: DemoArgs) -> Result<()> {
    use rdkafka::mocking::MockCluster;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    anyhow::ensure!(
        args.rate > 0.0,
        "--rate must be above 0 contacts per second"
    );
    // The demo runs on this machine with nothing to set up: open, unless the config
    // asked for authentication (loopback only either way, unless authenticated).
    settings.auth.open = !settings.auth.enabled();
    // The story's flow: the autopilot proposes the billing deflection on the switchboard.
    if settings.autopilot.rules.is_empty() {
        settings.autopilot.rules.push(demo_autopilot_rule());
    }
    let mut kafka = settings.kafka.clone();
    kafka.check_existing_topics = false; // the mock cluster does not describe topics
                                         // The mock cluster cannot seek by time; its topic holds exactly the demo's history.
    kafka.rebuild_from_earliest = true;
    let history_ms = i64::try_from(args.history.as_millis()).unwrap_or(i64::MAX);
    // librdkafka's in-process mock cluster: the real client code paths, no broker to install.
    let cluster = MockCluster::new(1).context("starting the in-process Kafka cluster")?;
    let partitions = partitions_for(args.rate, args.history.into());
    if partitions == MAX_PARTITIONS {
        tracing::warn!(
            rate = args.rate,
            history = %args.history,
            "more history than the in-process cluster holds: the oldest is dropped"
        );
    }
    cluster
        .create_topic(&kafka.topic, partitions, 1)
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
    let engines = Arc::new(vigie::engine::EngineSet::new(
        vigie::engine::EngineConfig::from_settings(&settings.engine)?,
    ));
    let status = Arc::new(vigie::status::InstanceStatus::default());
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
        let now = jiff::Timestamp::now().as_millisecond();
        // The pipeline serves this store too: one follower of the switches per process.
        let switches = vigie::deflection::SwitchStore::start(&kafka, shutdown.clone())
            .await
            .context("loading the deflection switches")?;
        let sim = Simulator::new(SimulationConfig {
            seed: 42,
            contacts: None,
            // Events dated before now are produced at once (the history), the rest live.
            start_ms: now.saturating_sub(history_ms),
            contacts_per_second: args.rate,
            scenario: demo_scenario(
                args.surge_after
                    .map_or(args.history.into(), Into::into),
                args.surge_after.is_none(),
            ),
            clock_shift_ms: clock_shift(now),
            // A flip on the switchboard deflects the next contacts of its scope.
            switches: Some(super::simulate::switch_view(&switches)),
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
                    Format::Proto,
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
                        // Shutdown first: no frame once the demo is stopping.
                        biased;
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
            "Vigie demo: in-process Kafka at {}, {} contacts/s ({} of history first), window {}; Ctrl-C to stop.\n\
             Cockpit: wall http://{listen}/wall, switchboard http://{listen}/switchboard",
            kafka.brokers,
            args.rate,
            args.history,
            args.window,
            listen = args.listen
        );
        let result = run_pipeline(
            &kafka,
            &settings,
            args.listen,
            PipelineParts {
                engines,
                status,
                alerts,
                switches: Some(switches),
            },
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

/// The demo's story: the default centre, whose phone billing surge starts at `after`
/// (plus three minutes when `later`: after the history, the newcomer first sees a centre
/// that copes), for an hour and a half.
fn demo_scenario(after: std::time::Duration, later: bool) -> Scenario {
    let mut scenario = Scenario::default();
    for surge in &mut scenario.surges {
        surge.after = after + std::time::Duration::from_secs(if later { 180 } else { 0 });
    }
    scenario
}

/// The demo's autopilot rule (propose mode): phone · billing → visual IVR when the phone's
/// service level over 5 minutes stays under 60 % for a minute, and deflecting billing
/// is projected to bring it to 70 %.
fn demo_autopilot_rule() -> vigie::config::AutopilotRuleSettings {
    use std::time::Duration;
    vigie::config::AutopilotRuleSettings {
        name: "phone-billing-surge".into(),
        mode: vigie_proto::AutopilotMode::Propose,
        channel: "phone".into(),
        reason: Some("billing".into()),
        segment: None,
        queue: None,
        target: vigie_proto::DeflectionTarget::VisualIvr,
        kpi: vigie_proto::Kpi::ServiceLevel,
        comparison: vigie_proto::Comparison::Below,
        threshold: vigie::config::Threshold::Number(0.6),
        clear: vigie::config::Threshold::Number(0.75),
        window: "5m".into(),
        for_: Duration::from_secs(60),
        clear_for: Duration::from_secs(300),
        min_projected: Some(0.7),
        expires_in: Duration::from_secs(45 * 60),
        cooldown: Duration::from_secs(15 * 60),
        max_flips_per_hour: 2,
        min_volume: 20,
        sinks: None,
    }
}

/// Shifts the centre's clock so that now is 11:00 on its arrival curve: the demo opens
/// on a busy late morning, whatever the hour it runs.
fn clock_shift(now_ms: i64) -> i64 {
    let day = 86_400_000;
    (11 * 3_600_000 - now_ms.rem_euclid(day)).rem_euclid(day)
}

/// The most partitions the demo's topic gets.
const MAX_PARTITIONS: i32 = 64;

/// Partitions enough to hold `history` at `rate` contacts per second: librdkafka's mock
/// cluster keeps at most 5 MB per partition and drops older record batches (seen as a
/// wall whose first 20 minutes of sparkline were empty). A contact makes about 5.8
/// records (its own and its agent's) of about 130 bytes; 4 MB a partition leaves room.
fn partitions_for(rate: f64, history: std::time::Duration) -> i32 {
    let bytes = rate * history.as_secs_f64() * 5.8 * 130.0;
    ((bytes / 4.0e6).ceil() as i32).clamp(4, MAX_PARTITIONS)
}

/// One line per channel: the headline KPIs of the window.
fn print_summary(s: &vigie_proto::Snapshot, status: &vigie::status::InstanceStatus, consumed: u64) {
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
        "{:<11} {:>8} {:>7} {:>7} {:>7} {:>6} {:>9} {:>7} {:>6} {:>6}",
        "channel", "arrivals", "answer", "SL", "ASA", "queue", "repeat", "agents", "free", "occ"
    );
    for (name, k) in std::iter::once(("TOTAL", &s.total))
        .chain(s.by_channel.iter().map(|(n, k)| (n.as_str(), k)))
    {
        let staffed = k.staffing.as_ref().map_or(0, |s| s.staffed);
        let free = k.staffing.as_ref().map_or(0, |s| s.available);
        println!(
            "{:<11} {:>8} {:>7} {:>7} {:>7} {:>6} {:>9} {:>7} {:>6} {:>6}",
            name,
            k.arrivals,
            pct(k.answer_rate),
            pct(k.service_level),
            secs(k.asa_ms),
            k.in_queue,
            pct(k.repeat_rate),
            staffed,
            free,
            pct(k.occupancy)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_topic_holds_the_history() {
        let hours = |h: u64| Duration::from_secs(h * 3_600);
        assert_eq!(partitions_for(20.0, hours(0)), 4, "at least 4");
        // 20 contacts/s for 2 h: about 109 MB of records.
        assert_eq!(partitions_for(20.0, hours(2)), 28);
        assert_eq!(partitions_for(1_000.0, hours(2)), MAX_PARTITIONS);
    }
}
