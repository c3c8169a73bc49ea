//! `vigie demo`'s story as a newcomer sees it: the phone billing surge has degraded the
//! phone queue; a supervisor flips "phone · billing → visual IVR" on the running demo's
//! API, and the phone service level comes back within minutes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vigie_testkit::free_addr;
use vigie_testkit::serve::KillOnDrop;

async fn phone_service_level(client: &reqwest::Client, base: &str) -> Option<(f64, u64)> {
    let s: Value = client
        .get(format!("{base}/api/v1/snapshot?window=2m&channel=phone"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let answered = s["total"]["answered"].as_u64()? + s["total"]["abandoned"].as_u64()?;
    Some((s["total"]["service_level"].as_f64()?, answered))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_demo_a_flip_brings_the_phone_service_level_back() {
    let addr = free_addr();
    let base = format!("http://{addr}");
    // 40 minutes of history, the surge from 25 minutes in: the demo opens degraded.
    let demo = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args([
                "demo",
                "--rate",
                "3",
                "--history",
                "40m",
                "--surge-after",
                "25m",
            ])
            .args(["--every", "3600", "--duration", "8m", "--listen"])
            .arg(addr.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vigie demo starts"),
    );
    let client = reqwest::Client::new();
    let start = Instant::now();
    let before = loop {
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            if let Some(sl) = phone_service_level(&client, &base).await {
                break sl;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the demo did not come up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        before.0 < 0.6,
        "the surge has degraded the phone: {before:?}"
    );
    // The binary turns transparent huge pages off for itself (main.rs); Linux (since
    // 5.0) reports it in the process's status.
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string(format!("/proc/{}/status", demo.0.id()))
            .expect("the demo's /proc status");
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        }
    }

    let flip = json!({"channel": "phone", "reason": "billing", "target": "visual_ivr",
        "on": true, "why": "billing surge", "expected_version": 0});
    let response = client
        .put(format!("{base}/api/v1/switches/phone.billing.all.all"))
        .json(&flip)
        .send()
        .await
        .expect("the flip reaches the demo");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );

    // The 2-minute window rolls over the flip: the phone recovers.
    let flipped = Instant::now();
    let mut last = before;
    while flipped.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Some(sl) = phone_service_level(&client, &base).await {
            last = sl;
            if sl.0 >= 0.75 && sl.1 > 50 {
                eprintln!(
                    "phone SL over 2 min: {:.2} at the flip, {:.2} {:?} after it",
                    before.0,
                    sl.0,
                    flipped.elapsed()
                );
                drop(demo);
                return;
            }
        }
    }
    panic!("the phone did not recover within 5 minutes of the flip: {before:?} → {last:?}");
}
