//! Alerting to chat ops: owns the rules evaluated on the live state, the alert
//! lifecycle (firing → acknowledged → resolved) and its persistence, and the delivery of
//! one notification per transition to webhooks (Slack, Mattermost, Teams, signed JSON).
//!
//! - [`rules`]: the KPIs a rule may watch, built-in rules, compiling and checking them.
//! - [`lifecycle`]: the pure state machine (fake-clock tested).
//! - [`payload`]: the body of each kind of sink and the HMAC signature.
//! - [`delivery`]: per-sink persistent queue and retrying worker.
//! - [`shared`]: scale-out, one alerting instance for all, its state on the partials topic.
//!
//! [`AlertService`] ties them: every `alerts.evaluate_every` it reads the live KPIs the
//! way the websocket snapshot does (one snapshot per distinct window and scope, on a
//! blocking thread, never in the ingest path), advances the lifecycle, writes the
//! notices to the sinks' outboxes, then saves `<state_dir>/alerts.json`.

pub mod delivery;
mod handoff;
pub mod lifecycle;
pub mod payload;
pub mod rules;
pub mod shared;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigie_proto::{Alert, AlertRule, DimensionKey, Severity, SinkView};

use crate::config::Settings;
use crate::engine::{DimensionFilter, EngineSet, SnapshotQuery, WindowSpec};
use crate::status::InstanceStatus;
pub use delivery::{Pending, Sink};
pub use lifecycle::{Lifecycle, Measure, Notice, NoticeKind};
pub use rules::{compile, Rule};
use shared::Part;
pub use shared::{SharedAlerts, SharedState};
pub use vigie_proto::{Kpi, Unit};

#[derive(Debug, Error)]
pub enum AlertError {
    #[error("no alert {0:?}")]
    NotFound(String),
    #[error("alert {0:?} is already resolved")]
    AlreadyResolved(String),
    #[error("{0}")]
    BadNote(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("alert state directory {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Samples of a counter, to tell how much it grew over a window.
#[derive(Clone, Debug, Default)]
struct CounterHistory(VecDeque<(i64, u64)>);

impl CounterHistory {
    /// Adds the value at `now`, keeping what a window of `keep_ms` needs.
    fn record(&mut self, now: i64, value: u64, keep_ms: i64) {
        let samples = &mut self.0;
        samples.push_back((now, value));
        while samples.len() > 1 && samples.get(1).is_some_and(|(t, _)| *t <= now - keep_ms) {
            samples.pop_front();
        }
    }

    /// How much it grew over the last `window_ms` (since the oldest sample if younger).
    fn growth(&self, now: i64, window_ms: i64) -> u64 {
        let latest = self.0.back().map_or(0, |(_, v)| *v);
        let base = self
            .0
            .iter()
            .rev()
            .find(|(t, _)| *t <= now - window_ms)
            .or(self.0.front())
            .map_or(latest, |(_, c)| *c);
        latest.saturating_sub(base)
    }
}

/// Writes an audit record (never waits).
pub type AuditWriter = Arc<dyn Fn(vigie_proto::AuditRecord) + Send + Sync>;

/// Longest acknowledgement note kept.
pub(crate) const MAX_NOTE_CHARS: usize = 500;

/// The alerting service of one instance.
pub struct AlertService {
    rules: Vec<Rule>,
    sinks: BTreeMap<String, Arc<Sink>>,
    lifecycle: Mutex<Lifecycle>,
    state_file: Option<PathBuf>,
    show_resolved_ms: i64,
    evaluate_every: Duration,
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    /// Samples of the dead-lettered and dead-letter failure counters, for their growth.
    counter_samples: Mutex<[CounterHistory; 2]>,
    visible: watch::Sender<Arc<Vec<Alert>>>,
    /// Evaluation rounds done (a test can wait for rounds to pass).
    pub evaluations: AtomicU64,
    /// Scale-out: the state shared through the partials topic.
    shared: OnceLock<Arc<SharedAlerts>>,
    /// Where acknowledgements are audited (the audit topic), when given.
    audit: OnceLock<AuditWriter>,
    /// Scale-out: the epoch this instance is the alerting instance with, if it is.
    leading: Mutex<Option<i64>>,
    /// Scale-out: generation of the shared state last adopted (not alerting).
    adopted: AtomicU64,
    /// Scale-out: the state last published (without its time), and when.
    last_shared: Mutex<Option<(SharedState, i64)>>,
    /// Scale-out: notifications taken from this instance's queues, for the alerting
    /// instance ([`handoff`]).
    carried: Arc<Mutex<Vec<shared::Handoff>>>,
    /// Scale-out: a batch of `carried` is being published.
    handing_off: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService")
            .field("rules", &self.rules.len())
            .field("sinks", &self.sinks.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Prefix of the alerts the autopilot raises: no alert rule owns them.
pub const AUTOPILOT_PREFIX: &str = "autopilot.";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl AlertService {
    /// Compiles the rules of `settings`, reloads the saved alert states and the pending
    /// notifications of `alerts.state_dir`.
    pub fn new(
        settings: &Settings,
        engines: Arc<EngineSet>,
        status: Arc<InstanceStatus>,
    ) -> Result<Arc<AlertService>, AlertError> {
        let a = &settings.alerts;
        let rules = compile(settings);
        let state_err = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| AlertError::State { path, source }
        };
        let mut lifecycle = Lifecycle::default();
        let state_file = a.state_dir.as_ref().map(|d| d.join("alerts.json"));
        if let Some(dir) = &a.state_dir {
            std::fs::create_dir_all(dir).map_err(state_err(dir))?;
        }
        if let Some(file) = &state_file {
            match std::fs::read(file) {
                Ok(bytes) => match serde_json::from_slice(&bytes) {
                    Ok(saved) => lifecycle = saved,
                    Err(error) => {
                        tracing::error!(file = %file.display(), %error, "alert states unreadable: starting afresh");
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(state_err(file)(e)),
            }
        }
        let mut sinks = BTreeMap::new();
        for (name, sink) in &a.sinks {
            let dir = a.state_dir.as_ref().map(|d| d.join("outbox").join(name));
            let opened = Sink::open(name, sink.clone(), dir.clone())
                .map_err(state_err(&dir.unwrap_or_default()))?;
            sinks.insert(name.clone(), Arc::new(opened));
        }
        let show_resolved_ms = i64::try_from(a.show_resolved_for.as_millis()).unwrap_or(i64::MAX);
        let visible = lifecycle.visible(now_ms().saturating_sub(show_resolved_ms));
        tracing::info!(
            rules = rules.len(),
            sinks = sinks.len(),
            active = lifecycle.active_count(),
            persisted = state_file.is_some(),
            "alerting ready"
        );
        Ok(Arc::new(AlertService {
            rules,
            sinks,
            lifecycle: Mutex::new(lifecycle),
            state_file,
            show_resolved_ms,
            evaluate_every: a.evaluate_every,
            engines,
            status,
            counter_samples: Mutex::default(),
            visible: watch::channel(Arc::new(visible)).0,
            evaluations: AtomicU64::new(0),
            shared: OnceLock::new(),
            audit: OnceLock::new(),
            leading: Mutex::new(None),
            adopted: AtomicU64::new(0),
            last_shared: Mutex::new(None),
            carried: Arc::default(),
            handing_off: Arc::default(),
        }))
    }

    /// Evaluates the rules every `alerts.evaluate_every` and delivers notifications,
    /// until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigie/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %error.without_url(), "cannot build the HTTP client: alerts are not delivered");
                reqwest::Client::new()
            }
        };
        let workers: Vec<_> = self
            .sinks
            .values()
            .map(|sink| tokio::spawn(sink.clone().run(client.clone(), shutdown.clone())))
            .collect();
        let mut tick = tokio::time::interval(self.evaluate_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Shutdown first: no round once the process is leaving.
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            if let Err(error) = tokio::task::spawn_blocking(move || me.evaluate_at(now_ms())).await
            {
                tracing::error!(%error, "alert evaluation failed");
            }
        }
        for w in workers {
            let _ = w.await;
        }
    }

    /// One evaluation round at `now` (epoch ms): measure, advance, notify, save. With
    /// scale-out, only on the alerting instance (which also applies the acknowledgements
    /// forwarded to it and publishes its state); the others show its state.
    pub(crate) fn evaluate_at(&self, now: i64) {
        let alerting = match self.part() {
            Part::Single => None,
            Part::Following(shared) => {
                self.follow(&shared, now);
                self.hand_off(&shared);
                self.evaluations.fetch_add(1, Relaxed);
                return;
            }
            Part::Alerting(shared, epoch) => {
                self.take_over(&shared, epoch);
                self.hand_off(&shared);
                self.adopt_handoffs(&shared);
                Some((shared, epoch))
            }
        };
        let measures = self.measure(now);
        let mut lifecycle = self.lifecycle.lock();
        let mut notices = Vec::new();
        for ack in alerting.iter().flat_map(|(shared, _)| shared.take_acks()) {
            if let Ok((alert, Some(notice))) =
                lifecycle.acknowledge(&ack.id, &ack.who, ack.note, ack.at)
            {
                self.audit_ack(&alert, ack.at);
                notices.push(notice);
            }
        }
        notices.extend(lifecycle.evaluate(&self.rules, now, |rule| {
            measures.get(&rule.name).copied().unwrap_or(Measure::Skip)
        }));
        if !notices.is_empty() {
            for notice in &notices {
                tracing::info!(alert = %notice.alert.id, event = notice.kind.as_str(), summary = %notice.alert.summary, "alert");
                self.enqueue(notice);
            }
            self.save(&lifecycle);
        }
        if let Some((shared, epoch)) = &alerting {
            self.publish_shared(shared, *epoch, &lifecycle, now);
        }
        let visible = lifecycle.visible(now.saturating_sub(self.show_resolved_ms));
        drop(lifecycle);
        self.publish(visible);
        self.evaluations.fetch_add(1, Relaxed);
    }

    fn publish(&self, visible: Vec<Alert>) {
        self.visible.send_if_modified(|current| {
            if **current == visible {
                false
            } else {
                *current = Arc::new(visible);
                true
            }
        });
    }

    /// Every rule's value now; snapshots are shared by rules of one window and scope.
    fn measure(&self, now: i64) -> HashMap<String, Measure> {
        let ready = self.status.is_whole();
        // Counters judged by their growth over a rule's window: sampled once a round,
        // kept as long as the longest such window.
        let longest = self
            .rules
            .iter()
            .filter(|r| matches!(r.kpi, Kpi::DeadLettered | Kpi::DeadLetterFailures))
            .filter_map(|r| match r.window {
                WindowSpec::Last(ms) => Some(ms),
                WindowSpec::Today => None,
            })
            .max()
            .unwrap_or(0);
        let (dead_lettered, dead_letter_failures) = {
            let mut samples = self.counter_samples.lock();
            let [lettered, failures] = &mut *samples;
            lettered.record(now, self.status.dead_lettered.load(Relaxed), longest);
            failures.record(now, self.status.dead_letter_failures.load(Relaxed), longest);
            (lettered.clone(), failures.clone())
        };
        let window_ms = |rule: &Rule| match rule.window {
            WindowSpec::Last(ms) => ms,
            WindowSpec::Today => 0,
        };
        let mut snapshots: HashMap<(String, DimensionKey), Option<vigie_proto::Kpis>> =
            HashMap::new();
        let mut out = HashMap::new();
        for rule in &self.rules {
            let measure = if rule.kpi.needs_ready() && !ready {
                Measure::Skip
            } else {
                match rule.kpi {
                    Kpi::ConsumerLag => {
                        Measure::Value(Some(self.status.lag().values().sum::<i64>() as f64))
                    }
                    Kpi::Stale => Measure::Value(Some(f64::from(u8::from(self.status.is_stale())))),
                    // Never an event yet: nothing to say of silence.
                    Kpi::Silence => {
                        Measure::Value(self.engines.watermark().map(|w| (now - w).max(0) as f64))
                    }
                    Kpi::PartitionsNotLive => {
                        Measure::Value(Some(self.status.partitions_not_live() as f64))
                    }
                    Kpi::DeadLettered => {
                        Measure::Value(Some(dead_lettered.growth(now, window_ms(rule)) as f64))
                    }
                    Kpi::DeadLetterFailures => Measure::Value(Some(
                        dead_letter_failures.growth(now, window_ms(rule)) as f64,
                    )),
                    _ => {
                        let key = (rule.window.to_string(), rule.scope.clone());
                        let kpis = snapshots.entry(key).or_insert_with(|| {
                            let query = SnapshotQuery {
                                window: rule.window,
                                filter: DimensionFilter::from_key(rule.scope.clone()),
                                ..SnapshotQuery::default()
                            };
                            self.engines.snapshot(&query).ok().map(|s| s.total)
                        });
                        match kpis {
                            Some(kpis) => Measure::Value(rule.kpi.read(kpis, rule.min_volume)),
                            None => Measure::Skip,
                        }
                    }
                }
            };
            out.insert(rule.name.clone(), measure);
        }
        out
    }

    /// Queues `notice` on the sinks that get it.
    fn enqueue(&self, notice: &Notice) {
        for name in &notice.alert.sinks {
            let Some(sink) = self.sinks.get(name) else {
                continue;
            };
            if notice.kind == NoticeKind::Acknowledged && !sink.notify_acknowledged() {
                continue;
            }
            sink.push(Pending {
                id: notice.delivery_id(),
                event: notice.kind.as_str().into(),
                created_at: notice.at,
                body: payload::render(sink.kind(), sink.language(), notice),
                file: None,
            });
        }
    }

    fn save(&self, lifecycle: &Lifecycle) {
        let Some(file) = &self.state_file else { return };
        let bytes = serde_json::to_vec(lifecycle).unwrap_or_default();
        if let Err(error) = delivery::write_atomically(file, &bytes) {
            tracing::error!(file = %file.display(), %error, "saving the alert states failed");
        }
    }

    /// `who` acknowledges alert `id`, with an optional note; recorded on the alert, kept
    /// across restarts, shown to everyone, and logged as an audit record. With scale-out,
    /// through any instance: forwarded to the alerting instance, and answered once its
    /// state shows the acknowledgement.
    pub async fn acknowledge(
        &self,
        id: &str,
        who: &str,
        note: Option<String>,
    ) -> Result<Alert, AlertError> {
        let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(AlertError::BadNote(format!(
                "`note` is limited to {MAX_NOTE_CHARS} characters"
            )));
        }
        let part = self.part();
        let shared = match &part {
            Part::Following(shared) => {
                return self.acknowledge_through(shared, id, who, note).await
            }
            Part::Alerting(shared, epoch) => {
                self.take_over(shared, *epoch);
                Some((shared, *epoch))
            }
            Part::Single => None,
        };
        let now = now_ms();
        let mut lifecycle = self.lifecycle.lock();
        let (alert, notice) = lifecycle.acknowledge(id, who, note, now)?;
        if let Some(notice) = &notice {
            self.audit_ack(&alert, now);
            self.enqueue(notice);
            self.save(&lifecycle);
        }
        if let Some((shared, epoch)) = shared {
            self.publish_shared(shared, epoch, &lifecycle, now);
        }
        let visible = lifecycle.visible(now.saturating_sub(self.show_resolved_ms));
        drop(lifecycle);
        self.publish(visible);
        Ok(alert)
    }

    /// Audits every acknowledgement with `writer` (the audit topic's), besides the log.
    pub fn audit_to(&self, writer: AuditWriter) {
        let _ = self.audit.set(writer);
    }

    /// An acknowledgement took effect (once per alert): logged, and audited.
    fn audit_ack(&self, alert: &Alert, at: i64) {
        let who = alert.acknowledged_by.clone().unwrap_or_default();
        tracing::info!(target: "vigie::audit", alert = %alert.id, who, note = ?alert.ack_note, "alert acknowledged");
        if let Some(write) = self.audit.get() {
            write(vigie_proto::AuditRecord {
                at,
                who,
                action: "acknowledge".into(),
                switch_id: String::new(),
                why: alert.ack_note.clone().unwrap_or_default(),
                before: None,
                after: None,
                alert_id: Some(alert.id.clone()),
            });
        }
    }

    /// Firing and acknowledged alerts, and those resolved in the last `show_resolved_for`.
    /// Raises the alert `rule` (not an alert rule's: the autopilot's, named
    /// [`AUTOPILOT_PREFIX`]`NAME`) and notifies its sinks, unless it is already active.
    pub fn raise(&self, mut alert: Alert, sinks: Option<&[String]>) {
        alert.sinks = match sinks {
            Some(names) => names.to_vec(),
            None => self.sinks.keys().cloned().collect(),
        };
        let mut lifecycle = self.lifecycle.lock();
        let Some(notice) = lifecycle.raise(alert) else {
            return;
        };
        self.note(lifecycle, &notice);
    }

    /// Resolves the active alert `rule`, saying why, and notifies its sinks.
    pub fn settle(&self, rule: &str, summary: String, now: i64) {
        let mut lifecycle = self.lifecycle.lock();
        let Some(notice) = lifecycle.settle(rule, summary, now) else {
            return;
        };
        self.note(lifecycle, &notice);
    }

    /// The active alert `rule`, if any.
    pub fn active(&self, rule: &str) -> Option<Alert> {
        self.lifecycle.lock().active(rule).cloned()
    }

    /// Logs, queues, saves and shows a notice raised outside an evaluation round.
    fn note(&self, lifecycle: parking_lot::MutexGuard<'_, Lifecycle>, notice: &Notice) {
        tracing::info!(alert = %notice.alert.id, event = notice.kind.as_str(), summary = %notice.alert.summary, "alert");
        self.enqueue(notice);
        self.save(&lifecycle);
        let visible = lifecycle.visible(now_ms().saturating_sub(self.show_resolved_ms));
        drop(lifecycle);
        self.publish(visible);
    }

    pub fn alerts(&self) -> Arc<Vec<Alert>> {
        self.visible.borrow().clone()
    }

    /// The same, now and on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Alert>>> {
        self.visible.subscribe()
    }

    /// Resolved alerts, newest first.
    pub fn history(&self, limit: usize) -> Vec<Alert> {
        self.lifecycle.lock().history(limit)
    }

    pub fn rules(&self) -> Vec<AlertRule> {
        self.rules.iter().map(Rule::view).collect()
    }

    pub fn sinks(&self) -> Vec<SinkView> {
        self.sinks
            .values()
            .map(|s| SinkView {
                name: s.name.clone(),
                kind: s.kind().as_str().into(),
            })
            .collect()
    }

    /// Each sink, for metrics.
    pub fn sink_stats(&self) -> impl Iterator<Item = &Arc<Sink>> {
        self.sinks.values()
    }

    /// Firing or acknowledged alerts per severity, for metrics.
    pub(crate) fn active_by_severity(&self) -> BTreeMap<Severity, usize> {
        self.lifecycle.lock().active_by_severity()
    }
}
