//! `fjord registry`: the schema registry against a running broker (and the registry inside
//! `fjord dev`); `fjord registry encode|decode` convert between JSON and Confluent's Avro wire
//! format through a registry.

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use fjord_schema_registry::serdes::{
    AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy,
};
use fjord_schema_registry::{RegistryConfig, RegistryServer};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct RegistryArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Encode a JSON value as a wire-format Avro message (hex on stdout), registering the
    /// schema under the subject the strategy names.
    Encode(EncodeArgs),
    /// Decode a wire-format Avro message (hex) to JSON, fetching the writer schema by id.
    Decode(DecodeArgs),
}

/// Confluent's subject name strategies, by their class names.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(clippy::enum_variant_names)]
enum Strategy {
    TopicName,
    RecordName,
    TopicRecordName,
}

#[derive(Debug, Args)]
struct EncodeArgs {
    /// The registry's URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// The topic the message is for (names the subject).
    #[arg(long)]
    topic: String,
    /// The Avro schema (JSON text).
    #[arg(long)]
    schema: String,
    /// The value as JSON.
    #[arg(long)]
    value: String,
    /// Subject name strategy.
    #[arg(long, value_enum, default_value = "topic-name")]
    strategy: Strategy,
    /// Encode a record key (subject `<topic>-key`) rather than a value.
    #[arg(long)]
    key: bool,
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// The registry's URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// Resolve into this reader schema rather than reading as written.
    #[arg(long)]
    reader_schema: Option<String>,
    /// The message, hex-encoded.
    hex: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Kafka bootstrap address of the broker that keeps `_schemas` (kafkastore.bootstrap.servers).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Address the REST API listens on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    listen: String,
    /// URL other registry instances forward writes to (default http://<bound address>).
    #[arg(long, value_name = "URL")]
    advertised_url: Option<String>,
    /// The store topic (kafkastore.topic).
    #[arg(long, default_value = "_schemas")]
    topic: String,
    /// The consumer group the instances elect their leader in (schema.registry.group.id).
    #[arg(long, default_value = "schema-registry")]
    group_id: String,
    /// Never become the leader (leader.eligibility=false): forward every write.
    #[arg(long)]
    not_leader_eligible: bool,
}

/// Starts a registry and prints its ready line.
pub(crate) async fn start(
    config: RegistryConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RegistryServer> {
    let bootstrap = config.bootstrap.clone();
    let server = RegistryServer::start(config, shutdown)
        .await
        .with_context(|| format!("cannot start the schema registry against {bootstrap}"))?;
    println!(
        "Fjord schema registry listening on {} (Confluent REST API)",
        server.local_addr()
    );
    Ok(server)
}

/// `fjord registry`.
pub(crate) async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    match args.action {
        Some(Action::Encode(args)) => encode(args).await,
        Some(Action::Decode(args)) => decode(args).await,
        None => serve(args.serve).await,
    }
}

async fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let client = Arc::new(RegistryClient::new(args.url));
    let strategy = match args.strategy {
        Strategy::TopicName => SubjectNameStrategy::TopicName,
        Strategy::RecordName => SubjectNameStrategy::RecordName,
        Strategy::TopicRecordName => SubjectNameStrategy::TopicRecordName,
    };
    let serializer = AvroSerializer::new(client, &args.schema, strategy, args.key)?;
    let value: serde_json::Value =
        serde_json::from_str(&args.value).context("--value is not JSON")?;
    let bytes = serializer.serialize_json(&args.topic, &value).await?;
    println!("{}", hex(&bytes));
    Ok(())
}

async fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let client = Arc::new(RegistryClient::new(args.url));
    let deserializer = match &args.reader_schema {
        Some(schema) => AvroDeserializer::with_reader_schema(client, schema)?,
        None => AvroDeserializer::new(client),
    };
    let bytes = unhex(args.hex.trim()).context("the message is not hex")?;
    let value = deserializer.deserialize_json(&bytes).await?;
    println!("{value}");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = RegistryConfig::new(args.bootstrap);
    config.listen = args.listen;
    config.advertised_url = args.advertised_url;
    config.topic = args.topic;
    config.group_id = args.group_id;
    config.leader_eligibility = !args.not_leader_eligible;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(shutdown.clone()));
    let server = start(config, shutdown).await?;
    server.run().await?;
    Ok(())
}
