//! Requests into the group coordinator. Each carries the driver's [`RequestToken`]; the answer
//! comes back as a [`Command::Reply`](super::Command::Reply) with the same token, at once or
//! (JoinGroup, a follower's SyncGroup) when the rebalance gets there.

use bytes::Bytes;

use super::snapshot::GroupSnapshot;

/// Names one outstanding request. The driver chooses it (a counter will do) and keeps it unique
/// among its requests that have not been answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RequestToken(pub(crate) u64);

/// One protocol a member supports (for consumers: an assignor name and its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    pub(crate) name: String,
    pub(crate) metadata: Bytes,
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinGroup {
    pub(crate) token: RequestToken,
    pub(crate) group_id: String,
    /// Empty for a member that has no id yet.
    pub(crate) member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub(crate) group_instance_id: Option<String>,
    pub(crate) protocol_type: String,
    /// In the member's order of preference.
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) session_timeout_ms: i32,
    /// JoinGroup v0 has none: the driver passes the session timeout, as Kafka does.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// Logged only.
    pub(crate) reason: Option<String>,
    /// JoinGroup v4+: a dynamic member without an id gets MEMBER_ID_REQUIRED and a new id.
    pub(crate) require_known_member_id: bool,
    /// JoinGroup v9+: a restarted static leader of a stable group is told to skip assignment.
    pub(crate) supports_skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncGroup {
    pub(crate) token: RequestToken,
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    pub(crate) group_instance_id: Option<String>,
    /// SyncGroup v5+; `None` before.
    pub(crate) protocol_type: Option<String>,
    /// SyncGroup v5+; `None` before.
    pub(crate) protocol_name: Option<String>,
    /// Member id to assignment; only the leader sends any.
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    pub(crate) token: RequestToken,
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    pub(crate) group_instance_id: Option<String>,
}

/// One member leaving in a LeaveGroup request. Before v3 the request names one member by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeavingMember {
    /// Empty to remove a static member by `group_instance_id` alone (an administrative removal).
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
}

/// A LeaveGroup request (batch leave, KIP-345).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaveGroup {
    pub(crate) token: RequestToken,
    pub(crate) group_id: String,
    pub(crate) members: Vec<LeavingMember>,
}

/// The group-membership part of an OffsetCommit: may this member commit offsets for this group
/// now? (The offsets themselves are the driver's.) Creates an empty group for a commit with
/// generation -1 from a client that does not use group management, as Kafka does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetCommit {
    pub(crate) token: RequestToken,
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    pub(crate) group_instance_id: Option<String>,
}

/// A DeleteGroups request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeleteGroups {
    pub(crate) token: RequestToken,
    pub(crate) group_ids: Vec<String>,
}

/// Everything that can happen to the coordinator. Time is passed beside the event to
/// [`GroupCoordinator::handle`](super::GroupCoordinator::handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Join(JoinGroup),
    Sync(SyncGroup),
    Heartbeat(Heartbeat),
    Leave(LeaveGroup),
    OffsetCommit(OffsetCommit),
    Delete(DeleteGroups),
    /// A group read back from `__consumer_offsets` at start-up (the last value for its key;
    /// skip tombstoned groups). Replaces any group of that id in memory.
    Load(GroupSnapshot),
    /// Time passed: expire sessions, pending members, join and sync phases.
    Tick,
}
