//! REST handlers of deflection switches and their audit trail.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use vigie_proto::{
    AuditPage, DeflectionSwitch, DimensionKey, ErrorBody, FlipRequest, SwitchList, SwitchPrediction,
};

use super::limits::Limit;
use super::{ApiError, AppState, Principal};
use crate::config::Role;
use crate::deflection::SwitchStore;
use crate::engine::{DimensionFilter, WindowSpec};

fn store(state: &AppState) -> Result<&SwitchStore, ApiError> {
    state.switches.as_deref().ok_or_else(|| {
        ApiError::Unavailable("deflection switches are not enabled on this instance".into())
    })
}

/// Every switch, with the measured effect of those that are on.
#[utoipa::path(
    get,
    path = "/api/v1/switches",
    tag = "switches",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SwitchList),
        (status = 503, description = "switches not enabled here", body = ErrorBody),
    )
)]
pub(super) async fn list(
    _caller: Principal,
    State(state): State<AppState>,
) -> Result<Json<SwitchList>, ApiError> {
    let switches = store(&state)?.list();
    let effects = crate::deflection::switch_effects(&state.engines, &switches);
    Ok(Json(SwitchList { switches, effects }))
}

/// One switch.
#[utoipa::path(
    get,
    path = "/api/v1/switches/{id}",
    tag = "switches",
    params(("id" = String, Path, description = "switch id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeflectionSwitch),
        (status = 404, body = ErrorBody),
    )
)]
pub(super) async fn get(
    _caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeflectionSwitch>, ApiError> {
    store(&state)?
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("switch {id:?}")))
}

/// Creates or flips a switch (supervisor): answered once the change is read back from
/// the switches topic as the winning version, with its audit record.
#[utoipa::path(
    put,
    path = "/api/v1/switches/{id}",
    tag = "switches",
    params(("id" = String, Path, description = "switch id: 1 to 64 of a-z 0-9 . _ -")),
    request_body = FlipRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the new state", body = DeflectionSwitch),
        (status = 400, description = "missing_reason, bad_switch_id, bad_body", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "version_conflict or conflicting_switch", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(super) async fn flip(
    caller: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<FlipRequest>, JsonRejection>,
) -> Result<Json<DeflectionSwitch>, ApiError> {
    caller.require(Role::Supervisor)?;
    state
        .auth
        .check_rate(&caller.name)
        .map_err(|message| state.limits.refuse(Limit::Mutations, message))?;
    let Json(request) = body.map_err(|e| match e.status() {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(super::MAX_BODY_BYTES),
        _ => ApiError::BadBody(e.body_text()),
    })?;
    let store = store(&state)?;
    let prediction = if request.on {
        predict(&state, &request).await
    } else {
        None
    };
    Ok(Json(
        store.flip(&id, &request, &caller.name, prediction).await?,
    ))
}

/// What the projection says of turning `request` on, over the last 15 minutes: kept with
/// the switch, to be compared with what is measured after it.
async fn predict(state: &AppState, request: &FlipRequest) -> Option<SwitchPrediction> {
    let scope = DimensionFilter::from_key(DimensionKey {
        channel: Some(request.channel.clone()),
        queue: request.queue.clone(),
        reason: request.reason.clone(),
        segment: request.segment.clone(),
        site: None,
    });
    let engines = state.engines.clone();
    let what_if = tokio::task::spawn_blocking(move || {
        engines.what_if(&scope, WindowSpec::Last(PREDICTION_WINDOW_MS))
    })
    .await
    .ok()?
    .ok()??;
    Some(what_if.into())
}

/// The window a flip's prediction is made over.
const PREDICTION_WINDOW_MS: i64 = 15 * 60_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditParams {
    /// Only this switch's records.
    switch: Option<String>,
    /// Newest records returned (default 100, at most 1000).
    limit: Option<usize>,
}

/// The audit trail (supervisor), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "switches",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 403, body = ErrorBody),
    )
)]
pub(super) async fn audit(
    caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Role::Supervisor)?;
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let limit = params.limit.unwrap_or(100).min(1_000);
    Ok(Json(AuditPage {
        records: store(&state)?.audit(params.switch.as_deref(), limit),
    }))
}
