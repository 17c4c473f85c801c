//! SyncGroup, Heartbeat, LeaveGroup and the membership check of OffsetCommit.

use std::collections::HashMap;

use bytes::Bytes;
use fjord_protocol::ErrorCode;

use super::{ClassicGroup, Ctx, GroupState};
use crate::group::commands::{
    Command, HeartbeatResponse, LeaveMemberResponse, LeaveResponse, OffsetCommitResponse, Response,
    SyncResponse,
};
use crate::group::events::{Heartbeat, LeavingMember, OffsetCommit, RequestToken, SyncGroup};

impl ClassicGroup {
    pub(crate) fn sync(&mut self, req: SyncGroup, ctx: &mut Ctx<'_>) {
        if let Some(error) = self.validate_sync(&req) {
            return ctx.sync_error(req.token, error);
        }
        match self.state {
            GroupState::Empty => ctx.sync_error(req.token, ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => {
                ctx.sync_error(req.token, ErrorCode::RebalanceInProgress)
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.member_mut(&req.member_id)
                    && let Some(old) = member.awaiting_sync.replace(req.token)
                {
                    ctx.sync_error(old, ErrorCode::RebalanceInProgress);
                }
                self.remove_pending_sync_member(&req.member_id);
                if self.is_leader(&req.member_id) {
                    let mut assignments: HashMap<String, Bytes> =
                        req.assignments.into_iter().collect();
                    for member in &mut self.members {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    tracing::info!(group_id = %self.group_id, generation = self.generation, "assignment received from leader");
                    self.transition(GroupState::Stable, ctx.now_ms);
                    ctx.out.push(Command::PersistGroup(self.snapshot()));
                    self.propagate_assignment(None, ctx);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&req.member_id);
                if let Some(member) = self.member_mut(&req.member_id) {
                    member.reset_session(ctx.now_ms);
                    let assignment = member.assignment.clone();
                    let response = SyncResponse {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                    };
                    ctx.reply(req.token, Response::Sync(response));
                }
            }
            GroupState::Dead => ctx.sync_error(req.token, ErrorCode::CoordinatorNotAvailable),
        }
    }

    fn validate_sync(&self, req: &SyncGroup) -> Option<ErrorCode> {
        if self.state == GroupState::Dead {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
            .or_else(|| {
                if req.generation != self.generation {
                    Some(ErrorCode::IllegalGeneration)
                } else if req
                    .protocol_type
                    .as_ref()
                    .is_some_and(|t| self.protocol_type.as_ref() != Some(t))
                    || req
                        .protocol_name
                        .as_ref()
                        .is_some_and(|n| self.protocol_name.as_ref() != Some(n))
                {
                    Some(ErrorCode::InconsistentGroupProtocol)
                } else {
                    None
                }
            })
    }

    pub(crate) fn heartbeat(&mut self, req: Heartbeat, ctx: &mut Ctx<'_>) {
        let error = if self.state == GroupState::Dead {
            Some(ErrorCode::CoordinatorNotAvailable)
        } else if let Some(error) =
            self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
        {
            Some(error)
        } else if req.generation != self.generation {
            Some(ErrorCode::IllegalGeneration)
        } else {
            match self.state {
                GroupState::Empty => Some(ErrorCode::UnknownMemberId),
                GroupState::CompletingRebalance | GroupState::Stable => {
                    self.reset_session(&req.member_id, ctx.now_ms);
                    None
                }
                GroupState::PreparingRebalance => {
                    self.reset_session(&req.member_id, ctx.now_ms);
                    Some(ErrorCode::RebalanceInProgress)
                }
                GroupState::Dead => Some(ErrorCode::CoordinatorNotAvailable),
            }
        };
        ctx.reply(req.token, Response::Heartbeat(HeartbeatResponse { error }));
    }

    fn reset_session(&mut self, member_id: &str, now_ms: i64) {
        if let Some(member) = self.member_mut(member_id) {
            member.reset_session(now_ms);
        }
    }

    pub(crate) fn leave(
        &mut self,
        token: RequestToken,
        leaving: Vec<LeavingMember>,
        ctx: &mut Ctx<'_>,
    ) {
        if self.state == GroupState::Dead {
            let response = LeaveResponse {
                error: Some(ErrorCode::CoordinatorNotAvailable),
                members: Vec::new(),
            };
            return ctx.reply(token, Response::Leave(response));
        }
        let mut members = Vec::with_capacity(leaving.len());
        for LeavingMember {
            member_id,
            group_instance_id,
        } in leaving
        {
            let error = if member_id.is_empty() {
                // Removal of a static member by instance id alone.
                match group_instance_id
                    .as_deref()
                    .and_then(|i| self.static_member_id(i))
                {
                    Some(current) => {
                        self.remove_member_and_update_group(&current, "static member removed", ctx);
                        None
                    }
                    None => Some(ErrorCode::UnknownMemberId),
                }
            } else if self.pending_members.contains_key(&member_id) {
                self.remove_pending_member_and_update_group(&member_id, ctx);
                None
            } else if let Some(error) =
                self.validate_current_member(&member_id, group_instance_id.as_deref())
            {
                Some(error)
            } else {
                tracing::info!(group_id = %self.group_id, member_id, "member leaves group");
                self.remove_member_and_update_group(&member_id, "member left", ctx);
                None
            };
            members.push(LeaveMemberResponse {
                member_id,
                group_instance_id,
                error,
            });
        }
        ctx.reply(
            token,
            Response::Leave(LeaveResponse {
                error: None,
                members,
            }),
        );
    }

    /// Kafka's `validateOffsetCommit` and the state check of `doCommitOffsets`.
    pub(crate) fn offset_commit(&mut self, req: OffsetCommit, ctx: &mut Ctx<'_>) {
        let validation = if self.state == GroupState::Dead {
            Some(ErrorCode::CoordinatorNotAvailable)
        } else if req.generation >= 0
            || !req.member_id.is_empty()
            || req.group_instance_id.is_some()
        {
            self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
                .or_else(|| {
                    (req.generation != self.generation).then_some(ErrorCode::IllegalGeneration)
                })
        } else if self.state != GroupState::Empty {
            // Only members may commit to a group that has members.
            Some(ErrorCode::UnknownMemberId)
        } else {
            None
        };
        let error = validation.or_else(|| match self.state {
            GroupState::Empty => None,
            GroupState::Stable | GroupState::PreparingRebalance => {
                self.reset_session(&req.member_id, ctx.now_ms);
                None
            }
            GroupState::CompletingRebalance => Some(ErrorCode::RebalanceInProgress),
            GroupState::Dead => Some(ErrorCode::CoordinatorNotAvailable),
        });
        ctx.reply(
            req.token,
            Response::OffsetCommit(OffsetCommitResponse { error }),
        );
    }
}
