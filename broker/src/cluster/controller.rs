//! The controller API: what brokers and admin requests ask of the quorum, and the active
//! controller's handling of it. Every write is decided against the applied image under one lock
//! (so two decisions never race on the same image), then committed through Raft; the decisions
//! themselves are the pure functions of `metadata::controller`.
//!
//! Liveness is the active controller's memory, not the log (as in KRaft): a new active
//! controller gives every broker a fresh session before fencing anyone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjord_protocol::ErrorCode;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use super::raft::{NodeId, Raft, RecordBatch, StateMachine};
use super::rpc;
use crate::config::{ClusterSettings, TopicConfig};
use crate::error::ApiError;
use crate::metadata::controller::{self as decide, AlterIsr, PlacementSeed};
use crate::metadata::image::{MetadataImage, MetadataRecord, PartitionImage};

/// A call to the controller quorum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ControllerRequest {
    /// A broker (re)starts: a new broker epoch; an earlier incarnation is fenced first.
    RegisterBroker {
        id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A registered broker is alive; the first heartbeat after registration unfences it.
    Heartbeat {
        id: i32,
        epoch: i64,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        validate_only: bool,
    },
    /// Replaces a topic's config overrides with `configs`.
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    /// A leader's ISR change.
    AlterPartition {
        broker: i32,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    AllocateProducerIds {
        broker: i32,
        size: i64,
    },
    /// AlterPartitionReassignments for one partition (`target: None` cancels).
    Reassign {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// Preferred-leader election for `partitions` (every partition when `None`).
    ElectPreferredLeaders {
        partitions: Option<Vec<(String, i32)>>,
    },
    /// A follower's fetches to `broker` are refused (nothing listens on its port: the process
    /// is gone). The active controller checks for itself and fences it at once instead of
    /// waiting out its session.
    ReportUnreachable {
        broker: i32,
    },
    /// The applied image once its version passes `known_version`, or `Unchanged` after
    /// `wait_ms`. Any controller answers (the versions are log indexes, the same everywhere).
    FetchImage {
        known_version: u64,
        wait_ms: u64,
    },
    /// The quorum's state as this controller sees it.
    DescribeQuorum,
    /// The active controller's committed (and applied) metadata version, after confirming it
    /// still leads: what a starting broker must reach before acting on its image.
    Barrier,
}

/// The answer to a [`ControllerRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ControllerReply {
    /// Ask `leader` (at `addr`) instead; `None` while an election runs.
    NotController {
        leader: Option<NodeId>,
        addr: Option<String>,
    },
    Error {
        code: i16,
        message: String,
    },
    Done,
    /// Done, and written at this metadata log index.
    Committed {
        version: u64,
    },
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    Partition {
        state: PartitionImage,
    },
    ProducerIds {
        start: i64,
        size: i64,
    },
    Image {
        version: u64,
        image: Box<MetadataImage>,
    },
    Unchanged {
        version: u64,
    },
    Quorum {
        node: NodeId,
        leader: Option<NodeId>,
        term: u64,
        voters: BTreeMap<NodeId, String>,
        applied: u64,
    },
}

impl ControllerReply {
    fn error(e: ApiError) -> Self {
        ControllerReply::Error {
            code: e.code.code(),
            message: e.message,
        }
    }

    /// The error this reply means when the caller expected another kind.
    pub(crate) fn into_error(self) -> ApiError {
        match self {
            ControllerReply::Error { code, message } => ApiError::new(
                ErrorCode::try_from_code(code).unwrap_or(ErrorCode::UnknownServerError),
                message,
            ),
            other => ApiError::new(
                ErrorCode::UnknownServerError,
                format!("unexpected controller reply {other:?}"),
            ),
        }
    }
}

/// Heartbeat times, per broker, since this node became the active controller.
#[derive(Debug, Default)]
struct Liveness {
    term: u64,
    seen: HashMap<i32, Instant>,
}

/// The controller side of one node.
pub(crate) struct ControllerApi {
    node_id: NodeId,
    raft: Raft,
    sm: StateMachine,
    settings: ClusterSettings,
    /// Broker configs, the defaults topic configs are validated against.
    broker_values: BTreeMap<String, String>,
    num_partitions: i32,
    default_replication_factor: i16,
    delete_topic_enable: bool,
    decide: tokio::sync::Mutex<()>,
    liveness: Mutex<Liveness>,
}

impl std::fmt::Debug for ControllerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerApi")
            .field("node_id", &self.node_id)
            .finish()
    }
}

fn seed() -> PlacementSeed {
    let bytes = Uuid::new_v4().into_bytes();
    PlacementSeed {
        start_index: usize::from(bytes[0]),
        replica_shift: usize::from(bytes[1]),
    }
}

fn not_controller<E>(e: &RaftError<NodeId, E>) -> Option<ControllerReply>
where
    E: std::error::Error
        + openraft::TryAsRef<openraft::error::ForwardToLeader<NodeId, openraft::BasicNode>>,
{
    e.forward_to_leader()
        .map(|f| ControllerReply::NotController {
            leader: f.leader_id,
            addr: f.leader_node.as_ref().map(|n| n.addr.clone()),
        })
}

impl ControllerApi {
    pub(crate) fn new(
        node_id: NodeId,
        raft: Raft,
        sm: StateMachine,
        config: &crate::config::BrokerConfig,
        settings: ClusterSettings,
    ) -> Self {
        ControllerApi {
            node_id,
            raft,
            sm,
            settings,
            broker_values: config.values().clone(),
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            delete_topic_enable: config.delete_topic_enable,
            decide: tokio::sync::Mutex::new(()),
            liveness: Mutex::new(Liveness::default()),
        }
    }

    pub(crate) async fn handle(&self, request: ControllerRequest) -> ControllerReply {
        match request {
            ControllerRequest::FetchImage {
                known_version,
                wait_ms,
            } => self.fetch_image(known_version, wait_ms).await,
            ControllerRequest::ReportUnreachable { broker } => self.probe(broker).await,
            ControllerRequest::Barrier => match self.confirm_active().await {
                Ok(()) => ControllerReply::Committed {
                    version: self.sm.current().version,
                },
                Err(reply) => reply,
            },
            ControllerRequest::DescribeQuorum => {
                let metrics = self.raft.metrics().borrow().clone();
                ControllerReply::Quorum {
                    node: self.node_id,
                    leader: metrics.current_leader,
                    term: metrics.current_term,
                    voters: self.settings.voters.clone(),
                    applied: metrics.last_applied.map_or(0, |l| l.index),
                }
            }
            other => self.write(other).await,
        }
    }

    async fn fetch_image(&self, known: u64, wait_ms: u64) -> ControllerReply {
        let mut rx = self.sm.subscribe();
        let wait = tokio::time::timeout(
            Duration::from_millis(wait_ms.min(30_000)),
            rx.wait_for(|a| a.version > known),
        )
        .await;
        let current = self.sm.current();
        match wait {
            Ok(Ok(_)) if current.version > known => ControllerReply::Image {
                version: current.version,
                image: Box::new(current.image.clone()),
            },
            _ => ControllerReply::Unchanged {
                version: current.version,
            },
        }
    }

    fn unclean(&self, image: &MetadataImage) -> impl Fn(&str) -> bool {
        let default = self.settings.unclean_leader_election;
        let by_topic: HashMap<String, bool> = image
            .topics
            .values()
            .map(|t| {
                let v = t
                    .configs
                    .get("unclean.leader.election.enable")
                    .map_or(default, |v| v.eq_ignore_ascii_case("true"));
                (t.name.clone(), v)
            })
            .collect();
        move |name| by_topic.get(name).copied().unwrap_or(default)
    }

    fn validate_configs(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ApiError> {
        TopicConfig::new(configs.clone(), &self.broker_values)
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))
    }

    /// Confirms this node is the active controller and has applied everything committed
    /// before now; otherwise the NOT_CONTROLLER answer (with the leader when known).
    async fn confirm_active(&self) -> Result<(), ControllerReply> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => Err(
                not_controller(&e).unwrap_or(ControllerReply::NotController {
                    leader: None,
                    addr: None,
                }),
            ),
        }
    }

    /// Decides and commits a write; only the active controller does.
    async fn write(&self, request: ControllerRequest) -> ControllerReply {
        if let Err(reply) = self.confirm_active().await {
            return reply;
        }
        let _guard = self.decide.lock().await;
        let applied = self.sm.current();
        let image = &applied.image;
        let decided = self.decide(image, applied.version, request);
        let (records, reply) = match decided {
            Ok(d) => d,
            Err(e) => return ControllerReply::error(e),
        };
        if records.is_empty() {
            return reply;
        }
        match self.raft.client_write(RecordBatch(records)).await {
            // Tell the caller which log index holds the write, so it can wait for its image.
            Ok(written) => match reply {
                ControllerReply::Done => ControllerReply::Committed {
                    version: written.log_id.index,
                },
                other => other,
            },
            Err(e) => match not_controller::<ClientWriteError<NodeId, openraft::BasicNode>>(&e) {
                Some(r) => r,
                None => ControllerReply::error(ApiError::new(
                    ErrorCode::NotController,
                    format!("The metadata write failed: {e}"),
                )),
            },
        }
    }

    fn decide(
        &self,
        image: &MetadataImage,
        version: u64,
        request: ControllerRequest,
    ) -> Result<(Vec<MetadataRecord>, ControllerReply), ApiError> {
        match request {
            ControllerRequest::RegisterBroker {
                id,
                host,
                port,
                rack,
            } => {
                let mut records = Vec::new();
                if image.cluster_id.is_none() {
                    // The id goes in with the first registration, so no image ever shows a
                    // broker without it (each node would otherwise answer with its own).
                    records.push(MetadataRecord::ClusterId {
                        id: crate::broker::base64_url(Uuid::new_v4().as_bytes()),
                    });
                }
                let mut epoch = version as i64 + 1;
                if let Some(current) = image.brokers.get(&id) {
                    epoch = epoch.max(current.epoch + 1);
                    // The earlier incarnation's leaderships and ISR places go first.
                    records.extend(decide::fence_broker(image, id, self.unclean(image))?);
                }
                records.push(MetadataRecord::RegisterBroker {
                    id,
                    epoch,
                    host,
                    port,
                    rack,
                });
                self.liveness
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .seen
                    .insert(id, Instant::now());
                Ok((records, ControllerReply::Registered { epoch }))
            }
            ControllerRequest::Heartbeat { id, epoch } => {
                let broker = image.brokers.get(&id).filter(|b| b.epoch == epoch);
                let Some(broker) = broker else {
                    return Err(ApiError::new(
                        ErrorCode::StaleBrokerEpoch,
                        format!("Broker {id} epoch {epoch} is not registered; register again."),
                    ));
                };
                self.liveness
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .seen
                    .insert(id, Instant::now());
                if broker.fenced {
                    let records = decide::unfence_broker(image, id)?;
                    Ok((records, ControllerReply::Heartbeat { fenced: false }))
                } else {
                    Ok((Vec::new(), ControllerReply::Heartbeat { fenced: false }))
                }
            }
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
                validate_only,
            } => {
                crate::topic::validate_name(&name)
                    .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
                let key = crate::topic::collision_key(&name);
                if let Some(other) = image
                    .topic_ids
                    .keys()
                    .find(|n| **n != name && crate::topic::collision_key(n) == key)
                {
                    return Err(ApiError::new(
                        ErrorCode::InvalidTopicException,
                        format!("Topic '{name}' collides with existing topic: {other}"),
                    ));
                }
                self.validate_configs(&configs)?;
                let partitions = if partitions == -1 {
                    self.num_partitions
                } else {
                    partitions
                };
                let rf = if replication_factor == -1 {
                    self.default_replication_factor
                } else {
                    replication_factor
                };
                let records = decide::create_topic(
                    image,
                    &name,
                    Uuid::new_v4(),
                    partitions,
                    rf,
                    &configs,
                    seed(),
                )?;
                let records = if validate_only { Vec::new() } else { records };
                Ok((records, ControllerReply::Done))
            }
            ControllerRequest::DeleteTopic { name } => {
                if !self.delete_topic_enable {
                    return Err(ApiError::new(
                        ErrorCode::TopicDeletionDisabled,
                        "Topic deletion is disabled (delete.topic.enable=false).",
                    ));
                }
                let topic = image.topic(&name).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic '{name}' does not exist."),
                    )
                })?;
                Ok((
                    vec![MetadataRecord::RemoveTopic { id: topic.id }],
                    ControllerReply::Done,
                ))
            }
            ControllerRequest::CreatePartitions {
                topic,
                count,
                validate_only,
            } => {
                let records = decide::create_partitions(image, &topic, count, seed())?;
                let records = if validate_only { Vec::new() } else { records };
                Ok((records, ControllerReply::Done))
            }
            ControllerRequest::SetTopicConfigs {
                topic,
                configs,
                validate_only,
            } => {
                let t = image.topic(&topic).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic '{topic}' does not exist."),
                    )
                })?;
                self.validate_configs(&configs)?;
                let mut records = Vec::new();
                for (k, v) in &configs {
                    if t.configs.get(k) != Some(v) {
                        records.push(MetadataRecord::TopicConfig {
                            topic_id: t.id,
                            key: k.clone(),
                            value: Some(v.clone()),
                        });
                    }
                }
                for k in t.configs.keys().filter(|k| !configs.contains_key(*k)) {
                    records.push(MetadataRecord::TopicConfig {
                        topic_id: t.id,
                        key: k.clone(),
                        value: None,
                    });
                }
                let records = if validate_only { Vec::new() } else { records };
                Ok((records, ControllerReply::Done))
            }
            ControllerRequest::AlterPartition {
                broker,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let records = decide::alter_partition(
                    image,
                    &AlterIsr {
                        broker,
                        topic_id,
                        partition,
                        leader_epoch,
                        partition_epoch,
                        new_isr: isr,
                    },
                )?;
                let mut after = image.clone();
                for r in &records {
                    after
                        .apply(r)
                        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))?;
                }
                let state = after
                    .partition(topic_id, partition)
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::new(ErrorCode::UnknownTopicOrPartition, "partition vanished")
                    })?;
                Ok((records, ControllerReply::Partition { state }))
            }
            ControllerRequest::AllocateProducerIds { broker, size } => {
                let size = size.clamp(1, 1_000_000);
                let (start, records) = decide::allocate_producer_ids(image, broker, size);
                Ok((records, ControllerReply::ProducerIds { start, size }))
            }
            ControllerRequest::Reassign {
                topic,
                partition,
                target,
            } => {
                let mut records = decide::reassign(image, &topic, partition, target)?;
                // A target already in sync (or a cancellation) completes at once.
                let mut after = image.clone();
                for r in &records {
                    after.apply(r).map_err(|e| {
                        ApiError::new(ErrorCode::InvalidReplicaAssignment, e.to_string())
                    })?;
                }
                records.extend(decide::complete_reassignments(&after));
                Ok((records, ControllerReply::Done))
            }
            ControllerRequest::ElectPreferredLeaders { partitions } => {
                let mut records = decide::elect_preferred_leaders(image);
                if let Some(wanted) = partitions {
                    let ids: Vec<(Uuid, i32)> = wanted
                        .iter()
                        .filter_map(|(t, p)| image.topic(t).map(|t| (t.id, *p)))
                        .collect();
                    records.retain(|r| match r {
                        MetadataRecord::PartitionChange {
                            topic_id,
                            partition,
                            ..
                        } => ids.contains(&(*topic_id, *partition)),
                        _ => false,
                    });
                }
                Ok((records, ControllerReply::Done))
            }
            ControllerRequest::FetchImage { .. }
            | ControllerRequest::DescribeQuorum
            | ControllerRequest::ReportUnreachable { .. }
            | ControllerRequest::Barrier => {
                Err(ApiError::new(ErrorCode::InvalidRequest, "not a write"))
            }
        }
    }

    /// The active controller's clock: fences brokers whose session expired and, with
    /// `auto.leader.rebalance.enable`, moves leadership back to preferred replicas.
    pub(crate) async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(
            (self.settings.session_timeout_ms / 10).clamp(20, 500),
        ));
        let mut last_rebalance = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.current_leader != Some(self.node_id) {
                continue;
            }
            if self.sm.current().image.cluster_id.is_none() {
                let _guard = self.decide.lock().await;
                if self.raft.ensure_linearizable().await.is_ok()
                    && self.sm.current().image.cluster_id.is_none()
                {
                    let id = crate::broker::base64_url(Uuid::new_v4().as_bytes());
                    let batch = RecordBatch(vec![MetadataRecord::ClusterId { id }]);
                    if let Err(e) = self.raft.client_write(batch).await {
                        tracing::debug!(error = %e, "could not write the cluster id");
                    }
                }
            }
            let expired: Vec<i32> = {
                let mut liveness = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if liveness.term != metrics.current_term {
                    // Newly active: everyone gets a full session from now.
                    liveness.term = metrics.current_term;
                    liveness.seen.clear();
                }
                let image = self.sm.current();
                let timeout = Duration::from_millis(self.settings.session_timeout_ms);
                image
                    .image
                    .brokers
                    .values()
                    .filter(|b| !b.fenced)
                    .filter(|b| {
                        let seen = *liveness.seen.entry(b.id).or_insert(now);
                        now.duration_since(seen) > timeout
                    })
                    .map(|b| b.id)
                    .collect()
            };
            for id in expired {
                tracing::warn!(broker = id, "broker session expired: fencing it");
                self.fence(id).await;
            }
            self.complete_reassignments().await;
            if self.settings.auto_leader_rebalance
                && last_rebalance.elapsed()
                    >= Duration::from_millis(self.settings.leader_imbalance_check_interval_ms)
            {
                last_rebalance = Instant::now();
                let reply = self
                    .write(ControllerRequest::ElectPreferredLeaders { partitions: None })
                    .await;
                if let ControllerReply::Error { message, .. } = reply {
                    tracing::warn!(error = %message, "preferred leader election failed");
                }
            }
        }
    }

    /// Finishes reassignments whose new replicas caught up.
    async fn complete_reassignments(&self) {
        let applied = self.sm.current();
        let pending = applied
            .image
            .topics
            .values()
            .any(|t| t.partitions.values().any(|p| p.reassignment.is_some()));
        if !pending {
            return;
        }
        let _guard = self.decide.lock().await;
        let records = decide::complete_reassignments(&self.sm.current().image);
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.raft.client_write(RecordBatch(records)).await {
            tracing::warn!(error = %e, "could not complete reassignments");
        }
    }

    /// Fences `broker` now when its Kafka port refuses connections (a crashed process). A
    /// timeout or success proves nothing (a slow or partitioned network), so those wait for
    /// the session to expire as usual.
    async fn probe(&self, broker: i32) -> ControllerReply {
        if let Err(reply) = self.confirm_active().await {
            return reply;
        }
        let Some(b) = self.sm.current().image.brokers.get(&broker).cloned() else {
            return ControllerReply::Done;
        };
        if b.fenced {
            return ControllerReply::Done;
        }
        let connect = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect((b.host.as_str(), b.port)),
        )
        .await;
        if let Ok(Err(e)) = connect
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            tracing::warn!(
                broker,
                "broker refuses connections: fencing it without waiting for its session to expire"
            );
            self.fence(broker).await;
        }
        ControllerReply::Done
    }

    async fn fence(&self, id: i32) {
        let _guard = self.decide.lock().await;
        let applied = self.sm.current();
        if applied.image.brokers.get(&id).is_none_or(|b| b.fenced) {
            return;
        }
        match decide::fence_broker(&applied.image, id, self.unclean(&applied.image)) {
            Ok(records) => {
                if let Err(e) = self.raft.client_write(RecordBatch(records)).await {
                    tracing::warn!(broker = id, error = %e, "could not fence broker");
                }
            }
            Err(e) => tracing::warn!(broker = id, error = %e.message, "could not fence broker"),
        }
    }
}

/// Calls the controller quorum from a broker or an admin request: finds the active controller,
/// follows NOT_CONTROLLER hints and retries through elections until `deadline`.
#[derive(Debug)]
pub(crate) struct QuorumClient {
    voters: BTreeMap<NodeId, Channel>,
    leader: Mutex<Option<NodeId>>,
}

impl QuorumClient {
    pub(crate) fn new(voters: &BTreeMap<NodeId, String>) -> Result<Self, String> {
        let mut channels = BTreeMap::new();
        for (id, addr) in voters {
            channels.insert(*id, rpc::channel(addr, Duration::from_secs(35))?);
        }
        Ok(QuorumClient {
            voters: channels,
            leader: Mutex::new(None),
        })
    }

    /// Sends `request` to the active controller, retrying until `timeout`.
    pub(crate) async fn call(
        &self,
        request: &ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ApiError> {
        let deadline = Instant::now() + timeout;
        let ids: Vec<NodeId> = self.voters.keys().copied().collect();
        if ids.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NotController,
                "controller.quorum.voters names no controller.",
            ));
        }
        let mut next = 0usize;
        let mut last_error;
        loop {
            let hinted = *self.leader.lock().unwrap_or_else(|p| p.into_inner());
            let target = hinted.unwrap_or_else(|| {
                next += 1;
                ids[next % ids.len()]
            });
            let Some(channel) = self.voters.get(&target) else {
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
                continue;
            };
            match rpc::call(channel, request).await {
                Ok(ControllerReply::NotController { leader, .. }) => {
                    let known = leader.filter(|l| self.voters.contains_key(l) && *l != target);
                    *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = known;
                    last_error = format!("controller {target} is not active");
                    if known.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(reply) => {
                    *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
                    return Ok(reply);
                }
                Err(e) => {
                    *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    last_error = format!("controller {target}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::new(
                    ErrorCode::NotController,
                    format!("No active controller answered within {timeout:?} ({last_error})."),
                ));
            }
        }
    }

    /// [`QuorumClient::call`] for writes whose only success is `Done`; returns the metadata
    /// log index of the write (0 when nothing needed writing).
    pub(crate) async fn write(
        &self,
        request: &ControllerRequest,
        timeout: Duration,
    ) -> Result<u64, ApiError> {
        match self.call(request, timeout).await? {
            ControllerReply::Done => Ok(0),
            ControllerReply::Committed { version } => Ok(version),
            other => Err(other.into_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::MetadataRecord;

    /// Regression: images hold integer- and UUID-keyed maps, which an internally tagged enum
    /// cannot carry through JSON; broker-only nodes could not fetch the image.
    #[test]
    fn replies_with_an_image_round_trip() {
        let mut image = MetadataImage::default();
        for record in [
            MetadataRecord::RegisterBroker {
                id: 1,
                epoch: 1,
                host: "h".into(),
                port: 1,
                rack: None,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                id: Uuid::from_u128(1),
            },
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(1),
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ] {
            image.apply(&record).unwrap();
        }
        let reply = ControllerReply::Image {
            version: 7,
            image: Box::new(image.clone()),
        };
        let json = serde_json::to_vec(&reply).unwrap();
        match serde_json::from_slice::<ControllerReply>(&json).unwrap() {
            ControllerReply::Image {
                version,
                image: got,
            } => {
                assert_eq!(version, 7);
                assert_eq!(*got, image);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
