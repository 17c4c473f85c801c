//! Writes go to the leader: a middleware sends every write request on a non-leader instance
//! to the leader's URL over HTTP and relays the answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::AppState;
use crate::error::{ApiError, Error};
use crate::leader::known_leader;

/// Marks a forwarded request, which the receiver serves itself (no forwarding loops).
const FORWARDED: &str = "x-fjord-forwarded";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for forwarding.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    max_body: usize,
}

impl Forwarder {
    pub fn new(max_body: usize) -> Self {
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build_http(),
            max_body,
        }
    }

    async fn forward(&self, base: &str, request: Request) -> Result<Response, Error> {
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let http = |reason: String| Error::Http {
            url: url.clone(),
            reason,
        };
        let bytes = axum::body::to_bytes(body, self.max_body)
            .await
            .map_err(|e| http(format!("reading the request body: {e}")))?;
        let mut builder = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(&url);
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            builder = builder.header(header::CONTENT_TYPE, ct.clone());
        }
        let upstream = builder
            .header(FORWARDED, "1")
            .body(Full::new(bytes))
            .map_err(|e| http(e.to_string()))?;
        let response = tokio::time::timeout(FORWARD_TIMEOUT, self.client.request(upstream))
            .await
            .map_err(|_| http("timed out".into()))?
            .map_err(|e| http(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| http(format!("reading the response: {e}")))?
            .to_bytes();
        let mut out = Response::new(Body::from(bytes));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        Ok(out)
    }
}

/// Whether a request changes state (lookups and compatibility tests are POSTs that do not).
fn is_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT | Method::DELETE => true,
        Method::POST => path.starts_with("/subjects/") && path.ends_with("/versions"),
        _ => false,
    }
}

/// The middleware: writes on a non-leader go to the leader.
pub(super) async fn leader_only_writes(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !is_write(request.method(), request.uri().path())
        || request.headers().contains_key(FORWARDED)
    {
        return next.run(request).await;
    }
    let Some(leader) = known_leader(&app.leader, app.leader_wait).await else {
        return ApiError::unknown_leader().into_response();
    };
    if leader.is_self {
        return next.run(request).await;
    }
    let Some(url) = leader.leader_url else {
        return ApiError::unknown_leader().into_response();
    };
    match app.forwarder.forward(&url, request).await {
        Ok(response) => {
            if response.status() == StatusCode::OK {
                // Read our own copy of the write before answering, so that a client reading
                // from this instance next sees it.
                if let Err(e) = app.registry.store().sync().await {
                    tracing::warn!(error = %e, "catching up after a forwarded write");
                }
            }
            response
        }
        Err(e) => {
            let mut response = ApiError::forwarding_failed(format!(
                "Error while forwarding the request to the leader: {e}"
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_compatibility_tests_are_not_writes() {
        assert!(is_write(&Method::POST, "/subjects/a/versions"));
        assert!(!is_write(&Method::POST, "/subjects/a"));
        assert!(!is_write(
            &Method::POST,
            "/compatibility/subjects/a/versions"
        ));
        assert!(!is_write(
            &Method::POST,
            "/compatibility/subjects/a/versions/latest"
        ));
        assert!(is_write(&Method::DELETE, "/subjects/a"));
        assert!(is_write(&Method::PUT, "/config"));
        assert!(!is_write(&Method::GET, "/subjects/a/versions"));
    }
}
