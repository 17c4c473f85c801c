//! JoinGroup: new and known members, MEMBER_ID_REQUIRED, static members taking over their old
//! member id (KIP-345).

use bytes::Bytes;
use fjord_protocol::ErrorCode;
use uuid::Uuid;

use super::{ClassicGroup, Ctx, GroupState};
use crate::group::commands::{Command, JoinResponse, Response};
use crate::group::events::JoinGroup;
use crate::group::member::{Member, NEW_MEMBER_JOIN_TIMEOUT_MS};

impl ClassicGroup {
    /// A JoinGroup whose group id and session timeout the coordinator has checked.
    pub(crate) fn join(
        &mut self,
        req: JoinGroup,
        new_uuid: &mut dyn FnMut() -> Uuid,
        ctx: &mut Ctx<'_>,
    ) {
        if !self.accept_joining_member(&req.member_id, ctx.config.max_size) {
            let member_id = req.member_id.clone();
            self.remove(&member_id, ctx);
            ctx.join_error(req.token, "", ErrorCode::GroupMaxSizeReached);
        } else if req.member_id.is_empty() {
            self.new_member_join(req, new_uuid, ctx);
        } else {
            self.current_member_join(req, ctx);
        }
        self.try_complete_join(ctx);
    }

    fn new_member_join(
        &mut self,
        req: JoinGroup,
        new_uuid: &mut dyn FnMut() -> Uuid,
        ctx: &mut Ctx<'_>,
    ) {
        if self.state == GroupState::Dead {
            return ctx.join_error(
                req.token,
                &req.member_id,
                ErrorCode::CoordinatorNotAvailable,
            );
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return ctx.join_error(
                req.token,
                &req.member_id,
                ErrorCode::InconsistentGroupProtocol,
            );
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_member_id = format!("{prefix}-{}", new_uuid());
        match req.group_instance_id.clone() {
            Some(instance_id) => match self.static_member_id(&instance_id) {
                Some(old_member_id) => self.update_static_member_and_rebalance(
                    &instance_id,
                    &old_member_id,
                    new_member_id,
                    req,
                    ctx,
                ),
                None => self.add_member_and_rebalance(new_member_id, req, ctx),
            },
            None if req.require_known_member_id => {
                tracing::debug!(group_id = %self.group_id, member_id = %new_member_id, "member id required");
                self.pending_members.insert(
                    new_member_id.clone(),
                    ctx.now_ms + i64::from(req.session_timeout_ms),
                );
                ctx.join_error(req.token, &new_member_id, ErrorCode::MemberIdRequired);
            }
            None => self.add_member_and_rebalance(new_member_id, req, ctx),
        }
    }

    fn current_member_join(&mut self, req: JoinGroup, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::Dead {
            return ctx.join_error(
                req.token,
                &req.member_id,
                ErrorCode::CoordinatorNotAvailable,
            );
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return ctx.join_error(
                req.token,
                &req.member_id,
                ErrorCode::InconsistentGroupProtocol,
            );
        }
        if self.pending_members.contains_key(&req.member_id) {
            if req.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members.
                return ctx.join_error(req.token, &req.member_id, ErrorCode::UnknownServerError);
            }
            let member_id = req.member_id.clone();
            return self.add_member_and_rebalance(member_id, req, ctx);
        }
        if let Some(error) =
            self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return ctx.join_error(req.token, &req.member_id, error);
        }
        let member_id = req.member_id.clone();
        let matches = self
            .member(&member_id)
            .is_some_and(|m| m.matches(&req.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(
                &member_id,
                req,
                "member joining during rebalance",
                ctx,
            ),
            GroupState::CompletingRebalance if matches => {
                // It lost its JoinGroup response: send it again.
                let response = self.current_join_response(&member_id, self.is_leader(&member_id));
                ctx.reply(req.token, Response::Join(response));
            }
            GroupState::CompletingRebalance => {
                self.update_member_and_rebalance(&member_id, req, "member metadata changed", ctx)
            }
            GroupState::Stable if self.is_leader(&member_id) => {
                // The leader rejoins to have the assignment recomputed (e.g. topic metadata changed).
                self.update_member_and_rebalance(&member_id, req, "leader rejoined", ctx)
            }
            GroupState::Stable if !matches => {
                self.update_member_and_rebalance(&member_id, req, "member metadata changed", ctx)
            }
            GroupState::Stable => {
                let response = self.current_join_response(&member_id, false);
                ctx.reply(req.token, Response::Join(response));
            }
            GroupState::Empty | GroupState::Dead => {
                ctx.join_error(req.token, &member_id, ErrorCode::UnknownMemberId);
            }
        }
    }

    fn add_member_and_rebalance(&mut self, member_id: String, req: JoinGroup, ctx: &mut Ctx<'_>) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let member = Member {
            member_id,
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(req.token),
            awaiting_sync: None,
            is_new: true,
            session_deadline_ms: ctx.now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
        };
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        tracing::info!(
            group_id = %self.group_id,
            member_id = %member.member_id,
            reason = req.reason.as_deref().unwrap_or_default(),
            "member joins group"
        );
        self.add(member);
        self.maybe_prepare_rebalance("new member joined", ctx);
    }

    /// Kafka's `updateMember` + `maybePrepareRebalance`.
    fn update_member_and_rebalance(
        &mut self,
        member_id: &str,
        req: JoinGroup,
        reason: &str,
        ctx: &mut Ctx<'_>,
    ) {
        self.update_member(member_id, &req, ctx);
        self.maybe_prepare_rebalance(reason, ctx);
    }

    fn update_member(&mut self, member_id: &str, req: &JoinGroup, ctx: &mut Ctx<'_>) {
        let Some(member) = self.member_mut(member_id) else {
            return;
        };
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        if let Some(old) = member.awaiting_join.replace(req.token) {
            // A retried JoinGroup supersedes the earlier one; tell the earlier one to rejoin.
            ctx.join_error(old, member_id, ErrorCode::RebalanceInProgress);
        }
    }

    /// Kafka's `updateStaticMemberAndRebalance`: a known `group.instance.id` joined without a
    /// member id. It takes over the old member (which is fenced), without a rebalance if the
    /// group is Stable and its protocol stays the same.
    fn update_static_member_and_rebalance(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: String,
        req: JoinGroup,
        ctx: &mut Ctx<'_>,
    ) {
        let current_leader = self.leader.clone().unwrap_or_default();
        tracing::info!(
            group_id = %self.group_id,
            instance_id,
            old_member_id,
            new_member_id = %new_member_id,
            "static member rejoins with a new member id"
        );
        self.replace_static_member(old_member_id, &new_member_id, ctx);
        if let Some(member) = self.member_mut(&new_member_id) {
            member.reset_session(ctx.now_ms);
        }
        let old = self.member(&new_member_id).cloned();
        self.update_member(&new_member_id, &req, ctx);
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    // Persist the new member id; the member gets its assignment through SyncGroup.
                    ctx.out.push(Command::PersistGroup(self.snapshot()));
                    let token = self
                        .member_mut(&new_member_id)
                        .and_then(|m| m.awaiting_join.take());
                    let response = if req.supports_skip_assignment {
                        let is_leader = self.is_leader(&new_member_id);
                        JoinResponse {
                            skip_assignment: is_leader,
                            ..self.current_join_response(&new_member_id, is_leader)
                        }
                    } else {
                        // Older clients: name the old leader id so that a restarted leader does
                        // not compute an assignment the stable group would ignore.
                        JoinResponse {
                            leader: current_leader,
                            ..self.current_join_response(&new_member_id, false)
                        }
                    };
                    if let Some(token) = token {
                        ctx.reply(token, Response::Join(response));
                    }
                } else {
                    self.maybe_prepare_rebalance(
                        "static member rejoined with changed protocols",
                        ctx,
                    );
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may be assigning to the old member id: start over.
                self.prepare_rebalance("static member rejoined during CompletingRebalance", ctx);
            }
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                // A static member exists, so the group cannot be empty; undo to stay consistent.
                if let Some(old) = old {
                    self.members.retain(|m| m.member_id != new_member_id);
                    self.members.push(old);
                }
                ctx.join_error(req.token, "", ErrorCode::UnknownServerError);
            }
        }
    }

    /// Renames the member, fencing any request the old id has waiting.
    fn replace_static_member(
        &mut self,
        old_member_id: &str,
        new_member_id: &str,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(member) = self.member_mut(old_member_id) else {
            return;
        };
        let join = member.awaiting_join.take();
        let sync = member.awaiting_sync.take();
        member.member_id = new_member_id.to_owned();
        if let Some(token) = join {
            ctx.join_error(token, old_member_id, ErrorCode::FencedInstanceId);
        }
        if let Some(token) = sync {
            ctx.sync_error(token, ErrorCode::FencedInstanceId);
        }
        if self.is_leader(old_member_id) {
            self.leader = Some(new_member_id.to_owned());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.to_owned());
        }
    }
}
