//! The cluster metadata log's records and the image every node builds by applying them in
//! order (KRaft's model: the log is the truth, the image a deterministic function of it).
//!
//! Records are serde-encoded so the Raft log can carry them; applying one is pure and total: a
//! record that does not fit the image (a partition change for a deleted topic, say) is an
//! error the caller logs, never a panic, and leaves the image unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum MetadataRecord {
    /// A broker registered (or re-registered after a restart, with a new epoch). It starts
    /// fenced until its first heartbeat shows it caught up with the metadata log.
    RegisterBroker {
        id: i32,
        epoch: i64,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A broker may lead and be in ISRs again.
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    /// A broker missed its heartbeats or shut down: it leads nothing and leaves every ISR
    /// (the partition changes that do so are separate records).
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    Topic {
        name: String,
        id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change of leader and/or ISR (or replicas, for reassignment). `None` keeps a field.
    /// A leader change bumps the leader epoch; every change bumps the partition epoch.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
    },
    RemoveTopic {
        id: Uuid,
    },
    /// A topic config override set (`value: Some`) or removed (`None`).
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    /// The cluster's id, written once by the first active controller.
    ClusterId {
        id: String,
    },
    /// A reassignment starts (`Some`) or ends (`None`).
    Reassignment {
        topic_id: Uuid,
        partition: i32,
        reassignment: Option<Reassignment>,
    },
    /// Producer ids up to `next` (exclusive) are handed out.
    ProducerIds {
        broker: i32,
        next: i64,
    },
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BrokerImage {
    pub(crate) id: i32,
    pub(crate) epoch: i64,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) rack: Option<String>,
    pub(crate) fenced: bool,
}

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionImage {
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    /// -1 when no replica can lead.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) partition_epoch: i32,
    /// A reassignment in progress: the target replicas and the replicas before it. Meanwhile
    /// `replicas` is their union (the target's first), so new replicas catch up before the
    /// removed ones go.
    #[serde(default)]
    pub(crate) reassignment: Option<Reassignment>,
}

/// A partition reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reassignment {
    pub(crate) target: Vec<i32>,
    pub(crate) original: Vec<i32>,
}

/// A topic: its id, partitions and config overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicImage {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) partitions: BTreeMap<i32, PartitionImage>,
    pub(crate) configs: BTreeMap<String, String>,
}

/// Why a record could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("stale broker epoch {got} for broker {id} (current {current})")]
    StaleBrokerEpoch { id: i32, got: i64, current: i64 },
    #[error("unknown topic id {0}")]
    UnknownTopic(Uuid),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown partition {1} of topic id {0}")]
    UnknownPartition(Uuid, i32),
    #[error("invalid partition state: {0}")]
    Invalid(String),
}

/// Everything the metadata log says, as of the last applied record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetadataImage {
    pub(crate) brokers: BTreeMap<i32, BrokerImage>,
    pub(crate) topics: BTreeMap<Uuid, TopicImage>,
    pub(crate) topic_ids: BTreeMap<String, Uuid>,
    /// The next producer id to hand out.
    pub(crate) next_producer_id: i64,
    /// The cluster id (Kafka's 22-character form), once written.
    #[serde(default)]
    pub(crate) cluster_id: Option<String>,
}

impl MetadataImage {
    pub(crate) fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub(crate) fn partition(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(&topic_id)?.partitions.get(&partition)
    }

    /// Brokers that may lead and be in ISRs.
    pub(crate) fn unfenced(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies one record. On error the image is unchanged.
    pub(crate) fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker {
                id,
                epoch,
                host,
                port,
                rack,
            } => {
                if let Some(current) = self.brokers.get(id)
                    && *epoch <= current.epoch
                {
                    return Err(ApplyError::StaleBrokerEpoch {
                        id: *id,
                        got: *epoch,
                        current: current.epoch,
                    });
                }
                self.brokers.insert(
                    *id,
                    BrokerImage {
                        id: *id,
                        epoch: *epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::UnfenceBroker { id, epoch }
            | MetadataRecord::FenceBroker { id, epoch } => {
                let broker = self
                    .brokers
                    .get_mut(id)
                    .ok_or(ApplyError::UnknownBroker(*id))?;
                if *epoch != broker.epoch {
                    return Err(ApplyError::StaleBrokerEpoch {
                        id: *id,
                        got: *epoch,
                        current: broker.epoch,
                    });
                }
                broker.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
            }
            MetadataRecord::Topic { name, id } => {
                if self.topic_ids.contains_key(name) || self.topics.contains_key(id) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                self.topic_ids.insert(name.clone(), *id);
                self.topics.insert(
                    *id,
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let state = PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    reassignment: None,
                };
                check(&state)?;
                let topic = self
                    .topics
                    .get_mut(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                topic.partitions.insert(*partition, state);
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
            } => {
                let current = self
                    .topics
                    .get(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?
                    .partitions
                    .get(partition)
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                let mut next = current.clone();
                if let Some(replicas) = replicas {
                    next.replicas = replicas.clone();
                }
                if let Some(isr) = isr {
                    next.isr = isr.clone();
                }
                if let Some(leader) = leader
                    && *leader != current.leader
                {
                    next.leader = *leader;
                    next.leader_epoch += 1;
                }
                next.partition_epoch += 1;
                check(&next)?;
                if let Some(topic) = self.topics.get_mut(topic_id) {
                    topic.partitions.insert(*partition, next);
                }
            }
            MetadataRecord::RemoveTopic { id } => {
                let topic = self
                    .topics
                    .remove(id)
                    .ok_or(ApplyError::UnknownTopic(*id))?;
                self.topic_ids.remove(&topic.name);
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                let topic = self
                    .topics
                    .get_mut(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                match value {
                    Some(v) => topic.configs.insert(key.clone(), v.clone()),
                    None => topic.configs.remove(key),
                };
            }
            MetadataRecord::Reassignment {
                topic_id,
                partition,
                reassignment,
            } => {
                let p = self
                    .topics
                    .get_mut(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?
                    .partitions
                    .get_mut(partition)
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                p.reassignment = reassignment.clone();
            }
            MetadataRecord::ClusterId { id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
            MetadataRecord::ProducerIds { next, .. } => {
                if *next < self.next_producer_id {
                    return Err(ApplyError::Invalid(format!(
                        "producer id block end {next} is below the current {}",
                        self.next_producer_id
                    )));
                }
                self.next_producer_id = *next;
            }
        }
        Ok(())
    }
}

/// A partition's state must be self-consistent: the ISR within the replicas, the leader in the
/// ISR (or -1), no duplicates.
fn check(p: &PartitionImage) -> Result<(), ApplyError> {
    let unique = |v: &[i32]| {
        let mut s = v.to_vec();
        s.sort_unstable();
        s.dedup();
        s.len() == v.len()
    };
    if p.replicas.is_empty() || !unique(&p.replicas) || !unique(&p.isr) {
        return Err(ApplyError::Invalid(format!(
            "replicas {:?} / isr {:?} empty or with duplicates",
            p.replicas, p.isr
        )));
    }
    if let Some(stray) = p.isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(ApplyError::Invalid(format!(
            "isr member {stray} is not a replica ({:?})",
            p.replicas
        )));
    }
    if p.leader != -1 && !p.isr.contains(&p.leader) {
        return Err(ApplyError::Invalid(format!(
            "leader {} is not in the isr {:?}",
            p.leader, p.isr
        )));
    }
    Ok(())
}
