//! ListOffsets: earliest, latest, by timestamp, max timestamp; v1 and v8 encodings.

use anyhow::Result;
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::records::Compression;

use crate::harness::{TestBroker, create_topic, encoded_batch, list_offset, produce_ok, topic};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

#[tokio::test]
async fn list_offsets_earliest_and_latest_at_v1_and_v8() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "ends", 1, &[]).await?;
    for version in [1, 8] {
        let empty_start = list_offset(&mut client, version, "ends", 0, EARLIEST).await?;
        assert_eq!(
            (empty_start.error_code, empty_start.offset),
            (0, 0),
            "v{version}"
        );
        let empty_end = list_offset(&mut client, version, "ends", 0, LATEST).await?;
        assert_eq!(
            (empty_end.error_code, empty_end.offset),
            (0, 0),
            "v{version}"
        );
    }
    produce_ok(&mut client, "ends", 0, batch(0, 4, 1_000, b"x")).await?;
    produce_ok(&mut client, "ends", 0, batch(0, 3, 2_000, b"y")).await?;
    for version in [1, 4, 8, 10] {
        let start = list_offset(&mut client, version, "ends", 0, EARLIEST).await?;
        assert_eq!((start.error_code, start.offset), (0, 0), "v{version}");
        let end = list_offset(&mut client, version, "ends", 0, LATEST).await?;
        assert_eq!((end.error_code, end.offset), (0, 7), "v{version}");
        if version >= 4 {
            assert_eq!(end.leader_epoch, 0, "v{version}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_by_timestamp_finds_the_first_record_at_or_after_it() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "times", 1, &[]).await?;
    // Offsets 0..5 at 1000..1004, 5..10 at 2000..2004, 10..15 (gzip) at 3000..3004.
    produce_ok(&mut client, "times", 0, batch(0, 5, 1_000, b"a")).await?;
    produce_ok(&mut client, "times", 0, batch(0, 5, 2_000, b"b")).await?;
    produce_ok(
        &mut client,
        "times",
        0,
        encoded_batch(5, 3_000, Compression::Gzip),
    )
    .await?;
    let cases = [
        (0, 0, 1_000),
        (1_000, 0, 1_000),
        (1_003, 3, 1_003),
        (1_500, 5, 2_000),
        (2_002, 7, 2_002),
        (2_004, 9, 2_004),
        (2_999, 10, 3_000),
        (3_003, 13, 3_003),
    ];
    for version in [1, 8] {
        for (target, offset, timestamp) in cases {
            let found = list_offset(&mut client, version, "times", 0, target).await?;
            assert_eq!(found.error_code.err(), None, "v{version} target {target}");
            assert_eq!(
                (found.offset, found.timestamp),
                (offset, timestamp),
                "v{version} target {target}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_by_a_timestamp_after_every_record_is_minus_one() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "past", 1, &[]).await?;
    for version in [1, 8] {
        let empty = list_offset(&mut client, version, "past", 0, 5_000).await?;
        assert_eq!(
            (empty.error_code, empty.offset, empty.timestamp),
            (0, -1, -1),
            "v{version} empty"
        );
    }
    produce_ok(&mut client, "past", 0, batch(0, 5, 1_000, b"a")).await?;
    for version in [1, 8] {
        let none = list_offset(&mut client, version, "past", 0, 1_005).await?;
        assert_eq!(
            (none.error_code, none.offset, none.timestamp),
            (0, -1, -1),
            "v{version}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_max_timestamp_finds_the_newest_timestamp_not_the_last_record() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "max", 1, &[]).await?;
    produce_ok(&mut client, "max", 0, batch(0, 5, 1_000, b"a")).await?;
    // Offsets 5..10 carry the largest timestamps, 9_000..9_004.
    produce_ok(&mut client, "max", 0, batch(0, 5, 9_000, b"b")).await?;
    produce_ok(&mut client, "max", 0, batch(0, 5, 4_000, b"c")).await?;
    for version in [7, 8, 10] {
        let found = list_offset(&mut client, version, "max", 0, MAX_TIMESTAMP).await?;
        assert_eq!(found.error_code.err(), None, "v{version}");
        assert_eq!((found.offset, found.timestamp), (9, 9_004), "v{version}");
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_of_an_unknown_topic_or_partition_is_an_error() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "one", 1, &[]).await?;
    for version in [1, 8] {
        let missing = list_offset(&mut client, version, "none", 0, LATEST).await?;
        assert_eq!(
            missing.error_code.err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}"
        );
        let missing = list_offset(&mut client, version, "one", 1, LATEST).await?;
        assert_eq!(
            missing.error_code.err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_by_timestamp_never_answers_below_the_log_start_offset() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "trimmed", 1, &[]).await?;
    produce_ok(&mut client, "trimmed", 0, batch(0, 5, 1_000, b"a")).await?;
    produce_ok(&mut client, "trimmed", 0, batch(0, 5, 2_000, b"b")).await?;
    let request = DeleteRecordsRequest::default().with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(topic("trimmed"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(7),
            ]),
    ]);
    client.call(2, &request).await?;
    for (target, offset, timestamp) in [
        (0, 7, 2_002),
        (1_004, 7, 2_002),
        (2_001, 7, 2_002),
        (2_003, 8, 2_003),
    ] {
        let found = list_offset(&mut client, 8, "trimmed", 0, target).await?;
        assert_eq!(
            (found.offset, found.timestamp),
            (offset, timestamp),
            "target {target}"
        );
    }
    assert_eq!(
        list_offset(&mut client, 8, "trimmed", 0, EARLIEST)
            .await?
            .offset,
        7
    );
    Ok(())
}
