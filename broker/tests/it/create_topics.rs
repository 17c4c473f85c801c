//! CreateTopics: success at old and new versions, and Kafka's error codes.

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, MetadataRequest};
use uuid::Uuid;

use crate::harness::{Client, TestBroker, creatable, create_topic, produce_ok, topic};

async fn create(
    client: &mut Client,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Result<Vec<CreatableTopicResult>> {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(5_000)
        .with_validate_only(validate_only);
    Ok(client.call(version, &request).await?.topics)
}

async fn partition_count(client: &mut Client, name: &str) -> Result<Option<usize>> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic(name))),
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.call(12, &request).await?;
    let found = response.topics.first().context("a topic")?;
    Ok((found.error_code == 0).then_some(found.partitions.len()))
}

#[tokio::test]
async fn create_topics_v7_creates_partitions_and_reports_id_and_configs() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let results = create(
        &mut client,
        7,
        vec![creatable("orders", 4, &[("retention.ms", "60000")])],
        false,
    )
    .await?;
    let result = results.first().context("a result")?;
    assert_eq!(result.error_code.err(), None, "{:?}", result.error_message);
    assert_eq!(result.name.0.as_str(), "orders");
    assert_ne!(result.topic_id, Uuid::nil());
    assert_eq!(result.num_partitions, 4);
    assert_eq!(result.replication_factor, 1);
    let configs = result.configs.as_ref().context("configs at v5+")?;
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .context("retention.ms listed")?;
    assert_eq!(retention.value.as_ref().map(|v| v.as_str()), Some("60000"));
    assert_eq!(retention.config_source, 1, "TOPIC_CONFIG");
    assert_eq!(partition_count(&mut client, "orders").await?, Some(4));
    for p in 0..4 {
        assert!(broker.partition_dir("orders", p).is_dir(), "orders-{p}");
        assert_eq!(
            produce_ok(
                &mut client,
                "orders",
                p,
                fjord_protocol::batch::testing::batch(0, 1, 1, b"x")
            )
            .await?,
            0
        );
    }
    Ok(())
}

#[tokio::test]
async fn create_topics_v2_and_v4_create_topics_too() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for (version, name) in [(2, "old-two"), (4, "old-four")] {
        let results = create(&mut client, version, vec![creatable(name, 2, &[])], false).await?;
        assert_eq!(
            results.first().context("a result")?.error_code.err(),
            None,
            "v{version}"
        );
        assert_eq!(
            partition_count(&mut client, name).await?,
            Some(2),
            "v{version}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn create_topics_with_default_partitions_uses_num_partitions() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("num.partitions", "5")]).await?;
    let mut client = broker.client().await?;
    let topic = creatable("defaults", -1, &[]).with_replication_factor(-1);
    let results = create(&mut client, 7, vec![topic], false).await?;
    let result = results.first().context("a result")?;
    assert_eq!(result.error_code.err(), None, "{:?}", result.error_message);
    assert_eq!(result.num_partitions, 5);
    assert_eq!(partition_count(&mut client, "defaults").await?, Some(5));
    Ok(())
}

#[tokio::test]
async fn create_topics_twice_is_topic_already_exists() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let id = create_topic(&mut client, "twice", 1, &[]).await?;
    for version in [2, 7] {
        let results = create(
            &mut client,
            version,
            vec![creatable("twice", 3, &[])],
            false,
        )
        .await?;
        assert_eq!(
            results.first().context("a result")?.error_code.err(),
            Some(ErrorCode::TopicAlreadyExists),
            "v{version}"
        );
    }
    assert_eq!(
        partition_count(&mut client, "twice").await?,
        Some(1),
        "unchanged"
    );
    assert_eq!(crate::harness::topic_id(&mut client, "twice").await?, id);
    Ok(())
}

#[tokio::test]
async fn create_topics_rejects_invalid_names() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let long = "n".repeat(250);
    for name in [
        "",
        ".",
        "..",
        "has space",
        "semi;colon",
        "ünï",
        long.as_str(),
    ] {
        let results = create(&mut client, 7, vec![creatable(name, 1, &[])], false).await?;
        assert_eq!(
            results.first().context("a result")?.error_code.err(),
            Some(ErrorCode::InvalidTopicException),
            "{name:?}"
        );
    }
    assert!(
        client
            .call(12, &MetadataRequest::default().with_topics(None))
            .await?
            .topics
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn create_topics_rejects_names_colliding_on_dot_and_underscore() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "a.b", 1, &[]).await?;
    let results = create(&mut client, 7, vec![creatable("a_b", 1, &[])], false).await?;
    assert_eq!(
        results.first().context("a result")?.error_code.err(),
        Some(ErrorCode::InvalidTopicException)
    );
    Ok(())
}

#[tokio::test]
async fn create_topics_with_zero_or_negative_partitions_is_invalid_partitions() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for partitions in [0, -7] {
        let results = create(
            &mut client,
            7,
            vec![creatable("parts", partitions, &[])],
            false,
        )
        .await?;
        assert_eq!(
            results.first().context("a result")?.error_code.err(),
            Some(ErrorCode::InvalidPartitions),
            "{partitions} partitions"
        );
    }
    assert_eq!(partition_count(&mut client, "parts").await?, None);
    Ok(())
}

#[tokio::test]
async fn create_topics_with_replication_factor_three_on_one_broker_is_rejected() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for rf in [3, 0] {
        let topic = creatable("replicated", 1, &[]).with_replication_factor(rf);
        let results = create(&mut client, 7, vec![topic], false).await?;
        assert_eq!(
            results.first().context("a result")?.error_code.err(),
            Some(ErrorCode::InvalidReplicationFactor),
            "rf {rf}"
        );
    }
    assert_eq!(partition_count(&mut client, "replicated").await?, None);
    assert!(!broker.partition_dir("replicated", 0).exists());
    Ok(())
}

#[tokio::test]
async fn create_topics_with_a_bad_config_value_or_unknown_key_is_invalid_config() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let cases: [(&str, &str); 5] = [
        ("retention.ms", "soon"),
        ("cleanup.policy", "shred"),
        ("segment.bytes", "13"),
        ("message.timestamp.type", "Whenever"),
        ("retention.msx", "1000"),
    ];
    for (key, value) in cases {
        let results = create(
            &mut client,
            7,
            vec![creatable("configured", 1, &[(key, value)])],
            false,
        )
        .await?;
        let result = results.first().context("a result")?;
        assert_eq!(
            result.error_code.err(),
            Some(ErrorCode::InvalidConfig),
            "{key}={value}"
        );
        assert!(result.error_message.is_some(), "{key}={value}: says why");
    }
    assert_eq!(partition_count(&mut client, "configured").await?, None);
    assert!(!broker.partition_dir("configured", 0).exists());
    Ok(())
}

#[tokio::test]
async fn create_topics_validate_only_creates_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let results = create(
        &mut client,
        7,
        vec![creatable("dry", 3, &[("retention.ms", "1000")])],
        true,
    )
    .await?;
    let result = results.first().context("a result")?;
    assert_eq!(result.error_code.err(), None, "{:?}", result.error_message);
    assert_eq!(partition_count(&mut client, "dry").await?, None);
    assert!(!broker.partition_dir("dry", 0).exists());
    // And validation still runs: a bad request fails in validate-only mode too.
    let results = create(&mut client, 7, vec![creatable("dry", 0, &[])], true).await?;
    assert_eq!(
        results.first().context("a result")?.error_code.err(),
        Some(ErrorCode::InvalidPartitions)
    );
    // A real create afterwards succeeds.
    create_topic(&mut client, "dry", 3, &[]).await?;
    Ok(())
}

#[tokio::test]
async fn create_topics_with_a_duplicate_entry_is_invalid_request() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let results = create(
        &mut client,
        7,
        vec![
            creatable("dup", 1, &[]),
            creatable("dup", 1, &[]),
            creatable("fine", 1, &[]),
        ],
        false,
    )
    .await?;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].error_code.err(), Some(ErrorCode::InvalidRequest));
    assert_eq!(results[1].error_code.err(), Some(ErrorCode::InvalidRequest));
    assert_eq!(results[2].error_code.err(), None);
    assert_eq!(partition_count(&mut client, "dup").await?, None);
    assert_eq!(partition_count(&mut client, "fine").await?, Some(1));
    Ok(())
}

#[tokio::test]
async fn created_topics_survive_a_restart_with_their_ids_and_configs() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let id = create_topic(&mut client, "kept", 2, &[("retention.ms", "123456")]).await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(crate::harness::topic_id(&mut client, "kept").await?, id);
    assert_eq!(partition_count(&mut client, "kept").await?, Some(2));
    let results = create(&mut client, 7, vec![creatable("kept", 2, &[])], false).await?;
    assert_eq!(
        results.first().context("a result")?.error_code.err(),
        Some(ErrorCode::TopicAlreadyExists)
    );
    Ok(())
}

#[tokio::test]
async fn create_topics_with_replica_assignments_to_this_broker_only() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let assign = |brokers: &[i32]| {
        (0..3)
            .map(|p| {
                CreatableReplicaAssignment::default()
                    .with_partition_index(p)
                    .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
            })
            .collect::<Vec<_>>()
    };
    let mine = creatable("assigned", -1, &[])
        .with_replication_factor(-1)
        .with_assignments(assign(&[1]));
    let results = create(&mut client, 7, vec![mine], false).await?;
    let result = results.first().context("a result")?;
    assert_eq!(result.error_code.err(), None, "{:?}", result.error_message);
    assert_eq!(partition_count(&mut client, "assigned").await?, Some(3));
    let elsewhere = creatable("elsewhere", -1, &[])
        .with_replication_factor(-1)
        .with_assignments(assign(&[2]));
    let results = create(&mut client, 7, vec![elsewhere], false).await?;
    assert_eq!(
        results.first().context("a result")?.error_code.err(),
        Some(ErrorCode::InvalidReplicaAssignment)
    );
    assert_eq!(partition_count(&mut client, "elsewhere").await?, None);
    Ok(())
}
