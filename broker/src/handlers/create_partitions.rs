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
    let mut results = Vec::new();
    for wanted in request.topics {
        if let Some(cluster) = broker.cluster() {
            let outcome = if wanted.assignments.is_some() {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Manual replica assignments are not supported yet; give only the count.",
                ))
            } else {
                cluster
                    .write(crate::cluster::ControllerRequest::CreatePartitions {
                        topic: wanted.name.0.to_string(),
                        count: wanted.count,
                        validate_only: request.validate_only,
                    })
                    .await
                    .map(|_| ())
            };
            let mut result = CreatePartitionsTopicResult::default().with_name(wanted.name);
            if let Err(error) = outcome {
                result.error_code = error.code.code();
                result.error_message = Some(wire(&error.message));
            }
            results.push(result);
            continue;
        }
        {
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
            results.push(result);
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
