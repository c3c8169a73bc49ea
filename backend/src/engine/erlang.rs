//! Owns the Erlang C queueing model: the probability to wait, the service level and the
//! expected wait of `n` agents facing a load of `a` Erlangs (Poisson arrivals,
//! exponential handling, no abandonment), and the agents needed for a target.
//!
//! Computed through the Erlang B recursion `B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1))`,
//! which stays exact and finite for thousands of agents (the textbook formula's `aⁿ/n!`
//! overflows beyond about 170).

/// Erlang B: the probability that a contact finds all `n` agents busy in a loss system.
pub fn erlang_b(n: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    b
}

/// Erlang C: the probability that a contact waits; 1 when the load is not below `n`.
pub fn erlang_c(n: u32, a: f64) -> f64 {
    let n_f = f64::from(n);
    if a <= 0.0 {
        return 0.0;
    }
    if n == 0 || a >= n_f {
        return 1.0;
    }
    let b = erlang_b(n, a);
    n_f * b / (n_f - a * (1.0 - b))
}

/// Share of contacts answered within `threshold_s`, with a load of `a` Erlangs on `n`
/// agents and a mean handling time of `aht_s`; 0 when the load is not below `n`.
pub fn service_level(n: u32, a: f64, aht_s: f64, threshold_s: f64) -> f64 {
    let n_f = f64::from(n);
    if a <= 0.0 {
        return 1.0;
    }
    if a >= n_f || aht_s <= 0.0 {
        return 0.0;
    }
    1.0 - erlang_c(n, a) * (-(n_f - a) * threshold_s / aht_s).exp()
}

/// Expected wait (Erlang C's ASA, over every contact), seconds; `None` when unstable.
pub fn expected_wait(n: u32, a: f64, aht_s: f64) -> Option<f64> {
    let n_f = f64::from(n);
    if a <= 0.0 {
        return Some(0.0);
    }
    (a < n_f).then(|| erlang_c(n, a) * aht_s / (n_f - a))
}

/// The fewest agents reaching `target` service level within `threshold_s` (at most
/// `max`): `None` if even `max` do not.
pub fn agents_needed(a: f64, aht_s: f64, threshold_s: f64, target: f64, max: u32) -> Option<u32> {
    if a <= 0.0 {
        return Some(0);
    }
    if aht_s <= 0.0 {
        return None;
    }
    // One pass of the Erlang B recursion, checking each agent count on the way: O(N),
    // where calling `service_level` for each candidate would be O(N²) (thousands of
    // agents, every snapshot).
    let mut b = 1.0;
    for n in 1..=max {
        let n_f = f64::from(n);
        b = a * b / (n_f + a * b);
        if n_f > a {
            let c = n_f * b / (n_f - a * (1.0 - b));
            if 1.0 - c * (-(n_f - a) * threshold_s / aht_s).exp() >= target {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook formula, exact enough for small n (an independent computation).
    fn erlang_c_direct(n: u32, a: f64) -> f64 {
        let fact = |k: u32| (1..=k).map(f64::from).product::<f64>();
        let n_f = f64::from(n);
        let top = a.powi(n as i32) / fact(n) * n_f / (n_f - a);
        let sum: f64 = (0..n).map(|k| a.powi(k as i32) / fact(k)).sum();
        top / (sum + top)
    }

    #[test]
    fn the_recursion_agrees_with_the_textbook_formula() {
        for n in 1..40 {
            for a10 in 1..(n * 10) {
                let a = f64::from(a10) / 10.0;
                let (x, y) = (erlang_c(n, a), erlang_c_direct(n, a));
                assert!((x - y).abs() < 1e-9, "n={n} a={a}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn agents_needed_is_the_first_count_reaching_the_target() {
        for a10 in [5, 37, 100, 555, 3_000, 12_345] {
            let a = f64::from(a10) / 10.0;
            let n = agents_needed(a, 180.0, 20.0, 0.8, 10_000).expect("reachable");
            assert!(service_level(n, a, 180.0, 20.0) >= 0.8, "a={a} n={n}");
            assert!(
                n == 1 || service_level(n - 1, a, 180.0, 20.0) < 0.8,
                "a={a} n={n}"
            );
        }
        assert_eq!(
            agents_needed(50.0, 180.0, 20.0, 0.8, 40),
            None,
            "beyond the ceiling"
        );
    }

    #[test]
    fn a_published_example_and_large_centres() {
        // A = 10 Erlangs: P(wait) 0.6821 with 11 agents, 0.4494 with 12, 0.2853 with 13
        // (published tables); SL(20 s, AHT 180 s) 0.6402 with 12, 0.7956 with 13.
        assert!((erlang_c(11, 10.0) - 0.6821).abs() < 1e-4);
        assert!((erlang_c(12, 10.0) - 0.4494).abs() < 1e-4);
        assert!((erlang_c(13, 10.0) - 0.2853).abs() < 1e-4);
        assert!((service_level(12, 10.0, 180.0, 20.0) - 0.6402).abs() < 1e-4);
        assert_eq!(agents_needed(10.0, 180.0, 20.0, 0.8, 100), Some(14));
        // 360 Erlangs would overflow the textbook formula; the recursion gives a probability.
        let big = erlang_c(400, 360.0);
        assert!(big.is_finite() && big > 0.0 && big < 1.0, "{big}");
        assert_eq!(erlang_c(5, 5.0), 1.0, "unstable: everyone waits");
        assert_eq!(expected_wait(5, 6.0, 100.0), None);
    }
}
