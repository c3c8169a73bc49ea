//! Owns the window vocabulary shared by the settings, the API and the engine: a
//! specification (`15m`, `1h`, `today`), how it is written and read, and why one is
//! refused. How a window's bounds are chosen belongs to the engine.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A window length, or the current day in the configured time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
            // In the largest unit that divides it: `24h`, `90m`, `86401s`; parsed back, the
            // same window (the websocket names a subscription so).
            WindowSpec::Last(ms) => {
                let s = ms / 1000;
                match s {
                    s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
                    s if s % 60 == 0 => write!(f, "{}m", s / 60),
                    s => write!(f, "{s}s"),
                }
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
        for (text, canonical) in [
            ("15m", "15m"),
            ("900s", "15m"),
            ("24h", "24h"),
            ("1day", "24h"),
            ("90m", "90m"),
            ("86401s", "86401s"),
            ("today", "today"),
        ] {
            let spec: WindowSpec = text.parse().expect("valid");
            assert_eq!(spec.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse(), Ok(spec), "{canonical} reads back");
        }
    }
}
