//! The log of one partition: ordered segments, offset assignment, roll, retention, reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{self, Batches};

use super::cleaner::{self, CleanerState};
use super::producer_state::{ProducerBatch, ProducerStateTable, SequenceCheck};
use super::sealing::Sealing;
use super::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, ReadPlan, Segment, TIME_INDEX_SUFFIX, remove_files, segment_path,
    write_atomically,
};
use crate::config::{LogConfig, TimestampType};
use crate::error::{Error, Result};
use crate::replication::epochs::{EpochCache, EpochEnd};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendInfo {
    /// Offset given to the first record.
    pub(crate) base_offset: i64,
    /// The LogAppendTime stamped on the batches, or -1 for CreateTime topics.
    pub(crate) log_append_time: i64,
}

/// The log of one partition. Owned by its partition's lock; every method is synchronous and
/// short, except the fsyncs the flush policy asks for.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    /// In a cluster the leader's replica tracking sets the high watermark; a lone broker's
    /// follows the log end.
    replicated: bool,
    leader_epoch: i32,
    /// Which leader epoch started at which offset (`leader-epoch-checkpoint`).
    epochs: EpochCache,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    producers: ProducerStateTable,
    cleaner: CleanerState,
    /// Rolled segments being sealed in the background.
    sealing: Sealing,
}

/// File extension of producer-state snapshots.
const SNAPSHOT_SUFFIX: &str = "snapshot";

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. With `recover` (after an unclean shutdown), the
    /// active segment is CRC-checked and a torn tail truncated.
    pub(crate) fn open(
        dir: &Path,
        recover: bool,
        config: &LogConfig,
        log_start_checkpoint: Option<i64>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("create partition directory", dir, e))?;
        cleaner::complete_interrupted_swaps(dir)?;
        let mut bases = Vec::new();
        let mut snapshots = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") || name.ends_with(".deleted") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_SUFFIX}")) {
                if let Ok(offset) = stem.parse::<i64>() {
                    snapshots.push(offset);
                }
                continue;
            }
            if let Some(stem) = name.strip_suffix(&format!(".{LOG_SUFFIX}")) {
                match stem.parse::<i64>() {
                    Ok(base) if stem.len() == 20 => bases.push(base),
                    _ => {
                        tracing::warn!(file = %path.display(), "ignoring stray file in partition directory")
                    }
                }
            }
        }
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = bases.last().copied();
        let mut lost_after = None;
        for base in bases.iter().copied() {
            let active = Some(base) == last;
            // After a crash, a rolled segment whose background seal had not finished (no
            // index files) is checked batch by batch like the active one.
            let unsealed = !active && !Segment::has_index_files(dir, base);
            let length_before = std::fs::metadata(segment_path(dir, base, LOG_SUFFIX))
                .map(|m| m.len())
                .unwrap_or(0);
            let segment = Segment::open(
                dir,
                base,
                recover && (active || unsealed),
                config.index_interval_bytes,
                now_ms,
            )?;
            if recover && unsealed {
                segment.seal()?;
                if segment.size() < length_before {
                    // Its tail was lost: later segments hold writes from after the loss.
                    segments.insert(base, segment);
                    lost_after = Some(base);
                    break;
                }
            }
            segments.insert(base, segment);
        }
        if let Some(torn) = lost_after {
            for base in bases.into_iter().filter(|b| *b > torn) {
                tracing::warn!(dir = %dir.display(), base_offset = base, "deleting segment written after a torn one");
                remove_files(dir, base, &[LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX])?;
            }
        }
        if segments.is_empty() {
            let base = log_start_checkpoint.unwrap_or(0).max(0);
            segments.insert(base, Segment::create(dir, base, now_ms)?);
        }
        let first = segments.keys().next().copied().unwrap_or(0);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments,
            log_start_offset: first.max(log_start_checkpoint.unwrap_or(0)),
            high_watermark: 0,
            replicated: false,
            leader_epoch,
            epochs: EpochCache::load(dir)?,
            unflushed_messages: 0,
            first_unflushed_ms: None,
            producers: ProducerStateTable::default(),
            cleaner: CleanerState::load(dir),
            sealing: Sealing::default(),
        };
        log.log_start_offset = log.log_start_offset.min(log.log_end_offset());
        log.high_watermark = log.log_end_offset();
        log.reconcile_epochs()?;
        log.restore_producers(snapshots)?;
        Ok(log)
    }

    /// Brings the epoch cache in line with the log after opening it: epochs starting past a
    /// recovered (possibly truncated) end are dropped; a log written before the cache existed
    /// gets its records attributed to the current epoch from the log start.
    fn reconcile_epochs(&mut self) -> Result<()> {
        let end = self.log_end_offset();
        let mut changed = self.epochs.truncate_from_end(end);
        if self.epochs.latest().is_none() && end > self.log_start_offset {
            changed |= self.epochs.assign(self.leader_epoch, self.log_start_offset);
        }
        if changed {
            self.epochs.save(&self.dir)?;
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the offset it ended at.
    pub(crate) fn end_offset_for_epoch(&self, epoch: i32) -> EpochEnd {
        let log_end = self.log_end_offset();
        // The current epoch is entered in the cache at its first append; until then it starts
        // at the log end (where Kafka's new leader would have written it).
        let current_written = self
            .epochs
            .latest()
            .is_some_and(|e| e.epoch >= self.leader_epoch);
        if !current_written && epoch >= self.leader_epoch {
            return EpochEnd {
                epoch: self.leader_epoch,
                end_offset: log_end,
            };
        }
        let answer = self.epochs.end_offset_for(epoch, log_end);
        if answer.end_offset >= 0 && answer.end_offset < self.log_start_offset {
            // That epoch's records are gone (retention or DeleteRecords).
            return EpochEnd::UNDEFINED;
        }
        answer
    }

    /// Loads the newest valid producer-state snapshot at or below the log end, then replays
    /// the batch headers after it.
    fn restore_producers(&mut self, mut snapshots: Vec<i64>) -> Result<()> {
        snapshots.sort_unstable();
        let end = self.log_end_offset();
        let mut from = self.log_start_offset;
        for &offset in snapshots.iter().rev().filter(|&&o| o <= end) {
            let path = segment_path(&self.dir, offset, SNAPSHOT_SUFFIX);
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            match ProducerStateTable::decode(&bytes) {
                Some(table) => {
                    self.producers = table;
                    from = offset;
                    break;
                }
                None => {
                    tracing::warn!(snapshot = %path.display(), "ignoring corrupt producer-state snapshot")
                }
            }
        }
        let producers = &mut self.producers;
        for segment in self.segments.values().filter(|s| s.next_offset() > from) {
            segment.for_each_header(|header| {
                if header.producer_id() >= 0 && header.base_offset() >= from {
                    producers.update(
                        header.producer_id(),
                        header.producer_epoch(),
                        producer_batch(header),
                    );
                }
            })?;
        }
        self.producers.truncate_before(self.log_start_offset);
        Ok(())
    }

    /// Writes the producer state as of the log end offset.
    fn snapshot_producers(&self) -> Result<()> {
        let path = segment_path(&self.dir, self.log_end_offset(), SNAPSHOT_SUFFIX);
        write_atomically(&path, &self.producers.encode())
    }

    /// Deletes snapshots below the first segment, keeping the newest.
    fn prune_snapshots(&self) {
        let first = self.segments.keys().next().copied().unwrap_or(0);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let offset = name
                .strip_suffix(&format!(".{SNAPSHOT_SUFFIX}"))
                .and_then(|s| s.parse::<i64>().ok());
            if offset.is_some_and(|o| o < first) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Offset the next record will get.
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// First offset still readable.
    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset up to which records are committed and visible to consumers.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The leader epoch stamped on appended batches.
    /// Hands the high watermark to the cluster's replica tracking (see [`Self::set_high_watermark`]).
    pub(crate) fn set_replicated(&mut self) {
        if !self.replicated {
            self.replicated = true;
        }
    }

    /// The high watermark as replication decided it (never past the log end; a follower's may
    /// lag its leader's).
    pub(crate) fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// Appends batches a follower fetched from its leader, offsets and epochs as the leader
    /// assigned them. Batches below the log end (already here) are skipped; a gap is an error.
    /// Returns the new log end.
    pub(crate) fn append_replicated(
        &mut self,
        batches: &[u8],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<i64> {
        let end = self.log_end_offset();
        let mut start = None;
        let mut stop = 0;
        let mut last_offset = end - 1;
        let mut max_timestamp = -1;
        let mut epochs = Vec::new();
        let mut pending_producers = Vec::new();
        let mut records = 0i64;
        for item in Batches::new(batches) {
            let Ok((header, range)) = item else { break };
            if header.last_offset() < end {
                continue;
            }
            if start.is_none() {
                if header.base_offset() != end {
                    return Err(Error::OffsetOutOfRange {
                        offset: header.base_offset(),
                        log_start: self.log_start_offset,
                        log_end: end,
                    });
                }
                start = Some(range.start);
            }
            stop = range.end;
            last_offset = header.last_offset();
            max_timestamp = max_timestamp.max(header.max_timestamp());
            records += i64::from(header.last_offset_delta()) + 1;
            epochs.push((header.partition_leader_epoch(), header.base_offset()));
            if header.producer_id() >= 0 {
                pending_producers.push((
                    header.producer_id(),
                    header.producer_epoch(),
                    producer_batch(header),
                ));
            }
        }
        let Some(start) = start else {
            return Ok(end);
        };
        let bytes = &batches[start..stop];
        self.maybe_roll(
            bytes.len() as u64,
            last_offset,
            max_timestamp,
            config,
            now_ms,
        )?;
        let mut epochs_changed = false;
        for (epoch, base) in epochs {
            if self.epochs.latest().is_none_or(|e| e.epoch < epoch) {
                epochs_changed |= self.epochs.assign(epoch, base);
            }
        }
        if epochs_changed {
            self.epochs.save(&self.dir)?;
        }
        self.active_mut()
            .append(bytes, config.index_interval_bytes)?;
        for (producer_id, epoch, batch) in pending_producers {
            self.producers.update(producer_id, epoch, batch);
        }
        self.unflushed_messages = self.unflushed_messages.saturating_add(records);
        self.first_unflushed_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= config.flush_messages {
            self.flush()?;
        }
        Ok(self.log_end_offset())
    }

    /// Drops every record at or after `offset` (a follower's divergent tail after a leader
    /// change). The high watermark and the epoch cache follow.
    pub(crate) fn truncate_to(
        &mut self,
        offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.wait_for_seals()?;
        let offset = offset.max(self.log_start_offset);
        let doomed: Vec<i64> = self
            .segments
            .keys()
            .copied()
            .filter(|base| *base >= offset)
            .collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete()?;
            }
        }
        match self.segments.values_mut().next_back() {
            Some(last) => last.truncate_to(offset, config.index_interval_bytes)?,
            None => {
                self.segments
                    .insert(offset, Segment::create(&self.dir, offset, now_ms)?);
            }
        }
        if self.epochs.truncate_from_end(offset) {
            self.epochs.save(&self.dir)?;
        }
        self.high_watermark = self.high_watermark.min(offset);
        tracing::info!(dir = %self.dir.display(), offset, "truncated the log (follower after a leader change)");
        Ok(())
    }

    /// The epoch cache's newest entry.
    pub(crate) fn latest_epoch(&self) -> Option<crate::replication::epochs::EpochEntry> {
        self.epochs.latest()
    }

    /// The epoch cache, for the follower's truncation rule.
    pub(crate) fn epochs(&self) -> &crate::replication::epochs::EpochCache {
        &self.epochs
    }

    /// Plans a read for a follower: up to the log end, not the high watermark.
    pub(crate) fn plan_replica_read(&self, offset: i64) -> Result<Option<ReadPlan>> {
        self.plan_read_to(offset, self.log_end_offset())
    }

    /// A new leader epoch from the cluster: batches appended from now on carry it.
    pub(crate) fn set_leader_epoch(&mut self, epoch: i32) {
        self.leader_epoch = self.leader_epoch.max(epoch);
    }

    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Bytes on disk across segments.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// The partition directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every segment but the active one and those still being sealed, oldest first.
    pub(super) fn sealed_segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments
            .values()
            .take(self.segments.len().saturating_sub(1))
            .filter(|s| !self.sealing.contains(s.base_offset()))
    }

    /// The segment starting at `base`.
    pub(super) fn segment(&self, base: i64) -> Option<&Segment> {
        self.segments.get(&base)
    }

    /// Puts a rewritten segment in place of the one with its base offset.
    pub(super) fn replace_segment(&mut self, segment: Segment) {
        self.segments.insert(segment.base_offset(), segment);
    }

    /// The log cleaner's progress on this partition.
    pub(super) fn cleaner_state(&self) -> &CleanerState {
        &self.cleaner
    }

    pub(super) fn cleaner_state_mut(&mut self) -> &mut CleanerState {
        &mut self.cleaner
    }

    /// Each idempotent producer's id with the last offset of its newest batch.
    pub(super) fn producer_last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        self.producers.last_offsets().collect()
    }

    /// Number of segments.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends validated batches: assigns offsets, stamps the leader epoch (and LogAppendTime
    /// when the topic asks for it), writes them in one call, and fsyncs when `flush.messages`
    /// is reached.
    pub(crate) fn append(
        &mut self,
        batches: &mut [u8],
        records: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if let Some(base_offset) = self.check_producers(batches)? {
            return Ok(AppendInfo {
                base_offset,
                log_append_time: -1,
            });
        }
        let base_offset = self.log_end_offset();
        let last_offset_delta_total = records - 1;
        let incoming_max_timestamp = match config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => Batches::new(batches)
                .filter_map(|b| b.ok())
                .map(|(h, _)| h.max_timestamp())
                .max()
                .unwrap_or(-1),
        };
        self.maybe_roll(
            batches.len() as u64,
            base_offset + last_offset_delta_total,
            incoming_max_timestamp,
            config,
            now_ms,
        )?;
        let log_append_time = match config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        let mut next = base_offset;
        let mut position = 0;
        let mut pending_producers = Vec::new();
        while position < batches.len() {
            let (len, delta) = match batch::BatchHeader::parse(&batches[position..]) {
                Ok(header) => (header.total_len(), i64::from(header.last_offset_delta())),
                Err(_) => break,
            };
            let one = &mut batches[position..position + len];
            batch::set_base_offset(one, next);
            batch::set_partition_leader_epoch(one, self.leader_epoch);
            if log_append_time >= 0 {
                batch::set_log_append_time(one, log_append_time);
            }
            let header = batch::BatchHeader::parse(one).map_err(|source| Error::InvalidBatch {
                topic: String::new(),
                partition: -1,
                source,
            })?;
            if header.producer_id() >= 0 {
                pending_producers.push((
                    header.producer_id(),
                    header.producer_epoch(),
                    producer_batch(header),
                ));
            }
            next += delta + 1;
            position += len;
        }
        if self
            .epochs
            .latest()
            .is_none_or(|e| e.epoch < self.leader_epoch)
            && self.epochs.assign(self.leader_epoch, base_offset)
        {
            // Once per epoch: the first append of a new leader epoch.
            self.epochs.save(&self.dir)?;
        }
        let index_interval = config.index_interval_bytes;
        self.active_mut().append(batches, index_interval)?;
        for (producer_id, epoch, batch) in pending_producers {
            self.producers.update(producer_id, epoch, batch);
        }
        if !self.replicated {
            self.high_watermark = self.log_end_offset();
        }
        self.unflushed_messages = self.unflushed_messages.saturating_add(records);
        self.first_unflushed_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= config.flush_messages {
            self.flush()?;
        }
        Ok(AppendInfo {
            base_offset,
            log_append_time,
        })
    }

    /// Checks the idempotent producers' sequences. `Some(offset)`: the request is a retry of a
    /// batch already appended at that offset.
    fn check_producers(&self, batches: &[u8]) -> Result<Option<i64>> {
        let mut previous: Option<(i64, i16, i32)> = None;
        let mut count = 0;
        for item in Batches::new(batches) {
            let Ok((header, _)) = item else { break };
            count += 1;
            if header.producer_id() < 0 {
                continue;
            }
            let (id, epoch, first) = (
                header.producer_id(),
                header.producer_epoch(),
                header.base_sequence(),
            );
            let last = first.wrapping_add(header.last_offset_delta());
            let check = match previous {
                // A later batch of the same request must continue the previous one.
                Some((pid, e, prev_last)) if pid == id && e == epoch => {
                    if first == prev_last.wrapping_add(1) {
                        SequenceCheck::Append
                    } else {
                        return Err(Error::Sequence(
                            super::producer_state::SequenceError::OutOfOrder {
                                producer_id: id,
                                expected: prev_last.wrapping_add(1),
                                got: first,
                            },
                        ));
                    }
                }
                _ => self
                    .producers
                    .check(id, epoch, first, last)
                    .map_err(Error::Sequence)?,
            };
            if let SequenceCheck::Duplicate { base_offset } = check {
                if count == 1 && Batches::new(batches).count() == 1 {
                    return Ok(Some(base_offset));
                }
                return Err(Error::Sequence(
                    super::producer_state::SequenceError::OutOfOrder {
                        producer_id: id,
                        expected: -1,
                        got: first,
                    },
                ));
            }
            previous = Some((id, epoch, last));
        }
        Ok(None)
    }

    /// Rolls to a new segment when the active one is full, too old, or its relative offsets
    /// would overflow.
    fn maybe_roll(
        &mut self,
        incoming: u64,
        last_offset: i64,
        incoming_max_timestamp: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<()> {
        let active = self.active();
        if active.size() == 0 {
            return Ok(());
        }
        let full = active.size() + incoming > config.segment_bytes;
        let old = active.time_waited_for_roll(now_ms, incoming_max_timestamp) > config.segment_ms;
        let overflow = last_offset - active.base_offset() > i64::from(u32::MAX)
            || active.size() + incoming > u64::from(u32::MAX);
        if full || old || overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    fn roll(&mut self, now_ms: i64) -> Result<()> {
        let base = self.log_end_offset();
        // Sealing fsyncs up to segment.bytes of data: it runs on its own thread so appends
        // are not held up behind it (Kafka flushes a rolled segment asynchronously too).
        self.reap_seals()?;
        let sealed_base = self.active().base_offset();
        // The producer snapshot at the roll point goes with it (recovery replays batch
        // headers from an older snapshot when this one is missing).
        let sealer = self.active().sealer().then_write(
            segment_path(&self.dir, base, SNAPSHOT_SUFFIX),
            self.producers.encode(),
        );
        self.sealing.start(sealed_base, sealer, &self.dir)?;
        let segment = Segment::create(&self.dir, base, now_ms)?;
        self.segments.insert(base, segment);
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        Ok(())
    }

    /// Collects background seals that have finished, returning the first failure.
    pub(crate) fn reap_seals(&mut self) -> Result<()> {
        self.sealing.reap()
    }

    /// Waits for every background seal: before anything that needs rolled segments durable
    /// and indexed on disk (a flush, retention, the cleaner, a clean shutdown).
    pub(crate) fn wait_for_seals(&mut self) -> Result<()> {
        self.sealing.wait()
    }

    /// Plans a read from `offset`: `Ok(None)` at the high watermark (nothing to read yet).
    pub(crate) fn plan_read(&self, offset: i64) -> Result<Option<ReadPlan>> {
        self.plan_read_to(offset, self.high_watermark)
    }

    /// Plans a read from `offset` of records below `limit` (the high watermark for consumers,
    /// the log end for followers). The plan may cover batches past `limit`; the caller cuts.
    fn plan_read_to(&self, offset: i64, limit: i64) -> Result<Option<ReadPlan>> {
        if offset < self.log_start_offset || offset > limit {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: limit,
            });
        }
        if offset == limit {
            return Ok(None);
        }
        let segment = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.next_offset() > offset)
            .or_else(|| {
                self.segments
                    .range(offset + 1..)
                    .map(|(_, s)| s)
                    .find(|s| s.size() > 0)
            });
        Ok(segment.map(|s| s.plan_read(offset)))
    }

    /// Plans the search for the first batch with a timestamp `>= target`: the first segment
    /// whose newest timestamp reaches it.
    pub(crate) fn plan_time_search(&self, target: i64) -> Option<ReadPlan> {
        self.segments
            .values()
            .find(|s| s.size() > 0 && s.max_timestamp() >= target)
            .map(|s| s.plan_time_search(target))
    }

    /// The largest timestamp in the log, with a plan to find its batch.
    pub(crate) fn plan_max_timestamp(&self) -> Option<(i64, ReadPlan)> {
        let max = self
            .segments
            .values()
            .filter(|s| s.size() > 0)
            .map(Segment::max_timestamp)
            .max()?;
        if max < 0 {
            return None;
        }
        self.plan_time_search(max).map(|plan| (max, plan))
    }

    /// Deletes sealed segments past `retention.ms` or beyond `retention.bytes` (rolling first
    /// when even the active segment has expired), and advances the log start offset. Returns
    /// the number of segments deleted.
    pub(crate) fn enforce_retention(&mut self, config: &LogConfig, now_ms: i64) -> Result<usize> {
        if !config.cleanup_policy.delete {
            return Ok(0);
        }
        self.wait_for_seals()?;
        let expired = |s: &Segment| {
            config.retention_ms >= 0
                && now_ms.saturating_sub(s.largest_time_ms()) > config.retention_ms
        };
        if self.active().size() > 0 && expired(self.active()) {
            self.roll(now_ms)?;
        }
        let mut total = self.size_bytes() as i64;
        let mut doomed = Vec::new();
        for segment in self
            .segments
            .values()
            .take(self.segments.len().saturating_sub(1))
        {
            let over_size = config.retention_bytes >= 0
                && total - segment.size() as i64 >= config.retention_bytes;
            if expired(segment) || over_size {
                total -= segment.size() as i64;
                doomed.push(segment.base_offset());
            } else {
                break;
            }
        }
        self.delete_segments(&doomed)?;
        Ok(doomed.len())
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1 means the high watermark) and
    /// deletes the segments wholly below it. Returns the new log start offset.
    pub(crate) fn delete_records(&mut self, offset: i64, now_ms: i64) -> Result<i64> {
        let offset = if offset == -1 {
            self.high_watermark
        } else {
            offset
        };
        if offset < 0 || offset > self.high_watermark {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        if self.active().size() > 0 && self.log_end_offset() <= offset {
            self.roll(now_ms)?;
        }
        let doomed: Vec<i64> = self
            .segments
            .values()
            .take(self.segments.len().saturating_sub(1))
            .filter(|s| s.next_offset() <= offset)
            .map(Segment::base_offset)
            .collect();
        self.delete_segments(&doomed)?;
        Ok(self.log_start_offset)
    }

    fn delete_segments(&mut self, bases: &[i64]) -> Result<()> {
        self.wait_for_seals()?;
        for base in bases {
            if let Some(segment) = self.segments.remove(base) {
                segment.delete()?;
                tracing::info!(dir = %self.dir.display(), base_offset = base, "deleted segment");
            }
        }
        let first = self.segments.keys().next().copied().unwrap_or(0);
        self.log_start_offset = self.log_start_offset.max(first);
        if !bases.is_empty() {
            self.producers.truncate_before(self.log_start_offset);
            self.prune_snapshots();
        }
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.save(&self.dir)?;
        }
        Ok(())
    }

    /// Fsyncs the active segment and waits for rolled segments' seals.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.unflushed_messages > 0 {
            // Records acknowledged into a rolled segment are durable once its seal is done.
            self.wait_for_seals()?;
            self.active().flush()?;
            self.unflushed_messages = 0;
            self.first_unflushed_ms = None;
        }
        Ok(())
    }

    /// Fsyncs when the oldest unflushed append is older than `flush.ms`.
    pub(crate) fn flush_if_due(&mut self, config: &LogConfig, now_ms: i64) -> Result<()> {
        if self
            .first_unflushed_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= config.flush_ms)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Clean shutdown: fsync the data and write the active segment's indexes.
    pub(crate) fn close(&mut self) -> Result<()> {
        self.wait_for_seals()?;
        self.active().seal()?;
        self.snapshot_producers()?;
        self.unflushed_messages = 0;
        Ok(())
    }
}

/// The producer-state record of a batch with offsets assigned.
fn producer_batch(header: batch::BatchHeader<'_>) -> ProducerBatch {
    ProducerBatch {
        first_seq: header.base_sequence(),
        last_seq: header
            .base_sequence()
            .wrapping_add(header.last_offset_delta()),
        base_offset: header.base_offset(),
        last_offset: header.last_offset(),
    }
}

/// Sums the record counts of a run of batches.
pub(crate) fn count_records(batches: &[u8]) -> i64 {
    Batches::new(batches)
        .filter_map(|b| b.ok())
        .map(|(h, _)| i64::from(h.record_count()))
        .sum()
}

#[cfg(test)]
mod tests;
