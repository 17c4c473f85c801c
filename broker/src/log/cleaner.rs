//! The log cleaner of compacted topics (`cleanup.policy` containing `compact`).
//!
//! A pass over one partition:
//!
//! 1. **Plan** (under the partition lock, cheap): the cleanable range is the sealed segments
//!    before the active one and before the first segment holding a record newer than
//!    `min.compaction.lag.ms`. The part at or after the cleaner checkpoint is *dirty*. The pass
//!    runs when dirty bytes reach `min.cleanable.dirty.ratio` of the range, when the oldest dirty
//!    segment is older than `max.compaction.lag.ms`, or when a tombstone's delete horizon passed.
//!    The plan holds each segment's open file (a [`ReadPlan`]), so nothing else needs the lock.
//! 2. **Clean** (no lock): a map key -> latest offset is built over the dirty part; every
//!    segment of the range is rewritten to `<base>.log.cleaned` keeping a record when no later
//!    record of its key exists. Tombstones are kept until their batch's delete horizon
//!    (`delete.retention.ms` after the pass that first kept them, stored in the batch as Kafka
//!    does, KIP-534) and dropped by the first pass after it. Batches are rebuilt by
//!    `retained_batch` (same base offset, `lastOffsetDelta`, producer fields, codec). The file
//!    is fsynced and re-read with every CRC checked. Segments where nothing changes are left
//!    alone.
//! 3. **Swap** (under the lock, only renames): if the segment is still the one planned (not
//!    deleted by retention or DeleteRecords meanwhile), its old indexes are removed,
//!    `.cleaned` is renamed to `.swap`, then `.swap` over `.log` (directory fsynced after each),
//!    the new indexes written, and the segment replaced in the map. Readers holding the old
//!    file finish on it. The checkpoint (`cleaner-offset-checkpoint` in the partition
//!    directory) then moves to the end of the range.
//!
//! A crash leaves either the old segment (a `.cleaned` file, deleted at open) or the new one
//! (a `.swap` file, renamed into place at open; its indexes are rebuilt).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::DerefMut;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fjord_protocol::batch::{self, BatchHeader, HEADER_LEN};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::partition_log::PartitionLog;
use super::retained_batch::{self, EncodeError};
use super::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, ReadPlan, Segment, TIME_INDEX_SUFFIX, remove_files, segment_path,
    sync_dir, write_atomically,
};
use crate::config::LogConfig;
use crate::error::Error;

/// Suffix of a cleaned segment being written.
const CLEANED_SUFFIX: &str = "log.cleaned";
/// Suffix of a cleaned segment complete on disk, about to replace `<base>.log`.
const SWAP_SUFFIX: &str = "log.swap";
/// The first dirty offset of a partition, in its directory.
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Why a cleaning pass failed. The log is unchanged by a failed pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CleanerError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Log(#[from] Error),
    /// A stored batch does not decode.
    #[error("cannot decode the batch at offset {offset} of {path}")]
    Decode {
        path: PathBuf,
        offset: i64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A kept batch could not be re-encoded.
    #[error("cannot rewrite the batch at offset {offset} of {path}")]
    Encode {
        path: PathBuf,
        offset: i64,
        #[source]
        source: EncodeError,
    },
}

type Result<T, E = CleanerError> = std::result::Result<T, E>;

/// The cleaner's progress on one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct CleanerState {
    /// Offsets below this were cleaned (persisted in `cleaner-offset-checkpoint`).
    first_dirty_offset: i64,
    /// The earliest delete horizon of a kept tombstone; `Some(i64::MIN)` when unknown (after
    /// open), so that the first pass finds out.
    tombstone_horizon: Option<i64>,
}

impl CleanerState {
    /// Reads the checkpoint of the partition in `dir` (0 when missing or unreadable).
    pub(crate) fn load(dir: &Path) -> Self {
        let first_dirty_offset = std::fs::read_to_string(dir.join(CHECKPOINT_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        CleanerState {
            first_dirty_offset,
            tombstone_horizon: Some(i64::MIN),
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CleanStats {
    pub(crate) segments_rewritten: usize,
    pub(crate) bytes_before: u64,
    pub(crate) bytes_after: u64,
}

/// Runs one cleaning pass over a partition if it needs one. `lock` gives the partition's log;
/// it is taken twice, briefly: to plan and to swap. `Ok(None)`: nothing to clean.
pub(crate) fn clean<G: DerefMut<Target = PartitionLog>>(
    lock: impl Fn() -> G,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Option<CleanStats>> {
    let job = {
        let mut log = lock();
        // Segments still being sealed in the background are left for a later pass.
        log.reap_seals()?;
        plan(&log, config, now_ms)
    };
    let Some(job) = job else {
        return Ok(None);
    };
    let cleaned = match run(&job, now_ms) {
        Ok(cleaned) => cleaned,
        Err(e) => {
            for segment in &job.segments {
                let _ = remove_files(&job.dir, segment.base, &[CLEANED_SUFFIX]);
            }
            return Err(e);
        }
    };
    let stats = swap(&mut lock(), &job, cleaned)?;
    if stats.segments_rewritten > 0 {
        tracing::info!(
            dir = %job.dir.display(),
            segments = stats.segments_rewritten,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            "cleaned log"
        );
    }
    Ok(Some(stats))
}

/// A sealed segment as planned.
#[derive(Debug)]
struct PlannedSegment {
    base: i64,
    next_offset: i64,
    plan: ReadPlan,
}

/// Everything a pass needs, captured under the lock.
#[derive(Debug)]
struct CleanJob {
    dir: PathBuf,
    segments: Vec<PlannedSegment>,
    first_dirty: i64,
    end_offset: i64,
    producer_last: HashMap<i64, i64>,
    index_interval: u64,
    delete_retention_ms: i64,
}

/// The cleanable range and whether it is worth cleaning now.
fn plan(log: &PartitionLog, config: &LogConfig, now_ms: i64) -> Option<CleanJob> {
    if !config.cleanup_policy.compact {
        return None;
    }
    let lag_limit = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let range: Vec<&Segment> = log
        .sealed_segments()
        .take_while(|s| s.largest_time_ms() <= lag_limit)
        .collect();
    let (first, last) = (range.first()?, range.last()?);
    let state = log.cleaner_state();
    let first_dirty = state.first_dirty_offset.max(first.base_offset());
    let total: u64 = range.iter().map(|s| s.size()).sum();
    let dirty: Vec<&&Segment> = range
        .iter()
        .filter(|s| s.next_offset() > first_dirty)
        .collect();
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
    let ratio_reached =
        total > 0 && dirty_bytes as f64 / total as f64 >= config.min_cleanable_dirty_ratio;
    let overdue = dirty.first().is_some_and(|s| {
        s.size() > 0 && s.earliest_time_ms() < now_ms.saturating_sub(config.max_compaction_lag_ms)
    });
    let horizon_passed = state.tombstone_horizon.is_some_and(|h| h <= now_ms);
    let worth_it = (dirty_bytes > 0 && (ratio_reached || overdue)) || horizon_passed;
    if !worth_it {
        return None;
    }
    Some(CleanJob {
        dir: log.dir().to_path_buf(),
        segments: range
            .iter()
            .map(|s| PlannedSegment {
                base: s.base_offset(),
                next_offset: s.next_offset(),
                plan: s.plan_all(),
            })
            .collect(),
        first_dirty,
        end_offset: last.next_offset().max(first_dirty),
        producer_last: log.producer_last_offsets(),
        index_interval: config.index_interval_bytes,
        delete_retention_ms: config.delete_retention_ms,
    })
}

/// A segment rewritten to `<base>.log.cleaned`, opened and checked.
#[derive(Debug)]
struct CleanedSegment {
    segment: Segment,
    bytes_before: u64,
}

/// The result of the lock-free part of a pass.
#[derive(Debug)]
struct Cleaned {
    segments: Vec<CleanedSegment>,
    tombstone_horizon: Option<i64>,
}

/// Builds the offset map and rewrites the segments that change.
fn run(job: &CleanJob, now_ms: i64) -> Result<Cleaned> {
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for segment in job
        .segments
        .iter()
        .filter(|s| s.next_offset > job.first_dirty)
    {
        for_each_batch(&segment.plan, |header, bytes| {
            if header.is_control() || header.last_offset() < job.first_dirty {
                return Ok(());
            }
            for record in decode(&segment.plan, header, bytes)? {
                let Some(key) = record.key.filter(|_| record.offset >= job.first_dirty) else {
                    continue;
                };
                // Copied: the decoded key points into the whole batch, which must not stay alive.
                match latest.get_mut(&key[..]) {
                    Some(offset) => *offset = record.offset,
                    None => {
                        latest.insert(Bytes::copy_from_slice(&key), record.offset);
                    }
                }
            }
            Ok(())
        })?;
    }
    let mut cleaned = Cleaned {
        segments: Vec::new(),
        tombstone_horizon: None,
    };
    for segment in &job.segments {
        if let Some(rewritten) = rewrite(job, segment, &latest, now_ms, &mut cleaned)? {
            cleaned.segments.push(rewritten);
        }
    }
    Ok(cleaned)
}

/// Rewrites one segment into `<base>.log.cleaned`; `None` (and no file left) when every batch
/// stays as it is.
fn rewrite(
    job: &CleanJob,
    segment: &PlannedSegment,
    latest: &HashMap<Bytes, i64>,
    now_ms: i64,
    cleaned: &mut Cleaned,
) -> Result<Option<CleanedSegment>> {
    let path = segment_path(&job.dir, segment.base, CLEANED_SUFFIX);
    let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut changed = false;
    let new_horizon = now_ms.saturating_add(job.delete_retention_ms);
    for_each_batch(&segment.plan, |header, bytes| {
        let kept = if header.is_control() || header.magic() != batch::MAGIC_V2 {
            None
        } else {
            let records = decode(&segment.plan, header, bytes)?;
            let horizon = retained_batch::delete_horizon(&header);
            let kept: Vec<&Record> = records
                .iter()
                .filter(|r| keep(r, latest, horizon, now_ms))
                .collect();
            let has_tombstone = kept.iter().any(|r| r.key.is_some() && r.value.is_none());
            let horizon = if has_tombstone {
                Some(horizon.unwrap_or(new_horizon))
            } else {
                None
            };
            if let Some(h) = horizon {
                cleaned.tombstone_horizon = Some(cleaned.tombstone_horizon.map_or(h, |o| o.min(h)));
            }
            let unchanged =
                kept.len() == records.len() && horizon == retained_batch::delete_horizon(&header);
            if unchanged {
                None
            } else {
                let keep_empty = header.producer_id() >= 0
                    && job.producer_last.get(&header.producer_id()) == Some(&header.last_offset());
                if kept.is_empty() && !keep_empty {
                    changed = true;
                    return Ok(());
                }
                let rebuilt =
                    retained_batch::rebuild(&header, &kept, horizon).map_err(|source| {
                        CleanerError::Encode {
                            path: segment.plan.path.clone(),
                            offset: header.base_offset(),
                            source,
                        }
                    })?;
                Some(rebuilt)
            }
        };
        let write = match &kept {
            Some(rebuilt) => {
                changed = true;
                out.write_all(rebuilt)
            }
            None => out.write_all(bytes),
        };
        write.map_err(|e| Error::io("write", &path, e))?;
        Ok(())
    })?;
    if !changed {
        drop(out);
        remove_files(&job.dir, segment.base, &[CLEANED_SUFFIX])?;
        return Ok(None);
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io("write", &path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
    drop(file);
    let segment_now =
        Segment::open_cleaned(&job.dir, segment.base, &path, job.index_interval, now_ms)?;
    Ok(Some(CleanedSegment {
        segment: segment_now,
        bytes_before: segment.plan.end,
    }))
}

/// Whether the cleaner keeps `record`: it is the latest of its key (or has no key), and it is
/// not a tombstone whose delete horizon has passed.
fn keep(record: &Record, latest: &HashMap<Bytes, i64>, horizon: Option<i64>, now_ms: i64) -> bool {
    let Some(key) = &record.key else {
        return true;
    };
    if latest.get(key).is_some_and(|&l| l > record.offset) {
        return false;
    }
    record.value.is_some() || horizon.is_none_or(|h| now_ms < h)
}

/// Puts the cleaned segments in place of the planned ones that are still in the log.
fn swap(log: &mut PartitionLog, job: &CleanJob, cleaned: Cleaned) -> Result<CleanStats> {
    let mut stats = CleanStats::default();
    let dir = job.dir.as_path();
    for CleanedSegment {
        mut segment,
        bytes_before,
    } in cleaned.segments
    {
        let base = segment.base_offset();
        let planned = job.segments.iter().find(|s| s.base == base);
        let current = log.segment(base);
        let still_there = matches!(
            (planned, current),
            (Some(p), Some(c)) if c.reads_file(&p.plan.file)
        );
        if !still_there {
            remove_files(dir, base, &[CLEANED_SUFFIX])?;
            continue;
        }
        if let Some(old) = current {
            segment.inherit_created(old);
        }
        remove_files(dir, base, &[INDEX_SUFFIX, TIME_INDEX_SUFFIX])?;
        let cleaned_path = segment_path(dir, base, CLEANED_SUFFIX);
        let swap_path = segment_path(dir, base, SWAP_SUFFIX);
        std::fs::rename(&cleaned_path, &swap_path)
            .map_err(|e| Error::io("rename to", &swap_path, e))?;
        sync_dir(dir)?;
        let log_path = segment_path(dir, base, LOG_SUFFIX);
        std::fs::rename(&swap_path, &log_path).map_err(|e| Error::io("rename to", &log_path, e))?;
        sync_dir(dir)?;
        segment.write_indexes()?;
        stats.segments_rewritten += 1;
        stats.bytes_before += bytes_before;
        stats.bytes_after += segment.size();
        log.replace_segment(segment);
    }
    let state = log.cleaner_state_mut();
    state.tombstone_horizon = cleaned.tombstone_horizon;
    if job.end_offset != state.first_dirty_offset {
        state.first_dirty_offset = job.end_offset;
        write_atomically(
            &dir.join(CHECKPOINT_FILE),
            job.end_offset.to_string().as_bytes(),
        )?;
    }
    Ok(stats)
}

/// Finishes what a crash interrupted, before the segments are opened: a `.cleaned` file may be
/// incomplete and is deleted; a `.swap` file is complete and replaces its `.log` (whose
/// indexes are deleted, to be rebuilt from it).
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut touched = false;
    for entry in entries {
        let path = entry.map_err(|e| Error::io("list", dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            tracing::info!(file = %path.display(), "removing segment left by an interrupted cleaning");
            std::fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
            touched = true;
        } else if let Some(stem) = name.strip_suffix(&format!(".{SWAP_SUFFIX}"))
            && let Ok(base) = stem.parse::<i64>()
        {
            tracing::info!(file = %path.display(), "completing the swap of a cleaned segment");
            remove_files(dir, base, &[INDEX_SUFFIX, TIME_INDEX_SUFFIX])?;
            let log_path = segment_path(dir, base, LOG_SUFFIX);
            std::fs::rename(&path, &log_path).map_err(|e| Error::io("rename to", &log_path, e))?;
            touched = true;
        }
    }
    if touched {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Calls `f` with each whole batch of a planned segment, in order.
fn for_each_batch(
    plan: &ReadPlan,
    mut f: impl FnMut(BatchHeader<'_>, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut position = plan.start;
    let mut bytes = Vec::new();
    while position + HEADER_LEN as u64 <= plan.end {
        bytes.resize(HEADER_LEN, 0);
        plan.file
            .read_exact_at(&mut bytes, position)
            .map_err(|e| Error::io("read segment", &plan.path, e))?;
        let Ok(len) = BatchHeader::parse(&bytes).map(|h| h.total_len()) else {
            break;
        };
        if position + len as u64 > plan.end {
            break;
        }
        bytes.resize(len, 0);
        plan.file
            .read_exact_at(&mut bytes[HEADER_LEN..], position + HEADER_LEN as u64)
            .map_err(|e| Error::io("read segment", &plan.path, e))?;
        let header = BatchHeader::parse(&bytes).map_err(|e| CleanerError::Decode {
            path: plan.path.clone(),
            offset: -1,
            source: Box::new(e),
        })?;
        f(header, &bytes)?;
        position += len as u64;
    }
    Ok(())
}

/// Decodes a batch's records (decompressing them).
fn decode(plan: &ReadPlan, header: BatchHeader<'_>, bytes: &[u8]) -> Result<Vec<Record>> {
    RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(bytes))
        .map(|set| set.records)
        .map_err(|e| CleanerError::Decode {
            path: plan.path.clone(),
            offset: header.base_offset(),
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::config::CleanupPolicy;
    use crate::log::segment::read_batches;

    const T0: i64 = 1_700_000_000_000;

    fn config() -> LogConfig {
        LogConfig {
            cleanup_policy: CleanupPolicy {
                delete: false,
                compact: true,
            },
            segment_bytes: 1_000,
            delete_retention_ms: 60_000,
            ..LogConfig::default()
        }
    }

    /// A batch of `(key, value)` records (value `None` is a tombstone) from `producer`
    /// (id, epoch, base sequence; id -1 for none), compressed with `codec`.
    fn batch(
        records: &[(&str, Option<&str>)],
        codec: Compression,
        producer: (i64, i16, i32),
    ) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.0,
                producer_epoch: producer.1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if producer.0 >= 0 {
                    producer.2 + i as i32
                } else {
                    -1
                },
                timestamp: T0 - 1_000 + i as i64,
                key: Some(Bytes::copy_from_slice(key.as_bytes())),
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    fn append(log: &Mutex<PartitionLog>, mut bytes: Vec<u8>, config: &LogConfig) -> i64 {
        let count = crate::log::count_records(&bytes);
        log.lock()
            .expect("lock")
            .append(&mut bytes, count, config, T0)
            .expect("append")
            .base_offset
    }

    /// Seals everything appended so far by appending one batch larger than a segment.
    fn roll(log: &Mutex<PartitionLog>, config: &LogConfig) {
        let big = "z".repeat(config.segment_bytes as usize);
        append(
            log,
            batch(&[("zz", Some(&big))], Compression::None, (-1, 0, 0)),
            config,
        );
        // Rolled segments are sealed in the background; the tests clean right away.
        log.lock().expect("lock").wait_for_seals().expect("sealed");
    }

    fn open(dir: &Path, config: &LogConfig) -> Mutex<PartitionLog> {
        Mutex::new(PartitionLog::open(dir, false, config, None, 0, T0).expect("open"))
    }

    fn run_clean(log: &Mutex<PartitionLog>, config: &LogConfig, now: i64) -> Option<CleanStats> {
        clean(|| log.lock().expect("lock"), config, now).expect("clean")
    }

    /// Every record of the log from its start with the header of its batch.
    fn read_all(log: &Mutex<PartitionLog>) -> Vec<(Record, i16, i64, i16, i32, i64)> {
        let log = log.lock().expect("lock");
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while let Some(plan) = log.plan_read(offset).expect("in range") {
            let bytes = read_batches(&plan, offset, 1 << 20, true).expect("read");
            if bytes.is_empty() {
                break;
            }
            for item in batch::Batches::new(&bytes) {
                let (header, range) = item.expect("whole batch");
                let set = RecordBatchDecoder::decode(&mut bytes.slice(range)).expect("decode");
                for record in set.records {
                    out.push((
                        record,
                        header.compression(),
                        header.producer_id(),
                        header.producer_epoch(),
                        header.base_sequence(),
                        header.last_offset(),
                    ));
                }
                offset = header.last_offset() + 1;
            }
        }
        out
    }

    fn key_values(
        records: &[(Record, i16, i64, i16, i32, i64)],
    ) -> Vec<(i64, String, Option<String>)> {
        records
            .iter()
            .map(|(r, ..)| {
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                (
                    r.offset,
                    r.key.as_ref().map(text).unwrap_or_default(),
                    r.value.as_ref().map(text),
                )
            })
            .collect()
    }

    #[test]
    fn latest_value_per_key_is_kept_at_its_original_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let log = open(dir.path(), &config);
        for round in 0..10 {
            let values: Vec<String> = (0..5).map(|k| format!("r{round}k{k}")).collect();
            let records: Vec<(String, Option<&str>)> = (0..5)
                .map(|k| (format!("k{k}"), Some(values[k].as_str())))
                .collect();
            let records: Vec<(&str, Option<&str>)> =
                records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            append(
                &log,
                batch(&records, Compression::None, (-1, 0, 0)),
                &config,
            );
        }
        roll(&log, &config);
        let size_before = log.lock().expect("lock").size_bytes();
        let stats = run_clean(&log, &config, T0).expect("a pass ran");
        assert!(stats.segments_rewritten > 0);
        let kept = key_values(&read_all(&log));
        let expected: Vec<(i64, String, Option<String>)> = (0..5)
            .map(|k| (45 + k, format!("k{k}"), Some(format!("r9k{k}"))))
            .chain([(50, "zz".to_string(), Some("z".repeat(1_000)))])
            .collect();
        assert_eq!(kept, expected);
        assert!(log.lock().expect("lock").size_bytes() < size_before);
        assert_eq!(
            log.lock().expect("lock").log_end_offset(),
            51,
            "offsets are kept"
        );

        // A second pass has nothing to do; the result survives a reopen.
        assert_eq!(run_clean(&log, &config, T0), None);
        log.lock().expect("lock").close().expect("close");
        drop(log);
        let reopened = open(dir.path(), &config);
        assert_eq!(key_values(&read_all(&reopened)), expected);
        let recovered = Mutex::new(
            PartitionLog::open(dir.path(), true, &config, None, 0, T0).expect("recover"),
        );
        assert_eq!(key_values(&read_all(&recovered)), expected);
    }

    #[test]
    fn tombstones_stay_until_delete_retention_passed_then_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let log = open(dir.path(), &config);
        append(
            &log,
            batch(
                &[("a", Some("1")), ("b", Some("1"))],
                Compression::None,
                (-1, 0, 0),
            ),
            &config,
        );
        append(
            &log,
            batch(&[("a", None)], Compression::None, (-1, 0, 0)),
            &config,
        );
        roll(&log, &config);
        run_clean(&log, &config, T0).expect("first pass");
        let after_first = key_values(&read_all(&log));
        assert_eq!(
            after_first[..2],
            [
                (1, "b".to_string(), Some("1".to_string())),
                (2, "a".to_string(), None)
            ],
            "the old value of a is gone, its tombstone stays"
        );
        // Before the horizon nothing is due.
        assert_eq!(run_clean(&log, &config, T0 + 59_999), None);
        assert_eq!(key_values(&read_all(&log)), after_first);
        // At the horizon the tombstone goes.
        run_clean(&log, &config, T0 + 60_000).expect("horizon pass");
        let after_horizon = key_values(&read_all(&log));
        assert_eq!(
            after_horizon[0],
            (1, "b".to_string(), Some("1".to_string()))
        );
        assert!(
            after_horizon.iter().all(|(_, k, _)| k != "a"),
            "{after_horizon:?}"
        );
    }

    #[test]
    fn compressed_batches_are_recompressed_with_their_codec_and_keep_producer_fields() {
        for codec in [Compression::Gzip, Compression::Zstd] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = config();
            let log = open(dir.path(), &config);
            let mut seq = 0;
            for round in 0..6 {
                let v = format!("v{round}");
                let records = [
                    ("x", Some(v.as_str())),
                    ("y", Some(v.as_str())),
                    (
                        if round % 2 == 0 { "even" } else { "odd" },
                        Some(v.as_str()),
                    ),
                ];
                append(&log, batch(&records, codec, (42, 3, seq)), &config);
                seq += 3;
            }
            roll(&log, &config);
            run_clean(&log, &config, T0).expect("pass");
            let all = read_all(&log);
            let kept = key_values(&all);
            assert_eq!(
                kept[..4],
                [
                    (14, "even".to_string(), Some("v4".to_string())),
                    (15, "x".to_string(), Some("v5".to_string())),
                    (16, "y".to_string(), Some("v5".to_string())),
                    (17, "odd".to_string(), Some("v5".to_string())),
                ]
            );
            for (record, compression, pid, epoch, base_seq, last_offset) in &all[..4] {
                assert_eq!(*compression, codec as i16, "{codec:?}");
                assert_eq!((*pid, *epoch), (42, 3));
                assert_eq!(
                    record.sequence, record.offset as i32,
                    "sequence follows the offset"
                );
                assert_eq!(i64::from(*base_seq), *last_offset - 2, "base sequence kept");
            }
            // The batch of offsets 12..14 keeps only 14, its base offset and lastOffsetDelta.
            assert_eq!(all[0].5, 14);
            // The producer state survives: a retry of the last batch is still a duplicate.
            let mut retry = batch(
                &[("x", Some("v5")), ("y", Some("v5")), ("odd", Some("v5"))],
                codec,
                (42, 3, 15),
            );
            let info = log
                .lock()
                .expect("lock")
                .append(&mut retry, 3, &config, T0)
                .expect("retry");
            assert_eq!(info.base_offset, 15);
        }
    }

    #[test]
    fn an_emptied_last_batch_of_a_producer_is_kept_empty_and_others_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let log = open(dir.path(), &config);
        append(
            &log,
            batch(&[("a", Some("1"))], Compression::None, (7, 0, 0)),
            &config,
        );
        append(
            &log,
            batch(&[("a", Some("2"))], Compression::None, (7, 0, 1)),
            &config,
        );
        append(
            &log,
            batch(&[("a", Some("3"))], Compression::None, (-1, 0, 0)),
            &config,
        );
        roll(&log, &config);
        run_clean(&log, &config, T0).expect("pass");
        let guard = log.lock().expect("lock");
        let plan = guard.plan_read(0).expect("range").expect("data");
        let bytes = read_batches(&plan, 0, 1 << 20, true).expect("read");
        let headers: Vec<(i64, i32, i64)> = batch::Batches::new(&bytes)
            .map(|b| b.expect("batch").0)
            .map(|h| (h.base_offset(), h.record_count(), h.producer_id()))
            .collect();
        assert_eq!(headers[..2], [(1, 0, 7), (2, 1, -1)]);
        drop(guard);
        // The producer's sequence continues after the emptied batch.
        append(
            &log,
            batch(&[("b", Some("1"))], Compression::None, (7, 0, 2)),
            &config,
        );
    }

    #[test]
    fn the_dirty_ratio_and_compaction_lag_decide_whether_a_pass_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let log = open(dir.path(), &config);
        for round in 0..20 {
            let v = format!("{round}");
            let keys: Vec<String> = (0..4).map(|k| format!("key-{round}-{k}")).collect();
            let records: Vec<(&str, Option<&str>)> = keys
                .iter()
                .map(|k| (k.as_str(), Some(v.as_str())))
                .collect();
            append(
                &log,
                batch(&records, Compression::None, (-1, 0, 0)),
                &config,
            );
        }
        roll(&log, &config);
        let lagging = LogConfig {
            min_compaction_lag_ms: 1_000,
            ..config.clone()
        };
        assert_eq!(
            run_clean(&log, &lagging, T0),
            None,
            "every segment is too new"
        );
        run_clean(&log, &config, T0).expect("all dirty: a pass runs");
        // A little new data: a dirty ratio far below 0.5.
        append(
            &log,
            batch(&[("key-0-0", Some("new"))], Compression::None, (-1, 0, 0)),
            &config,
        );
        roll(&log, &config);
        assert_eq!(run_clean(&log, &config, T0), None);
        let eager = LogConfig {
            min_cleanable_dirty_ratio: 0.01,
            ..config.clone()
        };
        let stats = run_clean(&log, &eager, T0).expect("ratio 0.01: a pass runs");
        assert!(stats.segments_rewritten >= 1);
        let kept = key_values(&read_all(&log));
        assert!(!kept.iter().any(|(o, k, _)| k == "key-0-0" && *o == 0));
        let overdue = LogConfig {
            max_compaction_lag_ms: 1,
            ..config.clone()
        };
        append(
            &log,
            batch(&[("key-0-1", Some("new"))], Compression::None, (-1, 0, 0)),
            &config,
        );
        roll(&log, &config);
        assert_eq!(run_clean(&log, &config, T0 + 10), None);
        assert!(
            run_clean(&log, &overdue, T0 + 10).is_some(),
            "max.compaction.lag.ms forces a pass"
        );
    }

    #[test]
    fn a_crash_between_writing_and_swapping_leaves_a_consistent_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let log = open(dir.path(), &config);
        let mut latest = BTreeMap::new();
        for round in 0..30 {
            let v = format!("{round}");
            let k = format!("k{}", round % 4);
            latest.insert(k.clone(), v.clone());
            append(
                &log,
                batch(
                    &[(k.as_str(), Some(v.as_str()))],
                    Compression::Gzip,
                    (-1, 0, 0),
                ),
                &config,
            );
        }
        roll(&log, &config);
        latest.insert("zz".into(), "z".repeat(1_000));
        let before = key_values(&read_all(&log));
        // The lock-free half of a pass: `.cleaned` files written, nothing swapped.
        let cleaned = {
            let mut guard = log.lock().expect("lock");
            guard.wait_for_seals().expect("sealed");
            let job = plan(&guard, &config, T0).expect("job");
            drop(guard);
            let cleaned = run(&job, T0).expect("run");
            (job, cleaned)
        };
        let bases: Vec<i64> = cleaned
            .1
            .segments
            .iter()
            .map(|s| s.segment.base_offset())
            .collect();
        assert!(bases.len() >= 2, "{bases:?}");
        drop(cleaned);
        log.lock().expect("lock").close().expect("close");
        drop(log);
        // Crash after the first segment's `.cleaned` became `.swap`; a torn `.cleaned` elsewhere.
        std::fs::rename(
            segment_path(dir.path(), bases[0], CLEANED_SUFFIX),
            segment_path(dir.path(), bases[0], SWAP_SUFFIX),
        )
        .expect("rename");
        std::fs::write(segment_path(dir.path(), bases[1], CLEANED_SUFFIX), b"torn").expect("write");

        let reopened = open(dir.path(), &config);
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let after = key_values(&read_all(&reopened));
        assert!(
            after.len() < before.len(),
            "the swapped segment is the cleaned one"
        );
        let mut applied = BTreeMap::new();
        let mut last_offset = -1;
        for (offset, key, value) in &after {
            assert!(*offset > last_offset, "offsets increase");
            last_offset = *offset;
            applied.insert(key.clone(), value.clone().expect("no tombstones"));
        }
        assert_eq!(applied, latest, "no latest value lost");
        // A full pass afterwards finishes the job.
        run_clean(&reopened, &config, T0).expect("pass");
        assert_eq!(key_values(&read_all(&reopened)).len(), latest.len());
    }
}
