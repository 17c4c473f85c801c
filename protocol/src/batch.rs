//! A zero-copy view of Kafka record batches (magic v2) and the edits a broker makes on append.
//!
//! Layout of the fixed 61-byte header (big-endian):
//!
//! | offset | field                | type  |
//! |-------:|----------------------|-------|
//! | 0      | baseOffset           | int64 |
//! | 8      | batchLength          | int32 (bytes after this field) |
//! | 12     | partitionLeaderEpoch | int32 |
//! | 16     | magic                | int8 (= 2) |
//! | 17     | crc                  | uint32, CRC32C of bytes 21.. |
//! | 21     | attributes           | int16 |
//! | 23     | lastOffsetDelta      | int32 |
//! | 27     | baseTimestamp        | int64 |
//! | 35     | maxTimestamp         | int64 |
//! | 43     | producerId           | int64 |
//! | 51     | producerEpoch        | int16 |
//! | 53     | baseSequence         | int32 |
//! | 57     | recordsCount         | int32 |
//!
//! The broker never looks past the header on its hot path: records stay as the producer encoded
//! (and compressed) them.

use crate::BatchError;

/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 61;
/// The only record format accepted.
pub const MAGIC_V2: i8 = 2;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// A view of one batch's fixed header over at least [`HEADER_LEN`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

macro_rules! read_be {
    ($bytes:expr, $at:expr, $ty:ty) => {{
        const N: usize = std::mem::size_of::<$ty>();
        let mut raw = [0u8; N];
        raw.copy_from_slice(&$bytes[$at..$at + N]);
        <$ty>::from_be_bytes(raw)
    }};
}

impl<'a> BatchHeader<'a> {
    /// Reads the header at the start of `bytes`. Checks only that the header is present and that
    /// `batchLength` covers it; see [`validate`] for the full checks.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let header = BatchHeader {
            bytes: &bytes[..HEADER_LEN],
        };
        let length = header.batch_length();
        if length < 0 || (length as usize) < HEADER_LEN - LOG_OVERHEAD {
            return Err(BatchError::LengthTooSmall {
                length,
                min: HEADER_LEN - LOG_OVERHEAD,
            });
        }
        Ok(header)
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        read_be!(self.bytes, 0, i64)
    }
    /// The `batchLength` field: bytes after the first [`LOG_OVERHEAD`].
    pub fn batch_length(&self) -> i32 {
        read_be!(self.bytes, BATCH_LENGTH_AT, i32)
    }
    /// Bytes of the whole batch, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length().max(0) as usize
    }
    /// The leader epoch the batch was appended under.
    pub fn partition_leader_epoch(&self) -> i32 {
        read_be!(self.bytes, LEADER_EPOCH_AT, i32)
    }
    /// The record format version.
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_AT] as i8
    }
    /// The stored CRC32C.
    pub fn crc(&self) -> u32 {
        read_be!(self.bytes, CRC_AT, u32)
    }
    /// The attribute bits.
    pub fn attributes(&self) -> i16 {
        read_be!(self.bytes, ATTRIBUTES_AT, i16)
    }
    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes() & COMPRESSION_MASK
    }
    /// Whether timestamps are the broker's LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// Offset delta of the last record.
    pub fn last_offset_delta(&self) -> i32 {
        read_be!(self.bytes, LAST_OFFSET_DELTA_AT, i32)
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        read_be!(self.bytes, BASE_TIMESTAMP_AT, i64)
    }
    /// Largest record timestamp (or the LogAppendTime).
    pub fn max_timestamp(&self) -> i64 {
        read_be!(self.bytes, MAX_TIMESTAMP_AT, i64)
    }
    /// Idempotent/transactional producer id, -1 when none.
    pub fn producer_id(&self) -> i64 {
        read_be!(self.bytes, PRODUCER_ID_AT, i64)
    }
    /// Producer epoch, -1 when none.
    pub fn producer_epoch(&self) -> i16 {
        read_be!(self.bytes, PRODUCER_EPOCH_AT, i16)
    }
    /// Sequence number of the first record, -1 when none.
    pub fn base_sequence(&self) -> i32 {
        read_be!(self.bytes, BASE_SEQUENCE_AT, i32)
    }
    /// Number of records.
    pub fn record_count(&self) -> i32 {
        read_be!(self.bytes, RECORDS_COUNT_AT, i32)
    }
}

/// CRC32C over the CRC-covered part of a whole batch (attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks one whole batch as a Kafka broker does before appending it: magic v2, length equal to
/// the bytes given, CRC32C, a known codec and a record count that agrees with `lastOffsetDelta`.
pub fn validate(batch: &[u8]) -> Result<BatchHeader<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic() != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic(),
        });
    }
    if header.total_len() != batch.len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc() {
        return Err(BatchError::CrcMismatch {
            stored: header.crc(),
            computed,
        });
    }
    if header.compression() > 4 {
        return Err(BatchError::UnknownCompression {
            codec: header.compression(),
        });
    }
    let count = header.record_count();
    if count <= 0 || header.last_offset_delta() != count - 1 {
        return Err(BatchError::BadRecordCount {
            count,
            last_offset_delta: header.last_offset_delta(),
        });
    }
    Ok(header)
}

/// Walks a run of concatenated batches by their headers, yielding each batch's byte range.
///
/// Stops with an error at the first header that is cut short or malformed; callers decide whether
/// that is corruption (a produce request) or a partial tail (a log read).
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Batches<'a> {
    /// Iterates over the batches in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Batches { bytes, position: 0 }
    }

    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader<'a>, std::ops::Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.position..];
        if rest.is_empty() {
            return None;
        }
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(err) => {
                self.position = self.bytes.len();
                return Some(Err(err));
            }
        };
        let len = header.total_len();
        if len > rest.len() {
            self.position = self.bytes.len();
            return Some(Err(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            }));
        }
        let range = self.position..self.position + len;
        self.position += len;
        Some(Ok((header, range)))
    }
}

/// Writes the base offset (outside the CRC, so the CRC stays valid).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[..8].copy_from_slice(&offset.to_be_bytes());
}

/// Writes the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch's timestamps as LogAppendTime `now` and recomputes the CRC, as Kafka does for
/// topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], now: i64) {
    let attributes = BatchHeader { bytes: batch }.attributes() | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builders of valid batches for tests and benchmarks.
pub mod testing {
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// An uncompressed batch of `count` records with value `value`, timestamps from `timestamp`
    /// (one millisecond apart), keys `k0`, `k1`, ...
    pub fn batch(base_offset: i64, count: i32, timestamp: i64, value: &[u8]) -> Vec<u8> {
        build(base_offset, count, timestamp, value, (-1, -1, 0))
    }

    /// Like [`batch`], from an idempotent producer: `producer_id`, `epoch`, sequences from
    /// `base_sequence`.
    pub fn idempotent_batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: i32,
        timestamp: i64,
        value: &[u8],
    ) -> Vec<u8> {
        build(
            0,
            count,
            timestamp,
            value,
            (producer_id, epoch, base_sequence),
        )
    }

    fn build(
        base_offset: i64,
        count: i32,
        timestamp: i64,
        value: &[u8],
        producer: (i64, i16, i32),
    ) -> Vec<u8> {
        let (producer_id, producer_epoch, base_sequence) = producer;
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i64::from(i),
                // The encoder derives the batch's base sequence from offset - sequence.
                sequence: base_sequence + i,
                timestamp: timestamp + i64::from(i),
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(bytes::Bytes::copy_from_slice(value)),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
            .expect("encoding an uncompressed batch cannot fail");
        buf.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_batch_passes_and_reads_back() {
        let bytes = testing::batch(0, 5, 1_000, b"value");
        let header = validate(&bytes).expect("valid");
        assert_eq!(header.record_count(), 5);
        assert_eq!(header.last_offset_delta(), 4);
        assert_eq!(header.base_timestamp(), 1_000);
        assert_eq!(header.max_timestamp(), 1_004);
        assert_eq!(header.total_len(), bytes.len());
        assert_eq!(header.compression(), 0);
    }

    #[test]
    fn flipped_payload_bit_is_a_crc_mismatch() {
        let mut bytes = testing::batch(0, 2, 1_000, b"value");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        assert!(matches!(
            validate(&bytes),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let mut bytes = testing::batch(0, 1, 1_000, b"v");
        bytes[MAGIC_AT] = 1;
        assert_eq!(
            validate(&bytes).unwrap_err(),
            BatchError::UnsupportedMagic { magic: 1 }
        );
    }

    #[test]
    fn length_disagreeing_with_bytes_is_truncation() {
        let bytes = testing::batch(0, 1, 1_000, b"v");
        assert!(matches!(
            validate(&bytes[..bytes.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn offset_and_epoch_edits_keep_the_crc_valid() {
        let mut bytes = testing::batch(0, 3, 1_000, b"v");
        set_base_offset(&mut bytes, 42);
        set_partition_leader_epoch(&mut bytes, 7);
        let header = validate(&bytes).expect("still valid");
        assert_eq!(header.base_offset(), 42);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(header.partition_leader_epoch(), 7);
    }

    #[test]
    fn log_append_time_rewrites_max_timestamp_and_crc() {
        let mut bytes = testing::batch(0, 3, 1_000, b"v");
        set_log_append_time(&mut bytes, 99_999);
        let header = validate(&bytes).expect("crc recomputed");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 99_999);
    }

    #[test]
    fn batches_walks_concatenated_batches_and_reports_a_torn_tail() {
        let a = testing::batch(0, 2, 1, b"a");
        let b = testing::batch(2, 3, 1, b"bb");
        let mut run = [a.clone(), b.clone()].concat();
        let ranges: Vec<_> = Batches::new(&run).map(|r| r.expect("whole").1).collect();
        assert_eq!(ranges, vec![0..a.len(), a.len()..a.len() + b.len()]);
        run.truncate(run.len() - 1);
        let mut walk = Batches::new(&run);
        assert!(walk.next().expect("first").is_ok());
        assert!(matches!(
            walk.next(),
            Some(Err(BatchError::Truncated { .. }))
        ));
        assert_eq!(walk.next().map(|r| r.is_ok()), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = validate(&bytes);
            for item in Batches::new(&bytes) {
                let _ = item;
            }
        }

        #[test]
        fn any_single_byte_corruption_after_the_offset_fields_is_detected(
            index in LOG_OVERHEAD..80usize, flip in 1u8..=255,
        ) {
            let mut bytes = testing::batch(0, 2, 1_000, b"some-value");
            let index = index % bytes.len();
            prop_assume!(index >= LOG_OVERHEAD && !(LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4).contains(&index));
            bytes[index] ^= flip;
            prop_assert!(validate(&bytes).is_err());
        }

        #[test]
        fn edits_round_trip(offset in 0i64..i64::MAX / 2, epoch in 0i32..i32::MAX, now in 0i64..i64::MAX) {
            let mut bytes = testing::batch(0, 4, 5, b"xyz");
            set_base_offset(&mut bytes, offset);
            set_partition_leader_epoch(&mut bytes, epoch);
            set_log_append_time(&mut bytes, now);
            let header = validate(&bytes).expect("valid after edits");
            prop_assert_eq!(header.base_offset(), offset);
            prop_assert_eq!(header.partition_leader_epoch(), epoch);
            prop_assert_eq!(header.max_timestamp(), now);
        }
    }
}
