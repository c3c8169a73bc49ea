//! REST handlers of alerts: the list (active and recent history), acknowledgement by
//! a supervisor, and the rules in force (read-only, secrets never shown).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use vigie_proto::{AckRequest, Alert, AlertList, ErrorBody, RulesView};

use super::limits::Limit;
use super::{ApiError, AppState, Principal};
use crate::alert::AlertService;
use crate::config::Role;

fn service(state: &AppState) -> Result<&AlertService, ApiError> {
    state
        .alerts
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("alerting is not enabled on this instance".into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Resolved alerts returned in `history` (default 50, at most 500).
    limit: Option<usize>,
}

/// Firing, acknowledged and recently resolved alerts, and the resolved history.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AlertList),
        (status = 503, description = "alerting not enabled here", body = ErrorBody),
    )
)]
pub(super) async fn list(
    _caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let alerts = service(&state)?;
    let limit = params.limit.unwrap_or(50).min(500);
    Ok(Json(AlertList {
        alerts: alerts.alerts().as_ref().clone(),
        history: alerts.history(limit),
        // Scale-out: which instance evaluates and notifies (null: a single instance).
        alerting_instance: alerts.alerting_instance(),
    }))
}

/// The rules in force and the sinks: no URL, no key.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/rules",
    tag = "alerts",
    security(("bearer" = [])),
    responses((status = 200, body = RulesView))
)]
pub(super) async fn rules(
    _caller: Principal,
    State(state): State<AppState>,
) -> Result<Json<RulesView>, ApiError> {
    let alerts = service(&state)?;
    Ok(Json(RulesView {
        rules: alerts.rules(),
        sinks: alerts.sinks(),
    }))
}

/// Acknowledges an alert (supervisor); the body is optional. The caller's name is
/// recorded as who acknowledged; acknowledging twice keeps the first.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/ack",
    tag = "alerts",
    params(("id" = String, Path, description = "alert id")),
    request_body(content = Option<AckRequest>, description = "optional note"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the alert, acknowledged", body = Alert),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already_resolved", body = ErrorBody),
        (status = 503, description = "the alerting instance did not confirm in time", body = ErrorBody),
    )
)]
pub(super) async fn acknowledge(
    caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Alert>, ApiError> {
    caller.require(Role::Supervisor)?;
    state
        .auth
        .check_rate(&caller.name)
        .map_err(|message| state.limits.refuse(Limit::Mutations, message))?;
    let body = body.map_err(|e| match e.status() {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(super::MAX_BODY_BYTES),
        _ => ApiError::BadBody(e.body_text()),
    })?;
    let request: AckRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AckRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadBody(format!("expected {{\"note\": \"...\"}}: {e}")))?
    };
    Ok(Json(
        service(&state)?
            .acknowledge(&id, &caller.name, request.note)
            .await?,
    ))
}
