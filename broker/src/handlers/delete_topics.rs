//! DeleteTopics, by name (v1-5) or by name or id (v6).

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader};
use uuid::Uuid;

use super::{topic_name, wire};
use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = header.request_api_version;
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(name) => broker.topic(name),
                None => broker.topic_by_id(id),
            };
            let mut result = DeletableTopicResult::default();
            let outcome = match &topic {
                None if name.is_none() => Err((
                    ErrorCode::UnknownTopicId,
                    "This server does not host this topic ID.".to_string(),
                )),
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.".to_string(),
                )),
                Some(topic) => broker.delete_topic(topic).map_err(|e| (e.code, e.message)),
            };
            result.name = name
                .as_deref()
                .or(topic.as_ref().map(|t| t.name()))
                .map(topic_name);
            if version >= 6 {
                result.topic_id = topic.as_ref().map_or(id, |t| t.id());
            }
            if let Err((code, message)) = outcome {
                result.error_code = code.code();
                if version >= 5 {
                    result.error_message = Some(wire(&message));
                }
            }
            result
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
