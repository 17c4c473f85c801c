//! The Kafka Connect REST API (JSON on port 8083), with Kafka Connect's status codes and
//! `{"error_code": .., "message": ..}` error bodies.

mod connectors;
mod error;
mod forward;
mod plugins;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

pub use error::RestError;

use crate::runtime::Worker;

/// Shared by every handler.
pub(crate) type AppState = Arc<Worker>;

/// The version `GET /` reports (the Kafka release whose protocol Fjord speaks).
pub const KAFKA_VERSION: &str = "4.1.0";

/// The router over a worker.
pub fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/{name}",
            get(connectors::info).delete(connectors::delete),
        )
        .route(
            "/connectors/{name}/config",
            get(connectors::get_config)
                .put(connectors::put_config)
                .patch(connectors::patch_config),
        )
        .route("/connectors/{name}/status", get(connectors::status))
        .route("/connectors/{name}/restart", post(connectors::restart))
        .route("/connectors/{name}/pause", put(connectors::pause))
        .route("/connectors/{name}/resume", put(connectors::resume))
        .route("/connectors/{name}/stop", put(connectors::stop))
        .route(
            "/connectors/{name}/tasks",
            get(connectors::tasks).post(connectors::put_task_configs),
        )
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(connectors::task_status),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(connectors::restart_task),
        )
        .route("/connectors/{name}/topics", get(connectors::topics))
        .route(
            "/connectors/{name}/topics/reset",
            put(connectors::reset_topics),
        )
        .route(
            "/connectors/{name}/offsets",
            get(connectors::get_offsets)
                .patch(connectors::alter_offsets)
                .delete(connectors::reset_offsets),
        )
        .route("/connector-plugins", get(plugins::list))
        .route("/connector-plugins/{plugin}/config", get(plugins::config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(plugins::validate),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            forward::leader_writes,
        ))
        .layer(axum::middleware::from_fn(method_not_allowed))
        .with_state(worker)
}

async fn root(State(worker): State<AppState>) -> Response {
    let cluster = worker.cluster_id().await;
    axum::Json(json!({
        "version": KAFKA_VERSION,
        "commit": concat!("fjord-", env!("CARGO_PKG_VERSION")),
        "kafka_cluster_id": cluster,
    }))
    .into_response()
}

async fn health() -> Response {
    axum::Json(json!({
        "status": "healthy",
        "message": "Worker has completed startup and is ready to handle requests."
    }))
    .into_response()
}

async fn not_found() -> Response {
    RestError::new(404, "HTTP 404 Not Found").into_response()
}

/// axum answers a wrong method with an empty 405; Kafka Connect with its error body.
async fn method_not_allowed(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return RestError::new(405, "HTTP 405 Method Not Allowed").into_response();
    }
    response
}

/// Query parameters (repeated keys kept in order).
pub(crate) fn query_params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A boolean query parameter (`true`/`false`, default false).
pub(crate) fn flag(params: &[(String, String)], name: &str) -> Result<bool, RestError> {
    match params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v.is_empty() => Ok(false),
        Some(v) => Err(RestError::new(
            400,
            format!("Invalid value {v} for query parameter {name}: expected true or false"),
        )),
    }
}

/// A JSON body that must be an object of scalars (a connector config).
pub(crate) fn config_map(value: &serde_json::Value) -> Result<BTreeMap<String, String>, RestError> {
    let object = value
        .as_object()
        .ok_or_else(|| RestError::new(400, "The connector config must be a JSON object"))?;
    object
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
                Ok((k.clone(), v.to_string()))
            }
            _ => Err(RestError::new(
                400,
                format!("Connector config {k} must be a string, not {v}"),
            )),
        })
        .collect()
}

/// Parses a request body as JSON (400 with the parser's message otherwise).
pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, RestError> {
    serde_json::from_slice(body)
        .map_err(|e| RestError::new(400, format!("Invalid JSON in the request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        let p = query_params(Some("expand=status&expand=info&x=a%20b+c&flag"));
        assert_eq!(p[0], ("expand".into(), "status".into()));
        assert_eq!(p[2], ("x".into(), "a b c".into()));
        assert_eq!(p[3], ("flag".into(), "".into()));
        assert!(flag(&p, "nope").is_ok_and(|f| !f));
        assert!(flag(&[("f".into(), "maybe".into())], "f").is_err());
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
    }
}
