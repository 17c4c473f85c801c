//! Kafka Connect's error body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::runtime::WorkerError;

/// An HTTP error with `{"error_code": status, "message": ..}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub status: u16,
    pub message: String,
}

impl RestError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        RestError {
            status,
            message: message.into(),
        }
    }
}

impl From<WorkerError> for RestError {
    fn from(e: WorkerError) -> Self {
        RestError::new(e.status(), e.to_string())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(json!({"error_code": self.status, "message": self.message})),
        )
            .into_response()
    }
}
