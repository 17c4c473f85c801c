//! Produce: offset assignment, acks, validation errors, topic ids (v13), LogAppendTime,
//! compressed batches stored as sent.

use anyhow::{Context, Result};
use bytes::Bytes;
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::{BatchHeader, testing::batch, validate};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, ProduceRequest, ProduceResponse};
use kafka_protocol::records::Compression;
use uuid::Uuid;

use crate::harness::{
    LIST_OFFSETS_V, TestBroker, create_topic, decode, encoded_batch, fetch, fetch_all, list_offset,
    now_ms, produce, produce_ok, produce_request, split_batches, topic,
};

/// The log end offset, by ListOffsets LATEST.
async fn log_end(client: &mut crate::harness::Client, name: &str, partition: i32) -> Result<i64> {
    Ok(list_offset(client, LIST_OFFSETS_V, name, partition, -1)
        .await?
        .offset)
}

/// The stored batch equals the sent one but for the base offset and leader epoch the broker
/// writes (neither is covered by the CRC).
pub(crate) fn assert_stored_as_sent(stored: &[u8], sent: &[u8], base_offset: i64) {
    assert_eq!(stored.len(), sent.len(), "stored batch length");
    assert_eq!(
        stored[..8],
        base_offset.to_be_bytes(),
        "base offset written into the header"
    );
    assert_eq!(stored[8..12], sent[8..12], "batch length");
    assert_eq!(
        stored[16..],
        sent[16..],
        "magic, CRC, attributes and records as sent"
    );
}

#[tokio::test]
async fn produce_assigns_consecutive_offsets_per_partition_across_requests() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "offsets", 2, &[]).await?;
    assert_eq!(
        produce_ok(&mut client, "offsets", 0, batch(0, 3, 1_000, b"a")).await?,
        0
    );
    assert_eq!(
        produce_ok(&mut client, "offsets", 0, batch(0, 2, 1_000, b"b")).await?,
        3
    );
    assert_eq!(
        produce_ok(&mut client, "offsets", 1, batch(0, 4, 1_000, b"c")).await?,
        0
    );
    // Producers send base offset 0; a non-zero base offset is overwritten too.
    assert_eq!(
        produce_ok(&mut client, "offsets", 0, batch(77, 1, 1_000, b"d")).await?,
        5
    );
    assert_eq!(
        produce_ok(&mut client, "offsets", 1, batch(0, 1, 1_000, b"e")).await?,
        4
    );
    // A second connection sees the same sequence.
    let mut other = broker.client().await?;
    assert_eq!(
        produce_ok(&mut other, "offsets", 0, batch(0, 1, 1_000, b"f")).await?,
        6
    );
    let offsets: Vec<i64> = fetch_all(&mut client, "offsets", 0, 0)
        .await?
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, (0..7).collect::<Vec<_>>());
    assert_eq!(log_end(&mut client, "offsets", 1).await?, 5);
    Ok(())
}

#[tokio::test]
async fn produce_to_two_partitions_in_one_request_answers_each() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "pair", 2, &[]).await?;
    produce_ok(&mut client, "pair", 1, batch(0, 2, 1_000, b"x")).await?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("pair"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(0, 3, 1_000, b"p0")))),
                    PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(Bytes::from(batch(0, 3, 1_000, b"p1")))),
                ]),
        ]);
    let response = client.call(9, &request).await?;
    let partitions = &response
        .responses
        .first()
        .context("a topic")?
        .partition_responses;
    assert_eq!(partitions.len(), 2);
    let base = |i: i32| {
        partitions
            .iter()
            .find(|p| p.index == i)
            .map(|p| (p.error_code, p.base_offset))
    };
    assert_eq!(base(0), Some((0, 0)));
    assert_eq!(base(1), Some((0, 2)));
    Ok(())
}

#[tokio::test]
async fn produce_v3_and_v13_by_topic_id_both_append() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let id = create_topic(&mut client, "versions", 1, &[]).await?;
    let v3 = client
        .call(
            3,
            &produce_request("versions", 0, 1, Bytes::from(batch(0, 2, 1_000, b"v3"))),
        )
        .await?;
    let p = &v3.responses.first().context("a topic")?.partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert_eq!(v3.responses[0].name.0.as_str(), "versions");
    let by_id = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_topic_id(id)
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(0, 3, 1_000, b"v13")))),
                ]),
        ]);
    let v13: ProduceResponse = client.call(13, &by_id).await?;
    let topic_response = v13.responses.first().context("a topic")?;
    assert_eq!(topic_response.topic_id, id);
    let p = &topic_response.partition_responses[0];
    assert_eq!(p.error_code.err(), None, "{:?}", p.error_message);
    assert_eq!(p.base_offset, 2);
    assert_eq!(log_end(&mut client, "versions", 0).await?, 5);
    Ok(())
}

#[tokio::test]
async fn produce_v13_to_an_unknown_topic_id_is_unknown_topic_id() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_topic_id(Uuid::new_v4())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(0, 1, 1_000, b"x")))),
                ]),
        ]);
    let response = client.call(13, &request).await?;
    let p = &response
        .responses
        .first()
        .context("a topic")?
        .partition_responses[0];
    assert_eq!(p.error_code.err(), Some(ErrorCode::UnknownTopicId));
    Ok(())
}

#[tokio::test]
async fn produce_with_acks_zero_gets_no_response_but_lands() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "fire", 1, &[]).await?;
    for _ in 0..3 {
        client
            .send(
                9,
                &produce_request("fire", 0, 0, Bytes::from(batch(0, 2, 1_000, b"x"))),
            )
            .await?;
    }
    // The next request on the connection gets the next response: nothing was sent for acks=0.
    let correlation_id = client.send(3, &ApiVersionsRequest::default()).await?;
    let answer = client
        .receive::<ApiVersionsRequest>(3, correlation_id)
        .await?;
    assert_eq!(answer.error_code.err(), None);
    assert_eq!(log_end(&mut client, "fire", 0).await?, 6);
    assert_eq!(fetch_all(&mut client, "fire", 0, 0).await?.len(), 6);
    Ok(())
}

#[tokio::test]
async fn produce_with_acks_all_is_acknowledged() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "all", 1, &[]).await?;
    let response = client
        .call(
            9,
            &produce_request("all", 0, -1, Bytes::from(batch(0, 2, 1_000, b"x"))),
        )
        .await?;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    Ok(())
}

#[tokio::test]
async fn acks_all_below_min_insync_replicas_is_not_enough_replicas_and_appends_nothing()
-> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "minisr", 1, &[("min.insync.replicas", "2")]).await?;
    let response = client
        .call(
            9,
            &produce_request("minisr", 0, -1, Bytes::from(batch(0, 2, 1_000, b"x"))),
        )
        .await?;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::NotEnoughReplicas.code());
    let message = p.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("min.isr requirement of 2"), "{message}");
    assert_eq!(log_end(&mut client, "minisr", 0).await?, 0);
    // acks=1 does not wait for the ISR, as in Kafka.
    assert_eq!(
        produce_ok(&mut client, "minisr", 0, batch(0, 2, 1_000, b"y")).await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn produce_with_acks_two_is_invalid_required_acks_and_appends_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "acks", 1, &[]).await?;
    for acks in [2, -2] {
        let response = client
            .call(
                9,
                &produce_request("acks", 0, acks, Bytes::from(batch(0, 2, 1_000, b"x"))),
            )
            .await?;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code.err(),
            Some(ErrorCode::InvalidRequiredAcks),
            "acks={acks}"
        );
    }
    assert_eq!(log_end(&mut client, "acks", 0).await?, 0);
    Ok(())
}

#[tokio::test]
async fn produce_with_a_bad_crc_is_corrupt_message_and_appends_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "crc", 1, &[]).await?;
    let mut bad = batch(0, 3, 1_000, b"payload");
    let last = bad.len() - 2;
    bad[last] ^= 0x55;
    for version in [3, 9] {
        let response = client
            .call(
                version,
                &produce_request("crc", 0, 1, Bytes::from(bad.clone())),
            )
            .await?;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code.err(),
            Some(ErrorCode::CorruptMessage),
            "v{version}"
        );
        assert_eq!(p.error_code, 2);
    }
    assert_eq!(log_end(&mut client, "crc", 0).await?, 0);
    assert!(
        fetch(&mut client, "crc", 0, 0, 1 << 20)
            .await?
            .records
            .unwrap_or_default()
            .is_empty()
    );
    // A good batch afterwards gets offset 0.
    assert_eq!(
        produce_ok(&mut client, "crc", 0, batch(0, 1, 1_000, b"ok")).await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn produce_of_a_truncated_or_non_v2_batch_is_rejected_and_appends_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "shape", 1, &[]).await?;
    let good = batch(0, 3, 1_000, b"payload");
    let truncated = good[..good.len() - 5].to_vec();
    let mut magic1 = good.clone();
    magic1[16] = 1;
    for (what, records) in [
        ("truncated", truncated),
        ("magic 1", magic1),
        ("garbage", vec![7u8; 80]),
    ] {
        let response = client
            .call(9, &produce_request("shape", 0, 1, Bytes::from(records)))
            .await?;
        let p = &response.responses[0].partition_responses[0];
        assert!(p.error_code != 0, "{what} was accepted");
        assert_eq!(p.base_offset, -1, "{what}");
    }
    assert_eq!(log_end(&mut client, "shape", 0).await?, 0);
    Ok(())
}

#[tokio::test]
async fn produce_of_a_batch_over_max_message_bytes_is_message_too_large() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "small", 1, &[("max.message.bytes", "1000")]).await?;
    let fits = batch(0, 1, 1_000, &[1u8; 500]);
    assert!(fits.len() <= 1000);
    let too_big = batch(0, 1, 1_000, &[1u8; 1_500]);
    let response = produce(&mut client, "small", 0, too_big).await?;
    assert_eq!(response.error_code.err(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(response.error_code, 10);
    assert_eq!(log_end(&mut client, "small", 0).await?, 0);
    assert_eq!(produce_ok(&mut client, "small", 0, fits).await?, 0);
    Ok(())
}

#[tokio::test]
async fn broker_message_max_bytes_is_the_default_limit_of_topics() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("message.max.bytes", "600")]).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "limited", 1, &[]).await?;
    let response = produce(&mut client, "limited", 0, batch(0, 1, 1_000, &[1u8; 1_000])).await?;
    assert_eq!(response.error_code.err(), Some(ErrorCode::MessageTooLarge));
    Ok(())
}

#[tokio::test]
async fn produce_to_an_unknown_topic_or_partition_is_rejected_without_creating_it() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "known", 2, &[]).await?;
    for version in [3, 9, 12] {
        let response = client
            .call(
                version,
                &produce_request("unknown", 0, 1, Bytes::from(batch(0, 1, 1_000, b"x"))),
            )
            .await?;
        assert_eq!(
            response.responses[0].partition_responses[0]
                .error_code
                .err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}"
        );
        let response = client
            .call(
                version,
                &produce_request("known", 2, 1, Bytes::from(batch(0, 1, 1_000, b"x"))),
            )
            .await?;
        assert_eq!(
            response.responses[0].partition_responses[0]
                .error_code
                .err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}, partition 2"
        );
    }
    assert!(!broker.partition_dir("unknown", 0).exists());
    Ok(())
}

#[tokio::test]
async fn produce_to_a_log_append_time_topic_stamps_the_broker_time() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await?;
    create_topic(&mut client, "created", 1, &[]).await?;
    let before = now_ms();
    let response = produce(&mut client, "stamped", 0, batch(0, 3, 1_000, b"x")).await?;
    let after = now_ms();
    assert_eq!(response.error_code.err(), None);
    let stamped = response.log_append_time_ms;
    assert!(
        (before..=after).contains(&stamped),
        "log_append_time_ms {stamped} not in [{before}, {after}]"
    );
    let stored = fetch(&mut client, "stamped", 0, 0, 1 << 20)
        .await?
        .records
        .context("records")?;
    let header = validate(&stored).map_err(|e| anyhow::anyhow!("stored batch invalid: {e}"))?;
    assert!(header.is_log_append_time(), "timestamp type bit set");
    assert_eq!(header.max_timestamp(), stamped);
    // CreateTime topics answer -1 and keep the producer's timestamps.
    let response = produce(&mut client, "created", 0, batch(0, 3, 1_000, b"x")).await?;
    assert_eq!(response.log_append_time_ms, -1);
    let stored = fetch(&mut client, "created", 0, 0, 1 << 20)
        .await?
        .records
        .context("records")?;
    let header = BatchHeader::parse(&stored).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(!header.is_log_append_time());
    assert_eq!(header.max_timestamp(), 1_002);
    Ok(())
}

#[tokio::test]
async fn compressed_batches_are_stored_and_served_as_sent() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "codecs", 1, &[]).await?;
    let mut next = 0;
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let sent = encoded_batch(20, 5_000, compression);
        let base = produce_ok(&mut client, "codecs", 0, sent.clone()).await?;
        assert_eq!(base, next, "{compression:?}");
        let stored = fetch(&mut client, "codecs", 0, base, 1)
            .await?
            .records
            .context("records")?;
        assert_stored_as_sent(&stored, &sent, base);
        let records = decode(stored)?;
        assert_eq!(records.len(), 20, "{compression:?}");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, base + i as i64);
            assert_eq!(
                record.value.as_deref(),
                Some(format!("value-{i}").as_bytes())
            );
        }
        next += 20;
    }
    Ok(())
}

#[tokio::test]
async fn a_topic_compression_type_recompresses_batches_on_append() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "gzipped", 1, &[("compression.type", "gzip")]).await?;
    produce_ok(
        &mut client,
        "gzipped",
        0,
        encoded_batch(10, 5_000, Compression::None),
    )
    .await?;
    produce_ok(
        &mut client,
        "gzipped",
        0,
        encoded_batch(10, 6_000, Compression::Lz4),
    )
    .await?;
    let data = fetch(&mut client, "gzipped", 0, 0, 1 << 20).await?;
    let stored = data.records.context("records")?;
    let batches = split_batches(&stored)?;
    assert_eq!(batches.len(), 2);
    for one in &batches {
        let header = validate(one).map_err(|e| anyhow::anyhow!("stored batch invalid: {e}"))?;
        assert_eq!(header.compression(), 1, "stored with gzip");
    }
    let records = decode(stored)?;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    assert_eq!(records[13].value.as_deref(), Some(&b"value-3"[..]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_get_distinct_consecutive_offsets() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "busy", 1, &[]).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for producer in 0..8u8 {
        let mut client = broker.client().await?;
        tasks.spawn(async move {
            let mut bases = Vec::new();
            for _ in 0..25 {
                bases.push(
                    produce_ok(&mut client, "busy", 0, batch(0, 2, 1_000, &[producer; 20])).await?,
                );
            }
            anyhow::Ok(bases)
        });
    }
    let mut bases = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        bases.extend(joined??);
    }
    bases.sort_unstable();
    assert_eq!(bases, (0..200).map(|i| 2 * i).collect::<Vec<i64>>());
    let records = fetch_all(&mut client, "busy", 0, 0).await?;
    assert_eq!(records.len(), 400);
    for pair in records.chunks(2) {
        assert_eq!(
            pair[0].value, pair[1].value,
            "a batch's records stay together"
        );
    }
    Ok(())
}
