//! [`GroupMember`]: membership in a group of the classic protocol with any protocol type
//! (`connect`, `sr`, ...) and opaque member metadata and assignments, for runtimes that assign
//! their own work (Kafka Connect workers, schema registry instances). The caller drives the
//! steps: [`GroupMember::join`], then [`GroupMember::sync`] (the leader passes every member's
//! assignment), then [`GroupMember::heartbeat`] every `heartbeat.interval.ms` until it asks for a
//! rejoin, and [`GroupMember::leave`] at the end.

use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::ErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use super::coordinator::{Coordinator, coordinator_moved, retriable};
use crate::error::{Error, Result};
use crate::requests::s;

const JOIN_GROUP_MAX_V: i16 = 7;
const SYNC_GROUP_MAX_V: i16 = 5;
const HEARTBEAT_MAX_V: i16 = 4;
const LEAVE_GROUP_MAX_V: i16 = 4;
const ATTEMPTS: usize = 50;
const BACKOFF: Duration = Duration::from_millis(100);

/// A completed JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinedGroup {
    pub generation: i32,
    pub member_id: String,
    /// The member the coordinator chose as leader.
    pub leader_id: String,
    /// The protocol the group chose.
    pub protocol: String,
    /// Every member's id and metadata (only the leader receives them; empty otherwise).
    pub members: Vec<(String, Bytes)>,
}

impl JoinedGroup {
    pub fn is_leader(&self) -> bool {
        self.leader_id == self.member_id
    }
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The generation is still current.
    Stable,
    /// The group is rebalancing: join again.
    Rebalance,
    /// This member was removed (session expired, fenced): join again as a new member.
    Lost,
}

/// One member of a group (see the module docs).
#[derive(Debug)]
pub struct GroupMember {
    coordinator: Coordinator,
    protocol_type: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    member_id: String,
    generation: i32,
    protocol: String,
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl GroupMember {
    /// A member of `group` (not joined yet) with this protocol type and timeouts.
    pub fn new(
        bootstrap: &str,
        client_id: &str,
        group: &str,
        protocol_type: &str,
        session_timeout: Duration,
        rebalance_timeout: Duration,
    ) -> Self {
        let servers: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        GroupMember {
            coordinator: Coordinator::new(&servers, client_id, group),
            protocol_type: protocol_type.to_string(),
            session_timeout,
            rebalance_timeout,
            member_id: String::new(),
            generation: -1,
            protocol: String::new(),
        }
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The current generation (-1 before the first join or after a loss).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// JoinGroup with the given `(protocol name, metadata)` choices, handling the
    /// MEMBER_ID_REQUIRED round trip, unknown member ids and coordinator moves.
    pub async fn join(&mut self, protocols: &[(String, Bytes)]) -> Result<JoinedGroup> {
        let group = self.coordinator.group().to_string();
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_session_timeout_ms(millis(self.session_timeout))
                .with_rebalance_timeout_ms(millis(self.rebalance_timeout))
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s(&self.protocol_type))
                .with_protocols(
                    protocols
                        .iter()
                        .map(|(name, metadata)| {
                            JoinGroupRequestProtocol::default()
                                .with_name(s(name))
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
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                Some(ErrorCode::UnknownMemberId) => {
                    self.member_id.clear();
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
            self.member_id = response.member_id.to_string();
            self.generation = response.generation_id;
            self.protocol = response
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            return Ok(JoinedGroup {
                generation: self.generation,
                member_id: self.member_id.clone(),
                leader_id: response.leader.to_string(),
                protocol: self.protocol.clone(),
                members: response
                    .members
                    .iter()
                    .map(|m| (m.member_id.to_string(), m.metadata.clone()))
                    .collect(),
            });
        }
        Err(last_error.unwrap_or_else(|| {
            Error::broker(
                format!("joining group {group}"),
                ErrorCode::RebalanceInProgress.code(),
                Some(format!("no stable generation after {ATTEMPTS} attempts")),
            )
        }))
    }

    /// SyncGroup for the generation of the last join; the leader passes `(member id,
    /// assignment)` for every member, the others nothing. `Ok(None)` means the group moved on
    /// (rebalance in progress, unknown member or stale generation): join again.
    pub async fn sync(&mut self, assignments: Vec<(String, Bytes)>) -> Result<Option<Bytes>> {
        let group = self.coordinator.group().to_string();
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_protocol_type(Some(s(&self.protocol_type)))
            .with_protocol_name(Some(s(&self.protocol)))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(member, bytes)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&member))
                            .with_assignment(bytes)
                    })
                    .collect(),
            );
        let sent = async {
            let conn = self.coordinator.conn().await?;
            let version = conn.version_of::<SyncGroupRequest>()?.min(SYNC_GROUP_MAX_V);
            conn.send_at(&request, version).await
        };
        let response = match sent.await {
            Ok(r) => r,
            Err(e) => {
                if retriable(&e) {
                    self.coordinator.reset();
                }
                return Err(e);
            }
        };
        match ErrorCode::try_from_code(response.error_code) {
            None => Ok(Some(response.assignment)),
            Some(ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration) => Ok(None),
            Some(ErrorCode::UnknownMemberId) => {
                self.member_id.clear();
                self.generation = -1;
                Ok(None)
            }
            Some(_) if coordinator_moved(response.error_code) => {
                self.coordinator.reset();
                Ok(None)
            }
            Some(_) => Err(Error::broker(
                format!("syncing group {group}"),
                response.error_code,
                None,
            )),
        }
    }

    /// One heartbeat for the current generation.
    pub async fn heartbeat(&mut self) -> Result<HeartbeatOutcome> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s(self.coordinator.group())))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let sent = async {
            let conn = self.coordinator.conn().await?;
            let version = conn.version_of::<HeartbeatRequest>()?.min(HEARTBEAT_MAX_V);
            conn.send_at(&request, version).await
        };
        let code = match sent.await {
            Ok(r) => r.error_code,
            Err(e) => {
                if retriable(&e) {
                    self.coordinator.reset();
                }
                return Err(e);
            }
        };
        match ErrorCode::try_from_code(code) {
            None => Ok(HeartbeatOutcome::Stable),
            Some(ErrorCode::RebalanceInProgress) => Ok(HeartbeatOutcome::Rebalance),
            Some(
                ErrorCode::UnknownMemberId
                | ErrorCode::IllegalGeneration
                | ErrorCode::FencedInstanceId,
            ) => {
                if code == ErrorCode::UnknownMemberId.code() {
                    self.member_id.clear();
                }
                self.generation = -1;
                Ok(HeartbeatOutcome::Lost)
            }
            Some(_) if coordinator_moved(code) => {
                self.coordinator.reset();
                Ok(HeartbeatOutcome::Stable)
            }
            Some(_) => Err(Error::broker(
                format!("heartbeat in group {}", self.coordinator.group()),
                code,
                None,
            )),
        }
    }

    /// LeaveGroup, so that the others rebalance at once instead of after the session timeout.
    pub async fn leave(&mut self) -> Result<()> {
        let member_id = std::mem::take(&mut self.member_id);
        self.generation = -1;
        if member_id.is_empty() {
            return Ok(());
        }
        let group = self.coordinator.group().to_string();
        let conn = self.coordinator.conn().await?;
        let version = conn
            .version_of::<LeaveGroupRequest>()?
            .min(LEAVE_GROUP_MAX_V);
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
