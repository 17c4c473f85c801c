//! One classic group: Kafka's GroupMetadata and the GroupCoordinator rules that move it between
//! states. Every operation appends its effects to [`Ctx::out`].

mod join;
mod requests;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use fjord_protocol::ErrorCode;

use super::commands::{Command, JoinMember, JoinResponse, Response, SyncResponse};
use super::config::GroupConfig;
use super::events::{Protocol, RequestToken};
use super::member::Member;
use super::snapshot::{GroupDescription, GroupSnapshot, MemberDescription, MemberSnapshot};

/// The classic group states, named as Kafka names them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GroupState {
    /// No members (it may still have committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Join phase done; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name ListGroups and DescribeGroups use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// When the join phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// `group.initial.rebalance.delay.ms` for a group that was empty: never completes early, and
    /// waits another delay (up to `remaining_ms` in all) each time a new member joined meanwhile.
    Initial {
        deadline_ms: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// The rebalance timeout: completes early once every member has rejoined.
    Rebalance { deadline_ms: i64 },
}

impl JoinTimer {
    fn deadline_ms(self) -> i64 {
        match self {
            Self::Initial { deadline_ms, .. } | Self::Rebalance { deadline_ms } => deadline_ms,
        }
    }
}

/// What an operation needs from the coordinator: the time, the settings and where effects go.
pub(crate) struct Ctx<'a> {
    pub(crate) now_ms: i64,
    pub(crate) config: &'a GroupConfig,
    pub(crate) out: &'a mut Vec<Command>,
}

impl Ctx<'_> {
    fn reply(&mut self, token: RequestToken, response: Response) {
        self.out.push(Command::Reply { token, response });
    }

    fn join_error(&mut self, token: RequestToken, member_id: &str, error: ErrorCode) {
        self.reply(token, Response::Join(join_error(member_id, error)));
    }

    fn sync_error(&mut self, token: RequestToken, error: ErrorCode) {
        self.reply(token, Response::Sync(sync_error(error)));
    }
}

pub(crate) fn join_error(member_id: &str, error: ErrorCode) -> JoinResponse {
    JoinResponse {
        error: Some(error),
        generation: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        skip_assignment: false,
        member_id: member_id.to_owned(),
        members: Vec::new(),
    }
}

pub(crate) fn sync_error(error: ErrorCode) -> SyncResponse {
    SyncResponse {
        error: Some(error),
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    }
}

/// One classic group.
#[derive(Debug, Clone)]
pub(crate) struct ClassicGroup {
    group_id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In joining order.
    members: Vec<Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, with the time they lapse if unused.
    pending_members: HashMap<String, i64>,
    /// Members that have not sent SyncGroup since the join phase completed.
    pending_sync: HashSet<String>,
    sync_deadline_ms: Option<i64>,
    join_timer: Option<JoinTimer>,
    /// A new member joined during the initial delay, so the delay is extended.
    new_member_added: bool,
}

impl ClassicGroup {
    pub(crate) fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline_ms: None,
            join_timer: None,
            new_member_added: false,
        }
    }

    /// A group read back from its persisted record: Stable with its members (whose sessions
    /// start now), or Empty.
    pub(crate) fn from_snapshot(snapshot: GroupSnapshot, now_ms: i64) -> Self {
        let mut group = Self::new(snapshot.group_id, now_ms);
        group.generation = snapshot.generation;
        group.protocol_type =
            (!snapshot.protocol_type.is_empty()).then_some(snapshot.protocol_type);
        group.protocol_name = snapshot.protocol_name;
        group.state_timestamp_ms = snapshot.current_state_timestamp_ms;
        let protocol_name = group.protocol_name.clone().unwrap_or_default();
        group.members = snapshot
            .members
            .into_iter()
            .map(|m| Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols: vec![Protocol {
                    name: protocol_name.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
            })
            .collect();
        if group.members.is_empty() {
            group.protocol_name = None;
        } else {
            group.state = GroupState::Stable;
            group.leader = snapshot
                .leader
                .filter(|l| group.has(l))
                .or_else(|| group.members.first().map(|m| m.member_id.clone()));
        }
        group
    }

    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    #[cfg(test)]
    pub(crate) fn generation(&self) -> i32 {
        self.generation
    }

    pub(crate) fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    #[cfg(test)]
    pub(crate) fn member_ids(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.member_id.as_str()).collect()
    }

    /// The record to persist for the group as it is now.
    pub(crate) fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupSnapshot {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type().to_owned(),
            generation: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Kafka's GroupSummary: metadata and assignments only when Stable.
    pub(crate) fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type().to_owned(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }

    /// The earliest time at which [`expire`](Self::expire) has something to do.
    pub(crate) fn next_deadline_ms(&self) -> Option<i64> {
        let members = self.members.iter().filter_map(Member::expiry_deadline_ms);
        let pending = self.pending_members.values().copied();
        let sync = self
            .sync_deadline_ms
            .filter(|_| !self.pending_sync.is_empty());
        members
            .chain(pending)
            .chain(self.join_timer.map(JoinTimer::deadline_ms))
            .chain(sync)
            .min()
    }

    /// Marks the group deleted.
    pub(crate) fn mark_dead(&mut self, now_ms: i64) {
        self.transition(GroupState::Dead, now_ms);
        self.join_timer = None;
        self.sync_deadline_ms = None;
    }

    // ----- lookups -----

    fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    fn has(&self, member_id: &str) -> bool {
        self.member(member_id).is_some()
    }

    fn static_member_id(&self, instance_id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
            .map(|m| m.member_id.clone())
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// The longest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        tracing::debug!(group_id = %self.group_id, from = self.state.as_str(), to = state.as_str(), "group state");
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty type and protocol list;
    /// otherwise the type must match and one protocol must be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|p| {
                    self.members.iter().filter(|m| m.supports(&p.name)).count()
                        == self.members.len()
                })
        }
    }

    /// Kafka's `selectProtocol`: of the protocols every member supports, the one most members
    /// prefer; ties go to the first member's preference.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in &self.members {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for candidate in &candidates {
            let count = votes.get(candidate).copied().unwrap_or(0);
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((candidate, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
            .or_else(|| first.protocols.first().map(|p| p.name.clone()))
    }

    /// Kafka's `validateCurrentMember`: a static member's id must be the current one for its
    /// instance id, and the member must exist.
    fn validate_current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ErrorCode> {
        if let Some(current) = instance_id.and_then(|i| self.static_member_id(i))
            && current != member_id
        {
            tracing::info!(group_id = %self.group_id, member_id, instance_id, current, "fenced static member");
            return Some(ErrorCode::FencedInstanceId);
        }
        (!self.has(member_id)).then_some(ErrorCode::UnknownMemberId)
    }

    fn accept_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.has(member_id) || self.members.len() < max_size
            }
        }
    }

    fn current_join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn current_member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    // ----- membership changes -----

    fn add(&mut self, member: Member) {
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.push(member);
    }

    /// Takes a member out of the group (Kafka's `GroupMetadata.remove`), answering any request it
    /// has waiting with UNKNOWN_MEMBER_ID.
    fn remove(&mut self, member_id: &str, ctx: &mut Ctx<'_>) {
        if let Some(index) = self.members.iter().position(|m| m.member_id == member_id) {
            let member = self.members.remove(index);
            if let Some(token) = member.awaiting_join {
                ctx.join_error(token, "", ErrorCode::UnknownMemberId);
            }
            if let Some(token) = member.awaiting_sync {
                ctx.sync_error(token, ErrorCode::UnknownMemberId);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member_and_update_group(&mut self, member_id: &str, reason: &str, ctx: &mut Ctx<'_>) {
        self.remove(member_id, ctx);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(reason, ctx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(ctx),
        }
    }

    fn remove_pending_member_and_update_group(&mut self, member_id: &str, ctx: &mut Ctx<'_>) {
        self.pending_members.remove(member_id);
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(ctx);
        }
    }

    // ----- rebalance -----

    fn maybe_prepare_rebalance(&mut self, reason: &str, ctx: &mut Ctx<'_>) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(reason, ctx);
        }
    }

    fn prepare_rebalance(&mut self, reason: &str, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ErrorCode::RebalanceInProgress, ctx);
        }
        self.sync_deadline_ms = None;
        let rebalance_timeout = self.rebalance_timeout_ms();
        self.join_timer = Some(if self.state == GroupState::Empty {
            let delay = i64::from(ctx.config.initial_rebalance_delay_ms);
            JoinTimer::Initial {
                deadline_ms: ctx.now_ms + delay,
                delay_ms: delay,
                remaining_ms: (rebalance_timeout - delay).max(0),
            }
        } else {
            JoinTimer::Rebalance {
                deadline_ms: ctx.now_ms + rebalance_timeout,
            }
        });
        tracing::info!(
            group_id = %self.group_id,
            generation = self.generation,
            from = self.state.as_str(),
            reason,
            "preparing to rebalance group"
        );
        self.transition(GroupState::PreparingRebalance, ctx.now_ms);
        self.try_complete_join(ctx);
    }

    /// Completes the join phase early once everyone has rejoined (not during the initial delay).
    fn try_complete_join(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::PreparingRebalance
            && matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }))
            && self.has_all_members_joined()
        {
            self.complete_join(ctx);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, ctx: &mut Ctx<'_>) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &not_rejoined {
            tracing::info!(group_id = %self.group_id, member_id, "removing member that did not rejoin");
            self.remove(member_id, ctx);
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them or their sessions.
            tracing::warn!(group_id = %self.group_id, "no members rejoined; extending the join phase");
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline_ms: ctx.now_ms + self.rebalance_timeout_ms(),
            });
            return;
        }
        self.init_next_generation(ctx.now_ms);
        if self.state == GroupState::Empty {
            tracing::info!(group_id = %self.group_id, generation = self.generation, "group is empty");
            ctx.out.push(Command::PersistGroup(self.snapshot()));
            return;
        }
        tracing::info!(
            group_id = %self.group_id,
            generation = self.generation,
            protocol = self.protocol_name.as_deref().unwrap_or_default(),
            members = self.members.len(),
            "stabilizing group"
        );
        let leader_members = self.current_member_metadata();
        let now_ms = ctx.now_ms;
        let mut replies = Vec::new();
        for member in &mut self.members {
            if let Some(token) = member.awaiting_join.take() {
                let is_leader = self.leader.as_deref() == Some(member.member_id.as_str());
                replies.push((
                    token,
                    JoinResponse {
                        error: None,
                        generation: self.generation,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        leader: self.leader.clone().unwrap_or_default(),
                        skip_assignment: false,
                        member_id: member.member_id.clone(),
                        members: if is_leader {
                            leader_members.clone()
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
            member.reset_session(now_ms);
            member.is_new = false;
            self.pending_sync.insert(member.member_id.clone());
        }
        for (token, response) in replies {
            ctx.reply(token, Response::Join(response));
        }
        self.sync_deadline_ms = Some(ctx.now_ms + self.rebalance_timeout_ms());
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .member(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(member) => {
                self.leader = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
    }

    fn reset_and_propagate_assignment_error(&mut self, error: ErrorCode, ctx: &mut Ctx<'_>) {
        for member in &mut self.members {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), ctx);
    }

    /// Answers every waiting SyncGroup with the member's assignment (or `error`).
    fn propagate_assignment(&mut self, error: Option<ErrorCode>, ctx: &mut Ctx<'_>) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol_name.clone()),
            Some(_) => (None, None),
        };
        for member in &mut self.members {
            if let Some(token) = member.awaiting_sync.take() {
                ctx.reply(
                    token,
                    Response::Sync(SyncResponse {
                        error,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: if error.is_none() {
                            member.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    }),
                );
                member.reset_session(ctx.now_ms);
            }
        }
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    // ----- timers -----

    /// Runs every timer that is due: pending member ids lapse, sessions expire, the join phase
    /// ends and members that never synced are removed.
    pub(crate) fn expire(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now_ms;
        let mut lapsed: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        lapsed.sort();
        for member_id in lapsed {
            tracing::info!(group_id = %self.group_id, member_id, "pending member expired");
            self.remove_pending_member_and_update_group(&member_id, ctx);
        }

        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.is_expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            // An earlier removal may have changed what is waiting.
            if self.member(&member_id).is_some_and(|m| m.is_expired(now)) {
                tracing::info!(group_id = %self.group_id, member_id, "member session expired");
                self.remove_member_and_update_group(&member_id, "session timeout", ctx);
            }
        }

        while let Some(timer) = self.join_timer.filter(|t| t.deadline_ms() <= now) {
            match timer {
                JoinTimer::Initial {
                    deadline_ms,
                    delay_ms,
                    remaining_ms,
                } if self.new_member_added && remaining_ms != 0 => {
                    // Counted from when the timer fired, so coarse ticks change nothing.
                    self.new_member_added = false;
                    let delay = i64::from(ctx.config.initial_rebalance_delay_ms).min(remaining_ms);
                    self.join_timer = Some(JoinTimer::Initial {
                        deadline_ms: deadline_ms + delay,
                        delay_ms: delay,
                        remaining_ms: (remaining_ms - delay_ms).max(0),
                    });
                }
                _ => {
                    self.complete_join(ctx);
                    break;
                }
            }
        }

        if self.sync_deadline_ms.is_some_and(|d| d <= now) {
            self.sync_deadline_ms = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !self.pending_sync.is_empty()
            {
                let mut missing: Vec<String> = self.pending_sync.drain().collect();
                missing.sort();
                tracing::info!(group_id = %self.group_id, ?missing, "members did not sync in time");
                for member_id in &missing {
                    self.remove(member_id, ctx);
                }
                self.prepare_rebalance("members did not send SyncGroup", ctx);
            }
        }
    }
}
