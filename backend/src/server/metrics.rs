//! Owns the Prometheus text exposition of `vigie_*` metrics, read from the ingest
//! status, the engines, the alerting service and the auth counters at scrape time (no
//! per-event cost). Labels are bounded (partition numbers, severities, configured sink
//! names, a fixed set of reasons and results).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::AppState;

struct Exposition(String);

impl Exposition {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.metric(name, kind, help, &[(String::new(), value)]);
    }
}

pub fn render(state: &AppState) -> String {
    let status = &state.status;
    let mut out = Exposition(String::with_capacity(2048));
    let counter = |v: &std::sync::atomic::AtomicU64| v.load(Relaxed) as f64;
    out.single(
        "vigie_events_consumed_total",
        "counter",
        "Records read from Kafka.",
        counter(&status.consumed),
    );
    out.single(
        "vigie_events_applied_total",
        "counter",
        "Records applied by the engine (not late, not redelivered).",
        counter(&status.applied),
    );
    out.single(
        "vigie_decode_errors_total",
        "counter",
        "Records that could not be decoded.",
        counter(&status.decode_errors),
    );
    out.single(
        "vigie_dead_lettered_total",
        "counter",
        "Records sent to the dead-letter topic.",
        counter(&status.dead_lettered),
    );
    out.single(
        "vigie_dead_letter_failures_total",
        "counter",
        "Refused records the dead-letter topic did not take within kafka.dead_letter_timeout (they stay in the source topic).",
        counter(&status.dead_letter_failures),
    );
    let partials = &status.scaleout;
    for (name, help, value) in [
        (
            "vigie_partials_published_total",
            "Partial records (chunks and headers) published to the partials topic.",
            &partials.published,
        ),
        (
            "vigie_partials_published_bytes_total",
            "Bytes of partial records published.",
            &partials.published_bytes,
        ),
        (
            "vigie_partials_publish_failures_total",
            "Partial records that could not be published (retried).",
            &partials.publish_failures,
        ),
        (
            "vigie_partials_applied_total",
            "Partial records of every instance merged into the view.",
            &partials.applied,
        ),
        (
            "vigie_partials_fenced_total",
            "Partial records of a former owner (older epoch), ignored.",
            &partials.fenced,
        ),
        (
            "vigie_partials_unreadable_total",
            "Partial records that could not be read, skipped.",
            &partials.unreadable,
        ),
        (
            "vigie_partials_resets_total",
            "Times the partials topic started over (deleted and created again): every replica forgotten, partitions claimed again.",
            &partials.resets,
        ),
    ] {
        out.single(name, "counter", help, counter(value));
    }
    if let Some(report) = status.partitions_report() {
        out.single(
            "vigie_merged_partitions_live",
            "gauge",
            "Partitions of the topic held live in the merged view (scale-out).",
            report.live as f64,
        );
        out.single(
            "vigie_merged_partitions_missing",
            "gauge",
            "Partitions of the topic without a live owner (scale-out).",
            report.missing.len() as f64,
        );
    }
    let engines: Vec<_> = state
        .engines
        .partitions()
        .into_iter()
        .filter_map(|p| state.engines.get(p))
        .collect();
    let sum = |f: &dyn Fn(&crate::engine::Engine) -> u64| {
        engines.iter().map(|e| f(e)).sum::<u64>() as f64
    };
    out.single(
        "vigie_late_events_total",
        "counter",
        "Events older than the allowed lateness, counted and not applied.",
        sum(&|e| e.stats().late_events.load(Relaxed)),
    );
    out.single(
        "vigie_duplicate_events_total",
        "counter",
        "Redelivered events, counted once.",
        sum(&|e| e.stats().duplicates.load(Relaxed)),
    );
    out.single(
        "vigie_customer_arrivals_folded_total",
        "counter",
        "Arrivals of one customer id beyond engine.max_recent_arrivals_per_customer within the lateness, settled early.",
        sum(&|e| e.stats().customer_arrivals_folded.load(Relaxed)),
    );
    let symbols = state.engines.symbols();
    out.single(
        "vigie_dimension_values",
        "gauge",
        "Distinct dimension values held (bounded by engine.max_dimension_values).",
        symbols.len() as f64,
    );
    out.single(
        "vigie_dimension_values_overflow_total",
        "counter",
        "Dimension values seen beyond engine.max_dimension_values, counted as (other).",
        counter(&symbols.overflowed),
    );
    out.single(
        "vigie_channels_overflow_total",
        "counter",
        "Events of a channel beyond engine.max_channels, counted as the channel (other).",
        counter(&symbols.channels_overflowed),
    );
    out.single(
        "vigie_dimension_keys",
        "gauge",
        "Dimension keys (combinations) in use (bounded by engine.max_dimension_keys).",
        symbols.key_count() as f64,
    );
    out.single(
        "vigie_dimension_keys_overflow_total",
        "counter",
        "New combinations beyond engine.max_dimension_keys, counted under their channel's (other) key.",
        counter(&symbols.keys_overflowed),
    );
    out.single(
        "vigie_dimension_keys_freed_total",
        "counter",
        "Dimension keys freed after being unused longer than anything may hold them.",
        counter(&symbols.keys_freed),
    );
    out.single(
        "vigie_tracked_customers",
        "gauge",
        "Customers within the repeat horizon.",
        sum(&|e| e.tracked_customers() as u64),
    );
    out.single(
        "vigie_tracked_agents",
        "gauge",
        "Agents known (bounded by engine.max_agents per partition).",
        sum(&|e| e.tracked_agents() as u64),
    );
    out.single(
        "vigie_agents_refused_total",
        "counter",
        "Events of new agents refused because engine.max_agents were known.",
        sum(&|e| e.agent_limits_hit().0),
    );
    out.single(
        "vigie_agent_changes_folded_total",
        "counter",
        "State changes of one agent beyond engine.max_agent_changes, folded early.",
        sum(&|e| e.agent_limits_hit().1),
    );
    out.single(
        "vigie_http_events_ingested_total",
        "counter",
        "Events taken by POST /api/v1/events and produced to the events topic.",
        status
            .ingested_http
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    out.single(
        "vigie_http_events_refused_total",
        "counter",
        "Records refused by POST /api/v1/events (answered with why).",
        status
            .refused_http
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    out.single(
        "vigie_autopilot_evaluations_total",
        "counter",
        "Rounds of autopilot evaluation on this instance (the alerting one).",
        status
            .autopilot_evaluations
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    out.single(
        "vigie_autopilot_flips_total",
        "counter",
        "Switches the autopilot turned on or off by itself (act mode).",
        status
            .autopilot_flips
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    out.single(
        "vigie_baseline_keys",
        "gauge",
        "(channel, queue) keys with a baseline, summed over partitions.",
        sum(&|e| e.baseline_usage().0 as u64),
    );
    out.single(
        "vigie_baseline_keys_overflow_total",
        "counter",
        "Arrivals counted under (other) because engine.max_baseline_keys were in use.",
        sum(&|e| e.baseline_usage().1),
    );
    out.single(
        "vigie_tracked_interactions",
        "gauge",
        "Interactions held in memory.",
        sum(&|e| e.tracked_interactions() as u64),
    );
    let lag: Vec<(String, f64)> = status
        .lag()
        .into_iter()
        .map(|(p, l)| (format!("{{partition=\"{p}\"}}"), l as f64))
        .collect();
    out.metric(
        "vigie_consumer_lag",
        "gauge",
        "Records behind the high watermark, per partition.",
        &lag,
    );
    out.single(
        "vigie_partitions_assigned",
        "gauge",
        "Partitions of the events topic this instance consumes (scale-out: its share).",
        status.partitions().len() as f64,
    );
    out.single(
        "vigie_rebuild_progress",
        "gauge",
        "Share of the rebuild replay done (1 when live).",
        status.rebuild_progress().unwrap_or(1.0),
    );
    let clients = &state.publisher.clients;
    out.single(
        "vigie_websocket_clients",
        "gauge",
        "Websocket clients connected.",
        counter(&clients.connected),
    );
    out.single(
        "vigie_websocket_slow_clients_closed_total",
        "counter",
        "Websocket clients closed because they stopped reading.",
        counter(&clients.closed_too_slow),
    );
    out.single(
        "vigie_websocket_subscriptions",
        "gauge",
        "Distinct subscriptions (window, filters, breakdown) computed for websocket clients.",
        state.publisher.subscription_count() as f64,
    );
    let refusals: Vec<(String, f64)> = state
        .limits
        .refusals()
        .map(|(limit, n)| (format!("{{limit=\"{}\"}}", limit.key()), n as f64))
        .collect();
    out.metric(
        "vigie_limit_refusals_total",
        "counter",
        "Requests, connections and messages refused by a limit of [server], by its key.",
        &refusals,
    );
    let failures: Vec<(String, f64)> = state
        .auth
        .failures()
        .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n as f64))
        .collect();
    out.metric(
        "vigie_auth_failures_total",
        "counter",
        "API calls refused by authentication (401, 403 for a JWT without a mapped role, 503 when the OIDC keys are unavailable), by reason.",
        &failures,
    );
    if let Some(oidc) = state.auth.oidc() {
        out.metric(
            "vigie_oidc_jwks_fetches_total",
            "counter",
            "Fetches of the OIDC issuer's signing keys, by result.",
            &[
                ("{result=\"ok\"}".into(), counter(&oidc.fetches_ok)),
                ("{result=\"error\"}".into(), counter(&oidc.fetches_failed)),
            ],
        );
        out.single(
            "vigie_oidc_signing_keys",
            "gauge",
            "Usable signing keys of the OIDC issuer held.",
            oidc.key_count() as f64,
        );
    }
    out.single(
        "vigie_ready",
        "gauge",
        "1 when this instance can serve a cockpit (its partitions rebuilt; scale-out: the partials read).",
        f64::from(u8::from(status.can_serve())),
    );
    out.single(
        "vigie_view_whole",
        "gauge",
        "1 when every partition is live in the view (scale-out: here or in its owner's partial).",
        f64::from(u8::from(status.is_whole())),
    );
    out.single(
        "vigie_partitions_not_live",
        "gauge",
        "Partitions not live in the view (rebuilding or missing; 1 while waiting for any).",
        status.partitions_not_live() as f64,
    );
    out.single(
        "vigie_broker_up",
        "gauge",
        "0 while the broker is unreachable.",
        f64::from(u8::from(!status.is_stale())),
    );
    if let Some(switches) = &state.switches {
        out.single(
            "vigie_audit_write_failures_total",
            "counter",
            "Audit records the audit topic did not take in time (each retried until written).",
            counter(&switches.audit_write_failures),
        );
    }
    if let Some(alerts) = &state.alerts {
        let by_severity = alerts.active_by_severity();
        let active: Vec<(String, f64)> = [
            vigie_proto::Severity::Info,
            vigie_proto::Severity::Warning,
            vigie_proto::Severity::Critical,
        ]
        .into_iter()
        .map(|s| {
            let name = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (
                format!("{{severity=\"{name}\"}}"),
                by_severity.get(&s).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
        out.metric(
            "vigie_alerts_active",
            "gauge",
            "Alerts firing or acknowledged, per severity.",
            &active,
        );
        out.single(
            "vigie_alerting_instance",
            "gauge",
            "1 when this instance evaluates the rules and notifies (scale-out: one instance).",
            f64::from(u8::from(alerts.is_alerting())),
        );
        if let Some(shared) = alerts.shared_stats() {
            for (name, help, value) in [
                (
                    "vigie_shared_alert_records_published_total",
                    "Alert states and acknowledgements written to the partials topic.",
                    &shared.published,
                ),
                (
                    "vigie_shared_alert_publish_failures_total",
                    "Alert states and acknowledgements the partials topic did not take.",
                    &shared.publish_failures,
                ),
                (
                    "vigie_shared_alert_records_fenced_total",
                    "Alert states of a former alerting instance, ignored.",
                    &shared.fenced,
                ),
                (
                    "vigie_shared_alert_records_unreadable_total",
                    "Shared alert records that could not be read, skipped.",
                    &shared.unreadable,
                ),
                (
                    "vigie_alert_notifications_handed_off_total",
                    "Notifications found queued on this instance's disk (after a crash, or when it stopped alerting) handed to the alerting instance.",
                    &shared.handed_off,
                ),
                (
                    "vigie_alert_notifications_adopted_total",
                    "Handed-off notifications queued here as the alerting instance (not already queued).",
                    &shared.adopted,
                ),
                (
                    "vigie_shared_alert_states_trimmed_total",
                    "Alert states published trimmed to fit one Kafka record (oldest history, then oldest pending notifications).",
                    &shared.trimmed,
                ),
            ] {
                out.single(name, "counter", help, counter(value));
            }
            out.single(
                "vigie_shared_alert_state_bytes",
                "gauge",
                "Size of the last alert state published to the partials topic (trimmed beyond 900 KB).",
                counter(&shared.state_bytes),
            );
        }
        out.single(
            "vigie_alert_evaluations_total",
            "counter",
            "Rounds of alert rule evaluation.",
            counter(&alerts.evaluations),
        );
        let per_sink = |f: &dyn Fn(&crate::alert::Sink) -> f64| -> Vec<(String, f64)> {
            alerts
                .sink_stats()
                .map(|s| (format!("{{sink=\"{}\"}}", s.name), f(s)))
                .collect()
        };
        out.metric(
            "vigie_alert_notifications_delivered_total",
            "counter",
            "Notifications accepted by their sink.",
            &per_sink(&|s| counter(&s.stats.delivered)),
        );
        out.metric(
            "vigie_alert_delivery_failures_total",
            "counter",
            "Delivery attempts that failed and will be retried.",
            &per_sink(&|s| counter(&s.stats.failed_attempts)),
        );
        out.metric(
            "vigie_alert_notifications_dropped_total",
            "counter",
            "Notifications dropped: queue full, refused by the sink, or past give_up_after.",
            &per_sink(&|s| counter(&s.stats.dropped)),
        );
        out.metric(
            "vigie_alert_queue_depth",
            "gauge",
            "Notifications waiting for their sink.",
            &per_sink(&|s| s.queued() as f64),
        );
    }
    out.0
}
