//! The classic group protocol end to end: JoinGroup (with the MEMBER_ID_REQUIRED round trip),
//! SyncGroup, Heartbeat, LeaveGroup, generation-checked commits, and group state kept in
//! `__consumer_offsets` across restarts.

use anyhow::Result;
use bytes::Bytes;
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DescribeGroupsRequest, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest,
};

use crate::harness::{Client, TestBroker, create_topic, s, topic};

const NO_DELAY: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn join(group: &str, member_id: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"sub")),
        ])
}

/// Joins as a new dynamic member (v5: MEMBER_ID_REQUIRED first), returning the final response.
async fn join_new(client: &mut Client, group: &str) -> Result<JoinGroupResponse> {
    let first = client.call(5, &join(group, "", None)).await?;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    assert!(
        !first.member_id.is_empty(),
        "the broker hands out the member id"
    );
    client
        .call(5, &join(group, first.member_id.as_str(), None))
        .await
}

fn sync(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

fn heartbeat(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
}

async fn state(client: &mut Client, group: &str) -> Result<String> {
    let described = client
        .call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
        )
        .await?;
    Ok(described.groups[0].group_state.to_string())
}

#[tokio::test]
async fn a_member_joins_syncs_heartbeats_and_leaves() -> Result<()> {
    let broker = TestBroker::with_overrides(NO_DELAY).await?;
    let mut client = broker.client().await?;
    let joined = join_new(&mut client, "g").await?;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1, "the leader sees the members");
    assert_eq!(
        joined.protocol_name.as_ref().map(|p| p.to_string()),
        Some("range".into())
    );
    let member = joined.member_id.to_string();
    assert_eq!(state(&mut client, "g").await?, "CompletingRebalance");
    let synced = client
        .call(4, &sync("g", &member, 1, &[(&member, b"assignment-1")]))
        .await?;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assignment-1");
    assert_eq!(state(&mut client, "g").await?, "Stable");
    assert_eq!(
        client
            .call(3, &heartbeat("g", &member, 1))
            .await?
            .error_code,
        0
    );
    assert_eq!(
        client
            .call(3, &heartbeat("g", &member, 0))
            .await?
            .error_code,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        client
            .call(3, &heartbeat("g", "nobody", 1))
            .await?
            .error_code,
        ErrorCode::UnknownMemberId.code()
    );
    let left = client
        .call(
            3,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&member))]),
        )
        .await?;
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(state(&mut client, "g").await?, "Empty");
    Ok(())
}

#[tokio::test]
async fn a_second_member_triggers_a_rebalance_and_both_get_assignments() -> Result<()> {
    let broker = TestBroker::with_overrides(NO_DELAY).await?;
    let mut a = broker.client().await?;
    let mut b = broker.client().await?;
    let first = join_new(&mut a, "g").await?;
    let leader = first.member_id.to_string();
    a.call(4, &sync("g", &leader, 1, &[(&leader, b"all")]))
        .await?;
    // b joins: its JoinGroup waits until a rejoins (a learns of it from its heartbeat).
    let b_first = b.call(5, &join("g", "", None)).await?;
    let b_id = b_first.member_id.to_string();
    let b_join = tokio::spawn(async move {
        let response = b.call(5, &join("g", &b_id, None)).await;
        (b, b_id, response)
    });
    let mut rebalancing = false;
    for _ in 0..50 {
        if a.call(3, &heartbeat("g", &leader, 1)).await?.error_code
            == ErrorCode::RebalanceInProgress.code()
        {
            rebalancing = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rebalancing, "the leader is told to rejoin");
    let a_join = a.call(5, &join("g", &leader, None)).await?;
    let (mut b, b_id, b_join) = b_join.await?;
    let b_join = b_join?;
    assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
    assert_eq!(a_join.members.len(), 2, "the leader gets both members");
    assert!(b_join.members.is_empty(), "followers get no member list");
    let follower_sync = tokio::spawn(async move { b.call(4, &sync("g", &b_id, 2, &[])).await });
    let leader_sync = a
        .call(
            4,
            &sync(
                "g",
                &leader,
                2,
                &[
                    (&leader, b"half-a"),
                    (&b_join.member_id.to_string(), b"half-b"),
                ],
            ),
        )
        .await?;
    assert_eq!(&leader_sync.assignment[..], b"half-a");
    let follower = follower_sync.await??;
    assert_eq!(&follower.assignment[..], b"half-b");
    Ok(())
}

#[tokio::test]
async fn commits_are_checked_against_the_generation() -> Result<()> {
    let broker = TestBroker::with_overrides(NO_DELAY).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "t", 1, &[]).await?;
    let joined = join_new(&mut client, "g").await?;
    let member = joined.member_id.to_string();
    client
        .call(4, &sync("g", &member, 1, &[(&member, b"x")]))
        .await?;
    let commit = |generation: i32, member: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5),
                    ]),
            ])
    };
    let ok = client.call(8, &commit(1, &member)).await?;
    assert_eq!(ok.topics[0].partitions[0].error_code, 0);
    let stale = client.call(8, &commit(0, &member)).await?;
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        ErrorCode::IllegalGeneration.code()
    );
    let outsider = client.call(8, &commit(-1, "")).await?;
    assert_ne!(
        outsider.topics[0].partitions[0].error_code, 0,
        "a simple commit into an active group is refused"
    );
    Ok(())
}

#[tokio::test]
async fn a_static_members_group_survives_a_restart() -> Result<()> {
    let mut broker = TestBroker::with_overrides(NO_DELAY).await?;
    let mut client = broker.client().await?;
    let joined = client.call(5, &join("g", "", Some("instance-1"))).await?;
    assert_eq!(
        joined.error_code, 0,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let member = joined.member_id.to_string();
    client
        .call(4, &sync("g", &member, 1, &[(&member, b"mine")]))
        .await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(
        state(&mut client, "g").await?,
        "Stable",
        "loaded from __consumer_offsets"
    );
    assert_eq!(
        client
            .call(3, &heartbeat("g", &member, 1))
            .await?
            .error_code,
        0,
        "the member carries on"
    );
    // The same instance rejoining with a new member id keeps its assignment without a rebalance.
    let rejoined = client.call(5, &join("g", "", Some("instance-1"))).await?;
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, 1, "no generation bump");
    let synced = client
        .call(
            4,
            &sync("g", rejoined.member_id.as_str(), 1, &[])
                .with_group_instance_id(Some(s("instance-1"))),
        )
        .await?;
    assert_eq!(&synced.assignment[..], b"mine");
    let fenced = client
        .call(
            3,
            &heartbeat("g", &member, 1).with_group_instance_id(Some(s("instance-1"))),
        )
        .await?;
    assert_eq!(fenced.error_code, ErrorCode::FencedInstanceId.code());
    Ok(())
}
