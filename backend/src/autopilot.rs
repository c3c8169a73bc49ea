//! Owns automatic deflection (`[autopilot]`): each rule watches a KPI of its switch's
//! channel and, once the condition has held long enough and the projection says the flip
//! would bring the service level to `min_projected`, proposes the flip (a supervisor
//! applies it on the switchboard) or makes it (`act`), then turns its own flip off once
//! the KPI has recovered. Guard rails: every flip expires, hysteresis and `clear_for`,
//! a cooldown after a flip ends or a person turns the switch off, at most
//! `max_flips_per_hour`, and a switch a person set last is never touched.
//!
//! Proposals and actions are alerts named `autopilot.NAME` (with their
//! [`AutopilotAction`]): they reach chat through the alert sinks, show on the wall and the
//! switchboard, and, with scale-out, are shared like every alert. One instance
//! evaluates: the one that alerts.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vigie_proto::{
    Alert, AlertState, AutopilotAction, AutopilotMode, AutopilotRuleView, Comparison,
    DeflectionSwitch, DimensionKey, FlipRequest, Severity, SwitchPrediction, WhatIf,
};

use crate::alert::{AlertService, AUTOPILOT_PREFIX};
use crate::config::{AutopilotRuleSettings, Settings};
use crate::deflection::SwitchStore;
use crate::engine::{DimensionFilter, EngineSet, SnapshotQuery, WindowSpec};

/// How often rules are evaluated.
const EVERY: Duration = Duration::from_secs(1);

/// One compiled rule.
#[derive(Clone, Debug)]
struct Rule {
    s: AutopilotRuleSettings,
    window: WindowSpec,
    threshold: f64,
    clear: f64,
    min_projected: f64,
    switch_id: String,
    /// The author of its flips: `vigie (rule NAME)`.
    author: String,
    /// Its alert: `autopilot.NAME`.
    alert: String,
    /// What the KPI is read on: the channel, and the queue if the switch has one.
    watched: DimensionFilter,
    /// The switch's scope (the what-if's).
    scope: DimensionFilter,
}

impl Rule {
    fn compile(s: &AutopilotRuleSettings, settings: &Settings) -> Rule {
        let value = |t: crate::config::Threshold| t.value(s.kpi).unwrap_or(0.0);
        let key = |reason: Option<String>, segment: Option<String>| DimensionKey {
            channel: Some(s.channel.clone()),
            queue: s.queue.clone(),
            reason,
            segment,
            site: None,
        };
        Rule {
            window: s.window.parse().unwrap_or(WindowSpec::Last(300_000)),
            threshold: value(s.threshold),
            clear: value(s.clear),
            min_projected: s.min_projected(&settings.engine),
            switch_id: vigie_proto::switch_id(
                &s.channel,
                s.reason.as_deref(),
                s.segment.as_deref(),
                s.queue.as_deref(),
            ),
            author: format!("vigie (rule {})", s.name),
            alert: format!("{AUTOPILOT_PREFIX}{}", s.name),
            watched: DimensionFilter::from_key(key(None, None)),
            scope: DimensionFilter::from_key(key(s.reason.clone(), s.segment.clone())),
            s: s.clone(),
        }
    }

    fn breaching(&self, v: f64) -> bool {
        match self.s.comparison {
            Comparison::Below => v < self.threshold,
            Comparison::Above => v > self.threshold,
        }
    }

    fn recovered(&self, v: f64) -> bool {
        match self.s.comparison {
            Comparison::Below => v > self.clear,
            Comparison::Above => v < self.clear,
        }
    }

    /// The prefix of the `why` of its flips (counted against `max_flips_per_hour`).
    fn why_prefix(&self) -> String {
        format!("[rule {}]", self.s.name)
    }

    fn action(&self, what_if: Option<WhatIf>) -> AutopilotAction {
        AutopilotAction {
            rule: self.s.name.clone(),
            mode: self.s.mode,
            switch_id: self.switch_id.clone(),
            channel: self.s.channel.clone(),
            reason: self.s.reason.clone(),
            segment: self.s.segment.clone(),
            queue: self.s.queue.clone(),
            target: self.s.target,
            expires_in: humantime::format_duration(self.s.expires_in).to_string(),
            what_if,
        }
    }

    /// `phone · billing → visual_ivr`.
    fn flip_text(&self) -> String {
        let scope: Vec<&str> = [&self.s.reason, &self.s.segment, &self.s.queue]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let mut text = self.s.channel.clone();
        for part in scope {
            text.push_str(" · ");
            text.push_str(part);
        }
        format!("{text} → {}", self.s.target.code())
    }

    fn format(&self, v: f64) -> String {
        crate::alert::rules::format_value(self.s.kpi.unit(), v)
    }

    fn condition_text(&self) -> String {
        let comparison = match self.s.comparison {
            Comparison::Below => "below",
            Comparison::Above => "above",
        };
        format!(
            "{} of {} over {} {comparison} {} for {}",
            self.s.kpi,
            self.watched_text(),
            self.window,
            self.format(self.threshold),
            humantime::format_duration(self.s.for_)
        )
    }

    fn watched_text(&self) -> String {
        match &self.s.queue {
            Some(q) => format!("channel={} queue={q}", self.s.channel),
            None => format!("channel={}", self.s.channel),
        }
    }

    fn view(&self) -> AutopilotRuleView {
        let comparison = match self.s.comparison {
            Comparison::Below => "above",
            Comparison::Above => "below",
        };
        AutopilotRuleView {
            name: self.s.name.clone(),
            mode: self.s.mode,
            action: self.action(None),
            condition: self.condition_text(),
            clear: format!(
                "{comparison} {} for {}",
                self.format(self.clear),
                humantime::format_duration(self.s.clear_for)
            ),
            min_projected: self.min_projected,
            cooldown_ms: self.s.cooldown.as_millis() as i64,
            max_flips_per_hour: self.s.max_flips_per_hour,
        }
    }
}

/// What a rule remembers between rounds (on the evaluating instance).
#[derive(Debug, Default)]
struct RuleState {
    breach_since: Option<i64>,
    clear_since: Option<i64>,
    /// No new flip before this (epoch ms).
    cooldown_until: i64,
}

/// The autopilot of one instance.
pub struct Autopilot {
    rules: Vec<Rule>,
    engines: Arc<EngineSet>,
    switches: Arc<SwitchStore>,
    alerts: Arc<AlertService>,
    status: Arc<crate::status::InstanceStatus>,
    state: Mutex<HashMap<String, RuleState>>,
}

impl std::fmt::Debug for Autopilot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autopilot")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// The rules of `settings` as the cockpit shows them (read-only).
pub fn rule_views(settings: &Settings) -> Vec<AutopilotRuleView> {
    settings
        .autopilot
        .rules
        .iter()
        .map(|r| Rule::compile(r, settings).view())
        .collect()
}

impl Autopilot {
    pub fn new(
        settings: &Settings,
        engines: Arc<EngineSet>,
        switches: Arc<SwitchStore>,
        alerts: Arc<AlertService>,
        status: Arc<crate::status::InstanceStatus>,
    ) -> Arc<Autopilot> {
        Arc::new(Autopilot {
            rules: settings
                .autopilot
                .rules
                .iter()
                .map(|r| Rule::compile(r, settings))
                .collect(),
            engines,
            switches,
            alerts,
            status,
            state: Mutex::default(),
        })
    }

    /// Evaluates every rule each second until `shutdown`, on the instance that alerts.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if self.rules.is_empty() {
            return;
        }
        tracing::info!(rules = self.rules.len(), "autopilot ready");
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !self.alerts.is_alerting() {
                // Another instance evaluates; its state starts afresh if this one takes over.
                self.state.lock().clear();
                continue;
            }
            for rule in &self.rules {
                self.evaluate(rule, jiff::Timestamp::now().as_millisecond())
                    .await;
            }
            self.status.autopilot_evaluations.fetch_add(1, Relaxed);
        }
    }

    /// The KPI of the rule's channel now, and what deflecting its scope would do.
    async fn measure(&self, rule: &Rule) -> (Option<f64>, Option<WhatIf>) {
        let engines = self.engines.clone();
        let rule = rule.clone();
        tokio::task::spawn_blocking(move || {
            let value = engines
                .snapshot(&SnapshotQuery {
                    window: rule.window,
                    filter: rule.watched.clone(),
                    ..SnapshotQuery::default()
                })
                .ok()
                .and_then(|s| rule.s.kpi.read(&s.total, rule.s.min_volume));
            let what_if = engines.what_if(&rule.scope, rule.window).ok().flatten();
            (value, what_if)
        })
        .await
        .unwrap_or((None, None))
    }

    async fn evaluate(&self, rule: &Rule, now: i64) {
        // Partial numbers would mislead (as for alerts).
        if !self.status.is_whole() {
            return;
        }
        let switch = self.switches.get(&rule.switch_id);
        let (value, what_if) = self.measure(rule).await;
        let open = self.alerts.active(&rule.alert);
        if let Some(s) = switch.as_ref().filter(|s| s.on) {
            self.while_on(rule, s, value, open, now).await;
            return;
        }
        let Some((value, what_if)) =
            self.ready(rule, switch.as_ref(), value, what_if, open.as_ref(), now)
        else {
            return;
        };
        let reason = format!(
            "{} is {} ({}); projected service level {} → {} with the deflection",
            rule.s.kpi,
            rule.format(value),
            rule.condition_text(),
            crate::alert::rules::format_value(
                vigie_proto::Unit::Rate,
                what_if.projected_service_level
            ),
            crate::alert::rules::format_value(
                vigie_proto::Unit::Rate,
                what_if.projected_service_level_without
            ),
        );
        match rule.s.mode {
            AutopilotMode::Propose => {
                if open.is_none() {
                    let summary = format!(
                        "Autopilot proposes {} for {}: {reason}. Apply it on the switchboard.",
                        rule.flip_text(),
                        humantime::format_duration(rule.s.expires_in)
                    );
                    self.raise(rule, summary, what_if, now);
                }
            }
            AutopilotMode::Act => {
                let request = FlipRequest {
                    channel: rule.s.channel.clone(),
                    reason: rule.s.reason.clone(),
                    segment: rule.s.segment.clone(),
                    queue: rule.s.queue.clone(),
                    target: rule.s.target,
                    on: true,
                    why: format!("{} {reason}", rule.why_prefix()),
                    expected_version: switch.as_ref().map_or(0, |s| s.version),
                    expires_in: Some(humantime::format_duration(rule.s.expires_in).to_string()),
                };
                match self
                    .switches
                    .flip(
                        &rule.switch_id,
                        &request,
                        &rule.author,
                        Some(what_if.into()),
                    )
                    .await
                {
                    Ok(_) => {
                        self.status.autopilot_flips.fetch_add(1, Relaxed);
                        let summary = format!(
                            "Autopilot turned on {} for {}: {reason}.",
                            rule.flip_text(),
                            humantime::format_duration(rule.s.expires_in)
                        );
                        self.raise(rule, summary, what_if, now);
                    }
                    Err(error) => {
                        tracing::warn!(rule = %rule.s.name, %error, "the autopilot's flip was refused");
                    }
                }
            }
        }
    }

    /// With the switch off: settles what ended, and says whether the rule should flip
    /// now (condition held for `for`, no cooldown, projection reaching `min_projected`,
    /// flips per hour left): the value and what-if if so.
    fn ready(
        &self,
        rule: &Rule,
        switch: Option<&DeflectionSwitch>,
        value: Option<f64>,
        what_if: Option<WhatIf>,
        open: Option<&Alert>,
        now: i64,
    ) -> Option<(f64, WhatIf)> {
        let mut guard = self.state.lock();
        let st = guard.entry(rule.s.name.clone()).or_default();
        st.clear_since = None;
        let cooldown = rule.s.cooldown.as_millis() as i64;
        if let Some(a) = open.filter(|a| is_mode(a, AutopilotMode::Act)) {
            // Its flip ended: expired, or turned off by someone.
            let who = switch.map_or("someone", |s| s.changed_by.as_str());
            self.alerts.settle(
                &a.rule,
                format!("{} is off again (by {who})", rule.flip_text()),
                now,
            );
            st.cooldown_until = st.cooldown_until.max(now + cooldown);
        }
        let cooling = now < st.cooldown_until
            || switch.is_some_and(|s| now < s.changed_at.saturating_add(cooldown));
        let breaching = value.is_some_and(|v| rule.breaching(v));
        if !breaching || cooling {
            st.breach_since = None;
            drop(guard);
            if let Some(a) = open.filter(|a| is_mode(a, AutopilotMode::Propose)) {
                self.alerts.settle(
                    &a.rule,
                    format!(
                        "proposal withdrawn: {} no longer holds",
                        rule.condition_text()
                    ),
                    now,
                );
            }
            return None;
        }
        let since = *st.breach_since.get_or_insert(now);
        drop(guard);
        let (value, what_if) = (value?, what_if?);
        let ready = now - since >= rule.s.for_.as_millis() as i64
            && what_if.projected_service_level_without >= rule.min_projected
            && self.flips_in_last_hour(rule, now) < rule.s.max_flips_per_hour as usize;
        ready.then_some((value, what_if))
    }

    /// The rule's switch is on: its own flip is turned off once recovered; a person's
    /// (or an applied proposal) is left alone.
    async fn while_on(
        &self,
        rule: &Rule,
        switch: &DeflectionSwitch,
        value: Option<f64>,
        open: Option<Alert>,
        now: i64,
    ) {
        if switch.changed_by != rule.author {
            self.state
                .lock()
                .entry(rule.s.name.clone())
                .or_default()
                .breach_since = None;
            if let Some(a) = open {
                let summary = if is_mode(&a, AutopilotMode::Propose) {
                    format!("proposal applied by {}", switch.changed_by)
                } else {
                    format!("{} took the switch over", switch.changed_by)
                };
                self.alerts.settle(&a.rule, summary, now);
            }
            return;
        }
        let since = {
            let mut guard = self.state.lock();
            let st = guard.entry(rule.s.name.clone()).or_default();
            st.breach_since = None;
            if !value.is_some_and(|v| rule.recovered(v)) {
                st.clear_since = None;
                return;
            }
            *st.clear_since.get_or_insert(now)
        };
        if now - since < rule.s.clear_for.as_millis() as i64 {
            return;
        }
        let why = format!(
            "{} recovered: {} of {} {} {} for {}",
            rule.why_prefix(),
            rule.s.kpi,
            rule.watched_text(),
            value.map_or_else(String::new, |v| format!("is {},", rule.format(v))),
            match rule.s.comparison {
                Comparison::Below => format!("above {}", rule.format(rule.clear)),
                Comparison::Above => format!("below {}", rule.format(rule.clear)),
            },
            humantime::format_duration(rule.s.clear_for)
        );
        let request = FlipRequest {
            channel: switch.channel.clone(),
            reason: switch.reason.clone(),
            segment: switch.segment.clone(),
            queue: switch.queue.clone(),
            target: switch.target,
            on: false,
            why: why.clone(),
            expected_version: switch.version,
            expires_in: None,
        };
        match self
            .switches
            .flip(&rule.switch_id, &request, &rule.author, None)
            .await
        {
            Ok(_) => {
                self.status.autopilot_flips.fetch_add(1, Relaxed);
                let mut guard = self.state.lock();
                let st = guard.entry(rule.s.name.clone()).or_default();
                st.clear_since = None;
                st.cooldown_until = now + rule.s.cooldown.as_millis() as i64;
                drop(guard);
                self.alerts.settle(
                    &rule.alert,
                    format!("Autopilot turned off {}: {why}", rule.flip_text()),
                    now,
                );
            }
            Err(error) => {
                tracing::warn!(rule = %rule.s.name, %error, "the autopilot could not turn its flip off");
            }
        }
    }

    /// Flips turned on for this rule (by it, or applied from its proposals) in the last hour.
    fn flips_in_last_hour(&self, rule: &Rule, now: i64) -> usize {
        let prefix = rule.why_prefix();
        self.switches
            .audit(Some(&rule.switch_id), 1_000)
            .iter()
            .filter(|r| r.at > now - 3_600_000)
            .filter(|r| r.after.as_ref().is_some_and(|s| s.on) && r.why.starts_with(&prefix))
            .count()
    }

    fn raise(&self, rule: &Rule, summary: String, what_if: WhatIf, now: i64) {
        let alert = Alert {
            id: format!("{}.{now}", rule.alert),
            rule: rule.alert.clone(),
            severity: Severity::Warning,
            state: AlertState::Firing,
            summary,
            since: now,
            acknowledged_by: None,
            kpi: rule.s.kpi.as_str().into(),
            scope: rule.watched_text(),
            value: None,
            threshold: rule.threshold,
            clear: rule.clear,
            acknowledged_at: None,
            ack_note: None,
            resolved_at: None,
            sinks: Vec::new(),
            autopilot: Some(rule.action(Some(what_if))),
        };
        self.alerts.raise(alert, rule.s.sinks.as_deref());
    }
}

fn is_mode(alert: &Alert, mode: AutopilotMode) -> bool {
    alert.autopilot.as_ref().is_some_and(|a| a.mode == mode)
}

/// The flip a supervisor applies from an open proposal: its request, on the switch as it
/// is now, with the `why` that counts it against the rule's flips per hour.
pub fn apply_request(
    proposal: &Alert,
    current: Option<&DeflectionSwitch>,
) -> Option<(String, FlipRequest, Option<SwitchPrediction>)> {
    let a = proposal
        .autopilot
        .as_ref()
        .filter(|a| a.mode == AutopilotMode::Propose)?;
    if proposal.state == AlertState::Resolved {
        return None;
    }
    let request = FlipRequest {
        channel: a.channel.clone(),
        reason: a.reason.clone(),
        segment: a.segment.clone(),
        queue: a.queue.clone(),
        target: a.target,
        on: true,
        why: format!("[rule {}] proposal applied: {}", a.rule, proposal.summary),
        expected_version: current.map_or(0, |s| s.version),
        expires_in: Some(a.expires_in.clone()),
    };
    Some((a.switch_id.clone(), request, a.what_if.map(Into::into)))
}
