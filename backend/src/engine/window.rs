//! Owns how the bounds of a window ([`WindowSpec`], from the settings' vocabulary) are chosen.
//!
//! `to` is the end of the second holding the watermark (the newest event time seen):
//! `to = (floor(watermark / 1000) + 1) * 1000`, so the newest event is always inside.
//! `from = to - length`, or the start of the local day of the watermark for `today`.

use jiff::tz::TimeZone;
use vigie_proto::WindowBounds;

pub use crate::config::{WindowError, WindowSpec};

/// `to` for a watermark: the end of its second. `0` before any event.
pub fn window_end(watermark: Option<i64>) -> i64 {
    watermark.map_or(0, |w| (w.div_euclid(1000) + 1) * 1000)
}

impl WindowSpec {
    /// Bounds of this window ending at `to`.
    pub(crate) fn bounds(&self, to: i64, tz: &TimeZone) -> WindowBounds {
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
