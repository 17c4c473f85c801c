//! The cluster as the consumer sees it: metadata (partition leaders), a connection per leader,
//! Fetch and ListOffsets routed to leaders.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::config::IsolationLevel;
use super::record::{Aborted, ConsumerRecord, decode_partition};
use crate::admin::TopicPartition;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// The highest versions used: Fetch 12 (topics by name), ListOffsets 7, Metadata 12.
const FETCH_MAX_V: i16 = 12;
const LIST_OFFSETS_MAX_V: i16 = 7;
const METADATA_MAX_V: i16 = 12;

pub(crate) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Connects to the first reachable bootstrap server.
pub(crate) async fn connect_any(servers: &[String], client_id: &str) -> Result<Connection> {
    let mut last = None;
    for server in servers {
        match Connection::connect(server, client_id).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                tracing::debug!(server, error = %e, "bootstrap server unreachable");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Protocol {
        addr: String::new(),
        reason: "bootstrap.servers is empty".into(),
    }))
}

/// What one fetch round produced.
#[derive(Debug, Default)]
pub(crate) struct FetchOutcome {
    pub(crate) records: Vec<ConsumerRecord>,
    /// New positions of partitions that advanced.
    pub(crate) positions: BTreeMap<TopicPartition, i64>,
    /// Partitions whose position is outside the log.
    pub(crate) out_of_range: Vec<TopicPartition>,
    /// Leadership moved or a topic is unknown: refresh metadata.
    pub(crate) stale_metadata: bool,
}

/// Metadata and leader connections.
#[derive(Debug)]
pub(crate) struct Cluster {
    servers: Vec<String>,
    client_id: String,
    bootstrap: Connection,
    brokers: HashMap<i32, String>,
    leaders: HashMap<TopicPartition, i32>,
    partition_counts: BTreeMap<String, i32>,
    connections: HashMap<i32, Connection>,
}

impl Cluster {
    pub(crate) async fn connect(servers: &[String], client_id: &str) -> Result<Self> {
        let bootstrap = connect_any(servers, client_id).await?;
        Ok(Cluster {
            servers: servers.to_vec(),
            client_id: client_id.to_string(),
            bootstrap,
            brokers: HashMap::new(),
            leaders: HashMap::new(),
            partition_counts: BTreeMap::new(),
            connections: HashMap::new(),
        })
    }

    /// Reloads metadata of `topics`; unknown topics are left without partitions.
    pub(crate) async fn refresh(
        &mut self,
        topics: impl IntoIterator<Item = &String>,
    ) -> Result<()> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let response = match self.metadata(&request).await {
            Ok(r) => r,
            Err(_) => {
                // The bootstrap connection may be gone: reconnect once.
                self.bootstrap = connect_any(&self.servers, &self.client_id).await?;
                self.metadata(&request).await?
            }
        };
        for broker in response.brokers {
            self.brokers.insert(
                broker.node_id.0,
                format!("{}:{}", broker.host.as_str(), broker.port),
            );
        }
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if topic.error_code != 0 {
                tracing::debug!(topic = %name, code = topic.error_code, "topic metadata error");
                self.partition_counts.remove(&name);
                continue;
            }
            self.partition_counts
                .insert(name.clone(), topic.partitions.len() as i32);
            for p in topic.partitions {
                self.leaders
                    .insert((name.clone(), p.partition_index), p.leader_id.0);
            }
        }
        Ok(())
    }

    async fn metadata(
        &mut self,
        request: &MetadataRequest,
    ) -> Result<kafka_protocol::messages::MetadataResponse> {
        let version = self
            .bootstrap
            .version_of::<MetadataRequest>()?
            .min(METADATA_MAX_V);
        self.bootstrap.send_at(request, version).await
    }

    /// Partition counts of the topics metadata knows.
    pub(crate) fn partition_counts(&self) -> &BTreeMap<String, i32> {
        &self.partition_counts
    }

    /// Groups partitions by leader, refreshing metadata for partitions without one.
    async fn by_leader<T: Clone>(
        &mut self,
        items: &[(TopicPartition, T)],
    ) -> Result<BTreeMap<i32, Vec<(TopicPartition, T)>>> {
        if items.iter().any(|(tp, _)| !self.leaders.contains_key(tp)) {
            let topics: std::collections::BTreeSet<String> =
                items.iter().map(|(tp, _)| tp.0.clone()).collect();
            self.refresh(&topics).await?;
        }
        let mut out: BTreeMap<i32, Vec<(TopicPartition, T)>> = BTreeMap::new();
        for (tp, value) in items {
            match self.leaders.get(tp) {
                Some(&leader) if leader >= 0 => out
                    .entry(leader)
                    .or_default()
                    .push((tp.clone(), value.clone())),
                _ => {
                    return Err(Error::broker(
                        format!("finding the leader of {}-{}", tp.0, tp.1),
                        ErrorCode::UnknownTopicOrPartition.code(),
                        None,
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn leader(&mut self, node: i32) -> Result<&mut Connection> {
        if !self.connections.contains_key(&node) {
            let addr = self
                .brokers
                .get(&node)
                .cloned()
                .ok_or_else(|| Error::Protocol {
                    addr: String::new(),
                    reason: format!("metadata names no address for broker {node}"),
                })?;
            let conn = Connection::connect(&addr, &self.client_id).await?;
            self.connections.insert(node, conn);
        }
        Ok(self.connections.get_mut(&node).expect("inserted above"))
    }

    /// ListOffsets at `timestamp` (-2 earliest, -1 latest, else ms); `None` where no record
    /// is at or after the timestamp.
    pub(crate) async fn list_offsets(
        &mut self,
        partitions: &[TopicPartition],
        timestamp: i64,
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let items: Vec<(TopicPartition, ())> =
            partitions.iter().map(|tp| (tp.clone(), ())).collect();
        let mut out = BTreeMap::new();
        for (leader, list) in self.by_leader(&items).await? {
            let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for ((topic, partition), ()) in &list {
                by_topic.entry(topic).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(*partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                );
            }
            let request = ListOffsetsRequest::default()
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
                );
            let conn = self.leader(leader).await?;
            let version = conn
                .version_of::<ListOffsetsRequest>()?
                .min(LIST_OFFSETS_MAX_V);
            let response = match conn.send_at(&request, version).await {
                Ok(r) => r,
                Err(e) => {
                    self.connections.remove(&leader);
                    return Err(e);
                }
            };
            for topic in response.topics {
                for p in topic.partitions {
                    let tp = (topic.name.0.to_string(), p.partition_index);
                    if p.error_code != 0 {
                        self.leaders.remove(&tp);
                        return Err(Error::broker(
                            format!("listing offsets of {}-{}", tp.0, tp.1),
                            p.error_code,
                            None,
                        ));
                    }
                    out.insert(tp, (p.offset >= 0).then_some(p.offset));
                }
            }
        }
        Ok(out)
    }

    /// One Fetch per leader of `positions`.
    pub(crate) async fn fetch(
        &mut self,
        positions: &[(TopicPartition, i64)],
        max_wait: Duration,
        min_bytes: i32,
        partition_max_bytes: i32,
        isolation: IsolationLevel,
    ) -> Result<FetchOutcome> {
        let mut outcome = FetchOutcome::default();
        let groups = self.by_leader(positions).await?;
        let wait = max_wait / (groups.len().max(1) as u32);
        for (leader, list) in groups {
            let wanted: HashMap<TopicPartition, i64> = list.iter().cloned().collect();
            let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
            for ((topic, partition), offset) in &list {
                by_topic.entry(topic).or_default().push(
                    FetchPartition::default()
                        .with_partition(*partition)
                        .with_fetch_offset(*offset)
                        .with_log_start_offset(-1)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_partition_max_bytes(partition_max_bytes),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
                .with_min_bytes(min_bytes)
                .with_max_bytes(50 * 1024 * 1024)
                .with_isolation_level(isolation.wire())
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, p)| {
                            FetchTopic::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(p)
                        })
                        .collect(),
                );
            let conn = self.leader(leader).await?;
            let version = conn.version_of::<FetchRequest>()?.min(FETCH_MAX_V);
            let response = match conn.send_at(&request, version).await {
                Ok(r) => r,
                Err(e) => {
                    self.connections.remove(&leader);
                    outcome.stale_metadata = true;
                    tracing::debug!(leader, error = %e, "fetch failed");
                    continue;
                }
            };
            if response.error_code != 0 {
                return Err(Error::broker("fetching", response.error_code, None));
            }
            for topic in response.responses {
                let name = topic.topic.0.to_string();
                for p in topic.partitions {
                    let tp = (name.clone(), p.partition_index);
                    let Some(&offset) = wanted.get(&tp) else {
                        continue;
                    };
                    match ErrorCode::try_from_code(p.error_code) {
                        None => {}
                        Some(ErrorCode::OffsetOutOfRange) => {
                            outcome.out_of_range.push(tp);
                            continue;
                        }
                        Some(
                            ErrorCode::NotLeaderOrFollower
                            | ErrorCode::UnknownTopicOrPartition
                            | ErrorCode::FencedLeaderEpoch
                            | ErrorCode::UnknownLeaderEpoch
                            | ErrorCode::LeaderNotAvailable,
                        ) => {
                            self.leaders.remove(&tp);
                            outcome.stale_metadata = true;
                            continue;
                        }
                        _ => {
                            return Err(Error::broker(
                                format!("fetching {}-{}", tp.0, tp.1),
                                p.error_code,
                                None,
                            ));
                        }
                    }
                    let aborted: Vec<Aborted> = p
                        .aborted_transactions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| Aborted {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect();
                    let bytes = p.records.unwrap_or_else(Bytes::new);
                    let decoded = decode_partition(&tp.0, tp.1, &bytes, offset, &aborted)?;
                    if let Some(next) = decoded.next_offset
                        && next > offset
                    {
                        outcome.positions.insert(tp, next);
                    }
                    outcome.records.extend(decoded.records);
                }
            }
        }
        Ok(outcome)
    }
}
