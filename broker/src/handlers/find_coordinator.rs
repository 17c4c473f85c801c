//! FindCoordinator: this broker coordinates every group (one node). Batched lookups (v4+)
//! answer each key. Transaction coordinators are not served yet.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::wire;
use crate::broker::Broker;

/// `key_type` of a consumer group.
const GROUP: i8 = 0;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    if let Some(cluster) = broker.cluster() {
        return handle_cluster(broker, cluster, version, request).await;
    }
    let (host, port) = broker.advertised();
    let answer = |key: &StrBytes| -> Answer {
        check_key(request.key_type, key)?;
        broker
            .offsets_topic()
            .map(|_| (broker.node_id(), host.clone(), port))
            .map_err(|e| (e.code, e.message))
    };
    respond(version, &request, answer)
}

/// A coordinator (node id, host, port) or the error for one key.
type Answer = Result<(i32, String, u16), (ErrorCode, String)>;

/// Only consumer groups are coordinated here, and their ids must not be empty.
fn check_key(key_type: i8, key: &StrBytes) -> Result<(), (ErrorCode, String)> {
    if key_type != GROUP {
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            "Transaction coordinators are not available on this broker yet.".into(),
        ));
    }
    if key.is_empty() {
        return Err((
            ErrorCode::InvalidGroupId,
            "The group id must not be empty.".into(),
        ));
    }
    Ok(())
}

/// Builds the response: batched (v4+) with an answer per key, or the single key's.
fn respond(
    version: i16,
    request: &FindCoordinatorRequest,
    answer: impl Fn(&StrBytes) -> Answer,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key.clone());
                match answer(key) {
                    Ok((id, host, port)) => coordinator
                        .with_node_id(BrokerId(id))
                        .with_host(wire(&host))
                        .with_port(i32::from(port)),
                    Err((code, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(wire(&message))),
                }
            })
            .collect();
    } else {
        match answer(&request.key) {
            Ok((id, host, port)) => {
                response.node_id = BrokerId(id);
                response.host = wire(&host);
                response.port = i32::from(port);
            }
            Err((code, message)) => {
                response.error_code = code.code();
                response.node_id = BrokerId(-1);
                response.port = -1;
                if version >= 1 {
                    response.error_message = Some(wire(&message));
                }
            }
        }
    }
    response
}

/// FindCoordinator in a cluster: a group's coordinator is the leader of its partition of
/// `__consumer_offsets` (created through the controller on first use).
async fn handle_cluster(
    broker: &Broker,
    cluster: &crate::cluster::BrokerCluster,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    use crate::offsets::OFFSETS_TOPIC;
    let mut error = None;
    if request.key_type == GROUP && cluster.image().image.topic(OFFSETS_TOPIC).is_none() {
        let live = cluster.image().image.unfenced().count() as i16;
        let replication = cluster
            .settings
            .offsets_topic_replication_factor
            .min(live.max(1));
        let configs = std::collections::BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                broker.config().offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let created = cluster
            .write(crate::cluster::ControllerRequest::CreateTopic {
                name: OFFSETS_TOPIC.to_string(),
                partitions: broker.config().offsets_topic_num_partitions,
                replication_factor: replication,
                configs,
                validate_only: false,
            })
            .await;
        match created {
            Ok(_) => {
                cluster
                    .wait_for(std::time::Duration::from_secs(5), |a| {
                        a.image.topic(OFFSETS_TOPIC).is_some()
                    })
                    .await;
            }
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => {}
            Err(e) => error = Some((ErrorCode::CoordinatorNotAvailable, e.message)),
        }
    }
    let applied = cluster.image();
    let image = &applied.image;
    let answer = |key: &StrBytes| -> Answer {
        check_key(request.key_type, key)?;
        if let Some(e) = &error {
            return Err(e.clone());
        }
        let topic = image.topic(OFFSETS_TOPIC).ok_or((
            ErrorCode::CoordinatorNotAvailable,
            "The offsets topic is being created.".to_string(),
        ))?;
        let index = crate::offsets::partition_for(key.as_str(), topic.partitions.len() as i32);
        let leader = topic
            .partitions
            .get(&index)
            .map(|p| p.leader)
            .and_then(|l| image.brokers.get(&l))
            .filter(|b| !b.fenced)
            .ok_or((
                ErrorCode::CoordinatorNotAvailable,
                format!("Partition {index} of the offsets topic has no leader."),
            ))?;
        Ok((leader.id, leader.host.clone(), leader.port))
    };
    respond(version, &request, answer)
}
