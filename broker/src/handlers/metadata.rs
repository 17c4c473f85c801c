//! Metadata: brokers, the controller, topics and partition leadership. Auto-creates requested
//! topics when `auto.create.topics.enable` and the client allow it.

use std::sync::Arc;

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, RequestHeader};
use uuid::Uuid;

use super::{ALL_CLUSTER_OPERATIONS, ALL_TOPIC_OPERATIONS, topic_name, wire};
use crate::broker::Broker;
use crate::topic::Topic;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    if let Some(cluster) = broker.cluster() {
        return handle_cluster(broker, cluster, version, request).await;
    }
    let (host, port) = broker.advertised();
    let node = BrokerId(broker.node_id());
    let brokers = vec![
        MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(wire(&host))
            .with_port(i32::from(port)),
    ];
    let with_ops = version >= 8 && request.include_topic_authorized_operations;
    // At v0 an empty list asks for every topic (v1+ uses null for that).
    let requested = request.topics.filter(|t| version > 0 || !t.is_empty());
    let topics = match requested {
        None => broker
            .topics()
            .iter()
            .map(|t| describe(broker, t, version, with_ops))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => by_name(
                    broker,
                    name.0.as_str(),
                    version,
                    request.allow_auto_topic_creation,
                    with_ops,
                ),
                None => match broker.topic_by_id(wanted.topic_id) {
                    Some(topic) => describe(broker, &topic, version, with_ops),
                    None => error_topic(None, wanted.topic_id, ErrorCode::UnknownTopicId, version),
                },
            })
            .collect(),
    };
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = node;
    }
    if version >= 2 {
        response.cluster_id = Some(wire(&broker.cluster_id()));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
    }
    response
}

fn by_name(
    broker: &Broker,
    name: &str,
    version: i16,
    client_allows_create: bool,
    with_ops: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = broker.topic(name) {
        return describe(broker, &topic, version, with_ops);
    }
    if crate::topic::validate_name(name).is_err() {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ErrorCode::InvalidTopicException,
            version,
        );
    }
    let allowed = broker.config().auto_create_topics && (version < 4 || client_allows_create);
    if !allowed {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ErrorCode::UnknownTopicOrPartition,
            version,
        );
    }
    let created = broker.topic_config(Default::default()).and_then(|config| {
        broker.create_topic(name, broker.config().num_partitions, config, false)
    });
    match created {
        Ok(Some(topic)) => describe(broker, &topic, version, with_ops),
        // Another request created it first.
        Ok(None) | Err(_) if broker.topic(name).is_some() => match broker.topic(name) {
            Some(topic) => describe(broker, &topic, version, with_ops),
            None => error_topic(
                Some(name),
                Uuid::nil(),
                ErrorCode::UnknownTopicOrPartition,
                version,
            ),
        },
        Ok(None) => error_topic(
            Some(name),
            Uuid::nil(),
            ErrorCode::UnknownTopicOrPartition,
            version,
        ),
        Err(e) => error_topic(Some(name), Uuid::nil(), e.code, version),
    }
}

fn describe(
    broker: &Broker,
    topic: &Arc<Topic>,
    version: i16,
    with_ops: bool,
) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(node)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if version >= 7 {
                partition.leader_epoch = topic.leader_epoch();
            }
            partition
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name())))
        .with_partitions(partitions);
    if version >= 10 {
        response.topic_id = topic.id();
    }
    if version >= 1 {
        response.is_internal = topic.name() == crate::offsets::OFFSETS_TOPIC;
    }
    if with_ops {
        response.topic_authorized_operations = ALL_TOPIC_OPERATIONS;
    }
    response
}

fn error_topic(
    name: Option<&str>,
    id: Uuid,
    code: ErrorCode,
    version: i16,
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(topic_name));
    if version >= 10 {
        topic.topic_id = id;
    }
    topic
}

/// Metadata in a cluster: everything from this broker's metadata image. Topics a client asks for
/// that do not exist are created through the controller when auto-creation is allowed.
async fn handle_cluster(
    broker: &Broker,
    cluster: &crate::cluster::BrokerCluster,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    let with_ops = version >= 8 && request.include_topic_authorized_operations;
    let requested = request.topics.filter(|t| version > 0 || !t.is_empty());
    // Auto-create missing topics first, so the answer can describe them.
    let mut created = Vec::new();
    if let Some(requested) = &requested {
        let allowed = broker.config().auto_create_topics
            && (version < 4 || request.allow_auto_topic_creation);
        let image = cluster.image();
        for name in requested.iter().filter_map(|t| t.name.as_ref()) {
            let name = name.0.as_str();
            if !allowed
                || image.image.topic(name).is_some()
                || crate::topic::validate_name(name).is_err()
            {
                continue;
            }
            let outcome = cluster
                .write(crate::cluster::ControllerRequest::CreateTopic {
                    name: name.to_string(),
                    partitions: broker.config().num_partitions,
                    replication_factor: broker.config().default_replication_factor,
                    configs: Default::default(),
                    validate_only: false,
                })
                .await;
            if let Err(e) = outcome
                && e.code != ErrorCode::TopicAlreadyExists
            {
                tracing::warn!(topic = name, error = %e.message, "auto-creating topic failed");
            }
            created.push(name.to_string());
        }
    }
    if !created.is_empty() {
        cluster
            .wait_for(std::time::Duration::from_secs(5), |a| {
                created.iter().all(|n| a.image.topic(n).is_some())
            })
            .await;
    }
    let applied = cluster.image();
    let image = &applied.image;
    let brokers: Vec<_> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(wire(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(wire))
        })
        .collect();
    let describe_image = |t: &crate::metadata::image::TopicImage| {
        let partitions = t
            .partitions
            .iter()
            .map(|(&index, p)| {
                let offline: Vec<BrokerId> = p
                    .replicas
                    .iter()
                    .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
                    .map(|r| BrokerId(*r))
                    .collect();
                let mut partition = MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                    .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect());
                if p.leader < 0 {
                    partition.error_code = ErrorCode::LeaderNotAvailable.code();
                }
                if version >= 5 {
                    partition.offline_replicas = offline;
                }
                if version >= 7 {
                    partition.leader_epoch = p.leader_epoch;
                }
                partition
            })
            .collect();
        let mut response = MetadataResponseTopic::default()
            .with_name(Some(topic_name(&t.name)))
            .with_partitions(partitions);
        if version >= 10 {
            response.topic_id = t.id;
        }
        if version >= 1 {
            response.is_internal = t.name == crate::offsets::OFFSETS_TOPIC;
        }
        if with_ops {
            response.topic_authorized_operations = ALL_TOPIC_OPERATIONS;
        }
        response
    };
    let topics = match requested {
        None => image.topics.values().map(describe_image).collect(),
        Some(requested) => requested
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => match image.topic(name.0.as_str()) {
                    Some(t) => describe_image(t),
                    None => {
                        let code = if crate::topic::validate_name(name.0.as_str()).is_err() {
                            ErrorCode::InvalidTopicException
                        } else if created.iter().any(|c| c == name.0.as_str()) {
                            ErrorCode::LeaderNotAvailable
                        } else {
                            ErrorCode::UnknownTopicOrPartition
                        };
                        error_topic(Some(name.0.as_str()), Uuid::nil(), code, version)
                    }
                },
                None => match image.topics.get(&wanted.topic_id) {
                    Some(t) => describe_image(t),
                    None => error_topic(None, wanted.topic_id, ErrorCode::UnknownTopicId, version),
                },
            })
            .collect(),
    };
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        // Clients cannot reach KRaft controllers; like Kafka, name a live broker.
        let controller = image
            .brokers
            .values()
            .find(|b| !b.fenced)
            .map_or(broker.node_id(), |b| b.id);
        response.controller_id = BrokerId(controller);
    }
    if version >= 2 {
        response.cluster_id = Some(wire(&broker.cluster_id()));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
    }
    response
}
