//! REST handlers of the autopilot: its rules (read-only) and applying one of its
//! proposals (supervisor), which flips the switch with the supervisor as author.

use axum::extract::{Path, State};
use axum::Json;
use vigie_proto::{AutopilotRules, DeflectionSwitch, ErrorBody};

use super::limits::Limit;
use super::{ApiError, AppState, Principal};
use crate::alert::AUTOPILOT_PREFIX;
use crate::config::Role;

/// The automatic deflection rules in force.
#[utoipa::path(
    get,
    path = "/api/v1/autopilot",
    tag = "switches",
    security(("bearer" = [])),
    responses((status = 200, body = AutopilotRules))
)]
pub(super) async fn rules(
    _caller: Principal,
    State(state): State<AppState>,
) -> Json<AutopilotRules> {
    Json(AutopilotRules {
        rules: state.autopilot.as_ref().clone(),
    })
}

/// Applies the open proposal of autopilot rule `rule` (supervisor): the switch it
/// proposes is turned on, with the caller as author and the proposal's expiry.
#[utoipa::path(
    post,
    path = "/api/v1/autopilot/{rule}/apply",
    tag = "switches",
    params(("rule" = String, Path, description = "autopilot rule name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the switch, on", body = DeflectionSwitch),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no open proposal of that rule", body = ErrorBody),
        (status = 409, description = "version_conflict or conflicting_switch", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(super) async fn apply(
    caller: Principal,
    State(state): State<AppState>,
    Path(rule): Path<String>,
) -> Result<Json<DeflectionSwitch>, ApiError> {
    caller.require(Role::Supervisor)?;
    state
        .auth
        .check_rate(&caller.name)
        .map_err(|message| state.limits.refuse(Limit::Mutations, message))?;
    let (Some(alerts), Some(store)) = (state.alerts.as_deref(), state.switches.as_deref()) else {
        return Err(ApiError::Unavailable(
            "the autopilot needs alerting and switches on this instance".into(),
        ));
    };
    let name = format!("{AUTOPILOT_PREFIX}{rule}");
    let not_found = || ApiError::NotFound(format!("open proposal of autopilot rule {rule:?}"));
    let alerts = alerts.alerts();
    let proposal = alerts
        .iter()
        .find(|a| a.rule == name && a.autopilot.is_some() && a.resolved_at.is_none())
        .ok_or_else(not_found)?;
    let switch_id = proposal
        .autopilot
        .as_ref()
        .map(|a| a.switch_id.clone())
        .ok_or_else(not_found)?;
    let current = store.get(&switch_id);
    let (id, request, prediction) =
        crate::autopilot::apply_request(proposal, current.as_ref()).ok_or_else(not_found)?;
    Ok(Json(
        store.flip(&id, &request, &caller.name, prediction).await?,
    ))
}
