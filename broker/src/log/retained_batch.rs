//! Rebuilds one record batch from the records the log cleaner keeps, the way Kafka's
//! `MemoryRecords.filterTo` does: the batch keeps its base offset, `lastOffsetDelta`, producer
//! id, epoch, base sequence, leader epoch, attributes and codec, so that offsets and the
//! idempotent-producer state read from batch headers are the same as before cleaning. Only the
//! record count, the records (recompressed with the batch's own codec), the timestamps they span
//! and the CRC change.
//!
//! With a delete horizon (KIP-534), attribute bit 6 is set and `baseTimestamp` holds the horizon:
//! the time after which the batch's tombstones may be removed. Record timestamps stay absolute
//! (each record's delta is taken from whatever `baseTimestamp` holds).

use bytes::{BufMut, BytesMut};
use fjord_protocol::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use kafka_protocol::compression::{self as codec, Compressor};
use kafka_protocol::records::Record;

/// Attribute bit of a batch whose `baseTimestamp` is its delete horizon.
pub(super) const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;

/// Why a batch could not be rebuilt.
#[derive(Debug, thiserror::Error)]
#[error("cannot re-encode a batch with codec {codec}")]
pub(crate) struct EncodeError {
    codec: i16,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The delete horizon of a batch, if it has one.
pub(super) fn delete_horizon(header: &BatchHeader<'_>) -> Option<i64> {
    (header.attributes() & DELETE_HORIZON_BIT != 0).then(|| header.base_timestamp())
}

/// Rebuilds `original` (one whole batch) holding only `kept` (records decoded from it, in
/// offset order). An empty `kept` gives Kafka's empty batch: the header alone, no codec.
pub(super) fn rebuild(
    original: &BatchHeader<'_>,
    kept: &[&Record],
    horizon: Option<i64>,
) -> Result<Vec<u8>, EncodeError> {
    let codec = original.compression();
    let mut attributes = original.attributes() & !DELETE_HORIZON_BIT;
    let base_offset = original.base_offset();
    let (base_timestamp, max_timestamp) = if kept.is_empty() {
        attributes &= !COMPRESSION_MASK;
        (original.base_timestamp(), original.max_timestamp())
    } else {
        let first = kept.iter().map(|r| r.timestamp).min().unwrap_or(-1);
        let max = if original.is_log_append_time() {
            original.max_timestamp()
        } else {
            kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
        };
        match horizon {
            Some(h) => {
                attributes |= DELETE_HORIZON_BIT;
                (h, max)
            }
            None => (first, max),
        }
    };
    let mut raw = BytesMut::new();
    for record in kept {
        encode_record(&mut raw, record, base_offset, base_timestamp);
    }
    let mut out = BytesMut::with_capacity(HEADER_LEN + raw.len());
    out.put_i64(base_offset);
    out.put_i32(0); // batchLength, filled below
    out.put_i32(original.partition_leader_epoch());
    out.put_i8(batch::MAGIC_V2);
    out.put_u32(0); // crc, filled below
    out.put_i16(attributes);
    out.put_i32(original.last_offset_delta());
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(original.producer_id());
    out.put_i16(original.producer_epoch());
    out.put_i32(original.base_sequence());
    out.put_i32(kept.len() as i32);
    if !kept.is_empty() {
        compress(&mut out, &raw, codec)?;
    }
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.to_vec())
}

/// Appends `raw` compressed with Kafka codec `codec`.
fn compress(out: &mut BytesMut, raw: &[u8], codec: i16) -> Result<(), EncodeError> {
    let fill = |tmp: &mut BytesMut| {
        tmp.put_slice(raw);
        Ok(())
    };
    let result = match codec {
        0 => {
            out.put_slice(raw);
            Ok(())
        }
        1 => <codec::Gzip as Compressor<BytesMut>>::compress(out, fill),
        2 => <codec::Snappy as Compressor<BytesMut>>::compress(out, fill),
        3 => <codec::Lz4 as Compressor<BytesMut>>::compress(out, fill),
        4 => <codec::Zstd as Compressor<BytesMut>>::compress(out, fill),
        _ => {
            return Err(EncodeError {
                codec,
                source: "unknown compression codec".into(),
            });
        }
    };
    result.map_err(|e| EncodeError {
        codec,
        source: e.into(),
    })
}

/// One record in the v2 layout: length, attributes, timestamp and offset deltas, key, value,
/// headers (lengths as zigzag varints).
fn encode_record(out: &mut BytesMut, record: &Record, base_offset: i64, base_timestamp: i64) {
    let mut body = BytesMut::new();
    body.put_i8(0);
    put_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
    put_varint(&mut body, (record.offset - base_offset) as i32);
    put_bytes(&mut body, record.key.as_deref());
    put_bytes(&mut body, record.value.as_deref());
    put_varint(&mut body, record.headers.len() as i32);
    for (key, value) in &record.headers {
        put_bytes(&mut body, Some(key.as_bytes()));
        put_bytes(&mut body, value.as_deref());
    }
    put_varint(out, body.len() as i32);
    out.put_slice(&body);
}

fn put_bytes(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.put_slice(b);
        }
        None => put_varint(out, -1),
    }
}

fn put_varint(out: &mut BytesMut, n: i32) {
    put_unsigned(out, ((n << 1) ^ (n >> 31)) as u32 as u64);
}

fn put_varlong(out: &mut BytesMut, n: i64) {
    put_unsigned(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn put_unsigned(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    fn record(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>, ts: i64) -> Record {
        let mut headers = IndexMap::new();
        headers.insert("h".into(), Some(Bytes::from_static(b"v")));
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: 9,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 100 + offset as i32,
            timestamp: ts,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers,
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    fn decode(bytes: &[u8]) -> Vec<Record> {
        RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(bytes))
            .expect("decode")
            .records
    }

    proptest! {
        #[test]
        fn rebuilt_batches_round_trip_through_the_decoder(
            keep in proptest::collection::vec(any::<bool>(), 1..20),
            codec in 0usize..5,
            ts_step in -1_000i64..1_000,
            horizon in proptest::option::of(0i64..i64::MAX / 2),
        ) {
            let compression = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][codec];
            let records: Vec<Record> = (0..keep.len() as i64)
                .map(|i| {
                    let key = format!("k{}", i % 3);
                    let value = (i % 4 != 0).then(|| format!("v{i}"));
                    record(50 + i, Some(key.as_bytes()), value.as_deref().map(str::as_bytes), 1_000_000 + i * ts_step)
                })
                .collect();
            let original = encode(&records, compression);
            let header = BatchHeader::parse(&original).expect("header");
            let kept: Vec<&Record> = records.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
            let rebuilt = rebuild(&header, &kept, horizon).expect("rebuild");
            let new = BatchHeader::parse(&rebuilt).expect("header");
            prop_assert_eq!(batch::compute_crc(&rebuilt), new.crc());
            prop_assert_eq!(new.total_len(), rebuilt.len());
            prop_assert_eq!(new.base_offset(), 50);
            prop_assert_eq!(new.last_offset(), header.last_offset());
            prop_assert_eq!(new.base_sequence(), header.base_sequence());
            prop_assert_eq!(new.producer_id(), 9);
            prop_assert_eq!(new.producer_epoch(), 1);
            prop_assert_eq!(new.partition_leader_epoch(), 3);
            prop_assert_eq!(new.record_count() as usize, kept.len());
            if kept.is_empty() {
                prop_assert_eq!(new.compression(), 0);
            } else {
                prop_assert_eq!(new.compression(), header.compression());
                prop_assert_eq!(delete_horizon(&new), horizon);
            }
            let decoded = decode(&rebuilt);
            prop_assert_eq!(decoded.len(), kept.len());
            for (d, k) in decoded.iter().zip(&kept) {
                prop_assert_eq!(d.offset, k.offset);
                prop_assert_eq!(d.timestamp, k.timestamp);
                prop_assert_eq!(&d.key, &k.key);
                prop_assert_eq!(&d.value, &k.value);
                prop_assert_eq!(&d.headers, &k.headers);
                prop_assert_eq!(d.sequence, k.sequence);
            }
        }
    }
}
