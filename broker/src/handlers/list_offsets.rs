//! ListOffsets: earliest (-2, and -4 earliest-local), latest (-1), max timestamp (-3), or the
//! first record whose timestamp is at or after a given time.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use crate::broker::Broker;
use crate::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topic(wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .into_iter()
                .map(|p| {
                    let mut response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some((topic, partition)) = topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index).map(|p| (t, p)))
                    else {
                        response.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return response;
                    };
                    match lookup(&partition, p.timestamp) {
                        Ok(Some((offset, timestamp))) => {
                            response.offset = offset;
                            response.timestamp = timestamp;
                        }
                        Ok(None) => {}
                        Err(code) => response.error_code = code.code(),
                    }
                    if version >= 4 {
                        response.leader_epoch = topic.leader_epoch();
                    }
                    response
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for one partition, `None` when no record matches.
fn lookup(partition: &Partition, timestamp: i64) -> Result<Option<(i64, i64)>, ErrorCode> {
    let offsets = partition.offsets();
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start, -1))),
        LATEST | LATEST_TIERED => Ok(Some((offsets.high_watermark, -1))),
        MAX_TIMESTAMP => partition.max_timestamp().map_err(|e| e.error_code()),
        t if t >= 0 => partition
            .offset_for_timestamp(t)
            .map_err(|e| e.error_code()),
        _ => Err(ErrorCode::InvalidRequest),
    }
}
