//! OffsetCommit: offsets (with leader epoch and metadata) written to `__consumer_offsets`.
//! The group coordinator checks the committing member and generation; commits from outside
//! group management (generation -1, no member id: `assign()` consumers, admin tools) are
//! accepted while the group has no members.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use crate::broker::Broker;
use crate::group::{self, Event, Response};
use crate::offsets::CommittedOffset;

/// A topic and the error (if any) of each of its partitions.
type TopicErrors = (
    kafka_protocol::messages::TopicName,
    Vec<(i32, Option<ErrorCode>)>,
);

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let now = broker.now_ms();
    let group_error = if group.is_empty() {
        Some(ErrorCode::InvalidGroupId)
    } else {
        // The coordinator checks the member and generation (generation -1 with no member id is
        // a commit from outside group management, allowed while the group has no members).
        let event = |token| {
            Event::OffsetCommit(group::OffsetCommit {
                token,
                group_id: group.clone(),
                member_id: request.member_id.to_string(),
                generation: request.generation_id_or_member_epoch,
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            })
        };
        match broker.groups().request(broker, event).await {
            Some(Response::OffsetCommit(r)) => r.error,
            _ => Some(ErrorCode::CoordinatorNotAvailable),
        }
    };
    let offsets_topic = match group_error {
        None => broker.offsets_topic().map_err(|e| e.code),
        Some(code) => Err(code),
    };
    let mut to_write = Vec::new();
    let mut topics: Vec<TopicErrors> = Vec::new();
    for topic in &request.topics {
        let known = broker.topic(topic.name.0.as_str());
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            let code = if let Err(code) = &offsets_topic {
                Some(*code)
            } else if known
                .as_ref()
                .and_then(|t| t.partition(p.partition_index))
                .is_none()
            {
                Some(ErrorCode::UnknownTopicOrPartition)
            } else if metadata.len() > MAX_METADATA_BYTES {
                Some(ErrorCode::OffsetMetadataTooLarge)
            } else {
                let value = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp: now,
                };
                to_write.push(((topic.name.0.to_string(), p.partition_index), Some(value)));
                None
            };
            partitions.push((p.partition_index, code));
        }
        topics.push((topic.name.clone(), partitions));
    }
    if let (Ok(offsets_topic), false) = (&offsets_topic, to_write.is_empty())
        && let Err(e) = broker.offsets().write(offsets_topic, &group, to_write, now)
    {
        tracing::error!(group = %group, error = %e, "offset commit failed");
        for (_, partitions) in &mut topics {
            for (_, code) in partitions.iter_mut().filter(|(_, c)| c.is_none()) {
                *code = Some(ErrorCode::CoordinatorNotAvailable);
            }
        }
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code.map_or(0, |c| c.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
