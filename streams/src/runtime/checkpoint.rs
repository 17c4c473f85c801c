//! Checkpoint records in changelog topics.
//!
//! At every commit a task appends, to each of its stores' changelog partitions, after the
//! store's changes, a checkpoint: the next input offset of each source partition and the
//! task's stream time. Restore applies a changelog only up to the latest checkpoint that all
//! of the task's stores reached, and the task skips input records below the checkpoint's
//! offsets. So restored state is exactly the state after the checkpointed input, even when an
//! instance died after writing changes but before committing offsets; output topics may still
//! see records twice (at-least-once).
//!
//! A checkpoint is a record with the header `fjord.streams.checkpoint`, key
//! [`CHECKPOINT_KEY`] plus a byte alternating between commits ([`checkpoint_key`]), and value: version `1` (1 byte), stream time (i64 BE), entry count
//! (u32 BE), then per entry topic length (u16 BE), topic (UTF-8), next offset (i64 BE).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The header that marks a checkpoint record.
pub const CHECKPOINT_HEADER: &str = "fjord.streams.checkpoint";

/// The key of checkpoint records, followed by one byte that alternates between commits: a
/// compacted changelog keeps the last two checkpoints, so the latest checkpoint that all of a
/// task's stores reached (at most one commit behind the newest) survives compaction.
pub const CHECKPOINT_KEY: &[u8] = b"\0fjord.streams.checkpoint";

/// The key of the checkpoint record of commit number `commit`.
pub fn checkpoint_key(commit: u64) -> Bytes {
    let mut k = BytesMut::with_capacity(CHECKPOINT_KEY.len() + 1);
    k.put_slice(CHECKPOINT_KEY);
    k.put_u8((commit & 1) as u8);
    k.freeze()
}

/// Input positions and stream time of a task at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Stream time.
    pub stream_time: i64,
    /// Next offset to process per source topic (of the task's partition).
    pub positions: BTreeMap<String, i64>,
}

impl Checkpoint {
    /// The record value.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(13 + self.positions.len() * 24);
        out.put_u8(1);
        out.put_i64(self.stream_time);
        out.put_u32(self.positions.len() as u32);
        for (topic, offset) in &self.positions {
            out.put_u16(topic.len() as u16);
            out.put_slice(topic.as_bytes());
            out.put_i64(*offset);
        }
        out.freeze()
    }

    /// Parses a record value (`None`: not a checkpoint of this version).
    pub fn decode(mut data: &[u8]) -> Option<Self> {
        if data.remaining() < 13 || data.get_u8() != 1 {
            return None;
        }
        let stream_time = data.get_i64();
        let count = data.get_u32();
        let mut positions = BTreeMap::new();
        for _ in 0..count {
            if data.remaining() < 2 {
                return None;
            }
            let len = data.get_u16() as usize;
            if data.remaining() < len + 8 {
                return None;
            }
            let topic = std::str::from_utf8(&data[..len]).ok()?.to_string();
            data.advance(len);
            positions.insert(topic, data.get_i64());
        }
        data.is_empty().then_some(Checkpoint {
            stream_time,
            positions,
        })
    }
}

/// The index, in every store's changelog, of the latest checkpoint all of them have
/// (`None`: no common checkpoint — restore nothing).
pub fn common_checkpoint(logs: &[Vec<(usize, Bytes)>]) -> Option<(Vec<usize>, Bytes)> {
    let first = logs.first()?;
    for (_, payload) in first.iter().rev() {
        let mut at = Vec::with_capacity(logs.len());
        for log in logs {
            match log.iter().rev().find(|(_, p)| p == payload) {
                Some((i, _)) => at.push(*i),
                None => break,
            }
        }
        if at.len() == logs.len() {
            return Some((at, payload.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn checkpoints_round_trip(stream_time: i64, positions: BTreeMap<String, i64>) {
            let c = Checkpoint { stream_time, positions };
            prop_assert_eq!(Checkpoint::decode(&c.encode()), Some(c));
        }
    }

    #[test]
    fn truncated_checkpoints_are_rejected() {
        let c = Checkpoint {
            stream_time: 5,
            positions: [("t".to_string(), 9)].into(),
        };
        let bytes = c.encode();
        for len in 0..bytes.len() {
            assert_eq!(Checkpoint::decode(&bytes[..len]), None, "{len}");
        }
    }

    #[test]
    fn the_common_checkpoint_is_the_latest_every_store_has() {
        let p = |n: u8| Bytes::from(vec![n]);
        // Store b died before writing checkpoint 3.
        let a = vec![(2, p(1)), (5, p(2)), (9, p(3))];
        let b = vec![(1, p(1)), (4, p(2))];
        assert_eq!(common_checkpoint(&[a.clone(), b]), Some((vec![5, 4], p(2))));
        assert_eq!(
            common_checkpoint(std::slice::from_ref(&a)),
            Some((vec![9], p(3)))
        );
        assert_eq!(common_checkpoint(&[a, vec![]]), None);
    }
}
