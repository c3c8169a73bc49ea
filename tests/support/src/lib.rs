//! The one harness of Vigie's black-box suites (`tests/cli`, `tests/in_process`,
//! `tests/broker`, `tests/browser`), shared as a crate so that every suite uses the same
//! pieces and none keeps a copy:
//! - [`app`]: the API server in this process ([`TestApp`]), and HTTP / websocket clients;
//! - [`serve`]: the `vigie` binary, and `vigie serve` launched from a `Settings` value;
//! - [`autopilot`]: the surge rule and the live simulated centre it answers;
//! - [`broker`]: a real Kafka-protocol broker (Tansu) on loopback, random topics,
//!   producing and reading records;
//! - [`cluster`]: several `vigie serve` sharing a consumer group (scale-out);
//! - [`receiver`]: HTTP receivers standing for chat-ops webhooks;
//! - [`issuer`]: an OpenID Connect issuer with test keys;
//! - [`browser`]: chromedriver and headless Chromium sessions;
//! - here: polling with deadlines (never bare sleeps), unique names, free ports,
//!   signals, and small event fixtures.

pub mod app;
pub mod autopilot;
pub mod broker;
pub mod browser;
pub mod cluster;
pub mod issuer;
pub mod receiver;
pub mod serve;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigie::event::{EventKind, EventRecord};

pub use app::TestApp;
pub use broker::Broker;
pub use serve::VigieServe;

/// The repository's root directory (fixtures, the cockpit bundle, screenshots).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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

/// Polls `read` every 50 ms until it gives a value accepted by `accept`, or panics
/// naming `what` and the last value seen.
pub async fn wait_for<T: std::fmt::Debug>(
    what: &str,
    deadline: Duration,
    mut read: impl AsyncFnMut() -> Option<T>,
    accept: impl Fn(&T) -> bool,
) -> T {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(value) = read().await {
            if accept(&value) {
                return value;
            }
            last = Some(value);
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}: last seen {last:?}"
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

/// Sends `signal` (`-TERM`, `-KILL`, `-STOP`...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
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

/// The same rule as settings.
pub fn phone_abandon_rule() -> vigie::config::AlertRuleSettings {
    vigie::config::AlertRuleSettings {
        name: "phone-abandon".into(),
        kpi: vigie_proto::Kpi::AbandonRate,
        channel: Some("phone".into()),
        queue: None,
        reason: None,
        segment: None,
        site: None,
        comparison: vigie_proto::Comparison::Above,
        threshold: vigie::config::Threshold::Number(0.5),
        clear: Some(vigie::config::Threshold::Number(0.3)),
        window: "15m".into(),
        for_: Duration::ZERO,
        severity: vigie_proto::Severity::Critical,
        sinks: None,
        repeat_every: None,
        min_volume: 0,
    }
}
