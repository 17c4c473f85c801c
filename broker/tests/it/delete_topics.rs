//! DeleteTopics: by name (v1-v5 topic_names, v6 topics) and by id (v6).

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{DeleteTopicsRequest, MetadataRequest};
use uuid::Uuid;

use crate::harness::{Client, TestBroker, create_topic, fetch_all, produce_ok, topic};

async fn topic_names(client: &mut Client) -> Result<Vec<String>> {
    let response = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .await?;
    Ok(response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect())
}

fn by_names(names: &[&str]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| topic(n)).collect())
        .with_timeout_ms(5_000)
}

fn by_states(states: Vec<DeleteTopicState>) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topics(states)
        .with_timeout_ms(5_000)
}

#[tokio::test]
async fn delete_topics_v1_by_name_removes_the_topic_and_its_directories() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "doomed", 2, &[]).await?;
    create_topic(&mut client, "kept", 1, &[]).await?;
    produce_ok(&mut client, "doomed", 0, batch(0, 3, 1_000, b"x")).await?;
    assert!(broker.partition_dir("doomed", 1).is_dir());
    let response = client.call(1, &by_names(&["doomed"])).await?;
    let result = response.responses.first().context("a result")?;
    assert_eq!(result.error_code.err(), None);
    assert_eq!(result.name.as_ref().map(|n| n.0.as_str()), Some("doomed"));
    assert_eq!(topic_names(&mut client).await?, ["kept"]);
    assert!(
        !broker.partition_dir("doomed", 0).exists(),
        "doomed-0 still on disk"
    );
    assert!(
        !broker.partition_dir("doomed", 1).exists(),
        "doomed-1 still on disk"
    );
    assert!(broker.partition_dir("kept", 0).is_dir());
    Ok(())
}

#[tokio::test]
async fn delete_topics_v6_by_name_and_by_id() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "named", 1, &[]).await?;
    let id = create_topic(&mut client, "identified", 1, &[]).await?;
    let response = client
        .call(
            6,
            &by_states(vec![
                DeleteTopicState::default().with_name(Some(topic("named"))),
                DeleteTopicState::default().with_topic_id(id),
            ]),
        )
        .await?;
    assert_eq!(response.responses.len(), 2);
    for result in &response.responses {
        assert_eq!(result.error_code.err(), None, "{result:?}");
    }
    let by_id = response
        .responses
        .iter()
        .find(|r| r.topic_id == id)
        .context("the result for the id")?;
    assert_eq!(
        by_id.name.as_ref().map(|n| n.0.as_str()),
        Some("identified")
    );
    assert!(topic_names(&mut client).await?.is_empty());
    assert!(!broker.partition_dir("identified", 0).exists());
    Ok(())
}

#[tokio::test]
async fn delete_topics_of_an_unknown_topic_is_unknown_topic_or_partition() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for version in [1, 5] {
        let response = client.call(version, &by_names(&["ghost"])).await?;
        assert_eq!(
            response
                .responses
                .first()
                .context("a result")?
                .error_code
                .err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}"
        );
    }
    let response = client
        .call(
            6,
            &by_states(vec![
                DeleteTopicState::default().with_name(Some(topic("ghost"))),
            ]),
        )
        .await?;
    assert_eq!(
        response
            .responses
            .first()
            .context("a result")?
            .error_code
            .err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let response = client
        .call(
            6,
            &by_states(vec![
                DeleteTopicState::default().with_topic_id(Uuid::new_v4()),
            ]),
        )
        .await?;
    assert_eq!(
        response
            .responses
            .first()
            .context("a result")?
            .error_code
            .err(),
        Some(ErrorCode::UnknownTopicId)
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_topic_recreated_starts_empty_with_a_new_id() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let first = create_topic(&mut client, "phoenix", 1, &[]).await?;
    produce_ok(&mut client, "phoenix", 0, batch(0, 5, 1_000, b"old")).await?;
    client.call(4, &by_names(&["phoenix"])).await?;
    let second = create_topic(&mut client, "phoenix", 1, &[]).await?;
    assert_ne!(first, second);
    assert!(fetch_all(&mut client, "phoenix", 0, 0).await?.is_empty());
    assert_eq!(
        produce_ok(&mut client, "phoenix", 0, batch(0, 1, 2_000, b"new")).await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_topic_stays_deleted_after_a_restart() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "gone", 1, &[]).await?;
    create_topic(&mut client, "stays", 1, &[]).await?;
    client
        .call(
            6,
            &by_states(vec![
                DeleteTopicState::default().with_name(Some(topic("gone"))),
            ]),
        )
        .await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(topic_names(&mut client).await?, ["stays"]);
    Ok(())
}

#[tokio::test]
async fn delete_topics_is_refused_when_deletion_is_disabled() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("delete.topic.enable", "false")]).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "protected", 1, &[]).await?;
    let response = client.call(4, &by_names(&["protected"])).await?;
    assert_eq!(
        response
            .responses
            .first()
            .context("a result")?
            .error_code
            .err(),
        Some(ErrorCode::TopicDeletionDisabled)
    );
    assert_eq!(topic_names(&mut client).await?, ["protected"]);
    Ok(())
}
