//! Request dispatch. The handler list below is the single source of what this broker serves:
//! `ApiVersions` is derived from it, never hand-listed.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{self, ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::{Message, VersionRange};

use crate::broker::Broker;
use crate::handlers;

macro_rules! handlers {
    ($($key:ident($request:ident, $response:ident) => $handler:path),* $(,)?) => {
        /// Every API this broker answers.
        const SUPPORTED: &[ApiKey] = &[$(ApiKey::$key),*];

        /// Runs the handler of a decoded request.
        pub(super) async fn dispatch(broker: &Broker, header: &RequestHeader, request: RequestKind) -> ResponseKind {
            match request {
                $(RequestKind::$key(request) => ResponseKind::$key($handler(broker, header, request).await),)*
                other => unreachable!("versions() admits only handled APIs, got {other:?}"),
            }
        }

        /// The versions served for `key`, or `None` when no handler exists: those the API
        /// defines that both the request and the response codec can carry.
        pub(super) fn versions(key: ApiKey) -> Option<VersionRange> {
            match key {
                $(ApiKey::$key => Some(
                    key.valid_versions()
                        .intersect(&<messages::$request as Message>::VERSIONS)
                        .intersect(&<messages::$response as Message>::VERSIONS),
                ),)*
                _ => None,
            }
        }
    };
}

handlers! {
    ApiVersions(ApiVersionsRequest, ApiVersionsResponse) => handlers::api_versions::handle,
    Metadata(MetadataRequest, MetadataResponse) => handlers::metadata::handle,
    Produce(ProduceRequest, ProduceResponse) => handlers::produce::handle,
    Fetch(FetchRequest, FetchResponse) => handlers::fetch::handle,
    ListOffsets(ListOffsetsRequest, ListOffsetsResponse) => handlers::list_offsets::handle,
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse) => handlers::offset_for_leader_epoch::handle,
    CreateTopics(CreateTopicsRequest, CreateTopicsResponse) => handlers::create_topics::handle,
    DeleteTopics(DeleteTopicsRequest, DeleteTopicsResponse) => handlers::delete_topics::handle,
    CreatePartitions(CreatePartitionsRequest, CreatePartitionsResponse) => handlers::create_partitions::handle,
    DescribeConfigs(DescribeConfigsRequest, DescribeConfigsResponse) => handlers::describe_configs::handle,
    AlterConfigs(AlterConfigsRequest, AlterConfigsResponse) => handlers::alter_configs::handle,
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse) => handlers::alter_configs::handle_incremental,
    DeleteRecords(DeleteRecordsRequest, DeleteRecordsResponse) => handlers::delete_records::handle,
    DescribeCluster(DescribeClusterRequest, DescribeClusterResponse) => handlers::describe_cluster::handle,
    ElectLeaders(ElectLeadersRequest, ElectLeadersResponse) => handlers::cluster_admin::elect_leaders,
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse) => handlers::cluster_admin::alter_reassignments,
    ListPartitionReassignments(ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse) => handlers::cluster_admin::list_reassignments,
    InitProducerId(InitProducerIdRequest, InitProducerIdResponse) => handlers::init_producer_id::handle,
    FindCoordinator(FindCoordinatorRequest, FindCoordinatorResponse) => handlers::find_coordinator::handle,
    OffsetCommit(OffsetCommitRequest, OffsetCommitResponse) => handlers::offset_commit::handle,
    OffsetFetch(OffsetFetchRequest, OffsetFetchResponse) => handlers::offset_fetch::handle,
    ListGroups(ListGroupsRequest, ListGroupsResponse) => handlers::groups::list,
    DescribeGroups(DescribeGroupsRequest, DescribeGroupsResponse) => handlers::groups::describe,
    DeleteGroups(DeleteGroupsRequest, DeleteGroupsResponse) => handlers::groups::delete,
    OffsetDelete(OffsetDeleteRequest, OffsetDeleteResponse) => handlers::groups::delete_offsets,
    JoinGroup(JoinGroupRequest, JoinGroupResponse) => handlers::membership::join,
    SyncGroup(SyncGroupRequest, SyncGroupResponse) => handlers::membership::sync,
    Heartbeat(HeartbeatRequest, HeartbeatResponse) => handlers::membership::heartbeat,
    LeaveGroup(LeaveGroupRequest, LeaveGroupResponse) => handlers::membership::leave,
}

/// The ApiVersions answer: one entry per handler.
pub(crate) fn supported_api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|key| {
            let range = versions(*key).unwrap_or_else(|| key.valid_versions());
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_lists_exactly_the_handled_apis() {
        let listed: Vec<i16> = supported_api_versions().iter().map(|v| v.api_key).collect();
        assert_eq!(listed.len(), SUPPORTED.len());
        assert!(listed.contains(&(ApiKey::Produce as i16)));
        assert!(versions(ApiKey::JoinGroup).is_some());
        assert!(
            versions(ApiKey::EndTxn).is_none(),
            "no transaction coordinator yet"
        );
    }
}
