//! Owns the payloads posted to each kind of sink (Slack, Mattermost, Microsoft Teams,
//! generic JSON) and the HMAC-SHA256 signature of the generic one.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use vigie_proto::words::{self, Label, Lang};
use vigie_proto::{AlertState, Severity};

use super::lifecycle::{Notice, NoticeKind};
use crate::config::SinkKind;

/// Version of the generic JSON schema (`schema` field).
pub(crate) const JSON_SCHEMA: &str = "vigie.alert.v1";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` on `json` sinks.
pub(crate) const SIGNATURE_HEADER: &str = "x-vigie-signature";
/// Header carrying the delivery id (stable across retries: receivers dedupe on it).
pub(crate) const DELIVERY_HEADER: &str = "x-vigie-delivery";
/// Header carrying the event (`fired`, `reminder`, `acknowledged`, `resolved`).
pub(crate) const EVENT_HEADER: &str = "x-vigie-event";

/// The body posted to a sink of `kind` for `notice`, read in `lang` (chat sinks).
pub(crate) fn render(kind: SinkKind, lang: Lang, notice: &Notice) -> String {
    let value = match kind {
        SinkKind::Slack => slack(notice, lang, false),
        SinkKind::Mattermost => slack(notice, lang, true),
        SinkKind::Teams => teams(notice, lang),
        SinkKind::Json => generic(notice),
    };
    value.to_string()
}

/// The words of chat messages besides the alert line itself ([`words::alert_line`]).
mod label {
    vigie_proto::labels! {
        FIRING => "FIRING", "ALERTE";
        STILL_FIRING => "STILL FIRING", "TOUJOURS EN ALERTE";
        ACKNOWLEDGED => "ACKNOWLEDGED", "PRISE EN CHARGE";
        RESOLVED => "RESOLVED", "RÉSOLUE";
        INFO => "info", "info";
        WARNING => "warning", "avertissement";
        CRITICAL => "critical", "critique";
        KPI => "KPI", "Indicateur";
        SCOPE => "Scope", "Périmètre";
        SINCE => "Since", "Depuis";
        RESOLVED_AT => "Resolved", "Résolue";
        ACKNOWLEDGED_FIELD => "Acknowledged", "Prise en charge";
        ACKNOWLEDGED_BY => "Acknowledged by", "Prise en charge par";
        ALERT => "alert", "alerte";
    }
}

/// The alert itself, one line: the server's summary in English (it names the window),
/// the wall's line in French.
fn line(notice: &Notice, lang: Lang) -> String {
    match lang {
        Lang::En => notice.alert.summary.clone(),
        Lang::Fr => words::alert_line(&notice.alert, lang),
    }
}

/// `sha256=<lowercase hex of HMAC-SHA256(key, body)>`.
pub fn sign(key: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn title(notice: &Notice, lang: Lang) -> String {
    let a = &notice.alert;
    let what = match notice.kind {
        NoticeKind::Fired => label::FIRING,
        NoticeKind::Reminder => label::STILL_FIRING,
        NoticeKind::Acknowledged => label::ACKNOWLEDGED,
        NoticeKind::Resolved => label::RESOLVED,
    };
    let severity = match a.severity {
        Severity::Info => label::INFO,
        Severity::Warning => label::WARNING,
        Severity::Critical => label::CRITICAL,
    };
    format!("[{}] {} ({})", what.get(lang), a.rule, severity.get(lang))
}

/// `:`, or in French ` :` (a no-break space before the colon).
fn colon(lang: Lang) -> &'static str {
    match lang {
        Lang::En => ":",
        Lang::Fr => "\u{a0}:",
    }
}

/// Who acknowledged, when the alert was.
fn ack_line(notice: &Notice, lang: Lang) -> Option<String> {
    let a = &notice.alert;
    let colon = colon(lang);
    let by = label::ACKNOWLEDGED_BY.get(lang);
    a.acknowledged_by.as_ref().map(|who| match &a.ack_note {
        Some(note) => format!("{by} {who}{colon} {note}"),
        None => format!("{by} {who}"),
    })
}

fn colour(notice: &Notice) -> &'static str {
    match (notice.kind, notice.alert.severity) {
        (NoticeKind::Resolved, _) => "#2eb886",
        (NoticeKind::Acknowledged, _) => "#439fe0",
        (_, Severity::Critical) => "#d00000",
        (_, Severity::Warning) => "#daa038",
        (_, Severity::Info) => "#439fe0",
    }
}

fn fields(notice: &Notice, lang: Lang) -> Vec<(&'static str, String)> {
    let a = &notice.alert;
    // English keeps the codes (what a rule is written with); French, the wall's words.
    let (kpi, scope) = match lang {
        Lang::En => (a.kpi.clone(), a.scope.clone()),
        Lang::Fr => (
            words::kpi(&a.kpi).map_or_else(|| a.kpi.clone(), |(l, _)| l.get(lang).to_string()),
            words::scope(&a.scope, lang),
        ),
    };
    let field = |l: Label| l.get(lang);
    let mut f = vec![
        (field(label::KPI), kpi),
        (field(label::SCOPE), scope),
        (
            field(label::SINCE),
            crate::event::format_rfc3339_ms(a.since),
        ),
    ];
    if let Some(at) = a.resolved_at.filter(|_| a.state == AlertState::Resolved) {
        f.push((
            field(label::RESOLVED_AT),
            crate::event::format_rfc3339_ms(at),
        ));
    }
    if let Some(line) = ack_line(notice, lang) {
        f.push((field(label::ACKNOWLEDGED_FIELD), line));
    }
    f
}

/// Slack incoming webhook (`text` + one coloured attachment); Mattermost takes the same
/// shape, plus the name to post as.
fn slack(notice: &Notice, lang: Lang, mattermost: bool) -> Value {
    let (title, line) = (title(notice, lang), line(notice, lang));
    let text = format!("{title}{} {line}", colon(lang));
    let mut body = json!({
        "text": text,
        "attachments": [{
            "fallback": text,
            "color": colour(notice),
            "title": title,
            "text": line,
            "fields": fields(notice, lang).into_iter()
                .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
                .collect::<Vec<_>>(),
            "footer": format!("Vigie · {} {}", label::ALERT.get(lang), notice.alert.id),
            "ts": notice.at / 1000,
        }],
    });
    if mattermost {
        body["username"] = json!("Vigie");
    }
    body
}

/// Microsoft Teams (Workflows / incoming webhook): a message with one Adaptive Card.
fn teams(notice: &Notice, lang: Lang) -> Value {
    let style = match (notice.kind, notice.alert.severity) {
        (NoticeKind::Resolved, _) => "Good",
        (_, Severity::Critical) => "Attention",
        (_, Severity::Warning) => "Warning",
        _ => "Accent",
    };
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": title(notice, lang), "weight": "Bolder",
                     "size": "Medium", "color": style, "wrap": true},
                    {"type": "TextBlock", "text": line(notice, lang), "wrap": true},
                    {"type": "FactSet", "facts": fields(notice, lang).into_iter()
                        .map(|(k, v)| json!({"title": k, "value": v}))
                        .collect::<Vec<_>>()},
                ],
            },
        }],
    })
}

/// The generic, documented schema: stable field names, the alert as the API shows it.
fn generic(notice: &Notice) -> Value {
    json!({
        "schema": JSON_SCHEMA,
        "event": notice.kind.as_str(),
        "delivery_id": notice.delivery_id(),
        "at": notice.at,
        "alert": notice.alert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_proto::Alert;

    fn notice(kind: NoticeKind) -> Notice {
        Notice {
            kind,
            at: 1_700_000_000_000,
            alert: Alert {
                id: "sl.1".into(),
                rule: "sl".into(),
                severity: Severity::Critical,
                state: AlertState::Firing,
                summary: "service_level of channel=phone over 15m is 62.0 %, below 80.0 %".into(),
                since: 1_700_000_000_000,
                acknowledged_by: None,
                kpi: "service_level".into(),
                scope: "channel=phone".into(),
                value: Some(0.62),
                threshold: 0.8,
                clear: 0.85,
                acknowledged_at: None,
                ack_note: None,
                resolved_at: None,
                sinks: vec!["ops".into()],
                autopilot: None,
            },
        }
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn each_kind_has_its_shape() {
        let n = notice(NoticeKind::Fired);
        let slack: Value =
            serde_json::from_str(&render(SinkKind::Slack, Lang::En, &n)).expect("json");
        assert!(slack["text"].as_str().is_some_and(|t| t.contains("FIRING")));
        assert_eq!(slack["attachments"][0]["color"], "#d00000");
        assert!(slack.get("username").is_none());
        let mm: Value =
            serde_json::from_str(&render(SinkKind::Mattermost, Lang::En, &n)).expect("json");
        assert_eq!(mm["username"], "Vigie");
        let teams: Value =
            serde_json::from_str(&render(SinkKind::Teams, Lang::En, &n)).expect("json");
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        let generic: Value =
            serde_json::from_str(&render(SinkKind::Json, Lang::En, &n)).expect("json");
        assert_eq!(generic["schema"], JSON_SCHEMA);
        assert_eq!(generic["event"], "fired");
        assert_eq!(generic["delivery_id"], "sl.1.fired");
        assert_eq!(generic["alert"]["value"], 0.62);
    }

    #[test]
    fn chat_messages_read_in_the_sink_language() {
        let mut n = notice(NoticeKind::Fired);
        let slack: Value =
            serde_json::from_str(&render(SinkKind::Slack, Lang::Fr, &n)).expect("json");
        assert_eq!(
            slack["text"],
            "[ALERTE] sl (critique)\u{a0}: Téléphone — Niveau de service 62\u{202f}% (seuil 80\u{202f}%)"
        );
        let attachment = &slack["attachments"][0];
        assert_eq!(attachment["fields"][0]["title"], "Indicateur");
        assert_eq!(attachment["fields"][0]["value"], "Niveau de service");
        assert_eq!(attachment["fields"][1]["value"], "Téléphone");
        assert_eq!(attachment["footer"], "Vigie · alerte sl.1");

        n.kind = NoticeKind::Resolved;
        n.alert.state = AlertState::Resolved;
        n.alert.value = Some(0.86);
        n.alert.resolved_at = Some(n.at);
        n.alert.acknowledged_by = Some("ann".into());
        n.alert.ack_note = Some("renfort demandé".into());
        let teams: Value =
            serde_json::from_str(&render(SinkKind::Teams, Lang::Fr, &n)).expect("json");
        let body = &teams["attachments"][0]["content"]["body"];
        assert_eq!(body[0]["text"], "[RÉSOLUE] sl (critique)");
        assert_eq!(
            body[1]["text"],
            "Téléphone — Niveau de service 86\u{202f}% (seuil 80\u{202f}%)"
        );
        let facts = body[2]["facts"].as_array().expect("facts");
        assert!(
            facts.iter().any(|f| f["title"] == "Prise en charge"
                && f["value"] == "Prise en charge par ann\u{a0}: renfort demandé"),
            "{facts:?}"
        );

        // English keeps the server's summary and the codes; the JSON sink never changes.
        let english: Value =
            serde_json::from_str(&render(SinkKind::Slack, Lang::En, &n)).expect("json");
        assert!(english["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[RESOLVED] sl (critical): ")));
        assert_eq!(
            english["attachments"][0]["fields"][0]["value"],
            "service_level"
        );
        assert_eq!(
            render(SinkKind::Json, Lang::Fr, &n),
            render(SinkKind::Json, Lang::En, &n)
        );
    }

    /// A French chat message never falls back to the English summary: every KPI a rule
    /// can watch (all of `Kpi`) has its words, in its unit.
    #[test]
    fn every_kpi_a_rule_can_watch_has_its_words() {
        use vigie_proto::Kpi;
        for kpi in Kpi::ALL {
            let mut n = notice(NoticeKind::Fired);
            n.alert.kpi = kpi.as_str().into();
            n.alert.summary = "the English summary".into();
            let line = line(&n, Lang::Fr);
            assert_ne!(line, "the English summary", "{kpi:?}");
            if let Some((_, unit)) = words::kpi(kpi.as_str()) {
                assert_eq!(unit, kpi.unit(), "{kpi:?} reads in its own unit");
            }
        }
    }
}
