//! The cluster as the consumer sees it: metadata (partition leaders), a connection per leader,
//! Fetch and ListOffsets routed to leaders.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};

use super::config::IsolationLevel;
use super::record::{Aborted, ConsumerRecord, decode_partition_into};
use crate::admin::TopicPartition;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::requests::{self, s};

/// The highest versions used: Fetch 12 (topics by name), ListOffsets 7, Metadata 12.
const FETCH_MAX_V: i16 = 12;
const LIST_OFFSETS_MAX_V: i16 = 7;
const METADATA_MAX_V: i16 = 12;

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

    /// Every topic's name and whether it is internal (a Metadata request for all topics).
    pub(crate) async fn all_topics(&mut self) -> Result<Vec<(String, bool)>> {
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        let response = match self.metadata(&request).await {
            Ok(r) => r,
            Err(_) => {
                self.bootstrap = connect_any(&self.servers, &self.client_id).await?;
                self.metadata(&request).await?
            }
        };
        Ok(response
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| t.name.map(|n| (n.0.to_string(), t.is_internal)))
            .collect())
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
            let request =
                requests::list_offsets(list.iter().map(|(tp, ())| tp), timestamp, isolation);
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

    /// Starts one Fetch per leader of `positions`, each on its own task (which also decodes
    /// the records), so that the caller can work while they run.
    pub(crate) async fn start_fetch(
        &mut self,
        positions: &[(TopicPartition, i64)],
        params: FetchParams,
    ) -> Result<PendingFetch> {
        let groups = self.by_leader(positions).await?;
        let mut tasks = Vec::with_capacity(groups.len());
        for (leader, list) in groups {
            let connection = match self.connections.remove(&leader) {
                Some(c) => Ok(c),
                None => self
                    .brokers
                    .get(&leader)
                    .cloned()
                    .ok_or_else(|| Error::Protocol {
                        addr: String::new(),
                        reason: format!("metadata names no address for broker {leader}"),
                    })
                    .map(Err)?,
            };
            let client_id = self.client_id.clone();
            tasks.push((
                leader,
                tokio::spawn(fetch_from_leader(connection, client_id, list, params)),
            ));
        }
        Ok(PendingFetch {
            positions: positions.to_vec(),
            tasks,
            done: Vec::new(),
        })
    }

    /// Waits until every leader of `pending` answered (true) or `deadline` passed (false).
    pub(crate) async fn wait_fetch(
        &mut self,
        pending: &mut PendingFetch,
        deadline: tokio::time::Instant,
    ) -> bool {
        while let Some((leader, task)) = pending.tasks.first_mut() {
            let leader = *leader;
            match tokio::time::timeout_at(deadline, task).await {
                Err(_) => return false,
                Ok(joined) => {
                    pending.tasks.remove(0);
                    let done = joined.unwrap_or_else(|e| LeaderFetch {
                        connection: None,
                        outcome: Err(Error::Protocol {
                            addr: String::new(),
                            reason: format!("fetch task failed: {e}"),
                        }),
                        forget: Vec::new(),
                    });
                    pending.done.push((leader, done));
                }
            }
        }
        true
    }

    /// Merges what the leaders of a finished `pending` fetch returned.
    pub(crate) fn finish_fetch(&mut self, mut pending: PendingFetch) -> Result<FetchOutcome> {
        let mut outcome = FetchOutcome::default();
        let mut fatal = None;
        for (leader, done) in std::mem::take(&mut pending.done) {
            match done.connection {
                Some(c) => {
                    self.connections.insert(leader, c);
                }
                None => outcome.stale_metadata = true,
            }
            for tp in done.forget {
                self.leaders.remove(&tp);
                outcome.stale_metadata = true;
            }
            match done.outcome {
                Ok(part) => {
                    if outcome.records.is_empty() {
                        outcome.records = part.records;
                    } else {
                        outcome.records.extend(part.records);
                    }
                    outcome.positions.extend(part.positions);
                    outcome.out_of_range.extend(part.out_of_range);
                    outcome.stale_metadata |= part.stale_metadata;
                }
                Err(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }
}

/// Settings of one fetch round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchParams {
    pub(crate) max_wait: Duration,
    pub(crate) min_bytes: i32,
    pub(crate) partition_max_bytes: i32,
    pub(crate) isolation: IsolationLevel,
    pub(crate) check_crcs: bool,
}

/// A fetch round in flight (see [`Cluster::start_fetch`]). Dropping it abandons the round:
/// its tasks are aborted and their connections closed.
#[derive(Debug)]
pub(crate) struct PendingFetch {
    /// The positions it started from: its records are only wanted while they still hold.
    pub(crate) positions: Vec<(TopicPartition, i64)>,
    tasks: Vec<(i32, tokio::task::JoinHandle<LeaderFetch>)>,
    done: Vec<(i32, LeaderFetch)>,
}

impl Drop for PendingFetch {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// What one leader's Fetch came to.
#[derive(Debug)]
struct LeaderFetch {
    /// The connection, unless it failed.
    connection: Option<Connection>,
    /// Records and positions; `Err` for an error that ends the poll.
    outcome: Result<FetchOutcome>,
    /// Partitions whose leader moved.
    forget: Vec<TopicPartition>,
}

/// Sends one Fetch on `connection` (or a new connection to the address) and decodes it.
async fn fetch_from_leader(
    connection: std::result::Result<Connection, String>,
    client_id: String,
    list: Vec<(TopicPartition, i64)>,
    params: FetchParams,
) -> LeaderFetch {
    let mut connection = match connection {
        Ok(c) => c,
        Err(addr) => match Connection::connect(&addr, &client_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(addr, error = %e, "cannot connect to the leader");
                return LeaderFetch {
                    connection: None,
                    outcome: Ok(FetchOutcome::default()),
                    forget: Vec::new(),
                };
            }
        },
    };
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in &list {
        by_topic.entry(topic).or_default().push(
            FetchPartition::default()
                .with_partition(*partition)
                .with_fetch_offset(*offset)
                .with_log_start_offset(-1)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(params.partition_max_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(params.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(params.min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_isolation_level(params.isolation.wire())
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
    let response = match connection.version_of::<FetchRequest>() {
        Ok(version) => connection.send_at(&request, version.min(FETCH_MAX_V)).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(addr = connection.addr(), error = %e, "fetch failed");
            return LeaderFetch {
                connection: None,
                outcome: Ok(FetchOutcome::default()),
                forget: Vec::new(),
            };
        }
    };
    let wanted: HashMap<TopicPartition, i64> = list.into_iter().collect();
    let mut forget = Vec::new();
    let outcome = decode_response(response, &wanted, params.check_crcs, &mut forget);
    LeaderFetch {
        connection: Some(connection),
        outcome,
        forget,
    }
}

/// Records and positions from a Fetch response; partitions whose leader moved go to `forget`.
fn decode_response(
    response: kafka_protocol::messages::FetchResponse,
    wanted: &HashMap<TopicPartition, i64>,
    check_crcs: bool,
    forget: &mut Vec<TopicPartition>,
) -> Result<FetchOutcome> {
    if response.error_code != 0 {
        return Err(Error::broker("fetching", response.error_code, None));
    }
    let mut outcome = FetchOutcome::default();
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        let shared = super::record::Topic::from(name.as_str());
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
                    forget.push(tp);
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
            let next = decode_partition_into(
                &shared,
                tp.1,
                &bytes,
                offset,
                &aborted,
                check_crcs,
                &mut outcome.records,
            )?;
            if let Some(next) = next
                && next > offset
            {
                outcome.positions.insert(tp, next);
            }
        }
    }
    Ok(outcome)
}
