//! Group administration: ListGroups, DescribeGroups, DeleteGroups and OffsetDelete. A group is
//! known to the coordinator (it has or had members) or only through its committed offsets
//! (then it is `Empty`).

use std::collections::BTreeMap;

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, RequestHeader,
};
use kafka_protocol::protocol::Decodable;

use super::wire;
use crate::broker::Broker;
use crate::group::{self, Event, GroupState, Response};

const EMPTY: &str = "Empty";
const DEAD: &str = "Dead";
/// READ, DELETE and DESCRIBE on a group (every operation is allowed without ACLs).
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// `(state, protocol type)` of every known group.
fn all_groups(broker: &Broker) -> BTreeMap<String, (String, String)> {
    let mut groups: BTreeMap<String, (String, String)> = broker
        .offsets()
        .groups()
        .into_iter()
        .map(|g| (g, (EMPTY.to_string(), String::new())))
        .collect();
    for listing in broker.groups().list() {
        if listing.state != GroupState::Dead {
            groups.insert(
                listing.group_id,
                (listing.state.as_str().to_string(), listing.protocol_type),
            );
        }
    }
    groups
}

pub(crate) async fn list(
    broker: &Broker,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = all_groups(broker)
        .into_iter()
        .filter(|(_, (state, _))| {
            type_ok
                && (request.states_filter.is_empty()
                    || request
                        .states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(state)))
        })
        .map(|(g, (state, protocol_type))| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(wire(&g)))
                .with_protocol_type(wire(&protocol_type));
            if version >= 4 {
                listed.group_state = wire(&state);
            }
            if version >= 5 {
                listed.group_type = wire("classic");
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn describe(
    broker: &Broker,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let mut described = DescribedGroup::default().with_group_id(group_id.clone());
            match broker
                .groups()
                .describe(group_id.0.as_str())
                .filter(|d| d.state != GroupState::Dead)
            {
                Some(d) => {
                    described.group_state = wire(d.state.as_str());
                    described.protocol_type = wire(&d.protocol_type);
                    described.protocol_data = wire(&d.protocol);
                    described.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default()
                                .with_member_id(wire(&m.member_id))
                                .with_client_id(wire(&m.client_id))
                                .with_client_host(wire(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.group_instance_id = m.group_instance_id.as_deref().map(wire);
                            }
                            member
                        })
                        .collect();
                }
                None if !broker.offsets().group(group_id.0.as_str()).is_empty() => {
                    described.group_state = wire(EMPTY)
                }
                None => {
                    described.group_state = wire(DEAD);
                    if version >= 6 {
                        described.error_code = ErrorCode::GroupIdNotFound.code();
                        described.error_message =
                            Some(wire(&format!("Group {} not found.", group_id.0.as_str())));
                    }
                }
            }
            if group_id.0.is_empty() {
                described.error_code = ErrorCode::InvalidGroupId.code();
            }
            if version >= 3 && request.include_authorized_operations {
                described.authorized_operations = ALL_GROUP_OPERATIONS;
            }
            described
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete(
    broker: &Broker,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let now = broker.now_ms();
    let names: Vec<String> = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    let event = |token| {
        Event::Delete(group::DeleteGroups {
            token,
            group_ids: names.clone(),
        })
    };
    let by_coordinator: BTreeMap<String, Option<ErrorCode>> =
        match broker.groups().request(broker, event).await {
            Some(Response::Delete(d)) => d.results.into_iter().collect(),
            _ => BTreeMap::new(),
        };
    let results = names
        .into_iter()
        .map(|name| {
            let code = match by_coordinator.get(&name).copied().flatten() {
                _ if name.is_empty() => Some(ErrorCode::InvalidGroupId),
                // Unknown to the coordinator: a group that only has committed offsets.
                Some(ErrorCode::GroupIdNotFound) if !broker.offsets().group(&name).is_empty() => {
                    let tombstones = broker
                        .offsets()
                        .group(&name)
                        .into_keys()
                        .map(|k| (k, None))
                        .collect();
                    match broker.offsets_topic() {
                        Ok(topic) => broker
                            .offsets()
                            .write(&topic, &name, tombstones, now)
                            .err()
                            .map(|e| e.error_code()),
                        Err(e) => Some(e.code),
                    }
                }
                other => other,
            };
            DeletableGroupResult::default()
                .with_group_id(GroupId(wire(&name)))
                .with_error_code(code.map_or(0, |c| c.code()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

/// Topics the members of an active consumer group subscribe to.
fn subscribed_topics(broker: &Broker, group: &str) -> Option<Vec<String>> {
    let description = broker.groups().describe(group)?;
    if matches!(description.state, GroupState::Empty | GroupState::Dead) {
        return None;
    }
    let mut topics = Vec::new();
    for member in description.members {
        let mut bytes = member.metadata.clone();
        if bytes.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        bytes = bytes.slice(2..);
        if let Ok(subscription) =
            ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        {
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
    }
    Some(topics)
}

pub(crate) async fn delete_offsets(
    broker: &Broker,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    let subscribed = subscribed_topics(broker, &group);
    if group.is_empty() || (subscribed.is_none() && broker.offsets().group(&group).is_empty()) {
        let code = if group.is_empty() {
            ErrorCode::InvalidGroupId
        } else {
            ErrorCode::GroupIdNotFound
        };
        return OffsetDeleteResponse::default().with_error_code(code.code());
    }
    let mut tombstones = Vec::new();
    let topics: Vec<OffsetDeleteResponseTopic> = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let in_use = subscribed
                .as_ref()
                .is_some_and(|s| s.iter().any(|n| n == t.name.0.as_str()));
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut result = OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index);
                    if topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index))
                        .is_none()
                    {
                        result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    } else if in_use {
                        result.error_code = ErrorCode::GroupSubscribedToTopic.code();
                    } else {
                        tombstones.push(((t.name.0.to_string(), p.partition_index), None));
                    }
                    result
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let written = broker
        .offsets_topic()
        .map_err(|e| e.code)
        .and_then(|topic| {
            broker
                .offsets()
                .write(&topic, &group, tombstones, broker.now_ms())
                .map_err(|e| e.error_code())
        });
    match written {
        Ok(()) => OffsetDeleteResponse::default().with_topics(topics),
        Err(code) => OffsetDeleteResponse::default().with_error_code(code.code()),
    }
}
