//! Produce: validate each batch's header and CRC, append it as sent (offsets written into the
//! header), acknowledge. acks=0 requests get no response (the connection drops it).

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};

use super::wire;
use crate::broker::Broker;
use crate::error::ApiError;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: ProduceRequest,
) -> ProduceResponse {
    let version = header.request_api_version;
    let acks_valid = matches!(request.acks, -1..=1);
    let now = broker.now_ms();
    let mut appended = false;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for data in request.topic_data {
        let topic = if version >= 13 {
            broker.topic_by_id(data.topic_id)
        } else {
            broker.topic(data.name.0.as_str())
        };
        let unknown = if version >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(data.partition_data.len());
        for partition_data in data.partition_data {
            let index = partition_data.index;
            let result = if !acks_valid {
                Err(ApiError::new(
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {}", request.acks),
                ))
            } else {
                match topic.as_ref().map(|t| (t, t.partition(index))) {
                    None => Err(ApiError::new(
                        unknown,
                        "This server does not host this topic.",
                    )),
                    Some((_, None)) => Err(ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("This server does not host partition {index}."),
                    )),
                    Some((topic, Some(_))) if topic.name() == crate::offsets::OFFSETS_TOPIC => {
                        Err(ApiError::new(
                            ErrorCode::InvalidTopicException,
                            "Cannot append to internal topic __consumer_offsets",
                        ))
                    }
                    Some((topic, Some(partition))) => {
                        let config = topic.config();
                        // One broker: the leader is the whole ISR.
                        let in_sync = 1;
                        if request.acks == -1 && config.log().min_insync_replicas > in_sync {
                            Err(ApiError::new(
                                ErrorCode::NotEnoughReplicas,
                                format!(
                                    "The size of the current ISR ({in_sync}) is insufficient to \
                                     satisfy the min.isr requirement of {} for partition {}-{index}; \
                                     produce with acks=1 or lower min.insync.replicas",
                                    config.log().min_insync_replicas,
                                    topic.name()
                                ),
                            ))
                        } else {
                            let records = partition_data.records.unwrap_or_default();
                            partition
                                .append(&records, config.log(), now)
                                .map_err(ApiError::from)
                        }
                    }
                }
            };
            let mut response = PartitionProduceResponse::default().with_index(index);
            match result {
                Ok((info, log_start)) => {
                    appended = true;
                    response.base_offset = info.base_offset;
                    response.log_append_time_ms = info.log_append_time;
                    if version >= 5 {
                        response.log_start_offset = log_start;
                    }
                }
                Err(error) => {
                    tracing::debug!(partition = index, code = ?error.code, message = %error.message, "produce rejected");
                    response.error_code = error.code.code();
                    response.base_offset = -1;
                    if version >= 8 {
                        response.error_message = Some(wire(&error.message));
                    }
                }
            }
            partitions.push(response);
        }
        let mut topic_response =
            TopicProduceResponse::default().with_partition_responses(partitions);
        if version >= 13 {
            topic_response.topic_id = data.topic_id;
        } else {
            topic_response.name = data.name;
        }
        responses.push(topic_response);
    }
    if appended {
        broker.notify_appended();
    }
    ProduceResponse::default().with_responses(responses)
}
