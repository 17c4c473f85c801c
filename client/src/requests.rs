//! Request builders shared by the admin client and the consumer (one place that knows how a
//! ListOffsets or OffsetCommit request is laid out by topic).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::TopicPartition;
use crate::consumer::IsolationLevel;

/// A protocol string.
pub(crate) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// ListOffsets of `partitions` at `timestamp` (-2 earliest, -1 latest, else ms).
pub(crate) fn list_offsets<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
    timestamp: i64,
    isolation: IsolationLevel,
) -> ListOffsetsRequest {
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp),
        );
    }
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire())
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, p)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(p)
                })
                .collect(),
        )
}

/// The member committing (an admin commit is generation -1, empty member id).
pub(crate) struct Committer<'a> {
    pub(crate) generation: i32,
    pub(crate) member_id: &'a str,
    pub(crate) instance_id: Option<&'a str>,
}

/// OffsetCommit of `offsets` for `group`.
pub(crate) fn offset_commit(
    group: &str,
    member: &Committer<'_>,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> OffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(s(member.member_id))
        .with_group_instance_id(member.instance_id.map(s))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, p)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(p)
                })
                .collect(),
        )
}
