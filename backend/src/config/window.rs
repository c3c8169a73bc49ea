//! Owns the window vocabulary shared by the settings, the API and the engine: a
//! specification (`15m`, `1h`, `today`), how it is written and read, and why one is
//! refused. How a window's bounds are chosen belongs to the engine.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A window length, or the current day in the configured time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// The last `n` milliseconds (whole seconds).
    Last(i64),
    Today,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WindowError {
    #[error("window {0:?} is neither a duration (5m, 15m, 1h, 24h) nor `today`")]
    Unparsable(String),
    #[error("window {0:?} must be a whole number of seconds, at least 1s")]
    NotWholeSeconds(String),
    #[error("window of {length} is longer than the longest kept ({max}); raise engine.max_window")]
    TooLong { length: String, max: String },
}

impl FromStr for WindowSpec {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("today") {
            return Ok(WindowSpec::Today);
        }
        let d = humantime::parse_duration(s).map_err(|_| WindowError::Unparsable(s.to_string()))?;
        if d.subsec_nanos() != 0 || d.as_secs() == 0 {
            return Err(WindowError::NotWholeSeconds(s.to_string()));
        }
        let ms =
            i64::try_from(d.as_millis()).map_err(|_| WindowError::Unparsable(s.to_string()))?;
        Ok(WindowSpec::Last(ms))
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Today => f.write_str("today"),
            WindowSpec::Last(ms) => {
                write!(
                    f,
                    "{}",
                    humantime::format_duration(std::time::Duration::from_millis(*ms as u64))
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_today_parse() {
        assert_eq!("15m".parse(), Ok(WindowSpec::Last(900_000)));
        assert_eq!("24h".parse(), Ok(WindowSpec::Last(86_400_000)));
        assert_eq!("today".parse(), Ok(WindowSpec::Today));
        assert!(matches!(
            "1500ms".parse::<WindowSpec>(),
            Err(WindowError::NotWholeSeconds(_))
        ));
        assert!(matches!(
            "soon".parse::<WindowSpec>(),
            Err(WindowError::Unparsable(_))
        ));
        assert_eq!(WindowSpec::Last(900_000).to_string(), "15m");
    }
}
