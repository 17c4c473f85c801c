//! Records as the consumer returns them, and the decoding of one partition's fetched bytes.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::batch::BatchHeader;
use fjord_protocol::batch::HEADER_LEN;
use kafka_protocol::compression::{self as codec, Decompressor};

use crate::error::{Error, Result};

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic (one allocation shared by every record of a fetch; derefs to `str`).
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create time or log-append time, per the topic).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Headers in the order the producer wrote them.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A topic name shared between records: cloning it is a reference count, not a copy.
/// It derefs to `str` and compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(Arc<str>);

impl Topic {
    /// The name as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Self {
        Topic(Arc::from(name))
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Self {
        Topic(Arc::from(name))
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.0.to_string()
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Topic> for String {
    fn eq(&self, other: &Topic) -> bool {
        **self == *other.0
    }
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
        &Topic::from(topic),
        partition,
        bytes,
        fetch_offset,
        aborted,
        true,
        &mut out.records,
    )?;
    Ok(out)
}

/// [`decode_partition`], appending the records to `records` (no intermediate vector) and
/// returning the next offset to fetch.
pub(crate) fn decode_partition_into(
    topic: &Topic,
    partition: i32,
    bytes: &Bytes,
    fetch_offset: i64,
    aborted: &[Aborted],
    check_crc: bool,
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
        let batch = bytes.slice(at..end);
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
        decode_batch(
            &header,
            &batch,
            fetch_offset,
            check_crc,
            topic,
            partition,
            records,
        )
        .map_err(|reason| Error::Protocol {
            addr: format!("{topic}-{partition}"),
            reason: format!(
                "decoding a record batch at offset {}: {reason}",
                header.base_offset()
            ),
        })?;
        next_offset = Some(last_offset + 1);
    }
    Ok(next_offset)
}

/// Decodes one whole v2 batch straight from its bytes: the CRC is checked, compressed records are
/// inflated once, and keys, values and header values are slices of those bytes (no copy).
fn decode_batch(
    header: &BatchHeader<'_>,
    batch: &Bytes,
    fetch_offset: i64,
    check_crc: bool,
    topic: &Topic,
    partition: i32,
    records: &mut Vec<ConsumerRecord>,
) -> std::result::Result<(), String> {
    if header.magic() != 2 {
        return Err(format!("unsupported magic {}", header.magic()));
    }
    if check_crc {
        let computed = fjord_protocol::batch::compute_crc(batch);
        if computed != header.crc() {
            return Err(format!(
                "CRC mismatch (stored {:#010x}, computed {computed:#010x}): the batch is corrupt",
                header.crc()
            ));
        }
    }
    let body = batch.slice(HEADER_LEN.min(batch.len())..);
    let body = inflate(header.compression(), body)?;
    let count = usize::try_from(header.record_count()).unwrap_or(0);
    // Never reserve more than the bytes could hold (each record takes at least 7 bytes).
    records.reserve(count.min(body.len() / 7));
    let base_offset = header.base_offset();
    let base_timestamp = header.base_timestamp();
    let log_append_time = header.is_log_append_time().then(|| header.max_timestamp());
    let mut r = Reader {
        bytes: &body,
        at: 0,
    };
    for _ in 0..count {
        let len = usize::try_from(r.varint()?).map_err(|_| "negative record length".to_string())?;
        let end =
            r.at.checked_add(len)
                .filter(|&e| e <= body.len())
                .ok_or("record cut short")?;
        let mut rec = Reader {
            bytes: &body[..end],
            at: r.at,
        };
        r.at = end;
        rec.skip(1)?; // attributes
        let timestamp_delta = rec.varlong()?;
        let offset = base_offset + i64::from(rec.varint()?);
        let key = rec.nullable(&body)?;
        let value = rec.nullable(&body)?;
        let header_count =
            usize::try_from(rec.varint()?).map_err(|_| "negative header count".to_string())?;
        if offset < fetch_offset {
            continue;
        }
        let mut headers = Vec::with_capacity(header_count.min(end - rec.at));
        for _ in 0..header_count {
            let key_len = usize::try_from(rec.varint()?)
                .map_err(|_| "negative header key length".to_string())?;
            let key = rec.take(key_len)?;
            let key = String::from_utf8_lossy(key).into_owned();
            headers.push((key, rec.nullable(&body)?));
        }
        records.push(ConsumerRecord {
            topic: topic.clone(),
            partition,
            offset,
            timestamp: log_append_time.unwrap_or(base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers,
        });
    }
    Ok(())
}

/// The records section of a batch, decompressed by its codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
fn inflate(codec: i16, body: Bytes) -> std::result::Result<Bytes, String> {
    let mut body = body;
    let inflated = match codec {
        0 => return Ok(body),
        1 => codec::Gzip::decompress(&mut body, |b: &mut Bytes| Ok(std::mem::take(b))),
        2 => codec::Snappy::decompress(&mut body, |b: &mut Bytes| Ok(std::mem::take(b))),
        3 => codec::Lz4::decompress(&mut body, |b: &mut Bytes| Ok(std::mem::take(b))),
        4 => codec::Zstd::decompress(&mut body, |b: &mut Bytes| Ok(std::mem::take(b))),
        other => return Err(format!("unknown compression codec {other}")),
    };
    inflated.map_err(|e| format!("decompressing: {e:#}"))
}

/// A cursor over one record's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varlong(&mut self) -> std::result::Result<i64, String> {
        // Most fields (attributes aside) are small: one byte, no loop.
        if let Some(&b) = self.bytes.get(self.at)
            && b < 0x80
        {
            self.at += 1;
            return Ok(i64::from(b >> 1) ^ -i64::from(b & 1));
        }
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err("varint cut short".into());
            };
            self.at += 1;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn varint(&mut self) -> std::result::Result<i32, String> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
    }

    fn skip(&mut self, n: usize) -> std::result::Result<(), String> {
        self.take(n).map(|_| ())
    }

    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("record field cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A length-prefixed field (-1 is null) as a slice of `whole`, which `bytes` is a prefix of.
    fn nullable(&mut self, whole: &Bytes) -> std::result::Result<Option<Bytes>, String> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        let start = self.at;
        self.skip(len as usize)?;
        Ok(Some(whole.slice(start..self.at)))
    }
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

    #[test]
    fn a_corrupt_batch_is_an_error_unless_crc_checks_are_off() {
        let mut bytes = batch(0, 3, Compression::None, -1, false, false);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // the last header value's last byte
        let bytes = Bytes::from(bytes);
        let err = decode_partition("t", 0, &bytes, 0, &[]).unwrap_err();
        assert!(err.to_string().contains("CRC mismatch"), "{err}");
        let mut records = Vec::new();
        let next = decode_partition_into(&Topic::from("t"), 0, &bytes, 0, &[], false, &mut records)
            .unwrap();
        assert_eq!(next, Some(3));
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].headers[0].1.as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn log_append_time_batches_give_every_record_the_batch_timestamp() {
        let mut bytes = batch(10, 3, Compression::None, -1, false, false);
        fjord_protocol::batch::set_log_append_time(&mut bytes, 77_000);
        let d = decode_partition("t", 0, &Bytes::from(bytes), 0, &[]).unwrap();
        assert_eq!(
            d.records.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![77_000; 3]
        );
    }

    #[test]
    fn truncated_records_inside_a_whole_batch_are_errors_not_panics() {
        // A batch whose CRC is right but whose records section is garbage.
        let good = batch(0, 2, Compression::None, -1, false, false);
        for cut in 1..(good.len() - 61) {
            let mut bytes = good[..good.len() - cut].to_vec();
            let len = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            let crc = fjord_protocol::batch::compute_crc(&bytes);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            // The batch still promises two records, so the last one is always cut short.
            let err = decode_partition("t", 0, &Bytes::from(bytes), 0, &[]).unwrap_err();
            assert!(err.to_string().contains("cut short"), "cut {cut}: {err}");
        }
    }
}
