//! The sparse time index (`.timeindex`): Kafka's layout, 12-byte entries of
//! `timestamp: i64 BE` and `relative offset: u32 BE`. An entry says: every batch before the one
//! starting at `relative offset` has a max timestamp at or below `timestamp` (the running max),
//! so a search for the first batch with a timestamp `>= t` may start at the last entry whose
//! timestamp is `< t`. Entries are added at most once per `index.interval.bytes`, and only when
//! the running max grows. Like the offset index it is a cache of the log (see `offset_index`).

/// Bytes per entry.
pub(crate) const ENTRY_LEN: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

/// In-memory sparse time index of one segment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Appends an entry when `timestamp` exceeds the last one's.
    pub(crate) fn maybe_push(&mut self, entry: TimeEntry) {
        if self.entries.last().is_none_or(|last| {
            entry.timestamp > last.timestamp && entry.relative_offset > last.relative_offset
        }) {
            self.entries.push(entry);
        }
    }

    /// Relative offset to start a search for the first timestamp `>= target` from.
    pub(crate) fn lookup(&self, target: i64) -> u32 {
        let idx = self.entries.partition_point(|e| e.timestamp < target);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].relative_offset
        }
    }

    /// The largest timestamp indexed.
    pub(crate) fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|e| e.timestamp)
    }

    /// The relative offset of the last entry.
    pub(crate) fn last_offset(&self) -> Option<u32> {
        self.entries.last().map(|e| e.relative_offset)
    }

    /// Serialises the entries in the on-disk layout.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for entry in &self.entries {
            out.extend_from_slice(&entry.timestamp.to_be_bytes());
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses a time index file; `None` when it is torn or out of order, or names offsets at or
    /// beyond `max_relative_offset` (the segment's next relative offset).
    pub(crate) fn decode(bytes: &[u8], max_relative_offset: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let timestamp = i64::from_be_bytes(ts);
            let relative_offset = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            let ordered = index.entries.last().is_none_or(|last| {
                last.timestamp < timestamp && last.relative_offset < relative_offset
            });
            if !ordered || u64::from(relative_offset) >= max_relative_offset {
                return None;
            }
            index.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookup_starts_at_the_last_entry_below_the_target() {
        let mut index = TimeIndex::default();
        index.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 0,
        });
        index.maybe_push(TimeEntry {
            timestamp: 90,
            relative_offset: 5,
        });
        index.maybe_push(TimeEntry {
            timestamp: 200,
            relative_offset: 10,
        });
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(150), 0);
        assert_eq!(index.lookup(201), 10);
        assert_eq!(index.encode().len(), 2 * ENTRY_LEN);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(steps in proptest::collection::vec((1i64..1000, 1u32..1000), 0..100)) {
            let mut index = TimeIndex::default();
            let (mut ts, mut off) = (0i64, 0u32);
            for (d_ts, d_off) in steps {
                ts += d_ts;
                off += d_off;
                index.maybe_push(TimeEntry { timestamp: ts, relative_offset: off });
            }
            prop_assert_eq!(TimeIndex::decode(&index.encode(), u64::from(off) + 1), Some(index));
        }

        #[test]
        fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = TimeIndex::decode(&bytes, 1_000);
        }
    }
}
