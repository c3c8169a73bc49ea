//! Owns the API error type: every failure maps to a status and a stable JSON body
//! `{"status": 400, "code": "bad_window", "message": "..."}`; 5xx never leak internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;
use vigie_proto::ErrorBody;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadWindow(#[from] crate::engine::WindowError),
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    BadBody(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Switch(#[from] crate::deflection::SwitchError),
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The `Host` of the request is not one this server answers to (`auth.allowed_hosts`).
    #[error("{0}")]
    MisdirectedHost(String),
    /// A limit of `[server]` refused the request (see [`super::limits`]).
    #[error("{message}")]
    Limited {
        limit: super::limits::Limit,
        message: String,
    },
    #[error("internal error")]
    Internal(String),
}

impl From<crate::publisher::QueryError> for ApiError {
    fn from(e: crate::publisher::QueryError) -> Self {
        match e {
            crate::publisher::QueryError::Window(e) => ApiError::BadWindow(e),
            e => ApiError::BadQuery(e.to_string()),
        }
    }
}

impl ApiError {
    /// The stable code of the body (`bad_window`…), also that of websocket error frames.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadWindow(_) => (StatusCode::BAD_REQUEST, "bad_window"),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Switch(e) => {
                use crate::deflection::SwitchError as E;
                match e {
                    E::BadId(_) => (StatusCode::BAD_REQUEST, "bad_switch_id"),
                    E::MissingReason => (StatusCode::BAD_REQUEST, "missing_reason"),
                    E::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_body"),
                    E::VersionConflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
                    E::Conflicting { .. } => (StatusCode::CONFLICT, "conflicting_switch"),
                    E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                }
            }
            ApiError::Alert(e) => {
                use crate::alert::AlertError as E;
                match e {
                    E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                    E::AlreadyResolved(_) => (StatusCode::CONFLICT, "already_resolved"),
                    E::BadNote(_) => (StatusCode::BAD_REQUEST, "bad_body"),
                    E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    E::State { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                }
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::MisdirectedHost(_) => (StatusCode::MISDIRECTED_REQUEST, "host_not_allowed"),
            ApiError::Limited { limit, .. } => {
                let status = match limit {
                    super::limits::Limit::ConcurrentSnapshots => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::TOO_MANY_REQUESTS,
                };
                (status, limit.code())
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            // The detail goes to the log, never to the client.
            tracing::error!(%detail, "internal error");
        }
        if let ApiError::Switch(crate::deflection::SwitchError::Unavailable(detail)) = &self {
            tracing::error!(%detail, "switch store unavailable");
            let body = ErrorBody {
                status: status.as_u16(),
                code: code.into(),
                message: "the switch store is unavailable; retry shortly".into(),
            };
            return (status, Json(body)).into_response();
        }
        let body = ErrorBody {
            status: status.as_u16(),
            code: code.into(),
            message: self.to_string(),
        };
        if let ApiError::Limited { .. } = &self {
            // A limit passes: the client may come back.
            let retry = [(axum::http::header::RETRY_AFTER, "1")];
            return (status, retry, Json(body)).into_response();
        }
        (status, Json(body)).into_response()
    }
}
