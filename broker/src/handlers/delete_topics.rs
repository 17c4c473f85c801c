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
    let mut responses = Vec::new();
    for (name, id) in wanted {
        if let Some(cluster) = broker.cluster() {
            responses.push(delete_in_cluster(cluster, name, id, version).await);
            continue;
        }
        {
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
            responses.push(result);
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// DeleteTopics in a cluster: the active controller removes the topic from the metadata; every
/// broker then deletes its replicas' data.
async fn delete_in_cluster(
    cluster: &crate::cluster::BrokerCluster,
    name: Option<String>,
    id: Uuid,
    version: i16,
) -> DeletableTopicResult {
    let image = cluster.image();
    let found = match &name {
        Some(n) => image.image.topic(n).map(|t| (t.name.clone(), t.id)),
        None => image.image.topics.get(&id).map(|t| (t.name.clone(), t.id)),
    };
    let mut result = DeletableTopicResult::default();
    result.name = name
        .as_deref()
        .or(found.as_ref().map(|f| f.0.as_str()))
        .map(topic_name);
    if version >= 6 {
        result.topic_id = found.as_ref().map_or(id, |f| f.1);
    }
    let outcome = match found {
        None if name.is_none() => Err((
            ErrorCode::UnknownTopicId,
            "This cluster has no topic with this ID.".to_string(),
        )),
        None => Err((
            ErrorCode::UnknownTopicOrPartition,
            "This cluster has no such topic.".to_string(),
        )),
        Some((name, _)) => cluster
            .write(crate::cluster::ControllerRequest::DeleteTopic { name })
            .await
            .map(|_| ())
            .map_err(|e| (e.code, e.message)),
    };
    if let Err((code, message)) = outcome {
        result.error_code = code.code();
        if version >= 5 {
            result.error_message = Some(wire(&message));
        }
    }
    result
}
