//! REST handlers of deflection switches and their audit trail.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vigie_proto::DeflectionSwitch;

use super::{ApiError, AppState, Principal};
use crate::config::Role;
use crate::deflection::{FlipRequest, SwitchStore};

fn store(state: &AppState) -> Result<&SwitchStore, ApiError> {
    state.switches.as_deref().ok_or_else(|| {
        ApiError::Unavailable("deflection switches are not enabled on this instance".into())
    })
}

pub async fn list(
    _caller: Principal,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let switches = store(&state)?.list();
    let effects = crate::deflection::switch_effects(&state.engines, &switches);
    Ok(Json(json!({ "switches": switches, "effects": effects })))
}

pub async fn get(
    _caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeflectionSwitch>, ApiError> {
    store(&state)?
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("switch {id:?}")))
}

pub async fn flip(
    caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<FlipRequest>, JsonRejection>,
) -> Result<Json<DeflectionSwitch>, ApiError> {
    caller.require(Role::Supervisor)?;
    state.auth.check_rate(&caller.name)?;
    let Json(request) = body.map_err(|e| match e.status() {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(super::MAX_BODY_BYTES),
        _ => ApiError::BadBody(e.body_text()),
    })?;
    Ok(Json(
        store(&state)?.flip(&id, &request, &caller.name).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    switch: Option<String>,
    limit: Option<usize>,
}

pub async fn audit(
    caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Supervisor)?;
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let limit = params.limit.unwrap_or(100).min(1_000);
    Ok(Json(
        json!({ "records": store(&state)?.audit(params.switch.as_deref(), limit) }),
    ))
}
