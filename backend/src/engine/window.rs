//! Owns window specifications (`15m`, `1h`, `today`) and how their bounds are chosen.
//!
//! `to` is the end of the second holding the watermark (the newest event time seen):
//! `to = (floor(watermark / 1000) + 1) * 1000`, so the newest event is always inside.
//! `from = to - length`, or the start of the local day of the watermark for `today`.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use thiserror::Error;
use vigie_proto::WindowBounds;

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

/// `to` for a watermark: the end of its second. `0` before any event.
pub fn window_end(watermark: Option<i64>) -> i64 {
    watermark.map_or(0, |w| (w.div_euclid(1000) + 1) * 1000)
}

impl WindowSpec {
    /// Bounds of this window ending at `to`.
    pub fn bounds(&self, to: i64, tz: &TimeZone) -> WindowBounds {
        let from = match *self {
            WindowSpec::Last(ms) => to - ms,
            WindowSpec::Today => start_of_day(to - 1, tz).unwrap_or(to - 86_400_000),
        };
        WindowBounds { from, to }
    }
}

fn start_of_day(ts_ms: i64, tz: &TimeZone) -> Option<i64> {
    let zoned = jiff::Timestamp::from_millisecond(ts_ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    Some(zoned.start_of_day().ok()?.timestamp().as_millisecond())
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
    }

    #[test]
    fn to_is_the_end_of_the_watermark_second() {
        assert_eq!(window_end(Some(1_795_597_200_000)), 1_795_597_201_000);
        assert_eq!(window_end(Some(1_795_597_200_999)), 1_795_597_201_000);
        let b = WindowSpec::Last(900_000).bounds(1_795_597_201_000, &TimeZone::UTC);
        assert_eq!(b.to - b.from, 900_000);
    }

    #[test]
    fn today_starts_at_local_midnight() {
        let paris = TimeZone::get("Europe/Paris").expect("bundled tz database");
        // 2026-11-25T09:00:00Z = 10:00 in Paris; the day started at 2026-11-24T23:00:00Z.
        let b = WindowSpec::Today.bounds(1_795_597_201_000, &paris);
        assert_eq!(b.from, 1_795_561_200_000);
        // Just past midnight local time, the window is one second long.
        let b = WindowSpec::Today.bounds(1_795_561_201_000, &paris);
        assert_eq!(b.from, 1_795_561_200_000);
    }
}
