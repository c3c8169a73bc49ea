//! Scale-out suites' helpers: `vigie serve` instances started from a config file, in one
//! consumer group with partials on (or a single reference instance in its own group),
//! random topics, and producing a stream.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigie::config::KafkaSettings;
use vigie::event::EventRecord;
use vigie::ingest::produce::{produce, Pace};
use vigie::replay::InputFormat;

use super::{kafka_table, unique, Broker, VigieProcess};

/// Deadline of every wait of the scale-out suites (rebalances on Tansu are slow).
pub const DEADLINE: Duration = Duration::from_secs(90);
/// Partitions of the events topic.
pub const PARTITIONS: i32 = 6;

/// `vigie serve` started from a config file; killed (SIGKILL) on drop.
pub struct Vigie {
    /// Held for its drop: the process is killed (SIGKILL) with it.
    _process: VigieProcess,
    pub base: String,
    pub name: String,
}

impl Vigie {
    pub fn start(dir: &Path, name: &str, kafka: &KafkaSettings, partials: bool) -> Vigie {
        Vigie::start_with(dir, name, kafka, partials, "")
    }

    /// Same, with more configuration (TOML tables) appended.
    pub fn start_with(
        dir: &Path,
        name: &str,
        kafka: &KafkaSettings,
        partials: bool,
        extra: &str,
    ) -> Vigie {
        let config = dir.join(format!("{name}.toml"));
        // The single reference instance consumes everything in a group of its own.
        let group = if partials {
            kafka.group_id.clone()
        } else {
            unique("vigie-single")
        };
        let kafka_keys = kafka_table(&KafkaSettings {
            group_id: group,
            ..kafka.clone()
        });
        std::fs::write(
            &config,
            format!(
                r#"
{kafka_keys}partials = {partials}
partials_topic = "{partials_topic}"
instance_id = "{name}"
[kafka.properties]
"session.timeout.ms" = "6000"
[auth]
mutations_per_minute = 0
{extra}
"#,
                partials_topic = kafka.partials_topic,
            ),
        )
        .expect("config file");
        // Its log (info) is kept next to the config, for a failing run.
        let process = VigieProcess::start_logged(
            Command::new(env!("CARGO_BIN_EXE_vigie"))
                .args(["--config", &config.display().to_string()])
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1"),
            Some(dir.join(format!("{name}.log"))),
        );
        Vigie {
            base: process.base.clone(),
            _process: process,
            name: name.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let r = reqwest::get(format!("{}{path}", self.base)).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The KPIs compared: everything but `breakdown` (whose row order follows interning).
    pub async fn kpis(&self, window: &str) -> Option<Value> {
        let (status, mut s) = self
            .get(&format!("/api/v1/snapshot?window={window}"))
            .await?;
        if status != 200 {
            return None;
        }
        s.as_object_mut()?.remove("breakdown");
        Some(s)
    }
}

/// Produces `events` to the events topic (JSONL, keyed like real producers); how many.
pub async fn produce_events(kafka: &KafkaSettings, events: &[EventRecord<'static>]) -> u64 {
    produce(
        kafka,
        &kafka.topic,
        events.iter().cloned(),
        InputFormat::Jsonl,
        Pace::Unbounded,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("produced")
}

/// Random topics and group on `broker`.
pub fn settings(broker: &Broker) -> KafkaSettings {
    let topic = unique("scale");
    KafkaSettings {
        brokers: broker.brokers(),
        dlq_topic: format!("{topic}.dlq"),
        topic,
        group_id: unique("scale-group"),
        switches_topic: unique("switches"),
        audit_topic: unique("audit"),
        partials_topic: unique("partials"),
        ..KafkaSettings::default()
    }
}

/// A fresh directory for configs, logs and state.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("vigie-scaleout"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
