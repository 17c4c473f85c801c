//! A minimal Confluent REST client with caches, for the serdes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Error, Result};
use crate::schema::{SchemaReference, SchemaType};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A schema fetched by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedSchema {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaResponse {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

#[derive(Debug, Deserialize)]
struct IdResponse {
    id: i32,
}

/// (subject, schema text, references) of a registered schema.
type IdKey = (String, String, Vec<SchemaReference>);

/// Talks to a schema registry; schemas by id and ids by (subject, schema) are cached for the
/// client's lifetime (they never change).
pub struct RegistryClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    by_id: Mutex<HashMap<i32, Arc<FetchedSchema>>>,
    ids: Mutex<HashMap<IdKey, i32>>,
    versions: Mutex<HashMap<(String, i32), Arc<FetchedSchema>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for the registry at `base_url` (`http://host:port`).
    pub fn new(base_url: impl Into<String>) -> Self {
        RegistryClient {
            base: base_url.into().trim_end_matches('/').to_string(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            by_id: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes> {
        let url = format!("{}{path}", self.base);
        let http = |reason: String| Error::Http {
            url: url.clone(),
            reason,
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", crate::api::CONTENT_TYPE)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(e.to_string()))?;
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| http("timed out".into()))?
            .map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let mut error: ApiError = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            ApiError::new(
                status.as_u16(),
                i32::from(status.as_u16()),
                String::from_utf8_lossy(&bytes),
            )
        });
        error.status = status.as_u16();
        Err(Error::Api(error))
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GET /schemas/ids/{id}`, cached.
    pub async fn schema_by_id(&self, id: i32) -> Result<Arc<FetchedSchema>> {
        if let Some(found) = Self::lock(&self.by_id).get(&id) {
            return Ok(found.clone());
        }
        let bytes = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        let response: SchemaResponse = serde_json::from_slice(&bytes).map_err(|e| Error::Http {
            url: format!("{}/schemas/ids/{id}", self.base),
            reason: format!("unexpected answer: {e}"),
        })?;
        let fetched = Arc::new(FetchedSchema {
            schema_type: response
                .schema_type
                .as_deref()
                .and_then(SchemaType::parse)
                .unwrap_or_default(),
            schema: response.schema,
            references: response.references,
        });
        Self::lock(&self.by_id).insert(id, fetched.clone());
        Ok(fetched)
    }

    /// `GET /subjects/{subject}/versions/{version}`, cached (a version never changes).
    pub async fn subject_version(&self, subject: &str, version: i32) -> Result<Arc<FetchedSchema>> {
        let key = (subject.to_string(), version);
        if let Some(found) = Self::lock(&self.versions).get(&key) {
            return Ok(found.clone());
        }
        let path = format!("/subjects/{}/versions/{version}", encode_path(subject));
        let bytes = self.call(Method::GET, &path, None).await?;
        let fetched = Arc::new(Self::fetched(&bytes, &path, &self.base)?);
        Self::lock(&self.versions).insert(key, fetched.clone());
        Ok(fetched)
    }

    /// The texts of `references`, transitively, dependencies first.
    pub async fn reference_texts(&self, references: &[SchemaReference]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Depth-first with an explicit stack: (reference, children done).
        let mut stack: Vec<(SchemaReference, bool)> = references
            .iter()
            .rev()
            .cloned()
            .map(|r| (r, false))
            .collect();
        while let Some((reference, expanded)) = stack.pop() {
            if seen.len() > 1_000 {
                return Err(Error::InvalidSchema {
                    id: -1,
                    reason: "more than 1000 references".into(),
                });
            }
            let key = (reference.subject.clone(), reference.version);
            if seen.contains(&key) {
                continue;
            }
            let fetched = self
                .subject_version(&reference.subject, reference.version)
                .await?;
            if expanded || fetched.references.is_empty() {
                seen.insert(key);
                out.push(fetched.schema.clone());
            } else {
                stack.push((reference, true));
                for nested in fetched.references.iter().rev() {
                    stack.push((nested.clone(), false));
                }
            }
        }
        Ok(out)
    }

    fn fetched(bytes: &[u8], path: &str, base: &str) -> Result<FetchedSchema> {
        let response: SchemaResponse = serde_json::from_slice(bytes).map_err(|e| Error::Http {
            url: format!("{base}{path}"),
            reason: format!("unexpected answer: {e}"),
        })?;
        Ok(FetchedSchema {
            schema_type: response
                .schema_type
                .as_deref()
                .and_then(SchemaType::parse)
                .unwrap_or_default(),
            schema: response.schema,
            references: response.references,
        })
    }

    /// `POST /subjects/{subject}/versions` (Avro), cached by (subject, schema).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<i32> {
        self.id_for(subject, schema, &[], true).await
    }

    /// `POST /subjects/{subject}/versions` with references, cached.
    pub async fn register_with_references(
        &self,
        subject: &str,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<i32> {
        self.id_for(subject, schema, references, true).await
    }

    /// `POST /subjects/{subject}` (lookup without registering), cached by (subject, schema).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<i32> {
        self.id_for(subject, schema, &[], false).await
    }

    /// `POST /subjects/{subject}` with references, cached.
    pub async fn lookup_with_references(
        &self,
        subject: &str,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<i32> {
        self.id_for(subject, schema, references, false).await
    }

    async fn id_for(
        &self,
        subject: &str,
        schema: &str,
        references: &[SchemaReference],
        register: bool,
    ) -> Result<i32> {
        let key = (subject.to_string(), schema.to_string(), references.to_vec());
        if let Some(id) = Self::lock(&self.ids).get(&key) {
            return Ok(*id);
        }
        let path = format!(
            "/subjects/{}{}",
            encode_path(subject),
            if register { "/versions" } else { "" }
        );
        let bytes = self
            .call(
                Method::POST,
                &path,
                Some(json!({"schema": schema, "references": references})),
            )
            .await?;
        let IdResponse { id } = serde_json::from_slice(&bytes).map_err(|e| Error::Http {
            url: format!("{}{path}", self.base),
            reason: format!("unexpected answer: {e}"),
        })?;
        Self::lock(&self.ids).insert(key, id);
        Ok(id)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }
}

/// Percent-encodes a path segment.
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(encode_path("a.b-c_d"), "a.b-c_d");
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }
}
