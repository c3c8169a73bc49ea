//! `vigie replay --format asterisk` on real queue_log samples from public sources
//! (`tests/fixtures/asterisk/SOURCES.md`) and on a hand-written file of the verbs they
//! lack: each number below is read off the lines by hand.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use vigie_testkit::repo_root;
use vigie_testkit::serve::vigie;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/asterisk").join(name)
}

fn replay(name: &str, extra: &[&str]) -> Output {
    vigie()
        .args([
            "replay", "--format", "asterisk", "--window", "24h", "--by", "queue",
        ])
        .args(extra)
        .arg(fixture(name))
        .output()
        .expect("vigie runs")
}

fn snapshot(name: &str) -> (Value, String) {
    let out = replay(name, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{name}: {stderr}");
    (
        serde_json::from_slice(&out.stdout).expect("one JSON snapshot"),
        stderr,
    )
}

fn queues(s: &Value) -> Vec<&str> {
    s["queues"]
        .as_object()
        .expect("queues")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn a_freepbx_log_with_repeated_lines_and_calls_without_their_entry() {
    let (s, stderr) = snapshot("freepbx-asterisk2slack.queue_log");
    let t = &s["total"];
    // Two calls entered: 1546015415.757927 (ENTERQUEUE …415, CONNECT …425, COMPLETECALLER
    // …547) and 1546027663.761192 (…663, CONNECT …677, no end in the file).
    assert_eq!(
        (t["arrivals"].as_u64(), t["answered"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(t["asa_ms"].as_f64(), Some(12_000.0), "(10 s + 14 s) / 2");
    assert_eq!(
        t["aht_ms"].as_f64(),
        Some(122_000.0),
        "calltime 122 of the ended one"
    );
    assert_eq!(t["service_level"].as_f64(), Some(1.0), "both within 20 s");
    assert_eq!(queues(&s), ["201"]);
    // The same ENTERQUEUE six times; the COMPLETE* and CONNECT of calls not entered.
    assert!(stderr.contains("2 calls (6 failovers)"), "{stderr}");
    assert!(
        stderr.contains("6 lines of calls not entered in the log"),
        "{stderr}"
    );
    assert!(stderr.contains("0 refused, 3 rings unanswered"), "{stderr}");
}

#[test]
fn an_attended_transfer_logged_with_the_consult_calls_id() {
    let (s, _) = snapshot("asterisk-issue-759.queue_log");
    let t = &s["total"];
    // The caller enters 1501 (…259) and is connected after 12 s (…271); the agent
    // transfers at …391: the call ends there (120 s of talk, its calltime field). The
    // consult leg enters 1509 (…390) and ends with the transfer, unanswered.
    assert_eq!(t["arrivals"].as_u64(), Some(2));
    assert_eq!(
        (t["answered"].as_u64(), t["abandoned"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(t["asa_ms"].as_f64(), Some(12_000.0));
    assert_eq!(t["aht_ms"].as_f64(), Some(120_000.0));
    assert_eq!(t["in_queue"].as_u64(), Some(0), "nothing left waiting");
    assert_eq!(queues(&s), ["1501", "1509"]);
}

#[test]
fn restarts_cut_the_calls_in_progress() {
    let (s, stderr) = snapshot("asteriskexamples-readme.queue_log");
    let t = &s["total"];
    // support: entered …941, abandoned …009 (68 s); sales: entered …054, then QUEUESTART.
    assert_eq!(t["arrivals"].as_u64(), Some(2));
    assert_eq!(t["abandoned"].as_u64(), Some(1));
    assert_eq!(
        t["in_queue"].as_u64(),
        Some(0),
        "the restart cut the sales call"
    );
    assert_eq!(queues(&s), ["sales", "support"]);
    assert!(stderr.contains("0 refused"), "{stderr}");
}

#[test]
fn exits_failover_pauses_and_bad_lines() {
    let (s, stderr) = snapshot("synthetic-verbs.queue_log");
    let t = &s["total"];
    assert_eq!(t["arrivals"].as_u64(), Some(5));
    // .1 timed out of sales, answered in overflow after 75 s: answered, in sales.
    // .6 answered after 510 s. .3 gave up after 3 s (short); .4 and .5 after 45 and 30 s.
    assert_eq!(t["answered"].as_u64(), Some(2));
    assert_eq!(t["abandoned"].as_u64(), Some(2));
    assert_eq!(t["short_abandoned"].as_u64(), Some(1));
    assert_eq!(t["asa_ms"].as_f64(), Some(292_500.0));
    assert_eq!(t["aht_ms"].as_f64(), Some(240_000.0), "(300 s + 180 s) / 2");
    assert_eq!(t["service_level"].as_f64(), Some(0.0));
    assert_eq!(
        queues(&s),
        ["overflow", "sales"],
        "overflow listed for its agent"
    );
    assert_eq!(s["queues"]["overflow"]["in_queue"].as_u64(), Some(0));
    let staffing = &t["staffing"];
    assert_eq!(
        staffing["staffed"].as_u64(),
        Some(2),
        "{staffing}: Agent/300 logged off"
    );
    assert_eq!(staffing["available"].as_u64(), Some(2));
    assert!(
        stderr.contains("line 23: refused: fewer than 5 fields"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 24: refused: unknown event \"FUTUREVERB\""),
        "{stderr}"
    );
    assert!(stderr.contains("1 rings unanswered"), "{stderr}");

    let strict = replay("synthetic-verbs.queue_log", &["--strict"]);
    assert!(
        !strict.status.success(),
        "--strict stops at the first refused line"
    );
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("line 23"), "{stderr}");
    assert!(strict.stdout.is_empty(), "no snapshot");
}
