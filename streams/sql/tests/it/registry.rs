//! Value fields from the schema registry: Avro values in Confluent's wire format.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use fjord_schema_registry::serdes::{AvroSerializer, RegistryClient, SubjectNameStrategy};
use fjord_schema_registry::{RegistryConfig, RegistryServer};
use fjord_sql::{SqlConfig, SqlContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::harness::{Rec, TestBroker, produce_recs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_are_decoded_with_the_registered_schema() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut config = RegistryConfig::new(broker.bootstrap());
    config.listen = "127.0.0.1:0".into();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let server = RegistryServer::start(config, shutdown).await?;
    let url = format!("http://{}", server.local_addr());
    let leader = server.leader();
    tokio::spawn(server.run());
    fjord_schema_registry::leader::known_leader(&leader, Duration::from_secs(30))
        .await
        .context("no registry leader")?;

    broker.create_topic("orders-avro", 1).await?;
    let client = Arc::new(RegistryClient::new(url.clone()));
    let schema = r#"{"type":"record","name":"Order","fields":[
        {"name":"item","type":"string"},{"name":"qty","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;
    let serializer = AvroSerializer::new(client, schema, SubjectNameStrategy::TopicName, false)?;
    let mut records = Vec::new();
    for (i, (item, qty)) in [("apple", 2), ("pear", 1), ("apple", 5)]
        .into_iter()
        .enumerate()
    {
        let bytes = serializer
            .serialize_json(
                "orders-avro",
                &json!({"item": item, "qty": qty, "note": null}),
            )
            .await?;
        records.push(Rec {
            partition: Some(0),
            key: None,
            value: Some(Bytes::from(bytes)),
            ts: 1_700_000_000_000 + i as i64,
            headers: Vec::new(),
        });
    }
    produce_recs(&broker.producer()?, "orders-avro", records).await?;

    let ctx = SqlContext::connect(SqlConfig::new(broker.bootstrap()).with_registry(url)).await?;
    let batches = ctx
        .sql("SELECT item, sum(qty) AS qty, count(note) AS notes FROM \"orders-avro\" GROUP BY item ORDER BY item")
        .await?;
    let text = fjord_sql::arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
    assert!(
        text.contains("| apple | 7   | 0     |") && text.contains("| pear  | 1   | 0     |"),
        "{text}"
    );
    Ok(())
}
