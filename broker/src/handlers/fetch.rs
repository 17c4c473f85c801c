//! Fetch: whole batches as stored, from the batch holding the requested offset, within
//! `partition_max_bytes` and `max_bytes` (at least one batch, so consumers progress). Waits up
//! to `max_wait_ms` for `min_bytes`, and answers as soon as they are there.

use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader};

use crate::broker::Broker;
use crate::error::Error;
use crate::topic::Topic;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    let version = header.request_api_version;
    let topics: Vec<Option<Arc<Topic>>> = request
        .topics
        .iter()
        .map(|t| {
            if version >= 13 {
                broker.topic_by_id(t.topic_id)
            } else {
                broker.topic(t.topic.0.as_str())
            }
        })
        .collect();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    // A follower's fetch (replica id set) reads to the log end and moves the high watermark.
    let replica = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let mut appended = broker.subscribe_appends();
    loop {
        appended.borrow_and_update();
        let (response, bytes, failed) = read_all(broker, &request, &topics, version, replica);
        let done = bytes >= i64::from(request.min_bytes)
            || failed
            || tokio::time::Instant::now() >= deadline;
        if done {
            return response;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return response },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Reads every requested partition once. Returns the response, the record bytes in it and
/// whether any partition failed (errors are answered at once, as Kafka does).
fn read_all(
    broker: &Broker,
    request: &FetchRequest,
    topics: &[Option<Arc<Topic>>],
    version: i16,
    replica: i32,
) -> (FetchResponse, i64, bool) {
    let now = broker.now_ms();
    let mut hw_moved = false;
    let mut remaining = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0i64;
    let mut failed = false;
    let read_committed = request.isolation_level == 1;
    let mut responses = Vec::with_capacity(request.topics.len());
    for (fetch_topic, topic) in request.topics.iter().zip(topics) {
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for wanted in &fetch_topic.partitions {
            let mut data = PartitionData::default().with_partition_index(wanted.partition);
            if read_committed {
                data.aborted_transactions = Some(Vec::new());
            }
            let partition = topic.as_ref().and_then(|t| t.partition(wanted.partition));
            let Some(partition) = partition else {
                let code = if topic.is_none() && version >= 13 {
                    ErrorCode::UnknownTopicId
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                data.error_code = code.code();
                data.records = Some(Default::default());
                failed = true;
                partitions.push(data);
                continue;
            };
            if let Err(e) = partition.check_leader(wanted.current_leader_epoch) {
                data.error_code = e.code.code();
                data.records = Some(Default::default());
                failed = true;
                partitions.push(data);
                continue;
            }
            let limit = (wanted.partition_max_bytes.max(0) as usize).min(remaining);
            // Only the first batch of the whole response may exceed the limits (KIP-74).
            let result = if replica >= 0 {
                let before = partition.offsets().high_watermark;
                let alter = partition.on_follower_fetch(replica, wanted.fetch_offset, now);
                hw_moved |= partition.offsets().high_watermark != before;
                if let (Some(alter), Some(cluster)) = (alter, broker.cluster()) {
                    crate::cluster::send_alter_partition(
                        Arc::clone(cluster),
                        Arc::clone(&partition),
                        alter,
                    );
                }
                if limit == 0 && total > 0 {
                    Ok(None)
                } else {
                    partition
                        .read_replica(wanted.fetch_offset, limit.max(1))
                        .map(Some)
                }
            } else if limit == 0 && total > 0 {
                Ok(None)
            } else {
                partition
                    .read(wanted.fetch_offset, limit.max(1), total == 0)
                    .map(Some)
            };
            match result {
                Ok(Some(read)) => {
                    let len = read.records.len();
                    total += len as i64;
                    remaining = remaining.saturating_sub(len);
                    data.high_watermark = read.offsets.high_watermark;
                    data.last_stable_offset = read.offsets.high_watermark;
                    if version >= 5 {
                        data.log_start_offset = read.offsets.log_start;
                    }
                    data.records = Some(read.records);
                }
                Ok(None) => {
                    let offsets = partition.offsets();
                    data.high_watermark = offsets.high_watermark;
                    data.last_stable_offset = offsets.high_watermark;
                    if version >= 5 {
                        data.log_start_offset = offsets.log_start;
                    }
                    data.records = Some(Default::default());
                }
                Err(error) => {
                    let offsets = partition.offsets();
                    if !matches!(error, Error::OffsetOutOfRange { .. }) {
                        tracing::error!(topic = partition.topic(), partition = partition.index(), error = %error, "fetch failed");
                    }
                    data.error_code = error.error_code().code();
                    data.high_watermark = offsets.high_watermark;
                    data.last_stable_offset = offsets.high_watermark;
                    if version >= 5 {
                        data.log_start_offset = offsets.log_start;
                    }
                    data.records = Some(Default::default());
                    failed = true;
                }
            }
            partitions.push(data);
        }
        let mut topic_response = FetchableTopicResponse::default().with_partitions(partitions);
        if version >= 13 {
            topic_response.topic_id = fetch_topic.topic_id;
        } else {
            topic_response.topic = fetch_topic.topic.clone();
        }
        responses.push(topic_response);
    }
    if hw_moved {
        // acks=-1 produces waiting for this high watermark, and consumers at it.
        broker.notify_appended();
    }
    (
        FetchResponse::default().with_responses(responses),
        total,
        failed,
    )
}
