//! `vigie replay --format connect` on Amazon Connect samples from the AWS documentation
//! and a public repository (`tests/fixtures/connect/SOURCES.md`), the numbers read off
//! the samples by hand.

use std::path::Path;

use serde_json::Value;
use vigie_testkit::repo_root;
use vigie_testkit::serve::vigie;

/// The samples one after another in one file, then replayed.
fn replay(names: &[&str], extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.json");
    let mut all = String::new();
    for name in names {
        let path = repo_root().join("tests/fixtures/connect").join(name);
        all.push_str(&std::fs::read_to_string(&path).expect("fixture"));
        all.push('\n');
    }
    std::fs::write(&file, all).expect("write");
    run(&file, extra)
}

fn run(file: &Path, extra: &[&str]) -> (Value, String) {
    let out = vigie()
        .args(["replay", "--format", "connect", "--window", "24h"])
        .args(extra)
        .arg(file)
        .output()
        .expect("vigie runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (
        serde_json::from_slice(&out.stdout).expect("a snapshot"),
        stderr,
    )
}

#[test]
fn contact_events_of_the_aws_documentation() {
    let (s, stderr) = replay(
        &[
            "aws-docs-contact-connected-to-agent.json",
            "aws-docs-contact-disconnected-outbound.json",
        ],
        &[],
    );
    let t = &s["total"];
    // The inbound call: initiated 17:17:53, queued 17:29:04, connected 17:29:09. The
    // outbound call is no demand.
    assert_eq!(t["arrivals"].as_u64(), Some(1), "{s}");
    assert_eq!(t["answered"].as_u64(), Some(1));
    assert_eq!(t["asa_ms"].as_f64(), Some(676_000.0), "from the initiation");
    assert_eq!(
        s["by_channel"]
            .as_object()
            .map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["phone".to_string()])
    );
    let queue = "12345678-1234-1234-1234-123456789012";
    assert!(
        s["queues"].get(queue).is_some(),
        "an unnamed queue shows its id: {s}"
    );
    assert!(
        stderr.contains("2 records (2 contact events, 0 agent events)"),
        "{stderr}"
    );
    assert!(stderr.contains("1 ignored, 0 refused"), "{stderr}");

    // A real event without any timestamp in its detail (its envelope's time stands for
    // the disconnect): read, and no arrival of its own to count.
    let (s, stderr) = replay(&["scv-contact-disconnected-inbound.json"], &[]);
    assert_eq!(s["total"]["arrivals"].as_u64(), Some(0), "{s}");
    assert!(
        stderr.contains("1 events; 0 ignored, 0 refused"),
        "{stderr}"
    );

    // Named by the map.
    let dir = tempfile::tempdir().expect("tempdir");
    let names = dir.path().join("queues.json");
    let arn = format!("arn:aws::connect:us-west-2:123456789012:instance/12345678-1234-1234-1234-123456789012/queue/{queue}");
    std::fs::write(&names, serde_json::json!({ arn: "billing" }).to_string()).expect("write");
    let (s, _) = replay(
        &["aws-docs-contact-connected-to-agent.json"],
        &["--queue-names", names.to_str().expect("path")],
    );
    assert!(s["queues"].get("billing").is_some(), "{s}");
}

#[test]
fn agent_events_of_the_aws_documentation() {
    // 18:55:27 the contact ENDED (after-contact work), 18:55:32 cleared: available, in
    // the routing profile's two inbound queues.
    let (s, stderr) = replay(
        &[
            "aws-docs-agent-state-change-acw-start.json",
            "aws-docs-agent-state-change-acw-cleared.json",
        ],
        &[],
    );
    let staffing = &s["total"]["staffing"];
    assert_eq!(staffing["staffed"].as_u64(), Some(1), "{s}");
    assert_eq!(staffing["available"].as_u64(), Some(1), "{s}");
    let queues: Vec<&String> = s["queues"].as_object().expect("queues").keys().collect();
    assert_eq!(queues, ["BasicQueue", "PrimaryQueue"]);
    assert!(stderr.contains("2 agent events"), "{stderr}");
}

#[test]
fn records_that_are_not_connect_events_are_refused_by_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{\"hello\":1}\n[{\"eventType\":\"QUEUED\",\"contactId\":\"c\",\"initiationTimestamp\":\"soon\"}]\n").expect("write");
    let (_, stderr) = run(&file, &[]);
    assert!(
        stderr.contains("record 1: refused: not an Amazon Connect contact event"),
        "{stderr}"
    );
    assert!(
        stderr.contains("record 2: refused: field `initiationTimestamp`"),
        "{stderr}"
    );
    let out = vigie()
        .args(["replay", "--format", "connect", "--strict"])
        .arg(&file)
        .output()
        .expect("vigie runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("record 1"));
}
