//! Scenario tests of the classic group state machine: each drives the coordinator with events at
//! chosen times and asserts the commands.

use super::commands::{JoinResponse, SyncResponse};
use bytes::Bytes;
use fjord_protocol::ErrorCode;
use uuid::Uuid;

use super::*;

const GROUP: &str = "g";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 3_000;

struct Harness {
    coordinator: GroupCoordinator,
    now: i64,
    next_token: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(GroupConfig::default())
    }

    fn with_config(config: GroupConfig) -> Self {
        let mut n = 0u128;
        let uuids = Box::new(move || {
            n += 1;
            Uuid::from_u128(n)
        });
        Self {
            coordinator: GroupCoordinator::with_uuid_source(config, uuids),
            now: 1_000_000,
            next_token: 0,
        }
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    fn send(&mut self, event: Event) -> Vec<Command> {
        self.coordinator.handle(self.now, event)
    }

    fn advance(&mut self, ms: i64) -> Vec<Command> {
        self.now += ms;
        self.send(Event::Tick)
    }

    fn join_request(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        protocols: &[(&str, &str)],
    ) -> JoinGroup {
        JoinGroup {
            token: self.token(),
            group_id: GROUP.to_owned(),
            member_id: member_id.to_owned(),
            group_instance_id: instance.map(str::to_owned),
            protocol_type: "consumer".to_owned(),
            protocols: protocols
                .iter()
                .map(|(name, meta)| Protocol {
                    name: (*name).to_owned(),
                    metadata: Bytes::from(meta.to_string()),
                })
                .collect(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            reason: None,
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    /// Sends a JoinGroup; returns its token and the commands.
    fn join(&mut self, member_id: &str, instance: Option<&str>) -> (RequestToken, Vec<Command>) {
        let req = self.join_request(member_id, instance, &[("range", "topics")]);
        self.join_with(req)
    }

    fn join_with(&mut self, req: JoinGroup) -> (RequestToken, Vec<Command>) {
        let token = req.token;
        (token, self.send(Event::Join(req)))
    }

    /// The MEMBER_ID_REQUIRED round trip of a dynamic member: returns the new id and the token of
    /// its second JoinGroup, which waits for the join phase.
    fn join_new_member(&mut self) -> (String, RequestToken) {
        let (token, commands) = self.join("", None);
        let response = join_reply(&commands, token);
        assert_eq!(response.error, Some(ErrorCode::MemberIdRequired));
        let member_id = response.member_id.clone();
        let (token, commands) = self.join(&member_id, None);
        assert!(
            find_reply(&commands, token).is_none(),
            "second join waits: {commands:?}"
        );
        (member_id, token)
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> (RequestToken, Vec<Command>) {
        let token = self.token();
        let event = Event::Sync(SyncGroup {
            token,
            group_id: GROUP.to_owned(),
            member_id: member_id.to_owned(),
            generation,
            group_instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: Some("range".to_owned()),
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), Bytes::from(a.to_string())))
                .collect(),
        });
        (token, self.send(event))
    }

    fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        instance: Option<&str>,
    ) -> Option<ErrorCode> {
        let token = self.token();
        let commands = self.send(Event::Heartbeat(Heartbeat {
            token,
            group_id: GROUP.to_owned(),
            member_id: member_id.to_owned(),
            generation,
            group_instance_id: instance.map(str::to_owned),
        }));
        match find_reply(&commands, token) {
            Some(Response::Heartbeat(r)) => r.error,
            other => panic!("no heartbeat reply: {other:?}"),
        }
    }

    fn leave(&mut self, members: &[(&str, Option<&str>)]) -> (LeaveResponse, Vec<Command>) {
        let token = self.token();
        let commands = self.send(Event::Leave(LeaveGroup {
            token,
            group_id: GROUP.to_owned(),
            members: members
                .iter()
                .map(|(m, i)| LeavingMember {
                    member_id: (*m).to_owned(),
                    group_instance_id: i.map(str::to_owned),
                })
                .collect(),
        }));
        match find_reply(&commands, token) {
            Some(Response::Leave(r)) => (r.clone(), commands),
            other => panic!("no leave reply: {other:?}"),
        }
    }

    /// Waits out the initial delay: once, or twice if more members joined during the first.
    fn complete_initial_join(&mut self, members: usize) -> Vec<Command> {
        self.advance(if members > 1 { 2 * DELAY_MS } else { DELAY_MS })
    }

    fn state(&self) -> Option<GroupState> {
        self.coordinator.group_state(GROUP)
    }

    /// `n` dynamic members joined, synced and Stable at generation 1; member i is assigned "a{i}".
    fn stable_group(&mut self, n: usize) -> Vec<String> {
        let joined: Vec<(String, RequestToken)> = (0..n).map(|_| self.join_new_member()).collect();
        let commands = self.complete_initial_join(n);
        for (_, token) in &joined {
            assert_eq!(join_reply(&commands, *token).generation, 1);
        }
        let ids: Vec<String> = joined.into_iter().map(|(id, _)| id).collect();
        let assignments: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), format!("a{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_str()))
            .collect();
        self.sync(&ids[0], 1, &pairs);
        for id in &ids[1..] {
            self.sync(id, 1, &[]);
        }
        assert_eq!(self.state(), Some(GroupState::Stable));
        ids
    }
}

fn find_reply(commands: &[Command], token: RequestToken) -> Option<&Response> {
    commands.iter().find_map(|c| match c {
        Command::Reply { token: t, response } if *t == token => Some(response),
        _ => None,
    })
}

fn join_reply(commands: &[Command], token: RequestToken) -> &JoinResponse {
    match find_reply(commands, token) {
        Some(Response::Join(r)) => r,
        other => panic!("no join reply for {token:?}: {other:?} in {commands:?}"),
    }
}

fn sync_reply(commands: &[Command], token: RequestToken) -> &SyncResponse {
    match find_reply(commands, token) {
        Some(Response::Sync(r)) => r,
        other => panic!("no sync reply for {token:?}: {other:?} in {commands:?}"),
    }
}

fn persisted(commands: &[Command]) -> Vec<&GroupSnapshot> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::PersistGroup(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn first_join_gets_member_id_required_then_completes_after_initial_delay() {
    let mut h = Harness::new();
    let (token, commands) = h.join("", None);
    let response = join_reply(&commands, token);
    assert_eq!(response.error, Some(ErrorCode::MemberIdRequired));
    assert_eq!(response.member_id, format!("client-{}", Uuid::from_u128(1)));
    assert_eq!(h.state(), Some(GroupState::Empty));

    let member_id = response.member_id.clone();
    let (token, commands) = h.join(&member_id, None);
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(h.coordinator.next_deadline_ms(), Some(h.now + DELAY_MS));

    assert!(h.advance(DELAY_MS - 1).is_empty());
    let commands = h.advance(1);
    let response = join_reply(&commands, token);
    assert_eq!(response.error, None);
    assert_eq!(response.generation, 1);
    assert_eq!(response.leader, member_id);
    assert_eq!(response.member_id, member_id);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(response.members.len(), 1);
    assert_eq!(response.members[0].metadata, Bytes::from_static(b"topics"));
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
}

#[test]
fn join_without_require_known_member_id_joins_at_once() {
    let mut h = Harness::new();
    let mut req = h.join_request("", None, &[("range", "t")]);
    req.require_known_member_id = false;
    let (token, commands) = h.join_with(req);
    assert!(commands.is_empty());
    let commands = h.advance(DELAY_MS);
    assert_eq!(
        join_reply(&commands, token).member_id,
        format!("client-{}", Uuid::from_u128(1))
    );
}

#[test]
fn initial_delay_is_extended_while_members_keep_joining_up_to_rebalance_timeout() {
    let mut h = Harness::new();
    let (_, first) = h.join_new_member();
    h.advance(2_000);
    let (_, second) = h.join_new_member();
    // The first delay ends, but a member joined meanwhile: wait another delay.
    let commands = h.advance(1_000);
    assert!(commands.is_empty(), "{commands:?}");
    let commands = h.advance(DELAY_MS);
    assert_eq!(join_reply(&commands, first).generation, 1);
    assert_eq!(join_reply(&commands, second).generation, 1);

    // Members joining every 2 s cannot hold the group beyond the rebalance timeout.
    let mut h = Harness::new();
    let start = h.now;
    let (_, first) = h.join_new_member();
    loop {
        h.now += 2_000;
        let commands = h.send(Event::Tick);
        if find_reply(&commands, first).is_some() {
            break;
        }
        h.join_new_member();
        assert!(
            h.now - start <= i64::from(REBALANCE_MS) + DELAY_MS,
            "initial delay never ended"
        );
    }
}

#[test]
fn three_members_leader_gets_member_list_and_sync_distributes_assignments() {
    let mut h = Harness::new();
    let joined: Vec<(String, RequestToken)> = (0..3).map(|_| h.join_new_member()).collect();
    let commands = h.complete_initial_join(2);
    let leader = &joined[0].0;
    for (i, (id, token)) in joined.iter().enumerate() {
        let response = join_reply(&commands, *token);
        assert_eq!(response.error, None);
        assert_eq!(&response.leader, leader);
        assert_eq!(response.generation, 1);
        if i == 0 {
            let ids: Vec<&str> = response
                .members
                .iter()
                .map(|m| m.member_id.as_str())
                .collect();
            assert_eq!(
                ids,
                joined.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>()
            );
        } else {
            assert!(response.members.is_empty(), "follower {id} got members");
        }
    }

    // Followers' syncs wait for the leader.
    let (f1, commands) = h.sync(&joined[1].0, 1, &[]);
    assert!(commands.is_empty());
    let (leader_token, commands) = h.sync(leader, 1, &[(leader, "a0"), (&joined[1].0, "a1")]);
    let snapshots = persisted(&commands);
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].generation, 1);
    assert_eq!(snapshots[0].leader.as_deref(), Some(leader.as_str()));
    assert_eq!(
        snapshots[0].members[1].assignment,
        Bytes::from_static(b"a1")
    );
    // The record is written before the replies go out.
    assert!(matches!(commands[0], Command::PersistGroup(_)));
    assert_eq!(
        sync_reply(&commands, leader_token).assignment,
        Bytes::from_static(b"a0")
    );
    assert_eq!(
        sync_reply(&commands, f1).assignment,
        Bytes::from_static(b"a1")
    );
    assert_eq!(
        sync_reply(&commands, f1).protocol_name.as_deref(),
        Some("range")
    );
    assert_eq!(h.state(), Some(GroupState::Stable));

    // A member the leader left out gets an empty assignment.
    let (f2, commands) = h.sync(&joined[2].0, 1, &[]);
    let response = sync_reply(&commands, f2);
    assert_eq!(response.error, None);
    assert!(response.assignment.is_empty());
}

#[test]
fn session_expiry_triggers_rebalance_and_survivors_rejoin_with_new_generation() {
    let mut h = Harness::new();
    let ids = h.stable_group(3);
    // Members 0 and 1 heartbeat; member 2 goes silent.
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&ids[0], 1, None), None);
        assert_eq!(h.heartbeat(&ids[1], 1, None), None);
    }
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.advance(1_000);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat(&ids[0], 1, None),
        Some(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(
        h.heartbeat(&ids[2], 1, None),
        Some(ErrorCode::UnknownMemberId)
    );

    let (t0, commands) = h.join(&ids[0], None);
    assert!(commands.is_empty());
    let (t1, commands) = h.join(&ids[1], None);
    // Everyone left rejoined: the join phase completes at once.
    assert_eq!(join_reply(&commands, t0).generation, 2);
    assert_eq!(join_reply(&commands, t1).generation, 2);
    assert_eq!(join_reply(&commands, t0).members.len(), 2);
    assert_eq!(
        h.heartbeat(&ids[0], 1, None),
        Some(ErrorCode::IllegalGeneration)
    );
    assert_eq!(h.heartbeat(&ids[0], 2, None), None);
}

#[test]
fn last_member_expiring_leaves_the_group_empty_and_persisted() {
    let mut h = Harness::new();
    h.stable_group(1);
    assert_eq!(h.advance(i64::from(SESSION_MS) - 1), []);
    // No member is left to wait for: the rebalance ends at once with an empty group.
    let commands = h.advance(1);
    assert_eq!(h.state(), Some(GroupState::Empty));
    let snapshots = persisted(&commands);
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].generation, 2);
    assert!(snapshots[0].members.is_empty());
    assert_eq!(snapshots[0].protocol_name, None);
    assert_eq!(h.coordinator.next_deadline_ms(), None);
}

#[test]
fn leave_triggers_rebalance_and_last_leave_empties_group() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let (response, _) = h.leave(&[(&ids[1], None)]);
    assert_eq!(response.error, None);
    assert_eq!(response.members[0].error, None);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let (token, commands) = h.join(&ids[0], None);
    assert_eq!(join_reply(&commands, token).generation, 2);
    assert_eq!(join_reply(&commands, token).members.len(), 1);

    let (_, commands) = h.leave(&[(&ids[0], None)]);
    // Nobody is left to wait for: the join phase completes immediately.
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert_eq!(persisted(&commands)[0].generation, 3);
}

#[test]
fn leaving_while_others_wait_in_join_phase_completes_it() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let (token, commands) = h.join(&ids[0], None); // leader rejoin: rebalance
    assert!(commands.is_empty());
    let (_, commands) = h.leave(&[(&ids[1], None)]);
    assert_eq!(join_reply(&commands, token).generation, 2);
}

#[test]
fn batch_leave_reports_each_member() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let (response, _) = h.leave(&[
        (&ids[0], None),
        ("nobody", None),
        (&ids[1], Some("not-mine")),
    ]);
    let errors: Vec<Option<ErrorCode>> = response.members.iter().map(|m| m.error).collect();
    assert_eq!(errors, [None, Some(ErrorCode::UnknownMemberId), None]);
    assert_eq!(
        h.coordinator.describe(GROUP).map(|d| d.members.len()),
        Some(0)
    );

    // A group the coordinator does not know: every member is unknown.
    let token = h.token();
    let commands = h.send(Event::Leave(LeaveGroup {
        token,
        group_id: "other".to_owned(),
        members: vec![LeavingMember {
            member_id: "m".to_owned(),
            group_instance_id: None,
        }],
    }));
    match find_reply(&commands, token) {
        Some(Response::Leave(r)) => {
            assert_eq!(r.members[0].error, Some(ErrorCode::UnknownMemberId))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_errors_by_generation_member_and_state() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    assert_eq!(h.heartbeat(&ids[1], 1, None), None);
    assert_eq!(
        h.heartbeat(&ids[1], 0, None),
        Some(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat("stranger", 1, None),
        Some(ErrorCode::UnknownMemberId)
    );
    h.join(&ids[0], None); // the leader rejoins: rebalance
    assert_eq!(
        h.heartbeat(&ids[1], 1, None),
        Some(ErrorCode::RebalanceInProgress)
    );
    let (token, commands) = h.sync(&ids[1], 1, &[]);
    assert_eq!(
        sync_reply(&commands, token).error,
        Some(ErrorCode::RebalanceInProgress)
    );

    let token = h.token();
    let commands = h.send(Event::Heartbeat(Heartbeat {
        token,
        group_id: String::new(),
        member_id: ids[1].clone(),
        generation: 1,
        group_instance_id: None,
    }));
    assert_eq!(
        find_reply(&commands, token),
        Some(&Response::Heartbeat(HeartbeatResponse {
            error: Some(ErrorCode::InvalidGroupId)
        }))
    );
}

#[test]
fn sync_validates_generation_and_protocol() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    let (token, commands) = h.sync(&ids[0], 7, &[]);
    assert_eq!(
        sync_reply(&commands, token).error,
        Some(ErrorCode::IllegalGeneration)
    );
    let token = h.token();
    let commands = h.send(Event::Sync(SyncGroup {
        token,
        group_id: GROUP.to_owned(),
        member_id: ids[0].clone(),
        generation: 1,
        group_instance_id: None,
        protocol_type: Some("connect".to_owned()),
        protocol_name: None,
        assignments: Vec::new(),
    }));
    assert_eq!(
        sync_reply(&commands, token).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    // Stable: a repeated sync returns the current assignment.
    let (token, commands) = h.sync(&ids[0], 1, &[]);
    assert_eq!(
        sync_reply(&commands, token).assignment,
        Bytes::from_static(b"a0")
    );
}

#[test]
fn follower_rejoining_unchanged_in_stable_gets_current_generation_without_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let (token, commands) = h.join(&ids[1], None);
    let response = join_reply(&commands, token);
    assert_eq!(response.generation, 1);
    assert!(response.members.is_empty());
    assert_eq!(h.state(), Some(GroupState::Stable));

    // Changed metadata does trigger a rebalance.
    let req = h.join_request(&ids[1], None, &[("range", "more-topics")]);
    let (_, commands) = h.join_with(req);
    assert!(commands.is_empty());
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
}

#[test]
fn leader_rejoining_in_stable_triggers_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let (leader, commands) = h.join(&ids[0], None);
    assert!(commands.is_empty());
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let (follower, commands) = h.join(&ids[1], None);
    assert_eq!(join_reply(&commands, leader).generation, 2);
    assert_eq!(join_reply(&commands, leader).members.len(), 2);
    assert!(join_reply(&commands, follower).members.is_empty());
}

#[test]
fn member_that_never_rejoins_is_removed_after_rebalance_timeout() {
    let mut h = Harness::new();
    let ids = h.stable_group(3);
    let start = h.now;
    let (t0, _) = h.join(&ids[0], None);
    let (t1, _) = h.join(&ids[1], None);
    // Member 2 keeps heartbeating (so its session stays alive) but never rejoins.
    let mut commands = Vec::new();
    for _ in 0..10 {
        commands = h.advance(3_000);
        if find_reply(&commands, t0).is_some() {
            break;
        }
        assert_eq!(
            h.heartbeat(&ids[2], 1, None),
            Some(ErrorCode::RebalanceInProgress)
        );
    }
    assert_eq!(h.now - start, i64::from(REBALANCE_MS));
    assert_eq!(join_reply(&commands, t0).generation, 2);
    assert_eq!(join_reply(&commands, t0).members.len(), 2);
    assert_eq!(join_reply(&commands, t1).generation, 2);
    assert_eq!(
        h.heartbeat(&ids[2], 1, None),
        Some(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn pending_member_that_never_rejoins_lapses_after_session_timeout() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    // A new member gets an id but never comes back: the group waits for it only until its
    // session timeout.
    let (t, commands) = h.join("", None);
    assert_eq!(
        join_reply(&commands, t).error,
        Some(ErrorCode::MemberIdRequired)
    );
    let (token, commands) = h.join(&ids[0], None); // the leader rejoins: rebalance
    assert!(commands.is_empty());
    assert!(h.advance(i64::from(SESSION_MS) - 1).is_empty());
    let commands = h.advance(1);
    assert_eq!(join_reply(&commands, token).generation, 2);
}

#[test]
fn member_that_does_not_sync_in_time_is_removed() {
    let mut h = Harness::new();
    let joined: Vec<(String, RequestToken)> = (0..2).map(|_| h.join_new_member()).collect();
    h.complete_initial_join(2);
    let (leader, _) = h.sync(&joined[0].0, 1, &[]);
    let _ = leader;
    // The follower never syncs.
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.heartbeat(&joined[0].0, 1, None);
    let mut rebalanced = false;
    for _ in 0..10 {
        h.advance(3_000);
        h.heartbeat(&joined[0].0, 1, None);
        h.heartbeat(&joined[1].0, 1, None);
        if h.state() == Some(GroupState::PreparingRebalance) {
            rebalanced = true;
            break;
        }
    }
    assert!(rebalanced);
    assert_eq!(
        h.heartbeat(&joined[1].0, 1, None),
        Some(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn static_member_restart_keeps_assignment_without_generation_bump() {
    let mut h = Harness::new();
    let (t0, _) = h.join("", Some("instance-a"));
    let (t1, _) = h.join("", Some("instance-b"));
    let commands = h.complete_initial_join(2);
    let a = join_reply(&commands, t0).member_id.clone();
    let b = join_reply(&commands, t1).member_id.clone();
    assert!(a.starts_with("instance-a-"), "{a}");
    h.sync(&a, 1, &[(&a, "pa"), (&b, "pb")]);
    h.sync(&b, 1, &[]);

    // b restarts within its session and joins with its instance id and no member id.
    h.advance(2_000);
    let (token, commands) = h.join("", Some("instance-b"));
    let response = join_reply(&commands, token);
    assert_eq!(response.error, None);
    assert_eq!(response.generation, 1);
    assert_eq!(response.leader, a);
    assert!(response.members.is_empty());
    let new_b = response.member_id.clone();
    assert_ne!(new_b, b);
    let snapshots = persisted(&commands);
    assert_eq!(snapshots.len(), 1);
    assert!(
        snapshots[0]
            .members
            .iter()
            .any(|m| m.member_id == new_b && m.assignment == "pb")
    );
    assert_eq!(h.state(), Some(GroupState::Stable));

    let (token, commands) = h.sync(&new_b, 1, &[]);
    assert_eq!(
        sync_reply(&commands, token).assignment,
        Bytes::from_static(b"pb")
    );
    assert_eq!(h.heartbeat(&a, 1, Some("instance-a")), None);

    // The old member id is fenced.
    assert_eq!(
        h.heartbeat(&b, 1, Some("instance-b")),
        Some(ErrorCode::FencedInstanceId)
    );
    let (token, commands) = h.join(&b, Some("instance-b"));
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::FencedInstanceId)
    );
    let (response, _) = h.leave(&[(&b, Some("instance-b"))]);
    assert_eq!(response.members[0].error, Some(ErrorCode::FencedInstanceId));
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn restarted_static_leader_is_told_to_skip_assignment() {
    let mut h = Harness::new();
    let (t0, _) = h.join("", Some("leader"));
    let commands = h.advance(DELAY_MS);
    let old = join_reply(&commands, t0).member_id.clone();
    h.sync(&old, 1, &[(&old, "p")]);

    // JoinGroup v9+: the new leader id, the members, and skip_assignment.
    let mut req = h.join_request("", Some("leader"), &[("range", "topics")]);
    req.supports_skip_assignment = true;
    let (token, commands) = h.join_with(req);
    let response = join_reply(&commands, token);
    assert!(response.skip_assignment);
    assert_eq!(response.leader, response.member_id);
    assert_eq!(response.members.len(), 1);

    // Older clients: the old leader id, so the restarted leader does not assign.
    let current = response.member_id.clone();
    let (token, commands) = h.join("", Some("leader"));
    let response = join_reply(&commands, token);
    assert!(!response.skip_assignment);
    assert_eq!(response.leader, current);
    assert_ne!(response.member_id, current);
    assert!(response.members.is_empty());
    assert_eq!(h.coordinator.generation(GROUP), Some(1));
}

#[test]
fn static_member_rejoining_with_other_protocol_triggers_rebalance() {
    let mut h = Harness::new();
    let (t0, _) = h.join("", Some("i"));
    let commands = h.advance(DELAY_MS);
    let member = join_reply(&commands, t0).member_id.clone();
    h.sync(&member, 1, &[]);
    let req = h.join_request("", Some("i"), &[("sticky", "x"), ("range", "topics")]);
    let (token, commands) = h.join_with(req);
    let response = join_reply(&commands, token);
    assert_eq!(response.generation, 2);
    assert_eq!(response.protocol_name.as_deref(), Some("sticky"));
}

#[test]
fn static_member_rejoining_during_completing_rebalance_fences_the_old_sync() {
    let mut h = Harness::new();
    let (ta, _) = h.join("", Some("a"));
    let (tb, _) = h.join("", Some("b"));
    let commands = h.complete_initial_join(2);
    let b = join_reply(&commands, tb).member_id.clone();
    let a = join_reply(&commands, ta).member_id.clone();
    let (b_sync, _) = h.sync(&b, 1, &[]);
    let (token, commands) = h.join("", Some("b"));
    assert_eq!(
        sync_reply(&commands, b_sync).error,
        Some(ErrorCode::FencedInstanceId)
    );
    assert!(find_reply(&commands, token).is_none());
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let (ta2, commands) = h.join(&a, Some("a"));
    assert_eq!(join_reply(&commands, ta2).generation, 2);
    assert_eq!(join_reply(&commands, token).generation, 2);
}

#[test]
fn static_member_is_removed_by_instance_id_and_expires_on_session_timeout() {
    let mut h = Harness::new();
    let (ta, _) = h.join("", Some("a"));
    let (tb, _) = h.join("", Some("b"));
    let commands = h.complete_initial_join(2);
    let a = join_reply(&commands, ta).member_id.clone();
    let _b = join_reply(&commands, tb).member_id.clone();
    h.sync(&a, 1, &[]);
    let (response, _) = h.leave(&[("", Some("b"))]);
    assert_eq!(response.members[0].error, None);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let (response, _) = h.leave(&[("", Some("zzz"))]);
    assert_eq!(response.members[0].error, Some(ErrorCode::UnknownMemberId));

    // a does not rejoin: being static, it stays until its session runs out.
    h.advance(i64::from(SESSION_MS));
    assert_eq!(
        h.coordinator.describe(GROUP).map(|d| d.members.len()),
        Some(0)
    );
}

#[test]
fn inconsistent_protocols_are_rejected() {
    let mut h = Harness::new();
    let req = h.join_request("", None, &[]);
    let (token, commands) = h.join_with(req);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );

    h.stable_group(1);
    let req = h.join_request("", None, &[("roundrobin", "t")]);
    let (token, commands) = h.join_with(req);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    let mut req = h.join_request("", None, &[("range", "t")]);
    req.protocol_type = "connect".to_owned();
    let (token, commands) = h.join_with(req);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );
}

#[test]
fn protocol_is_chosen_by_member_votes_among_common_protocols() {
    let mut h = Harness::new();
    let mut tokens = Vec::new();
    for protocols in [
        &[("range", "1"), ("sticky", "1")][..],
        &[("sticky", "2"), ("range", "2")][..],
        &[("sticky", "3"), ("range", "3"), ("roundrobin", "3")][..],
    ] {
        let mut req = h.join_request("", None, protocols);
        req.require_known_member_id = false;
        tokens.push(h.join_with(req).0);
    }
    let commands = h.complete_initial_join(2);
    let leader = join_reply(&commands, tokens[0]);
    assert_eq!(leader.protocol_name.as_deref(), Some("sticky"));
    let metadata: Vec<&[u8]> = leader.members.iter().map(|m| &m.metadata[..]).collect();
    assert_eq!(metadata, [b"1", b"2", b"3"]);
}

#[test]
fn session_timeout_outside_bounds_is_rejected() {
    let mut h = Harness::new();
    for timeout in [5_999, 1_800_001] {
        let mut req = h.join_request("", None, &[("range", "t")]);
        req.session_timeout_ms = timeout;
        let (token, commands) = h.join_with(req);
        assert_eq!(
            join_reply(&commands, token).error,
            Some(ErrorCode::InvalidSessionTimeout)
        );
    }
    assert_eq!(h.state(), None);
}

#[test]
fn invalid_group_id_and_unknown_group() {
    let mut h = Harness::new();
    let mut req = h.join_request("", None, &[("range", "t")]);
    req.group_id = String::new();
    let (token, commands) = h.join_with(req);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::InvalidGroupId)
    );
    let (token, commands) = h.join("someone", None);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::UnknownMemberId)
    );
    let (token, commands) = h.sync("someone", 1, &[]);
    assert_eq!(
        sync_reply(&commands, token).error,
        Some(ErrorCode::UnknownMemberId)
    );
    assert_eq!(h.state(), None);
}

#[test]
fn group_max_size_is_enforced() {
    let mut h = Harness::with_config(GroupConfig {
        max_size: 2,
        ..GroupConfig::default()
    });
    h.join_new_member();
    h.join_new_member();
    let (_, third) = h.join("", None);
    let member_id = join_reply(&third, RequestToken(h.next_token))
        .member_id
        .clone();
    let (token, commands) = h.join(&member_id, None);
    assert_eq!(
        join_reply(&commands, token).error,
        Some(ErrorCode::GroupMaxSizeReached)
    );
}

#[test]
fn delete_only_empty_groups() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    let delete = |h: &mut Harness| {
        let token = h.token();
        let commands = h.send(Event::Delete(DeleteGroups {
            token,
            group_ids: vec![GROUP.to_owned(), "missing".to_owned()],
        }));
        match find_reply(&commands, token) {
            Some(Response::Delete(r)) => (r.results.clone(), commands),
            other => panic!("{other:?}"),
        }
    };
    let (results, commands) = delete(&mut h);
    assert_eq!(results[0].1, Some(ErrorCode::NonEmptyGroup));
    assert_eq!(results[1].1, Some(ErrorCode::GroupIdNotFound));
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, Command::DeleteGroup { .. }))
    );

    h.leave(&[(&ids[0], None)]);
    h.advance(0);
    assert_eq!(h.state(), Some(GroupState::Empty));
    let (results, commands) = delete(&mut h);
    assert_eq!(results[0].1, None);
    assert!(commands.contains(&Command::DeleteGroup {
        group_id: GROUP.to_owned()
    }));
    assert_eq!(h.state(), None);
    assert_eq!(h.coordinator.describe(GROUP), None);
}

#[test]
fn offset_commit_checks_membership_and_generation() {
    let mut h = Harness::new();
    let commit = |h: &mut Harness, group: &str, member: &str, generation: i32| {
        let token = h.token();
        let commands = h.send(Event::OffsetCommit(OffsetCommit {
            token,
            group_id: group.to_owned(),
            member_id: member.to_owned(),
            generation,
            group_instance_id: None,
        }));
        match find_reply(&commands, token) {
            Some(Response::OffsetCommit(r)) => r.error,
            other => panic!("{other:?}"),
        }
    };
    // A client without group management.
    assert_eq!(commit(&mut h, "simple", "", -1), None);
    assert_eq!(h.coordinator.group_state("simple"), Some(GroupState::Empty));
    assert_eq!(
        commit(&mut h, "nowhere", "m", 3),
        Some(ErrorCode::IllegalGeneration)
    );

    let joined: Vec<(String, RequestToken)> = (0..2).map(|_| h.join_new_member()).collect();
    h.complete_initial_join(2);
    assert_eq!(
        commit(&mut h, GROUP, &joined[0].0, 1),
        Some(ErrorCode::RebalanceInProgress)
    );
    h.sync(&joined[0].0, 1, &[]);
    assert_eq!(commit(&mut h, GROUP, &joined[0].0, 1), None);
    assert_eq!(
        commit(&mut h, GROUP, &joined[0].0, 0),
        Some(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut h, GROUP, "", -1),
        Some(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut h, GROUP, "stranger", 1),
        Some(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn loaded_group_is_stable_and_its_members_expire_without_heartbeats() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let snapshot = h.coordinator.groups[GROUP].snapshot();

    let mut restarted = Harness::new();
    restarted.now = h.now;
    restarted.send(Event::Load(snapshot.clone()));
    assert_eq!(restarted.state(), Some(GroupState::Stable));
    assert_eq!(
        restarted.coordinator.groups[GROUP].snapshot().members,
        snapshot.members
    );
    assert_eq!(
        restarted.coordinator.groups[GROUP].leader(),
        Some(ids[0].as_str())
    );
    let (token, commands) = restarted.sync(&ids[1], 1, &[]);
    assert_eq!(
        sync_reply(&commands, token).assignment,
        Bytes::from_static(b"a1")
    );
    restarted.advance(i64::from(SESSION_MS) - 1);
    assert_eq!(restarted.heartbeat(&ids[0], 1, None), None);
    restarted.advance(1);
    // ids[1] synced (which counts as a heartbeat) but has now expired; ids[0] has not.
    assert_eq!(
        restarted.coordinator.groups[GROUP].member_ids(),
        [ids[0].as_str()]
    );
}

#[test]
fn describe_and_list_show_state_and_members() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let description = h.coordinator.describe(GROUP).expect("group");
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.state.as_str(), "Stable");
    assert_eq!(description.protocol, "range");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.members[1].member_id, ids[1]);
    assert_eq!(description.members[1].assignment, Bytes::from_static(b"a1"));
    assert_eq!(description.members[1].client_host, "/127.0.0.1");

    h.join(&ids[0], None);
    let description = h.coordinator.describe(GROUP).expect("group");
    assert_eq!(description.state, GroupState::PreparingRebalance);
    assert_eq!(description.protocol, "");
    assert!(description.members[1].assignment.is_empty());
    assert_eq!(
        h.coordinator.list(),
        [GroupListing {
            group_id: GROUP.to_owned(),
            protocol_type: "consumer".to_owned(),
            state: GroupState::PreparingRebalance
        }]
    );
}

#[test]
fn lost_join_response_is_resent_during_completing_rebalance() {
    let mut h = Harness::new();
    let (a, _) = h.join_new_member();
    let (b, _) = h.join_new_member();
    h.complete_initial_join(2);
    let (token, commands) = h.join(&a, None);
    let response = join_reply(&commands, token);
    assert_eq!(response.generation, 1);
    assert_eq!(response.members.len(), 2);
    let (token, commands) = h.join(&b, None);
    assert!(join_reply(&commands, token).members.is_empty());
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
}

#[test]
fn rebalance_during_completing_rebalance_answers_waiting_syncs() {
    let mut h = Harness::new();
    let (a, _) = h.join_new_member();
    let (b, _) = h.join_new_member();
    h.complete_initial_join(2);
    let (b_sync, _) = h.sync(&b, 1, &[]);
    let (t, commands) = h.join("", None);
    assert_eq!(
        join_reply(&commands, t).error,
        Some(ErrorCode::MemberIdRequired)
    );
    let new = join_reply(&commands, t).member_id.clone();
    let (_, commands) = h.join(&new, None);
    assert_eq!(
        sync_reply(&commands, b_sync).error,
        Some(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let _ = a;
}

#[test]
fn new_member_waiting_in_a_long_join_phase_is_dropped_after_the_join_timeout() {
    let mut h = Harness::new();
    let (old, _) = h.join_new_member();
    h.complete_initial_join(1);
    h.sync(&old, 1, &[]);
    let mut req = h.join_request("", None, &[("range", "t")]);
    req.require_known_member_id = false;
    req.rebalance_timeout_ms = 600_000;
    let (new, _) = h.join_with(req);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    // The old member heartbeats but never rejoins; the join phase lasts 600 s, but the new
    // member's JoinGroup is dropped after 300 s (the client will retry).
    let start = h.now;
    loop {
        let commands = h.advance(3_000);
        h.heartbeat(&old, 1, None);
        if let Some(Response::Join(response)) = find_reply(&commands, new) {
            assert_eq!(response.error, Some(ErrorCode::UnknownMemberId));
            break;
        }
    }
    assert_eq!(h.now - start, 300_000);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.coordinator.describe(GROUP).map(|d| d.members.len()),
        Some(1)
    );
}
