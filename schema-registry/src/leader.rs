//! Leader election among registry instances through a Kafka consumer group, as Confluent's
//! registry does (group `schema-registry`, protocol type `sr`): every instance joins with its
//! URL as member metadata; the group leader picks the registry leader (keeping the current one
//! while it stays a member) and tells everyone through SyncGroup. Only the leader writes; the
//! others forward writes to it. When the leader's session expires or it leaves, the group
//! rebalances and another instance takes over.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use fjord_client::Connection;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Kafka error codes the election reacts to.
mod code {
    pub(super) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub(super) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub(super) const NOT_COORDINATOR: i16 = 16;
    pub(super) const ILLEGAL_GENERATION: i16 = 22;
    pub(super) const UNKNOWN_MEMBER_ID: i16 = 25;
    pub(super) const REBALANCE_IN_PROGRESS: i16 = 27;
    pub(super) const MEMBER_ID_REQUIRED: i16 = 79;
}

const PROTOCOL_TYPE: &str = "sr";
const PROTOCOL_NAME: &str = "v0";

/// Who leads, as this instance sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderState {
    /// The leader's base URL (`http://host:port`); `None` while unknown (rebalancing).
    pub leader_url: Option<String>,
    /// Whether this instance is the leader.
    pub is_self: bool,
}

impl LeaderState {
    /// A single instance without election: always the leader.
    pub fn standalone() -> Self {
        LeaderState {
            leader_url: None,
            is_self: true,
        }
    }
}

/// The leader as the election task publishes it.
pub type LeaderWatch = watch::Receiver<LeaderState>;

/// Waits at most `timeout` for a known leader.
pub async fn known_leader(watch: &LeaderWatch, timeout: Duration) -> Option<LeaderState> {
    let mut watch = watch.clone();
    let found = tokio::time::timeout(
        timeout,
        watch.wait_for(|l| l.is_self || l.leader_url.is_some()),
    )
    .await;
    match found {
        Ok(Ok(state)) => Some(state.clone()),
        _ => None,
    }
}

/// Election settings.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub bootstrap: String,
    /// The group (Confluent's `schema.registry.group.id`, default `schema-registry`).
    pub group_id: String,
    /// This instance's URL as other instances reach it.
    pub url: String,
    /// `leader.eligibility`.
    pub eligible: bool,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
}

impl ElectionConfig {
    pub fn new(bootstrap: impl Into<String>, url: impl Into<String>) -> Self {
        ElectionConfig {
            bootstrap: bootstrap.into(),
            group_id: "schema-registry".into(),
            url: url.into(),
            eligible: true,
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(20),
        }
    }
}

/// Member metadata: Confluent's `SchemaRegistryIdentity` plus our URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Identity {
    version: i32,
    url: String,
    leader_eligibility: bool,
    /// The leader this member last knew, so that a rebalance keeps the current leader
    /// whichever member the coordinator makes group leader.
    #[serde(default)]
    known_leader: Option<String>,
}

/// What SyncGroup hands each member.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Assignment {
    version: i32,
    error: i16,
    leader: Option<String>,
    leader_identity: Option<Identity>,
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Why a session with the coordinator ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Kafka(#[from] fjord_client::Error),
    #[error("{api} answered error code {code}")]
    Code { api: &'static str, code: i16 },
}

/// Chooses the registry leader among the members: the leader most members last knew, while it
/// is still an eligible member; else the eligible member with the smallest member id.
fn choose_leader(members: &BTreeMap<String, Identity>) -> Option<(String, Identity)> {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for identity in members.values() {
        if let Some(url) = identity.known_leader.as_deref() {
            *votes.entry(url).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = votes.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (url, _) in ranked {
        if let Some((id, identity)) = members
            .iter()
            .find(|(_, i)| i.leader_eligibility && i.url == url)
        {
            return Some((id.clone(), identity.clone()));
        }
    }
    members
        .iter()
        .filter(|(_, i)| i.leader_eligibility)
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(id, i)| (id.clone(), i.clone()))
}

/// Starts the election task; the watch says who leads.
pub fn spawn(config: ElectionConfig, shutdown: CancellationToken) -> LeaderWatch {
    let (tx, rx) = watch::channel(LeaderState::default());
    tokio::spawn(async move {
        let mut member_id = String::new();
        let mut known_leader = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match session(&config, &mut member_id, &mut known_leader, &tx, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "registry leader election: rejoining");
                    tx.send_replace(LeaderState::default());
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        tx.send_replace(LeaderState::default());
    });
    rx
}

async fn coordinator(config: &ElectionConfig) -> Result<Connection, SessionError> {
    let mut bootstrap = Connection::connect(&config.bootstrap, "fjord-schema-registry").await?;
    let version = bootstrap.version_of::<FindCoordinatorRequest>()?.min(3);
    let request = FindCoordinatorRequest::default().with_key(s(&config.group_id));
    let response = bootstrap.send_at(&request, version).await?;
    if response.error_code != 0 {
        return Err(SessionError::Code {
            api: "FindCoordinator",
            code: response.error_code,
        });
    }
    let addr = format!("{}:{}", response.host.as_str(), response.port);
    Ok(Connection::connect(&addr, "fjord-schema-registry").await?)
}

/// One connection to the coordinator: join, sync, heartbeat, rejoin on rebalance. Returns
/// `Ok` after leaving the group on shutdown.
async fn session(
    config: &ElectionConfig,
    member_id: &mut String,
    known_leader: &mut Option<String>,
    tx: &watch::Sender<LeaderState>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let mut conn = coordinator(config).await?;
    'rejoin: loop {
        let metadata = Bytes::from(
            serde_json::to_vec(&Identity {
                version: 1,
                url: config.url.clone(),
                leader_eligibility: config.eligible,
                known_leader: known_leader.clone(),
            })
            .unwrap_or_default(),
        );
        // JoinGroup (the MEMBER_ID_REQUIRED round trip included).
        let join = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&config.group_id)))
                .with_session_timeout_ms(millis(config.session_timeout))
                .with_rebalance_timeout_ms(millis(config.rebalance_timeout))
                .with_member_id(s(member_id))
                .with_protocol_type(s(PROTOCOL_TYPE))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s(PROTOCOL_NAME))
                        .with_metadata(metadata.clone()),
                ]);
            let version = conn.version_of::<JoinGroupRequest>()?.min(7);
            let response = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = conn.send_at(&request, version) => r?,
            };
            match response.error_code {
                0 => break response,
                code::MEMBER_ID_REQUIRED => *member_id = response.member_id.to_string(),
                code::UNKNOWN_MEMBER_ID => member_id.clear(),
                code::REBALANCE_IN_PROGRESS => {}
                code => {
                    return Err(SessionError::Code {
                        api: "JoinGroup",
                        code,
                    });
                }
            }
        };
        *member_id = join.member_id.to_string();
        let generation = join.generation_id;
        let assignments = if join.leader == join.member_id {
            let members: BTreeMap<String, Identity> = join
                .members
                .iter()
                .filter_map(|m| {
                    serde_json::from_slice::<Identity>(&m.metadata)
                        .ok()
                        .map(|i| (m.member_id.to_string(), i))
                })
                .collect();
            let chosen = choose_leader(&members);
            let assignment = Assignment {
                version: 1,
                error: 0,
                leader: chosen.as_ref().map(|(id, _)| id.clone()),
                leader_identity: chosen.map(|(_, i)| i),
            };
            let bytes = Bytes::from(serde_json::to_vec(&assignment).unwrap_or_default());
            members
                .keys()
                .map(|m| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(bytes.clone())
                })
                .collect()
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&config.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(member_id))
            .with_protocol_type(Some(s(PROTOCOL_TYPE)))
            .with_protocol_name(Some(s(PROTOCOL_NAME)))
            .with_assignments(assignments);
        let version = conn.version_of::<SyncGroupRequest>()?.min(5);
        let response = tokio::select! {
            _ = shutdown.cancelled() => return leave(&mut conn, config, member_id).await,
            r = conn.send_at(&request, version) => r?,
        };
        match response.error_code {
            0 => {}
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => continue 'rejoin,
            code::UNKNOWN_MEMBER_ID => {
                member_id.clear();
                continue 'rejoin;
            }
            code => {
                return Err(SessionError::Code {
                    api: "SyncGroup",
                    code,
                });
            }
        }
        let assignment: Option<Assignment> = serde_json::from_slice(&response.assignment).ok();
        let leader = assignment.and_then(|a| a.leader.zip(a.leader_identity));
        let state = match leader {
            Some((leader_member, identity)) => LeaderState {
                is_self: leader_member == *member_id,
                leader_url: Some(identity.url),
            },
            None => LeaderState::default(),
        };
        tracing::info!(generation, leader = ?state.leader_url, is_self = state.is_self, "registry leader elected");
        known_leader.clone_from(&state.leader_url);
        tx.send_replace(state);

        // Heartbeats until a rebalance or shutdown.
        let interval = config.session_timeout / 3;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return leave(&mut conn, config, member_id).await,
                _ = tokio::time::sleep(interval) => {}
            }
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&config.group_id)))
                .with_generation_id(generation)
                .with_member_id(s(member_id));
            let version = conn.version_of::<HeartbeatRequest>()?.min(4);
            let response = conn.send_at(&request, version).await?;
            match response.error_code {
                0 => {}
                code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => {
                    tx.send_replace(LeaderState::default());
                    continue 'rejoin;
                }
                code::UNKNOWN_MEMBER_ID => {
                    tx.send_replace(LeaderState::default());
                    member_id.clear();
                    continue 'rejoin;
                }
                code @ (code::NOT_COORDINATOR
                | code::COORDINATOR_NOT_AVAILABLE
                | code::COORDINATOR_LOAD_IN_PROGRESS) => {
                    return Err(SessionError::Code {
                        api: "Heartbeat",
                        code,
                    });
                }
                code => {
                    return Err(SessionError::Code {
                        api: "Heartbeat",
                        code,
                    });
                }
            }
        }
    }
}

/// LeaveGroup so that another instance takes over at once.
async fn leave(
    conn: &mut Connection,
    config: &ElectionConfig,
    member_id: &str,
) -> Result<(), SessionError> {
    if member_id.is_empty() {
        return Ok(());
    }
    let version = conn.version_of::<LeaveGroupRequest>()?.min(4);
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(&config.group_id)));
    let request = if version < 3 {
        request.with_member_id(s(member_id))
    } else {
        request.with_members(vec![MemberIdentity::default().with_member_id(s(member_id))])
    };
    conn.send_at(&request, version).await?;
    tracing::info!(group = %config.group_id, "left the registry group");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(url: &str, eligible: bool, known: Option<&str>) -> Identity {
        Identity {
            version: 1,
            url: url.into(),
            leader_eligibility: eligible,
            known_leader: known.map(str::to_string),
        }
    }

    fn chosen(members: &[(&str, Identity)]) -> Option<String> {
        let members: BTreeMap<String, Identity> = members
            .iter()
            .map(|(id, i)| (id.to_string(), i.clone()))
            .collect();
        choose_leader(&members).map(|(id, _)| id)
    }

    #[test]
    fn the_current_leader_keeps_leading_while_it_is_a_member() {
        let b = "http://b";
        // A newcomer knows no leader; the others agree on b.
        let members = [
            ("a", identity("http://a", true, None)),
            ("b", identity(b, true, Some(b))),
            ("c", identity("http://c", true, Some(b))),
        ];
        assert_eq!(chosen(&members), Some("b".into()));
        // Nobody knows a leader: the smallest member id.
        let fresh = [
            ("b", identity(b, true, None)),
            ("a", identity("http://a", true, None)),
        ];
        assert_eq!(chosen(&fresh), Some("a".into()));
        // The known leader is gone (killed): the smallest member id again.
        let orphaned = [
            ("b", identity(b, true, Some("http://gone"))),
            ("c", identity("http://c", true, Some("http://gone"))),
        ];
        assert_eq!(chosen(&orphaned), Some("b".into()));
    }

    #[test]
    fn ineligible_members_never_lead() {
        let members = [
            ("a", identity("http://a", false, Some("http://a"))),
            ("b", identity("http://b", true, Some("http://a"))),
        ];
        assert_eq!(chosen(&members), Some("b".into()));
        assert_eq!(chosen(&[("a", identity("http://a", false, None))]), None);
    }
}
