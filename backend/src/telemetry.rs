//! Owns the tracing subscriber: human-readable logs on stderr, so stdout stays for data.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `filter`.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Says one kind of thing at most once per `every`, with how many times it happened
/// since it was last said: a limit hit on every event or request must never turn into a
/// log line per event.
#[derive(Debug)]
pub struct Occasional {
    every: std::time::Duration,
    state: parking_lot::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Occasional {
    pub const fn new(every: std::time::Duration) -> Occasional {
        Occasional {
            every,
            state: parking_lot::Mutex::new((None, 0)),
        }
    }

    /// Counts one occurrence; `Some(n)` when it is time to say it (`n` occurrences since
    /// it was last said, this one included).
    pub fn due(&self) -> Option<u64> {
        let mut state = self.state.lock();
        state.1 += 1;
        let now = std::time::Instant::now();
        if state
            .0
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            return None;
        }
        state.0 = Some(now);
        Some(std::mem::take(&mut state.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occasional_line_is_said_once_per_period_with_the_count_since() {
        let line = Occasional::new(std::time::Duration::from_secs(3600));
        assert_eq!(line.due(), Some(1), "the first time is said");
        assert_eq!(line.due(), None);
        assert_eq!(line.due(), None);
        let every_time = Occasional::new(std::time::Duration::ZERO);
        assert_eq!(every_time.due(), Some(1));
        assert_eq!(every_time.due(), Some(1));
    }
}
