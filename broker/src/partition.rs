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

/// One partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    topic: String,
    index: i32,
    log: Mutex<PartitionLog>,
}

impl Partition {
    pub(crate) fn new(topic: &str, index: i32, log: PartitionLog) -> Self {
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
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

    /// Validates the batches of a produce request and appends them. `records` is the request's
    /// bytes; they are copied once so that offsets can be written into the headers.
    pub(crate) fn append(
        &self,
        records: &[u8],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(AppendInfo, i64)> {
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
        Ok((info, log.log_start_offset()))
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
        Ok(FetchRead { offsets, records })
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
