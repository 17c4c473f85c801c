//! `GroupMember`: a custom protocol type, leader-computed opaque assignments, rebalances seen by
//! heartbeats, and a dead member's session expiring.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use bytes::Bytes;
use fjord_client::{GroupMember, HeartbeatOutcome, JoinedGroup};

use crate::harness::TestBroker;

const NO_DELAY: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn member(broker: &TestBroker, session: Duration) -> GroupMember {
    GroupMember::new(
        &broker.bootstrap(),
        "it",
        "workers",
        "connect",
        session,
        Duration::from_secs(10),
    )
}

fn protocols(url: &str) -> Vec<(String, Bytes)> {
    vec![("default".to_string(), Bytes::from(url.to_string()))]
}

/// The leader hands every member "<member metadata>@<generation>".
fn plan(joined: &JoinedGroup) -> Vec<(String, Bytes)> {
    joined
        .members
        .iter()
        .map(|(id, meta)| {
            let text = format!("{}@{}", String::from_utf8_lossy(meta), joined.generation);
            (id.clone(), Bytes::from(text))
        })
        .collect()
}

/// Joins and syncs until an assignment arrives.
async fn join_and_sync(m: &mut GroupMember, url: &str) -> Result<(JoinedGroup, Bytes)> {
    for _ in 0..20 {
        let joined = m.join(&protocols(url)).await?;
        let assignments = if joined.is_leader() {
            plan(&joined)
        } else {
            Vec::new()
        };
        if let Some(a) = m.sync(assignments).await? {
            return Ok((joined, a));
        }
    }
    bail!("no assignment after 20 rounds")
}

#[tokio::test]
async fn two_members_get_leader_assignments_and_a_rebalance_when_one_leaves() -> Result<()> {
    let broker = TestBroker::start_with(NO_DELAY).await?;
    let mut a = member(&broker, Duration::from_secs(10));
    let (joined, assigned) = join_and_sync(&mut a, "a").await?;
    ensure!(joined.is_leader() && joined.protocol == "default");
    ensure!(assigned == Bytes::from(format!("a@{}", joined.generation)));

    // b joins: a's heartbeat reports the rebalance; both rejoin and receive the leader's plan.
    let mut b = member(&broker, Duration::from_secs(10));
    let b_join = tokio::spawn(async move {
        let r = join_and_sync(&mut b, "b").await;
        r.map(|(j, x)| (b, j, x))
    });
    let mut saw_rebalance = false;
    for _ in 0..100 {
        if a.heartbeat().await? == HeartbeatOutcome::Rebalance {
            saw_rebalance = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(saw_rebalance, "a never saw the rebalance");
    let (a_joined, a_assigned) = join_and_sync(&mut a, "a").await?;
    let (mut b, b_joined, b_assigned) = b_join.await??;
    ensure!(a_joined.generation == b_joined.generation);
    ensure!(a_joined.is_leader() != b_joined.is_leader());
    let leader = if a_joined.is_leader() {
        &a_joined
    } else {
        &b_joined
    };
    ensure!(leader.members.len() == 2, "{:?}", leader.members);
    ensure!(a_assigned == Bytes::from(format!("a@{}", a_joined.generation)));
    ensure!(b_assigned == Bytes::from(format!("b@{}", b_joined.generation)));
    ensure!(a.heartbeat().await? == HeartbeatOutcome::Stable);

    // b leaves: a is told to rebalance and ends up alone.
    b.leave().await?;
    let mut outcome = HeartbeatOutcome::Stable;
    for _ in 0..100 {
        outcome = a.heartbeat().await?;
        if outcome != HeartbeatOutcome::Stable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(outcome == HeartbeatOutcome::Rebalance, "{outcome:?}");
    let (alone, _) = join_and_sync(&mut a, "a").await?;
    ensure!(alone.is_leader() && alone.members.len() == 1);
    a.leave().await?;
    Ok(())
}

#[tokio::test]
async fn a_silent_member_is_removed_after_its_session_timeout() -> Result<()> {
    let broker = TestBroker::start_with(NO_DELAY).await?;
    let mut a = member(&broker, Duration::from_secs(10));
    join_and_sync(&mut a, "a").await?;
    // b joins with the shortest session the broker allows (group.min.session.timeout.ms)
    // and then never heartbeats (as if killed).
    let mut b = member(&broker, Duration::from_secs(6));
    let b_join = tokio::spawn(async move { join_and_sync(&mut b, "b").await.map(|_| b) });
    let mut saw_rebalance = false;
    for _ in 0..100 {
        if a.heartbeat().await? == HeartbeatOutcome::Rebalance {
            saw_rebalance = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(saw_rebalance, "b's join never started a rebalance");
    let (two, _) = join_and_sync(&mut a, "a").await?;
    let _silent = b_join.await??;
    let mut alone = None;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if a.heartbeat().await? != HeartbeatOutcome::Stable {
            let (j, _) = join_and_sync(&mut a, "a").await?;
            alone = Some(j);
            break;
        }
    }
    let Some(alone) = alone else {
        bail!("the silent member was never removed")
    };
    ensure!(alone.generation > two.generation);
    ensure!(alone.is_leader() && alone.members.len() == 1);
    Ok(())
}
