//! Group administration: ListGroups, DescribeGroups, DeleteGroups and OffsetDelete.
//!
//! The classic join protocol is not served yet, so every group known to this broker is a group
//! with committed offsets and no members: state `Empty`, deletable.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    RequestHeader,
};

use super::wire;
use crate::broker::Broker;

const EMPTY: &str = "Empty";
const DEAD: &str = "Dead";
/// READ, DELETE and DESCRIBE on a group (every operation is allowed without ACLs).
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn known(broker: &Broker, group: &str) -> bool {
    !broker.offsets().group(group).is_empty()
}

pub(crate) async fn list(
    broker: &Broker,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let state_ok = request.states_filter.is_empty()
        || request
            .states_filter
            .iter()
            .any(|s| s.eq_ignore_ascii_case(EMPTY));
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = if state_ok && type_ok {
        broker
            .offsets()
            .groups()
            .into_iter()
            .map(|g| {
                let mut listed = ListedGroup::default().with_group_id(GroupId(wire(&g)));
                if version >= 4 {
                    listed.group_state = wire(EMPTY);
                }
                if version >= 5 {
                    listed.group_type = wire("classic");
                }
                listed
            })
            .collect()
    } else {
        Vec::new()
    };
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
        .map(|group| {
            let exists = known(broker, group.0.as_str());
            let mut described = DescribedGroup::default()
                .with_group_id(group.clone())
                .with_group_state(wire(if exists { EMPTY } else { DEAD }));
            if !exists && version >= 6 {
                described.error_code = ErrorCode::GroupIdNotFound.code();
                described.error_message =
                    Some(wire(&format!("Group {} not found.", group.0.as_str())));
            }
            if group.0.is_empty() {
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
    let results = request
        .groups_names
        .into_iter()
        .map(|group| {
            let name = group.0.to_string();
            let code = if name.is_empty() {
                Some(ErrorCode::InvalidGroupId)
            } else if !known(broker, &name) {
                Some(ErrorCode::GroupIdNotFound)
            } else {
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
            };
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code.map_or(0, |c| c.code()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub(crate) async fn delete_offsets(
    broker: &Broker,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    if group.is_empty() || !known(broker, &group) {
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
