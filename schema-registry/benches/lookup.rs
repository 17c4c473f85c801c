//! Lookup throughput and latency of the registry from a loopback load client.
//!
//! Starts a broker and a registry in this process (on their own runtime), registers schemas,
//! then drives `GET /schemas/ids/{id}` and `POST /subjects/{subject}` (lookup) with keep-alive
//! connections from a second runtime, each for a fixed time, and prints requests/s and
//! latency percentiles.
//!
//! `cargo bench -p fjord-schema-registry --bench lookup -- [SECONDS] [CONNECTIONS]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_schema_registry::{RegistryConfig, RegistryServer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

const SCHEMAS: usize = 100;

fn schema(i: usize) -> String {
    format!(
        r#"{{"type":"record","name":"Bench{i}","namespace":"bench","fields":[{{"name":"id","type":"long"}},{{"name":"name","type":"string"}},{{"name":"tags","type":{{"type":"array","items":"string"}},"default":[]}}]}}"#
    )
}

struct Target {
    url: String,
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

/// Broker + registry on `server_rt`.
fn start(server_rt: &tokio::runtime::Runtime) -> Result<Target> {
    server_rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let values = BTreeMap::from([
            (
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            ),
            ("log.dirs".to_string(), dir.path().display().to_string()),
            (
                "group.initial.rebalance.delay.ms".to_string(),
                "0".to_string(),
            ),
        ]);
        let broker = Server::bind(Broker::open(BrokerConfig::from_values(values)?)?).await?;
        let bootstrap = broker.local_addr().to_string();
        let shutdown = CancellationToken::new();
        tokio::spawn(broker.run(shutdown.clone()));
        let mut config = RegistryConfig::new(bootstrap);
        config.listen = "127.0.0.1:0".into();
        let registry = RegistryServer::start(config, shutdown.clone()).await?;
        let url = format!("http://{}", registry.local_addr());
        tokio::spawn(registry.run());
        Ok(Target {
            url,
            _dir: dir,
            shutdown,
        })
    })
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn call(http: &Http, method: &str, url: &str, body: Bytes) -> Result<(u16, Bytes)> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(Full::new(body))?;
    let response = http.request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

struct Report {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn print(&mut self, name: &str) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{name:<34} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   ({} requests in {:.1} s)",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
            self.requests,
            self.elapsed.as_secs_f64(),
        );
    }
}

/// `connections` tasks issue requests back to back for `duration`.
async fn drive(
    http: &Http,
    connections: usize,
    duration: Duration,
    request: Arc<dyn Fn(usize) -> (&'static str, String, Bytes) + Send + Sync>,
) -> Result<Report> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let http = http.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c;
            while Instant::now() < deadline {
                let (method, url, body) = request(n);
                let sent = Instant::now();
                let (status, answer) = call(&http, method, &url, body).await?;
                latencies.push(sent.elapsed());
                ensure!(
                    status == 200,
                    "{method} {url}: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
                n += connections;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Report {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let target = start(&server_rt)?;
    let base = target.url.clone();
    client_rt.block_on(async move {
        let http: Http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build_http();
        let mut ids = Vec::new();
        for i in 0..SCHEMAS {
            let body = serde_json::json!({"schema": schema(i)}).to_string();
            let (status, answer) = call(
                &http,
                "POST",
                &format!("{base}/subjects/bench-{i}-value/versions"),
                body.into(),
            )
            .await?;
            ensure!(status == 200, "register: {status}");
            let id: serde_json::Value = serde_json::from_slice(&answer)?;
            ids.push(id["id"].as_i64().context("no id")?);
        }
        let duration = Duration::from_secs(seconds);
        println!(
            "{SCHEMAS} schemas, {connections} keep-alive connections, {seconds} s per scenario"
        );
        let by_id = {
            let base = base.clone();
            let ids = ids.clone();
            Arc::new(move |n: usize| {
                (
                    "GET",
                    format!("{base}/schemas/ids/{}", ids[n % ids.len()]),
                    Bytes::new(),
                )
            })
        };
        // Warm-up, then measure.
        drive(&http, connections, Duration::from_secs(1), by_id.clone()).await?;
        drive(&http, connections, duration, by_id)
            .await?
            .print("GET /schemas/ids/{id}");
        let bodies: Vec<Bytes> = (0..SCHEMAS)
            .map(|i| Bytes::from(serde_json::json!({"schema": schema(i)}).to_string()))
            .collect();
        let lookup = {
            let base = base.clone();
            Arc::new(move |n: usize| {
                let i = n % SCHEMAS;
                (
                    "POST",
                    format!("{base}/subjects/bench-{i}-value"),
                    bodies[i].clone(),
                )
            })
        };
        drive(&http, connections, Duration::from_secs(1), lookup.clone()).await?;
        drive(&http, connections, duration, lookup)
            .await?
            .print("POST /subjects/{subject} (lookup)");
        Ok::<_, anyhow::Error>(())
    })?;
    target.shutdown.cancel();
    Ok(())
}
