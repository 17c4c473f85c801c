//! The cluster as the producer sees it: brokers and each partition's leader (Metadata).

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::Result;
use fjord_protocol::ErrorCode;

/// A topic's partitions and leaders, or why the broker would not describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicState {
    /// Leader node id per partition (index = partition id; -1 when unknown).
    Leaders(Vec<i32>),
    Error(ErrorCode),
}

/// One Metadata answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterMetadata {
    pub(crate) brokers: HashMap<i32, String>,
    pub(crate) topics: HashMap<String, TopicState>,
}

impl ClusterMetadata {
    /// The leader of a partition, when known.
    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        match self.topics.get(topic)? {
            TopicState::Leaders(leaders) => leaders
                .get(usize::try_from(partition).ok()?)
                .copied()
                .filter(|l| *l >= 0 && self.brokers.contains_key(l)),
            TopicState::Error(_) => None,
        }
    }
}

/// Asks `connection` about `topics` (auto-creation allowed, as the Java producer does).
pub(crate) async fn fetch(
    connection: &mut Connection,
    topics: &BTreeSet<String>,
) -> Result<ClusterMetadata> {
    let version = connection.version_of::<MetadataRequest>()?.min(12);
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    let response = connection.send_at(&request, version).await?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let mut out = HashMap::new();
    for topic in response.topics {
        let Some(name) = topic.name else { continue };
        let state = if topic.error_code != 0 {
            TopicState::Error(
                ErrorCode::try_from_code(topic.error_code).unwrap_or(ErrorCode::UnknownServerError),
            )
        } else {
            let count = topic
                .partitions
                .iter()
                .map(|p| p.partition_index + 1)
                .max()
                .unwrap_or(0);
            let mut leaders = vec![-1; usize::try_from(count).unwrap_or(0)];
            for p in &topic.partitions {
                if let Ok(i) = usize::try_from(p.partition_index) {
                    leaders[i] = if p.error_code == 0 || p.leader_id.0 >= 0 {
                        p.leader_id.0
                    } else {
                        -1
                    };
                }
            }
            TopicState::Leaders(leaders)
        };
        out.insert(name.0.to_string(), state);
    }
    Ok(ClusterMetadata {
        brokers,
        topics: out,
    })
}
