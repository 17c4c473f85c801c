//! The classic group coordinator (JoinGroup / SyncGroup / Heartbeat / LeaveGroup), as a pure
//! state machine: [`GroupCoordinator::handle`] takes the time and an [`Event`] and returns the
//! [`Command`]s for its driver to carry out, in order. No I/O, no clock, no randomness of its own
//! (member ids take their UUIDs from an injected source).
//!
//! The driver:
//! - gives each request a [`RequestToken`] and keeps the reply channel under it; a
//!   [`Command::Reply`] names the token. JoinGroup replies wait for the join phase, a follower's
//!   SyncGroup reply waits for the leader's SyncGroup; the rest are answered in the same call.
//! - sends [`Event::Tick`] when [`GroupCoordinator::next_deadline_ms`] has passed (or just
//!   periodically; early ticks are harmless). Due timers of a group also run whenever one of its
//!   requests arrives, so coarse ticks do not change outcomes.
//! - writes [`Command::PersistGroup`] to `__consumer_offsets` before sending the replies that
//!   follow it, and feeds the stored groups back with [`Event::Load`] at start-up.
//!
//! The rules follow Kafka's `GroupCoordinator` / `GroupMetadata` (classic protocol), with static
//! membership (KIP-345), MEMBER_ID_REQUIRED (KIP-394) and SkipAssignment (KIP-814).

mod commands;
mod config;
mod driver;
mod events;
mod member;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use fjord_protocol::ErrorCode;
use uuid::Uuid;

pub(crate) use commands::{
    Command, DeleteGroupsResponse, HeartbeatResponse, LeaveMemberResponse, LeaveResponse,
    OffsetCommitResponse, Response,
};
pub(crate) use config::GroupConfig;
pub(crate) use driver::GroupManager;
pub(crate) use events::{
    DeleteGroups, Event, Heartbeat, JoinGroup, LeaveGroup, LeavingMember, OffsetCommit, Protocol,
    RequestToken, SyncGroup,
};
pub(crate) use snapshot::{GroupDescription, GroupListing, GroupSnapshot, MemberSnapshot};
pub(crate) use state::GroupState;
use state::{ClassicGroup, Ctx, join_error, sync_error};

/// Where new member ids get their UUID.
pub(crate) type UuidSource = Box<dyn FnMut() -> Uuid + Send>;

/// Every classic group this broker coordinates.
pub(crate) struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, ClassicGroup>,
    new_uuid: UuidSource,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator with random (v4) member-id UUIDs.
    pub(crate) fn new(config: GroupConfig) -> Self {
        Self::with_uuid_source(config, Box::new(Uuid::new_v4))
    }

    /// A coordinator whose member ids take their UUIDs from `new_uuid` (tests pass a counter).
    pub(crate) fn with_uuid_source(config: GroupConfig, new_uuid: UuidSource) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            new_uuid,
        }
    }

    /// Applies one event at time `now_ms` (milliseconds since the epoch) and returns the effects.
    pub(crate) fn handle(&mut self, now_ms: i64, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            now_ms,
            config: &self.config,
            out: &mut out,
        };
        match event {
            Event::Join(req) => {
                if req.group_id.is_empty() {
                    ctx.out
                        .push(reply_join_error(&req, ErrorCode::InvalidGroupId));
                } else if req.session_timeout_ms < ctx.config.min_session_timeout_ms
                    || req.session_timeout_ms > ctx.config.max_session_timeout_ms
                {
                    ctx.out
                        .push(reply_join_error(&req, ErrorCode::InvalidSessionTimeout));
                } else {
                    let group = match self.groups.entry(req.group_id.clone()) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) if req.member_id.is_empty() => {
                            entry.insert(ClassicGroup::new(req.group_id.clone(), now_ms))
                        }
                        Entry::Vacant(_) => {
                            ctx.out
                                .push(reply_join_error(&req, ErrorCode::UnknownMemberId));
                            return out;
                        }
                    };
                    group.expire(&mut ctx);
                    group.join(req, &mut *self.new_uuid, &mut ctx);
                    group.expire(&mut ctx);
                }
            }
            Event::Sync(req) => {
                let token = req.token;
                match group_for(&mut self.groups, &req.group_id) {
                    Err(error) => ctx
                        .out
                        .push(reply(token, Response::Sync(sync_error(error)))),
                    Ok(group) => {
                        group.expire(&mut ctx);
                        group.sync(req, &mut ctx);
                        group.expire(&mut ctx);
                    }
                }
            }
            Event::Heartbeat(req) => {
                let token = req.token;
                match group_for(&mut self.groups, &req.group_id) {
                    Err(error) => ctx.out.push(reply(
                        token,
                        Response::Heartbeat(HeartbeatResponse { error: Some(error) }),
                    )),
                    Ok(group) => {
                        group.expire(&mut ctx);
                        group.heartbeat(req, &mut ctx);
                        group.expire(&mut ctx);
                    }
                }
            }
            Event::Leave(req) => {
                if req.group_id.is_empty() {
                    let response = LeaveResponse {
                        error: Some(ErrorCode::InvalidGroupId),
                        members: Vec::new(),
                    };
                    ctx.out.push(reply(req.token, Response::Leave(response)));
                } else if let Some(group) = self.groups.get_mut(&req.group_id) {
                    group.expire(&mut ctx);
                    group.leave(req.token, req.members, &mut ctx);
                    group.expire(&mut ctx);
                } else {
                    let members = req
                        .members
                        .into_iter()
                        .map(|m| LeaveMemberResponse {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            error: Some(ErrorCode::UnknownMemberId),
                        })
                        .collect();
                    ctx.out.push(reply(
                        req.token,
                        Response::Leave(LeaveResponse {
                            error: None,
                            members,
                        }),
                    ));
                }
            }
            Event::OffsetCommit(req) => {
                let group = match self.groups.entry(req.group_id.clone()) {
                    Entry::Occupied(entry) => Some(entry.into_mut()),
                    // A client that does not use group management commits with generation -1.
                    Entry::Vacant(entry) if req.generation < 0 => {
                        Some(entry.insert(ClassicGroup::new(req.group_id.clone(), now_ms)))
                    }
                    Entry::Vacant(_) => None,
                };
                match group {
                    Some(group) => {
                        group.expire(&mut ctx);
                        group.offset_commit(req, &mut ctx);
                        group.expire(&mut ctx);
                    }
                    None => {
                        let response = OffsetCommitResponse {
                            error: Some(ErrorCode::IllegalGeneration),
                        };
                        ctx.out
                            .push(reply(req.token, Response::OffsetCommit(response)));
                    }
                }
            }
            Event::Delete(req) => {
                let mut results = Vec::with_capacity(req.group_ids.len());
                for group_id in req.group_ids {
                    if let Some(group) = self.groups.get_mut(&group_id) {
                        group.expire(&mut ctx);
                    }
                    let error = match self.groups.get(&group_id).map(ClassicGroup::state) {
                        None | Some(GroupState::Dead) => Some(ErrorCode::GroupIdNotFound),
                        Some(GroupState::Empty) => {
                            if let Some(mut group) = self.groups.remove(&group_id) {
                                group.mark_dead(now_ms);
                            }
                            tracing::info!(group_id, "group deleted");
                            ctx.out.push(Command::DeleteGroup {
                                group_id: group_id.clone(),
                            });
                            None
                        }
                        Some(_) => Some(ErrorCode::NonEmptyGroup),
                    };
                    results.push((group_id, error));
                }
                ctx.out.push(reply(
                    req.token,
                    Response::Delete(DeleteGroupsResponse { results }),
                ));
            }
            Event::Load(snapshot) => {
                let group = ClassicGroup::from_snapshot(snapshot, now_ms);
                self.groups.insert(group.group_id().to_owned(), group);
            }
            Event::Tick => {
                let mut ids: Vec<&String> = self.groups.keys().collect();
                ids.sort();
                let ids: Vec<String> = ids.into_iter().cloned().collect();
                for id in ids {
                    if let Some(group) = self.groups.get_mut(&id) {
                        group.expire(&mut ctx);
                    }
                }
            }
        }
        out
    }

    /// The earliest time a [`Event::Tick`] has something to do.
    pub(crate) fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(ClassicGroup::next_deadline_ms)
            .min()
    }

    /// DescribeGroups for one group; `None` if the coordinator does not know it (Kafka then
    /// describes it as Dead with no members).
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.groups.get(group_id).map(ClassicGroup::describe)
    }

    /// ListGroups, sorted by group id.
    pub(crate) fn list(&self) -> Vec<GroupListing> {
        let mut groups: Vec<GroupListing> = self
            .groups
            .values()
            .map(|g| GroupListing {
                group_id: g.group_id().to_owned(),
                protocol_type: g.protocol_type().to_owned(),
                state: g.state(),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups
    }

    /// The group's state, `None` if unknown (the offsets store expires offsets of Empty groups).
    #[cfg(test)]
    pub(crate) fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(ClassicGroup::state)
    }

    /// The group's current generation, `None` if unknown.
    #[cfg(test)]
    pub(crate) fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(ClassicGroup::generation)
    }
}

/// The group a Sync or Heartbeat is for.
fn group_for<'a>(
    groups: &'a mut HashMap<String, ClassicGroup>,
    group_id: &str,
) -> Result<&'a mut ClassicGroup, ErrorCode> {
    if group_id.is_empty() {
        return Err(ErrorCode::InvalidGroupId);
    }
    groups.get_mut(group_id).ok_or(ErrorCode::UnknownMemberId)
}

fn reply(token: RequestToken, response: Response) -> Command {
    Command::Reply { token, response }
}

fn reply_join_error(req: &JoinGroup, error: ErrorCode) -> Command {
    reply(req.token, Response::Join(join_error(&req.member_id, error)))
}
