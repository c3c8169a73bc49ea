//! A crashed instance, black box on a real broker (Tansu): `vigie serve` under a steady
//! produced load, killed with SIGKILL at random moments five times and restarted at
//! once each time. With static group membership (a stable `kafka.instance_id`) it is
//! the same member when it comes back: its partitions are given back without waiting
//! for the dead member to expire, and it says "waiting for partitions" rather than show
//! an empty live wall meanwhile. In the end its snapshot equals, exactly, that of an
//! instance never killed (15 min and 24 h).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;
use vigie::config::Settings;
use vigie::event::{EventRecord, Format};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_testkit::broker::{create_topics, produce_events};
use vigie_testkit::cluster::temp_dir;
use vigie_testkit::{wait_for, Broker, VigieServe};

const DEADLINE: Duration = Duration::from_secs(120);

/// `vigie serve` settings: the chaos instance is a static member named `chaos`; the
/// reference one is alone in a group of its own.
fn settings(kafka: &vigie::config::KafkaSettings, chaos: bool) -> Settings {
    let mut settings = Settings {
        kafka: kafka.clone(),
        ..Settings::default()
    };
    if chaos {
        settings.kafka.instance_id = Some("chaos".into());
        settings.kafka.static_membership = true;
    } else {
        settings.kafka.group_id = vigie_testkit::unique("reference");
    }
    settings
        .kafka
        .properties
        .insert("session.timeout.ms".into(), "30000".into());
    settings
}

/// The KPIs compared: everything but `breakdown` (its row order follows interning).
async fn kpis(vigie: &VigieServe, window: &str) -> Option<Value> {
    vigie.kpis(window).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_and_restarted_instance_ends_with_the_exact_view() {
    let broker = Broker::start();
    let kafka = broker.kafka();
    create_topics(&kafka, 4).await;
    let dir = temp_dir();
    let seed: u64 = rand::random();
    eprintln!("chaos seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // A steady load: simulated contacts of the last minutes, produced in small batches.
    let events: Vec<EventRecord<'static>> = Simulator::new(SimulationConfig {
        seed,
        contacts: Some(6_000),
        start_ms: jiff::Timestamp::now().as_millisecond() - 12 * 60_000,
        contacts_per_second: 10.0,
        ..SimulationConfig::default()
    })
    .collect();
    let producing = {
        let kafka = kafka.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for batch in events.chunks(400) {
                produce_events(&kafka, batch.iter().cloned(), Format::Jsonl).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    let reference = VigieServe::start(&dir, "reference", &settings(&kafka, false));
    let chaos_settings = settings(&kafka, true);
    let mut chaos = VigieServe::start(&dir, "chaos", &chaos_settings);
    for kill in 1..=5 {
        // A random moment of its life: rebuilding, live, or in between.
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..4_000))).await;
        chaos.kill();
        let restarted = Instant::now();
        chaos = VigieServe::start(&dir, "chaos", &chaos_settings);
        // Until its partitions are back it says so, never an empty live view.
        let mut said_waiting = false;
        let ready = wait_for(
            "the restarted instance holds its partitions again and is whole",
            DEADLINE,
            async || {
                let (_, r) = chaos.get("/readyz").await?;
                said_waiting |= r["waiting_for_partitions"] == true;
                Some(r)
            },
            |r| r["ready"] == true && r["whole"] == true,
        )
        .await;
        assert_eq!(ready["waiting_for_partitions"], false);
        eprintln!(
            "kill {kill}: whole again {:?} after the restart (said waiting for partitions: {said_waiting})",
            restarted.elapsed()
        );
    }
    producing.await.expect("producer");

    for window in ["15m", "24h"] {
        let want = wait_for(
            "the reference instance consumed everything",
            DEADLINE,
            async || kpis(&reference, window).await,
            |s| s["total"]["arrivals"].as_u64() > Some(0),
        )
        .await;
        let mut last = None;
        let same = wait_for(
            &format!("the crashed instance shows exactly the reference's {window} view"),
            DEADLINE,
            async || {
                let want = kpis(&reference, window).await?;
                let got = kpis(&chaos, window).await?;
                last = Some((got.clone(), want.clone()));
                Some(got == want)
            },
            |same| *same,
        )
        .await;
        assert!(same, "{window}: {last:?} (reference first read {want})");
    }
    assert!(reference.terminate() && chaos.terminate(), "clean exits");
}
