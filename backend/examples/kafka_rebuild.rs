//! Measures the rebuild: events/s from the broker into the engine, and the time to
//! rebuild a 7-day horizon of simulated traffic for a 5,000-agent centre.
//!
//! Run (with a broker up, e.g. `scripts/broker.sh up 19092`):
//! `cargo run --release -p vigie --example kafka_rebuild -- 127.0.0.1:19092 [DAYS] [AGENTS]`
//! (`scripts/bench-kafka.sh` does all of it). Traffic: 60 contacts per agent per day,
//! spread over the days before now; produced once per run into a fresh 6-partition topic.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio_util::sync::CancellationToken;
use vigie::config::KafkaSettings;
use vigie::engine::{EngineConfig, EngineSet, SnapshotQuery};
use vigie::event::Format;
use vigie::ingest::produce::{produce, Pace};
use vigie::ingest::run_consumer;
use vigie::kafka::client_config;
use vigie::simulate::{SimulationConfig, Simulator};
use vigie::status::InstanceStatus;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=info shows the consumer's and the rebuild readers' progress.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let brokers = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:19092".into());
    let days: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(7.0);
    let agents: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5_000.0);
    let contacts_per_day = agents * 60.0;
    let contacts = (contacts_per_day * days) as u64;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let settings = KafkaSettings {
        brokers,
        topic: format!("vigie.bench.{stamp}"),
        dlq_topic: format!("vigie.bench.{stamp}.dlq"),
        group_id: format!("vigie-bench-{stamp}"),
        ..KafkaSettings::default()
    };
    let admin: AdminClient<DefaultClientContext> = client_config(&settings).create()?;
    for topic in [&settings.topic, &settings.dlq_topic] {
        for r in admin
            .create_topics(
                &[NewTopic::new(topic, 6, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await?
        {
            r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
        }
    }

    let now_ms = jiff::Timestamp::now().as_millisecond();
    let sim = Simulator::new(SimulationConfig {
        seed: 5,
        contacts: Some(contacts),
        start_ms: now_ms - (days * 86_400_000.0) as i64,
        contacts_per_second: contacts_per_day / 86_400.0,
        ..SimulationConfig::default()
    });
    println!(
        "producing {contacts} contacts ({days} days × {agents} agents × 60/day) to {}",
        settings.topic
    );
    let started = Instant::now();
    let produced = produce(
        &settings,
        &settings.topic,
        sim,
        Format::Proto,
        Pace::Unbounded,
        CancellationToken::new(),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "produced {produced} events in {secs:.1} s ({:.0} events/s)",
        produced as f64 / secs
    );

    // The same topic rebuilt by the consumer alone (one task), then by 1 to 4
    // rebuild readers (each its own client), each in its own group: the rates side by
    // side, and every view checked equal to the first.
    let cores = vigie::ingest::default_apply_threads();
    let mut views = Vec::new();
    for readers in [0, 1, 2, 3, 4] {
        let settings = KafkaSettings {
            group_id: format!("{}-{readers}", settings.group_id),
            rebuild_readers: readers,
            apply_threads: Some(if readers == 0 { 1 } else { cores }),
            ..settings.clone()
        };
        let (engines, consumed, secs) = rebuild(&settings, produced).await?;
        let how = match readers {
            0 => "the consumer alone (one task)".to_string(),
            n => format!("{n} rebuild reader(s)"),
        };
        println!(
            "rebuilt {days}-day horizon with {how}: {consumed} events in {secs:.1} s ({:.0} events/s from the broker into the engines)",
            consumed as f64 / secs
        );
        let snapshot = engines.snapshot(&SnapshotQuery::default())?;
        if readers == 0 {
            println!(
                "last 15 min after rebuild: {} arrivals, answer rate {:?}, customers tracked per partition engine: {:?}",
                snapshot.total.arrivals,
                snapshot.total.answer_rate,
                engines.partitions().iter().filter_map(|p| engines.get(*p)).map(|e| e.tracked_customers()).collect::<Vec<_>>()
            );
        }
        views.push(snapshot);
    }
    anyhow::ensure!(
        views
            .iter()
            .all(|v| v.total == views[0].total && v.by_channel == views[0].by_channel),
        "a parallel rebuild differs from the one-task rebuild"
    );
    println!("every rebuild gives the same view");
    Ok(())
}

/// Rebuilds the topic into fresh engines; returns them, the records consumed and the
/// seconds it took.
async fn rebuild(
    settings: &KafkaSettings,
    produced: u64,
) -> anyhow::Result<(Arc<EngineSet>, u64, f64)> {
    let engines = Arc::new(EngineSet::new(EngineConfig::default()));
    let status = Arc::new(InstanceStatus::default());
    let stop = CancellationToken::new();
    let consumer = {
        let (settings, engines, status, stop) = (
            settings.clone(),
            engines.clone(),
            status.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { run_consumer(&settings, engines, status, None, stop).await })
    };
    let started = Instant::now();
    while !(status.is_whole() && status.consumed.load(Relaxed) >= produced) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3_600),
            "rebuild did not finish within an hour"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let consumed = status.consumed.load(Relaxed);
    stop.cancel();
    consumer.await??;
    Ok((engines, consumed, secs))
}
