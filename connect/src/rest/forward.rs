//! Distributed mode: writes go to the leader. A middleware answers 409 while a rebalance is
//! expected or under way (Kafka Connect's messages), serves writes on the leader, and forwards
//! them from followers to the leader's URL, relaying the answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{AppState, RestError};
use crate::distributed::{CONFLICTING, FORWARDED, STALE_CONFIG};

const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Whether the leader must serve this request: every change under `/connectors` except a
/// task restart (served by the worker running the task) and a topics reset (any worker).
pub(crate) fn is_leader_write(method: &Method, path: &str) -> bool {
    if !matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return false;
    }
    if !(path == "/connectors" || path.starts_with("/connectors/")) {
        return false;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let task_restart = parts.len() == 6 && parts[3] == "tasks" && parts[5] == "restart";
    let topics_reset = parts.len() == 5 && parts[3] == "topics" && parts[4] == "reset";
    !(task_restart || topics_reset)
}

/// The middleware (a no-op on a standalone worker).
pub(crate) async fn leader_writes(
    State(worker): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cluster) = worker.cluster.get().cloned() else {
        return next.run(request).await;
    };
    if !is_leader_write(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let view = cluster.view();
    if view.rebalancing {
        return RestError::new(409, STALE_CONFIG).into_response();
    }
    if view.is_leader {
        return next.run(request).await;
    }
    if request.headers().contains_key(FORWARDED) {
        // Sent here as the leader, but this worker no longer leads.
        return RestError::new(409, CONFLICTING).into_response();
    }
    let Some(leader) = view.leader_url else {
        return RestError::new(409, STALE_CONFIG).into_response();
    };
    match forward(&leader, request).await {
        Ok(response) => {
            if response.status().is_success() {
                cluster.catch_up(&worker).await;
            }
            response
        }
        Err(reason) => {
            tracing::warn!(%leader, %reason, "forwarding a request to the leader");
            RestError::new(409, format!("{CONFLICTING}: {reason}")).into_response()
        }
    }
}

async fn forward(base: &str, request: Request) -> Result<Response, String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| format!("reading the request body: {e}"))?;
    let mut builder = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(&url);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        builder = builder.header(header::CONTENT_TYPE, ct.clone());
    }
    let upstream = builder
        .header(FORWARDED, "1")
        .body(Full::new(bytes))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(FORWARD_TIMEOUT, client.request(upstream))
        .await
        .map_err(|_| format!("{url} timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| format!("reading the leader's answer: {e}"))?
        .to_bytes();
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_writes_are_connector_changes_except_task_restarts_and_topic_resets() {
        assert!(is_leader_write(&Method::POST, "/connectors"));
        assert!(is_leader_write(&Method::PUT, "/connectors/a/config"));
        assert!(is_leader_write(&Method::PATCH, "/connectors/a/offsets"));
        assert!(is_leader_write(&Method::DELETE, "/connectors/a"));
        assert!(is_leader_write(&Method::POST, "/connectors/a/restart"));
        assert!(is_leader_write(&Method::POST, "/connectors/a/tasks"));
        assert!(!is_leader_write(
            &Method::POST,
            "/connectors/a/tasks/0/restart"
        ));
        assert!(!is_leader_write(&Method::PUT, "/connectors/a/topics/reset"));
        assert!(!is_leader_write(&Method::GET, "/connectors/a"));
        assert!(!is_leader_write(
            &Method::PUT,
            "/connector-plugins/FileStreamSource/config/validate"
        ));
    }
}
