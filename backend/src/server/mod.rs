//! The HTTP server: owns the route table, the REST handlers of the instance itself
//! (snapshot, health, readiness, metrics) and the wiring of the others.
//!
//! Built by [`serve`] from a bound listener and a shutdown token, so tests bind port 0.
//! Every route is in one table ([`routes`]): the router is built from it, `vigie routes`
//! prints it, and the OpenAPI document ([`openapi`], served at `/api/v1/openapi.json`)
//! lists each of its routes (a test checks both ways). Every body is a `vigie_proto`
//! type, the one the cockpit reads; every error is JSON: `{"status", "code", "message"}`.
//!
//! - [`ws`]: the websocket; [`switches`], [`alerts`], [`agents`]: their REST handlers;
//!   [`cockpit`]: the cockpit bundle and `GET /api/v1/cockpit`.
//! - [`auth`] (tokens, OIDC through [`oidc`]) finds the [`caller`] of a request.
//! - [`error`]: the one API error type; [`metrics`]: the Prometheus exposition;
//!   [`guard`]: the `Host` allow-list and security headers of every response.

mod agents;
mod alerts;
mod auth;
mod autopilot;
mod caller;
pub mod cockpit;
mod error;
mod events;
mod guard;
pub mod limits;
mod metrics;
mod oidc;
pub mod openapi;
mod routes;
mod switches;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigie_proto::{ErrorBody, Health, Readiness, Snapshot, Subscription};

pub use auth::{sha256_hex, Auth};
pub use caller::Principal;
pub use error::ApiError;
pub use oidc::{claim_values, JwtError, Oidc, OidcError};
pub use routes::{routes, Route};

use crate::alert::AlertService;
use crate::deflection::SwitchStore;
use crate::engine::{EngineSet, SnapshotQuery};
use crate::publisher::Publisher;
use crate::status::InstanceStatus;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engines: Arc<EngineSet>,
    pub status: Arc<InstanceStatus>,
    pub publisher: Arc<Publisher>,
    /// Deflection switches; `None` on an instance without them (then their routes answer 503).
    pub switches: Option<Arc<SwitchStore>>,
    /// Alerting; `None` on an instance without it (then its routes answer 503).
    pub alerts: Option<Arc<AlertService>>,
    /// Who may do what (open to local callers when no token is configured).
    pub auth: Arc<Auth>,
    /// Cancelled at shutdown: stops the publisher and closes websockets.
    pub shutdown: CancellationToken,
    /// The WASM cockpit's bundle and targets.
    pub cockpit: Arc<cockpit::Cockpit>,
    /// What one caller may hold and ask at once (`[server]`).
    pub limits: Arc<limits::Limits>,
    /// The autopilot's rules, as shown (read-only).
    pub autopilot: Arc<Vec<vigie_proto::AutopilotRuleView>>,
    /// Where `POST /api/v1/events` produces; `None`: the route answers 503.
    pub ingest: Option<Arc<events::HttpIngest>>,
}

/// Request bodies are small JSON objects; anything larger is refused (413).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Coalescing tick of the publisher: well under the 100 ms freshness target.
pub(crate) const PUBLISH_TICK: Duration = Duration::from_millis(50);

impl AppState {
    pub fn new(
        engines: Arc<EngineSet>,
        status: Arc<InstanceStatus>,
        shutdown: CancellationToken,
    ) -> AppState {
        let publisher = Publisher::new(engines.clone(), status.clone(), PUBLISH_TICK);
        AppState {
            engines,
            status,
            publisher,
            switches: None,
            alerts: None,
            auth: Arc::new(Auth::default()),
            shutdown,
            cockpit: Arc::default(),
            limits: Arc::default(),
            autopilot: Arc::default(),
            ingest: None,
        }
    }

    /// Takes events over HTTP (`POST /api/v1/events`) into `kafka.topic`.
    pub fn with_ingest(
        mut self,
        kafka: &crate::config::KafkaSettings,
    ) -> Result<AppState, rdkafka::error::KafkaError> {
        self.ingest = Some(events::HttpIngest::new(kafka)?);
        Ok(self)
    }

    /// Shows the autopilot's rules of `settings` (their proposals are alerts).
    pub fn with_autopilot(mut self, settings: &crate::config::Settings) -> AppState {
        self.autopilot = Arc::new(crate::autopilot::rule_views(settings));
        self
    }

    /// The limits of `settings` (default: `[server]`'s defaults).
    pub fn with_limits(mut self, settings: &crate::config::ServerSettings) -> AppState {
        self.publisher
            .set_caps(crate::publisher::SubscriptionCaps::of(settings));
        self.limits = Arc::new(limits::Limits::new(settings.clone()));
        self
    }

    /// Serves the cockpit bundle and its targets (see [`cockpit`]).
    pub fn with_cockpit(mut self, cockpit: cockpit::Cockpit) -> AppState {
        self.cockpit = Arc::new(cockpit);
        self
    }

    /// Checks bearer tokens and roles (see [`Auth`]).
    pub fn with_auth(mut self, auth: Auth) -> AppState {
        self.auth = Arc::new(auth);
        self
    }

    /// Serves deflection switches from `store` (REST and websocket).
    pub fn with_switches(mut self, store: Arc<SwitchStore>) -> AppState {
        self.publisher.attach_switches(store.clone());
        self.switches = Some(store);
        self
    }

    /// Serves `service`'s alerts (REST and websocket).
    pub fn with_alerts(mut self, service: Arc<AlertService>) -> AppState {
        self.publisher.attach_alerts(service.clone());
        self.alerts = Some(service);
        self
    }
}

/// The API and the cockpit, from the route table.
pub fn router(state: AppState) -> Router {
    routes::router()
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(cockpit::assets)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// A method a route does not have: Vigie's JSON error, like every other.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not a method of {}", uri.path()))
}

/// Serves `router(state)` on `listener`, with the publisher, until `state.shutdown`.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let publisher = tokio::spawn(state.publisher.clone().run(shutdown.clone()));
    let trends = tokio::spawn(state.publisher.clone().run_trends(shutdown.clone()));
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    let _ = publisher.await;
    let _ = trends.await;
    served
}

/// Refuses an API without authentication unless `auth.open` asks for it, and then
/// beyond this machine.
pub fn check_listen_address(
    addr: SocketAddr,
    auth: &crate::config::AuthSettings,
) -> Result<(), String> {
    if auth.enabled() {
        Ok(())
    } else if !auth.open {
        Err(
            "no authentication configured: add bearer tokens ([[auth.tokens]]) or an OIDC issuer \
             ([auth.oidc]); or, on a laptop, set auth.open = true (VIGIE__AUTH__OPEN=true) to let \
             anyone on this machine act as admin"
                .into(),
        )
    } else if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} with auth.open = true: bind a loopback address (127.0.0.1) \
             or configure authentication"
        ))
    }
}

/// The window, filters and breakdown of a snapshot (the same as a websocket subscription).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SnapshotParams {
    /// `5m` … `24h`, or `today` (default `15m`).
    window: Option<String>,
    channel: Option<String>,
    queue: Option<String>,
    reason: Option<String>,
    segment: Option<String>,
    site: Option<String>,
    /// Dimensions to break down by, comma-separated: `channel,queue,reason,segment,site`.
    by: Option<String>,
    /// Most rows of the breakdown (default `server.breakdown_rows`, at most
    /// `server.max_breakdown_rows`): the busiest, the others summed in one `(other)` row.
    rows: Option<u32>,
}

impl SnapshotParams {
    fn query(self, caps: &crate::publisher::SubscriptionCaps) -> Result<SnapshotQuery, ApiError> {
        // Same window and filters as a websocket subscription, one definition for both.
        let defaults = Subscription::default();
        Ok(crate::publisher::query_of(
            &Subscription {
                window: self.window.unwrap_or(defaults.window),
                channel: self.channel,
                queue: self.queue,
                reason: self.reason,
                segment: self.segment,
                site: self.site,
                by: self
                    .by
                    .iter()
                    .flat_map(|list| list.split(','))
                    .map(str::to_string)
                    .collect(),
                rows: self.rows,
                agents: false,
            },
            caps,
        )?)
    }
}

/// The KPI snapshot of a window over the live state: exactly what `vigie replay` prints.
#[utoipa::path(
    get,
    path = "/api/v1/snapshot",
    tag = "kpis",
    params(SnapshotParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the snapshot", body = Snapshot),
        (status = 400, description = "bad window, filter or breakdown", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 503, description = "busy: server.max_concurrent_snapshots are being computed", body = ErrorBody),
    )
)]
async fn snapshot(
    _caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<SnapshotParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Snapshot>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let query = params.query(&state.publisher.caps())?;
    // At most `server.max_concurrent_snapshots` at once, each on the blocking pool: a
    // flood of 24 h snapshots must not hold the async workers that answer everyone else.
    let permit = state.limits.snapshot_permit().await?;
    let engines = state.engines.clone();
    let snapshot = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engines.snapshot(&query)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("snapshot task: {e}")))??;
    Ok(Json(snapshot))
}

/// Liveness: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "the process runs", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: 200 once this instance can serve a cockpit (its partitions rebuilt;
/// scale-out: every instance's partials read once), 503 before, with the progress and
/// whether the view is whole.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "live", body = Readiness),
        (status = 503, description = "rebuilding, or partitions missing", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let ready = state.status.can_serve();
    let body = Readiness {
        ready,
        whole: state.status.is_whole(),
        waiting_for_partitions: state.status.waiting_for_partitions(),
        rebuilding: state.status.rebuild_progress(),
        stale: state.status.is_stale(),
        partitions: state.status.partitions_report(),
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Prometheus text exposition of the `vigie_*` metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state),
    )
}
