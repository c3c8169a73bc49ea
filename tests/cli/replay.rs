//! Black-box tests of `vigie replay` and `vigie simulate`: the binary, its files,
//! its stdout/stderr and exit codes, as a user or another tool sees them.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vigie_testkit::serve::vigie;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("vigie runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "vigie failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON snapshot")
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn simulate(dir: &Path, contacts: u64, seed: u64, format: &str) -> PathBuf {
    let path = dir.join(format!("sim-{seed}.{format}"));
    let out = run(vigie()
        .args([
            "simulate",
            "--contacts",
            &contacts.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--format", format, "--output"])
        .arg(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn replay_counts_exactly_the_distinct_arrivals_inside_the_window() {
    let dir = temp_dir();
    let file = simulate(dir.path(), 3_000, 11, "jsonl");
    let snapshot = stdout_json(&run(vigie().args(["replay", "--window", "15m"]).arg(&file)));
    let from = snapshot["window"]["from"].as_i64().expect("from");
    let to = snapshot["window"]["to"].as_i64().expect("to");
    let watermark = snapshot["watermark"].as_i64().expect("watermark");
    assert_eq!(to - from, 15 * 60_000);
    assert!(
        watermark < to && to - watermark <= 1_000,
        "to is the end of the watermark's second"
    );

    // Count independently from the file: distinct `arrived` events with from <= ts < to.
    let text = std::fs::read_to_string(&file).expect("read");
    let mut seen = HashSet::new();
    let mut arrivals_by_channel = std::collections::BTreeMap::<String, u64>::new();
    let mut max_ts = i64::MIN;
    for line in text.lines() {
        let ev: Value = serde_json::from_str(line).expect("simulated lines are valid");
        let ts: jiff::Timestamp = ev["ts"].as_str().expect("ts").parse().expect("rfc3339");
        let ts = ts.as_millisecond();
        max_ts = max_ts.max(ts);
        if ev["type"] == "arrived"
            && seen.insert(ev["event_id"].to_string())
            && from <= ts
            && ts < to
        {
            *arrivals_by_channel
                .entry(ev["channel"].as_str().expect("channel").to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(watermark, max_ts);
    let total: u64 = arrivals_by_channel.values().sum();
    assert!(total > 100, "the window holds real traffic");
    assert_eq!(snapshot["total"]["arrivals"].as_u64(), Some(total));
    for (channel, n) in &arrivals_by_channel {
        assert_eq!(
            snapshot["by_channel"][channel]["arrivals"].as_u64(),
            Some(*n),
            "{channel}"
        );
    }
    assert!(
        snapshot["duplicates"].as_u64().expect("duplicates") > 0,
        "simulated redeliveries counted once"
    );
}

#[test]
fn protobuf_and_jsonl_recordings_give_the_same_snapshot() {
    let dir = temp_dir();
    let jsonl = simulate(dir.path(), 2_000, 5, "jsonl");
    let proto = simulate(dir.path(), 2_000, 5, "proto");
    let a = stdout_json(&run(vigie().args(["replay", "--window", "1h"]).arg(&jsonl)));
    let b = stdout_json(&run(vigie()
        .args(["replay", "--window", "1h", "--format", "proto"])
        .arg(&proto)));
    assert_eq!(a, b);
    assert!(a["total"]["answered"].as_u64().expect("answered") > 0);
}

/// The parallel replay splits events among engines by key, as Kafka partitions do:
/// any number of threads gives the one snapshot, agents, breakdowns, repeats and all.
#[test]
fn every_thread_count_gives_the_same_snapshot() {
    let dir = temp_dir();
    // About 50 k events (several batches of the parallel reader), agents included.
    let jsonl = simulate(dir.path(), 12_000, 8, "jsonl");
    let proto = simulate(dir.path(), 12_000, 8, "proto");
    let snapshot = |file: &Path, format: &str, threads: &str| {
        stdout_json(&run(vigie()
            .args(["replay", "--window", "24h", "--by", "channel,queue,site"])
            .args(["--format", format, "--threads", threads])
            .arg(file)))
    };
    let one = snapshot(&jsonl, "jsonl", "1");
    assert!(one["total"]["repeat_rate"].as_f64().expect("repeats") > 0.0);
    assert!(
        one["total"]["staffing"]["staffed"]
            .as_u64()
            .expect("agents")
            > 0
    );
    for threads in ["2", "3", "8"] {
        assert_eq!(
            snapshot(&jsonl, "jsonl", threads),
            one,
            "jsonl, {threads} threads"
        );
    }
    assert_eq!(snapshot(&proto, "proto", "2"), one, "proto, 2 threads");
}

#[test]
fn replay_reads_standard_input_and_breaks_down_by_dimensions() {
    let dir = temp_dir();
    let file = simulate(dir.path(), 1_000, 3, "jsonl");
    let mut child = vigie()
        .args(["replay", "--window", "1h", "--by", "channel,queue", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(&file).expect("read"))
        .expect("write");
    let snapshot = stdout_json(&child.wait_with_output().expect("wait"));
    let rows = snapshot["breakdown"].as_array().expect("breakdown");
    assert!(rows.len() > 5);
    let sum: u64 = rows
        .iter()
        .map(|r| r["kpis"]["arrivals"].as_u64().expect("arrivals"))
        .sum();
    assert_eq!(
        Some(sum),
        snapshot["total"]["arrivals"].as_u64(),
        "breakdown partitions the total"
    );
    assert!(rows
        .iter()
        .all(|r| r["key"]["channel"].is_string() && r["key"]["queue"].is_string()));
}

/// Four phone contacts whose KPIs are worked out by hand from the formulas.
const HAND_WORKED: &str = r#"{"event_id":"a1","type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"c1","customer_id":"alice","channel":"phone","queue":"billing"}
{"event_id":"q1","type":"queued","ts":"2026-11-25T09:00:02Z","interaction_id":"c1"}
{"event_id":"n1","type":"answered","ts":"2026-11-25T09:00:10Z","interaction_id":"c1"}
{"event_id":"e1","type":"ended","ts":"2026-11-25T09:05:10Z","interaction_id":"c1","resolved":true}
{"event_id":"a2","type":"arrived","ts":"2026-11-25T09:01:00Z","interaction_id":"c2","customer_id":"bob","channel":"phone","queue":"billing"}
{"event_id":"n2","type":"answered","ts":"2026-11-25T09:01:30Z","interaction_id":"c2"}
{"event_id":"q2","type":"queued","ts":"2026-11-25T09:01:01Z","interaction_id":"c2"}
{"event_id":"a3","type":"arrived","ts":"2026-11-25T09:02:00Z","interaction_id":"c3","channel":"phone","queue":"billing"}
{"event_id":"q3","type":"queued","ts":"2026-11-25T09:02:01Z","interaction_id":"c3"}
{"event_id":"b3","type":"abandoned","ts":"2026-11-25T09:03:00Z","interaction_id":"c3"}
{"event_id":"a4","type":"arrived","ts":"2026-11-25T09:04:00Z","interaction_id":"c4","customer_id":"alice","channel":"chat"}
{"event_id":"q4","type":"queued","ts":"2026-11-25T09:04:00Z","interaction_id":"c4"}
{"event_id":"b4","type":"abandoned","ts":"2026-11-25T09:04:02Z","interaction_id":"c4"}
{"event_id":"n2","type":"answered","ts":"2026-11-25T09:01:30Z","interaction_id":"c2"}
{"event_id":"a5","type":"arrived","ts":"2026-11-25T09:06:00Z","interaction_id":"c5","customer_id":"carol","channel":"phone","queue":"sales"}
{"event_id":"q5","type":"queued","ts":"2026-11-25T09:06:00Z","interaction_id":"c5"}
"#;

#[test]
fn hand_worked_example_gives_the_formula_values() {
    let dir = temp_dir();
    let file = dir.path().join("hand.jsonl");
    std::fs::write(&file, HAND_WORKED).expect("write");
    let s = stdout_json(&run(vigie().args(["replay", "--window", "15m"]).arg(&file)));
    let t = &s["total"];
    // Watermark 09:06:00 → to = 09:06:01, from = 08:51:01: every event is inside.
    assert_eq!(s["window"]["to"].as_i64(), Some(1_795_597_561_000));
    assert_eq!(s["duplicates"], 1, "n2 delivered twice");
    assert_eq!(t["arrivals"], 5);
    assert_eq!(t["answered"], 2);
    assert_eq!(t["abandoned"], 1, "c3 waited 60 s");
    assert_eq!(t["short_abandoned"], 1, "c4 waited 2 s < 5 s");
    assert_eq!(t["answer_rate"].as_f64(), Some(2.0 / 3.0));
    assert_eq!(t["abandon_rate"].as_f64(), Some(1.0 / 3.0));
    assert_eq!(t["asa_ms"].as_f64(), Some(20_000.0), "waits 10 s and 30 s");
    // Phone target 20 s: c1 met, c2 missed, c3 abandoned → 1 / 3; chat c4 short: excluded.
    assert_eq!(t["service_level"].as_f64(), Some(1.0 / 3.0));
    assert_eq!(t["aht_ms"].as_f64(), Some(300_000.0));
    // Customers alice (twice: phone then chat), bob, carol → 4 identified arrivals, 1 repeat, cross-channel.
    assert_eq!(t["repeat_rate"].as_f64(), Some(0.25));
    assert_eq!(t["cross_channel_repeat_rate"].as_f64(), Some(0.25));
    // Only c1 ended: resolved, first contact → once and done.
    assert_eq!(t["once_and_done_rate"].as_f64(), Some(1.0));
    assert_eq!(t["in_queue"], 1, "c5 waits");
    assert_eq!(t["oldest_wait_ms"], 1_000);
    assert_eq!(s["by_channel"]["chat"]["arrivals"], 1);
    assert!(
        s["by_channel"]["chat"]["service_level"].is_null(),
        "only a short abandon on chat"
    );
    assert_eq!(
        s["by_channel"]["phone"]["service_level"].as_f64(),
        Some(1.0 / 3.0)
    );
    assert_eq!(s["queues"]["sales"]["in_queue"], 1);
    assert_eq!(s["queues"]["sales"]["channel"], "phone");
    assert_eq!(s["queues"]["billing"]["channel"], "phone");
}

/// A queue names its channel (the cockpit judges its waits by that channel's norm),
/// unless contacts of several channels share it.
#[test]
fn a_queue_names_its_channel_unless_channels_share_it() {
    let dir = temp_dir();
    let file = dir.path().join("queues.jsonl");
    std::fs::write(
        &file,
        r#"{"event_id":"a1","type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"c1","channel":"phone","queue":"shared"}
{"event_id":"a2","type":"arrived","ts":"2026-11-25T09:00:01Z","interaction_id":"c2","channel":"chat","queue":"shared"}
{"event_id":"a3","type":"arrived","ts":"2026-11-25T09:00:02Z","interaction_id":"c3","channel":"email","queue":"letters"}
{"event_id":"q3","type":"queued","ts":"2026-11-25T09:00:03Z","interaction_id":"c3"}
"#,
    )
    .expect("write");
    let s = stdout_json(&run(vigie().args(["replay", "--window", "15m"]).arg(&file)));
    assert_eq!(s["queues"]["letters"]["channel"], "email", "{s}");
    assert_eq!(s["queues"]["letters"]["in_queue"], 1, "{s}");
    assert!(s["queues"]["shared"].is_object(), "{s}");
    assert!(
        s["queues"]["shared"].get("channel").is_none(),
        "phone and chat share it: {s}"
    );
}

#[test]
fn malformed_lines_are_reported_with_their_number_and_skipped() {
    let dir = temp_dir();
    let file = dir.path().join("bad.jsonl");
    let mut text = String::from(HAND_WORKED);
    text.insert_str(0, "not json at all\n");
    text.push_str("{\"event_id\":\"x\",\"type\":\"teleported\",\"ts\":\"2026-11-25T09:06:00Z\",\"interaction_id\":\"c9\"}\n\n");
    text.push_str("{\"event_id\":\"y\",\"type\":\"queued\",\"ts\":\"2026-11-25 09:06\",\"interaction_id\":\"c9\"}\n");
    std::fs::write(&file, &text).expect("write");

    let out = run(vigie().args(["replay"]).arg(&file));
    let s = stdout_json(&out);
    assert_eq!(s["rejected"], 3);
    assert_eq!(s["total"]["arrivals"], 5, "good lines still count");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1: rejected: invalid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 18: rejected: field `type`: unknown event type \"teleported\""),
        "{stderr}"
    );
    assert!(stderr.contains("line 20: rejected: field `ts`"), "{stderr}");

    let out = run(vigie().args(["replay", "--strict"]).arg(&file));
    assert!(
        !out.status.success(),
        "--strict fails on the first bad line"
    );
    assert!(out.stdout.is_empty(), "no snapshot on a strict failure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--strict: line 1:"));
}

#[test]
fn a_truncated_protobuf_recording_is_reported() {
    let dir = temp_dir();
    let file = simulate(dir.path(), 200, 2, "proto");
    let mut bytes = std::fs::read(&file).expect("read");
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&file, bytes).expect("write");
    let out = run(vigie().args(["replay", "--format", "proto"]).arg(&file));
    let s = stdout_json(&out);
    assert_eq!(s["rejected"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated message"));
}

#[test]
fn bad_arguments_and_config_get_clear_errors() {
    let out = run(vigie().args(["replay", "--window", "soon", "-"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a duration"));

    let out = run(vigie()
        .args(["replay", "--window", "48h", "-"])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("engine.max_window"));

    let out = run(vigie()
        .args(["replay", "-"])
        .env("VIGIE__ENGINE__TIME_ZONE", "Mars/Olympus")
        .env("VIGIE__ENGINE__REPEAT_HORIZON", "0s")
        .stdin(Stdio::null()));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("engine.time_zone") && stderr.contains("engine.repeat_horizon"),
        "both errors at once: {stderr}"
    );

    let out = run(vigie().args(["replay", "/nonexistent/stream.jsonl"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/stream.jsonl"));
}

#[test]
fn today_uses_the_configured_time_zone() {
    let dir = temp_dir();
    let file = dir.path().join("hand.jsonl");
    std::fs::write(&file, HAND_WORKED).expect("write");
    let s = stdout_json(&run(vigie()
        .args(["replay", "--window", "today"])
        .env("VIGIE__ENGINE__TIME_ZONE", "Asia/Tokyo")
        .arg(&file)));
    // 09:06 UTC is 18:06 in Tokyo: the day began at 2026-11-24T15:00:00Z.
    assert_eq!(s["window"]["from"].as_i64(), Some(1_795_532_400_000));
    assert_eq!(s["total"]["arrivals"], 5);
}

/// `vigie demo` runs the whole path in-process and prints live KPIs, its simulated
/// history replayed first so that the wall opens full.
#[test]
fn the_demo_runs_the_whole_path_with_nothing_installed() {
    let out = run(vigie().args([
        "demo",
        "--duration",
        "10s",
        "--every",
        "1",
        "--rate",
        "20",
        "--history",
        "20m",
        "--listen",
        "127.0.0.1:0",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[live]"), "{stdout}");
    let arrivals: Vec<u64> = stdout
        .lines()
        .filter(|l| l.starts_with("TOTAL"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    // 20 contacts/s: within 10 s of running, more than 5 minutes' worth of arrivals in
    // the 15-minute window can only come from the replayed history.
    assert!(
        arrivals.iter().max().is_some_and(|n| *n > 20 * 300),
        "the history was replayed: {stdout}"
    );
}

/// `vigie routes` prints the router's table, one `METHOD /path` a line: what the deploy
/// check reads its probe paths from.
#[test]
fn routes_prints_the_route_table() {
    let out = run(vigie().arg("routes"));
    assert!(out.status.success());
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let table: Vec<String> = vigie::server::routes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(printed, table);
    for probe in ["GET /healthz", "GET /readyz", "GET /metrics"] {
        assert!(printed.iter().any(|l| l == probe), "{probe} in {printed:?}");
    }
    let doc = run(vigie().arg("openapi"));
    let doc: Value = serde_json::from_slice(&doc.stdout).expect("the OpenAPI document");
    assert!(doc["paths"]["/api/v1/snapshot"]["get"].is_object());
}

/// A producer bug putting an id in `channel`: the snapshot keeps 64 channels beyond
/// the ten of the contract and counts the rest as `(other)` (it was 73 MB for 200,000
/// such events), with the totals exact.
#[test]
fn channels_beyond_the_limit_keep_the_snapshot_small_and_the_totals_exact() {
    let dir = temp_dir();
    let file = dir.path().join("ids-as-channels.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("file"));
    for n in 0..30_000 {
        writeln!(
            out,
            r#"{{"event_id":"e{n}","type":"arrived","ts":"2026-11-25T09:00:{:02}Z","interaction_id":"i{n}","channel":"bug-{n}"}}"#,
            n % 60
        )
        .expect("write");
    }
    drop(out);
    let out = run(vigie().args(["replay", "--window", "1h"]).arg(&file));
    assert!(
        out.stdout.len() < 100_000,
        "{} bytes of snapshot",
        out.stdout.len()
    );
    let s = stdout_json(&out);
    assert_eq!(s["total"]["arrivals"], 30_000);
    let channels = s["by_channel"].as_object().expect("channels");
    assert_eq!(channels.len(), 65, "64 kept, then (other)");
    assert_eq!(channels["(other)"]["arrivals"], 30_000 - 64);
}
