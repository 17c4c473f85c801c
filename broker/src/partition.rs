//! A partition hosted by this broker: its log behind a short-held lock, plus the reads that
//! happen after the lock is released.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use fjord_protocol::batch::{self, Batches};
use kafka_protocol::records::RecordBatchDecoder;

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::log::{
    AppendInfo, PartitionLog, ReadPlan, count_records, find_batch_by_time, read_batches,
};
use crate::replication::leader::{IsrChange, LeaderState};

/// A snapshot of a partition's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    pub(crate) high_watermark: i64,
    pub(crate) leader_epoch: i32,
}

/// The outcome of a fetch read.
#[derive(Debug)]
pub(crate) struct FetchRead {
    pub(crate) offsets: Offsets,
    pub(crate) records: Bytes,
}

/// This broker's part in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A single broker without a quorum: it leads its partitions.
    Standalone,
    /// The cluster's image names this broker leader at `epoch`.
    Leader { epoch: i32 },
    /// Another broker leads (`-1`: nobody can).
    Follower { leader: i32, epoch: i32 },
}

/// A leader's replica tracking for a partition it leads in a cluster.
#[derive(Debug)]
struct LeaderCtx {
    state: LeaderState,
    topic_id: uuid::Uuid,
    partition_epoch: i32,
    /// An AlterPartition is in flight (one at a time, as in Kafka).
    pending: bool,
}

/// One partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    topic: String,
    index: i32,
    log: Mutex<PartitionLog>,
    role: Mutex<Role>,
    leader: Mutex<Option<LeaderCtx>>,
    /// The leader epoch a follower last truncated its log for.
    truncated_for: Mutex<Option<i32>>,
}

impl Partition {
    pub(crate) fn new(topic: &str, index: i32, log: PartitionLog) -> Self {
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            role: Mutex::new(Role::Standalone),
            leader: Mutex::new(None),
            truncated_for: Mutex::new(None),
        }
    }

    fn leader_ctx(&self) -> MutexGuard<'_, Option<LeaderCtx>> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leads the partition as the cluster's image says. At the same leader epoch only the ISR
    /// and partition epoch are refreshed (follower tracking is kept); a new epoch starts fresh.
    pub(crate) fn become_leader(
        &self,
        me: i32,
        image: &crate::metadata::image::PartitionImage,
        topic_id: uuid::Uuid,
        now_ms: i64,
    ) {
        let mut ctx = self.leader_ctx();
        let mut log = self.lock();
        log.set_replicated();
        match ctx.as_mut() {
            Some(c) if c.state.leader_epoch() == image.leader_epoch => {
                if image.partition_epoch > c.partition_epoch {
                    c.partition_epoch = image.partition_epoch;
                    c.state.set_replicas(&image.replicas);
                    if let Some(hw) = c.state.set_isr(&image.isr) {
                        log.set_high_watermark(hw);
                    }
                }
            }
            _ => {
                log.set_leader_epoch(image.leader_epoch);
                let mut state = LeaderState::new(
                    me,
                    image.leader_epoch,
                    &image.replicas,
                    &image.isr,
                    log.log_end_offset(),
                    log.high_watermark(),
                    now_ms,
                );
                if let Some(hw) = state.on_append(log.log_end_offset()) {
                    log.set_high_watermark(hw);
                }
                *ctx = Some(LeaderCtx {
                    state,
                    topic_id,
                    partition_epoch: image.partition_epoch,
                    pending: false,
                });
            }
        }
        drop(log);
        self.set_role(Role::Leader {
            epoch: image.leader_epoch,
        });
    }

    /// Follows `leader` at `epoch` (fetching is the replica fetcher's job).
    pub(crate) fn become_follower(&self, leader: i32, epoch: i32) {
        *self.leader_ctx() = None;
        let mut log = self.lock();
        log.set_replicated();
        log.set_leader_epoch(epoch);
        drop(log);
        self.set_role(Role::Follower { leader, epoch });
    }

    /// After a leader's append: with no followers to wait for, the high watermark moves now.
    pub(crate) fn after_append(&self) {
        let mut ctx = self.leader_ctx();
        if let Some(c) = ctx.as_mut() {
            let mut log = self.lock();
            if let Some(hw) = c.state.on_append(log.log_end_offset()) {
                log.set_high_watermark(hw);
            }
        }
    }

    /// `min.insync.replicas` against the ISR, for acks=-1 (a lone broker is its own ISR).
    pub(crate) fn in_sync_replicas(&self) -> usize {
        self.leader_ctx()
            .as_ref()
            .map_or(1, |c| c.state.isr().count())
    }

    /// A follower fetched from `fetch_offset`: tracks it, moves the high watermark, and
    /// returns the AlterPartition to send when the ISR should grow.
    pub(crate) fn on_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<crate::cluster::ControllerRequest> {
        let mut ctx = self.leader_ctx();
        let c = ctx.as_mut()?;
        let (hw, change) = c.state.on_follower_fetch(replica, fetch_offset, now_ms);
        if let Some(hw) = hw {
            self.lock().set_high_watermark(hw);
        }
        self.isr_request(c, change)
    }

    /// The AlterPartition that removes followers lagging more than `lag_max_ms`.
    pub(crate) fn check_lagging(
        &self,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<crate::cluster::ControllerRequest> {
        let mut ctx = self.leader_ctx();
        let c = ctx.as_mut()?;
        let change = c.state.out_of_sync(now_ms, lag_max_ms);
        self.isr_request(c, change)
    }

    fn isr_request(
        &self,
        c: &mut LeaderCtx,
        change: Option<IsrChange>,
    ) -> Option<crate::cluster::ControllerRequest> {
        let change = change?;
        if c.pending {
            return None;
        }
        let mut isr: Vec<i32> = c.state.isr().collect();
        match change {
            IsrChange::Expand(ids) => {
                for id in ids {
                    if !isr.contains(&id) {
                        isr.push(id);
                    }
                }
            }
            IsrChange::Shrink(ids) => isr.retain(|i| !ids.contains(i)),
        }
        c.pending = true;
        Some(crate::cluster::ControllerRequest::AlterPartition {
            broker: match self.role() {
                Role::Leader { .. } => c.state.leader(),
                _ => return None,
            },
            topic_id: c.topic_id,
            partition: self.index,
            leader_epoch: c.state.leader_epoch(),
            partition_epoch: c.partition_epoch,
            isr,
        })
    }

    /// The controller's answer to an AlterPartition: the new state, or `None` when refused.
    pub(crate) fn isr_changed(&self, state: Option<&crate::metadata::image::PartitionImage>) {
        let mut ctx = self.leader_ctx();
        let Some(c) = ctx.as_mut() else { return };
        c.pending = false;
        if let Some(state) = state
            && state.leader_epoch == c.state.leader_epoch()
            && state.partition_epoch > c.partition_epoch
        {
            c.partition_epoch = state.partition_epoch;
            if let Some(hw) = c.state.set_isr(&state.isr) {
                self.lock().set_high_watermark(hw);
            }
        }
    }

    /// Whether a follower must truncate before fetching at `epoch` (and records that it will).
    pub(crate) fn needs_truncation(&self, epoch: i32) -> bool {
        let mut done = self.truncated_for.lock().unwrap_or_else(|p| p.into_inner());
        if *done == Some(epoch) {
            false
        } else {
            *done = Some(epoch);
            true
        }
    }

    /// Forgets a truncation (it failed; try again).
    pub(crate) fn truncation_failed(&self) {
        *self.truncated_for.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn role(&self) -> Role {
        *self.role.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_role(&self, role: Role) {
        *self.role.lock().unwrap_or_else(|p| p.into_inner()) = role;
    }

    /// Whether this broker may serve produce and consumer fetches for the partition, given the
    /// client's `current_leader_epoch` (-1: not checked), with Kafka's errors: a follower
    /// answers NOT_LEADER_OR_FOLLOWER, an older client epoch FENCED_LEADER_EPOCH, a newer one
    /// UNKNOWN_LEADER_EPOCH (this broker has not seen the change yet).
    pub(crate) fn check_leader(
        &self,
        client_epoch: i32,
    ) -> std::result::Result<(), crate::error::ApiError> {
        use fjord_protocol::ErrorCode;
        match self.role() {
            Role::Standalone => Ok(()),
            Role::Leader { epoch } => {
                if client_epoch >= 0 && client_epoch < epoch {
                    Err(crate::error::ApiError::new(
                        ErrorCode::FencedLeaderEpoch,
                        format!("Leader epoch {client_epoch} is older than the current {epoch}."),
                    ))
                } else if client_epoch > epoch {
                    Err(crate::error::ApiError::new(
                        ErrorCode::UnknownLeaderEpoch,
                        format!("Leader epoch {client_epoch} is newer than this broker's {epoch}."),
                    ))
                } else {
                    Ok(())
                }
            }
            Role::Follower { leader, .. } => Err(crate::error::ApiError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "This broker is not the leader of {}-{} (the leader is {leader}).",
                    self.topic, self.index
                ),
            )),
        }
    }

    pub(crate) fn index(&self) -> i32 {
        self.index
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The log, for short critical sections. A panic while it was held cannot leave the log
    /// half-updated in memory in a way later calls rely on, so a poisoned lock is recovered.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PartitionLog> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn offsets(&self) -> Offsets {
        let log = self.lock();
        Offsets {
            log_start: log.log_start_offset(),
            log_end: log.log_end_offset(),
            high_watermark: log.high_watermark(),
            leader_epoch: log.leader_epoch(),
        }
    }

    /// Validates the batches of a produce request and appends them; returns the append, the
    /// log start and the log end after it. `records` is the request's
    /// bytes; they are copied once so that offsets can be written into the headers.
    pub(crate) fn append(
        &self,
        records: &[u8],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(AppendInfo, i64, i64)> {
        let invalid = |source| Error::InvalidBatch {
            topic: self.topic.clone(),
            partition: self.index,
            source,
        };
        if records.is_empty() {
            return Err(invalid(fjord_protocol::BatchError::Empty));
        }
        for item in Batches::new(records) {
            let (_, range) = item.map_err(invalid)?;
            if range.len() > config.max_message_bytes {
                return Err(invalid(fjord_protocol::BatchError::TooLarge {
                    size: range.len(),
                    max: config.max_message_bytes,
                }));
            }
            batch::validate(&records[range]).map_err(invalid)?;
        }
        let mut owned = match config.compression {
            Some(codec) => crate::recompress::to_codec(records, codec).map_err(invalid)?,
            None => records.to_vec(),
        };
        let count = count_records(&owned);
        let mut log = self.lock();
        let info = log.append(&mut owned, count, config, now_ms)?;
        let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
        drop(log);
        self.after_append();
        Ok((info, log_start, log_end))
    }

    /// Reads whole batches from `offset`, at most `max_bytes` (but, with `at_least_one`, at
    /// least one batch).
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchRead> {
        let (plan, offsets) = {
            let log = self.lock();
            let offsets = Offsets {
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                high_watermark: log.high_watermark(),
                leader_epoch: log.leader_epoch(),
            };
            (log.plan_read(offset)?, offsets)
        };
        let records = match plan {
            Some(plan) => read_batches(&plan, offset, max_bytes, at_least_one)?,
            None => Bytes::new(),
        };
        // The plan covers whole segments: in a cluster, batches past the high watermark are
        // not yet committed and stay invisible.
        let records = if offsets.high_watermark < offsets.log_end {
            cut_at(records, offsets.high_watermark)
        } else {
            records
        };
        Ok(FetchRead { offsets, records })
    }

    /// A follower's fetch: whole batches from `offset` up to the log end.
    pub(crate) fn read_replica(&self, offset: i64, max_bytes: usize) -> Result<FetchRead> {
        let (plan, offsets) = {
            let log = self.lock();
            let offsets = Offsets {
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                high_watermark: log.high_watermark(),
                leader_epoch: log.leader_epoch(),
            };
            (log.plan_replica_read(offset)?, offsets)
        };
        let records = match plan {
            Some(plan) => read_batches(&plan, offset, max_bytes, true)?,
            None => Bytes::new(),
        };
        Ok(FetchRead { offsets, records })
    }

    /// Appends batches fetched from the leader and takes the leader's high watermark (capped
    /// at this log's end). Returns the new log end.
    pub(crate) fn append_replicated(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<i64> {
        let mut log = self.lock();
        let end = log.append_replicated(records, config, now_ms)?;
        log.set_high_watermark(leader_high_watermark.min(end));
        Ok(end)
    }

    /// ListOffsets by timestamp: the first record with a timestamp `>= target`, as
    /// `(offset, timestamp)`, or `None` when no record reaches it.
    pub(crate) fn offset_for_timestamp(&self, target: i64) -> Result<Option<(i64, i64)>> {
        let (plan, log_start) = {
            let log = self.lock();
            (log.plan_time_search(target), log.log_start_offset())
        };
        let Some(plan) = plan else { return Ok(None) };
        first_record_at_or_after(&plan, target, log_start)
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp.
    pub(crate) fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let (found, log_start) = {
            let log = self.lock();
            (log.plan_max_timestamp(), log.log_start_offset())
        };
        let Some((max, plan)) = found else {
            return Ok(None);
        };
        first_record_at_or_after(&plan, max, log_start)
    }
}

/// Finds the batch reaching `target` and, inside it, the first record that does. Decoding the
/// batch (and decompressing it) is fine here: ListOffsets is not on the produce/fetch path.
fn first_record_at_or_after(
    plan: &ReadPlan,
    target: i64,
    log_start: i64,
) -> Result<Option<(i64, i64)>> {
    let mut plan = plan.clone();
    loop {
        let Some(bytes) = find_batch_by_time(&plan, target)? else {
            return Ok(None);
        };
        let header = batch::BatchHeader::parse(&bytes).map_err(|source| Error::InvalidBatch {
            topic: String::new(),
            partition: -1,
            source,
        })?;
        let next_start = plan.start;
        if header.is_log_append_time() {
            return Ok(Some((
                header.base_offset().max(log_start),
                header.max_timestamp(),
            )));
        }
        let mut buf = bytes.clone();
        if let Ok(set) = RecordBatchDecoder::decode(&mut buf)
            && let Some(record) = set
                .records
                .iter()
                .find(|r| r.timestamp >= target && r.offset >= log_start)
        {
            return Ok(Some((record.offset, record.timestamp)));
        }
        // The batch's max timestamp reached the target but no record at or after the log start
        // does (or it did not decode): continue after it.
        let Some(position) = position_after(&plan, &bytes, next_start)? else {
            return Ok(None);
        };
        plan.start = position;
    }
}

/// The byte position right after `batch`, found by walking headers from `from`.
fn position_after(plan: &ReadPlan, batch_bytes: &[u8], from: u64) -> Result<Option<u64>> {
    let want = batch::BatchHeader::parse(batch_bytes)
        .map(|h| h.base_offset())
        .unwrap_or(-1);
    let mut position = from;
    let mut header = [0u8; batch::HEADER_LEN];
    while position + batch::HEADER_LEN as u64 <= plan.end {
        std::os::unix::fs::FileExt::read_exact_at(&*plan.file, &mut header, position)
            .map_err(|e| Error::io("read segment", &plan.path, e))?;
        let Ok(parsed) = batch::BatchHeader::parse(&header) else {
            return Ok(None);
        };
        position += parsed.total_len() as u64;
        if parsed.base_offset() == want {
            return Ok(Some(position));
        }
    }
    Ok(None)
}

/// The batches of `records` that start below `limit`.
fn cut_at(records: Bytes, limit: i64) -> Bytes {
    let mut end = 0;
    for item in Batches::new(&records) {
        let Ok((header, range)) = item else { break };
        if header.base_offset() >= limit {
            break;
        }
        end = range.end;
    }
    records.slice(..end)
}
