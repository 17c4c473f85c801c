//! `fjord`: the Fjord platform in one binary.

mod bench;
mod client_opts;
mod connect;
mod consume;
mod group;
mod produce;
mod registry;
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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
                serve(
                    "Fjord dev: broker",
                    values,
                    args.serve,
                    Some((args.registry_addr, args.connect_addr)),
                )
                .await
            }
            Command::Group(args) => group::run(args).await,
            Command::Topic(args) => topic::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Registry(args) => registry::run(args).await,
            Command::Connect(args) => connect::run(args).await,
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
        values.insert("listeners".into(), format!("PLAINTEXT://{addr}"));
    }
    values.extend(args.overrides);
    let config = BrokerConfig::from_values(values).context("invalid configuration")?;
    let data_dir = config.data_dir.clone();
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
