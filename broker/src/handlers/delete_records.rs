//! DeleteRecords: advance a partition's log start offset; whole segments below it are deleted.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let now = broker.now_ms();
    let mut moved = false;
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topic(wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .into_iter()
                .map(|p| {
                    let mut result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        None => result.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                        Some(partition) => match partition.lock().delete_records(p.offset, now) {
                            Ok(low) => {
                                moved = true;
                                result.low_watermark = low;
                            }
                            Err(e) => result.error_code = e.error_code().code(),
                        },
                    }
                    result
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    if moved && let Err(e) = broker.checkpoint_log_starts() {
        tracing::error!(error = %e, "could not write the log start offset checkpoint");
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
