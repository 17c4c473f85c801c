//! DeleteRecords: the low watermark (log start offset) moves, reads below it fail, and the
//! move survives restarts.

use std::path::Path;

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;

use crate::harness::{
    Client, LIST_OFFSETS_V, TestBroker, create_topic, decode, fetch, list_offset, produce_ok, topic,
};

async fn delete_records(
    client: &mut Client,
    version: i16,
    name: &str,
    partition: i32,
    offset: i64,
) -> Result<DeleteRecordsPartitionResult> {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(5_000);
    let response = client.call(version, &request).await?;
    response
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("a partition result")
}

async fn earliest(client: &mut Client, name: &str) -> Result<i64> {
    Ok(list_offset(client, LIST_OFFSETS_V, name, 0, -2)
        .await?
        .offset)
}

/// Ten batches of five records: offsets 0..50.
async fn fill(client: &mut Client, name: &str) -> Result<()> {
    for i in 0..10 {
        produce_ok(client, name, 0, batch(0, 5, 1_000 + i, &[i as u8; 100])).await?;
    }
    Ok(())
}

fn log_files(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    Ok(names)
}

#[tokio::test]
async fn delete_records_moves_the_low_watermark_and_reads_below_it_fail() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "trim", 1, &[]).await?;
    fill(&mut client, "trim").await?;
    for (version, offset) in [(0, 12), (2, 27)] {
        let result = delete_records(&mut client, version, "trim", 0, offset).await?;
        assert_eq!(result.error_code.err(), None, "v{version}");
        assert_eq!(result.low_watermark, offset, "v{version}");
        assert_eq!(earliest(&mut client, "trim").await?, offset, "v{version}");
        let below = fetch(&mut client, "trim", 0, offset - 1, 1 << 20).await?;
        assert_eq!(
            below.error_code.err(),
            Some(ErrorCode::OffsetOutOfRange),
            "v{version}"
        );
        let at = fetch(&mut client, "trim", 0, offset, 1 << 20).await?;
        assert_eq!(at.error_code.err(), None, "v{version}");
        assert_eq!(at.log_start_offset, offset, "v{version}");
        let records = decode(at.records.context("records")?)?;
        assert!(
            records.iter().any(|r| r.offset == offset),
            "v{version}: offset {offset} readable"
        );
    }
    // Moving it backwards is a no-op that reports the current low watermark.
    let result = delete_records(&mut client, 2, "trim", 0, 5).await?;
    assert_eq!((result.error_code, result.low_watermark), (0, 27));
    Ok(())
}

#[tokio::test]
async fn delete_records_to_minus_one_deletes_up_to_the_high_watermark() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "all", 1, &[]).await?;
    fill(&mut client, "all").await?;
    let result = delete_records(&mut client, 2, "all", 0, -1).await?;
    assert_eq!((result.error_code, result.low_watermark), (0, 50));
    assert_eq!(earliest(&mut client, "all").await?, 50);
    assert_eq!(
        produce_ok(&mut client, "all", 0, batch(0, 1, 1_000, b"next")).await?,
        50
    );
    Ok(())
}

#[tokio::test]
async fn delete_records_beyond_the_high_watermark_is_offset_out_of_range() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "beyond", 1, &[]).await?;
    fill(&mut client, "beyond").await?;
    for offset in [51, 1_000] {
        let result = delete_records(&mut client, 2, "beyond", 0, offset).await?;
        assert_eq!(
            result.error_code.err(),
            Some(ErrorCode::OffsetOutOfRange),
            "offset {offset}"
        );
    }
    assert_eq!(earliest(&mut client, "beyond").await?, 0);
    Ok(())
}

#[tokio::test]
async fn delete_records_of_an_unknown_topic_or_partition_is_an_error() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "one", 1, &[]).await?;
    let result = delete_records(&mut client, 2, "none", 0, 0).await?;
    assert_eq!(
        result.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let result = delete_records(&mut client, 2, "one", 3, 0).await?;
    assert_eq!(
        result.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    Ok(())
}

#[tokio::test]
async fn delete_records_removes_segments_wholly_below_the_low_watermark() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "segments", 1, &[("segment.bytes", "1024")]).await?;
    fill(&mut client, "segments").await?;
    let dir = broker.partition_dir("segments", 0);
    let before = log_files(&dir)?;
    assert!(before.len() >= 5, "small segments rolled: {before:?}");
    delete_records(&mut client, 2, "segments", 0, 40).await?;
    let after = log_files(&dir)?;
    assert!(after.len() < before.len(), "no segment deleted: {after:?}");
    let first_base: i64 = after
        .first()
        .context("a segment")?
        .trim_end_matches(".log")
        .parse()?;
    assert!(
        first_base <= 40,
        "the segment holding offset 40 is kept: {after:?}"
    );
    assert!(
        after
            .iter()
            .all(|n| n.len() == "00000000000000000000.log".len())
    );
    assert_eq!(earliest(&mut client, "segments").await?, 40);
    let records = decode(
        fetch(&mut client, "segments", 0, 40, 1 << 20)
            .await?
            .records
            .context("records")?,
    )?;
    assert!(records.iter().any(|r| r.offset == 40));
    Ok(())
}

#[tokio::test]
async fn deleted_records_stay_deleted_after_a_clean_or_unclean_restart() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "kept", 1, &[]).await?;
    fill(&mut client, "kept").await?;
    delete_records(&mut client, 2, "kept", 0, 23).await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(
        earliest(&mut client, "kept").await?,
        23,
        "after a clean restart"
    );
    assert_eq!(
        fetch(&mut client, "kept", 0, 22, 1 << 20)
            .await?
            .error_code
            .err(),
        Some(ErrorCode::OffsetOutOfRange)
    );
    delete_records(&mut client, 2, "kept", 0, 31).await?;
    broker.crash().await?;
    broker.start_again().await?;
    let mut client = broker.client().await?;
    assert_eq!(earliest(&mut client, "kept").await?, 31, "after a crash");
    assert_eq!(
        list_offset(&mut client, LIST_OFFSETS_V, "kept", 0, -1)
            .await?
            .offset,
        50
    );
    Ok(())
}
