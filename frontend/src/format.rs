//! Owns how numbers and times read on a wall screen: wait ranges, the freshness badge and
//! local clock times (percentages, durations, counts and alert lines are
//! `vigie_proto::words`, shared with the chat notifications). Pure functions, unit-tested
//! natively, but for [`clock`], which asks the browser.

use vigie_proto::{EstimatedWait, StatusReport};

use crate::i18n::{Lang, Say, Text};
pub use vigie_proto::words::{alert_line, count, duration, percent};

/// Local time of an epoch-ms instant in the browser's time zone.
pub fn clock(ms: i64, locale: &str) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    String::from(date.to_locale_time_string(locale))
}

/// An estimated wait as people say it: `< 1 min`, `5–10 min`, `> 30 min`, `1–2 h`.
pub fn wait_range(wait: Option<EstimatedWait>) -> String {
    let Some(w) = wait else {
        return "–".into();
    };
    let low_min = w.low_ms / 60_000;
    match w.high_ms {
        None => format!("> {}", minutes_or_hours(low_min.max(1))),
        Some(high) => {
            let high_min = high.div_ceil(60_000);
            if high_min <= 1 {
                "< 1 min".into()
            } else if high_min >= 120 && low_min >= 60 {
                format!("{}–{} h", low_min / 60, high_min.div_ceil(60))
            } else if low_min == high_min {
                format!("{low_min} min")
            } else {
                format!("{low_min}–{high_min} min")
            }
        }
    }
}

fn minutes_or_hours(min: u64) -> String {
    if min >= 120 {
        format!("{} h", min / 60)
    } else {
        format!("{min} min")
    }
}

/// Whether the numbers on screen can be trusted as live, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Freshness {
    /// Not connected yet.
    Connecting,
    /// Connected, every partition consumed live.
    Live,
    /// The server rebuilds its state from Kafka (share done, 0..1).
    Rebuilding(f64),
    /// The numbers are old: the broker is unreachable or the stream stopped (age, ms).
    Stale(i64),
    /// Consumed live, but no event for this long (ms): a dead feed upstream of Kafka or a
    /// quiet hour, which look alike from here.
    Quiet(i64),
    /// Scale-out: only `live` of the topic's `total` partitions are live in the merged
    /// view (an instance died and its partitions are not taken over yet).
    Partial { live: usize, total: usize },
    /// The server is a member of its consumer group but holds no partition yet (it just
    /// restarted): nothing to show.
    Waiting,
    /// No link to the server; retrying in this many ms. The numbers are the last seen.
    Offline { age_ms: i64, retry_in_ms: i64 },
}

impl Freshness {
    /// What the server's last `status` says, at `now` (epoch ms), the link being open;
    /// `quiet_after_ms` without an event is [`Freshness::Quiet`].
    pub fn of_status(s: &StatusReport, now: f64, quiet_after_ms: u64) -> Freshness {
        let age = || s.watermark.map_or(0, |w| (now - w as f64).max(0.0) as i64);
        let partial = s.partitions.as_ref().filter(|p| p.live < p.total);
        match (s.rebuilding, partial) {
            _ if s.waiting => Freshness::Waiting,
            (Some(done), _) => Freshness::Rebuilding(done),
            _ if s.stale => Freshness::Stale(age()),
            (None, Some(p)) => Freshness::Partial {
                live: p.live,
                total: p.total,
            },
            _ if !s.live => Freshness::Stale(age()),
            _ if age() > quiet_after_ms as i64 => Freshness::Quiet(age()),
            _ => Freshness::Live,
        }
    }

    /// Badge text: `live`, `stale 42 s`, `rebuilding 43 %`, `offline 12 s`.
    pub fn label(self, lang: Lang) -> String {
        let age = |ms: i64| duration(Some(ms.max(0) as f64));
        match self {
            Freshness::Connecting => lang.text(Text::Connecting).into(),
            Freshness::Live => lang.text(Text::Live).into(),
            Freshness::Rebuilding(done) => format!(
                "{} {}",
                lang.text(Text::Rebuilding),
                percent(Some(done.clamp(0.0, 1.0)), lang)
            ),
            Freshness::Stale(ms) => format!("{} {}", lang.text(Text::Stale), age(ms)),
            Freshness::Quiet(ms) => format!("{} {}", lang.text(Text::Quiet), age(ms)),
            Freshness::Partial { live, total } => {
                format!("{} {live}/{total}", lang.text(Text::Partial))
            }
            Freshness::Waiting => lang.text(Text::Waiting).into(),
            Freshness::Offline { age_ms, .. } => {
                format!("{} {}", lang.text(Text::Offline), age(age_ms))
            }
        }
    }

    /// Numbers are shown as live only when this is true; otherwise they are greyed.
    pub fn is_live(self) -> bool {
        matches!(self, Freshness::Live)
    }

    pub fn class(self) -> &'static str {
        match self {
            Freshness::Live => "badge live",
            Freshness::Rebuilding(_)
            | Freshness::Connecting
            | Freshness::Partial { .. }
            | Freshness::Waiting
            | Freshness::Quiet(_) => "badge rebuilding",
            Freshness::Stale(_) | Freshness::Offline { .. } => "badge stale",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_ranges_read_like_people_say_them() {
        let w = |low_ms, high_ms| Some(EstimatedWait { low_ms, high_ms });
        assert_eq!(wait_range(w(300_000, Some(600_000))), "5–10 min");
        assert_eq!(wait_range(w(0, Some(40_000))), "< 1 min");
        assert_eq!(wait_range(w(1_800_000, None)), "> 30 min");
        assert_eq!(wait_range(w(3_600_000, Some(7_300_000))), "1–3 h");
        assert_eq!(wait_range(w(300_000, Some(290_000))), "5 min");
        assert_eq!(wait_range(None), "–");
    }

    const QUIET: u64 = 120_000;

    #[test]
    fn the_badge_follows_the_server_status() {
        let now = 1_000_000.0;
        let live = StatusReport {
            live: true,
            watermark: Some(990_000),
            ..StatusReport::default()
        };
        assert_eq!(Freshness::of_status(&live, now, QUIET), Freshness::Live);
        let rebuilding = StatusReport {
            live: false,
            rebuilding: Some(0.4),
            ..live.clone()
        };
        assert_eq!(
            Freshness::of_status(&rebuilding, now, QUIET),
            Freshness::Rebuilding(0.4)
        );
        let stale = StatusReport {
            stale: true,
            ..live.clone()
        };
        assert_eq!(
            Freshness::of_status(&stale, now, QUIET),
            Freshness::Stale(10_000)
        );
        let missing = StatusReport {
            live: false,
            partitions: Some(vigie_proto::PartitionsReport {
                total: 6,
                live: 4,
                rebuilding: Vec::new(),
                missing: vec![1, 4],
            }),
            ..live.clone()
        };
        assert_eq!(
            Freshness::of_status(&missing, now, QUIET),
            Freshness::Partial { live: 4, total: 6 }
        );
        let whole = StatusReport {
            live: true,
            partitions: Some(vigie_proto::PartitionsReport {
                total: 6,
                live: 6,
                ..Default::default()
            }),
            ..live
        };
        assert_eq!(Freshness::of_status(&whole, now, QUIET), Freshness::Live);
        // Consumed live, but the newest event is 3 minutes old.
        let quiet = StatusReport {
            watermark: Some(820_000),
            ..StatusReport {
                live: true,
                ..StatusReport::default()
            }
        };
        assert_eq!(
            Freshness::of_status(&quiet, now, QUIET),
            Freshness::Quiet(180_000)
        );
        assert_eq!(
            Freshness::of_status(&quiet, now, 200_000),
            Freshness::Live,
            "within its own quiet limit"
        );
        let waiting = StatusReport {
            waiting: true,
            ..StatusReport::default()
        };
        assert_eq!(
            Freshness::of_status(&waiting, now, QUIET),
            Freshness::Waiting
        );
    }

    #[test]
    fn the_badge_never_calls_old_numbers_live() {
        let offline = Freshness::Offline {
            age_ms: 12_000,
            retry_in_ms: 2_000,
        };
        for (badge, lang, says) in [
            (Freshness::Live, Lang::En, "live"),
            (Freshness::Stale(42_000), Lang::En, "stale 42 s"),
            (Freshness::Rebuilding(0.43), Lang::En, "rebuilding 43%"),
            (
                Freshness::Rebuilding(0.43),
                Lang::Fr,
                "reconstruction 43\u{202f}%",
            ),
            (offline, Lang::Fr, "hors ligne 12 s"),
            (
                Freshness::Partial { live: 4, total: 6 },
                Lang::Fr,
                "partiel 4/6",
            ),
            (
                Freshness::Quiet(185_000),
                Lang::Fr,
                "aucun événement depuis 3 min 05",
            ),
            (Freshness::Quiet(185_000), Lang::En, "no event for 3 min 05"),
            (Freshness::Waiting, Lang::En, "waiting for partitions"),
            (Freshness::Waiting, Lang::Fr, "en attente des partitions"),
        ] {
            assert_eq!(badge.label(lang), says);
        }
        for f in [
            Freshness::Partial { live: 5, total: 6 },
            Freshness::Waiting,
            Freshness::Connecting,
            Freshness::Rebuilding(0.99),
            Freshness::Stale(1_000),
            Freshness::Quiet(180_000),
            Freshness::Offline {
                age_ms: 0,
                retry_in_ms: 0,
            },
        ] {
            assert!(!f.is_live(), "{f:?}");
        }
    }
}
