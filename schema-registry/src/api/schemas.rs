//! `/schemas` endpoints.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{AppState, Params, flag, json, page, raw};
use crate::error::ApiError;
use crate::store::state::schema_json;

fn parse_id(text: &str) -> Result<i32, ApiError> {
    text.parse::<i32>()
        .map_err(|_| ApiError::new(404, 40403, format!("Schema {text} not found")))
}

/// `GET /schemas/types`.
pub(super) async fn types() -> Response {
    json(StatusCode::OK, &["JSON", "AVRO"])
}

/// `GET /schemas/ids/{id}`.
pub(super) async fn by_id(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let state = app.registry.store().state();
    match state.schema_by_id(id) {
        Some(stored) => raw(StatusCode::OK, stored.by_id_body.clone()),
        None => ApiError::schema_id_not_found(id).into_response(),
    }
}

/// `GET /schemas/ids/{id}/schema`: the schema text itself.
pub(super) async fn raw_by_id(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let state = app.registry.store().state();
    match state.schema_by_id(id) {
        Some(stored) => raw(StatusCode::OK, Bytes::from(stored.text.clone())),
        None => ApiError::schema_id_not_found(id).into_response(),
    }
}

/// `GET /schemas/ids/{id}/subjects`.
pub(super) async fn subjects_of_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let state = app.registry.store().state();
    let mut subjects: Vec<String> = state
        .versions_of_id(id, flag(&params, "deleted"))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    if subjects.is_empty() {
        return ApiError::schema_id_not_found(id).into_response();
    }
    json(StatusCode::OK, &page(subjects, &params))
}

/// `GET /schemas/ids/{id}/versions`.
pub(super) async fn versions_of_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let state = app.registry.store().state();
    let versions: Vec<Value> = state
        .versions_of_id(id, flag(&params, "deleted"))
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    if versions.is_empty() {
        return ApiError::schema_id_not_found(id).into_response();
    }
    json(StatusCode::OK, &page(versions, &params))
}

/// `GET /schemas?subjectPrefix=&deleted=&latestOnly=&offset=&limit=`.
pub(super) async fn list(State(app): State<AppState>, Query(params): Query<Params>) -> Response {
    let deleted = flag(&params, "deleted");
    let latest_only = flag(&params, "latestOnly");
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .unwrap_or("");
    let state = app.registry.store().state();
    let mut out = Vec::new();
    for subject in state.subjects(deleted, false) {
        if !subject.starts_with(prefix) {
            continue;
        }
        let mut versions: Vec<(i32, crate::store::state::Version)> = state
            .versions(&subject)
            .into_iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .collect();
        if latest_only {
            versions = versions.into_iter().last().into_iter().collect();
        }
        for (version, entry) in versions {
            let Some(stored) = state.stored(entry.id) else {
                continue;
            };
            let mut object = Map::new();
            object.insert("subject".into(), json!(subject));
            object.insert("version".into(), json!(version));
            object.insert("id".into(), json!(entry.id));
            out.push(schema_json(object, stored));
        }
    }
    json(StatusCode::OK, &page(out, &params))
}
