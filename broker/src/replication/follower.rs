//! The follower's side of a leader change: where to cut its log before fetching from the new
//! leader (KIP-101 / KIP-279), so that a tail written under an older leader and never committed
//! is not kept beside the new leader's different records at the same offsets.

// Driven by partition replication in the cluster (issue 5); until the broker runs followers,
// only the tests use it.
#![cfg_attr(not(test), allow(dead_code))]

use super::epochs::{EpochCache, EpochEnd};

/// The offset a follower truncates its log to, given its own epoch cache and log end, and the
/// leader's OffsetForLeaderEpoch answer for the follower's latest epoch.
///
/// - The leader knows the epoch: cut at the smaller of the two ends.
/// - The leader only knows an older epoch: cut where that older epoch ended on either side.
/// - The leader knows nothing at or below it (UNDEFINED): fall back to the high watermark,
///   everything below which is committed and therefore on the leader too.
pub(crate) fn truncation_offset(
    local: &EpochCache,
    local_log_end: i64,
    local_high_watermark: i64,
    leader: EpochEnd,
) -> i64 {
    if leader == EpochEnd::UNDEFINED || leader.end_offset < 0 {
        return local_high_watermark.min(local_log_end);
    }
    let local_end_for_epoch = match local.latest() {
        Some(latest) if leader.epoch >= latest.epoch => local_log_end,
        _ => local.end_offset_for(leader.epoch, local_log_end).end_offset,
    };
    let local_end_for_epoch = if local_end_for_epoch < 0 {
        // This log never had the leader's epoch or anything below it: keep nothing past the
        // high watermark.
        local_high_watermark
    } else {
        local_end_for_epoch
    };
    leader
        .end_offset
        .min(local_end_for_epoch)
        .min(local_log_end)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(pairs: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in pairs {
            c.assign(e, o);
        }
        c
    }

    #[test]
    fn a_follower_in_step_with_the_leader_keeps_its_log() {
        let local = cache(&[(0, 0), (1, 100)]);
        let leader = EpochEnd {
            epoch: 1,
            end_offset: 250,
        };
        assert_eq!(truncation_offset(&local, 200, 150, leader), 200);
    }

    #[test]
    fn a_tail_written_under_the_old_leader_is_cut_where_the_new_leader_diverged() {
        // The old leader (this follower) wrote 100..130 in epoch 1 that nobody else got; the new
        // leader's epoch 1 ended at 100 and it then wrote its own records in epoch 2.
        let local = cache(&[(0, 0), (1, 100)]);
        let leader = EpochEnd {
            epoch: 1,
            end_offset: 100,
        };
        assert_eq!(truncation_offset(&local, 130, 100, leader), 100);
    }

    #[test]
    fn when_the_leader_never_had_our_epoch_we_cut_where_its_older_epoch_ended() {
        // We were leader in epoch 3 for a moment (offsets 80..90); the leader only knows epoch 2,
        // which ended at 85 on its side. Our epoch 2 ended at 80: keep the smaller.
        let local = cache(&[(2, 0), (3, 80)]);
        let leader = EpochEnd {
            epoch: 2,
            end_offset: 85,
        };
        assert_eq!(truncation_offset(&local, 90, 70, leader), 80);
    }

    #[test]
    fn an_undefined_answer_falls_back_to_the_high_watermark() {
        let local = cache(&[(4, 0)]);
        assert_eq!(truncation_offset(&local, 90, 70, EpochEnd::UNDEFINED), 70);
        assert_eq!(
            truncation_offset(&EpochCache::default(), 50, 70, EpochEnd::UNDEFINED),
            50
        );
    }

    #[test]
    fn the_cut_is_never_past_the_local_end() {
        let local = cache(&[(0, 0)]);
        let leader = EpochEnd {
            epoch: 7,
            end_offset: 1_000,
        };
        assert_eq!(truncation_offset(&local, 40, 40, leader), 40);
    }
}
