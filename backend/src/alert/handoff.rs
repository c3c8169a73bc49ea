//! Owns what keeps scale-out alerting lossless across crashes and changes of alerting
//! instance: the notifications an instance finds queued on its own disk are handed to
//! the alerting instance through the partials topic, and the shared alert state is kept
//! small enough for one Kafka record.
//!
//! A notification queued by the alerting instance is on its disk at once, in its
//! published state a moment later. If it crashes in between, only its disk has it: at
//! its next start ([`AlertService::share`]), and whenever it stops being the alerting
//! instance, its queue is *carried*: each notification is published as a
//! [`Handoff`] record, and its file removed once the topic has it. The alerting
//! instance queues each handoff it reads unless a notification of that delivery id is
//! already queued, then writes the record's tombstone. Delivery stays at least once
//! with a stable delivery id (one delivered just before a crash may come again).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::delivery::remove;
use super::shared::{Handoff, SharedAlerts, SharedState};
use super::AlertService;

/// Largest alert state published, in bytes of JSON: under the 1 MB a Kafka record may
/// have by default (`message.max.bytes`), with room for the record's framing.
pub(crate) const SHARED_MAX_BYTES: usize = 900_000;

impl AlertService {
    /// Takes every sink's queue out for the alerting instance (their files kept until
    /// handed off); `why` goes to the log.
    pub(super) fn carry(&self, why: &str) {
        let mut carried = self.carried.lock();
        let before = carried.len();
        for (name, sink) in &self.sinks {
            carried.extend(sink.take_all().into_iter().map(|pending| Handoff {
                sink: name.clone(),
                pending,
            }));
        }
        let taken = carried.len() - before;
        if taken > 0 {
            tracing::info!(
                taken,
                why,
                "scale-out: pending notifications handed to the alerting instance"
            );
        }
    }

    /// Publishes the carried notifications (one batch in flight at a time); each leaves
    /// this instance, file and all, once the topic has it.
    pub(super) fn hand_off(&self, shared: &Arc<SharedAlerts>) {
        if self.carried.lock().is_empty() || self.handing_off.swap(true, Relaxed) {
            return;
        }
        let (carried, busy, shared) = (
            self.carried.clone(),
            self.handing_off.clone(),
            shared.clone(),
        );
        tokio::spawn(async move {
            let batch = carried.lock().clone();
            for handoff in batch {
                if !shared.publish_handoff(&handoff).await {
                    break; // the next round tries again
                }
                shared.stats.handed_off.fetch_add(1, Relaxed);
                remove(&handoff.pending);
                carried
                    .lock()
                    .retain(|h| h.pending.id != handoff.pending.id);
            }
            busy.store(false, Relaxed);
        });
    }

    /// The alerting instance queues the notifications handed to it, each unless
    /// already queued, and tombstones their records.
    pub(super) fn adopt_handoffs(&self, shared: &SharedAlerts) {
        for (key, handoff) in shared.take_handoffs() {
            match self.sinks.get(&handoff.sink) {
                Some(sink) => {
                    if sink.push_unless_known(handoff.pending) {
                        shared.stats.adopted.fetch_add(1, Relaxed);
                    }
                }
                None => tracing::warn!(
                    sink = %handoff.sink,
                    "a notification was handed over for a sink not configured here: dropped"
                ),
            }
            shared.publish_tombstone(key);
        }
    }
}

/// Trims `state` to at most `max` bytes of JSON: the oldest resolved alerts of its
/// history first (the API's history then starts later), then the oldest pending
/// notifications (each instance still holds its own queue; only a takeover would miss
/// them). Returns its JSON and whether anything was trimmed.
pub(crate) fn fit(state: &mut SharedState, max: usize) -> (Vec<u8>, bool) {
    let mut trimmed = false;
    loop {
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        if bytes.len() <= max {
            return (bytes, trimmed);
        }
        trimmed = true;
        let history = state.lifecycle.history_len();
        if history > 0 {
            // A quarter at a time (at least one): few rounds of serialization.
            state.lifecycle.trim_history(history - history.div_ceil(4));
            continue;
        }
        let oldest = state
            .outbox
            .iter()
            .filter_map(|(name, pending)| pending.first().map(|p| (p.created_at, name.clone())))
            .min();
        match oldest {
            Some((_, name)) => {
                if let Some(queue) = state.outbox.get_mut(&name) {
                    let drop = queue.len().div_ceil(4);
                    queue.drain(..drop);
                    if queue.is_empty() {
                        state.outbox.remove(&name);
                    }
                }
            }
            // Nothing left to trim but active alerts (bounded by the rules): sent as is.
            None => return (bytes, trimmed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::delivery::Pending;
    use vigie_proto::{Alert, AlertState, Severity};

    fn pending(id: &str, at: i64) -> Pending {
        Pending {
            id: id.into(),
            event: "fired".into(),
            created_at: at,
            body: "x".repeat(1_000),
            file: None,
        }
    }

    fn resolved(i: usize) -> Alert {
        Alert {
            id: format!("rule.{i}"),
            rule: "rule".into(),
            severity: Severity::Warning,
            state: AlertState::Resolved,
            summary: "y".repeat(500),
            since: i as i64,
            acknowledged_by: None,
            kpi: "abandon_rate".into(),
            scope: "total".into(),
            value: Some(0.2),
            threshold: 0.1,
            clear: 0.08,
            acknowledged_at: None,
            ack_note: None,
            resolved_at: Some(i as i64 + 1),
            sinks: vec!["hook".into()],
            autopilot: None,
        }
    }

    #[test]
    fn a_state_too_large_loses_its_oldest_history_then_its_oldest_pending() {
        let mut state = SharedState::default();
        for i in 0..200 {
            state.lifecycle.push_resolved(resolved(i));
        }
        state.outbox.insert(
            "hook".into(),
            (0..100).map(|i| pending(&format!("d{i}"), i)).collect(),
        );
        let whole = serde_json::to_vec(&state).expect("json").len();
        assert!(whole > 150_000, "the state is large: {whole}");

        let (bytes, trimmed) = fit(&mut state.clone(), whole);
        assert!(
            !trimmed && bytes.len() == whole,
            "a state that fits is untouched"
        );

        let mut small = state.clone();
        let (bytes, trimmed) = fit(&mut small, 100_000);
        assert!(trimmed && bytes.len() <= 100_000, "{} bytes", bytes.len());
        assert_eq!(small.lifecycle.history_len(), 0, "history goes first");
        let kept = &small.outbox["hook"];
        assert!(!kept.is_empty() && kept.len() < 100);
        assert_eq!(
            kept.last().map(|p| p.id.as_str()),
            Some("d99"),
            "the newest pending notifications are kept"
        );

        let mut medium = state.clone();
        fit(&mut medium, whole - 10_000);
        let history = medium.lifecycle.history(500);
        assert!(!history.is_empty() && history.len() < 200);
        assert_eq!(
            history[0].id, "rule.199",
            "the newest resolved alerts are kept"
        );
        assert_eq!(
            medium.outbox["hook"].len(),
            100,
            "pending kept while history fits"
        );
    }
}
