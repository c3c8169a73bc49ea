//! The publisher: owns the fan-out of live snapshots to websocket clients.
//!
//! Every tick (50 ms by default) it checks whether anything changed; if so it computes
//! one snapshot per distinct subscription (window + filters), shared by every client
//! subscribed to it, and publishes it only if it differs from the last one sent. A
//! `watch` channel holds only the latest message, so a slow client skips intermediate
//! updates and never makes the server hold a queue for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigie_proto::{DimensionKey, ServerMessage, StatusReport, Subscription};

use crate::deflection::{switch_effects, SwitchStore};
use crate::engine::{
    Dimension, DimensionFilter, EngineSet, SnapshotQuery, TrendShape, WindowError, WindowSpec,
};
use crate::status::InstanceStatus;

/// A serialized server message, encoded once and shared by every client that receives
/// it (cloning is a reference count, not a copy).
pub(crate) type Frame = axum::extract::ws::Utf8Bytes;

/// One distinct subscription: its frames, and how many clients hold it.
struct Topic {
    /// The subscription as its frames name it: the canonical form of its query.
    subscription: Subscription,
    tx: watch::Sender<Frame>,
    trend_tx: watch::Sender<Frame>,
    /// Leases held (one per client connection subscribed to it).
    leases: usize,
}

/// The distinct subscriptions computed, and which callers hold them.
#[derive(Default)]
struct Subscriptions {
    topics: HashMap<SnapshotQuery, Topic>,
    /// Per caller, the subscriptions its connections hold (and how many connections each).
    by_caller: HashMap<String, HashMap<SnapshotQuery, usize>>,
}

/// What a client subscribed to receives: the latest snapshot and the latest trend; the
/// subscription is held until this is dropped.
#[derive(Debug)]
pub struct Feed {
    pub snapshots: watch::Receiver<Frame>,
    pub trend: watch::Receiver<Frame>,
    _lease: Lease,
}

/// A client's hold on a subscription: released on drop (the last one removes it).
struct Lease {
    publisher: std::sync::Weak<Publisher>,
    caller: String,
    query: SnapshotQuery,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(publisher) = self.publisher.upgrade() {
            publisher.release(&self.caller, &self.query);
        }
    }
}

/// How many distinct subscriptions the publisher computes, in all and per caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionCaps {
    pub max: usize,
    pub per_caller: usize,
    /// Breakdown rows when a subscription does not say, and the most it may ask.
    pub rows: usize,
    pub max_rows: usize,
    /// Most rows of an agent list (`server.max_agent_rows`).
    pub agent_rows: usize,
}

impl Default for SubscriptionCaps {
    fn default() -> Self {
        let s = crate::config::ServerSettings::default();
        SubscriptionCaps::of(&s)
    }
}

impl SubscriptionCaps {
    pub fn of(s: &crate::config::ServerSettings) -> SubscriptionCaps {
        SubscriptionCaps {
            max: s.max_subscriptions,
            per_caller: s.max_subscriptions_per_caller,
            rows: s.breakdown_rows,
            max_rows: s.max_breakdown_rows,
            agent_rows: s.max_agent_rows,
        }
    }
}

/// Websocket connection counters (read by `/metrics`).
#[derive(Debug, Default)]
pub struct ClientStats {
    pub connected: std::sync::atomic::AtomicU64,
    pub closed_too_slow: std::sync::atomic::AtomicU64,
}

/// Fan-out of snapshots and status.
pub struct Publisher {
    pub clients: ClientStats,
    engines: Arc<EngineSet>,
    status: Arc<InstanceStatus>,
    subscriptions: Mutex<Subscriptions>,
    caps: Mutex<SubscriptionCaps>,
    status_tx: watch::Sender<Frame>,
    /// Deflection switches with their effects, when this instance serves them.
    switches: std::sync::OnceLock<Arc<SwitchStore>>,
    switches_tx: watch::Sender<Frame>,
    /// Alerts, when this instance evaluates them.
    alerts: std::sync::OnceLock<Arc<crate::alert::AlertService>>,
    alerts_tx: watch::Sender<Frame>,
    tick: Duration,
}

/// Switch effects move with traffic; recomputing them once a second is plenty.
const EFFECTS_EVERY: Duration = Duration::from_secs(1);
/// Trend points are a minute apart: refreshing the sparklines every 5 s is plenty.
const TREND_EVERY: Duration = Duration::from_secs(5);
/// How soon a new subscription gets its first trend.
const TREND_CHECK: Duration = Duration::from_millis(200);

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

/// Why a subscription (or a REST snapshot query, which shares its definition) is refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("by: {0}")]
    Breakdown(String),
    #[error("rows: {0}")]
    Rows(String),
}

/// Why a websocket subscription is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("the server already computes {0} distinct subscriptions, its limit (server.max_subscriptions): subscribe to a window and filters others use, or retry later")]
    TooMany(usize),
    #[error("{caller:?} already holds {held} distinct subscriptions, its limit (server.max_subscriptions_per_caller): close some connections")]
    TooManyForCaller { caller: String, held: usize },
}

/// The engine query of a subscription; errors name what is wrong. `caps` gives the
/// breakdown's rows when the subscription does not, and the most it may ask for.
pub fn query_of(sub: &Subscription, caps: &SubscriptionCaps) -> Result<SnapshotQuery, QueryError> {
    let window: WindowSpec = sub.window.parse()?;
    let mut breakdown = Vec::new();
    for name in sub.by.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
        let dimension: Dimension = name.parse().map_err(QueryError::Breakdown)?;
        if !breakdown.contains(&dimension) {
            breakdown.push(dimension);
        }
    }
    // By channel alone is the snapshot's `by_channel`, always there.
    if breakdown == [Dimension::Channel] {
        breakdown.clear();
    }
    let rows = match sub.rows {
        None => caps.rows,
        Some(0) => return Err(QueryError::Rows("at least 1".into())),
        Some(n) if n as usize > caps.max_rows => {
            return Err(QueryError::Rows(format!(
                "{n} is more than {} (server.max_breakdown_rows)",
                caps.max_rows
            )))
        }
        Some(n) => n as usize,
    };
    let filter = DimensionFilter::from_key(DimensionKey {
        channel: sub.channel.clone(),
        queue: sub.queue.clone(),
        reason: sub.reason.clone(),
        segment: sub.segment.clone(),
        site: sub.site.clone(),
    });
    Ok(SnapshotQuery {
        window,
        filter,
        breakdown,
        rows,
        agent_list: sub.agents,
    })
}

/// The subscription a query answers, in canonical form (`900s` reads `15m`): what the
/// frames of every client subscribed to it name.
fn canonical(query: &SnapshotQuery, asked: &Subscription) -> Subscription {
    let mut key = DimensionKey::default();
    for (d, v) in &query.filter.0 {
        *d.slot(&mut key) = Some(v.clone());
    }
    Subscription {
        window: query.window.to_string(),
        channel: key.channel,
        queue: key.queue,
        reason: key.reason,
        segment: key.segment,
        site: key.site,
        by: query
            .breakdown
            .iter()
            .map(|d| d.as_str().to_string())
            .collect(),
        rows: asked.rows,
        agents: query.agent_list,
    }
}

fn encode(message: &ServerMessage) -> Frame {
    Frame::from(serde_json::to_string(message).unwrap_or_default())
}

impl Publisher {
    pub fn new(
        engines: Arc<EngineSet>,
        status: Arc<InstanceStatus>,
        tick: Duration,
    ) -> Arc<Publisher> {
        let initial = encode(&ServerMessage::Status(status_report(&engines, &status)));
        Arc::new(Publisher {
            clients: ClientStats::default(),
            engines,
            status,
            subscriptions: Mutex::new(Subscriptions::default()),
            caps: Mutex::new(SubscriptionCaps::default()),
            status_tx: watch::channel(initial).0,
            switches: std::sync::OnceLock::new(),
            switches_tx: watch::channel(Frame::from_static("")).0,
            alerts: std::sync::OnceLock::new(),
            alerts_tx: watch::channel(Frame::from_static("")).0,
            tick,
        })
    }

    /// Sets how many distinct subscriptions are computed (`[server]`).
    pub fn set_caps(&self, caps: SubscriptionCaps) {
        *self.caps.lock() = caps;
    }

    pub fn caps(&self) -> SubscriptionCaps {
        *self.caps.lock()
    }

    /// Distinct subscriptions computed now.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().topics.len()
    }

    /// Latest snapshot and trend of `sub` for `caller`, now and on every change, held
    /// until the feed is dropped. A new subscription is computed at the next tick (its
    /// first frames are empty until then), never here: a client subscribing many times
    /// must not make the server compute in its place.
    pub fn subscribe(
        self: &Arc<Self>,
        caller: &str,
        sub: &Subscription,
    ) -> Result<Feed, SubscribeError> {
        let caps = self.caps();
        let query = query_of(sub, &caps)?;
        let mut subs = self.subscriptions.lock();
        let Subscriptions { topics, by_caller } = &mut *subs;
        let held = by_caller.get(caller);
        let holds_it = held.is_some_and(|h| h.contains_key(&query));
        let held_count = held.map_or(0, HashMap::len);
        if !holds_it && held_count >= caps.per_caller {
            return Err(SubscribeError::TooManyForCaller {
                caller: caller.to_string(),
                held: held_count,
            });
        }
        if !topics.contains_key(&query) && topics.len() >= caps.max {
            return Err(SubscribeError::TooMany(topics.len()));
        }
        let topic = topics.entry(query.clone()).or_insert_with(|| Topic {
            subscription: canonical(&query, sub),
            tx: watch::channel(Frame::from_static("")).0,
            trend_tx: watch::channel(Frame::from_static("")).0,
            leases: 0,
        });
        topic.leases += 1;
        let feed = Feed {
            snapshots: topic.tx.subscribe(),
            trend: topic.trend_tx.subscribe(),
            _lease: Lease {
                publisher: Arc::downgrade(self),
                caller: caller.to_string(),
                query: query.clone(),
            },
        };
        *by_caller
            .entry(caller.to_string())
            .or_default()
            .entry(query)
            .or_default() += 1;
        Ok(feed)
    }

    /// A client let go of `query`: the last one removes it (no frame is computed for a
    /// subscription nobody holds).
    fn release(&self, caller: &str, query: &SnapshotQuery) {
        let mut subs = self.subscriptions.lock();
        if let Some(held) = subs.by_caller.get_mut(caller) {
            if let Some(n) = held.get_mut(query) {
                *n -= 1;
                if *n == 0 {
                    held.remove(query);
                }
            }
            if held.is_empty() {
                subs.by_caller.remove(caller);
            }
        }
        if let Some(topic) = subs.topics.get_mut(query) {
            topic.leases -= 1;
            if topic.leases == 0 {
                subs.topics.remove(query);
            }
        }
    }

    /// Serves `store`'s switches (with their effects) to websocket clients.
    pub fn attach_switches(&self, store: Arc<SwitchStore>) {
        if self.switches.set(store).is_ok() {
            self.publish_switches();
        }
    }

    /// Latest switches message, now and on every change; `None` without switches.
    pub fn switches(&self) -> Option<watch::Receiver<Frame>> {
        self.switches.get().map(|_| self.switches_tx.subscribe())
    }

    fn publish_switches(&self) {
        if let Some(store) = self.switches.get() {
            let switches = store.list();
            let effects = switch_effects(&self.engines, &switches);
            let frame = encode(&ServerMessage::Switches { switches, effects });
            self.switches_tx
                .send_if_modified(|current| replace_if_different(current, frame));
        }
    }

    /// Serves `service`'s alerts to websocket clients.
    pub fn attach_alerts(&self, service: Arc<crate::alert::AlertService>) {
        if self.alerts.set(service).is_ok() {
            self.publish_alerts();
        }
    }

    /// Latest alerts message, now and on every change; `None` without alerting.
    pub fn alerts(&self) -> Option<watch::Receiver<Frame>> {
        self.alerts.get().map(|_| self.alerts_tx.subscribe())
    }

    fn publish_alerts(&self) {
        if let Some(service) = self.alerts.get() {
            let alerts = service.alerts().as_ref().clone();
            let frame = encode(&ServerMessage::Alerts { alerts });
            self.alerts_tx
                .send_if_modified(|current| replace_if_different(current, frame));
        }
    }

    /// Latest status report, now and on every change.
    pub fn status(&self) -> watch::Receiver<Frame> {
        self.status_tx.subscribe()
    }

    fn render(&self, sub: &Subscription, query: &SnapshotQuery) -> Result<Frame, WindowError> {
        let snapshot = self.engines.snapshot(query)?;
        let agents = if query.agent_list {
            Some(Box::new(self.engines.agent_list(
                query.window,
                &crate::engine::AgentQuery::of_filter(&query.filter, self.caps().agent_rows),
            )?))
        } else {
            None
        };
        Ok(encode(&ServerMessage::Snapshot {
            subscription: sub.clone(),
            snapshot: Box::new(snapshot),
            agents,
        }))
    }

    fn render_trend(
        &self,
        sub: &Subscription,
        query: &SnapshotQuery,
    ) -> Result<Frame, WindowError> {
        let trend = self.engines.trend(query, TrendShape::default())?;
        Ok(encode(&ServerMessage::Trend {
            subscription: sub.clone(),
            trend: Box::new(trend),
        }))
    }

    /// The subscriptions `wanted` selects, with what renders them (taken under the lock,
    /// rendered outside it).
    fn work(
        &self,
        wanted: impl Fn(&Topic) -> bool,
        trend: bool,
    ) -> Vec<(Subscription, SnapshotQuery, watch::Sender<Frame>)> {
        let subs = self.subscriptions.lock();
        subs.topics
            .iter()
            .filter(|(_, t)| wanted(t))
            .map(|(q, t)| {
                let tx = if trend { &t.trend_tx } else { &t.tx };
                (t.subscription.clone(), q.clone(), tx.clone())
            })
            .collect()
    }

    /// Publishes changes every tick until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_change = u64::MAX;
        let mut flips: Option<watch::Receiver<Arc<Vec<vigie_proto::DeflectionSwitch>>>> = None;
        let mut effects_at = tokio::time::Instant::now();
        // Traffic arrived since the effects were last computed (they are recomputed at
        // most once a second, so a change inside that second must not be forgotten).
        let mut effects_stale = false;
        let mut alert_changes = self.alerts.get().map(|service| service.subscribe());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if flips.is_none() {
                flips = self.switches.get().map(|store| store.subscribe());
            }
            if alert_changes.is_none() {
                alert_changes = self.alerts.get().map(|service| service.subscribe());
            }
            if let Some(rx) = alert_changes.as_mut() {
                if rx.has_changed().unwrap_or(false) {
                    rx.borrow_and_update();
                    self.publish_alerts();
                }
            }
            let flipped = flips
                .as_mut()
                .is_some_and(|rx| rx.has_changed().unwrap_or(false));
            effects_stale |= self.engines.change_counter() != last_change;
            if flipped || (effects_stale && effects_at.elapsed() >= EFFECTS_EVERY) {
                effects_stale = false;
                if let Some(rx) = flips.as_mut() {
                    rx.borrow_and_update();
                }
                effects_at = tokio::time::Instant::now();
                self.publish_switches();
            }
            let report = encode(&ServerMessage::Status(status_report(
                &self.engines,
                &self.status,
            )));
            self.status_tx
                .send_if_modified(|current| replace_if_different(current, report));
            let change = self.engines.change_counter();
            let changed = change != last_change;
            last_change = change;
            // Every subscription when the state changed, else the new ones only.
            let work = self.work(|t| changed || t.tx.borrow().is_empty(), false);
            if work.is_empty() {
                continue;
            }
            // On the blocking pool: a round of large snapshots must not hold an async
            // worker (the health probe and other clients run there).
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (sub, query, tx) in work {
                    if let Ok(frame) = me.render(&sub, &query) {
                        tx.send_if_modified(|current| replace_if_different(current, frame));
                    }
                }
            })
            .await;
        }
    }

    /// Computes the trends, apart from the snapshot ticks (a trend takes tens of ms): a
    /// new subscription's at once, every subscription's every 5 s while traffic flows.
    pub async fn run_trends(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TREND_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_change = u64::MAX;
        let mut round_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let change = self.engines.change_counter();
            let all = change != last_change && round_at.elapsed() >= TREND_EVERY;
            let work = self.work(|t| all || t.trend_tx.borrow().is_empty(), true);
            if all {
                last_change = change;
                round_at = tokio::time::Instant::now();
            }
            if work.is_empty() {
                continue;
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (sub, query, tx) in work {
                    // Dropped meanwhile: no one to send it to.
                    if tx.receiver_count() == 0 {
                        continue;
                    }
                    if let Ok(frame) = me.render_trend(&sub, &query) {
                        tx.send_if_modified(|current| replace_if_different(current, frame));
                    }
                }
            })
            .await;
        }
    }
}

fn replace_if_different(current: &mut Frame, new: Frame) -> bool {
    if current.as_str() == new.as_str() {
        false
    } else {
        *current = new;
        true
    }
}

pub fn status_report(engines: &EngineSet, status: &InstanceStatus) -> StatusReport {
    StatusReport {
        live: status.is_whole() && !status.is_stale(),
        rebuilding: status.rebuild_progress(),
        stale: status.is_stale(),
        watermark: engines.watermark(),
        partitions: status.partitions_report(),
        waiting: status.waiting_for_partitions(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_breakdown_is_checked_and_shared_with_rest() {
        let by = |dims: &[&str]| Subscription {
            by: dims.iter().map(|d| d.to_string()).collect(),
            ..Subscription::default()
        };
        let caps = SubscriptionCaps::default();
        let query = query_of(&by(&["reason", " segment", "reason", ""]), &caps).expect("valid");
        assert_eq!(query.breakdown, vec![Dimension::Reason, Dimension::Segment]);
        assert!(
            query_of(&by(&["channel"]), &caps)
                .expect("valid")
                .breakdown
                .is_empty(),
            "by channel alone is by_channel"
        );
        let refused = query_of(&by(&["reason", "motif"]), &caps).expect_err("unknown dimension");
        assert!(matches!(refused, QueryError::Breakdown(_)));
        assert!(refused.to_string().contains("\"motif\""), "{refused}");
    }
}
