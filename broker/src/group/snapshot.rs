//! Views of a group: the persisted record and what DescribeGroups / ListGroups show.

use bytes::Bytes;

use super::state::GroupState;

/// A group's metadata as Kafka stores it in `__consumer_offsets` (GroupMetadataValue v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSnapshot {
    pub(crate) group_id: String,
    /// Empty when the group never had one.
    pub(crate) protocol_type: String,
    pub(crate) generation: i32,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) current_state_timestamp_ms: i64,
    pub(crate) members: Vec<MemberSnapshot>,
}

/// A member in a [`GroupSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSnapshot {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// A group as DescribeGroups shows it (Kafka's GroupSummary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupDescription {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    /// The chosen protocol when Stable, else empty.
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberDescription>,
}

/// A member in a [`GroupDescription`]; metadata and assignment are empty unless Stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberDescription {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupListing {
    pub(crate) group_id: String,
    pub(crate) protocol_type: String,
    pub(crate) state: GroupState,
}
