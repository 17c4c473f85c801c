//! The partition log: Kafka-shaped segments on disk. The byte layouts and the fsync ordering
//! are written down in `docs/log-format.md`.

mod checkpoint;
mod cleaner;
mod offset_index;
mod partition_log;
mod producer_state;
mod retained_batch;
mod sealing;
mod segment;
mod time_index;

pub(crate) use checkpoint::OffsetCheckpoint;
pub(crate) use cleaner::clean;
pub(crate) use partition_log::{AppendInfo, PartitionLog, count_records};
pub use producer_state::SequenceError;
pub(crate) use segment::{ReadPlan, find_batch_by_time, read_batches, sync_dir, write_atomically};

/// Runs every on-disk decoder over `data` (for the fuzz targets).
pub(crate) fn fuzz_decoders(data: &[u8]) {
    let log_len = data.first().map_or(0, |b| u64::from(*b) << 8);
    let _ = offset_index::OffsetIndex::decode(data, log_len);
    let _ = time_index::TimeIndex::decode(data, log_len);
    let _ = producer_state::ProducerStateTable::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = checkpoint::parse(text);
    }
}
