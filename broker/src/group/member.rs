//! One member of a classic group (Kafka's MemberMetadata).

use bytes::Bytes;

use super::events::{Protocol, RequestToken};

/// How long a new member's first JoinGroup may wait before the member is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`): its session does not run until it has an id and a generation.
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) assignment: Bytes,
    /// A JoinGroup waiting for the join phase to complete.
    pub(crate) awaiting_join: Option<RequestToken>,
    /// A SyncGroup waiting for the leader's assignment.
    pub(crate) awaiting_sync: Option<RequestToken>,
    /// Joined but not yet through a completed join phase.
    pub(crate) is_new: bool,
    /// When the member expires unless it heartbeats (or is waiting in a rebalance).
    pub(crate) session_deadline_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol`, empty if it does not support it.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// Same protocols, same order, same metadata.
    pub(crate) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    pub(crate) fn vote<'a>(&self, candidates: &[&'a str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .find_map(|p| candidates.iter().find(|c| **c == p.name).copied())
    }

    /// Kafka's `hasSatisfiedHeartbeat` at the deadline: a member waiting in a rebalance does not
    /// expire by session timeout, except a new member, whose deadline is the join timeout.
    pub(crate) fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.session_deadline_ms
            && (self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none()))
    }

    /// The deadline that matters for [`is_expired`](Self::is_expired), if any.
    pub(crate) fn expiry_deadline_ms(&self) -> Option<i64> {
        (self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none()))
            .then_some(self.session_deadline_ms)
    }

    /// A heartbeat (or anything that counts as one) arrived.
    pub(crate) fn reset_session(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }
}
