//! A real broker in-process on an ephemeral port, registries started against it, and a small
//! HTTP client for asserting status codes and bodies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_schema_registry::leader::LeaderWatch;
use fjord_schema_registry::{RegistryConfig, RegistryServer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A broker served on `127.0.0.1:0` over a temporary directory; stopped on drop.
pub(crate) struct TestBroker {
    _dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    _task: JoinHandle<fjord_broker::Result<()>>,
}

impl TestBroker {
    pub(crate) async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let values = BTreeMap::from([
            (
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            ),
            ("log.dirs".to_string(), dir.path().display().to_string()),
            // A lone registry need not wait for others to join its group.
            (
                "group.initial.rebalance.delay.ms".to_string(),
                "0".to_string(),
            ),
        ]);
        let broker = Broker::open(BrokerConfig::from_values(values)?)?;
        let server = Server::bind(broker).await?;
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Ok(TestBroker {
            _dir: dir,
            addr,
            shutdown,
            _task: task,
        })
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A registry in-process; stopped on drop (or by `stop`).
pub(crate) struct TestRegistry {
    pub(crate) addr: SocketAddr,
    pub(crate) leader: LeaderWatch,
    shutdown: CancellationToken,
    task: Option<JoinHandle<fjord_schema_registry::Result<()>>>,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// Small enough to test the limit without large allocations.
pub(crate) const MAX_BODY: usize = 256 * 1024;

impl TestRegistry {
    pub(crate) async fn start(broker: &TestBroker) -> Result<Self> {
        Self::start_with(broker, |_| {}).await
    }

    pub(crate) async fn start_with(
        broker: &TestBroker,
        tweak: impl FnOnce(&mut RegistryConfig),
    ) -> Result<Self> {
        let mut config = RegistryConfig::new(broker.addr.to_string());
        config.listen = "127.0.0.1:0".into();
        config.max_body_bytes = MAX_BODY;
        config.session_timeout = Duration::from_secs(6);
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let server = RegistryServer::start(config, shutdown.clone()).await?;
        let addr = server.local_addr();
        let leader = server.leader();
        let task = tokio::spawn(server.run());
        let registry = TestRegistry {
            addr,
            leader,
            shutdown,
            task: Some(task),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        Ok(registry)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until some instance is known to lead.
    pub(crate) async fn wait_for_leader(
        &self,
    ) -> Result<fjord_schema_registry::leader::LeaderState> {
        fjord_schema_registry::leader::known_leader(&self.leader, Duration::from_secs(30))
            .await
            .context("no registry leader within 30 s")
    }

    pub(crate) async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Sends a request; returns (status, JSON body or Null, content type).
    pub(crate) async fn call_raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Bytes, String)> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url()));
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = tokio::time::timeout(
            Duration::from_secs(60),
            self.http.request(request.body(Full::new(body))?),
        )
        .await
        .context("HTTP request timed out")??;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes, content_type))
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, bytes, _) = self
            .call_raw(
                method,
                path,
                Some("application/vnd.schemaregistry.v1+json"),
                body,
            )
            .await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{method} {path}: not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        Ok((status, value))
    }

    pub(crate) async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.call("GET", path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.call("POST", path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.call("PUT", path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.call("DELETE", path, None).await
    }

    /// Registers an Avro schema and returns its id (panics on another status).
    pub(crate) async fn register(&self, subject: &str, schema: &str) -> Result<i64> {
        let (status, body) = self
            .post(
                &format!("/subjects/{subject}/versions"),
                serde_json::json!({"schema": schema}),
            )
            .await?;
        anyhow::ensure!(status == 200, "register {subject}: {status} {body}");
        body["id"].as_i64().context("no id in the answer")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `{"type":"record","name":NAME,"fields":[FIELDS]}`.
pub(crate) fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
}
