//! The HTTP server: owns the router, the REST handlers and health endpoints.
//!
//! Built by [`serve`] from a bound listener and a shutdown future, so tests bind port 0.
//! Routes:
//! - `GET /api/v1/snapshot?window=15m[&channel=..&queue=..&reason=..&segment=..&site=..][&by=channel,queue]`:
//!   the snapshot JSON of `vigie replay`, over the live state.
//! - `GET /api/v1/ws`: websocket push of snapshots and status (see [`ws`]).
//! - `GET /api/v1/switches`, `GET|PUT /api/v1/switches/{id}`, `GET /api/v1/audit`:
//!   deflection switches and their audit trail.
//! - `GET /api/v1/cockpit`: the caller's role, KPI targets and filter values.
//! - Any other path: the WASM cockpit (see [`cockpit`]); unknown `/api/` paths are JSON 404s.
//! - `GET /api/v1/alerts`, `POST /api/v1/alerts/{id}/ack`, `GET /api/v1/alerts/rules`:
//!   alerts, acknowledgement, and the rules in force (see [`alerts`]).
//! - `GET /healthz` (process up), `GET /readyz` (503 while rebuilding, with progress),
//!   `GET /metrics` (Prometheus).
//!
//! Every error is JSON: `{"status", "code", "message"}`.

mod alerts;
mod auth;
pub mod cockpit;
mod error;
mod metrics;
mod oidc;
mod switches;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigie_proto::Subscription;

pub use auth::{sha256_hex, Auth, Principal};
pub use error::ApiError;
pub use oidc::{claim_values, JwtError, Oidc, OidcError};

use crate::alert::AlertService;
use crate::deflection::SwitchStore;
use crate::engine::{EngineSet, SnapshotQuery};
use crate::ingest::IngestStatus;
use crate::publisher::Publisher;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engines: Arc<EngineSet>,
    pub status: Arc<IngestStatus>,
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
}

/// Request bodies are small JSON objects; anything larger is refused (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Coalescing tick of the publisher: well under the 100 ms freshness target.
pub const PUBLISH_TICK: Duration = Duration::from_millis(50);

impl AppState {
    pub fn new(
        engines: Arc<EngineSet>,
        status: Arc<IngestStatus>,
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
        }
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

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/snapshot", get(snapshot))
        .route("/api/v1/ws", get(ws::upgrade))
        .route("/api/v1/switches", get(switches::list))
        .route(
            "/api/v1/switches/{id}",
            get(switches::get).put(switches::flip),
        )
        .route("/api/v1/audit", get(switches::audit))
        .route("/api/v1/cockpit", get(cockpit::info))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/rules", get(alerts::rules))
        .route("/api/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(cockpit::assets)
        .with_state(state)
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

/// Refuses to expose an unauthenticated API beyond this machine.
pub fn check_listen_address(addr: SocketAddr, auth_configured: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || auth_configured {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} without authentication: bind a loopback address (127.0.0.1) \
             or configure authentication"
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotParams {
    window: Option<String>,
    channel: Option<String>,
    queue: Option<String>,
    reason: Option<String>,
    segment: Option<String>,
    site: Option<String>,
    by: Option<String>,
}

impl SnapshotParams {
    fn query(self) -> Result<SnapshotQuery, ApiError> {
        // Same window and filters as a websocket subscription, one definition for both.
        let defaults = Subscription::default();
        Ok(crate::publisher::query_of(&Subscription {
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
        })?)
    }
}

async fn snapshot(
    _caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<SnapshotParams>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let query = params.query()?;
    Ok(Json(state.engines.snapshot(&query)?))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let ready = state.status.is_ready();
    let mut body = json!({
        "ready": ready,
        "rebuilding": state.status.rebuild_progress(),
        "stale": state.status.is_stale(),
    });
    if let Some(partitions) = state.status.partitions_report() {
        body["partitions"] = json!(partitions);
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state),
    )
}
