//! Owns the payloads posted to each kind of sink (Slack, Mattermost, Microsoft Teams,
//! generic JSON) and the HMAC-SHA256 signature of the generic one.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use vigie_proto::{AlertState, Severity};

use super::lifecycle::{Notice, NoticeKind};
use crate::config::SinkKind;

/// Version of the generic JSON schema (`schema` field).
pub const JSON_SCHEMA: &str = "vigie.alert.v1";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` on `json` sinks.
pub const SIGNATURE_HEADER: &str = "x-vigie-signature";
/// Header carrying the delivery id (stable across retries: receivers dedupe on it).
pub const DELIVERY_HEADER: &str = "x-vigie-delivery";
/// Header carrying the event (`fired`, `reminder`, `acknowledged`, `resolved`).
pub const EVENT_HEADER: &str = "x-vigie-event";

/// The body posted to a sink of `kind` for `notice`.
pub fn render(kind: SinkKind, notice: &Notice) -> String {
    let value = match kind {
        SinkKind::Slack => slack(notice, false),
        SinkKind::Mattermost => slack(notice, true),
        SinkKind::Teams => teams(notice),
        SinkKind::Json => generic(notice),
    };
    value.to_string()
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

fn title(notice: &Notice) -> String {
    let a = &notice.alert;
    let what = match notice.kind {
        NoticeKind::Fired => "FIRING",
        NoticeKind::Reminder => "STILL FIRING",
        NoticeKind::Acknowledged => "ACKNOWLEDGED",
        NoticeKind::Resolved => "RESOLVED",
    };
    format!("[{what}] {} ({})", a.rule, severity_name(a.severity))
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Who acknowledged, when the alert was.
fn ack_line(notice: &Notice) -> Option<String> {
    let a = &notice.alert;
    a.acknowledged_by.as_ref().map(|who| match &a.ack_note {
        Some(note) => format!("Acknowledged by {who}: {note}"),
        None => format!("Acknowledged by {who}"),
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

fn fields(notice: &Notice) -> Vec<(&'static str, String)> {
    let a = &notice.alert;
    let mut f = vec![
        ("KPI", a.kpi.clone()),
        ("Scope", a.scope.clone()),
        ("Since", crate::event::format_rfc3339_ms(a.since)),
    ];
    if let Some(at) = a.resolved_at.filter(|_| a.state == AlertState::Resolved) {
        f.push(("Resolved", crate::event::format_rfc3339_ms(at)));
    }
    if let Some(line) = ack_line(notice) {
        f.push(("Acknowledged", line));
    }
    f
}

/// Slack incoming webhook (`text` + one coloured attachment); Mattermost takes the same
/// shape, plus the name to post as.
fn slack(notice: &Notice, mattermost: bool) -> Value {
    let text = format!("{}: {}", title(notice), notice.alert.summary);
    let mut body = json!({
        "text": text,
        "attachments": [{
            "fallback": text,
            "color": colour(notice),
            "title": title(notice),
            "text": notice.alert.summary,
            "fields": fields(notice).into_iter()
                .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
                .collect::<Vec<_>>(),
            "footer": format!("Vigie · alert {}", notice.alert.id),
            "ts": notice.at / 1000,
        }],
    });
    if mattermost {
        body["username"] = json!("Vigie");
    }
    body
}

/// Microsoft Teams (Workflows / incoming webhook): a message with one Adaptive Card.
fn teams(notice: &Notice) -> Value {
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
                    {"type": "TextBlock", "text": title(notice), "weight": "Bolder",
                     "size": "Medium", "color": style, "wrap": true},
                    {"type": "TextBlock", "text": notice.alert.summary, "wrap": true},
                    {"type": "FactSet", "facts": fields(notice).into_iter()
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
        let slack: Value = serde_json::from_str(&render(SinkKind::Slack, &n)).expect("json");
        assert!(slack["text"].as_str().is_some_and(|t| t.contains("FIRING")));
        assert_eq!(slack["attachments"][0]["color"], "#d00000");
        assert!(slack.get("username").is_none());
        let mm: Value = serde_json::from_str(&render(SinkKind::Mattermost, &n)).expect("json");
        assert_eq!(mm["username"], "Vigie");
        let teams: Value = serde_json::from_str(&render(SinkKind::Teams, &n)).expect("json");
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        let generic: Value = serde_json::from_str(&render(SinkKind::Json, &n)).expect("json");
        assert_eq!(generic["schema"], JSON_SCHEMA);
        assert_eq!(generic["event"], "fired");
        assert_eq!(generic["delivery_id"], "sl.1.fired");
        assert_eq!(generic["alert"]["value"], 0.62);
    }
}
