//! Produce: validate each batch's header and CRC, append it as sent (offsets written into the
//! header), acknowledge. acks=0 requests get no response (the connection drops it).

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};

use super::wire;
use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::Role;

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
    // acks=-1 appends in a cluster: (topic, partition) response slots and the offset the high
    // watermark must reach.
    let mut waits = Vec::new();
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
                        let in_sync =
                            i32::try_from(partition.in_sync_replicas()).unwrap_or(i32::MAX);
                        if let Err(e) = partition.check_leader(-1) {
                            Err(e)
                        } else if request.acks == -1 && config.log().min_insync_replicas > in_sync {
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
                            let appended = partition
                                .append(&records, config.log(), now)
                                .map_err(ApiError::from);
                            if let Ok((_, _, log_end)) = &appended
                                && request.acks == -1
                                && partition.role() != Role::Standalone
                            {
                                waits.push((
                                    responses.len(),
                                    partitions.len(),
                                    std::sync::Arc::clone(&partition),
                                    *log_end,
                                ));
                            }
                            appended.map(|(info, log_start, _)| (info, log_start))
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
    if !waits.is_empty() {
        wait_for_replication(broker, &mut responses, waits, request.timeout_ms, version).await;
    }
    ProduceResponse::default().with_responses(responses)
}

/// acks=-1 in a cluster: answers once the high watermark passes each append (the ISR has it),
/// with REQUEST_TIMED_OUT after `timeout_ms`, or NOT_LEADER_OR_FOLLOWER when leadership moved
/// meanwhile (the records may or may not survive; the client retries).
async fn wait_for_replication(
    broker: &Broker,
    responses: &mut [TopicProduceResponse],
    waits: Vec<(
        usize,
        usize,
        std::sync::Arc<crate::partition::Partition>,
        i64,
    )>,
    timeout_ms: i32,
    version: i16,
) {
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1));
    let mut changes = broker.subscribe_appends();
    let mut open: Vec<_> = waits;
    loop {
        changes.borrow_and_update();
        let mut still = Vec::new();
        for (t, p, partition, target) in open {
            let leading = matches!(partition.role(), Role::Leader { .. });
            if !leading {
                fail(
                    &mut responses[t].partition_responses[p],
                    ErrorCode::NotLeaderOrFollower,
                    "Leadership moved before the write was replicated; retry.",
                    version,
                );
            } else if partition.offsets().high_watermark >= target {
                // Replicated to the whole ISR.
            } else {
                still.push((t, p, partition, target));
            }
        }
        open = still;
        if open.is_empty() {
            return;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
            // Leadership changes arrive without appends; look again now and then.
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
    for (t, p, _, _) in open {
        fail(
            &mut responses[t].partition_responses[p],
            ErrorCode::RequestTimedOut,
            "The in-sync replicas did not acknowledge the write in time.",
            version,
        );
    }
}

fn fail(response: &mut PartitionProduceResponse, code: ErrorCode, message: &str, version: i16) {
    response.error_code = code.code();
    response.base_offset = -1;
    if version >= 8 {
        response.error_message = Some(wire(message));
    }
}
