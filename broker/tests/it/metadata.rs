//! Metadata: brokers, topics and partitions; auto-creation; topic ids at v10+.

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use crate::harness::{Client, TestBroker, create_topic, topic};

fn named(names: &[&str], allow_auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow_auto_create)
}

/// All topics: a null list (v1+).
fn all_topics() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

fn find<'a>(response: &'a MetadataResponse, name: &str) -> Option<&'a MetadataResponseTopic> {
    response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
}

async fn all_topic_names(client: &mut Client) -> Result<Vec<String>> {
    let response = client.call(12, &all_topics()).await?;
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    Ok(names)
}

#[tokio::test]
async fn metadata_lists_all_topics_with_this_broker_leading_every_partition() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("node.id", "7")]).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "alpha", 3, &[]).await?;
    create_topic(&mut client, "beta", 1, &[]).await?;
    // v1: all topics is a null list; v12: the same, flexible encoding.
    for version in [1, 12] {
        let response = client.call(version, &all_topics()).await?;
        assert_eq!(response.brokers.len(), 1, "v{version}");
        let me = &response.brokers[0];
        assert_eq!(me.node_id, BrokerId(7), "v{version}");
        assert_eq!(me.host.as_str(), "127.0.0.1", "v{version}");
        assert_eq!(me.port, i32::from(broker.addr().port()), "v{version}");
        assert_eq!(response.controller_id, BrokerId(7), "v{version}");
        let mut names: Vec<&str> = response
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alpha", "beta"], "v{version}");
        let alpha = find(&response, "alpha").context("alpha")?;
        assert_eq!(alpha.error_code.err(), None);
        let mut indexes: Vec<i32> = alpha.partitions.iter().map(|p| p.partition_index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1, 2], "v{version}");
        for p in &alpha.partitions {
            assert_eq!(p.error_code.err(), None);
            assert_eq!(p.leader_id, BrokerId(7));
            assert_eq!(p.replica_nodes, [BrokerId(7)]);
            assert_eq!(p.isr_nodes, [BrokerId(7)]);
        }
    }
    Ok(())
}

#[tokio::test]
async fn metadata_v0_empty_list_means_all_topics() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "gamma", 2, &[]).await?;
    let response = client
        .call(0, &MetadataRequest::default().with_topics(Some(Vec::new())))
        .await?;
    let gamma = find(&response, "gamma").context("gamma listed")?;
    assert_eq!(gamma.partitions.len(), 2);
    Ok(())
}

#[tokio::test]
async fn metadata_for_named_topics_returns_only_those() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for name in ["one", "two", "three"] {
        create_topic(&mut client, name, 1, &[]).await?;
    }
    for version in [1, 12] {
        // Before v4 the request cannot refuse auto-creation; these topics exist anyway.
        let response = client
            .call(version, &named(&["two", "three"], version < 4))
            .await?;
        let mut names: Vec<&str> = response
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["three", "two"], "v{version}");
    }
    Ok(())
}

#[tokio::test]
async fn metadata_auto_creates_a_requested_topic_with_num_partitions() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("num.partitions", "3")]).await?;
    let mut client = broker.client().await?;
    let response = client.call(12, &named(&["auto"], true)).await?;
    let auto = find(&response, "auto").context("auto in response")?;
    assert_eq!(auto.error_code.err(), None);
    assert_eq!(auto.partitions.len(), 3);
    assert_ne!(auto.topic_id, Uuid::nil());
    assert_eq!(all_topic_names(&mut client).await?, ["auto"]);
    assert!(broker.partition_dir("auto", 2).is_dir());
    // Asking again describes the same topic, it does not create another.
    let again = client.call(12, &named(&["auto"], true)).await?;
    assert_eq!(
        find(&again, "auto").context("auto")?.topic_id,
        auto.topic_id
    );
    Ok(())
}

#[tokio::test]
async fn metadata_v1_auto_creates_because_old_clients_cannot_opt_out() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    // v1 has no allow_auto_topic_creation field: creation is always allowed.
    let response = client.call(1, &named(&["legacy"], true)).await?;
    assert_eq!(
        find(&response, "legacy")
            .context("legacy")?
            .error_code
            .err(),
        None
    );
    assert_eq!(all_topic_names(&mut client).await?, ["legacy"]);
    Ok(())
}

#[tokio::test]
async fn metadata_without_client_permission_does_not_auto_create() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let response = client.call(12, &named(&["nope"], false)).await?;
    let nope = find(&response, "nope").context("nope in response")?;
    assert_eq!(
        nope.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert!(all_topic_names(&mut client).await?.is_empty());
    assert!(!broker.partition_dir("nope", 0).exists());
    Ok(())
}

#[tokio::test]
async fn metadata_does_not_auto_create_when_the_broker_disables_it() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("auto.create.topics.enable", "false")]).await?;
    let mut client = broker.client().await?;
    for version in [1, 12] {
        let response = client.call(version, &named(&["nope"], true)).await?;
        let nope = find(&response, "nope").context("nope in response")?;
        assert_eq!(
            nope.error_code.err(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "v{version}"
        );
    }
    assert!(all_topic_names(&mut client).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn metadata_for_an_invalid_name_is_invalid_topic_exception() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let long = "x".repeat(250);
    for name in ["bad name", "slash/es", "..", long.as_str()] {
        let response = client.call(12, &named(&[name], true)).await?;
        let bad = find(&response, name).with_context(|| format!("{name} in response"))?;
        assert_eq!(
            bad.error_code.err(),
            Some(ErrorCode::InvalidTopicException),
            "{name}"
        );
    }
    assert!(all_topic_names(&mut client).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn metadata_reports_topic_ids_from_v10_and_looks_topics_up_by_id() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let id = create_topic(&mut client, "ids", 1, &[]).await?;
    assert_ne!(id, Uuid::nil());
    for version in [10, 12, 13] {
        let response = client.call(version, &named(&["ids"], false)).await?;
        assert_eq!(
            find(&response, "ids").context("ids")?.topic_id,
            id,
            "v{version}"
        );
    }
    let v9 = client.call(9, &named(&["ids"], false)).await?;
    assert_eq!(
        find(&v9, "ids").context("ids")?.topic_id,
        Uuid::nil(),
        "v9 has no ids"
    );
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(id),
    ]));
    let response = client.call(12, &by_id).await?;
    let found = response.topics.first().context("a topic")?;
    assert_eq!(found.error_code.err(), None);
    assert_eq!(found.name.as_ref().map(|n| n.0.as_str()), Some("ids"));
    let unknown = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(Uuid::new_v4()),
    ]));
    let response = client.call(12, &unknown).await?;
    assert_eq!(
        response.topics.first().context("a topic")?.error_code.err(),
        Some(ErrorCode::UnknownTopicId)
    );
    Ok(())
}

#[tokio::test]
async fn metadata_cluster_id_is_stable_across_restarts() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let first = broker
        .client()
        .await?
        .call(12, &all_topics())
        .await?
        .cluster_id
        .context("cluster id at v12")?;
    assert_eq!(first.len(), 22, "Kafka-style base64 uuid: {first}");
    broker.restart().await?;
    let second = broker
        .client()
        .await?
        .call(2, &all_topics())
        .await?
        .cluster_id
        .context("cluster id at v2")?;
    assert_eq!(first, second);
    Ok(())
}
