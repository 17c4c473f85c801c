//! Fetch: exact bytes, whole batches within the byte limits, long polling, errors, and
//! in-order answers to pipelined requests.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::{BatchHeader, testing::batch};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, FetchResponse, MetadataRequest, ProduceRequest,
};
use uuid::Uuid;

use crate::harness::{
    Client, TestBroker, create_topic, decode, fetch, fetch_request, produce_ok, produce_request,
    split_batches,
};
use crate::produce::assert_stored_as_sent;

fn partition(response: &FetchResponse, index: i32) -> Result<&PartitionData> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == index)
        .with_context(|| format!("partition {index} in the response"))
}

fn waiting(mut request: FetchRequest, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = min_bytes;
    request
}

fn by_id(id: Uuid, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

/// Produces `batches` batches of `count` records with `value_len`-byte values; returns them as
/// sent, in order.
async fn fill(
    client: &mut Client,
    name: &str,
    p: i32,
    batches: usize,
    count: i32,
    value_len: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut sent = Vec::new();
    for i in 0..batches {
        let one = batch(0, count, 1_000 + i as i64, &vec![i as u8; value_len]);
        produce_ok(client, name, p, one.clone()).await?;
        sent.push(one);
    }
    Ok(sent)
}

#[tokio::test]
async fn fetch_returns_exactly_the_produced_bytes_at_v4_v12_and_by_topic_id() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let id = create_topic(&mut client, "exact", 1, &[]).await?;
    let sent = fill(&mut client, "exact", 0, 3, 4, 32).await?;
    let metadata = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .await?;
    let leader_epoch = metadata.topics[0].partitions[0].leader_epoch;
    for version in [4, 5, 11, 12] {
        let response = client
            .call(version, &fetch_request("exact", 0, 0, 1 << 20))
            .await?;
        assert_eq!(
            response.responses[0].topic.0.as_str(),
            "exact",
            "v{version}"
        );
        let data = partition(&response, 0)?;
        assert_eq!(data.error_code.err(), None, "v{version}");
        assert_eq!(data.high_watermark, 12, "v{version}");
        if version >= 5 {
            assert_eq!(data.log_start_offset, 0, "v{version}");
        }
        let batches = split_batches(data.records.as_ref().context("records")?)?;
        assert_eq!(batches.len(), 3, "v{version}");
        for (i, (stored, sent)) in batches.iter().zip(&sent).enumerate() {
            assert_stored_as_sent(stored, sent, 4 * i as i64);
            let header = BatchHeader::parse(stored).map_err(|e| anyhow::anyhow!("{e}"))?;
            assert_eq!(
                header.partition_leader_epoch(),
                leader_epoch,
                "the leader epoch is stamped"
            );
        }
    }
    for version in [13, 16, 18] {
        let response = client.call(version, &by_id(id, 0, 0)).await?;
        assert_eq!(response.responses[0].topic_id, id, "v{version}");
        let data = partition(&response, 0)?;
        assert_eq!(data.error_code.err(), None, "v{version}");
        let batches = split_batches(data.records.as_ref().context("records")?)?;
        assert_eq!(batches.len(), 3, "v{version}");
        for (i, (stored, sent)) in batches.iter().zip(&sent).enumerate() {
            assert_stored_as_sent(stored, sent, 4 * i as i64);
        }
    }
    Ok(())
}

#[tokio::test]
async fn fetch_of_an_unknown_topic_or_partition_is_an_error_not_a_wait() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "present", 1, &[]).await?;
    let started = Instant::now();
    let response = client
        .call(
            12,
            &waiting(fetch_request("absent", 0, 0, 1 << 20), 3_000, 1),
        )
        .await?;
    assert_eq!(
        partition(&response, 0)?.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let response = client
        .call(
            12,
            &waiting(fetch_request("present", 3, 0, 1 << 20), 3_000, 1),
        )
        .await?;
    assert_eq!(
        partition(&response, 3)?.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let response = client
        .call(13, &waiting(by_id(Uuid::new_v4(), 0, 0), 3_000, 1))
        .await?;
    assert_eq!(
        partition(&response, 0)?.error_code.err(),
        Some(ErrorCode::UnknownTopicId)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "errors are answered at once"
    );
    Ok(())
}

#[tokio::test]
async fn fetch_from_mid_batch_returns_whole_batch() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "mid", 1, &[]).await?;
    let sent = fill(&mut client, "mid", 0, 3, 5, 16).await?;
    for (offset, batch_index) in [(0, 0), (3, 0), (5, 1), (7, 1), (9, 1), (14, 2)] {
        let data = fetch(&mut client, "mid", 0, offset, 1).await?;
        let stored = data.records.context("records")?;
        let batches = split_batches(&stored)?;
        assert_eq!(
            batches.len(),
            1,
            "offset {offset}: one batch within partition_max_bytes=1"
        );
        assert_stored_as_sent(&batches[0], &sent[batch_index], 5 * batch_index as i64);
        let records = decode(stored)?;
        assert!(
            records.iter().any(|r| r.offset == offset),
            "offset {offset} in the batch"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fetch_honours_partition_max_bytes_in_whole_batches() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "paged", 1, &[]).await?;
    let sent = fill(&mut client, "paged", 0, 10, 2, 200).await?;
    let len = sent[0].len() as i32;
    for (limit, expected) in [
        (1, 1),
        (len, 1),
        (len + len / 2, 1),
        (2 * len, 2),
        (3 * len - 1, 2),
        (10 * len, 10),
    ] {
        let data = fetch(&mut client, "paged", 0, 0, limit).await?;
        let records = data.records.context("records")?;
        assert_eq!(
            split_batches(&records)?.len(),
            expected,
            "partition_max_bytes {limit} (batches of {len})"
        );
        assert!(
            records.len() as i32 <= limit.max(len),
            "partition_max_bytes {limit}: {} bytes",
            records.len()
        );
    }
    // Paging by the limit visits every batch once.
    let mut offset = 0;
    let mut pages = 0;
    while offset < 20 {
        let records = fetch(&mut client, "paged", 0, offset, 2 * len)
            .await?
            .records
            .context("records")?;
        let last = decode(records)?.last().context("a record")?.offset;
        offset = last + 1;
        pages += 1;
    }
    assert_eq!(pages, 5);
    Ok(())
}

#[tokio::test]
async fn fetch_max_bytes_caps_the_whole_response_in_whole_batches() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "capped", 2, &[]).await?;
    let sent = fill(&mut client, "capped", 0, 3, 2, 200).await?;
    fill(&mut client, "capped", 1, 3, 2, 200).await?;
    let len = sent[0].len() as i32;
    let both = |max_bytes: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(max_bytes)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(crate::harness::topic("capped"))
                    .with_partitions(
                        (0..2)
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(0)
                                    .with_partition_max_bytes(10 * len)
                            })
                            .collect(),
                    ),
            ])
    };
    // Room for one and a half batches: the first partition gets one, the second none.
    let response = client.call(12, &both(len + len / 2)).await?;
    let first = partition(&response, 0)?.records.clone().unwrap_or_default();
    let second = partition(&response, 1)?.records.clone().unwrap_or_default();
    assert_eq!(split_batches(&first)?.len(), 1);
    assert!(
        first.len() + second.len() <= (len + len / 2) as usize,
        "response holds {} record bytes, max_bytes was {}",
        first.len() + second.len(),
        len + len / 2
    );
    // Room for four: three from the first partition, one from the second.
    let response = client.call(12, &both(4 * len)).await?;
    let first = partition(&response, 0)?.records.clone().unwrap_or_default();
    let second = partition(&response, 1)?.records.clone().unwrap_or_default();
    assert_eq!(split_batches(&first)?.len(), 3);
    assert_eq!(split_batches(&second)?.len(), 1);
    // Smaller than one batch: the first batch still comes whole, so the consumer progresses.
    let response = client.call(12, &both(10)).await?;
    let first = partition(&response, 0)?.records.clone().unwrap_or_default();
    let second = partition(&response, 1)?.records.clone().unwrap_or_default();
    assert_eq!(split_batches(&first)?.len(), 1);
    assert!(
        second.is_empty(),
        "only the first batch may exceed max_bytes"
    );
    Ok(())
}

#[tokio::test]
async fn long_poll_fetch_returns_promptly_after_a_produce_from_another_connection() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut producer = broker.client().await?;
    create_topic(&mut producer, "poll", 1, &[]).await?;
    let mut consumer = broker.client().await?;
    let correlation_id = consumer
        .send(12, &waiting(fetch_request("poll", 0, 0, 1 << 20), 5_000, 1))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let produced_at = Instant::now();
    produce_ok(&mut producer, "poll", 0, batch(0, 2, 1_000, b"wake")).await?;
    let response = consumer.receive::<FetchRequest>(12, correlation_id).await?;
    let waited = produced_at.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "answered {waited:?} after the produce"
    );
    let records = decode(
        partition(&response, 0)?
            .records
            .clone()
            .context("records")?,
    )?;
    assert_eq!(records.len(), 2);
    Ok(())
}

#[tokio::test]
async fn fetch_with_nothing_to_read_returns_after_max_wait_ms() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "quiet", 1, &[]).await?;
    for max_wait in [0, 500] {
        let started = Instant::now();
        let response = client
            .call(
                12,
                &waiting(fetch_request("quiet", 0, 0, 1 << 20), max_wait, 1),
            )
            .await?;
        let elapsed = started.elapsed();
        let data = partition(&response, 0)?;
        assert_eq!(data.error_code.err(), None);
        assert!(data.records.as_ref().is_none_or(Bytes::is_empty));
        assert!(
            elapsed >= Duration::from_millis(max_wait as u64),
            "max_wait {max_wait}: answered after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(max_wait as u64 + 1_000),
            "max_wait {max_wait}: answered after {elapsed:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fetch_below_min_bytes_waits_then_returns_what_is_there() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "trickle", 1, &[]).await?;
    produce_ok(&mut client, "trickle", 0, batch(0, 1, 1_000, b"small")).await?;
    let started = Instant::now();
    let response = client
        .call(
            12,
            &waiting(fetch_request("trickle", 0, 0, 1 << 20), 400, 100_000),
        )
        .await?;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "answered after {elapsed:?}"
    );
    assert_eq!(
        decode(
            partition(&response, 0)?
                .records
                .clone()
                .context("records")?
        )?
        .len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_waiting_fetch_does_not_hold_up_other_connections() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut waiter = broker.client().await?;
    create_topic(&mut waiter, "idle", 1, &[]).await?;
    let correlation_id = waiter
        .send(12, &waiting(fetch_request("idle", 0, 0, 1 << 20), 2_000, 1))
        .await?;
    let mut other = broker.client().await?;
    let started = Instant::now();
    other.call(12, &MetadataRequest::default()).await?;
    produce_ok(&mut other, "idle", 0, batch(0, 1, 1_000, b"x")).await?;
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "other connection waited {:?}",
        started.elapsed()
    );
    waiter.receive::<FetchRequest>(12, correlation_id).await?;
    Ok(())
}

#[tokio::test]
async fn fetch_beyond_the_end_or_below_the_start_is_offset_out_of_range() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "range", 1, &[]).await?;
    fill(&mut client, "range", 0, 2, 5, 8).await?;
    // At the high watermark: nothing yet, no error.
    let at_end = fetch(&mut client, "range", 0, 10, 1 << 20).await?;
    assert_eq!(at_end.error_code.err(), None);
    assert_eq!(at_end.high_watermark, 10);
    assert!(at_end.records.as_ref().is_none_or(Bytes::is_empty));
    for offset in [11, 1_000, -5] {
        for version in [4, 12] {
            let response = client
                .call(version, &fetch_request("range", 0, offset, 1 << 20))
                .await?;
            let data = partition(&response, 0)?;
            assert_eq!(
                data.error_code.err(),
                Some(ErrorCode::OffsetOutOfRange),
                "offset {offset} v{version}"
            );
            assert_eq!(data.high_watermark, 10, "offset {offset} v{version}");
        }
    }
    Ok(())
}

/// What a pipelined request was, to decode its answer.
enum Sent {
    ApiVersions(i32),
    Metadata(i32),
    Produce(i32, i64),
    Fetch(i32, Option<i64>),
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_in_order() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "pipe", 1, &[]).await?;
    let mut frames = Vec::new();
    let mut sent = Vec::new();
    let mut produced = 0i64;
    for i in 0..20 {
        match i % 5 {
            0 => {
                let (id, frame) = client.frame(3, &ApiVersionsRequest::default())?;
                sent.push(Sent::ApiVersions(id));
                frames.push(frame);
            }
            1 => {
                let (id, frame) = client.frame(12, &MetadataRequest::default())?;
                sent.push(Sent::Metadata(id));
                frames.push(frame);
            }
            2 => {
                // An acks=0 produce (no answer), then an acknowledged one.
                let silent: ProduceRequest =
                    produce_request("pipe", 0, 0, Bytes::from(batch(0, 1, 1_000, b"s")));
                frames.push(client.frame(9, &silent)?.1);
                produced += 1;
                let request: ProduceRequest =
                    produce_request("pipe", 0, 1, Bytes::from(batch(0, 2, 1_000, b"p")));
                let (id, frame) = client.frame(9, &request)?;
                sent.push(Sent::Produce(id, produced));
                frames.push(frame);
                produced += 2;
            }
            3 => {
                // Asked after the produce before it: processed in order, it must see its data.
                let (id, frame) =
                    client.frame(12, &fetch_request("pipe", 0, produced - 2, 1 << 20))?;
                sent.push(Sent::Fetch(id, Some(produced - 2)));
                frames.push(frame);
            }
            _ => {
                // A long poll that has to wait out its max_wait_ms: later answers queue behind it.
                let (id, frame) = client.frame(
                    12,
                    &waiting(fetch_request("pipe", 0, produced, 1 << 20), 100, 1),
                )?;
                sent.push(Sent::Fetch(id, None));
                frames.push(frame);
            }
        }
    }
    client.send_raw(&frames.concat()).await?;
    for (i, request) in sent.iter().enumerate() {
        match *request {
            Sent::ApiVersions(id) => {
                client
                    .receive::<ApiVersionsRequest>(3, id)
                    .await
                    .with_context(|| format!("answer {i}"))?;
            }
            Sent::Metadata(id) => {
                client
                    .receive::<MetadataRequest>(12, id)
                    .await
                    .with_context(|| format!("answer {i}"))?;
            }
            Sent::Produce(id, base) => {
                let response = client
                    .receive::<ProduceRequest>(9, id)
                    .await
                    .with_context(|| format!("answer {i}"))?;
                let p = &response.responses[0].partition_responses[0];
                assert_eq!((p.error_code, p.base_offset), (0, base), "answer {i}");
            }
            Sent::Fetch(id, expect) => {
                let response = client
                    .receive::<FetchRequest>(12, id)
                    .await
                    .with_context(|| format!("answer {i}"))?;
                let records = partition(&response, 0)?.records.clone().unwrap_or_default();
                if let Some(offset) = expect {
                    let header = BatchHeader::parse(&records)
                        .map_err(|e| anyhow::anyhow!("answer {i}: {e}"))?;
                    ensure!(
                        header.base_offset() == offset,
                        "answer {i}: batch at {}",
                        header.base_offset()
                    );
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn long_poll_fetch_is_answered_as_soon_as_min_bytes_accumulate() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut producer = broker.client().await?;
    create_topic(&mut producer, "accumulate", 1, &[]).await?;
    let mut consumer = broker.client().await?;
    let correlation_id = consumer
        .send(
            12,
            &waiting(fetch_request("accumulate", 0, 0, 1 << 20), 5_000, 1_000),
        )
        .await?;
    produce_ok(
        &mut producer,
        "accumulate",
        0,
        batch(0, 1, 1_000, &[1u8; 100]),
    )
    .await?;
    assert!(
        consumer
            .read_frame_within(Duration::from_millis(300))
            .await?
            .is_none(),
        "answered before min_bytes were there"
    );
    let produced_at = Instant::now();
    produce_ok(
        &mut producer,
        "accumulate",
        0,
        batch(0, 1, 1_000, &[2u8; 1_000]),
    )
    .await?;
    let response = consumer.receive::<FetchRequest>(12, correlation_id).await?;
    assert!(
        produced_at.elapsed() < Duration::from_secs(1),
        "answered {:?} after min_bytes were met",
        produced_at.elapsed()
    );
    assert_eq!(
        decode(
            partition(&response, 0)?
                .records
                .clone()
                .context("records")?
        )?
        .len(),
        2
    );
    Ok(())
}
