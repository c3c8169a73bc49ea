//! Vigie's Erlang C (the Erlang B recursion, in floating point) against an independent
//! computation: the textbook formula in exact rational arithmetic, in Python, over a grid
//! of loads (10 % to 110 % of the agents) and agent counts from 1 to 400.

use serde_json::Value;
use vigie::engine::erlang::{erlang_c, service_level};

#[test]
fn erlang_c_matches_an_exact_independent_computation() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/in_process/erlang_reference.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cases = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let case: Value = serde_json::from_str(line).expect("one JSON object a line");
        let n = case["agents"].as_u64().expect("agents") as u32;
        let a = case["num"].as_f64().expect("num") / case["den"].as_f64().expect("den");
        let (c, sl) = (
            case["c"].as_f64().expect("c"),
            case["sl"].as_f64().expect("sl"),
        );
        let ours = erlang_c(n, a);
        assert!(
            (ours - c).abs() <= 1e-9 * c.max(1e-300).max(1.0),
            "C({n}, {a}): {ours} vs {c}"
        );
        let ours = service_level(n, a, 180.0, 20.0);
        assert!((ours - sl).abs() <= 1e-9, "SL({n}, {a}): {ours} vs {sl}");
        cases += 1;
    }
    assert_eq!(cases, 60, "the whole grid was compared");
}
