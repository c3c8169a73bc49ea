//! Owns `GET /api/v1/agents`: the agent list (state, time in state, queues, contacts
//! handled), filtered by queue, site and state, paged and capped by `server.max_agent_rows`.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use vigie_proto::{AgentList, AgentState, ErrorBody};

use super::{ApiError, AppState, Principal};
use crate::engine::{AgentQuery, WindowSpec};

/// Query of the agent list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AgentParams {
    /// Window over which contacts handled and AHT are counted (default `15m`); the
    /// states are those at its end.
    window: Option<String>,
    /// Agents serving this queue.
    queue: Option<String>,
    site: Option<String>,
    /// `available`, `on_contact`, `after_contact_work`, `away` or `logged_out`
    /// (default: every state but `logged_out`).
    state: Option<String>,
    /// First row of the page (default 0).
    offset: Option<u64>,
    /// Rows of the page (default and ceiling `server.max_agent_rows`).
    limit: Option<u64>,
}

impl AgentParams {
    fn query(self, max_rows: usize) -> Result<(WindowSpec, AgentQuery), ApiError> {
        let window: WindowSpec =
            self.window.as_deref().unwrap_or("15m").parse().map_err(
                |e: crate::engine::WindowError| ApiError::BadQuery(format!("window: {e}")),
            )?;
        let state = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(AgentState::parse(s).ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "state: unknown agent state {s:?} (expected available, on_contact, after_contact_work, away or logged_out)"
                ))
            })?),
        };
        let limit = match self.limit {
            None => max_rows,
            Some(0) => return Err(ApiError::BadQuery("limit: at least 1".into())),
            Some(n) if n as usize > max_rows => {
                return Err(ApiError::BadQuery(format!(
                    "limit: {n} is more than {max_rows} (server.max_agent_rows)"
                )))
            }
            Some(n) => n as usize,
        };
        let offset = usize::try_from(self.offset.unwrap_or(0))
            .map_err(|_| ApiError::BadQuery("offset: too large".into()))?;
        let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok((
            window,
            AgentQuery {
                queue: nonempty(self.queue),
                site: nonempty(self.site),
                state,
                offset,
                limit,
            },
        ))
    }
}

/// The agent list: state and time in it, queues, site, contacts handled and AHT over the
/// window. Ordered by state (available, on contact, after-contact work, away, logged
/// out), longest in state first.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "kpis",
    params(AgentParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of the agent list", body = AgentList),
        (status = 400, description = "bad window, state, offset or limit", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 503, description = "busy: server.max_concurrent_snapshots are being computed", body = ErrorBody),
    )
)]
pub(super) async fn list(
    _caller: Principal,
    State(state): State<AppState>,
    params: Result<Query<AgentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AgentList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let (window, query) = params.query(state.publisher.caps().agent_rows)?;
    // Same bound as snapshots: each walks every agent's timeline.
    let permit = state.limits.snapshot_permit().await?;
    let engines = state.engines.clone();
    let list = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engines.agent_list(window, &query)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("agent list task: {e}")))??;
    Ok(Json(list))
}
