//! `/config`, `/mode` and `/compatibility` endpoints.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::subjects::input;
use super::{AppState, Params, body, flag, json};
use crate::compat::CompatibilityLevel;
use crate::error::ApiError;
use crate::registry::VersionSpec;
use crate::store::records::Mode;

#[derive(Debug, Deserialize)]
struct ConfigBody {
    #[serde(default)]
    compatibility: Option<String>,
    /// Accepted as an alias, as some clients send what GET returns.
    #[serde(default, rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    #[serde(default)]
    mode: Option<String>,
}

fn respond<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn level(bytes: Result<Bytes, BytesRejection>) -> Result<CompatibilityLevel, ApiError> {
    let body: ConfigBody = body(bytes)?;
    body.compatibility
        .or(body.compatibility_level)
        .as_deref()
        .and_then(CompatibilityLevel::parse)
        .ok_or_else(ApiError::invalid_compatibility)
}

fn mode(bytes: Result<Bytes, BytesRejection>) -> Result<Mode, ApiError> {
    let body: ModeBody = body(bytes)?;
    body.mode
        .as_deref()
        .and_then(Mode::parse)
        .ok_or_else(ApiError::invalid_mode)
}

/// `GET /config`.
pub(super) async fn get_global(State(app): State<AppState>) -> Response {
    let level = app.registry.store().state().global_compatibility();
    json(
        StatusCode::OK,
        &json!({"compatibilityLevel": level.as_str()}),
    )
}

/// `PUT /config`.
pub(super) async fn put_global(
    State(app): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let level = match level(bytes) {
        Ok(level) => level,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .set_config(None, level)
            .await
            .map(|()| json!({"compatibility": level.as_str()})),
    )
}

/// `DELETE /config`: back to the default; answers the level that was in force.
pub(super) async fn delete_global(State(app): State<AppState>) -> Response {
    respond(
        app.registry
            .delete_config(None)
            .await
            .map(|level| json!({"compatibilityLevel": level.as_str()})),
    )
}

/// `GET /config/{subject}?defaultToGlobal=`.
pub(super) async fn get_subject(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let state = app.registry.store().state();
    let level = match state.subject_compatibility(&subject) {
        Some(level) => level,
        None if flag(&params, "defaultToGlobal") => state.global_compatibility(),
        None => return ApiError::compatibility_not_configured(&subject).into_response(),
    };
    json(
        StatusCode::OK,
        &json!({"compatibilityLevel": level.as_str()}),
    )
}

/// `PUT /config/{subject}`.
pub(super) async fn put_subject(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let level = match level(bytes) {
        Ok(level) => level,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .set_config(Some(&subject), level)
            .await
            .map(|()| json!({"compatibility": level.as_str()})),
    )
}

/// `DELETE /config/{subject}`.
pub(super) async fn delete_subject(
    State(app): State<AppState>,
    Path(subject): Path<String>,
) -> Response {
    respond(
        app.registry
            .delete_config(Some(&subject))
            .await
            .map(|level| json!({"compatibilityLevel": level.as_str()})),
    )
}

/// `GET /mode`.
pub(super) async fn get_mode(State(app): State<AppState>) -> Response {
    let mode = app.registry.store().state().global_mode();
    json(StatusCode::OK, &json!({"mode": mode.as_str()}))
}

/// `PUT /mode?force=`.
pub(super) async fn put_mode(
    State(app): State<AppState>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let mode = match mode(bytes) {
        Ok(mode) => mode,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .set_mode(None, mode, flag(&params, "force"))
            .await
            .map(|()| json!({"mode": mode.as_str()})),
    )
}

/// `GET /mode/{subject}?defaultToGlobal=`.
pub(super) async fn get_subject_mode(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let state = app.registry.store().state();
    let mode = match state.subject_mode(&subject) {
        Some(mode) => mode,
        None if flag(&params, "defaultToGlobal") => state.global_mode(),
        None => return ApiError::mode_not_configured(&subject).into_response(),
    };
    json(StatusCode::OK, &json!({"mode": mode.as_str()}))
}

/// `PUT /mode/{subject}?force=`.
pub(super) async fn put_subject_mode(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let mode = match mode(bytes) {
        Ok(mode) => mode,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .set_mode(Some(&subject), mode, flag(&params, "force"))
            .await
            .map(|()| json!({"mode": mode.as_str()})),
    )
}

/// `DELETE /mode/{subject}`.
pub(super) async fn delete_subject_mode(
    State(app): State<AppState>,
    Path(subject): Path<String>,
) -> Response {
    respond(
        app.registry
            .delete_mode(&subject)
            .await
            .map(|mode| json!({"mode": mode.as_str()})),
    )
}

fn compatibility_response(result: Result<Vec<String>, ApiError>, verbose: bool) -> Response {
    respond(result.map(|messages| {
        if verbose {
            json!({"is_compatible": messages.is_empty(), "messages": messages})
        } else {
            json!({"is_compatible": messages.is_empty()})
        }
    }))
}

/// `POST /compatibility/subjects/{subject}/versions?verbose=`: against the versions the
/// subject's level names (compatible when the subject has none).
pub(super) async fn compatibility_all(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result =
        input(bytes).and_then(|input| app.registry.test_compatibility(&subject, None, &input));
    compatibility_response(result, flag(&params, "verbose"))
}

/// `POST /compatibility/subjects/{subject}/versions/{version}?verbose=`.
pub(super) async fn compatibility_version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = VersionSpec::parse(&version).and_then(|spec| {
        let input = input(bytes)?;
        app.registry
            .test_compatibility(&subject, Some(spec), &input)
    });
    compatibility_response(result, flag(&params, "verbose"))
}
