//! One module per API family. A handler takes the decoded request and returns the response
//! for the version asked; every fault becomes a Kafka error code in that response.

pub(crate) mod alter_configs;
pub(crate) mod api_versions;
pub(crate) mod cluster_admin;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod groups;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod membership;
pub(crate) mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_fetch;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod produce;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// Owned wire string.
pub(crate) fn wire(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Owned wire topic name.
pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(wire(s))
}

/// Kafka's "authorized operations" bitfield when every operation is allowed (no ACLs yet):
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(crate) const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// The cluster's "authorized operations" bitfield when every operation is allowed: CREATE,
/// ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub(crate) const ALL_CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
