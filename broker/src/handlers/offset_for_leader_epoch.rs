//! OffsetForLeaderEpoch: where a leader epoch ended on this log. Consumers call it after a
//! leader change to detect truncation (KIP-320), followers before fetching from a new leader.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topic(wanted.topic.0.as_str());
            let partitions = wanted
                .partitions
                .into_iter()
                .map(|p| {
                    let mut answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition))
                    else {
                        answer.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return answer;
                    };
                    if let Err(e) = partition.check_leader(-1) {
                        answer.error_code = e.code.code();
                        return answer;
                    }
                    let log = partition.lock();
                    let current = log.leader_epoch();
                    // -1 means "no fencing" (clients that do not know the epoch).
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < current {
                        answer.error_code = ErrorCode::FencedLeaderEpoch.code();
                        return answer;
                    }
                    if p.current_leader_epoch > current {
                        answer.error_code = ErrorCode::UnknownLeaderEpoch.code();
                        return answer;
                    }
                    let end = log.end_offset_for_epoch(p.leader_epoch);
                    answer.leader_epoch = end.epoch;
                    answer.end_offset = end.end_offset;
                    answer
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(wanted.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
