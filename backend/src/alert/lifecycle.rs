//! Owns the alert lifecycle, as a pure state machine over (rule, value, time): pending
//! for the `for` duration → firing → (acknowledged) → resolved, with hysteresis,
//! reminders, and the notices each transition raises. No I/O and no clock: the caller
//! passes the time, so tests drive it with a fake one.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use vigie_proto::{Alert, AlertState, Comparison, Kpi};

use super::rules::Rule;
use super::AlertError;

/// Resolved alerts kept for the API's history.
const HISTORY: usize = 500;

/// What the evaluator learned about a rule this round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    /// The KPI's value (`None`: undefined, e.g. no traffic in the window).
    Value(Option<f64>),
    /// Not measurable now (partitions rebuilding): the rule keeps its state.
    Skip,
}

/// Why a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Fired,
    Reminder,
    Acknowledged,
    Resolved,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Fired => "fired",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Acknowledged => "acknowledged",
            NoticeKind::Resolved => "resolved",
        }
    }
}

/// A transition to tell the sinks about.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Epoch ms of the transition.
    pub at: i64,
    /// The alert as of the transition.
    pub alert: Alert,
}

impl Notice {
    /// Unique per notification and stable across retries and restarts, so receivers can
    /// drop redeliveries: `<alert id>.<kind>[.<at>]`.
    pub fn delivery_id(&self) -> String {
        match self.kind {
            NoticeKind::Reminder => format!("{}.reminder.{}", self.alert.id, self.at),
            kind => format!("{}.{}", self.alert.id, kind.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Active {
    alert: Alert,
    /// Last fired or reminder notice, epoch ms.
    last_notified: i64,
}

/// Every rule's state: pending conditions, active alerts, resolved history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Rule → epoch ms since when its condition holds (not yet for `for`). Not persisted:
    /// after a restart a condition must hold `for` again.
    #[serde(skip)]
    pending: HashMap<String, i64>,
    /// Rule → its firing or acknowledged alert.
    active: BTreeMap<String, Active>,
    /// Resolved alerts, oldest first.
    history: VecDeque<Alert>,
}

impl Lifecycle {
    /// One evaluation round at `now_ms`: `measure` gives each rule's value. Returns the
    /// notices raised, in order.
    pub(crate) fn evaluate(
        &mut self,
        rules: &[Rule],
        now_ms: i64,
        mut measure: impl FnMut(&Rule) -> Measure,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        for rule in rules {
            let Measure::Value(value) = measure(rule) else {
                continue;
            };
            if let Some(active) = self.active.get_mut(&rule.name) {
                if rule.cleared(value) {
                    let mut alert = active.alert.clone();
                    self.active.remove(&rule.name);
                    alert.state = AlertState::Resolved;
                    alert.resolved_at = Some(now_ms);
                    alert.value = value;
                    alert.summary = resolved_summary(rule, value);
                    notices.push(Notice {
                        kind: NoticeKind::Resolved,
                        at: now_ms,
                        alert: alert.clone(),
                    });
                    self.push_history(alert);
                } else if let (AlertState::Firing, Some(every)) =
                    (active.alert.state, rule.repeat_every_ms)
                {
                    if now_ms - active.last_notified >= every {
                        active.last_notified = now_ms;
                        notices.push(Notice {
                            kind: NoticeKind::Reminder,
                            at: now_ms,
                            alert: active.alert.clone(),
                        });
                    }
                }
                continue;
            }
            match value.filter(|v| rule.breaching(*v)) {
                Some(v) => {
                    let since = *self.pending.entry(rule.name.clone()).or_insert(now_ms);
                    if now_ms - since >= rule.for_ms {
                        self.pending.remove(&rule.name);
                        let alert = Alert {
                            id: format!("{}.{now_ms}", rule.name),
                            rule: rule.name.clone(),
                            severity: rule.severity,
                            state: AlertState::Firing,
                            summary: firing_summary(rule, v),
                            since: now_ms,
                            acknowledged_by: None,
                            kpi: rule.kpi.as_str().into(),
                            scope: rule.scope_text(),
                            value: Some(v),
                            threshold: rule.threshold,
                            clear: rule.clear,
                            acknowledged_at: None,
                            ack_note: None,
                            resolved_at: None,
                            sinks: rule.sinks.clone(),
                            autopilot: None,
                        };
                        notices.push(Notice {
                            kind: NoticeKind::Fired,
                            at: now_ms,
                            alert: alert.clone(),
                        });
                        self.active.insert(
                            rule.name.clone(),
                            Active {
                                alert,
                                last_notified: now_ms,
                            },
                        );
                    }
                }
                None => {
                    self.pending.remove(&rule.name);
                }
            }
        }
        // Alerts of rules removed from the configuration (seen after a restart) resolve.
        let orphans: Vec<String> = self
            .active
            .keys()
            .filter(|name| !name.starts_with(super::AUTOPILOT_PREFIX))
            .filter(|name| !rules.iter().any(|r| &&r.name == name))
            .cloned()
            .collect();
        for name in orphans {
            if let Some(active) = self.active.remove(&name) {
                let mut alert = active.alert;
                alert.state = AlertState::Resolved;
                alert.resolved_at = Some(now_ms);
                alert.summary = format!("rule {name} is no longer configured");
                notices.push(Notice {
                    kind: NoticeKind::Resolved,
                    at: now_ms,
                    alert: alert.clone(),
                });
                self.push_history(alert);
            }
        }
        self.pending
            .retain(|name, _| rules.iter().any(|r| &r.name == name));
        notices
    }

    fn push_history(&mut self, alert: Alert) {
        self.history.push_back(alert);
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// `who` acknowledges alert `id`: the notice to send, if it changed anything
    /// (acknowledging twice keeps the first acknowledgement).
    pub fn acknowledge(
        &mut self,
        id: &str,
        who: &str,
        note: Option<String>,
        now_ms: i64,
    ) -> Result<(Alert, Option<Notice>), AlertError> {
        if let Some(active) = self.active.values_mut().find(|a| a.alert.id == id) {
            if active.alert.state == AlertState::Acknowledged {
                return Ok((active.alert.clone(), None));
            }
            let alert = &mut active.alert;
            alert.state = AlertState::Acknowledged;
            alert.acknowledged_by = Some(who.into());
            alert.acknowledged_at = Some(now_ms);
            alert.ack_note = note;
            let notice = Notice {
                kind: NoticeKind::Acknowledged,
                at: now_ms,
                alert: alert.clone(),
            };
            return Ok((alert.clone(), Some(notice)));
        }
        if self.history.iter().any(|a| a.id == id) {
            return Err(AlertError::AlreadyResolved(id.into()));
        }
        Err(AlertError::NotFound(id.into()))
    }

    /// Firing and acknowledged alerts (oldest first), then those resolved since `resolved_since`.
    /// Raises `alert` (keyed by its rule) unless one of that rule is active; the notice
    /// if it is new.
    pub(crate) fn raise(&mut self, alert: Alert) -> Option<Notice> {
        if self.active.contains_key(&alert.rule) {
            return None;
        }
        let notice = Notice {
            kind: NoticeKind::Fired,
            at: alert.since,
            alert: alert.clone(),
        };
        self.active.insert(
            alert.rule.clone(),
            Active {
                last_notified: alert.since,
                alert,
            },
        );
        Some(notice)
    }

    /// Resolves the active alert of `rule`, saying why; the notice if there was one.
    pub(crate) fn settle(&mut self, rule: &str, summary: String, now_ms: i64) -> Option<Notice> {
        let mut alert = self.active.remove(rule)?.alert;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(now_ms);
        alert.summary = summary;
        self.push_history(alert.clone());
        Some(Notice {
            kind: NoticeKind::Resolved,
            at: now_ms,
            alert,
        })
    }

    /// The active alert of `rule`.
    pub(crate) fn active(&self, rule: &str) -> Option<&Alert> {
        self.active.get(rule).map(|a| &a.alert)
    }

    pub(crate) fn visible(&self, resolved_since: i64) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self.active.values().map(|a| a.alert.clone()).collect();
        alerts.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        alerts.extend(
            self.history
                .iter()
                .filter(|a| a.resolved_at.is_some_and(|r| r >= resolved_since))
                .cloned(),
        );
        alerts
    }

    /// Alert `id`, active or resolved.
    pub fn find(&self, id: &str) -> Option<Alert> {
        self.active
            .values()
            .map(|a| &a.alert)
            .chain(self.history.iter())
            .find(|a| a.id == id)
            .cloned()
    }

    /// Resolved alerts, newest first.
    pub fn history(&self, limit: usize) -> Vec<Alert> {
        self.history.iter().rev().take(limit).cloned().collect()
    }

    /// Resolved alerts kept.
    pub(crate) fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Keeps the newest `keep` resolved alerts (a shared state too large for Kafka).
    pub(crate) fn trim_history(&mut self, keep: usize) {
        let excess = self.history.len().saturating_sub(keep);
        self.history.drain(..excess);
    }

    #[cfg(test)]
    pub(crate) fn push_resolved(&mut self, alert: Alert) {
        self.push_history(alert);
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Active alerts per severity (for metrics).
    pub(crate) fn active_by_severity(&self) -> BTreeMap<vigie_proto::Severity, usize> {
        let mut out = BTreeMap::new();
        for a in self.active.values() {
            *out.entry(a.alert.severity).or_default() += 1;
        }
        out
    }
}

fn subject(rule: &Rule) -> String {
    let scope = rule.scope_text();
    match rule.kpi {
        Kpi::ConsumerLag => "consumer lag (records behind)".into(),
        Kpi::Silence => "time since the newest event".into(),
        Kpi::PartitionsNotLive => "partitions not live in the view".into(),
        Kpi::DeadLettered => format!("records dead-lettered in the last {}", rule.window),
        Kpi::DeadLetterFailures => format!(
            "refused records not dead-lettered in the last {} (they stay in the source topic)",
            rule.window
        ),
        Kpi::InQueue | Kpi::OldestWait => format!("{} of {scope}", rule.kpi.as_str()),
        _ => format!("{} of {scope} over {}", rule.kpi.as_str(), rule.window),
    }
}

fn firing_summary(rule: &Rule, value: f64) -> String {
    if rule.kpi == Kpi::Stale {
        return "the Kafka broker is unreachable: the numbers shown are the last known".into();
    }
    let side = match rule.comparison {
        Comparison::Above => "above",
        Comparison::Below => "below",
    };
    format!(
        "{} is {}, {side} {}",
        subject(rule),
        rule.format(value),
        rule.format(rule.threshold)
    )
}

fn resolved_summary(rule: &Rule, value: Option<f64>) -> String {
    if rule.kpi == Kpi::Stale {
        return "the Kafka broker is reachable again".into();
    }
    match value {
        Some(v) => format!(
            "{} is back to {} (clears at {})",
            subject(rule),
            rule.format(v),
            rule.format(rule.clear)
        ),
        None => format!("{} is no longer measured (no traffic)", subject(rule)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::WindowSpec;
    use vigie_proto::{DimensionKey, Severity};

    fn rule(for_ms: i64, repeat: Option<i64>) -> Rule {
        Rule {
            name: "abandon".into(),
            kpi: Kpi::AbandonRate,
            scope: DimensionKey {
                channel: Some("phone".into()),
                ..DimensionKey::default()
            },
            comparison: Comparison::Above,
            threshold: 0.5,
            clear: 0.3,
            window: WindowSpec::Last(900_000),
            for_ms,
            severity: Severity::Critical,
            sinks: vec!["ops".into()],
            repeat_every_ms: repeat,
            min_volume: 0,
            builtin: false,
        }
    }

    /// Feeds `values` one second apart (fake clock from 0); returns the notices' kinds with their times.
    fn run(
        life: &mut Lifecycle,
        rule: &Rule,
        start: i64,
        values: &[Option<f64>],
    ) -> Vec<(NoticeKind, i64)> {
        let rules = [rule.clone()];
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let now = start + i as i64 * 1_000;
            out.extend(
                life.evaluate(&rules, now, |_| Measure::Value(*v))
                    .into_iter()
                    .map(|n| (n.kind, n.at)),
            );
        }
        out
    }

    #[test]
    fn fires_after_for_and_resolves_once_below_clear() {
        let r = rule(3_000, None);
        let mut life = Lifecycle::default();
        let notices = run(
            &mut life,
            &r,
            0,
            &[
                Some(0.6),
                Some(0.7),
                Some(0.6),
                Some(0.6),
                Some(0.4),
                Some(0.2),
                Some(0.1),
            ],
        );
        assert_eq!(
            notices,
            vec![(NoticeKind::Fired, 3_000), (NoticeKind::Resolved, 5_000)]
        );
        assert_eq!(life.history(10)[0].id, "abandon.3000");
        assert_eq!(life.history(10)[0].value, Some(0.2));
    }

    #[test]
    fn flapping_shorter_than_for_or_within_hysteresis_says_nothing() {
        let r = rule(3_000, None);
        let mut life = Lifecycle::default();
        // Crosses the threshold again and again, never for 3 s: never fires.
        let flaps: Vec<Option<f64>> = (0..20)
            .map(|i| Some(if i % 3 == 2 { 0.45 } else { 0.55 }))
            .collect();
        assert_eq!(run(&mut life, &r, 0, &flaps), vec![]);
        // Once firing, flapping around the threshold but above the clear level: silent.
        let mut fire = vec![Some(0.1)];
        fire.extend([Some(0.6); 4]);
        fire.extend((0..20).map(|i| Some(if i % 2 == 0 { 0.45 } else { 0.55 })));
        let notices = run(&mut life, &r, 100_000, &fire);
        assert_eq!(notices, vec![(NoticeKind::Fired, 104_000)]);
        assert_eq!(life.visible(0).len(), 1);
    }

    #[test]
    fn reminders_until_acknowledged_and_acks_are_kept() {
        let r = rule(0, Some(2_000));
        let mut life = Lifecycle::default();
        let notices = run(&mut life, &r, 0, &[Some(0.9); 5]);
        assert_eq!(
            notices,
            vec![
                (NoticeKind::Fired, 0),
                (NoticeKind::Reminder, 2_000),
                (NoticeKind::Reminder, 4_000)
            ]
        );
        let (alert, notice) = life
            .acknowledge("abandon.0", "sup", Some("on it".into()), 4_500)
            .expect("ack");
        assert_eq!(alert.state, AlertState::Acknowledged);
        assert_eq!(notice.map(|n| n.kind), Some(NoticeKind::Acknowledged));
        let (_, again) = life
            .acknowledge("abandon.0", "other", None, 4_600)
            .expect("idempotent");
        assert!(again.is_none());
        assert_eq!(run(&mut life, &r, 5_000, &[Some(0.9); 5]), vec![]);
        let notices = run(&mut life, &r, 10_000, &[Some(0.1)]);
        assert_eq!(notices, vec![(NoticeKind::Resolved, 10_000)]);
        let resolved = &life.history(1)[0];
        assert_eq!(resolved.acknowledged_by.as_deref(), Some("sup"));
        assert_eq!(resolved.ack_note.as_deref(), Some("on it"));
        assert!(matches!(
            life.acknowledge("abandon.0", "sup", None, 11_000),
            Err(AlertError::AlreadyResolved(_))
        ));
        assert!(matches!(
            life.acknowledge("nope", "sup", None, 11_000),
            Err(AlertError::NotFound(_))
        ));
    }

    #[test]
    fn skipped_rounds_keep_the_state_and_the_state_survives_a_round_trip() {
        let r = rule(0, None);
        let mut life = Lifecycle::default();
        assert_eq!(run(&mut life, &r, 0, &[Some(0.9)]).len(), 1);
        let rules = [r.clone()];
        assert!(life.evaluate(&rules, 1_000, |_| Measure::Skip).is_empty());
        let json = serde_json::to_string(&life).expect("encode");
        let mut restored: Lifecycle = serde_json::from_str(&json).expect("decode");
        assert_eq!(
            run(&mut restored, &r, 2_000, &[Some(0.9)]),
            vec![],
            "no second fire"
        );
        assert_eq!(
            run(&mut restored, &r, 3_000, &[None]),
            vec![(NoticeKind::Resolved, 3_000)],
            "no traffic: nothing wrong"
        );
        // A rule gone from the configuration resolves its alert.
        let mut life = Lifecycle::default();
        run(&mut life, &r, 0, &[Some(0.9)]);
        let notices = life.evaluate(&[], 1_000, |_| Measure::Skip);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].kind, NoticeKind::Resolved);
    }
}
