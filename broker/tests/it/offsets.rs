//! FindCoordinator, OffsetCommit and OffsetFetch: committed offsets live in
//! `__consumer_offsets` and survive restarts and crashes.

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, MetadataRequest, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest,
};

use crate::harness::{Client, METADATA_V, TestBroker, create_topic, s, topic};

fn commit(
    group: &str,
    name: &str,
    partition: i32,
    offset: i64,
    epoch: i32,
    metadata: &str,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_committed_metadata(Some(s(metadata))),
                ]),
        ])
}

fn commit_code(response: &OffsetCommitResponse) -> Result<i16> {
    Ok(response
        .topics
        .first()
        .context("topic")?
        .partitions
        .first()
        .context("partition")?
        .error_code)
}

/// `(offset, leader epoch, metadata)` committed by `group` for one partition, via OffsetFetch v7.
async fn fetch_v7(
    client: &mut Client,
    group: &str,
    name: &str,
    partition: i32,
) -> Result<(i64, i32, String)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic(name))
                .with_partition_indexes(vec![partition]),
        ]));
    let response = client.call(7, &request).await?;
    let p = response
        .topics
        .first()
        .context("topic")?
        .partitions
        .first()
        .context("partition")?;
    Ok((
        p.committed_offset,
        p.committed_leader_epoch,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    ))
}

#[tokio::test]
async fn find_coordinator_names_this_broker_single_and_batched() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let single = client
        .call(3, &FindCoordinatorRequest::default().with_key(s("g1")))
        .await?;
    assert_eq!(single.error_code, 0);
    assert_eq!(single.port, i32::from(broker.addr().port()));
    let batched = client
        .call(
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2"), s("")]),
        )
        .await?;
    assert_eq!(batched.coordinators.len(), 3);
    assert!(
        batched.coordinators[..2]
            .iter()
            .all(|c| c.error_code == 0 && c.port == i32::from(broker.addr().port()))
    );
    assert_eq!(
        batched.coordinators[2].error_code,
        ErrorCode::InvalidGroupId.code()
    );
    let txn = client
        .call(
            3,
            &FindCoordinatorRequest::default()
                .with_key(s("t"))
                .with_key_type(1),
        )
        .await?;
    assert_eq!(txn.error_code, ErrorCode::CoordinatorNotAvailable.code());
    Ok(())
}

#[tokio::test]
async fn committed_offsets_read_back_with_epoch_and_metadata() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "orders", 2, &[]).await?;
    let response = client
        .call(8, &commit("g1", "orders", 1, 42, 3, "checkpoint"))
        .await?;
    assert_eq!(commit_code(&response)?, 0);
    assert_eq!(
        fetch_v7(&mut client, "g1", "orders", 1).await?,
        (42, 3, "checkpoint".into())
    );
    assert_eq!(
        fetch_v7(&mut client, "g1", "orders", 0).await?.0,
        -1,
        "no commit: -1"
    );
    assert_eq!(
        fetch_v7(&mut client, "other", "orders", 1).await?.0,
        -1,
        "offsets are per group"
    );
    // A later commit replaces the earlier one; v2 carries no leader epoch.
    let response = client
        .call(2, &commit("g1", "orders", 1, 50, -1, ""))
        .await?;
    assert_eq!(commit_code(&response)?, 0);
    assert_eq!(fetch_v7(&mut client, "g1", "orders", 1).await?.0, 50);
    // v8: several groups at once, and a null topic list means every committed partition.
    client.call(8, &commit("g2", "orders", 0, 7, 0, "")).await?;
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g1")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g2")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 1]),
            ])),
    ]);
    let response = client.call(8, &request).await?;
    let g1 = &response.groups[0].topics;
    assert_eq!(g1.len(), 1);
    assert_eq!(
        g1[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect::<Vec<_>>(),
        vec![(1, 50)]
    );
    let g2: Vec<i64> = response.groups[1].topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(g2, vec![7, -1]);
    Ok(())
}

#[tokio::test]
async fn committed_offsets_survive_clean_restarts_and_crashes() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "events", 1, &[]).await?;
    client
        .call(8, &commit("g", "events", 0, 10, 0, "a"))
        .await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(
        fetch_v7(&mut client, "g", "events", 0).await?,
        (10, 0, "a".into())
    );
    client
        .call(8, &commit("g", "events", 0, 20, 0, "b"))
        .await?;
    broker.crash().await?;
    broker.start_again().await?;
    let mut client = broker.client().await?;
    assert_eq!(
        fetch_v7(&mut client, "g", "events", 0).await?,
        (20, 0, "b".into())
    );
    Ok(())
}

#[tokio::test]
async fn bad_commits_get_kafkas_error_codes() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "t", 1, &[]).await?;
    let unknown = client.call(8, &commit("g", "t", 5, 1, 0, "")).await?;
    assert_eq!(
        commit_code(&unknown)?,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let huge = client
        .call(8, &commit("g", "t", 0, 1, 0, &"m".repeat(5_000)))
        .await?;
    assert_eq!(
        commit_code(&huge)?,
        ErrorCode::OffsetMetadataTooLarge.code()
    );
    let no_group = client.call(8, &commit("", "t", 0, 1, 0, "")).await?;
    assert_eq!(commit_code(&no_group)?, ErrorCode::InvalidGroupId.code());
    let member = client
        .call(
            8,
            &commit("g", "t", 0, 1, 0, "")
                .with_generation_id_or_member_epoch(3)
                .with_member_id(s("m-1")),
        )
        .await?;
    assert_eq!(commit_code(&member)?, ErrorCode::UnknownMemberId.code());
    assert_eq!(
        fetch_v7(&mut client, "g", "t", 0).await?.0,
        -1,
        "nothing was committed"
    );
    Ok(())
}

#[tokio::test]
async fn offsets_topic_is_internal_and_not_writable_by_clients() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "t", 1, &[]).await?;
    client.call(8, &commit("g", "t", 0, 1, 0, "")).await?;
    let metadata = client
        .call(METADATA_V, &MetadataRequest::default().with_topics(None))
        .await?;
    let offsets = metadata
        .topics
        .iter()
        .find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.0.as_str() == "__consumer_offsets")
        })
        .context("offsets topic listed")?;
    assert!(offsets.is_internal);
    assert_eq!(offsets.partitions.len(), 50);
    let produce = crate::harness::produce(
        &mut client,
        "__consumer_offsets",
        0,
        fjord_protocol::batch::testing::batch(0, 1, 0, b"x"),
    )
    .await?;
    assert_eq!(produce.error_code, ErrorCode::InvalidTopicException.code());
    Ok(())
}

#[tokio::test]
async fn groups_with_offsets_are_listed_described_and_deletable() -> Result<()> {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::{
        DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetDeleteRequest,
    };

    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "t", 2, &[]).await?;
    client.call(8, &commit("keep", "t", 0, 1, 0, "")).await?;
    client.call(8, &commit("keep", "t", 1, 2, 0, "")).await?;
    client.call(8, &commit("drop", "t", 0, 3, 0, "")).await?;

    let listed = client.call(4, &ListGroupsRequest::default()).await?;
    let mut names: Vec<(String, String)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("drop".into(), "Empty".into()),
            ("keep".into(), "Empty".into())
        ]
    );
    let stable_only = client
        .call(
            4,
            &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
        )
        .await?;
    assert!(stable_only.groups.is_empty());

    let described = client
        .call(
            6,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("keep")), GroupId(s("nope"))]),
        )
        .await?;
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
    assert_eq!(
        described.groups[1].error_code,
        ErrorCode::GroupIdNotFound.code()
    );

    // OffsetDelete removes one partition's offset; DeleteGroups removes a whole group.
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("keep")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(1),
                ]),
        ]);
    let response = client.call(0, &request).await?;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    let deleted = client
        .call(
            2,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s("drop")), GroupId(s("never"))]),
        )
        .await?;
    assert_eq!(deleted.results[0].error_code, 0);
    assert_eq!(
        deleted.results[1].error_code,
        ErrorCode::GroupIdNotFound.code()
    );

    // The deletions are tombstones in __consumer_offsets: they hold after a restart too.
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(fetch_v7(&mut client, "keep", "t", 0).await?.0, 1);
    assert_eq!(fetch_v7(&mut client, "keep", "t", 1).await?.0, -1);
    assert_eq!(fetch_v7(&mut client, "drop", "t", 0).await?.0, -1);
    let listed = client.call(4, &ListGroupsRequest::default()).await?;
    assert_eq!(
        listed
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect::<Vec<_>>(),
        vec!["keep".to_string()]
    );
    Ok(())
}
