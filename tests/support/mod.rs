//! Shared helpers of the black-box suites: a real Tansu broker on loopback, its topics,
//! the `vigie` binary as a process, random names, and polling with deadlines (never
//! bare sleeps).

#![allow(dead_code)] // each suite uses its own subset

pub mod cluster;
pub mod issuer;
pub mod receiver;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigie::event::{EventKind, EventRecord};

/// Polls `condition` every 50 ms until it holds or `deadline` passes.
pub async fn eventually(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A name no other test uses: `prefix-<pid>-<nanos>-<counter>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port free now (for a server started later, or restarted on the same address).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A loopback address free now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

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

    /// Freezes the broker process (SIGSTOP): connections stay open, nothing answers,
    /// as in a network partition. Its in-memory data survives, unlike a kill.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid}");
}

impl Drop for Broker {
    fn drop(&mut self) {
        signal(self.child.id(), "-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the event topic and the dead-letter topic of `settings`, `partitions` each.
pub async fn create_topics(settings: &vigie::config::KafkaSettings, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        vigie::ingest::client_config(settings)
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

/// The records of `topic` from its start as (key, JSON value), read until `enough`
/// holds or 30 s pass.
pub fn read_topic(
    settings: &vigie::config::KafkaSettings,
    topic: &str,
    enough: impl Fn(&[(String, serde_json::Value)]) -> bool,
) -> Vec<(String, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let reader: BaseConsumer = vigie::ingest::client_config(settings)
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
            // A tombstone (no payload) reads as null.
            let value = match m.payload() {
                None | Some([]) => serde_json::Value::Null,
                Some(payload) => serde_json::from_slice(payload).expect("JSON record"),
            };
            records.push((key, value));
        }
    }
    records
}

/// The `vigie` binary started by `command` with `--listen 127.0.0.1:0`: waits for the
/// address it prints, then drains its stderr so it never blocks on a full pipe.
/// Killed on drop unless stopped before.
pub struct VigieProcess {
    pub child: Child,
    pub base: String,
}

impl VigieProcess {
    pub fn start(command: &mut Command) -> VigieProcess {
        VigieProcess::start_logged(command, None)
    }

    /// Like [`VigieProcess::start`], keeping the rest of its stderr in `log` (for a
    /// failing run).
    pub fn start_logged(command: &mut Command, log: Option<PathBuf>) -> VigieProcess {
        use std::io::{BufRead, BufReader, Write};
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vigie starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).expect("read") > 0,
                "vigie exited before listening"
            );
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || {
            let mut file = log.and_then(|path| std::fs::File::create(path).ok());
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        VigieProcess { child, base }
    }
}

/// The `[kafka]` table of a config file for `settings`' brokers, topics and group (more
/// `kafka` keys may follow it).
pub fn kafka_table(settings: &vigie::config::KafkaSettings) -> String {
    format!(
        "[kafka]\nbrokers = \"{}\"\ntopic = \"{}\"\ndlq_topic = \"{}\"\nswitches_topic = \"{}\"\naudit_topic = \"{}\"\ngroup_id = \"{}\"\n",
        settings.brokers,
        settings.topic,
        settings.dlq_topic,
        settings.switches_topic,
        settings.audit_topic,
        settings.group_id
    )
}

impl Drop for VigieProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Contact `n` on the phone, arrived at `ts`: queued, then abandoned or answered 30 s later.
pub fn phone_contact(n: usize, ts: i64, abandoned: bool) -> Vec<EventRecord<'static>> {
    let iid = format!("c{n}");
    let mut arrived = EventRecord::new(format!("{iid}-a"), EventKind::Arrived, ts, iid.clone());
    arrived.channel = Some("phone".into());
    let queued = EventRecord::new(
        format!("{iid}-q"),
        EventKind::Queued,
        ts + 1_000,
        iid.clone(),
    );
    let end = if abandoned {
        EventKind::Abandoned
    } else {
        EventKind::Answered
    };
    let last = EventRecord::new(format!("{iid}-e"), end, ts + 30_000, iid);
    vec![arrived, queued, last]
}

/// An alert rule (TOML) firing above 50 % phone abandons, clearing under 30 %.
pub const PHONE_ABANDON_RULE: &str = r#"[[alerts.rules]]
name = "phone-abandon"
kpi = "abandon_rate"
channel = "phone"
comparison = "above"
threshold = 0.5
clear = 0.3
severity = "critical"
"#;
