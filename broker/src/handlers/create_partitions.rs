//! CreatePartitions: grow a topic's partition count.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::wire;
use crate::broker::Broker;
use crate::error::ApiError;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let node = broker.node_id();
    let results = request
        .topics
        .into_iter()
        .map(|wanted| {
            let outcome = match broker.topic(wanted.name.0.as_str()) {
                None => Err(ApiError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("The topic '{}' does not exist.", wanted.name.0.as_str()),
                )),
                Some(_)
                    if wanted.assignments.as_ref().is_some_and(|a| {
                        a.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node))
                    }) =>
                {
                    Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("Replica assignments may only name broker {node}."),
                    ))
                }
                Some(topic) => {
                    broker.create_partitions(&topic, wanted.count, request.validate_only)
                }
            };
            let mut result = CreatePartitionsTopicResult::default().with_name(wanted.name);
            if let Err(error) = outcome {
                result.error_code = error.code.code();
                result.error_message = Some(wire(&error.message));
            }
            result
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
