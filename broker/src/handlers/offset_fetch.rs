//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+); a null topic list asks
//! for every committed partition of the group. Partitions without a commit answer offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName};

use super::{topic_name, wire};
use crate::broker::Broker;
use crate::offsets::CommittedOffset;

/// One group's answer: `(topic, [(partition, committed offset or none)])`.
type Answer = Vec<(TopicName, Vec<(i32, Option<CommittedOffset>)>)>;

fn lookup(broker: &Broker, group: &str, topics: Option<Vec<(TopicName, Vec<i32>)>>) -> Answer {
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| (p, broker.offsets().get(group, name.0.as_str(), p)))
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut by_topic: Answer = Vec::new();
            for ((topic, partition), offset) in broker.offsets().group(group) {
                match by_topic.last_mut() {
                    Some((name, list)) if name.0.as_str() == topic => {
                        list.push((partition, Some(offset)))
                    }
                    _ => by_topic.push((topic_name(&topic), vec![(partition, Some(offset))])),
                }
            }
            by_topic
        }
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let metadata =
        |o: &Option<CommittedOffset>| Some(wire(o.as_ref().map_or("", |o| o.metadata.as_str())));
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|t| {
                    t.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let answer = lookup(broker, g.group_id.0.as_str(), topics);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(
                        answer
                            .into_iter()
                            .map(|(name, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(
                                        parts
                                            .iter()
                                            .map(|(p, o)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(
                                                        o.as_ref().map_or(-1, |o| o.offset),
                                                    )
                                                    .with_committed_leader_epoch(
                                                        o.as_ref().map_or(-1, |o| o.leader_epoch),
                                                    )
                                                    .with_metadata(metadata(o))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|t| {
        t.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let answer = lookup(broker, request.group_id.0.as_str(), topics);
    let topics = answer
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, o)| {
                            let mut partition = OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset))
                                .with_metadata(metadata(o));
                            if version >= 5 {
                                partition.committed_leader_epoch =
                                    o.as_ref().map_or(-1, |o| o.leader_epoch);
                            }
                            partition
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}
