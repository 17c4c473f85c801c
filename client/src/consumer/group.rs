//! Group membership over the classic protocol: JoinGroup (with the MEMBER_ID_REQUIRED round
//! trip), leader-side assignment with the consumer protocol, SyncGroup, a heartbeat task that
//! flags a needed rejoin, and LeaveGroup.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest, TopicName, consumer_protocol_assignment,
    consumer_protocol_subscription,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::task::JoinHandle;

use super::assignor::{self, MemberSubscription};
use super::config::{AssignmentStrategy, ConsumerConfig};
use super::coordinator::{Coordinator, Member, coordinator_moved, retriable};
use super::fetcher::Cluster;
use crate::admin::TopicPartition;
use crate::error::{Error, Result};
use crate::requests::s;

const JOIN_GROUP_MAX_V: i16 = 7;
const SYNC_GROUP_MAX_V: i16 = 5;
const HEARTBEAT_MAX_V: i16 = 4;
const LEAVE_GROUP_MAX_V: i16 = 4;
/// Subscription v1 carries owned partitions (needed by the cooperative protocol).
const SUBSCRIPTION_V: i16 = 1;
const ASSIGNMENT_V: i16 = 1;
const JOIN_ATTEMPTS: usize = 50;
const BACKOFF: Duration = Duration::from_millis(100);

/// Membership state shared with the heartbeat task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) member_id: String,
    /// -1 until the first join completes.
    pub(crate) generation: i32,
    /// The heartbeat saw a rebalance or lost membership: join again.
    pub(crate) rejoin: bool,
    /// Membership was lost (unknown member, fenced): the partitions are gone without a commit.
    pub(crate) lost: bool,
    pub(crate) joining: bool,
}

/// Receives partition changes around rebalances (called from `poll`).
pub trait RebalanceListener: Send {
    /// Partitions taken away, called before they are given to another member (commit here).
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]);
    /// Partitions newly given to this member.
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]);
    /// Partitions lost without a chance to commit (membership expired); defaults to revoked.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// The result of a completed join.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) assignment: Vec<TopicPartition>,
}

/// This consumer's membership in its group.
#[derive(Debug)]
pub(crate) struct Membership {
    coordinator: Coordinator,
    heartbeat_coordinator: Option<Coordinator>,
    strategies: Vec<AssignmentStrategy>,
    instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    heartbeat_interval: Duration,
    pub(crate) shared: Arc<Mutex<Shared>>,
    heartbeat: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

impl Membership {
    pub(crate) fn new(config: &ConsumerConfig, group: &str) -> Self {
        let coordinator =
            |c: &ConsumerConfig| Coordinator::new(&c.bootstrap_servers, &c.client_id, group);
        Membership {
            coordinator: coordinator(config),
            heartbeat_coordinator: Some(coordinator(config)),
            strategies: config.assignment_strategies.clone(),
            instance_id: config.group_instance_id.clone(),
            session_timeout: config.session_timeout,
            rebalance_timeout: config.max_poll_interval,
            heartbeat_interval: config.heartbeat_interval,
            shared: Arc::new(Mutex::new(Shared {
                generation: -1,
                rejoin: true,
                ..Shared::default()
            })),
            heartbeat: None,
        }
    }

    /// Whether every configured strategy is cooperative (so owned partitions are kept across a
    /// rebalance instead of all revoked first).
    pub(crate) fn cooperative(&self) -> bool {
        self.strategies
            .iter()
            .all(|s| *s == AssignmentStrategy::CooperativeSticky)
    }

    pub(crate) fn needs_join(&self) -> bool {
        lock(&self.shared).rejoin
    }

    pub(crate) fn request_rejoin(&self) {
        lock(&self.shared).rejoin = true;
    }

    /// Takes the "membership lost" flag.
    pub(crate) fn take_lost(&self) -> bool {
        std::mem::take(&mut lock(&self.shared).lost)
    }

    /// Who commits now.
    pub(crate) fn member(&self) -> Member {
        let shared = lock(&self.shared);
        Member {
            member_id: shared.member_id.clone(),
            generation: shared.generation,
            instance_id: self.instance_id.clone(),
        }
    }

    fn metadata(&self, topics: &BTreeSet<String>, owned: &[TopicPartition]) -> Result<Bytes> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in owned {
            by_topic.entry(t).or_default().push(*p);
        }
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| s(t)).collect())
            .with_owned_partitions(
                by_topic
                    .into_iter()
                    .map(|(t, p)| {
                        consumer_protocol_subscription::TopicPartition::default()
                            .with_topic(TopicName(s(t)))
                            .with_partitions(p)
                    })
                    .collect(),
            );
        let mut buf = BytesMut::new();
        buf.put_i16(SUBSCRIPTION_V);
        subscription
            .encode(&mut buf, SUBSCRIPTION_V)
            .map_err(|e| Error::Protocol {
                addr: String::new(),
                reason: format!("encoding the subscription: {e}"),
            })?;
        Ok(buf.freeze())
    }

    /// Joins (or rejoins) the group and returns this member's assignment.
    pub(crate) async fn join(
        &mut self,
        topics: &BTreeSet<String>,
        owned: &[TopicPartition],
        cluster: &mut Cluster,
    ) -> Result<Joined> {
        lock(&self.shared).joining = true;
        let result = self.join_inner(topics, owned, cluster).await;
        let mut shared = lock(&self.shared);
        shared.joining = false;
        if result.is_ok() {
            shared.rejoin = false;
        }
        drop(shared);
        if result.is_ok() && self.heartbeat.is_none() {
            self.start_heartbeat();
        }
        result
    }

    async fn join_inner(
        &mut self,
        topics: &BTreeSet<String>,
        owned: &[TopicPartition],
        cluster: &mut Cluster,
    ) -> Result<Joined> {
        let group = self.coordinator.group().to_string();
        let metadata = self.metadata(topics, owned)?;
        let mut last_error = None;
        for _ in 0..JOIN_ATTEMPTS {
            let member_id = lock(&self.shared).member_id.clone();
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_session_timeout_ms(millis(self.session_timeout))
                .with_rebalance_timeout_ms(millis(self.rebalance_timeout))
                .with_member_id(s(&member_id))
                .with_group_instance_id(self.instance_id.as_deref().map(s))
                .with_protocol_type(s("consumer"))
                .with_protocols(
                    self.strategies
                        .iter()
                        .map(|st| {
                            JoinGroupRequestProtocol::default()
                                .with_name(s(st.protocol_name()))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let sent = async {
                let conn = self.coordinator.conn().await?;
                let version = conn.version_of::<JoinGroupRequest>()?.min(JOIN_GROUP_MAX_V);
                conn.send_at(&request, version).await
            };
            let response = match sent.await {
                Ok(r) => r,
                Err(e) if retriable(&e) => {
                    tracing::debug!(group, error = %e, "JoinGroup failed; retrying");
                    self.coordinator.reset();
                    last_error = Some(e);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ErrorCode::try_from_code(response.error_code) {
                None => {}
                Some(ErrorCode::MemberIdRequired) => {
                    lock(&self.shared).member_id = response.member_id.to_string();
                    continue;
                }
                Some(ErrorCode::UnknownMemberId) => {
                    lock(&self.shared).member_id.clear();
                    continue;
                }
                Some(ErrorCode::RebalanceInProgress) => continue,
                Some(_) if coordinator_moved(response.error_code) => {
                    self.coordinator.reset();
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Some(_) => {
                    return Err(Error::broker(
                        format!("joining group {group}"),
                        response.error_code,
                        None,
                    ));
                }
            }
            let member_id = response.member_id.to_string();
            let generation = response.generation_id;
            let protocol = response
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let assignments = if response.leader == response.member_id {
                let strategy =
                    AssignmentStrategy::from_protocol_name(&protocol).ok_or_else(|| {
                        Error::Protocol {
                            addr: String::new(),
                            reason: format!("the group chose unknown protocol {protocol:?}"),
                        }
                    })?;
                let mut members = BTreeMap::new();
                for m in &response.members {
                    members.insert(m.member_id.to_string(), decode_subscription(&m.metadata));
                }
                let all_topics: BTreeSet<String> = members
                    .values()
                    .flat_map(|m: &MemberSubscription| m.topics.clone())
                    .collect();
                cluster.refresh(&all_topics).await?;
                let counts: BTreeMap<String, i32> = cluster
                    .partition_counts()
                    .iter()
                    .filter(|(t, _)| all_topics.contains(*t))
                    .map(|(t, n)| (t.clone(), *n))
                    .collect();
                let plan = assignor::assign(strategy, &members, &counts);
                tracing::debug!(group, generation, ?plan, "assigned partitions as leader");
                plan.into_iter()
                    .map(|(member, partitions)| {
                        Ok(SyncGroupRequestAssignment::default()
                            .with_member_id(s(&member))
                            .with_assignment(encode_assignment(&partitions)?))
                    })
                    .collect::<Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(generation)
                .with_member_id(s(&member_id))
                .with_group_instance_id(self.instance_id.as_deref().map(s))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s(&protocol)))
                .with_assignments(assignments);
            let sent = async {
                let conn = self.coordinator.conn().await?;
                let version = conn.version_of::<SyncGroupRequest>()?.min(SYNC_GROUP_MAX_V);
                conn.send_at(&sync, version).await
            };
            let response = match sent.await {
                Ok(r) => r,
                Err(e) if retriable(&e) => {
                    self.coordinator.reset();
                    last_error = Some(e);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ErrorCode::try_from_code(response.error_code) {
                None => {}
                Some(ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration) => continue,
                Some(ErrorCode::UnknownMemberId) => {
                    lock(&self.shared).member_id.clear();
                    continue;
                }
                Some(_) if coordinator_moved(response.error_code) => {
                    self.coordinator.reset();
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Some(_) => {
                    return Err(Error::broker(
                        format!("syncing group {group}"),
                        response.error_code,
                        None,
                    ));
                }
            }
            {
                let mut shared = lock(&self.shared);
                shared.member_id = member_id;
                shared.generation = generation;
            }
            tracing::debug!(group, generation, "joined");
            return Ok(Joined {
                assignment: decode_assignment(&response.assignment),
            });
        }
        Err(last_error.unwrap_or_else(|| {
            Error::broker(
                format!("joining group {group}"),
                ErrorCode::RebalanceInProgress.code(),
                Some(format!(
                    "no stable generation after {JOIN_ATTEMPTS} attempts"
                )),
            )
        }))
    }

    fn start_heartbeat(&mut self) {
        let Some(mut coordinator) = self.heartbeat_coordinator.take() else {
            return;
        };
        let shared = self.shared.clone();
        let interval = self.heartbeat_interval;
        let instance_id = self.instance_id.clone();
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let (member_id, generation) = {
                    let s = lock(&shared);
                    if s.joining || s.rejoin || s.generation < 0 {
                        continue;
                    }
                    (s.member_id.clone(), s.generation)
                };
                let request = HeartbeatRequest::default()
                    .with_group_id(GroupId(s(coordinator.group())))
                    .with_generation_id(generation)
                    .with_member_id(s(&member_id))
                    .with_group_instance_id(instance_id.as_deref().map(s));
                let sent = async {
                    let conn = coordinator.conn().await?;
                    let version = conn.version_of::<HeartbeatRequest>()?.min(HEARTBEAT_MAX_V);
                    conn.send_at(&request, version).await
                };
                let code = match sent.await {
                    Ok(r) => r.error_code,
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        coordinator.reset();
                        continue;
                    }
                };
                let mut s = lock(&shared);
                if s.generation != generation || s.member_id != member_id {
                    continue; // a join finished meanwhile; this answer is about the old one
                }
                match ErrorCode::try_from_code(code) {
                    None => {}
                    Some(ErrorCode::RebalanceInProgress) => s.rejoin = true,
                    Some(
                        ErrorCode::UnknownMemberId
                        | ErrorCode::IllegalGeneration
                        | ErrorCode::FencedInstanceId,
                    ) => {
                        if code == ErrorCode::UnknownMemberId.code() {
                            s.member_id.clear();
                        }
                        s.generation = -1;
                        s.rejoin = true;
                        s.lost = true;
                    }
                    Some(_) if coordinator_moved(code) => coordinator.reset(),
                    Some(other) => tracing::warn!(error = %other, "heartbeat error"),
                }
            }
        }));
    }

    /// Stops heartbeats and leaves the group (static members stay, as in Kafka).
    pub(crate) async fn leave(&mut self) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let member_id = {
            let mut shared = lock(&self.shared);
            shared.generation = -1;
            std::mem::take(&mut shared.member_id)
        };
        if member_id.is_empty() || self.instance_id.is_some() {
            return Ok(());
        }
        let group = self.coordinator.group().to_string();
        let conn = self.coordinator.conn().await?;
        let version = conn
            .version_of::<LeaveGroupRequest>()?
            .min(LEAVE_GROUP_MAX_V);
        // v0-2 name one member; v3+ a list.
        let request = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
        let request = if version < 3 {
            request.with_member_id(s(&member_id))
        } else {
            request.with_members(vec![
                MemberIdentity::default().with_member_id(s(&member_id)),
            ])
        };
        let response = conn.send_at(&request, version).await?;
        let code = if response.error_code != 0 {
            response.error_code
        } else {
            response.members.first().map_or(0, |m| m.error_code)
        };
        match ErrorCode::try_from_code(code) {
            None | Some(ErrorCode::UnknownMemberId) => Ok(()),
            Some(_) => Err(Error::broker(format!("leaving group {group}"), code, None)),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// A member's subscription from its JoinGroup metadata (version prefix, then the struct).
pub(crate) fn decode_subscription(bytes: &Bytes) -> MemberSubscription {
    if bytes.len() < 2 {
        return MemberSubscription::default();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolSubscription::decode(&mut body, version) {
        Ok(sub) => MemberSubscription {
            topics: sub.topics.iter().map(|t| t.to_string()).collect(),
            owned: sub
                .owned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "undecodable member subscription");
            MemberSubscription::default()
        }
    }
}

fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, p)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(p)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_V);
    assignment
        .encode(&mut buf, ASSIGNMENT_V)
        .map_err(|e| Error::Protocol {
            addr: String::new(),
            reason: format!("encoding an assignment: {e}"),
        })?;
    Ok(buf.freeze())
}

fn decode_assignment(bytes: &Bytes) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version) {
        Ok(a) => {
            let mut out: Vec<TopicPartition> = a
                .assigned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect();
            out.sort();
            out
        }
        Err(e) => {
            tracing::warn!(error = %e, "undecodable assignment");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_round_trips_through_the_consumer_protocol() {
        let partitions = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ];
        let bytes = encode_assignment(&partitions).unwrap();
        assert_eq!(&bytes[..2], &ASSIGNMENT_V.to_be_bytes());
        assert_eq!(decode_assignment(&bytes), partitions);
    }

    #[test]
    fn subscription_carries_topics_and_owned_partitions() {
        let config = ConsumerConfig::default();
        let membership = Membership::new(&config, "g");
        let topics: BTreeSet<String> = ["x".to_string(), "y".to_string()].into();
        let bytes = membership
            .metadata(&topics, &[("x".to_string(), 3)])
            .unwrap();
        let sub = decode_subscription(&bytes);
        assert_eq!(sub.topics, topics);
        assert_eq!(sub.owned, vec![("x".to_string(), 3)]);
    }
}
