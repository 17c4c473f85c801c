//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last five batches (Kafka keeps five, matching the
//! client's `max.in.flight.requests.per.connection` limit for idempotence).
//!
//! A retried batch whose sequence range matches a cached one is a duplicate: it is answered
//! with the offset it got the first time and not appended again. A gap in sequences is
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH.
//!
//! Snapshot file `<20-digit offset>.snapshot` (state as of that offset, written at roll and
//! clean shutdown; temporary file, fsync, rename), big-endian:
//! `version: u16 = 1, count: u32, count × { producer_id: i64, epoch: i16, n: u8,
//! n × { first_seq: i32, last_seq: i32, base_offset: i64, last_offset: i64 } }, crc32c: u32`
//! (CRC of everything before it). After a crash, the state is the latest snapshot plus a replay
//! of the batch headers after it.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer.
const CACHED_BATCHES: usize = 5;
const VERSION: u16 = 1;

/// One appended batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// New data: append it.
    Append,
    /// Already appended at this offset: answer with it, append nothing.
    Duplicate { base_offset: i64 },
}

/// Why a batch of an idempotent producer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The batch's producer epoch is older than the partition's (a fenced producer).
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// The batch does not continue the producer's sequence.
    #[error("producer {producer_id} sent sequence {got}, expected {expected}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// Checks a batch of producer `producer_id` against the state.
    pub(crate) fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, SequenceError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its batches were all deleted by retention): accept.
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                })
            };
        }
        if let Some(cached) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: cached.base_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if entry.batches.is_empty() || first_seq == expected {
            Ok(SequenceCheck::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got: first_seq,
            })
        }
    }

    /// Records an appended batch.
    pub(crate) fn update(&mut self, producer_id: i64, epoch: i16, batch: ProducerBatch) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            });
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
    }

    /// Each producer's id with the last offset of its newest batch (the log cleaner keeps that
    /// batch, even emptied, so the producer's sequence state survives compaction).
    pub(crate) fn last_offsets(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.last_offset)))
    }

    /// Forgets producers whose last batch lies below the log start (Kafka's behaviour when
    /// retention removes a producer's data).
    pub(crate) fn truncate_before(&mut self, log_start: i64) {
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= log_start));
    }

    /// Serialises the table (see the module docs for the layout).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot; `None` when it is torn, corrupt or of another version.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader { bytes: body };
        if u16::from_be_bytes(r.take()?) != VERSION {
            return None;
        }
        let count = u32::from_be_bytes(r.take()?);
        let mut table = ProducerStateTable::default();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let [n] = r.take::<1>()?;
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(ProducerBatch {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: i64::from_be_bytes(r.take()?),
                    last_offset: i64::from_be_bytes(r.take()?),
                });
            }
            table.producers.insert(id, ProducerEntry { epoch, batches });
        }
        r.bytes.is_empty().then_some(table)
    }
}

/// Sequences wrap from `i32::MAX` to 0, as the Java client's do.
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_at_checked(N)?;
        self.bytes = rest;
        head.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(first_seq: i32, last_seq: i32, base_offset: i64) -> ProducerBatch {
        ProducerBatch {
            first_seq,
            last_seq,
            base_offset,
            last_offset: base_offset + i64::from(last_seq - first_seq),
        }
    }

    #[test]
    fn retried_batch_is_a_duplicate_answered_with_its_first_offset() {
        let mut table = ProducerStateTable::default();
        assert_eq!(table.check(7, 0, 0, 9), Ok(SequenceCheck::Append));
        table.update(7, 0, batch(0, 9, 100));
        assert_eq!(table.check(7, 0, 10, 19), Ok(SequenceCheck::Append));
        table.update(7, 0, batch(10, 19, 110));
        assert_eq!(
            table.check(7, 0, 0, 9),
            Ok(SequenceCheck::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            table.check(7, 0, 10, 19),
            Ok(SequenceCheck::Duplicate { base_offset: 110 })
        );
    }

    #[test]
    fn gaps_and_old_epochs_are_refused() {
        let mut table = ProducerStateTable::default();
        table.update(7, 3, batch(0, 4, 0));
        assert_eq!(
            table.check(7, 3, 6, 8),
            Err(SequenceError::OutOfOrder {
                producer_id: 7,
                expected: 5,
                got: 6
            })
        );
        assert_eq!(
            table.check(7, 2, 5, 6),
            Err(SequenceError::InvalidEpoch {
                producer_id: 7,
                epoch: 2,
                current: 3
            })
        );
        assert_eq!(
            table.check(7, 4, 0, 3),
            Ok(SequenceCheck::Append),
            "a new epoch restarts at 0"
        );
        assert!(table.check(7, 4, 1, 3).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.update(1, 0, batch(i * 10, i * 10 + 9, i64::from(i) * 10));
        }
        assert!(matches!(
            table.check(1, 0, 20, 29),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert!(
            table.check(1, 0, 0, 9).is_err(),
            "evicted batch is no longer recognised"
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut table = ProducerStateTable::default();
        table.update(1, 0, batch(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(table.check(1, 0, 0, 5), Ok(SequenceCheck::Append));
    }

    proptest! {
        #[test]
        fn snapshots_round_trip(entries in proptest::collection::vec((0i64..1000, 0i16..10, 0i32..1000, 1usize..8), 0..30)) {
            let mut table = ProducerStateTable::default();
            for (pid, epoch, seq, n) in entries {
                for i in 0..n as i32 {
                    table.update(pid, epoch, batch(seq + i * 3, seq + i * 3 + 2, i64::from(seq) * 10 + i64::from(i)));
                }
            }
            prop_assert_eq!(ProducerStateTable::decode(&table.encode()), Some(table));
        }

        #[test]
        fn arbitrary_snapshot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ProducerStateTable::decode(&bytes);
        }
    }
}
