//! Administration: topics, partitions, configs, records, offsets, groups and the cluster.
//!
//! Requests go to the bootstrap broker, and group requests to the group's coordinator (found
//! with FindCoordinator). ListOffsets and DeleteRecords go to the bootstrap broker too, which
//! is every partition's leader on a single node; routing them by leader comes with the
//! cluster (issue 5).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ConsumerProtocolAssignment,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    ElectLeadersRequest, FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest,
    ListGroupsRequest, ListPartitionReassignmentsRequest, MetadataRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Request};
use tokio::sync::Mutex;

use crate::connection::Connection;
use crate::consumer::IsolationLevel;
use crate::error::{Error, Result};
use crate::requests::{self, s};

/// DescribeConfigs' resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// The state (`Stable`, `Empty`, ...), empty when the broker does not report it.
    pub state: String,
    pub protocol_type: String,
}

/// A member of a group and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Decoded from the consumer protocol's assignment (empty for other protocol types).
    pub partitions: Vec<TopicPartition>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// A topic as Metadata and DescribeConfigs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub internal: bool,
    /// `(partition, leader, replicas, in-sync replicas)`.
    pub partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
    /// Configs set on the topic (source TOPIC_CONFIG).
    pub overrides: BTreeMap<String, String>,
}

/// The cluster as DescribeCluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// The controller's broker id (-1 when unknown).
    pub controller_id: i32,
    /// `(broker id, host, port, rack)`, by id.
    pub brokers: Vec<(i32, String, i32, Option<String>)>,
}

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// An admin client.
#[derive(Debug)]
pub struct Admin {
    bootstrap: String,
    connection: Mutex<Connection>,
}

impl Admin {
    /// Connects to a bootstrap broker (`host:port`).
    pub async fn connect(bootstrap: &str) -> Result<Self> {
        let connection = Connection::connect(bootstrap, "fjord-admin").await?;
        Ok(Admin {
            bootstrap: bootstrap.to_string(),
            connection: Mutex::new(connection),
        })
    }

    /// Sends `request` to the bootstrap broker at the highest version both sides serve (at
    /// most `max`). A connection that failed (the broker restarted, say) is replaced and the
    /// request sent once more.
    async fn call<R: Request>(&self, request: &R, max: i16) -> Result<R::Response> {
        let mut conn = self.connection.lock().await;
        let version = conn.version_of::<R>()?.min(max);
        match conn.send_at(request, version).await {
            Err(Error::Io { .. } | Error::Timeout { .. }) => {
                tracing::debug!(bootstrap = %self.bootstrap, "admin connection failed; reconnecting");
                *conn = Connection::connect(&self.bootstrap, "fjord-admin").await?;
                let version = conn.version_of::<R>()?.min(max);
                conn.send_at(request, version).await
            }
            other => other,
        }
    }

    /// A connection to the coordinator of `group`.
    async fn coordinator(&self, group: &str) -> Result<Connection> {
        let request = FindCoordinatorRequest::default().with_key(s(group));
        let response = self.call(&request, 3).await?;
        if response.error_code != 0 {
            return Err(Error::broker(
                format!("finding the coordinator of group {group}"),
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        let addr = format!("{}:{}", response.host.as_str(), response.port);
        Connection::connect(&addr, "fjord-admin").await
    }

    /// Every group the broker knows.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let response = self.call(&ListGroupsRequest::default(), i16::MAX).await?;
        if response.error_code != 0 {
            return Err(Error::broker("listing groups", response.error_code, None));
        }
        let mut groups: Vec<GroupListing> = response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// Describes one group; a group the broker does not know is `Dead` with no members.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let mut conn = self.coordinator(group).await?;
        let (response, _) = conn
            .send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))
            .await?;
        let described = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol {
                addr: conn.addr().to_string(),
                reason: "empty DescribeGroups answer".into(),
            })?;
        if described.error_code != 0
            && described.error_code != kafka_protocol::error::ResponseError::GroupIdNotFound.code()
        {
            return Err(Error::broker(
                format!("describing group {group}"),
                described.error_code,
                described.error_message.map(|m| m.to_string()),
            ));
        }
        let consumer = described.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members: described
                .members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    partitions: if consumer {
                        decode_assignment(m.member_assignment)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }

    /// The group's committed offsets.
    pub async fn committed_offsets(&self, group: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut conn = self.coordinator(group).await?;
        let version = conn.version_of::<OffsetFetchRequest>()?.min(7);
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None);
        let response = conn.send_at(&request, version).await?;
        if response.error_code != 0 {
            return Err(Error::broker(
                format!("fetching the offsets of group {group}"),
                response.error_code,
                None,
            ));
        }
        let mut offsets = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    offsets.insert(
                        (topic.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(offsets)
    }

    /// Sets the group's committed offsets (the group must have no active members).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let mut conn = self.coordinator(group).await?;
        let request = requests::offset_commit(
            group,
            &requests::Committer {
                generation: -1,
                member_id: "",
                instance_id: None,
            },
            offsets,
        );
        let (response, _) = conn.send(&request).await?;
        for topic in response.topics {
            for p in topic.partitions {
                if p.error_code != 0 {
                    return Err(Error::broker(
                        format!(
                            "committing {}-{} for group {group}",
                            topic.name.0.as_str(),
                            p.partition_index
                        ),
                        p.error_code,
                        None,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Deletes a group (it must have no active members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let mut conn = self.coordinator(group).await?;
        let (response, _) = conn
            .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]))
            .await?;
        match response.results.first() {
            Some(r) if r.error_code != 0 => Err(Error::broker(
                format!("deleting group {group}"),
                r.error_code,
                None,
            )),
            _ => Ok(()),
        }
    }

    /// The partitions of a topic.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let described = self.metadata(Some(topic)).await?;
        let found = described
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol {
                addr: self.bootstrap.clone(),
                reason: "empty Metadata answer".into(),
            })?;
        // `metadata` sorts partitions by index.
        Ok(found.partitions.iter().map(|(p, ..)| *p).collect())
    }

    /// ListOffsets for partitions; a partition with no matching record maps to `None`.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let timestamp = match spec {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        };
        let request =
            requests::list_offsets(partitions, timestamp, IsolationLevel::ReadUncommitted);
        let response = self.call(&request, 7).await?;
        let mut out = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                if p.error_code != 0 {
                    return Err(Error::broker(
                        format!(
                            "listing offsets of {}-{}",
                            topic.name.0.as_str(),
                            p.partition_index
                        ),
                        p.error_code,
                        None,
                    ));
                }
                out.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    (p.offset >= 0).then_some(p.offset),
                );
            }
        }
        Ok(out)
    }

    /// Creates a topic (`partitions` and `replication` of -1 take the broker's defaults).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        let response = self.call(&request, i16::MAX).await?;
        match response.topics.first() {
            Some(t) if t.error_code != 0 => Err(Error::broker(
                format!("creating topic {name}"),
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )),
            _ => Ok(()),
        }
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(s(name))])
            .with_timeout_ms(30_000);
        let response = self.call(&request, 5).await?;
        match response.responses.first() {
            Some(r) if r.error_code != 0 => Err(Error::broker(
                format!("deleting topic {name}"),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )),
            _ => Ok(()),
        }
    }

    /// Every topic, sorted (internal ones included, flagged).
    pub async fn list_topics(&self) -> Result<Vec<TopicDescription>> {
        self.metadata(None).await
    }

    /// One topic with its partitions and config overrides.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let mut topic = self
            .metadata(Some(name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol {
                addr: self.bootstrap.clone(),
                reason: "empty Metadata answer".into(),
            })?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ]);
        let response = self.call(&request, i16::MAX).await?;
        for result in response.results {
            if result.error_code != 0 {
                return Err(Error::broker(
                    format!("describing the configs of {name}"),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
            for config in result.configs.into_iter().filter(|c| c.config_source == 1) {
                topic.overrides.insert(
                    config.name.to_string(),
                    config.value.map(|v| v.to_string()).unwrap_or_default(),
                );
            }
        }
        Ok(topic)
    }

    /// Sets (`Some`) or removes (`None`) topic configs (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<()> {
        let configs = changes
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(if v.is_some() { 0 } else { 1 })
                    .with_value(v.as_deref().map(s))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(name))
                .with_configs(configs),
        ]);
        let response = self.call(&request, i16::MAX).await?;
        match response.responses.first() {
            Some(r) if r.error_code != 0 => Err(Error::broker(
                format!("altering the configs of {name}"),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )),
            _ => Ok(()),
        }
    }

    async fn metadata(&self, topic: Option<&str>) -> Result<Vec<TopicDescription>> {
        let topics =
            topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))]);
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        let response = self.call(&request, 12).await?;
        let mut out = Vec::new();
        for t in response.topics {
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(Error::broker(
                    format!("looking up topic {name}"),
                    t.error_code,
                    None,
                ));
            }
            let mut partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                        p.isr_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            partitions.sort();
            out.push(TopicDescription {
                name,
                internal: t.is_internal,
                partitions,
                overrides: BTreeMap::new(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Grows a topic to `total` partitions (CreatePartitions).
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_count(total)
                    .with_assignments(None),
            ])
            .with_timeout_ms(30_000);
        let response = self.call(&request, 3).await?;
        match response.results.first() {
            Some(r) if r.error_code != 0 => Err(Error::broker(
                format!("adding partitions to {topic}"),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )),
            _ => Ok(()),
        }
    }

    /// Deletes the records before each offset (DeleteRecords; -1 means the high watermark),
    /// returning each partition's new log start offset.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in before {
            by_topic.entry(topic).or_default().push(
                DeleteRecordsPartition::default()
                    .with_partition_index(*partition)
                    .with_offset(*offset),
            );
        }
        let request = DeleteRecordsRequest::default()
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, p)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(p)
                    })
                    .collect(),
            )
            .with_timeout_ms(30_000);
        let response = self.call(&request, 2).await?;
        let mut out = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                let tp = (topic.name.0.to_string(), p.partition_index);
                if p.error_code != 0 {
                    return Err(Error::broker(
                        format!("deleting records of {}-{}", tp.0, tp.1),
                        p.error_code,
                        None,
                    ));
                }
                out.insert(tp, p.low_watermark);
            }
        }
        Ok(out)
    }

    /// The cluster id, controller and brokers (DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let response = self.call(&DescribeClusterRequest::default(), 1).await?;
        if response.error_code != 0 {
            return Err(Error::broker(
                "describing the cluster",
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        let mut brokers: Vec<(i32, String, i32, Option<String>)> = response
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.broker_id.0,
                    b.host.to_string(),
                    b.port,
                    b.rack.map(|r| r.to_string()),
                )
            })
            .collect();
        brokers.sort();
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller_id: response.controller_id.0,
            brokers,
        })
    }
}

/// A partition reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// The replicas now: old and new together while data is copied.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Admin {
    /// Preferred-leader election (ElectLeaders): for `partitions`, or every partition when
    /// `None`. Returns each partition's outcome: `None` when its leader moved or was already
    /// preferred, else the error.
    pub async fn elect_preferred_leaders(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<(String, i32, Option<String>)>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let topic_partitions = partitions.map(|ps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(30_000);
        let response = self.call(&request, 1).await?;
        if response.error_code != 0 {
            return Err(Error::broker("electing leaders", response.error_code, None));
        }
        let mut out = Vec::new();
        for topic in response.replica_election_results {
            for p in topic.partition_result {
                // ELECTION_NOT_NEEDED (84): already led by the preferred replica.
                let error = (p.error_code != 0 && p.error_code != 84).then(|| {
                    let code = kafka_protocol::error::ResponseError::try_from_code(p.error_code)
                        .map_or_else(|| format!("error {}", p.error_code), |c| format!("{c:?}"));
                    match p.error_message {
                        Some(m) => format!("{code}: {m}"),
                        None => code,
                    }
                });
                out.push((topic.topic.0.to_string(), p.partition_id, error));
            }
        }
        Ok(out)
    }

    /// Moves a partition's replicas to `replicas` (AlterPartitionReassignments); `None`
    /// cancels a reassignment in progress.
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
    ) -> Result<()> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(partition)
                            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                    ]),
            ]);
        let response = self.call(&request, 0).await?;
        if response.error_code != 0 {
            return Err(Error::broker(
                format!("reassigning {topic}-{partition}"),
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        for t in response.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(Error::broker(
                        format!("reassigning {topic}-{partition}"),
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reassignments in progress (ListPartitionReassignments).
    pub async fn list_reassignments(&self) -> Result<Vec<Reassignment>> {
        let response = self
            .call(
                &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
                0,
            )
            .await?;
        if response.error_code != 0 {
            return Err(Error::broker(
                "listing reassignments",
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect();
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| Reassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }
}

/// Decodes a consumer-protocol assignment (`version: i16` then the struct) into partitions.
fn decode_assignment(bytes: Bytes) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3)) {
        Ok(assignment) => assignment
            .assigned_partitions
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
