//! A real Kafka-protocol broker (Tansu, in-memory storage) on a random loopback port, its
//! topics, and producing and reading records the way real producers and consumers do.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vigie::config::KafkaSettings;
use vigie::event::{EventRecord, Format};
use vigie::ingest::produce::{produce, Pace};
use vigie::simulate::{SimulationConfig, Simulator};

use crate::{free_port, signal, unique};

/// The Tansu binary: `$TANSU_BIN`, else where `scripts/setup.sh` installs it, else `PATH`.
fn tansu_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return bin.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let installed = home.join(".cargo/tansu/bin/tansu");
    if installed.is_file() {
        return installed;
    }
    PathBuf::from("tansu")
}

/// A Tansu broker process (in-memory storage) on a random loopback port; killed on drop.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
            ])
            .args(["--advertised-listener-url", &url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} (run scripts/setup.sh): {e}",
                    tansu_bin().display()
                )
            });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, addr }
    }

    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    /// Kafka settings on this broker with every topic and the group random, so that no
    /// two tests share anything.
    pub fn kafka(&self) -> KafkaSettings {
        let topic = unique("events");
        KafkaSettings {
            brokers: self.brokers(),
            dlq_topic: format!("{topic}.dlq"),
            topic,
            group_id: unique("group"),
            switches_topic: unique("switches"),
            audit_topic: unique("audit"),
            partials_topic: unique("partials"),
            ..KafkaSettings::default()
        }
    }

    /// Freezes the broker process (SIGSTOP): connections stay open, nothing answers,
    /// as in a network partition. Its in-memory data survives, unlike a kill.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the event topic and the dead-letter topic of `settings`, `partitions` each.
pub async fn create_topics(settings: &KafkaSettings, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        vigie::kafka::client_config(settings)
            .create()
            .expect("admin client");
    for topic in [&settings.topic, &settings.dlq_topic] {
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topics");
        for r in results {
            r.expect("topic created");
        }
    }
}

/// Produces `events` to the events topic in `format`, keyed like real producers; how
/// many were delivered.
pub async fn produce_events(
    kafka: &KafkaSettings,
    events: impl Iterator<Item = EventRecord<'static>>,
    format: Format,
) -> u64 {
    produce(
        kafka,
        &kafka.topic,
        events,
        format,
        Pace::Unbounded,
        CancellationToken::new(),
    )
    .await
    .expect("produced")
}

/// `contacts` simulated contacts (`seed`), two a second from `minutes_ago` on, produced
/// as JSON; how many records.
pub async fn produce_simulated(
    kafka: &KafkaSettings,
    contacts: u64,
    seed: u64,
    minutes_ago: i64,
) -> u64 {
    let events = Simulator::new(SimulationConfig {
        seed,
        contacts: Some(contacts),
        start_ms: jiff::Timestamp::now().as_millisecond() - minutes_ago * 60_000,
        contacts_per_second: 2.0,
        ..SimulationConfig::default()
    });
    produce_events(kafka, events, Format::Jsonl).await
}

/// The records of `topic` from its start as (key, JSON value), read until `enough`
/// holds or 30 s pass. A tombstone (no payload) reads as null.
pub fn read_topic(
    settings: &KafkaSettings,
    topic: &str,
    enough: impl Fn(&[(String, serde_json::Value)]) -> bool,
) -> Vec<(String, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let reader: BaseConsumer = vigie::kafka::client_config(settings)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    reader.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let start = Instant::now();
    while !enough(&records) && start.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let value = match m.payload() {
                None | Some([]) => serde_json::Value::Null,
                Some(payload) => serde_json::from_slice(payload).expect("JSON record"),
            };
            records.push((key, value));
        }
    }
    records
}

/// Every record of `topic` (all partitions) up to its end now, as (key, JSON value).
pub fn read_topic_to_end(
    settings: &KafkaSettings,
    topic: &str,
) -> Vec<(String, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = vigie::kafka::client_config(settings)
        .set("group.id", unique("probe"))
        .create()
        .expect("probe");
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let total: i64 = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            let (low, high) = probe
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum();
    read_topic(settings, topic, |records| records.len() as i64 >= total)
}
