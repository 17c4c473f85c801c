//! The leader-epoch cache of one partition: which leader epoch started at which offset.
//!
//! Kafka keeps it in `leader-epoch-checkpoint` beside the segments and uses it to answer
//! OffsetForLeaderEpoch: a follower (or a consumer after a leader change) asks "where did epoch E
//! end?", and truncates its log there when its own copy runs past it. The file format is Kafka's:
//!
//! ```text
//! 0            <- version
//! 2            <- number of entries
//! 0 0          <- epoch start-offset
//! 3 1200
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::log::write_atomically;

/// The checkpoint file's name in a partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// One epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub(crate) epoch: i32,
    pub(crate) start_offset: i64,
}

/// The answer to "where did epoch E end?" (OffsetForLeaderEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEnd {
    /// The largest epoch at or below the one asked for (-1 when there is none).
    pub(crate) epoch: i32,
    /// The first offset after that epoch: the next epoch's start, or the log end for the
    /// latest epoch (-1 when there is none).
    pub(crate) end_offset: i64,
}

impl EpochEnd {
    /// Kafka's answer when the cache knows nothing at or below the epoch asked for.
    pub(crate) const UNDEFINED: EpochEnd = EpochEnd {
        epoch: -1,
        end_offset: -1,
    };
}

/// Epoch start offsets, ascending in both epoch and offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Reads `dir/leader-epoch-checkpoint`; a missing file is an empty cache. A file that does not
    /// parse is an error naming it (Kafka refuses to start on one too).
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io("read leader-epoch checkpoint", &path, e)),
        };
        Self::parse(&text).map_err(|reason| Error::CorruptMetadata {
            path: path.clone(),
            reason,
        })
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        match lines.next().map(str::trim) {
            Some("0") => {}
            other => return Err(format!("unsupported version line {other:?}")),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing entry count")?;
        let mut cache = EpochCache::default();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or(format!("entry {i} of {count} missing"))?;
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(offset), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("entry {i}: expected 'epoch offset', got {line:?}"));
            };
            let epoch: i32 = epoch.parse().map_err(|_| format!("entry {i}: bad epoch"))?;
            let start_offset: i64 = offset
                .parse()
                .map_err(|_| format!("entry {i}: bad offset"))?;
            if epoch < 0 || start_offset < 0 {
                return Err(format!("entry {i}: negative epoch or offset"));
            }
            if let Some(last) = cache.entries.last()
                && (epoch <= last.epoch || start_offset < last.start_offset)
            {
                return Err(format!("entry {i}: epochs and offsets must ascend"));
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(cache)
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename, directory fsync).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomically(&dir.join(CHECKPOINT_FILE), text.as_bytes())
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset` (the first batch appended in it). Returns
    /// whether the cache changed. An epoch at or below the latest is ignored, except that a
    /// latest epoch is moved down when the log was truncated below its start (Kafka's rule).
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if epoch < last.epoch || (epoch == last.epoch && start_offset >= last.start_offset) {
                return false;
            }
            if epoch == last.epoch {
                self.entries.pop();
            }
        }
        // A new epoch cannot start before an older one: drop entries that would.
        while self
            .entries
            .last()
            .is_some_and(|last| last.start_offset > start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where it ended, with
    /// `log_end` standing in for the latest epoch's end.
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end: i64) -> EpochEnd {
        let Some(latest) = self.entries.last() else {
            return EpochEnd::UNDEFINED;
        };
        if epoch >= latest.epoch {
            return EpochEnd {
                epoch: latest.epoch,
                end_offset: log_end,
            };
        }
        // The first entry above `epoch`: its start is where the one below ended.
        let above = self.entries.partition_point(|e| e.epoch <= epoch);
        if above == 0 {
            // Every known epoch is newer: the asked epoch ended where the oldest known began.
            return EpochEnd {
                epoch: -1,
                end_offset: -1,
            };
        }
        EpochEnd {
            epoch: self.entries[above - 1].epoch,
            end_offset: self.entries[above].start_offset,
        }
    }

    /// The log was truncated to end at `log_end` (a follower cut a divergent tail): epochs
    /// starting at or after it are forgotten. Returns whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, log_end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < log_end);
        self.entries.len() != before
    }

    /// The log start moved to `log_start` (retention, DeleteRecords): epochs that ended before it
    /// are forgotten, and the oldest kept epoch starts no earlier than it.
    pub(crate) fn truncate_from_start(&mut self, log_start: i64) -> bool {
        let keep_from = self
            .entries
            .partition_point(|e| e.start_offset <= log_start)
            .saturating_sub(1);
        let mut changed = keep_from > 0;
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut()
            && first.start_offset < log_start
        {
            first.start_offset = log_start;
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(pairs: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in pairs {
            assert!(c.assign(e, o), "assign({e}, {o})");
        }
        c
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let c = cache(&[(1, 0), (3, 100), (4, 250)]);
        // The latest epoch (or a newer one) ends at the log end.
        assert_eq!(
            c.end_offset_for(4, 300),
            EpochEnd {
                epoch: 4,
                end_offset: 300
            }
        );
        assert_eq!(
            c.end_offset_for(9, 300),
            EpochEnd {
                epoch: 4,
                end_offset: 300
            }
        );
        // An older epoch ends where the next one starts.
        assert_eq!(
            c.end_offset_for(3, 300),
            EpochEnd {
                epoch: 3,
                end_offset: 250
            }
        );
        assert_eq!(
            c.end_offset_for(1, 300),
            EpochEnd {
                epoch: 1,
                end_offset: 100
            }
        );
        // An epoch this log never had: the largest one below it, and that one's end.
        assert_eq!(
            c.end_offset_for(2, 300),
            EpochEnd {
                epoch: 1,
                end_offset: 100
            }
        );
        // Below everything known, and an empty cache: undefined.
        assert_eq!(c.end_offset_for(0, 300), EpochEnd::UNDEFINED);
        assert_eq!(
            EpochCache::default().end_offset_for(5, 10),
            EpochEnd::UNDEFINED
        );
    }

    #[test]
    fn assign_ignores_stale_epochs_and_repeats() {
        let mut c = cache(&[(2, 10), (5, 40)]);
        assert!(
            !c.assign(5, 60),
            "the same epoch again at a later offset changes nothing"
        );
        assert!(!c.assign(3, 50), "an older epoch changes nothing");
        assert!(!c.assign(-1, 70));
        assert_eq!(pairs(&c), vec![(2, 10), (5, 40)]);
        // After a truncation below epoch 5's start, epoch 5 restarts lower.
        assert!(c.assign(5, 30));
        assert_eq!(pairs(&c), vec![(2, 10), (5, 30)]);
        // A new epoch starting below older starts replaces them.
        assert!(c.assign(7, 5));
        assert_eq!(pairs(&c), vec![(7, 5)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 100), (4, 250)]);
        assert!(c.truncate_from_end(250));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 100)]);
        assert!(!c.truncate_from_end(400));
        assert!(c.truncate_from_start(150));
        assert_eq!(pairs(&c), vec![(3, 150)]);
        assert!(!c.truncate_from_start(150));
        let mut c = cache(&[(1, 0), (3, 100)]);
        assert!(c.truncate_from_start(100));
        assert_eq!(pairs(&c), vec![(3, 100)]);
    }

    #[test]
    fn the_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochCache::load(dir.path()).unwrap(), EpochCache::default());
        let c = cache(&[(0, 0), (2, 1200)]);
        c.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 1200\n");
        assert_eq!(EpochCache::load(dir.path()).unwrap(), c);
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_naming_the_file() {
        for text in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\nx 0\n",
            "0\n2\n3 10\n2 20\n",
            "0\n1\n0 0 0\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(CHECKPOINT_FILE), text).unwrap();
            let err = EpochCache::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(CHECKPOINT_FILE), "{text:?}: {err}");
        }
    }
}
