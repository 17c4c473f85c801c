//! A broker in-process on an ephemeral port, a Connect worker on another, an HTTP client, and
//! helpers to wait for conditions with generous timeouts.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_client::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use fjord_connect::{ConnectServer, WorkerConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound on waiting for something that should happen (CI runs on 2 busy cores).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

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
            ("auto.create.topics.enable".to_string(), "true".to_string()),
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

    pub(crate) fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Produces raw values (and keys) to a topic.
    pub(crate) async fn produce(&self, topic: &str, values: &[(&str, &str)]) -> Result<()> {
        let producer = Producer::new(ProducerConfig::new(self.bootstrap()))?;
        for (k, v) in values {
            let mut r = ProducerRecord::new(topic, Bytes::from(v.to_string()));
            if !k.is_empty() {
                r = r.with_key(Bytes::from(k.to_string()));
            }
            producer.send(r).await?.await?;
        }
        producer.close().await;
        Ok(())
    }

    /// Reads `topic` from the beginning until `count` records arrived (or WAIT passed).
    pub(crate) async fn read(&self, topic: &str, count: usize) -> Result<Vec<ConsumerRecord>> {
        self.wait_end_offset(topic, i64::try_from(count)?).await?;
        let config = ConsumerConfig::new(self.bootstrap()).auto_offset_reset(OffsetReset::Earliest);
        let mut consumer = Consumer::new(config).await?;
        consumer.assign([(topic.to_string(), 0)])?;
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < count {
            if tokio::time::Instant::now() > deadline {
                bail!("only {} of {count} records arrived in {topic}", out.len());
            }
            out.extend(consumer.poll(Duration::from_millis(500)).await?);
        }
        Ok(out)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Connect worker in-process; stopped on drop or by `stop`.
pub(crate) struct TestConnect {
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<fjord_connect::Result<()>>>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl TestConnect {
    /// A worker with these extra worker properties (offset flush every 200 ms by default).
    pub(crate) async fn start(broker: &TestBroker, extra: &[(&str, &str)]) -> Result<Self> {
        let mut values = BTreeMap::from([
            ("bootstrap.servers".to_string(), broker.bootstrap()),
            ("listeners".to_string(), "http://127.0.0.1:0".to_string()),
            ("offset.flush.interval.ms".to_string(), "200".to_string()),
            (
                "consumer.session.timeout.ms".to_string(),
                "10000".to_string(),
            ),
            (
                "consumer.heartbeat.interval.ms".to_string(),
                "1000".to_string(),
            ),
        ]);
        for (k, v) in extra {
            values.insert(k.to_string(), v.to_string());
        }
        let config = WorkerConfig::from_properties(&values)?;
        let shutdown = CancellationToken::new();
        let server = ConnectServer::start(config, shutdown.clone()).await?;
        let addr = server.local_addr();
        let task = tokio::spawn(server.run());
        Ok(TestConnect {
            addr,
            shutdown,
            task: Some(task),
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// A distributed worker of `group` (fast heartbeats so that tests rebalance quickly; the
    /// internal topics get a prefix so that groups in one broker do not share them).
    /// Logs to the test's output when `RUST_LOG` is set.
    pub(crate) fn init_logs() {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    }

    pub(crate) async fn start_distributed(
        broker: &TestBroker,
        group: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self> {
        Self::init_logs();
        let mut values = BTreeMap::from([
            ("bootstrap.servers".to_string(), broker.bootstrap()),
            ("listeners".to_string(), "http://127.0.0.1:0".to_string()),
            ("group.id".to_string(), group.to_string()),
            (
                "config.storage.topic".to_string(),
                format!("{group}-configs"),
            ),
            (
                "offset.storage.topic".to_string(),
                format!("{group}-offsets"),
            ),
            (
                "status.storage.topic".to_string(),
                format!("{group}-status"),
            ),
            ("offset.storage.partitions".to_string(), "3".to_string()),
            ("status.storage.partitions".to_string(), "2".to_string()),
            ("offset.flush.interval.ms".to_string(), "200".to_string()),
            ("session.timeout.ms".to_string(), "6000".to_string()),
            ("heartbeat.interval.ms".to_string(), "300".to_string()),
            (
                "consumer.session.timeout.ms".to_string(),
                "6000".to_string(),
            ),
            (
                "consumer.heartbeat.interval.ms".to_string(),
                "500".to_string(),
            ),
        ]);
        for (k, v) in extra {
            values.insert(k.to_string(), v.to_string());
        }
        let config = WorkerConfig::from_properties(&values)?;
        let cluster = fjord_connect::DistributedConfig::from_properties(&values)?;
        let shutdown = CancellationToken::new();
        let server = ConnectServer::start_distributed(config, cluster, shutdown.clone()).await?;
        let addr = server.local_addr();
        let task = tokio::spawn(server.run());
        Ok(TestConnect {
            addr,
            shutdown,
            task: Some(task),
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Like `call`, retried while the answer is Kafka Connect's 409 for a rebalance.
    pub(crate) async fn call_settled(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, value) = self.call(method, path, body.clone()).await?;
            let rebalancing = value["message"].as_str().is_some_and(|m| {
                m.contains("stale configuration") || m.contains("conflicting operation")
            });
            if status != 409 || !rebalancing || tokio::time::Instant::now() > deadline {
                return Ok((status, value));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn stop(&mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .context("worker did not stop")???;
        }
        Ok(())
    }

    /// Sends a request with a raw body; returns (status, body bytes).
    pub(crate) async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = tokio::time::timeout(WAIT, self.http.request(request))
            .await
            .context("HTTP request timed out")??;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, bytes) = self.call_raw(method, path, body).await?;
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

    /// Creates a connector; fails unless 201.
    pub(crate) async fn create(&self, name: &str, config: Value) -> Result<Value> {
        let (status, body) = self
            .call(
                "POST",
                "/connectors",
                Some(serde_json::json!({"name": name, "config": config})),
            )
            .await?;
        anyhow::ensure!(status == 201, "create {name}: {status} {body}");
        Ok(body)
    }

    /// Waits until the connector's status satisfies `check`; returns the status.
    pub(crate) async fn wait_status(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let path = format!("/connectors/{name}/status");
        let mut last = Value::Null;
        let check = &check;
        let found = wait_for(
            what,
            || {
                let path = path.clone();
                async move {
                    let (status, body) = self.get(&path).await?;
                    let ok = status == 200 && check(&body);
                    Ok((ok, body))
                }
            },
            &mut last,
        )
        .await;
        found.with_context(|| format!("last status: {last}"))?;
        Ok(last)
    }

    /// Waits for the connector and all its (at least one) tasks to be in `state`.
    pub(crate) async fn wait_state(&self, name: &str, state: &str) -> Result<Value> {
        self.wait_status(name, state, |s| {
            s["connector"]["state"] == state
                && s["tasks"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == state))
        })
        .await
    }
}

impl Drop for TestConnect {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `probe` every 100 ms until it reports true or WAIT passes; keeps the last value.
pub(crate) async fn wait_for<'a, F, Fut, T>(what: &str, mut probe: F, last: &mut T) -> Result<()>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<(bool, T)>> + 'a,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (done, value) = probe().await?;
        *last = value;
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the file has at least `count` lines; returns them.
pub(crate) async fn wait_lines(path: &std::path::Path, count: usize) -> Result<Vec<String>> {
    let mut last = Vec::new();
    let found = wait_for(
        &format!("{count} lines in {}", path.display()),
        || async {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            Ok((lines.len() >= count, lines))
        },
        &mut last,
    )
    .await;
    found.with_context(|| {
        format!(
            "got {} lines: {:?}",
            last.len(),
            last.iter().take(5).collect::<Vec<_>>()
        )
    })?;
    Ok(last)
}

/// A topic or connector name unique to this test run.
pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestBroker {
    /// The end offset of partition 0 of `topic` (0 when it does not exist yet).
    pub(crate) async fn end_offset(&self, topic: &str) -> Result<i64> {
        let admin = fjord_client::Admin::connect(&self.bootstrap()).await?;
        let tp = (topic.to_string(), 0);
        match admin
            .list_offsets(std::slice::from_ref(&tp), fjord_client::OffsetSpec::Latest)
            .await
        {
            Ok(m) => Ok(m.get(&tp).copied().flatten().unwrap_or(0)),
            Err(_) => Ok(0),
        }
    }

    /// Waits until partition 0 of `topic` ends at `offset` or beyond; returns the end.
    pub(crate) async fn wait_end_offset(&self, topic: &str, offset: i64) -> Result<i64> {
        let mut last = 0;
        wait_for(
            &format!("{topic} to reach offset {offset}"),
            || async {
                let end = self.end_offset(topic).await?;
                Ok((end >= offset, end))
            },
            &mut last,
        )
        .await
        .with_context(|| format!("end offset stayed at {last}"))?;
        Ok(last)
    }
}

/// Writes `lines` (each followed by a newline), appending.
pub(crate) fn append_lines(
    path: &std::path::Path,
    lines: impl IntoIterator<Item = String>,
) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    f.sync_all()?;
    Ok(())
}

/// A schema registry in-process against the broker; stopped on drop.
pub(crate) struct TestRegistry {
    pub(crate) url: String,
    shutdown: CancellationToken,
}

impl TestRegistry {
    pub(crate) async fn start(broker: &TestBroker) -> Result<Self> {
        let mut config = fjord_schema_registry::RegistryConfig::new(broker.bootstrap());
        config.listen = "127.0.0.1:0".into();
        config.session_timeout = Duration::from_secs(6);
        let shutdown = CancellationToken::new();
        let server = fjord_schema_registry::RegistryServer::start(config, shutdown.clone()).await?;
        let url = format!("http://{}", server.local_addr());
        tokio::spawn(server.run());
        Ok(TestRegistry { url, shutdown })
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
