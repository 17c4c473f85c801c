//! The wire-format serdes against a registry, through the broker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fjord_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use fjord_schema_registry::schema::SchemaReference;
use fjord_schema_registry::serdes::{
    AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy,
};
use serde_json::json;

use crate::harness::{TestBroker, TestRegistry};

const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":"int","default":1}]}"#;

#[tokio::test]
async fn avro_records_round_trip_through_the_broker_and_evolve() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let client = Arc::new(RegistryClient::new(sr.url()));
    let serializer =
        AvroSerializer::new(client.clone(), V1, SubjectNameStrategy::TopicName, false)?;
    let bytes = serializer
        .serialize_json("orders", &json!({"id": 7, "item": "tea"}))
        .await?;
    assert_eq!(bytes[0], 0);
    assert_eq!(&bytes[1..5], &1i32.to_be_bytes());
    assert_eq!(sr.get("/subjects").await?.1, json!(["orders-value"]));

    let producer = Producer::new(ProducerConfig::new(broker.addr.to_string()))?;
    producer
        .send(ProducerRecord::new("orders", bytes.clone()).with_partition(0))
        .await?
        .await?;
    let mut consumer = Consumer::new(
        ConsumerConfig::new(broker.addr.to_string()).auto_offset_reset(OffsetReset::Earliest),
    )
    .await?;
    consumer.assign([("orders".to_string(), 0)])?;
    let mut read = Vec::new();
    for _ in 0..50 {
        read.extend(consumer.poll(Duration::from_millis(200)).await?);
        if !read.is_empty() {
            break;
        }
    }
    let value = read
        .first()
        .and_then(|r| r.value.clone())
        .context("nothing read back")?;

    // As written, and with the evolved reader schema (the new field takes its default).
    let plain = AvroDeserializer::new(client.clone());
    assert_eq!(
        plain.deserialize_json(&value).await?,
        json!({"id": 7, "item": "tea"})
    );
    let evolved = AvroDeserializer::with_reader_schema(client.clone(), V2)?;
    assert_eq!(
        evolved.deserialize_json(&value).await?,
        json!({"id": 7, "item": "tea", "qty": 1})
    );

    // Record strategies name subjects after the record.
    let by_record = AvroSerializer::new(
        client.clone(),
        V2,
        SubjectNameStrategy::TopicRecordName,
        false,
    )?;
    let bytes = by_record
        .serialize_json("orders", &json!({"id": 8, "item": "jam", "qty": 3}))
        .await?;
    assert_eq!(&bytes[1..5], &2i32.to_be_bytes());
    assert_eq!(
        sr.get("/subjects").await?.1,
        json!(["orders-shop.Order", "orders-value"])
    );
    let mut lookup_only =
        AvroSerializer::new(client.clone(), V1, SubjectNameStrategy::RecordName, true)?;
    lookup_only.auto_register = false;
    let err = lookup_only
        .serialize_json("orders", &json!({"id": 1, "item": "x"}))
        .await;
    assert!(err.is_err(), "lookup of an unregistered subject fails");
    Ok(())
}

#[tokio::test]
async fn the_deserializer_resolves_schema_references() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let address = r#"{"type":"record","name":"Address","namespace":"api","fields":[{"name":"city","type":"string"}]}"#;
    sr.register("address", address).await?;
    let person = r#"{"type":"record","name":"Person","namespace":"api","fields":[{"name":"name","type":"string"},{"name":"home","type":"api.Address"}]}"#;
    let (status, body) = sr
        .post(
            "/subjects/people-value/versions",
            json!({"schema": person, "references": [{"name": "api.Address", "subject": "address", "version": 1}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let id = i32::try_from(body["id"].as_i64().context("no id")?)?;
    // {"name": "Ada", "home": {"city": "London"}} in Avro binary: zigzag lengths, then bytes.
    let mut payload = vec![6];
    payload.extend(b"Ada");
    payload.push(12);
    payload.extend(b"London");
    let message = fjord_schema_registry::serdes::encode(id, &payload);
    let client = Arc::new(RegistryClient::new(sr.url()));
    let value = AvroDeserializer::new(client.clone())
        .deserialize_json(&message)
        .await?;
    assert_eq!(value, json!({"name": "Ada", "home": {"city": "London"}}));

    // The serializer with the same reference finds the same id and writes the same bytes.
    let serializer = AvroSerializer::with_references(
        client,
        person,
        vec![SchemaReference {
            name: "api.Address".into(),
            subject: "address".into(),
            version: 1,
        }],
        SubjectNameStrategy::TopicName,
        false,
    )
    .await?;
    let written = serializer
        .serialize_json(
            "people",
            &json!({"name": "Ada", "home": {"city": "London"}}),
        )
        .await?;
    assert_eq!(written, message);
    Ok(())
}
