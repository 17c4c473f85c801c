//! The sparse offset index (`.index`): Kafka's layout, 8-byte entries of
//! `relative offset: u32 BE` (batch base offset minus segment base) and `position: u32 BE` (byte
//! position of that batch in the `.log`). One entry every `index.interval.bytes` of log.
//!
//! The index is a cache of the log: the active segment keeps it in memory only; it is written
//! (temporary file, fsync, rename) when the segment is sealed or the broker stops cleanly, and
//! it is validated on open and rebuilt from the log when wrong.

/// Bytes per entry.
pub(crate) const ENTRY_LEN: usize = 8;

/// One index entry: a batch starting at `relative_offset` lies at byte `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// In-memory sparse offset index of one segment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Appends an entry; entries must grow in both offset and position.
    pub(crate) fn push(&mut self, entry: OffsetEntry) {
        debug_assert!(self.entries.last().is_none_or(|last| {
            last.relative_offset < entry.relative_offset && last.position < entry.position
        }));
        self.entries.push(entry);
    }

    /// Byte position to start scanning from for `relative_offset`: the position of the last
    /// indexed batch starting at or before it, or 0.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].position
        }
    }

    /// The entries, in order.
    pub(crate) fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// Serialises the entries in the on-disk layout.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for entry in &self.entries {
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
            out.extend_from_slice(&entry.position.to_be_bytes());
        }
        out
    }

    /// Parses an index file and checks it against the log it indexes: whole entries, strictly
    /// increasing, positions inside the log. `None` means the file cannot be trusted.
    pub(crate) fn decode(bytes: &[u8], log_len: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let ordered = index.entries.last().is_none_or(|last| {
                last.relative_offset < relative_offset && last.position < position
            });
            if !ordered || u64::from(position) >= log_len {
                return None;
            }
            index.entries.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_returns_the_last_entry_at_or_before_the_target() {
        let index = index(&[(10, 4096), (20, 8192), (35, 12288)]);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(34), 8192);
        assert_eq!(index.lookup(1_000), 12288);
    }

    #[test]
    fn decode_rejects_torn_unordered_or_out_of_log_files() {
        let good = index(&[(1, 100), (2, 200)]).encode();
        assert!(OffsetIndex::decode(&good, 300).is_some());
        assert!(OffsetIndex::decode(&good[..good.len() - 1], 300).is_none());
        assert!(OffsetIndex::decode(&good, 200).is_none());
        let unordered = index(&[(2, 200)])
            .encode()
            .into_iter()
            .chain(index(&[(1, 100)]).encode())
            .collect::<Vec<_>>();
        assert!(OffsetIndex::decode(&unordered, 300).is_none());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(steps in proptest::collection::vec((1u32..1000, 1u32..100_000), 0..200)) {
            let mut index = OffsetIndex::default();
            let (mut offset, mut position) = (0u32, 0u32);
            for (d_offset, d_position) in steps {
                offset += d_offset;
                position += d_position;
                index.push(OffsetEntry { relative_offset: offset, position });
            }
            let decoded = OffsetIndex::decode(&index.encode(), u64::from(position) + 1);
            prop_assert_eq!(decoded, Some(index));
        }

        #[test]
        fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128), log_len in 0u64..10_000) {
            let _ = OffsetIndex::decode(&bytes, log_len);
        }
    }
}
