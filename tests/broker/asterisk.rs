//! `vigie ingest asterisk` against a real broker (Tansu): the bridge follows a queue_log
//! as it grows, through a rotation and a restart of the bridge, and `vigie serve` on the
//! topic shows exactly the numbers `vigie replay --format asterisk` gives for the whole
//! log.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigie::config::Settings;
use vigie_testkit::broker::create_topics;
use vigie_testkit::serve::{replay_kpis, vigie, KillOnDrop};
use vigie_testkit::{wait_for, Broker, VigieServe};

/// The bridge process, killed when the test ends whatever happens.
struct Bridge(KillOnDrop);

impl Bridge {
    fn start(log: &Path, settings: &Settings) -> Bridge {
        Bridge(KillOnDrop(
            vigie()
                .args(["ingest", "asterisk", "--poll", "50ms", "--queue-log"])
                .arg(log)
                .args(["--brokers", &settings.kafka.brokers])
                .args(["--topic", &settings.kafka.topic])
                .env("RUST_LOG", "warn")
                .spawn()
                .expect("the bridge starts"),
        ))
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let pid = self.0 .0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.0 .0.wait().expect("the bridge exits");
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }
}

/// Two hours of calls ending now on two queues, in time order, as Asterisk writes them:
/// answered and completed, abandoned, timed out then answered in an overflow queue
/// (failover); members added, paused and unpaused.
fn queue_log() -> Vec<String> {
    let now = jiff::Timestamp::now().as_second();
    let start = now - 7_200;
    let mut seed = 17u64;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 33) % n) as i64
    };
    let mut lines: Vec<(i64, String)> = Vec::new();
    let agents = ["PJSIP/201", "PJSIP/202", "PJSIP/203", "PJSIP/204"];
    for (i, agent) in agents.iter().enumerate() {
        let queue = if i < 2 { "sales" } else { "support" };
        lines.push((start, format!("{start}|MANAGER|{queue}|{agent}|ADDMEMBER|")));
        lines.push((
            start,
            format!("{start}|MANAGER|overflow|{agent}|ADDMEMBER|"),
        ));
    }
    let pause = start + 1_800;
    lines.push((pause, format!("{pause}|NONE|sales|PJSIP/202|PAUSE|lunch")));
    let back = pause + 1_800;
    lines.push((back, format!("{back}|NONE|sales|PJSIP/202|UNPAUSE|")));
    let mut t = start + 5;
    let mut n = 0;
    while t < now - 400 {
        n += 1;
        let id = format!("{t}.{n}");
        let queue = ["sales", "support"][next(2) as usize];
        let agent = agents[next(4) as usize];
        let mut add = |ts: i64, rest: String| lines.push((ts, format!("{ts}|{id}|{rest}")));
        add(
            t,
            format!("{queue}|NONE|ENTERQUEUE||06{:08}|1", next(100_000_000)),
        );
        match next(10) {
            0..=6 => {
                let wait = 3 + next(40);
                let talk = 60 + next(240);
                add(t + wait, format!("{queue}|{agent}|CONNECT|{wait}|{id}.1|2"));
                add(
                    t + wait + talk,
                    format!("{queue}|{agent}|COMPLETECALLER|{wait}|{talk}|1"),
                );
            }
            7 | 8 => {
                let wait = 2 + next(90);
                add(t + wait, format!("{queue}|NONE|ABANDON|1|1|{wait}"));
            }
            _ => {
                add(t + 60, format!("{queue}|NONE|EXITWITHTIMEOUT|1|1|60"));
                add(t + 60, "overflow|NONE|ENTERQUEUE||NONE|1".to_string());
                add(t + 75, format!("overflow|{agent}|CONNECT|15|{id}.2|3"));
                add(t + 200, format!("overflow|{agent}|COMPLETEAGENT|15|125|1"));
            }
        }
        t += 10 + next(40);
    }
    lines.sort_by_key(|(ts, _)| *ts);
    lines.into_iter().map(|(_, l)| l).collect()
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_follows_a_growing_rotated_log_across_a_restart_and_serve_agrees_with_replay() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        kafka: broker.kafka(),
        ..Settings::default()
    };
    create_topics(&settings.kafka, 2).await;
    let lines = queue_log();
    assert!(lines.len() > 500, "{} lines", lines.len());
    let (first, rest) = lines.split_at(lines.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let (before_rotation, after_rotation) = second.split_at(second.len() / 2);
    let log = dir.path().join("queue_log");
    append(&log, first);
    let bridge = Bridge::start(&log, &settings);
    let serve = VigieServe::start(dir.path(), "vigie", &settings);
    // Written while the bridge follows, then rotated (logrotate's rename + new file).
    append(&log, before_rotation);
    append(&log, &["1700000000|garbage".to_string()]);
    std::fs::rename(&log, dir.path().join("queue_log.1")).expect("rotate");
    append(&log, after_rotation);
    let position = dir.path().join("queue_log.vigie-position");
    wait_for(
        "the bridge reads the new file",
        Duration::from_secs(30),
        || async { std::fs::read_to_string(&position).ok() },
        |p| {
            serde_json::from_str::<Value>(p)
                .is_ok_and(|p| p["lines"].as_u64() == Some(after_rotation.len() as u64))
        },
    )
    .await;
    // A restart of the bridge: it goes on from its saved position.
    bridge.stop();
    append(&log, third);
    let _bridge = Bridge::start(&log, &settings);

    // The same lines through `vigie replay`, in one file.
    let whole = dir.path().join("whole.queue_log");
    append(&whole, &lines);
    let expected = replay_kpis(&["--format", "asterisk", "--window", "24h"], &whole);
    assert!(
        expected["total"]["arrivals"].as_u64() > Some(100),
        "{expected}"
    );
    assert!(
        expected["total"]["abandoned"].as_u64() > Some(5),
        "{expected}"
    );
    serve
        .shows("24h", None, &expected, Duration::from_secs(90))
        .await;
    assert_eq!(expected["queues"].as_object().map(|q| q.len()), Some(3));
}
