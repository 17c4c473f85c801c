//! Avro values through the schema registry's wire format.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use fjord_schema_registry::serdes::{
    AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy,
};
use fjord_streams::{
    AvroSerde, Consumed, KafkaStreams, Produced, Serdes, StreamsBuilder, StreamsConfig,
};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::harness::{TestBroker, produce};

const CLICK: &str = r#"{"type":"record","name":"Click","fields":[{"name":"user","type":"string"},{"name":"page","type":"string"},{"name":"ms","type":"long"}]}"#;
const SLOW: &str = r#"{"type":"record","name":"SlowClick","fields":[{"name":"user","type":"string"},{"name":"seconds","type":"double"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_records_are_read_and_written_through_the_registry() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("avro-clicks", 1).await?;
    broker.create_topic("avro-slow", 1).await?;
    let mut config = fjord_schema_registry::RegistryConfig::new(broker.bootstrap());
    config.listen = "127.0.0.1:0".into();
    config.session_timeout = Duration::from_secs(6);
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let server = fjord_schema_registry::RegistryServer::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run());

    let builder = StreamsBuilder::new();
    builder
        .stream("avro-clicks", Consumed::with(Serdes::string(), AvroSerde::for_topic(&url, "avro-clicks", CLICK, false)?))
        .filter(|_, click| click["ms"].as_i64().unwrap_or(0) > 1000)
        .map_values(|_, click| {
            serde_json::json!({"user": click["user"], "seconds": click["ms"].as_i64().unwrap_or(0) as f64 / 1000.0})
        })
        .to("avro-slow", Produced::with(Serdes::string(), AvroSerde::for_topic(&url, "avro-slow", SLOW, false)?));
    let dir = tempfile::tempdir()?;
    let config = StreamsConfig::new("avro", &broker.bootstrap())
        .with_state_dir(dir.path())
        .with_commit_interval(Duration::from_millis(200));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    // Records written by the registry crate's own serializer, as any Confluent client would.
    let client = Arc::new(RegistryClient::new(url.clone()));
    let writer = AvroSerializer::new(client.clone(), CLICK, SubjectNameStrategy::TopicName, false)?;
    let mut records = Vec::new();
    for (user, ms) in [("ann", 300), ("bo", 2500), ("cy", 4000)] {
        let v = writer
            .serialize_json(
                "avro-clicks",
                &serde_json::json!({"user": user, "page": "/", "ms": ms}),
            )
            .await?;
        records.push((Some(Bytes::from(user)), Some(Bytes::from(v)), 0));
    }
    produce(&broker.producer()?, "avro-clicks", records).await?;

    let out = broker.read("avro-slow", 2, Duration::from_secs(20)).await?;
    assert_eq!(out.len(), 2);
    let reader = AvroDeserializer::new(client);
    let mut got = Vec::new();
    for r in &out {
        let bytes = r.value.clone().unwrap_or_default();
        assert_eq!(bytes[0], 0, "Confluent wire format: magic byte 0");
        got.push(reader.deserialize_json(&bytes).await?);
    }
    assert_eq!(
        got,
        vec![
            serde_json::json!({"user": "bo", "seconds": 2.5}),
            serde_json::json!({"user": "cy", "seconds": 4.0})
        ]
    );
    streams.close().await?;
    Ok(())
}
