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

struct Topic {
    query: SnapshotQuery,
    tx: watch::Sender<Frame>,
    trend_tx: watch::Sender<Frame>,
}

/// What a client subscribed to receives: the latest snapshot and the latest trend.
#[derive(Debug)]
pub struct Feed {
    pub snapshots: watch::Receiver<Frame>,
    pub trend: watch::Receiver<Frame>,
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
    topics: Mutex<HashMap<Subscription, Topic>>,
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
}

/// The engine query of a subscription; errors name what is wrong.
pub(crate) fn query_of(sub: &Subscription) -> Result<SnapshotQuery, QueryError> {
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
    })
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
            topics: Mutex::new(HashMap::new()),
            status_tx: watch::channel(initial).0,
            switches: std::sync::OnceLock::new(),
            switches_tx: watch::channel(Frame::from_static("")).0,
            alerts: std::sync::OnceLock::new(),
            alerts_tx: watch::channel(Frame::from_static("")).0,
            tick,
        })
    }

    /// Latest snapshot and trend of `sub`, now and on every change.
    pub fn subscribe(&self, sub: Subscription) -> Result<Feed, QueryError> {
        let mut topics = self.topics.lock();
        if let Some(topic) = topics.get(&sub) {
            return Ok(Feed {
                snapshots: topic.tx.subscribe(),
                trend: topic.trend_tx.subscribe(),
            });
        }
        let query = query_of(&sub)?;
        let frame = self.render(&sub, &query)?;
        // Filled within a trend round (see `run_trends`): a trend costs tens of ms.
        let trend = Frame::from_static("");
        let (tx, snapshots) = watch::channel(frame);
        let (trend_tx, trend) = watch::channel(trend);
        topics.insert(
            sub,
            Topic {
                query,
                tx,
                trend_tx,
            },
        );
        Ok(Feed { snapshots, trend })
    }

    /// Serves `store`'s switches (with their effects) to websocket clients.
    pub(crate) fn attach_switches(&self, store: Arc<SwitchStore>) {
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
    pub(crate) fn attach_alerts(&self, service: Arc<crate::alert::AlertService>) {
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
        Ok(encode(&ServerMessage::Snapshot {
            subscription: sub.clone(),
            snapshot: Box::new(snapshot),
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
            let snapshots = change != last_change;
            last_change = change;
            if snapshots {
                self.publish_snapshots();
            }
        }
    }

    /// Computes the trends, apart from the snapshot ticks (a trend takes tens of ms): a
    /// new subscription's at once, every subscription's every 5 s while traffic flows.
    pub(crate) async fn run_trends(self: Arc<Self>, shutdown: CancellationToken) {
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
            let work: Vec<(Subscription, SnapshotQuery, watch::Sender<Frame>)> = {
                let topics = self.topics.lock();
                topics
                    .iter()
                    .filter(|(_, t)| all || t.trend_tx.borrow().is_empty())
                    .map(|(s, t)| (s.clone(), t.query.clone(), t.trend_tx.clone()))
                    .collect()
            };
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
                    if let Ok(frame) = me.render_trend(&sub, &query) {
                        tx.send_if_modified(|current| replace_if_different(current, frame));
                    }
                }
            })
            .await;
        }
    }

    /// The snapshot of every subscription.
    fn publish_snapshots(&self) {
        // Compute outside the lock: subscribing clients must not wait for a whole round.
        let work: Vec<(Subscription, SnapshotQuery, watch::Sender<Frame>)> = {
            let mut topics = self.topics.lock();
            topics.retain(|_, t| t.tx.receiver_count() > 0);
            topics
                .iter()
                .map(|(s, t)| (s.clone(), t.query.clone(), t.tx.clone()))
                .collect()
        };
        for (sub, query, tx) in work {
            if let Ok(frame) = self.render(&sub, &query) {
                tx.send_if_modified(|current| replace_if_different(current, frame));
            }
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
        live: status.is_ready() && !status.is_stale(),
        rebuilding: status.rebuild_progress(),
        stale: status.is_stale(),
        watermark: engines.watermark(),
        partitions: status.partitions_report(),
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
        let query = query_of(&by(&["reason", " segment", "reason", ""])).expect("valid");
        assert_eq!(query.breakdown, vec![Dimension::Reason, Dimension::Segment]);
        assert!(
            query_of(&by(&["channel"]))
                .expect("valid")
                .breakdown
                .is_empty(),
            "by channel alone is by_channel"
        );
        let refused = query_of(&by(&["reason", "motif"])).expect_err("unknown dimension");
        assert!(matches!(refused, QueryError::Breakdown(_)));
        assert!(refused.to_string().contains("\"motif\""), "{refused}");
    }
}
