//! Records as the consumer returns them, and the decoding of one partition's fetched bytes.

use std::collections::BTreeSet;

use bytes::Bytes;
use fjord_protocol::batch::BatchHeader;
use kafka_protocol::records::RecordBatchDecoder;

use crate::error::{Error, Result};

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create time or log-append time, per the topic).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Headers in the order the producer wrote them.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What one partition's fetched bytes decode to.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) records: Vec<ConsumerRecord>,
    /// The next offset to fetch: past the last whole batch read (control batches included).
    pub(crate) next_offset: Option<i64>,
}

/// An aborted transaction in a fetch response (read_committed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aborted {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
}

/// Decodes whole batches from `bytes` (a trailing partial batch is left for the next fetch),
/// decompressing as needed; records before `fetch_offset`, control records and records of
/// `aborted` transactions are skipped.
#[cfg(test)]
pub(crate) fn decode_partition(
    topic: &str,
    partition: i32,
    bytes: &Bytes,
    fetch_offset: i64,
    aborted: &[Aborted],
) -> Result<Decoded> {
    let mut out = Decoded::default();
    out.next_offset = decode_partition_into(
        topic,
        partition,
        bytes,
        fetch_offset,
        aborted,
        &mut out.records,
    )?;
    Ok(out)
}

/// [`decode_partition`], appending the records to `records` (no intermediate vector) and
/// returning the next offset to fetch.
pub(crate) fn decode_partition_into(
    topic: &str,
    partition: i32,
    bytes: &Bytes,
    fetch_offset: i64,
    aborted: &[Aborted],
    records: &mut Vec<ConsumerRecord>,
) -> Result<Option<i64>> {
    let mut next_offset = None;
    let mut aborted: Vec<Aborted> = aborted.to_vec();
    aborted.sort_by_key(|a| a.first_offset);
    let mut pending = aborted.into_iter().peekable();
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Ok(header) = BatchHeader::parse(&bytes[at..]) else {
            break;
        };
        let end = at + header.total_len();
        if end > bytes.len() {
            break;
        }
        let mut batch = bytes.slice(at..end);
        at = end;
        let last_offset = header.last_offset();
        if last_offset < fetch_offset {
            continue;
        }
        while let Some(a) = pending.next_if(|a| a.first_offset <= last_offset) {
            aborting.insert(a.producer_id);
        }
        let producer_id = header.producer_id();
        if header.is_control() {
            // An abort or commit marker ends the producer's transaction.
            aborting.remove(&producer_id);
            next_offset = Some(last_offset + 1);
            continue;
        }
        if header.is_transactional() && aborting.contains(&producer_id) {
            next_offset = Some(last_offset + 1);
            continue;
        }
        let sets = RecordBatchDecoder::decode_all(&mut batch).map_err(|e| Error::Protocol {
            addr: format!("{topic}-{partition}"),
            reason: format!(
                "decoding a record batch at offset {}: {e}",
                header.base_offset()
            ),
        })?;
        records.reserve(usize::try_from(header.record_count()).unwrap_or(0));
        for record in sets.into_iter().flat_map(|s| s.records) {
            if record.offset < fetch_offset || record.control {
                continue;
            }
            records.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
        next_offset = Some(last_offset + 1);
    }
    Ok(next_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(
        base: i64,
        count: i64,
        compression: Compression,
        producer_id: i64,
        transactional: bool,
        control: bool,
    ) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: if producer_id >= 0 { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: i as i32,
                timestamp: 1_000 + base + i,
                key: Some(Bytes::from(format!("k{}", base + i))),
                value: Some(Bytes::from(format!("v{}", base + i))),
                headers: IndexMap::from([(StrBytes::from_static_str("h"), Some(Bytes::from("x")))]),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn offsets(d: &Decoded) -> Vec<i64> {
        d.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn records_before_the_fetch_offset_are_skipped_in_every_codec() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut bytes = batch(0, 5, compression, -1, false, false);
            bytes.extend(batch(5, 3, compression, -1, false, false));
            let d = decode_partition("t", 0, &Bytes::from(bytes), 3, &[]).unwrap();
            assert_eq!(offsets(&d), vec![3, 4, 5, 6, 7], "{compression:?}");
            assert_eq!(d.next_offset, Some(8));
            let r = &d.records[0];
            assert_eq!(r.key.as_deref(), Some(&b"k3"[..]));
            assert_eq!(r.value.as_deref(), Some(&b"v3"[..]));
            assert_eq!(r.timestamp, 1_003);
            assert_eq!(r.headers, vec![("h".to_string(), Some(Bytes::from("x")))]);
        }
    }

    #[test]
    fn a_trailing_partial_batch_is_left_for_the_next_fetch() {
        let mut bytes = batch(0, 2, Compression::None, -1, false, false);
        let second = batch(2, 2, Compression::None, -1, false, false);
        bytes.extend(&second[..second.len() - 5]);
        let d = decode_partition("t", 0, &Bytes::from(bytes), 0, &[]).unwrap();
        assert_eq!(offsets(&d), vec![0, 1]);
        assert_eq!(d.next_offset, Some(2));
    }

    #[test]
    fn control_batches_and_aborted_transactions_are_skipped() {
        let mut bytes = batch(0, 2, Compression::None, 7, true, false);
        bytes.extend(batch(2, 1, Compression::None, 7, true, true)); // abort marker
        bytes.extend(batch(3, 2, Compression::None, 8, true, false));
        bytes.extend(batch(5, 1, Compression::None, 8, true, true)); // commit marker
        let bytes = Bytes::from(bytes);
        let aborted = [Aborted {
            producer_id: 7,
            first_offset: 0,
        }];
        let d = decode_partition("t", 0, &bytes, 0, &aborted).unwrap();
        assert_eq!(offsets(&d), vec![3, 4]);
        assert_eq!(d.next_offset, Some(6));
        // read_uncommitted: no aborted list, only the markers are skipped.
        let d = decode_partition("t", 0, &bytes, 0, &[]).unwrap();
        assert_eq!(offsets(&d), vec![0, 1, 3, 4]);
    }
}
