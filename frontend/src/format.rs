//! Owns how numbers read on a wall screen: percentages, durations, wait ranges and the
//! freshness badge. Pure functions, unit-tested natively.

use vigie_proto::{EstimatedWait, StatusReport};

use crate::i18n::{Lang, Text};

/// `87 %` (French spacing) or `87%`; one decimal under 10 % so small rates still move.
pub fn percent(value: Option<f64>, lang: Lang) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "–".into();
    };
    let pct = v * 100.0;
    let number = if pct > 0.0 && pct < 10.0 {
        let s = format!("{pct:.1}");
        match lang {
            Lang::Fr => s.replace('.', ","),
            Lang::En => s,
        }
    } else {
        format!("{pct:.0}")
    };
    match lang {
        Lang::Fr => format!("{number}\u{202f}%"),
        Lang::En => format!("{number}%"),
    }
}

/// A wait or handling time: `45 s`, `3 min 05`, `1 h 12`.
pub fn duration(ms: Option<f64>) -> String {
    let Some(ms) = ms.filter(|v| v.is_finite() && *v >= 0.0) else {
        return "–".into();
    };
    let s = (ms / 1000.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min {:02}", s / 60, s % 60),
        _ => format!("{} h {:02}", s / 3_600, s % 3_600 / 60),
    }
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

/// A plain count with thin thousands separators: `12 345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// An alert as one line in the page's language: where, what, the value and the
/// threshold, e.g. `Téléphone — Niveau de service 62 % (seuil 80 %)`. KPIs without a
/// label of their own keep the server's summary.
pub fn alert_line(alert: &vigie_proto::Alert, lang: Lang) -> String {
    enum Unit {
        Rate,
        Duration,
        Count,
    }
    let (label, unit) = match alert.kpi.as_str() {
        "service_level" => (Text::ServiceLevel, Unit::Rate),
        "answer_rate" => (Text::AnswerRate, Unit::Rate),
        "abandon_rate" => (Text::AbandonRate, Unit::Rate),
        "once_and_done_rate" => (Text::OnceAndDone, Unit::Rate),
        "cross_channel_repeat_rate" => (Text::CrossChannel, Unit::Rate),
        "asa" => (Text::Asa, Unit::Duration),
        "oldest_wait" => (Text::OldestWait, Unit::Duration),
        "in_queue" => (Text::InQueue, Unit::Count),
        _ => return alert.summary.clone(),
    };
    let show = |v: f64| match unit {
        Unit::Rate => percent(Some(v), lang),
        Unit::Duration => duration(Some(v)),
        Unit::Count => count(v.max(0.0) as u64),
    };
    let scope = if alert.scope.is_empty() || alert.scope == "total" {
        lang.text(Text::Total).to_string()
    } else {
        alert
            .scope
            .split_whitespace()
            .map(|part| match part.split_once('=') {
                Some(("channel", c)) => crate::i18n::channel_name(lang, c),
                Some((_, value)) => value.to_string(),
                None => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let value = alert.value.map_or_else(|| "–".to_string(), show);
    format!(
        "{scope} — {} {value} ({} {})",
        lang.text(label),
        lang.text(Text::Threshold),
        show(alert.threshold)
    )
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
    /// Scale-out: only `live` of the topic's `total` partitions are live in the merged
    /// view (an instance died and its partitions are not taken over yet).
    Partial { live: usize, total: usize },
    /// No link to the server; retrying in this many ms. The numbers are the last seen.
    Offline { age_ms: i64, retry_in_ms: i64 },
}

impl Freshness {
    /// What the server's last `status` says, at `now` (epoch ms), the link being open.
    pub fn of_status(s: &StatusReport, now: f64) -> Freshness {
        let age = || s.watermark.map_or(0, |w| (now - w as f64).max(0.0) as i64);
        let partial = s.partitions.as_ref().filter(|p| p.live < p.total);
        match (s.rebuilding, partial) {
            (Some(done), _) => Freshness::Rebuilding(done),
            _ if s.stale => Freshness::Stale(age()),
            (None, Some(p)) => Freshness::Partial {
                live: p.live,
                total: p.total,
            },
            _ if !s.live => Freshness::Stale(age()),
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
            Freshness::Partial { live, total } => {
                format!("{} {live}/{total}", lang.text(Text::Partial))
            }
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
            Freshness::Rebuilding(_) | Freshness::Connecting | Freshness::Partial { .. } => {
                "badge rebuilding"
            }
            Freshness::Stale(_) | Freshness::Offline { .. } => "badge stale",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_in_each_language() {
        assert_eq!(percent(Some(0.8734), Lang::En), "87%");
        assert_eq!(percent(Some(0.8734), Lang::Fr), "87\u{202f}%");
        assert_eq!(percent(Some(0.042), Lang::Fr), "4,2\u{202f}%");
        assert_eq!(percent(Some(0.042), Lang::En), "4.2%");
        assert_eq!(percent(Some(0.0), Lang::En), "0%");
        assert_eq!(percent(None, Lang::En), "–");
        assert_eq!(percent(Some(f64::NAN), Lang::En), "–");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(Some(45_400.0)), "45 s");
        assert_eq!(duration(Some(185_000.0)), "3 min 05");
        assert_eq!(duration(Some(4_320_000.0)), "1 h 12");
        assert_eq!(duration(None), "–");
        assert_eq!(duration(Some(-5.0)), "–");
    }

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

    #[test]
    fn alerts_read_in_the_page_language() {
        let alert = vigie_proto::Alert {
            id: "sl.1".into(),
            rule: "sl".into(),
            severity: vigie_proto::Severity::Critical,
            state: vigie_proto::AlertState::Firing,
            summary: "service_level of channel=phone over 15m is 62.0 %, below 80.0 %".into(),
            since: 0,
            acknowledged_by: None,
            kpi: "service_level".into(),
            scope: "channel=phone queue=billing".into(),
            value: Some(0.62),
            threshold: 0.8,
            clear: 0.85,
            acknowledged_at: None,
            ack_note: None,
            resolved_at: None,
            sinks: Vec::new(),
        };
        assert_eq!(
            alert_line(&alert, Lang::Fr),
            "Téléphone · billing — Niveau de service 62\u{202f}% (seuil 80\u{202f}%)"
        );
        let stuck = vigie_proto::Alert {
            kpi: "oldest_wait".into(),
            scope: "total".into(),
            value: Some(725_000.0),
            threshold: 600_000.0,
            ..alert.clone()
        };
        assert_eq!(
            alert_line(&stuck, Lang::En),
            "All channels — Oldest wait 12 min 05 (threshold 10 min 00)"
        );
        let lag = vigie_proto::Alert {
            kpi: "consumer_lag".into(),
            ..alert.clone()
        };
        assert_eq!(
            alert_line(&lag, Lang::En),
            alert.summary,
            "no label: the server's line"
        );
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(7), "7");
        assert_eq!(count(12_345), "12\u{202f}345");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
    }

    #[test]
    fn the_badge_follows_the_server_status() {
        let now = 1_000_000.0;
        let live = StatusReport {
            live: true,
            watermark: Some(990_000),
            ..StatusReport::default()
        };
        assert_eq!(Freshness::of_status(&live, now), Freshness::Live);
        let rebuilding = StatusReport {
            live: false,
            rebuilding: Some(0.4),
            ..live.clone()
        };
        assert_eq!(
            Freshness::of_status(&rebuilding, now),
            Freshness::Rebuilding(0.4)
        );
        let stale = StatusReport {
            stale: true,
            ..live.clone()
        };
        assert_eq!(Freshness::of_status(&stale, now), Freshness::Stale(10_000));
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
            Freshness::of_status(&missing, now),
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
        assert_eq!(Freshness::of_status(&whole, now), Freshness::Live);
    }

    #[test]
    fn the_badge_never_calls_old_numbers_live() {
        assert_eq!(Freshness::Live.label(Lang::En), "live");
        assert_eq!(Freshness::Stale(42_000).label(Lang::En), "stale 42 s");
        assert_eq!(
            Freshness::Rebuilding(0.43).label(Lang::En),
            "rebuilding 43%"
        );
        assert_eq!(
            Freshness::Rebuilding(0.43).label(Lang::Fr),
            "reconstruction 43\u{202f}%"
        );
        assert_eq!(
            Freshness::Offline {
                age_ms: 12_000,
                retry_in_ms: 2_000
            }
            .label(Lang::Fr),
            "hors ligne 12 s"
        );
        assert_eq!(
            Freshness::Partial { live: 4, total: 6 }.label(Lang::Fr),
            "partiel 4/6"
        );
        for f in [
            Freshness::Partial { live: 5, total: 6 },
            Freshness::Connecting,
            Freshness::Rebuilding(0.99),
            Freshness::Stale(1_000),
            Freshness::Offline {
                age_ms: 0,
                retry_in_ms: 0,
            },
        ] {
            assert!(!f.is_live(), "{f:?}");
        }
    }
}
