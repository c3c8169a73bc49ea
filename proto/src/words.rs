//! Owns the words people read that the server and the cockpit share, in French and
//! English: KPI and channel names, how rates, durations and counts read, and an alert as
//! one line. A wall screen and a chat message then say the same thing the same way.

use serde::{Deserialize, Serialize};

pub use crate::alert::Unit;
use crate::{Alert, AlertState, Kpi};

/// The language of a page or of chat notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Fr,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// From a code or a browser locale (`fr-FR`, `EN`).
    pub fn from_code(code: &str) -> Option<Lang> {
        match code.get(..2)?.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }
}

/// One label in both languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    pub en: &'static str,
    pub fr: &'static str,
}

impl Label {
    pub const fn get(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Fr => self.fr,
        }
    }
}

/// Declares `pub const NAME: Label` for each `NAME => "English", "Français";`.
#[macro_export]
macro_rules! labels {
    ($($name:ident => $en:expr, $fr:expr;)*) => {
        $(pub const $name: $crate::words::Label = $crate::words::Label { en: $en, fr: $fr };)*
    };
}

/// The labels shared by the cockpit and the chat notifications.
pub mod label {
    crate::labels! {
        TOTAL => "All channels", "Tous canaux";
        SERVICE_LEVEL => "Service level", "Niveau de service";
        ANSWER_RATE => "Answer rate", "Taux de décroché";
        ABANDON_RATE => "Abandon rate", "Taux d'abandon";
        DEFLECTION_RATE => "Deflection rate", "Taux de déviation";
        REPEAT_RATE => "Repeat rate", "Taux de réitération";
        CROSS_CHANNEL => "Cross-channel reiteration", "Réitération multicanal";
        ONCE_AND_DONE => "Once and done", "Résolu au 1er contact";
        ASA => "Avg. speed of answer", "Délai moyen de réponse";
        AHT => "Avg. handling time", "Durée moyenne de traitement";
        WAIT_P90 => "90th percentile wait", "Attente au 90e centile";
        ARRIVALS => "Contacts", "Contacts";
        IN_QUEUE => "In queue", "En attente";
        OLDEST_WAIT => "Oldest wait", "Plus longue attente";
        CONSUMER_LAG => "Consumer lag (records behind)", "Retard de lecture (enregistrements)";
        DEAD_LETTERED => "Records dead-lettered", "Enregistrements rejetés";
        DEAD_LETTER_FAILURES => "Rejected records not dead-lettered", "Rejets non archivés";
        SILENCE => "Time since the newest event", "Temps depuis le dernier événement";
        PARTITIONS_NOT_LIVE => "Partitions not live", "Partitions non à jour";
        VOLUME_VS_BASELINE => "Contacts vs usual", "Contacts vs habitude";
        STALE_FIRING => "The Kafka broker is unreachable: the numbers shown are the last known",
            "Le courtier Kafka est injoignable : les chiffres affichés sont les derniers connus";
        STALE_RESOLVED => "The Kafka broker is reachable again", "Le courtier Kafka est de nouveau joignable";
        THRESHOLD => "threshold", "seuil";
    }
}

/// The label and unit of a KPI by its code (`service_level`, `oldest_wait`, ...): every
/// KPI an alert rule can watch but `stale`, which reads as a sentence.
pub fn kpi(code: &str) -> Option<(Label, Unit)> {
    use label::*;
    let kpi = Kpi::parse(code)?;
    let label = match kpi {
        Kpi::ServiceLevel => SERVICE_LEVEL,
        Kpi::AnswerRate => ANSWER_RATE,
        Kpi::AbandonRate => ABANDON_RATE,
        Kpi::DeflectionRate => DEFLECTION_RATE,
        Kpi::RepeatRate => REPEAT_RATE,
        Kpi::CrossChannelRepeatRate => CROSS_CHANNEL,
        Kpi::OnceAndDoneRate => ONCE_AND_DONE,
        Kpi::Asa => ASA,
        Kpi::Aht => AHT,
        Kpi::WaitP90 => WAIT_P90,
        Kpi::Arrivals => ARRIVALS,
        Kpi::InQueue => IN_QUEUE,
        Kpi::OldestWait => OLDEST_WAIT,
        Kpi::ConsumerLag => CONSUMER_LAG,
        Kpi::DeadLettered => DEAD_LETTERED,
        Kpi::DeadLetterFailures => DEAD_LETTER_FAILURES,
        Kpi::Silence => SILENCE,
        Kpi::PartitionsNotLive => PARTITIONS_NOT_LIVE,
        Kpi::VolumeVsBaseline => VOLUME_VS_BASELINE,
        Kpi::Stale => return None,
    };
    Some((label, kpi.unit()))
}

/// A channel's name as the users say it.
pub fn channel_name(lang: Lang, channel: &str) -> String {
    let known = match (lang, channel) {
        (Lang::En, "phone") => "Phone",
        (Lang::Fr, "phone") => "Téléphone",
        (_, "chat") => "Chat",
        (_, "email") => "E-mail",
        (Lang::En, "messaging") => "Messaging",
        (Lang::Fr, "messaging") => "Messagerie",
        (Lang::En, "social") => "Social",
        (Lang::Fr, "social") => "Réseaux sociaux",
        (Lang::En, "callback") => "Callback",
        (Lang::Fr, "callback") => "Rappel",
        (Lang::En, "visual_ivr") => "Visual IVR",
        (Lang::Fr, "visual_ivr") => "SVI visuel",
        (Lang::En, "voicebot") => "Voicebot",
        (Lang::Fr, "voicebot") => "Callbot",
        (_, "chatbot") => "Chatbot",
        (Lang::En, "webform") => "Web form",
        (Lang::Fr, "webform") => "Formulaire web",
        (Lang::En, "dissuasion") => "Dissuasion message",
        (Lang::Fr, "dissuasion") => "Message de dissuasion",
        // A channel Vigie does not know (kept as sent, shown as its own channel): its
        // name made readable, capitalised like the known ones (ASCII only: Unicode's
        // case tables would add 8 KiB to the cockpit for channel codes that are ASCII).
        _ => {
            let mut spaced = channel.replace('_', " ");
            if let Some(first) = spaced.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            return spaced;
        }
    };
    known.to_string()
}

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

/// A value of `unit` as it reads.
pub fn value(v: f64, unit: Unit, lang: Lang) -> String {
    match unit {
        Unit::Rate => percent(Some(v), lang),
        Unit::Millis => duration(Some(v)),
        Unit::Count => count(v.max(0.0) as u64),
        Unit::Change => change(Some(v), lang),
    }
}

/// A relative change with its sign: `+23%`, `−40 %` (French spacing); `–` when unknown.
pub fn change(value: Option<f64>, lang: Lang) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "–".into();
    };
    let magnitude = percent(Some(v.abs()), lang);
    if magnitude.starts_with('0') {
        return magnitude;
    }
    format!("{}{magnitude}", if v < 0.0 { '\u{2212}' } else { '+' })
}

/// Where an alert applies (`total`, or `channel=phone queue=billing`), as people say it:
/// `All channels`, `Téléphone · billing`.
pub fn scope(scope: &str, lang: Lang) -> String {
    if scope.is_empty() || scope == "total" {
        return label::TOTAL.get(lang).to_string();
    }
    scope
        .split_whitespace()
        .map(|part| match part.split_once('=') {
            Some(("channel", c)) => channel_name(lang, c),
            Some((_, value)) => value.to_string(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// An alert as one line: where, what, the value and the threshold, e.g.
/// `Téléphone — Niveau de service 62 % (seuil 80 %)`; health alerts (consumer lag,
/// dead letters, silence, an unreachable broker) without a scope. A KPI unknown here keeps the
/// server's summary.
pub fn alert_line(alert: &Alert, lang: Lang) -> String {
    // The autopilot says what it proposes or did in a sentence of its own.
    if alert.autopilot.is_some() {
        return alert.summary.clone();
    }
    if alert.kpi == "stale" {
        let sentence = match alert.state {
            AlertState::Resolved => label::STALE_RESOLVED,
            _ => label::STALE_FIRING,
        };
        return sentence.get(lang).to_string();
    }
    let Some((kpi_label, unit)) = kpi(&alert.kpi) else {
        return alert.summary.clone();
    };
    let shown = alert
        .value
        .map_or_else(|| "–".to_string(), |v| value(v, unit, lang));
    let what = format!(
        "{} {shown} ({} {})",
        kpi_label.get(lang),
        label::THRESHOLD.get(lang),
        value(alert.threshold, unit, lang)
    );
    match alert.kpi.as_str() {
        "consumer_lag" | "dead_lettered" | "silence" => what,
        _ => format!("{} — {what}", scope(&alert.scope, lang)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    #[test]
    fn changes_read_with_their_sign() {
        assert_eq!(change(Some(0.234), Lang::En), "+23%");
        assert_eq!(change(Some(-0.4), Lang::Fr), "\u{2212}40\u{202f}%");
        assert_eq!(change(Some(0.0), Lang::En), "0%");
        assert_eq!(change(None, Lang::En), "–");
    }

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
    fn counts_group_thousands() {
        assert_eq!(count(7), "7");
        assert_eq!(count(12_345), "12\u{202f}345");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
    }

    #[test]
    fn languages_parse_from_codes_and_browser_locales() {
        assert_eq!(Lang::from_code("fr-FR"), Some(Lang::Fr));
        assert_eq!(Lang::from_code("EN"), Some(Lang::En));
        assert_eq!(Lang::from_code("de"), None);
        assert_eq!(Lang::from_code(""), None);
    }

    #[test]
    fn channels_are_named_as_people_say_them() {
        assert_eq!(channel_name(Lang::Fr, "visual_ivr"), "SVI visuel");
        assert_eq!(channel_name(Lang::Fr, "webform"), "Formulaire web");
        assert_eq!(channel_name(Lang::En, "web_form"), "Web form");
        assert_eq!(
            channel_name(Lang::En, "kiosk"),
            "Kiosk",
            "unknown channels too"
        );
        assert_eq!(
            channel_name(Lang::En, "éco_kiosk"),
            "éco kiosk",
            "never split"
        );
        assert_eq!(channel_name(Lang::En, ""), "");
    }

    fn alert(kpi: &str, scope: &str, value: Option<f64>, threshold: f64) -> Alert {
        Alert {
            id: "r.1".into(),
            rule: "r".into(),
            severity: Severity::Critical,
            state: AlertState::Firing,
            summary: "the server's summary".into(),
            since: 0,
            acknowledged_by: None,
            kpi: kpi.into(),
            scope: scope.into(),
            value,
            threshold,
            clear: threshold,
            acknowledged_at: None,
            ack_note: None,
            resolved_at: None,
            sinks: Vec::new(),
            autopilot: None,
        }
    }

    #[test]
    fn alerts_read_in_each_language() {
        let sl = alert(
            "service_level",
            "channel=phone queue=billing",
            Some(0.62),
            0.8,
        );
        assert_eq!(
            alert_line(&sl, Lang::Fr),
            "Téléphone · billing — Niveau de service 62\u{202f}% (seuil 80\u{202f}%)"
        );
        let stuck = alert("oldest_wait", "total", Some(725_000.0), 600_000.0);
        assert_eq!(
            alert_line(&stuck, Lang::En),
            "All channels — Oldest wait 12 min 05 (threshold 10 min 00)"
        );
        let lag = alert("consumer_lag", "total", Some(12_345.0), 10_000.0);
        assert_eq!(
            alert_line(&lag, Lang::Fr),
            "Retard de lecture (enregistrements) 12\u{202f}345 (seuil 10\u{202f}000)",
            "health alerts have no scope"
        );
        let mut stale = alert("stale", "total", Some(1.0), 0.0);
        assert!(alert_line(&stale, Lang::Fr).starts_with("Le courtier Kafka est injoignable"));
        stale.state = AlertState::Resolved;
        assert_eq!(
            alert_line(&stale, Lang::En),
            "The Kafka broker is reachable again"
        );
        let unknown = alert("happiness", "total", Some(1.0), 0.0);
        assert_eq!(alert_line(&unknown, Lang::Fr), "the server's summary");
        let no_value = alert("abandon_rate", "channel=chat", None, 0.1);
        assert_eq!(
            alert_line(&no_value, Lang::En),
            "Chat — Abandon rate – (threshold 10%)"
        );
    }
}
