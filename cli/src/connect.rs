//! `fjord connect standalone WORKER.properties CONNECTOR.json...` and `fjord connect distributed
//! WORKER.properties`: Kafka-Connect-compatible workers (REST API on port 8083), and the worker
//! inside `fjord dev`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use fjord_connect::config::read_config_file;
use fjord_connect::{ConnectServer, DistributedConfig, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One worker; source offsets in offset.storage.file.filename; connectors from the files
    /// given and the REST API.
    Standalone(StandaloneArgs),
    /// One worker of a group (`group.id`) that shares connectors and tasks; configs, offsets
    /// and statuses in the connect-configs, connect-offsets and connect-status topics.
    Distributed(DistributedArgs),
}

#[derive(Debug, Args)]
struct StandaloneArgs {
    /// Worker config: Java properties (connect-standalone.properties) or a JSON object.
    worker: PathBuf,
    /// Connector configs: JSON (`{"name":..,"config":{..}}` or a flat object) or properties.
    connectors: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct DistributedArgs {
    /// Worker config: Java properties (connect-distributed.properties) or a JSON object.
    worker: PathBuf,
}

pub(crate) async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Standalone(a) => standalone(a).await,
        Mode::Distributed(a) => distributed(a).await,
    }
}

fn read(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    read_config_file(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let config =
        WorkerConfig::from_properties(&read(&args.worker)?).context("invalid worker config")?;
    let connectors = args
        .connectors
        .iter()
        .map(|p| read(p).map(|c| (p, c)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(shutdown.clone()));
    let server = ConnectServer::start(config, shutdown.clone()).await?;
    println!(
        "Fjord Connect (standalone) REST API on http://{}",
        server.local_addr()
    );
    for (path, connector) in connectors {
        if let Err(e) = server.add_connector(connector).await {
            shutdown.cancel();
            server.run().await?;
            anyhow::bail!("connector config {}: {e}", path.display());
        }
    }
    server.run().await?;
    Ok(())
}

async fn distributed(args: DistributedArgs) -> anyhow::Result<()> {
    let values = read(&args.worker)?;
    let config = WorkerConfig::from_properties(&values).context("invalid worker config")?;
    let cluster = DistributedConfig::from_properties(&values).context("invalid worker config")?;
    let group = cluster.group_id.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(shutdown.clone()));
    let server = ConnectServer::start_distributed(config, cluster, shutdown).await?;
    println!(
        "Fjord Connect (distributed, group {group}) REST API on http://{}",
        server.local_addr()
    );
    server.run().await?;
    Ok(())
}

/// The worker of `fjord dev`: against the embedded broker, offsets in the data directory.
pub(crate) async fn start_in_dev(
    bootstrap: String,
    addr: String,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<ConnectServer> {
    let values = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap),
        ("listeners".to_string(), format!("http://{addr}")),
        (
            "offset.storage.file.filename".to_string(),
            data_dir.join("connect.offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms".to_string(), "10000".to_string()),
    ]);
    let config = WorkerConfig::from_properties(&values)?;
    let server = ConnectServer::start(config, shutdown)
        .await
        .with_context(|| format!("cannot start Connect on {addr}"))?;
    println!(
        "Fjord dev: Connect REST API on http://{}",
        server.local_addr()
    );
    Ok(server)
}
