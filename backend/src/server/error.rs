//! Owns the API error type: every failure maps to a status and a stable JSON body
//! `{"status": 400, "code": "bad_window", "message": "..."}`; 5xx never leak internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadWindow(#[from] crate::engine::WindowError),
    #[error("{0}")]
    BadQuery(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    code: &'a str,
    message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadWindow(_) => (StatusCode::BAD_REQUEST, "bad_window"),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
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
        let body = ErrorBody {
            status: status.as_u16(),
            code,
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}
