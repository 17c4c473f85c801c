//! The classic group protocol's membership APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//! Each becomes an event for the group coordinator (`crate::group`); JoinGroup and a follower's
//! SyncGroup are answered when the rebalance gets there, as in Kafka.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse,
};

use super::wire;
use crate::broker::Broker;
use crate::group::{self, Event, Response};

fn code(error: Option<ErrorCode>) -> i16 {
    error.map_or(0, |e| e.code())
}

fn text(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub(crate) async fn join(
    broker: &Broker,
    header: &RequestHeader,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let event = |token| {
        Event::Join(group::JoinGroup {
            token,
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: text(&request.group_instance_id),
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| group::Protocol {
                    name: p.name.to_string(),
                    metadata: p.metadata.clone(),
                })
                .collect(),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: the session timeout serves for both.
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            client_id: header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            client_host: crate::server::client_host(),
            reason: text(&request.reason),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        })
    };
    let mut response = JoinGroupResponse::default().with_generation_id(-1);
    match broker.groups().request(broker, event).await {
        Some(Response::Join(join)) => {
            response.error_code = code(join.error);
            response.generation_id = join.generation;
            response.protocol_name = join.protocol_name.as_deref().map(wire);
            response.leader = wire(&join.leader);
            response.member_id = wire(&join.member_id);
            if version >= 7 {
                response.protocol_type = join.protocol_type.as_deref().map(wire);
            }
            if version >= 9 {
                response.skip_assignment = join.skip_assignment;
            }
            response.members = join
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(wire(&m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        member.group_instance_id = m.group_instance_id.as_deref().map(wire);
                    }
                    member
                })
                .collect();
            if version < 1 && response.protocol_name.is_none() {
                response.protocol_name = Some(wire(""));
            }
        }
        _ => response.error_code = ErrorCode::CoordinatorNotAvailable.code(),
    }
    response
}

pub(crate) async fn sync(
    broker: &Broker,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    let event = |token| {
        Event::Sync(group::SyncGroup {
            token,
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            generation: request.generation_id,
            group_instance_id: text(&request.group_instance_id),
            protocol_type: text(&request.protocol_type),
            protocol_name: text(&request.protocol_name),
            assignments: request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        })
    };
    let mut response = SyncGroupResponse::default();
    match broker.groups().request(broker, event).await {
        Some(Response::Sync(sync)) => {
            response.error_code = code(sync.error);
            response.assignment = sync.assignment;
            if version >= 5 {
                response.protocol_type = sync.protocol_type.as_deref().map(wire);
                response.protocol_name = sync.protocol_name.as_deref().map(wire);
            }
        }
        _ => response.error_code = ErrorCode::CoordinatorNotAvailable.code(),
    }
    response
}

pub(crate) async fn heartbeat(
    broker: &Broker,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let event = |token| {
        Event::Heartbeat(group::Heartbeat {
            token,
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            generation: request.generation_id,
            group_instance_id: text(&request.group_instance_id),
        })
    };
    let error = match broker.groups().request(broker, event).await {
        Some(Response::Heartbeat(h)) => code(h.error),
        _ => ErrorCode::CoordinatorNotAvailable.code(),
    };
    HeartbeatResponse::default().with_error_code(error)
}

pub(crate) async fn leave(
    broker: &Broker,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    let members = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| group::LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: text(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![group::LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let event = |token| {
        Event::Leave(group::LeaveGroup {
            token,
            group_id: request.group_id.0.to_string(),
            members,
        })
    };
    let mut response = LeaveGroupResponse::default();
    match broker.groups().request(broker, event).await {
        Some(Response::Leave(leave)) => {
            if version >= 3 {
                response.error_code = code(leave.error);
                response.members = leave
                    .members
                    .into_iter()
                    .map(|m| {
                        MemberResponse::default()
                            .with_member_id(wire(&m.member_id))
                            .with_group_instance_id(m.group_instance_id.as_deref().map(wire))
                            .with_error_code(code(m.error))
                    })
                    .collect();
            } else {
                // v0-2 leave one member: its own error is the answer.
                response.error_code = code(
                    leave
                        .error
                        .or_else(|| leave.members.first().and_then(|m| m.error)),
                );
            }
        }
        _ => response.error_code = ErrorCode::CoordinatorNotAvailable.code(),
    }
    response
}
