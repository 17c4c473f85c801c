//! CreateTopics, with Kafka's validation and error codes.

use std::collections::{BTreeMap, HashSet};

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};

use super::wire;
use crate::broker::Broker;
use crate::error::ApiError;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        {
            let name = wanted.name.clone();
            let mut result = CreatableTopicResult::default().with_name(name.clone());
            let outcome = if duplicates.contains(name.0.as_str()) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Create topics request contains multiple entries for topic {}",
                        name.0.as_str()
                    ),
                ))
            } else if let Some(cluster) = broker.cluster() {
                create_in_cluster(broker, cluster, wanted, request.validate_only).await
            } else {
                create(broker, wanted, request.validate_only).map(|(p, c, id)| (p, 1, c, id))
            };
            match outcome {
                Ok((partitions, replication, config, id)) => {
                    if version >= 5 {
                        result.num_partitions = partitions;
                        result.replication_factor = replication;
                        result.configs = Some(
                            config
                                .entries()
                                .map(|(def, value, source)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(wire(def.name))
                                        .with_value(Some(wire(value)))
                                        .with_config_source(source as i8)
                                })
                                .collect(),
                        );
                    }
                    if version >= 7 {
                        result.topic_id = id;
                    }
                }
                Err(error) => {
                    result.error_code = error.code.code();
                    result.error_message = Some(wire(&error.message));
                    if version >= 5 {
                        result.num_partitions = -1;
                        result.replication_factor = -1;
                    }
                }
            }
            topics.push(result);
        }
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// The requested topic configs; a null value is INVALID_CONFIG, as in Kafka.
fn overrides(wanted: &CreatableTopic) -> Result<BTreeMap<String, String>, ApiError> {
    let mut overrides = BTreeMap::new();
    for config in &wanted.configs {
        let Some(value) = &config.value else {
            return Err(ApiError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "Null value not supported for topic configs: {}",
                    config.name.as_str()
                ),
            ));
        };
        overrides.insert(config.name.to_string(), value.to_string());
    }
    Ok(overrides)
}

/// CreateTopics in a cluster: the active controller places the replicas and commits the topic;
/// the answer waits until this broker's image has it (so a Metadata request right after sees
/// it here).
async fn create_in_cluster(
    broker: &Broker,
    cluster: &crate::cluster::BrokerCluster,
    wanted: CreatableTopic,
    validate_only: bool,
) -> Result<(i32, i16, crate::config::TopicConfig, uuid::Uuid), ApiError> {
    if !wanted.assignments.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "Manual replica assignments are not supported yet; give numPartitions and replicationFactor.",
        ));
    }
    let overrides = overrides(&wanted)?;
    let config = broker.topic_config(overrides.clone())?;
    let name = wanted.name.0.to_string();
    let partitions = if wanted.num_partitions == -1 {
        broker.config().num_partitions
    } else {
        wanted.num_partitions
    };
    let replication = if wanted.replication_factor == -1 {
        broker.config().default_replication_factor
    } else {
        wanted.replication_factor
    };
    cluster
        .write(crate::cluster::ControllerRequest::CreateTopic {
            name: name.clone(),
            partitions,
            replication_factor: replication,
            configs: overrides,
            validate_only,
        })
        .await?;
    if validate_only {
        return Ok((partitions, replication, config, uuid::Uuid::nil()));
    }
    cluster
        .wait_for(std::time::Duration::from_secs(5), |a| {
            a.image.topic(&name).is_some()
        })
        .await;
    let id = cluster
        .image()
        .image
        .topic(&name)
        .map(|t| t.id)
        .unwrap_or_default();
    Ok((partitions, replication, config, id))
}

fn create(
    broker: &Broker,
    wanted: CreatableTopic,
    validate_only: bool,
) -> Result<(i32, crate::config::TopicConfig, uuid::Uuid), ApiError> {
    let node = broker.node_id();
    let partitions = if !wanted.assignments.is_empty() {
        if wanted.num_partitions != -1 || wanted.replication_factor != -1 {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        if let Some(bad) = wanted
            .assignments
            .iter()
            .find(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.is_empty())
        {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Replica assignment for partition {} names brokers that are not registered (only {node} is).",
                    bad.partition_index
                ),
            ));
        }
        wanted.assignments.len() as i32
    } else if wanted.num_partitions == -1 {
        broker.config().num_partitions
    } else {
        wanted.num_partitions
    };
    let replication = if wanted.replication_factor == -1 {
        broker.config().default_replication_factor
    } else {
        wanted.replication_factor
    };
    if replication <= 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    }
    if replication > 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only 1 broker(s) are registered."
            ),
        ));
    }
    let overrides = overrides(&wanted)?;
    let config = broker.topic_config(overrides)?;
    let created = broker.create_topic(
        wanted.name.0.as_str(),
        partitions,
        config.clone(),
        validate_only,
    )?;
    Ok((
        partitions,
        config,
        created.map(|t| t.id()).unwrap_or_default(),
    ))
}
