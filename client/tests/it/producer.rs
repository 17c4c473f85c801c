//! The producer against a real broker: codecs round trip, murmur2 placement, acks, buffer
//! back-pressure, and unknown topics.

use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use fjord_client::{
    Acks, Compression, Error, Producer, ProducerConfig, ProducerRecord, partition_for_key,
};
use tokio::time::Instant;

use crate::harness::{TestBroker, create_topic, fetch_all};

fn config(broker: &TestBroker) -> ProducerConfig {
    ProducerConfig::new(broker.bootstrap())
        .with_linger(Duration::from_millis(5))
        .with_delivery_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn records_of_every_codec_are_fetched_back_exactly() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let topic = format!("codec-{name}");
        create_topic(&mut conn, &topic, 1).await?;
        let producer = Producer::new(config(&broker).with_compression(codec))?;
        let mut deliveries = Vec::new();
        for i in 0..20i64 {
            let mut record = ProducerRecord::new(&topic, format!("value-{i}"))
                .with_header("n", i.to_string())
                .with_header("codec", name)
                .with_timestamp(1_000 + i);
            if i % 2 == 0 {
                record = record.with_key(format!("key-{i}"));
            }
            deliveries.push(producer.send(record).await?);
        }
        for (i, delivery) in deliveries.into_iter().enumerate() {
            let metadata = delivery.await?;
            assert_eq!(metadata.partition, 0);
            assert_eq!(metadata.offset, i as i64);
            assert_eq!(metadata.timestamp, 1_000 + i as i64);
        }
        producer.close().await;
        let records = fetch_all(&broker.bootstrap(), &topic, 0).await?;
        ensure!(records.len() == 20, "{name}: {} records", records.len());
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
            let key = (i % 2 == 0).then(|| Bytes::from(format!("key-{i}")));
            assert_eq!(r.key, key);
            assert_eq!(r.timestamp, 1_000 + i as i64);
            let headers: Vec<(String, Option<Bytes>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert_eq!(
                headers,
                vec![
                    ("n".to_string(), Some(Bytes::from(i.to_string()))),
                    ("codec".to_string(), Some(Bytes::from(name))),
                ]
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn keyed_records_land_on_the_murmur2_partition() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "keyed", 5).await?;
    let producer = Producer::new(config(&broker))?;
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut deliveries = Vec::new();
    for key in &keys {
        deliveries.push(
            producer
                .send(ProducerRecord::new("keyed", key.clone()).with_key(key.clone()))
                .await?,
        );
    }
    for (key, delivery) in keys.iter().zip(deliveries) {
        let metadata = delivery.await?;
        assert_eq!(
            metadata.partition,
            partition_for_key(key.as_bytes(), 5),
            "{key}"
        );
    }
    producer.close().await;
    for partition in 0..5 {
        for r in fetch_all(&broker.bootstrap(), "keyed", partition).await? {
            let key = r.key.expect("keyed");
            assert_eq!(partition_for_key(&key, 5), partition);
            assert_eq!(r.value, Some(key));
        }
    }
    Ok(())
}

#[tokio::test]
async fn acks_0_1_and_all_deliver() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "acks", 1).await?;
    for acks in [Acks::None, Acks::Leader, Acks::All] {
        let producer = Producer::new(config(&broker).with_acks(acks))?;
        let mut deliveries = Vec::new();
        for i in 0..5 {
            deliveries.push(
                producer
                    .send(ProducerRecord::new("acks", format!("{acks:?}-{i}")))
                    .await?,
            );
        }
        for delivery in deliveries {
            let metadata = delivery.await?;
            if acks == Acks::None {
                assert_eq!(metadata.offset, -1);
            } else {
                assert!(metadata.offset >= 0);
            }
        }
        producer.close().await;
    }
    // acks=0 is fire and forget: wait for the broker to have all 15.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = fetch_all(&broker.bootstrap(), "acks", 0).await?;
        if records.len() == 15 {
            let values: Vec<_> = records.iter().filter_map(|r| r.value.clone()).collect();
            assert!(values.contains(&Bytes::from("None-0")));
            assert!(values.contains(&Bytes::from("All-4")));
            break;
        }
        ensure!(Instant::now() < deadline, "only {} records", records.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn tiny_buffer_memory_applies_back_pressure_without_deadlock() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "pressure", 2).await?;
    let producer = Producer::new(
        config(&broker)
            .with_buffer_memory(2_000)
            .with_batch_size(500)
            .with_linger(Duration::from_millis(20)),
    )?;
    let value = Bytes::from(vec![b'x'; 300]);
    let mut deliveries = Vec::new();
    for i in 0..200 {
        let record = ProducerRecord::new("pressure", value.clone()).with_key(format!("k{i}"));
        deliveries
            .push(tokio::time::timeout(Duration::from_secs(10), producer.send(record)).await??);
    }
    let mut total = 0;
    for delivery in deliveries {
        delivery.await?;
        total += 1;
    }
    assert_eq!(total, 200);
    // A record larger than the whole buffer is refused, not waited for.
    let huge = ProducerRecord::new("pressure", vec![0u8; 5_000]);
    assert!(matches!(
        producer.send(huge).await,
        Err(Error::RecordTooLarge {
            key: "buffer.memory",
            ..
        })
    ));
    producer.close().await;
    let fetched = fetch_all(&broker.bootstrap(), "pressure", 0).await?.len()
        + fetch_all(&broker.bootstrap(), "pressure", 1).await?.len();
    assert_eq!(fetched, 200);
    Ok(())
}

#[tokio::test]
async fn unknown_topic_without_auto_create_fails_within_delivery_timeout() -> Result<()> {
    let broker = TestBroker::start_with(&[("auto.create.topics.enable", "false")]).await?;
    let producer = Producer::new(
        config(&broker)
            .with_delivery_timeout(Duration::from_millis(1_000))
            .with_retry_backoff(Duration::from_millis(50)),
    )?;
    let started = Instant::now();
    let result = producer.send(ProducerRecord::new("missing", "v")).await;
    let elapsed = started.elapsed();
    match result {
        Err(Error::TopicUnavailable { topic, code, .. }) => {
            assert_eq!(topic, "missing");
            assert_eq!(
                code,
                Some(fjord_protocol::ErrorCode::UnknownTopicOrPartition)
            );
        }
        other => panic!("expected TopicUnavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn records_without_key_stick_to_one_partition_per_batch() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "sticky", 4).await?;
    let producer = Producer::new(config(&broker).with_linger(Duration::from_millis(200)))?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("sticky", format!("v{i}")))
                .await?,
        );
    }
    let mut partitions = Vec::new();
    for d in deliveries {
        partitions.push(d.await?.partition);
    }
    partitions.dedup();
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    producer.close().await;
    Ok(())
}
