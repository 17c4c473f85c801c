//! What the group coordinator asks its driver to do.

use bytes::Bytes;
use fjord_protocol::ErrorCode;

use super::events::RequestToken;
use super::snapshot::GroupSnapshot;

/// One effect for the driver to carry out, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Answer the request named by `token`.
    Reply {
        token: RequestToken,
        response: Response,
    },
    /// Write the group's metadata record to `__consumer_offsets` (Kafka's GroupMetadataValue);
    /// replies that follow it in the same batch are sent after the write, as Kafka does.
    PersistGroup(GroupSnapshot),
    /// The group was deleted: write a tombstone for its metadata and for its committed offsets.
    DeleteGroup { group_id: String },
}

/// An answer to one request; `error: None` is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    Join(JoinResponse),
    Sync(SyncResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveResponse),
    OffsetCommit(OffsetCommitResponse),
    Delete(DeleteGroupsResponse),
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub(crate) metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinResponse {
    pub(crate) error: Option<ErrorCode>,
    /// -1 on error.
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    /// Empty on error.
    pub(crate) leader: String,
    pub(crate) skip_assignment: bool,
    /// The member's id; with MEMBER_ID_REQUIRED, the id to join with next.
    pub(crate) member_id: String,
    /// Only for the leader.
    pub(crate) members: Vec<JoinMember>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncResponse {
    pub(crate) error: Option<ErrorCode>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

/// A Heartbeat response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatResponse {
    pub(crate) error: Option<ErrorCode>,
}

/// The outcome for one member of a LeaveGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaveMemberResponse {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) error: Option<ErrorCode>,
}

/// A LeaveGroup response. Before v3 the driver answers with the one member's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaveResponse {
    pub(crate) error: Option<ErrorCode>,
    pub(crate) members: Vec<LeaveMemberResponse>,
}

/// Whether an OffsetCommit may go ahead; on error, every partition gets this error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetCommitResponse {
    pub(crate) error: Option<ErrorCode>,
}

/// A DeleteGroups response: one result per requested group, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeleteGroupsResponse {
    pub(crate) results: Vec<(String, Option<ErrorCode>)>,
}
