//! CreatePartitions: grow a topic; shrinking, unknown topics and validate-only.

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreatePartitionsRequest, MetadataRequest};

use crate::harness::{Client, TestBroker, create_topic, produce, produce_ok, topic};

async fn grow(
    client: &mut Client,
    version: i16,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<CreatePartitionsTopicResult> {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic(name))
                .with_count(count),
        ])
        .with_timeout_ms(5_000)
        .with_validate_only(validate_only);
    let response = client.call(version, &request).await?;
    response.results.into_iter().next().context("a result")
}

async fn partition_count(client: &mut Client, name: &str) -> Result<usize> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic(name))),
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.call(12, &request).await?;
    Ok(response.topics.first().context("a topic")?.partitions.len())
}

#[tokio::test]
async fn create_partitions_grows_a_topic_and_new_partitions_take_writes() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "growing", 1, &[]).await?;
    produce_ok(&mut client, "growing", 0, batch(0, 3, 1_000, b"x")).await?;
    for (version, count) in [(0, 2), (3, 4)] {
        let result = grow(&mut client, version, "growing", count, false).await?;
        assert_eq!(
            result.error_code.err(),
            None,
            "v{version}: {:?}",
            result.error_message
        );
        assert_eq!(
            partition_count(&mut client, "growing").await?,
            count as usize
        );
    }
    for p in 1..4 {
        assert!(broker.partition_dir("growing", p).is_dir());
        assert_eq!(
            produce_ok(&mut client, "growing", p, batch(0, 2, 1_000, b"y")).await?,
            0
        );
    }
    // Partition 0 keeps its data.
    assert_eq!(
        produce_ok(&mut client, "growing", 0, batch(0, 1, 1_000, b"z")).await?,
        3
    );
    Ok(())
}

#[tokio::test]
async fn create_partitions_to_the_same_or_fewer_is_invalid_partitions() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "fixed", 3, &[]).await?;
    for count in [3, 2] {
        let result = grow(&mut client, 3, "fixed", count, false).await?;
        assert_eq!(
            result.error_code.err(),
            Some(ErrorCode::InvalidPartitions),
            "count {count}"
        );
    }
    assert_eq!(partition_count(&mut client, "fixed").await?, 3);
    Ok(())
}

#[tokio::test]
async fn create_partitions_of_an_unknown_topic_is_unknown_topic_or_partition() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let result = grow(&mut client, 3, "ghost", 2, false).await?;
    assert_eq!(
        result.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    Ok(())
}

#[tokio::test]
async fn create_partitions_validate_only_changes_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "still", 1, &[]).await?;
    let result = grow(&mut client, 3, "still", 5, true).await?;
    assert_eq!(result.error_code.err(), None, "{:?}", result.error_message);
    assert_eq!(partition_count(&mut client, "still").await?, 1);
    assert!(!broker.partition_dir("still", 1).exists());
    let denied = produce(&mut client, "still", 1, batch(0, 1, 1_000, b"x")).await?;
    assert_eq!(
        denied.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    Ok(())
}

#[tokio::test]
async fn added_partitions_survive_a_restart() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "durable", 1, &[]).await?;
    grow(&mut client, 3, "durable", 3, false).await?;
    produce_ok(&mut client, "durable", 2, batch(0, 4, 1_000, b"x")).await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(partition_count(&mut client, "durable").await?, 3);
    assert_eq!(
        produce_ok(&mut client, "durable", 2, batch(0, 1, 1_000, b"y")).await?,
        4
    );
    Ok(())
}
