//! PartitionLog: offsets, rolls and sealing, recovery, retention, DeleteRecords, idempotent
//! producers and the leader-epoch cache.

use super::*;
use fjord_protocol::batch::{BatchHeader, testing};

use crate::log::segment::read_batches;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

fn produce(log: &mut PartitionLog, count: i32, ts: i64, config: &LogConfig) -> AppendInfo {
    let mut bytes = testing::batch(0, count, ts, &[1u8; 100]);
    log.append(&mut bytes, i64::from(count), config, ts)
        .expect("append")
}

#[test]
fn offsets_are_assigned_consecutively_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(1 << 20);
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    assert_eq!(produce(&mut log, 5, 1_000, &config).base_offset, 0);
    assert_eq!(produce(&mut log, 3, 2_000, &config).base_offset, 5);
    assert_eq!(log.log_end_offset(), 8);
    log.close().expect("close");
    let reopened = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("reopen");
    assert_eq!(reopened.log_end_offset(), 8);
    assert_eq!(reopened.high_watermark(), 8);
}

#[test]
fn segments_roll_at_segment_bytes_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    assert!(
        log.segment_count() > 3,
        "rolled into {} segments",
        log.segment_count()
    );
    for offset in 0..100 {
        let plan = log.plan_read(offset).expect("in range").expect("data");
        let bytes = read_batches(&plan, offset, 1, true).expect("read");
        let header = BatchHeader::parse(&bytes).expect("batch");
        assert!(
            header.base_offset() <= offset && offset <= header.last_offset(),
            "offset {offset}"
        );
    }
    assert!(log.plan_read(100).expect("at end").is_none());
    assert!(matches!(
        log.plan_read(101),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

/// Rolls a few segments and "crashes" (no close), then makes the last rolled segment look
/// as if its background seal never ran: its index files are gone.
fn crash_with_an_unsealed_segment(dir: &Path, config: &LogConfig) -> Vec<i64> {
    let mut log = PartitionLog::open(dir, false, config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, config);
    }
    log.wait_for_seals().expect("sealed");
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    assert!(bases.len() >= 3, "{bases:?}");
    drop(log);
    let unsealed = bases[bases.len() - 2];
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        std::fs::remove_file(segment_path(dir, unsealed, suffix)).expect("remove index");
    }
    bases
}

#[test]
fn roll_seals_in_the_background_and_clean_close_waits_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    log.close().expect("close");
    assert!(log.sealing.is_empty());
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    for base in &bases[..bases.len() - 1] {
        assert!(
            Segment::has_index_files(dir.path(), *base),
            "segment {base}"
        );
    }
}

#[test]
fn recovery_checks_a_rolled_segment_whose_seal_did_not_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let bases = crash_with_an_unsealed_segment(dir.path(), &config);
    let log = PartitionLog::open(dir.path(), true, &config, None, 0, 0).expect("recover");
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(log.segments.keys().copied().collect::<Vec<_>>(), bases);
    let unsealed = bases[bases.len() - 2];
    assert!(Segment::has_index_files(dir.path(), unsealed));
    for offset in 0..100 {
        assert!(log.plan_read(offset).expect("in range").is_some());
    }
}

#[test]
fn a_torn_unsealed_segment_drops_the_segments_written_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let bases = crash_with_an_unsealed_segment(dir.path(), &config);
    let unsealed = bases[bases.len() - 2];
    // The machine crashed before the fsync: the segment's last bytes never reached disk.
    let path = segment_path(dir.path(), unsealed, LOG_SUFFIX);
    let len = std::fs::metadata(&path).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(len - 10).expect("truncate");
    drop(file);
    let log = PartitionLog::open(dir.path(), true, &config, None, 0, 0).expect("recover");
    // The torn batch is gone and so is everything after it: no gap in the offsets.
    assert_eq!(log.segments.keys().last().copied(), Some(unsealed));
    assert!(!segment_path(dir.path(), bases[bases.len() - 1], LOG_SUFFIX).exists());
    let end = log.log_end_offset();
    assert!(
        end < bases[bases.len() - 1] && end > unsealed,
        "log end {end}"
    );
    for offset in 0..end {
        assert!(log.plan_read(offset).expect("in range").is_some());
    }
}

#[test]
fn retention_by_time_deletes_expired_segments_and_advances_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1_000,
        ..config(2_000)
    };
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    let deleted = log.enforce_retention(&config, 10_000).expect("retention");
    assert!(deleted > 0);
    assert_eq!(
        log.log_start_offset(),
        100,
        "everything expired, so the log starts at its end"
    );
    assert_eq!(log.log_end_offset(), 100);
    assert!(matches!(
        log.plan_read(0),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes_keeps_the_newest_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_bytes: 3_000,
        retention_ms: -1,
        ..config(1_500)
    };
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    log.enforce_retention(&config, 10_000).expect("retention");
    assert!(
        log.size_bytes() <= 3_000 + 1_500,
        "size {}",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > 0);
}

#[test]
fn delete_records_moves_log_start_and_rejects_offsets_past_the_high_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    for i in 0..20 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    assert_eq!(log.delete_records(42, 0).expect("delete"), 42);
    assert!(matches!(
        log.plan_read(41),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(log.plan_read(42).expect("readable").is_some());
    assert!(matches!(
        log.delete_records(101, 0),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let reopened_start = {
        log.close().expect("close");
        PartitionLog::open(dir.path(), false, &config, Some(42), 0, 0)
            .expect("reopen")
            .log_start_offset()
    };
    assert_eq!(reopened_start, 42);
}

#[test]
fn the_epoch_cache_follows_appends_reopens_and_the_log_start() {
    use crate::replication::epochs::CHECKPOINT_FILE;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(2_000);
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 3, 0).expect("open");
    assert_eq!(
        log.end_offset_for_epoch(3),
        EpochEnd {
            epoch: 3,
            end_offset: 0
        },
        "empty log"
    );
    for i in 0..10 {
        produce(&mut log, 5, 1_000 + i, &config);
    }
    assert_eq!(
        log.end_offset_for_epoch(3),
        EpochEnd {
            epoch: 3,
            end_offset: 50
        }
    );
    assert_eq!(log.end_offset_for_epoch(2), EpochEnd::UNDEFINED);
    log.close().expect("close");
    // A new epoch after a restart starts at the log end.
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 4, 0).expect("reopen");
    assert_eq!(
        log.end_offset_for_epoch(3),
        EpochEnd {
            epoch: 3,
            end_offset: 50
        }
    );
    assert_eq!(
        log.end_offset_for_epoch(4),
        EpochEnd {
            epoch: 4,
            end_offset: 50
        }
    );
    produce(&mut log, 5, 2_000, &config);
    assert_eq!(
        log.end_offset_for_epoch(3),
        EpochEnd {
            epoch: 3,
            end_offset: 50
        }
    );
    assert_eq!(
        log.end_offset_for_epoch(4),
        EpochEnd {
            epoch: 4,
            end_offset: 55
        }
    );
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("checkpoint");
    assert_eq!(text, "0\n2\n3 0\n4 50\n");
    // Epoch 3's records deleted: its end is no longer known.
    log.delete_records(52, 0).expect("delete");
    assert_eq!(log.end_offset_for_epoch(3), EpochEnd::UNDEFINED);
    assert_eq!(
        log.end_offset_for_epoch(4),
        EpochEnd {
            epoch: 4,
            end_offset: 55
        }
    );
    log.close().expect("close");
    // A log written before the checkpoint existed is attributed to the current epoch.
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).expect("remove");
    let log = PartitionLog::open(dir.path(), false, &config, Some(52), 4, 0).expect("reopen");
    assert_eq!(
        log.end_offset_for_epoch(4),
        EpochEnd {
            epoch: 4,
            end_offset: 55
        }
    );
}

#[test]
fn log_append_time_topics_stamp_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..config(1 << 20)
    };
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 3, 0).expect("open");
    let mut bytes = testing::batch(0, 2, 5, b"x");
    let info = log.append(&mut bytes, 2, &config, 77_777).expect("append");
    assert_eq!(info.log_append_time, 77_777);
    let plan = log.plan_read(0).expect("range").expect("data");
    let stored = read_batches(&plan, 0, 1 << 20, true).expect("read");
    let header = batch::validate(&stored).expect("valid crc");
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp(), 77_777);
    assert_eq!(header.partition_leader_epoch(), 3);
}

#[test]
fn retried_idempotent_batch_is_not_appended_twice_even_after_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(1 << 20);
    let send = |log: &mut PartitionLog, seq: i32| {
        let mut bytes = testing::idempotent_batch(42, 0, seq, 5, 1_000, b"v");
        log.append(&mut bytes, 5, &config, 0)
    };
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    assert_eq!(send(&mut log, 0).expect("first").base_offset, 0);
    assert_eq!(send(&mut log, 5).expect("second").base_offset, 5);
    assert_eq!(
        send(&mut log, 0).expect("retry").base_offset,
        0,
        "duplicate answered with its offset"
    );
    assert_eq!(log.log_end_offset(), 10, "nothing appended for the retry");
    assert!(
        matches!(send(&mut log, 20), Err(Error::Sequence(_))),
        "a gap is out of order"
    );
    log.close().expect("close");

    // Clean restart: the state comes from the snapshot.
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("reopen");
    assert_eq!(
        send(&mut log, 5).expect("retry after restart").base_offset,
        5
    );
    assert_eq!(send(&mut log, 10).expect("next").base_offset, 10);
    drop(log);

    // Crash (no close, so no snapshot at the end): the state is replayed from the log.
    let mut log = PartitionLog::open(dir.path(), true, &config, None, 0, 0).expect("recover");
    assert_eq!(
        send(&mut log, 10).expect("retry after crash").base_offset,
        10
    );
    assert_eq!(log.log_end_offset(), 15);
    let mut bumped = testing::idempotent_batch(42, 1, 0, 1, 1_000, b"v");
    assert_eq!(
        log.append(&mut bumped, 1, &config, 0)
            .expect("new epoch")
            .base_offset,
        15
    );
    let mut fenced = testing::idempotent_batch(42, 0, 15, 1, 1_000, b"v");
    assert!(matches!(
        log.append(&mut fenced, 1, &config, 0),
        Err(Error::Sequence(
            crate::log::SequenceError::InvalidEpoch { .. }
        ))
    ));
}

#[test]
fn segment_ms_counts_from_the_first_batch_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1_000,
        ..config(1 << 20)
    };
    let mut log = PartitionLog::open(dir.path(), false, &config, None, 0, 0).expect("open");
    // Wall clock stands still at 0; record time moves 600 ms per batch.
    for i in 0..4 {
        let mut bytes = testing::batch(0, 1, 10_000 + i * 600, b"v");
        log.append(&mut bytes, 1, &config, 0).expect("append");
    }
    // 0 and 600 share a segment; 1200 is 1200 ms after 0: roll; 1800 is 600 after 1200.
    assert_eq!(log.segment_count(), 2);
}
