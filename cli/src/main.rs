//! `fjord`: the Fjord platform in one binary.

mod bench;
mod client_opts;
mod cluster;
mod connect;
mod consume;
mod group;
mod produce;
mod registry;
mod sql;
mod topic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fjord_broker::{Broker, BrokerConfig, Server};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "fjord",
    version,
    about = "Fjord: a Kafka-compatible streaming platform in one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform on this machine with embedded defaults (data in ./fjord-data).
    Dev(DevArgs),
    /// Run one broker from a config file (TOML or Kafka server.properties), FJORD_* variables
    /// and flags, in that order of precedence (flags win).
    Broker(BrokerArgs),
    /// Inspect the cluster and move leaders and replicas: describe, elect-leaders, reassign.
    Cluster(cluster::ClusterArgs),
    /// Manage consumer groups: list, describe (lag per partition), delete, reset offsets.
    Group(group::GroupArgs),
    /// Manage topics: create, list, describe, delete, alter-config.
    Topic(topic::TopicArgs),
    /// Write records to a topic, one per line from stdin or a file.
    Produce(produce::ProduceArgs),
    /// Print a topic's records (raw values or JSON lines).
    Consume(consume::ConsumeArgs),
    /// Measure produce or consume throughput and latency against a broker.
    Bench(bench::BenchArgs),
    /// Run the schema registry (Confluent REST API) against a broker.
    Registry(registry::RegistryArgs),
    /// Run a Kafka-Connect-compatible worker (REST API on port 8083) against a broker.
    Connect(connect::ConnectArgs),
    /// Query topics with SQL (a REPL without a statement); CREATE STREAM runs a continuous
    /// query that writes to a topic.
    Sql(sql::SqlArgs),
}

#[derive(Debug, Args)]
struct DevArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Address of the schema registry's REST API; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    registry_addr: String,
    /// Address of the Connect REST API; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8083")]
    connect_addr: String,
    /// Run a cluster of this many combined broker+controller nodes (KRaft-style quorum) in
    /// this process. Node i (from 1) listens on 9092+2(i-1) for clients and 9093+2(i-1) for
    /// the quorum (free ports when --kafka-addr has port 0) and keeps data in DATA_DIR/node-i.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Where topics and metadata are kept (Kafka's log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address Kafka clients connect to; port 0 picks a free port (Kafka's listeners).
    #[arg(long, value_name = "HOST:PORT")]
    kafka_addr: Option<String>,
    /// Set any broker config by its Kafka name, e.g. --override log.retention.ms=60000.
    #[arg(long = "override", value_name = "KEY=VALUE", value_parser = client_opts::key_value)]
    overrides: Vec<(String, String)>,
}

#[derive(Debug, Args)]
struct BrokerArgs {
    /// Config file: `.toml`, or Java properties (a Kafka server.properties works as it is).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fjord")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fjord: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => {
                let mut values = BTreeMap::from([
                    (
                        "listeners".to_string(),
                        "PLAINTEXT://127.0.0.1:9092".to_string(),
                    ),
                    ("log.dirs".to_string(), "./fjord-data".to_string()),
                    ("auto.create.topics.enable".to_string(), "true".to_string()),
                ]);
                values.extend(BrokerConfig::from_env(std::env::vars()));
                if args.nodes > 1 {
                    return dev_cluster(values, args).await;
                }
                serve(
                    "Fjord dev: broker",
                    values,
                    args.serve,
                    Some((args.registry_addr, args.connect_addr)),
                )
                .await
            }
            Command::Cluster(args) => cluster::run(args).await,
            Command::Group(args) => group::run(args).await,
            Command::Topic(args) => topic::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Registry(args) => registry::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Sql(args) => sql::run(args).await,
            Command::Broker(args) => {
                let mut values = match &args.config {
                    Some(path) => BrokerConfig::read_file(path)?,
                    None => BTreeMap::new(),
                };
                values.extend(BrokerConfig::from_env(std::env::vars()));
                serve("Fjord broker", values, args.serve, None).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fjord: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    banner: &str,
    mut values: BTreeMap<String, String>,
    args: ServeArgs,
    dev_addrs: Option<(String, String)>,
) -> anyhow::Result<()> {
    if let Some(dir) = args.data_dir {
        values.insert("log.dirs".into(), dir.display().to_string());
    }
    if let Some(addr) = args.kafka_addr {
        // Keep a CONTROLLER listener from the config file; replace the client one.
        let controller: Vec<String> = values
            .get("listeners")
            .map(|l| {
                l.split(',')
                    .map(str::trim)
                    .filter(|l| l.to_ascii_uppercase().starts_with("CONTROLLER:"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut listeners = vec![format!("PLAINTEXT://{addr}")];
        listeners.extend(controller);
        values.insert("listeners".into(), listeners.join(","));
    }
    values.extend(args.overrides);
    let config = BrokerConfig::from_values(values).context("invalid configuration")?;
    let data_dir = config.data_dir.clone();
    if config.cluster.is_some() {
        if dev_addrs.is_some() {
            anyhow::bail!(
                "fjord dev runs a cluster with --nodes; process.roles is for `fjord broker`"
            );
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let node = fjord_broker::Node::start(config, shutdown)
            .await
            .with_context(|| format!("cannot start the node (data in {})", data_dir.display()))?;
        if let Some(addr) = node.controller_addr {
            println!("{banner}: controller quorum served on {addr}");
        }
        if let Some(addr) = node.client_addr {
            println!(
                "{banner} listening on {addr} (Kafka protocol), data in {}",
                data_dir.display()
            );
        }
        node.wait().await?;
        return Ok(());
    }
    let broker = Broker::open(config)
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let server = Server::bind(broker).await?;
    println!(
        "{banner} listening on {} (Kafka protocol), data in {}",
        server.local_addr(),
        data_dir.display()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let Some((registry_addr, connect_addr)) = dev_addrs else {
        server.run(shutdown).await?;
        return Ok(());
    };
    // `fjord dev`: the schema registry runs beside the broker, keeping its state in it.
    let bootstrap = server.local_addr().to_string();
    let broker = tokio::spawn(server.run(shutdown.clone()));
    let mut config = fjord_schema_registry::RegistryConfig::new(bootstrap.clone());
    config.listen = registry_addr;
    let registry = match registry::start(config, shutdown.clone()).await {
        Ok(registry) => registry,
        Err(e) => {
            shutdown.cancel();
            let _ = broker.await;
            return Err(e);
        }
    };
    let registry = tokio::spawn(registry.run());
    // Connect beside them, with source offsets in the data directory.
    let connect =
        match connect::start_in_dev(bootstrap, connect_addr, &data_dir, shutdown.clone()).await {
            Ok(connect) => connect,
            Err(e) => {
                shutdown.cancel();
                let _ = tokio::join!(broker, registry);
                return Err(e);
            }
        };
    let connect = tokio::spawn(connect.run());
    let (broker, registry, connect) = tokio::join!(broker, registry, connect);
    broker.context("the broker task panicked")??;
    registry.context("the schema registry task panicked")??;
    connect.context("the Connect task panicked")??;
    Ok(())
}

/// `fjord dev --nodes N`: N combined broker+controller nodes in this process, with the schema
/// registry and Connect beside them.
async fn dev_cluster(base: BTreeMap<String, String>, args: DevArgs) -> anyhow::Result<()> {
    let n = usize::from(args.nodes);
    let data_root = args
        .serve
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./fjord-data"));
    let (host, first_port) = match &args.serve.kafka_addr {
        Some(addr) => {
            let (host, port) = addr
                .rsplit_once(':')
                .with_context(|| format!("--kafka-addr {addr} is not HOST:PORT"))?;
            let port: u16 = port
                .parse()
                .with_context(|| format!("--kafka-addr {addr}: bad port"))?;
            (host.to_string(), port)
        }
        None => ("127.0.0.1".to_string(), 9092),
    };
    let mut ports = Vec::new();
    for i in 0..n {
        if first_port == 0 {
            let kafka = std::net::TcpListener::bind((host.as_str(), 0))?
                .local_addr()?
                .port();
            let controller = std::net::TcpListener::bind((host.as_str(), 0))?
                .local_addr()?
                .port();
            ports.push((kafka, controller));
        } else {
            let offset = u16::try_from(2 * i).unwrap_or(0);
            ports.push((first_port + offset, first_port + offset + 1));
        }
    }
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, c))| format!("{}@{host}:{c}", i + 1))
        .collect();
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for (i, (kafka, controller)) in ports.iter().enumerate() {
        let mut values = base.clone();
        let dir = data_root.join(format!("node-{}", i + 1));
        values.insert("node.id".into(), (i + 1).to_string());
        values.insert("process.roles".into(), "broker,controller".into());
        values.insert(
            "listeners".into(),
            format!("PLAINTEXT://{host}:{kafka},CONTROLLER://{host}:{controller}"),
        );
        values.insert("controller.quorum.voters".into(), voters.join(","));
        values.insert("log.dirs".into(), dir.display().to_string());
        values
            .entry("default.replication.factor".into())
            .or_insert_with(|| n.min(3).to_string());
        values.extend(args.serve.overrides.iter().cloned());
        let config = BrokerConfig::from_values(values).context("invalid configuration")?;
        let node = fjord_broker::Node::start(config, shutdown.clone())
            .await
            .with_context(|| format!("cannot start node {} (data in {})", i + 1, dir.display()))?;
        if let Some(addr) = node.client_addr {
            println!(
                "Fjord dev: node {} listening on {addr} (Kafka protocol), quorum on {host}:{controller}, data in {}",
                i + 1,
                dir.display()
            );
            bootstrap.push(addr.to_string());
        }
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_ready(std::time::Duration::from_secs(60)).await?;
    }
    let bootstrap = bootstrap.join(",");
    println!("Fjord dev: cluster of {n} nodes; bootstrap servers {bootstrap}");
    let first = bootstrap.split(',').next().unwrap_or_default().to_string();
    let mut config = fjord_schema_registry::RegistryConfig::new(first.clone());
    config.listen = args.registry_addr;
    let registry = registry::start(config, shutdown.clone()).await;
    let registry = match registry {
        Ok(r) => tokio::spawn(r.run()),
        Err(e) => {
            shutdown.cancel();
            for node in nodes {
                let _ = node.wait().await;
            }
            return Err(e);
        }
    };
    let connect =
        connect::start_in_dev(first, args.connect_addr, &data_root, shutdown.clone()).await;
    let connect = match connect {
        Ok(c) => tokio::spawn(c.run()),
        Err(e) => {
            shutdown.cancel();
            for node in nodes {
                let _ = node.wait().await;
            }
            let _ = registry.await;
            return Err(e);
        }
    };
    let mut first_error = None;
    for node in nodes {
        if let Err(e) = node.wait().await {
            first_error.get_or_insert(anyhow::Error::from(e));
        }
    }
    registry
        .await
        .context("the schema registry task panicked")??;
    connect.await.context("the Connect task panicked")??;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub(crate) async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
