//! Recompression for topics whose `compression.type` names a codec. Off the default path:
//! with `compression.type=producer` (the default) batches are stored exactly as sent.

use bytes::BytesMut;
use fjord_protocol::BatchError;
use fjord_protocol::batch::Batches;
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

fn compression(codec: i16) -> Compression {
    match codec {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Returns the batches re-encoded with `codec`; batches already using it are copied as they are.
pub(crate) fn to_codec(records: &[u8], codec: i16) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(records.len());
    for item in Batches::new(records) {
        let (header, range) = item?;
        let from = header.compression();
        if from == codec || header.is_control() {
            out.extend_from_slice(&records[range]);
            continue;
        }
        let failed = || BatchError::Recompress { from, to: codec };
        let mut bytes = bytes::Bytes::copy_from_slice(&records[range]);
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|_| failed())?;
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: compression(codec),
        };
        RecordBatchEncoder::encode(&mut buf, set.records.iter(), &options).map_err(|_| failed())?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::batch::{self, testing};

    #[test]
    fn recompressed_batches_validate_and_keep_their_records() {
        let original = testing::batch(0, 20, 1_000, b"a value that compresses well well well well");
        for codec in 1..=4 {
            let out = to_codec(&original, codec).expect("recompress");
            let header = batch::validate(&out).expect("valid batch");
            assert_eq!(header.compression(), codec);
            assert_eq!(header.record_count(), 20);
            let mut bytes = bytes::Bytes::from(out);
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decode");
            assert_eq!(set.records.len(), 20);
            assert_eq!(set.records[7].timestamp, 1_007);
        }
    }
}
