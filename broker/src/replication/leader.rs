//! The leader's view of one partition's replicas: follower positions, the ISR and the high
//! watermark. Pure state (no I/O, time passed in), so every rule is unit-tested here and the
//! broker only feeds it events.
//!
//! Kafka's rules, which these follow:
//! - A follower's position is the offset it fetches from (everything below it is on its log).
//! - A follower is caught up at time T when it fetched at or past the leader's log end as it was
//!   then; it leaves the ISR when it has not been caught up for `replica.lag.time.max.ms`.
//! - A follower outside the ISR rejoins once it reaches the high watermark and has everything
//!   since the current leader epoch began.
//! - The high watermark is the smallest log end offset in the ISR (the leader's included) and
//!   never moves back while one leader serves the epoch.
//! - An `acks=-1` produce is done when the high watermark passes its last offset; with fewer than
//!   `min.insync.replicas` in the ISR it is refused before appending (NOT_ENOUGH_REPLICAS).

// Driven by partition replication in the cluster (issue 5); until the broker runs followers,
// only the tests use it.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::{BTreeMap, BTreeSet};

/// What the leader knows about one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Follower {
    /// The follower's log end offset (its last fetch offset); -1 before its first fetch.
    pub(crate) log_end: i64,
    /// When it was last known to be caught up (ms).
    pub(crate) last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_log_end: i64,
    /// When the previous fetch arrived (ms).
    last_fetch_ms: i64,
}

/// A change the leader wants made to the ISR (it goes to the controller, which owns the ISR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IsrChange {
    /// These followers caught up and should rejoin.
    Expand(Vec<i32>),
    /// These followers fell behind for longer than `replica.lag.time.max.ms`.
    Shrink(Vec<i32>),
}

/// Why an `acks=-1` produce cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotEnoughReplicas {
    pub(crate) in_sync: usize,
    pub(crate) required: usize,
}

/// The leader's replica state for one partition in one leader epoch.
#[derive(Debug, Clone)]
pub(crate) struct LeaderState {
    leader: i32,
    leader_epoch: i32,
    /// The leader's log end offset when it took over: a follower must reach it before rejoining.
    epoch_start_offset: i64,
    isr: BTreeSet<i32>,
    followers: BTreeMap<i32, Follower>,
    high_watermark: i64,
    leader_log_end: i64,
}

impl LeaderState {
    /// Becoming leader of `replicas` (the assignment, leader included) with the controller's
    /// `isr`, at `leader_epoch`, with the local log ending at `log_end` and its high watermark at
    /// `high_watermark`. ISR members count as caught up now, as in Kafka, so a follower is not
    /// dropped just because leadership moved.
    pub(crate) fn new(
        leader: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Self {
        let isr: BTreeSet<i32> = isr.iter().copied().chain([leader]).collect();
        let followers = replicas
            .iter()
            .copied()
            .filter(|&r| r != leader)
            .map(|r| {
                let caught_up = if isr.contains(&r) { now_ms } else { 0 };
                (
                    r,
                    Follower {
                        log_end: -1,
                        last_caught_up_ms: caught_up,
                        last_fetch_leader_log_end: -1,
                        last_fetch_ms: caught_up,
                    },
                )
            })
            .collect();
        LeaderState {
            leader,
            leader_epoch,
            epoch_start_offset: log_end,
            isr,
            followers,
            high_watermark: high_watermark.min(log_end),
            leader_log_end: log_end,
        }
    }

    pub(crate) fn leader(&self) -> i32 {
        self.leader
    }

    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub(crate) fn isr(&self) -> impl Iterator<Item = i32> + '_ {
        self.isr.iter().copied()
    }

    pub(crate) fn follower(&self, id: i32) -> Option<&Follower> {
        self.followers.get(&id)
    }

    /// The local log grew to `log_end` (an append). Returns the new high watermark when it moved
    /// (only possible when the leader is alone in the ISR).
    pub(crate) fn on_append(&mut self, log_end: i64) -> Option<i64> {
        self.leader_log_end = self.leader_log_end.max(log_end);
        self.advance_high_watermark()
    }

    /// A follower fetched from `fetch_offset` at `now_ms`. Returns the new high watermark if it
    /// moved, and whether the follower should rejoin the ISR. A fetch from a replica that is not
    /// assigned is ignored (the handler answers it with an error).
    pub(crate) fn on_follower_fetch(
        &mut self,
        id: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> (Option<i64>, Option<IsrChange>) {
        let leader_log_end = self.leader_log_end;
        let Some(f) = self.followers.get_mut(&id) else {
            return (None, None);
        };
        // A follower never has more than the leader (it would have truncated first).
        let fetch_offset = fetch_offset.min(leader_log_end);
        if fetch_offset >= leader_log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_leader_log_end = leader_log_end;
        f.last_fetch_ms = now_ms;
        let rejoin = !self.isr.contains(&id)
            && fetch_offset >= self.high_watermark
            && fetch_offset >= self.epoch_start_offset;
        let hw = self.advance_high_watermark();
        (hw, rejoin.then(|| IsrChange::Expand(vec![id])))
    }

    /// Followers in the ISR that have not been caught up for longer than `lag_max_ms`.
    pub(crate) fn out_of_sync(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .filter(|&&r| r != self.leader)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
            })
            .copied()
            .collect();
        (!lagging.is_empty()).then_some(IsrChange::Shrink(lagging))
    }

    /// The controller committed a new ISR for this epoch. A shrink can let the high watermark
    /// move (the slow follower no longer holds it back); returns it when it moved.
    /// The replica set changed (a reassignment): new followers start untracked and out of the
    /// ISR; removed ones are forgotten.
    pub(crate) fn set_replicas(&mut self, replicas: &[i32]) {
        let leader = self.leader;
        self.followers.retain(|id, _| replicas.contains(id));
        for &r in replicas.iter().filter(|&&r| r != leader) {
            self.followers.entry(r).or_insert(Follower {
                log_end: -1,
                last_caught_up_ms: 0,
                last_fetch_leader_log_end: -1,
                last_fetch_ms: 0,
            });
        }
        self.isr.retain(|r| *r == leader || replicas.contains(r));
    }

    pub(crate) fn set_isr(&mut self, isr: &[i32]) -> Option<i64> {
        self.isr = isr.iter().copied().chain([self.leader]).collect();
        self.advance_high_watermark()
    }

    /// Whether an `acks=-1` produce may be appended now.
    pub(crate) fn check_min_isr(
        &self,
        min_insync_replicas: usize,
    ) -> Result<(), NotEnoughReplicas> {
        if self.isr.len() < min_insync_replicas {
            Err(NotEnoughReplicas {
                in_sync: self.isr.len(),
                required: min_insync_replicas,
            })
        } else {
            Ok(())
        }
    }

    /// Whether an `acks=-1` produce whose records end before `required_offset` is replicated.
    pub(crate) fn is_replicated(&self, required_offset: i64) -> bool {
        self.high_watermark >= required_offset
    }

    fn advance_high_watermark(&mut self) -> Option<i64> {
        let mut candidate = self.leader_log_end;
        for r in &self.isr {
            if *r == self.leader {
                continue;
            }
            // An ISR member that is not a replica holds nothing back (it cannot fetch).
            if let Some(f) = self.followers.get(r) {
                candidate = candidate.min(f.log_end);
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    /// Leader 1 of replicas [1, 2, 3], all in sync, log ending at 100, high watermark 100.
    fn three() -> LeaderState {
        LeaderState::new(1, 5, &[1, 2, 3], &[1, 2, 3], 100, 100, 0)
    }

    #[test]
    fn the_high_watermark_is_the_smallest_isr_position() {
        let mut s = three();
        assert_eq!(
            s.on_append(150),
            None,
            "followers have not fetched the new records"
        );
        assert_eq!(
            s.on_follower_fetch(2, 150, 10).0,
            None,
            "follower 3 still holds it"
        );
        assert_eq!(s.on_follower_fetch(3, 120, 10).0, Some(120));
        assert_eq!(s.on_follower_fetch(3, 150, 20).0, Some(150));
        assert!(s.is_replicated(150));
        assert!(!s.is_replicated(151));
    }

    #[test]
    fn the_high_watermark_never_moves_back() {
        let mut s = three();
        s.on_append(150);
        s.on_follower_fetch(2, 150, 10);
        s.on_follower_fetch(3, 150, 10);
        assert_eq!(s.high_watermark(), 150);
        // A follower that restarted and fetches from an older offset does not lower it.
        assert_eq!(s.on_follower_fetch(3, 90, 20).0, None);
        assert_eq!(s.high_watermark(), 150);
        // Nor does a new leader whose log reports a smaller high watermark than its end.
        let s = LeaderState::new(2, 6, &[1, 2, 3], &[2, 3], 150, 140, 30);
        assert_eq!(s.high_watermark(), 140);
    }

    #[test]
    fn a_leader_alone_in_the_isr_advances_on_append() {
        let mut s = LeaderState::new(1, 0, &[1], &[1], 0, 0, 0);
        assert_eq!(s.on_append(10), Some(10));
        let mut s = LeaderState::new(1, 0, &[1, 2], &[1], 0, 0, 0);
        assert_eq!(
            s.on_append(10),
            Some(10),
            "a follower outside the ISR does not hold it"
        );
    }

    #[test]
    fn a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_time() {
        let mut s = three();
        s.on_append(200);
        s.on_follower_fetch(2, 200, 1_000);
        s.on_follower_fetch(3, 200, 1_000);
        // Follower 2 keeps up; follower 3 goes silent.
        for t in (2_000..=40_000).step_by(1_000) {
            s.on_append(200 + t);
            s.on_follower_fetch(2, 200 + t, t);
        }
        assert_eq!(
            s.out_of_sync(30_000, LAG),
            None,
            "exactly the lag time is still in sync"
        );
        assert_eq!(s.out_of_sync(31_001, LAG), Some(IsrChange::Shrink(vec![3])));
        // The controller shrinks the ISR: the high watermark follows follower 2 again.
        let hw = s.set_isr(&[1, 2]);
        assert_eq!(hw, Some(40_200));
        assert_eq!(s.isr().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_slow_follower_that_keeps_reaching_the_old_end_stays_in_sync() {
        // Kafka's rule: fetching at or past the leader's end as of the previous fetch counts as
        // caught up at the previous fetch's time, so steady traffic does not evict a follower
        // that is always one round behind.
        let mut s = three();
        let mut end = 100;
        for t in (1_000..=100_000).step_by(1_000) {
            let previous_end = end;
            end += 50;
            s.on_append(end);
            s.on_follower_fetch(2, end, t);
            s.on_follower_fetch(3, previous_end, t);
        }
        assert_eq!(s.out_of_sync(100_000, LAG), None);
        assert!(s.follower(3).is_some_and(|f| f.last_caught_up_ms >= 99_000));
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let mut s = LeaderState::new(1, 5, &[1, 2, 3], &[1, 2], 100, 100, 0);
        s.on_append(150);
        s.on_follower_fetch(2, 150, 10);
        assert_eq!(s.high_watermark(), 150);
        assert_eq!(
            s.on_follower_fetch(3, 80, 20).1,
            None,
            "below the epoch start"
        );
        assert_eq!(
            s.on_follower_fetch(3, 120, 30).1,
            None,
            "below the high watermark"
        );
        assert_eq!(
            s.on_follower_fetch(3, 150, 40).1,
            Some(IsrChange::Expand(vec![3]))
        );
        // Rejoining is the controller's decision; until then follower 3 holds nothing back.
        s.on_append(170);
        assert_eq!(s.on_follower_fetch(2, 170, 50).0, Some(170));
        s.set_isr(&[1, 2, 3]);
        s.on_append(180);
        assert_eq!(
            s.on_follower_fetch(2, 180, 60).0,
            None,
            "follower 3 (at 150) now holds it"
        );
        assert_eq!(s.high_watermark(), 170);
        assert_eq!(s.on_follower_fetch(3, 180, 70).0, Some(180));
    }

    #[test]
    fn min_insync_replicas_refuses_acks_all_when_the_isr_is_too_small() {
        let mut s = three();
        assert_eq!(s.check_min_isr(2), Ok(()));
        s.set_isr(&[1]);
        assert_eq!(
            s.check_min_isr(2),
            Err(NotEnoughReplicas {
                in_sync: 1,
                required: 2
            })
        );
        assert_eq!(s.check_min_isr(1), Ok(()));
    }

    #[test]
    fn fetches_from_unknown_replicas_and_beyond_the_leader_end_are_harmless() {
        let mut s = three();
        assert_eq!(s.on_follower_fetch(9, 500, 10), (None, None));
        // A follower cannot be ahead of the leader: its position is capped at the leader's end.
        s.on_follower_fetch(2, 500, 10);
        assert_eq!(s.follower(2).map(|f| f.log_end), Some(100));
        assert_eq!(s.high_watermark(), 100);
        assert_eq!(s.leader_epoch(), 5);
    }
}
