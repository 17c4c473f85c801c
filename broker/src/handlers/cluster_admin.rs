//! Leadership and replica placement: ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments. In a cluster they go to the active controller (the listing is
//! answered from this broker's image); a lone broker has nothing to elect or move.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, RequestHeader,
};

use super::{topic_name, wire};
use crate::broker::Broker;
use crate::cluster::ControllerRequest;

/// `election_type` 0: the preferred (first) replica.
const PREFERRED: i8 = 0;

pub(crate) async fn elect_leaders(
    broker: &Broker,
    _header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    let Some(cluster) = broker.cluster() else {
        // One broker leads everything already.
        response.replica_election_results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(p)
                                    .with_error_code(ErrorCode::ElectionNotNeeded.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        return response;
    };
    if request.election_type != PREFERRED {
        response.error_code = ErrorCode::InvalidRequest.code();
        return response;
    }
    let wanted: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let before = cluster.image();
    if let Err(e) = cluster
        .write(ControllerRequest::ElectPreferredLeaders {
            partitions: wanted.clone(),
        })
        .await
    {
        response.error_code = e.code.code();
        return response;
    }
    let after = cluster.image();
    // Every requested partition (or, for all partitions, those that moved) gets a result.
    let mut results: std::collections::BTreeMap<String, Vec<PartitionResult>> = Default::default();
    let pairs: Vec<(String, i32)> = match wanted {
        Some(w) => w,
        None => after
            .image
            .topics
            .values()
            .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
            .filter(|(t, p)| {
                let old = before.image.topic(t).and_then(|t| t.partitions.get(p));
                let new = after.image.topic(t).and_then(|t| t.partitions.get(p));
                old.map(|o| o.leader) != new.map(|n| n.leader)
            })
            .collect(),
    };
    for (topic, partition) in pairs {
        let state = after
            .image
            .topic(&topic)
            .and_then(|t| t.partitions.get(&partition));
        let mut result = PartitionResult::default().with_partition_id(partition);
        match state {
            None => {
                result.error_code = ErrorCode::UnknownTopicOrPartition.code();
            }
            Some(p) if p.replicas.first() == Some(&p.leader) => {
                let old = before
                    .image
                    .topic(&topic)
                    .and_then(|t| t.partitions.get(&partition))
                    .map(|o| o.leader);
                if old == Some(p.leader) {
                    result.error_code = ErrorCode::ElectionNotNeeded.code();
                }
            }
            Some(p) => {
                result.error_code = ErrorCode::PreferredLeaderNotAvailable.code();
                result.error_message = Some(wire(&format!(
                    "The preferred leader {:?} is not in the ISR {:?} or not alive.",
                    p.replicas.first(),
                    p.isr
                )));
            }
        }
        results.entry(topic).or_default().push(result);
    }
    response.replica_election_results = results
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic))
                .with_partition_result(partitions)
        })
        .collect();
    response
}

pub(crate) async fn alter_reassignments(
    broker: &Broker,
    _header: &RequestHeader,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut responses = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let outcome = match broker.cluster() {
                Some(cluster) => cluster
                    .write(ControllerRequest::Reassign {
                        topic: topic.name.0.to_string(),
                        partition: p.partition_index,
                        target,
                    })
                    .await
                    .map(|_| ()),
                None if target.as_deref() == Some(&[broker.node_id()]) => Ok(()),
                None => Err(crate::error::ApiError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "This single broker can only hold replicas on itself ({}).",
                        broker.node_id()
                    ),
                )),
            };
            let mut result =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            if let Err(e) = outcome {
                result.error_code = e.code.code();
                result.error_message = Some(wire(&e.message));
            }
            partitions.push(result);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

pub(crate) async fn list_reassignments(
    broker: &Broker,
    _header: &RequestHeader,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    let Some(cluster) = broker.cluster() else {
        return response;
    };
    let applied = cluster.image();
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    for topic in applied.image.topics.values() {
        let filter = match &wanted {
            Some(w) => match w.iter().find(|(n, _)| *n == topic.name) {
                Some((_, partitions)) => Some(partitions),
                None => continue,
            },
            None => None,
        };
        let partitions: Vec<_> = topic
            .partitions
            .iter()
            .filter(|(i, _)| filter.is_none_or(|f| f.contains(i)))
            .filter_map(|(i, p)| {
                let r = p.reassignment.as_ref()?;
                let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
                Some(
                    OngoingPartitionReassignment::default()
                        .with_partition_index(*i)
                        .with_replicas(ids(p.replicas.clone()))
                        .with_adding_replicas(ids(r
                            .target
                            .iter()
                            .copied()
                            .filter(|t| !r.original.contains(t))
                            .collect()))
                        .with_removing_replicas(ids(r
                            .original
                            .iter()
                            .copied()
                            .filter(|o| !r.target.contains(o))
                            .collect())),
                )
            })
            .collect();
        if !partitions.is_empty() {
            response.topics.push(
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(partitions),
            );
        }
    }
    response
}
