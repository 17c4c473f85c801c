//! AvroConverter through the Fjord schema registry: file → Avro topic → file.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestConnect, TestRegistry, append_lines, unique, wait_lines};

#[tokio::test]
async fn avro_records_round_trip_through_the_registry() -> Result<()> {
    let broker = TestBroker::start().await?;
    let registry = TestRegistry::start(&broker).await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let topic = unique("avro");
    append_lines(&input, ["alpha".to_string(), "beta".to_string()])?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    connect
        .create("src", json!({
            "connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic,
            "transforms": "hoist,tag",
            "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line",
            "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.tag.static.field": "origin",
            "transforms.tag.static.value": "file",
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": registry.url,
        }))
        .await?;
    connect
        .create("sink", json!({
            "connector.class": "FileStreamSink", "file": output.display().to_string(), "topics": topic,
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": registry.url,
        }))
        .await?;
    let lines = wait_lines(&output, 2).await?;
    assert_eq!(
        lines,
        [
            r#"{"line":"alpha","origin":"file"}"#,
            r#"{"line":"beta","origin":"file"}"#
        ]
    );
    // Confluent's wire format: magic byte 0 and a 4-byte schema id.
    let records = broker.read(&topic, 1).await?;
    let value = records[0].value.clone().unwrap_or_default();
    assert_eq!(value.first(), Some(&0u8));
    // The schema is registered under TopicNameStrategy.
    let client = fjord_schema_registry::serdes::RegistryClient::new(registry.url.clone());
    let latest = client.subject_version(&format!("{topic}-value"), 1).await?;
    let schema: serde_json::Value = serde_json::from_str(&latest.schema)?;
    assert_eq!(schema["type"], "record");
    assert_eq!(schema["fields"][0]["name"], "line");
    // Without a registry URL the config is rejected, naming the key.
    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "bad", "config": {
            "connector.class": "FileStreamSink", "file": "/tmp/x", "topics": topic,
            "value.converter": "io.confluent.connect.avro.AvroConverter"}})),
        )
        .await?;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("value.converter.schema.registry.url"),
        "{body}"
    );
    connect.stop().await?;
    Ok(())
}
