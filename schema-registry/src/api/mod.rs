//! The Confluent REST API over axum.
//!
//! Responses use `application/vnd.schemaregistry.v1+json`; request bodies are read as JSON
//! whatever their content type. Errors are Confluent's bodies
//! (`{"error_code": 40401, "message": "..."}`) with their HTTP statuses.

mod config;
mod forward;
mod schemas;
mod subjects;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::forward::Forwarder;
use crate::error::ApiError;
use crate::leader::LeaderWatch;
use crate::registry::Registry;

/// Confluent's response content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub leader: LeaderWatch,
    pub forwarder: Forwarder,
    /// How long a write waits for a leader to be elected before 50004.
    pub leader_wait: std::time::Duration,
}

/// The router with every endpoint; bodies over `max_body` bytes are refused with 413.
pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas", get(schemas::list))
        .route("/schemas/types", get(schemas::types))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
        .route("/schemas/ids/{id}/subjects", get(schemas::subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(schemas::versions_of_id))
        .route("/subjects", get(subjects::list))
        .route(
            "/subjects/{subject}",
            post(subjects::lookup).delete(subjects::delete),
        )
        .route(
            "/subjects/{subject}/versions",
            get(subjects::versions).post(subjects::register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subjects::version).delete(subjects::delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subjects::raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(subjects::referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(config::compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(config::compatibility_version),
        )
        .route(
            "/config",
            get(config::get_global)
                .put(config::put_global)
                .delete(config::delete_global),
        )
        .route(
            "/config/{subject}",
            get(config::get_subject)
                .put(config::put_subject)
                .delete(config::delete_subject),
        )
        .route("/mode", get(config::get_mode).put(config::put_mode))
        .route(
            "/mode/{subject}",
            get(config::get_subject_mode)
                .put(config::put_subject_mode)
                .delete(config::delete_subject_mode),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::leader_only_writes,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn root() -> Response {
    json(StatusCode::OK, &serde_json::json!({}))
}

async fn not_found() -> Response {
    ApiError::new(404, 404, "HTTP 404 Not Found").into_response()
}

/// A JSON response with Confluent's content type.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw(status, Bytes::from(bytes)),
        Err(e) => ApiError::store(format!("encoding the response: {e}")).into_response(),
    }
}

/// Pre-encoded JSON bytes with Confluent's content type.
pub(crate) fn raw(status: StatusCode, bytes: Bytes) -> Response {
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json(status, &self)
    }
}

/// Query parameters.
pub(crate) type Params = HashMap<String, String>;

/// A boolean query parameter (`?deleted=true`); absent means false.
pub(crate) fn flag(params: &Params, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Confluent's `offset` and `limit` paging (`limit` -1 or absent: everything).
pub(crate) fn page<T>(items: Vec<T>, params: &Params) -> Vec<T> {
    let offset = params
        .get("offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

/// Parses a JSON request body; an over-limit body is 413, malformed JSON 400, JSON of the
/// wrong shape 422 (as Confluent's Jackson mapping does).
pub(crate) fn body<T: DeserializeOwned>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|e| {
        let status = e.status().as_u16();
        ApiError::new(status, i32::from(status), e.body_text())
    })?;
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::unprocessable(format!("Unrecognized request body: {e}"))
        }
        _ => ApiError::new(
            400,
            400,
            format!("Unexpected character in the request body: {e}"),
        ),
    })
}
