//! Request dispatch. The handler list below is the single source of what this broker serves:
//! `ApiVersions` is derived from it, never hand-listed.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;

use crate::broker::Broker;
use crate::handlers;

macro_rules! handlers {
    ($($key:ident => $handler:path),* $(,)?) => {
        /// Every API this broker answers.
        const SUPPORTED: &[ApiKey] = &[$(ApiKey::$key),*];

        /// Runs the handler of a decoded request.
        pub(super) async fn dispatch(broker: &Broker, header: &RequestHeader, request: RequestKind) -> ResponseKind {
            match request {
                $(RequestKind::$key(request) => ResponseKind::$key($handler(broker, header, request).await),)*
                other => unreachable!("versions() admits only handled APIs, got {other:?}"),
            }
        }
    };
}

handlers! {
    ApiVersions => handlers::api_versions::handle,
    Metadata => handlers::metadata::handle,
    Produce => handlers::produce::handle,
    Fetch => handlers::fetch::handle,
    ListOffsets => handlers::list_offsets::handle,
    CreateTopics => handlers::create_topics::handle,
    DeleteTopics => handlers::delete_topics::handle,
    CreatePartitions => handlers::create_partitions::handle,
    DescribeConfigs => handlers::describe_configs::handle,
    AlterConfigs => handlers::alter_configs::handle,
    IncrementalAlterConfigs => handlers::alter_configs::handle_incremental,
    DeleteRecords => handlers::delete_records::handle,
    DescribeCluster => handlers::describe_cluster::handle,
    InitProducerId => handlers::init_producer_id::handle,
}

/// The versions served for `key`, or `None` when no handler exists. Every handler serves the
/// whole range the message codecs know (Kafka 4.1's).
pub(super) fn versions(key: ApiKey) -> Option<VersionRange> {
    SUPPORTED.contains(&key).then(|| key.valid_versions())
}

/// The ApiVersions answer: one entry per handler.
pub(crate) fn supported_api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|key| {
            let range = key.valid_versions();
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
        assert!(
            versions(ApiKey::JoinGroup).is_none(),
            "no group coordinator yet"
        );
    }
}
