//! The Produce request frame, written by hand so that encoded batches are not copied.
//!
//! kafka-protocol's encoder copies each partition's records into the frame buffer. Here the
//! frame is a list of pieces: small buffers for the header and the fields around the
//! records, and the batches' own `Bytes` in between, written with one vectored write.
//! Versions 3 to 8 share one non-flexible layout, which every broker since Kafka 0.11 serves
//! (v9+ only add tagged fields and KIP-951 leader hints):
//!
//! ```text
//! size i32 | api_key i16 = 0 | api_version i16 | correlation_id i32 | client_id string
//! transactional_id nullable string (-1) | acks i16 | timeout_ms i32
//! [topic: name string | [partition: index i32 | records bytes (i32 length, then the batch)]]
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// The newest Produce version this layout encodes.
pub(crate) const MAX_VERSION: i16 = 8;
/// The oldest one (v3 added the transactional id).
pub(crate) const MIN_VERSION: i16 = 3;

/// One topic's partitions and their encoded record batches.
pub(crate) type TopicBatches<'a> = (&'a str, Vec<(i32, Bytes)>);

/// The frame's pieces; their lengths add up to the size prefix plus four.
pub(crate) fn produce_frame(
    version: i16,
    correlation_id: i32,
    client_id: &str,
    acks: i16,
    timeout_ms: i32,
    topics: &[TopicBatches<'_>],
) -> Vec<Bytes> {
    // Everything after the size prefix: header, then the request.
    let size = (2 + 2 + 4 + 2 + client_id.len())
        + (2 + 2 + 4 + 4)
        + topics
            .iter()
            .map(|(name, partitions)| {
                2 + name.len()
                    + 4
                    + partitions
                        .iter()
                        .map(|(_, records)| 4 + 4 + records.len())
                        .sum::<usize>()
            })
            .sum::<usize>();
    let mut pieces = Vec::with_capacity(1 + 2 * topics.iter().map(|(_, p)| p.len()).sum::<usize>());
    let mut fields = BytesMut::with_capacity(64 + client_id.len());
    fields.put_i32(size as i32);
    fields.put_i16(0); // api key: Produce
    fields.put_i16(version);
    fields.put_i32(correlation_id);
    put_string(&mut fields, client_id);
    fields.put_i16(-1); // transactional id: null
    fields.put_i16(acks);
    fields.put_i32(timeout_ms);
    fields.put_i32(topics.len() as i32);
    for (name, partitions) in topics {
        put_string(&mut fields, name);
        fields.put_i32(partitions.len() as i32);
        for (partition, records) in partitions {
            fields.put_i32(*partition);
            fields.put_i32(records.len() as i32);
            pieces.push(fields.split().freeze());
            pieces.push(records.clone());
        }
    }
    if !fields.is_empty() {
        pieces.push(fields.freeze());
    }
    pieces
}

fn put_string(buf: &mut BytesMut, text: &str) {
    buf.put_i16(text.len() as i16);
    buf.put_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::encode_frame;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn pieces_match_the_generated_encoder_for_every_version() {
        let batch = |n: u8| Bytes::from(vec![n; 37 + usize::from(n)]);
        let topics: Vec<TopicBatches<'_>> = vec![
            ("alpha", vec![(0, batch(1)), (3, batch(2))]),
            ("beta", vec![(1, batch(3))]),
        ];
        for version in MIN_VERSION..=MAX_VERSION {
            let pieces = produce_frame(version, 77, "fjord-test", -1, 30_000, &topics);
            let ours: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(
                    topics
                        .iter()
                        .map(|(name, partitions)| {
                            TopicProduceData::default()
                                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                                .with_partition_data(
                                    partitions
                                        .iter()
                                        .map(|(p, r)| {
                                            PartitionProduceData::default()
                                                .with_index(*p)
                                                .with_records(Some(r.clone()))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let theirs = encode_frame(&request, version, 77, "fjord-test").expect("encode");
            assert_eq!(ours, theirs.to_vec(), "v{version}");
            // The batches are the caller's buffers, not copies.
            assert!(
                pieces
                    .iter()
                    .any(|p| p.as_ptr() == topics[0].1[0].1.as_ptr())
            );
        }
    }
}
