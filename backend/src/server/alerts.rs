//! REST handlers of alerts: the list (active and recent history), acknowledgement by
//! a supervisor, and the rules in force (read-only, secrets never shown).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vigie_proto::Alert;

use super::{ApiError, AppState, Principal};
use crate::alert::AlertService;
use crate::config::Role;

fn service(state: &AppState) -> Result<&AlertService, ApiError> {
    state
        .alerts
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("alerting is not enabled on this instance".into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Resolved alerts returned in `history` (default 50, at most 500).
    limit: Option<usize>,
}

/// `{"alerts": [firing, acknowledged, recently resolved], "history": [resolved, newest
/// first], "alerting_instance": id or null}`.
pub async fn list(
    _caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let alerts = service(&state)?;
    let limit = params.limit.unwrap_or(50).min(500);
    Ok(Json(json!({
        "alerts": *alerts.alerts(),
        "history": alerts.history(limit),
        // Scale-out: which instance evaluates and notifies (null: a single instance).
        "alerting_instance": alerts.alerting_instance(),
    })))
}

/// `{"rules": [...], "sinks": [{"name", "kind"}]}`: no URL, no key.
pub async fn rules(
    _caller: Principal,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let alerts = service(&state)?;
    Ok(Json(
        json!({ "rules": alerts.rules(), "sinks": alerts.sinks() }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(default)]
    note: Option<String>,
}

/// Body optional: `{"note": "..."}`. The caller's name is recorded as who acknowledged.
pub async fn acknowledge(
    caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Alert>, ApiError> {
    caller.require(Role::Supervisor)?;
    state.auth.check_rate(&caller.name)?;
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
