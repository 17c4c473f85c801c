//! `/subjects` endpoints.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, json};

use super::{AppState, Params, body, flag, json, page, raw};
use crate::error::ApiError;
use crate::registry::{SchemaInput, SubjectVersion, VersionSpec};
use crate::schema::{SchemaReference, SchemaType};
use crate::store::state::schema_json;

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SchemaBody {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
    #[serde(default)]
    id: Option<i32>,
    #[serde(default)]
    version: Option<i32>,
}

impl SchemaBody {
    pub(super) fn into_input(self) -> Result<SchemaInput, ApiError> {
        let schema = match self.schema {
            Some(s) if !s.trim().is_empty() => s,
            _ => return Err(ApiError::invalid_schema("Empty schema")),
        };
        let schema_type = match self.schema_type.as_deref() {
            None | Some("") => SchemaType::Avro,
            Some(t) => match SchemaType::parse(t) {
                Some(SchemaType::Protobuf) | None => {
                    return Err(ApiError::invalid_schema(&format!(
                        "Invalid schema type {t}"
                    )));
                }
                Some(t) => t,
            },
        };
        Ok(SchemaInput {
            schema,
            schema_type,
            references: self.references.unwrap_or_default(),
            id: self.id.filter(|id| *id >= 0),
            version: self.version.filter(|v| *v >= 1),
        })
    }
}

pub(super) fn input(bytes: Result<Bytes, BytesRejection>) -> Result<SchemaInput, ApiError> {
    body::<SchemaBody>(bytes)?.into_input()
}

fn version_json(v: &SubjectVersion) -> serde_json::Value {
    let mut object = Map::new();
    object.insert("subject".into(), json!(v.subject));
    object.insert("version".into(), json!(v.version));
    object.insert("id".into(), json!(v.schema.id));
    schema_json(object, &v.schema)
}

fn respond<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

/// `GET /subjects?subjectPrefix=&deleted=&deletedOnly=`.
pub(super) async fn list(State(app): State<AppState>, Query(params): Query<Params>) -> Response {
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .unwrap_or("");
    let state = app.registry.store().state();
    let subjects: Vec<String> = state
        .subjects(flag(&params, "deleted"), flag(&params, "deletedOnly"))
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    json(StatusCode::OK, &page(subjects, &params))
}

/// `POST /subjects/{subject}`: is this schema registered under the subject?
pub(super) async fn lookup(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let deleted = flag(&params, "deleted");
    // Lookups are the serializers' hot path: answers are cached per (subject, request body)
    // until the store changes.
    let offset = app.registry.store().applied();
    if !deleted
        && let Ok(body) = &bytes
        && let Some(answer) = app.registry.lookups().get(offset, &subject, body)
    {
        return raw(StatusCode::OK, answer);
    }
    let body = bytes.as_ref().ok().cloned();
    let result = input(bytes).and_then(|input| {
        app.registry
            .lookup(&subject, &input, deleted)
            .map(|v| version_json(&v))
    });
    match result {
        Ok(answer) => {
            let answer = Bytes::from(answer.to_string());
            if let Some(body) = body
                && !deleted
            {
                app.registry
                    .lookups()
                    .put(offset, &subject, body, answer.clone());
            }
            raw(StatusCode::OK, answer)
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /subjects/{subject}?permanent=`.
pub(super) async fn delete(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    respond(
        app.registry
            .delete_subject(&subject, flag(&params, "permanent"))
            .await,
    )
}

/// `GET /subjects/{subject}/versions?deleted=&deletedOnly=`.
pub(super) async fn versions(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let deleted = flag(&params, "deleted");
    let deleted_only = flag(&params, "deletedOnly");
    let state = app.registry.store().state();
    let versions: Vec<i32> = state
        .versions(&subject)
        .into_iter()
        .filter(|(_, v)| {
            if deleted_only {
                v.deleted
            } else {
                deleted || !v.deleted
            }
        })
        .map(|(n, _)| n)
        .collect();
    if versions.is_empty() {
        return ApiError::subject_not_found(&subject).into_response();
    }
    json(StatusCode::OK, &page(versions, &params))
}

/// `POST /subjects/{subject}/versions?normalize=`: registers, answers `{"id": N}`.
pub(super) async fn register(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let input = match input(bytes) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .register(&subject, input, flag(&params, "normalize"))
            .await
            .map(|id| json!({"id": id})),
    )
}

fn version_of(
    app: &AppState,
    subject: &str,
    version: &str,
    deleted: bool,
) -> Result<SubjectVersion, ApiError> {
    let spec = VersionSpec::parse(version)?;
    app.registry.version(subject, spec, deleted)
}

/// `GET /subjects/{subject}/versions/{version}?deleted=`.
pub(super) async fn version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    respond(
        version_of(&app, &subject, &version, flag(&params, "deleted")).map(|v| version_json(&v)),
    )
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the schema text itself.
pub(super) async fn raw_version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    match version_of(&app, &subject, &version, flag(&params, "deleted")) {
        Ok(v) => raw(StatusCode::OK, Bytes::from(v.schema.text.clone())),
        Err(e) => e.into_response(),
    }
}

/// `GET /subjects/{subject}/versions/{version}/referencedby`: ids of schemas referencing it.
pub(super) async fn referenced_by(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    respond(version_of(&app, &subject, &version, true).map(|v| {
        let state = app.registry.store().state();
        page(state.referenced_by(&v.subject, v.version), &params)
    }))
}

/// `DELETE /subjects/{subject}/versions/{version}?permanent=`.
pub(super) async fn delete_version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let spec = match VersionSpec::parse(&version) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    respond(
        app.registry
            .delete_version(&subject, spec, flag(&params, "permanent"))
            .await,
    )
}
