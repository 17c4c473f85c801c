//! Topics: names (with Kafka's rules), ids, configs and partitions, and the metadata file each
//! topic is persisted in (`<data dir>/meta/topics/<name>.json`, written atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::partition::Partition;

/// Longest topic name Kafka accepts.
pub(crate) const MAX_NAME_LEN: usize = 249;

/// Why a topic name is rejected (INVALID_TOPIC_EXCEPTION).
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Kafka treats `.` and `_` as colliding in metric names, so `a.b` and `a_b` cannot both exist.
pub(crate) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// What is persisted about a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    topic_id: Uuid,
    partitions: i32,
    #[serde(default)]
    leader_epoch: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// A topic hosted by this broker.
#[derive(Debug)]
pub(crate) struct Topic {
    name: String,
    id: Uuid,
    leader_epoch: i32,
    config: RwLock<Arc<TopicConfig>>,
    /// The partitions this broker hosts, by index (all of them on a single broker; in a
    /// cluster, those this broker holds a replica of).
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    /// The topic's partition count in the cluster's image (-1: every partition is hosted here).
    declared: std::sync::atomic::AtomicI32,
}

impl Topic {
    pub(crate) fn new(
        name: &str,
        id: Uuid,
        leader_epoch: i32,
        config: TopicConfig,
        partitions: Vec<Arc<Partition>>,
    ) -> Self {
        Topic {
            name: name.to_string(),
            id,
            leader_epoch,
            config: RwLock::new(Arc::new(config)),
            partitions: RwLock::new(partitions.into_iter().map(|p| (p.index(), p)).collect()),
            declared: std::sync::atomic::AtomicI32::new(-1),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The current configs (replaced whole on alter).
    pub(crate) fn config(&self) -> Arc<TopicConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn set_config(&self, config: TopicConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    pub(crate) fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
            .cloned()
    }

    /// Stops hosting a partition (it moved away); returns it.
    pub(crate) fn remove_partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&index)
    }

    /// Records the partition count the cluster's image gives the topic.
    pub(crate) fn set_declared_count(&self, count: i32) {
        self.declared
            .store(count, std::sync::atomic::Ordering::Release);
    }

    /// The number of partitions: the image's count in a cluster, else the hosted ones.
    pub(crate) fn partition_count(&self) -> i32 {
        let declared = self.declared.load(std::sync::atomic::Ordering::Acquire);
        if declared >= 0 {
            return declared;
        }
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .next_back()
            .map_or(0, |last| last + 1)
    }

    pub(crate) fn add_partitions(&self, added: Vec<Arc<Partition>>) {
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(added.into_iter().map(|p| (p.index(), p)));
    }

    /// Persists the topic's record.
    pub(crate) fn save(&self, store: &TopicStore) -> Result<()> {
        let record = TopicRecord {
            topic_id: self.id,
            partitions: self.partition_count(),
            leader_epoch: self.leader_epoch,
            configs: self.config().overrides().clone(),
        };
        store.write(&self.name, &record)
    }
}

/// A topic as loaded from its metadata file.
#[derive(Debug)]
pub(crate) struct StoredTopic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) configs: BTreeMap<String, String>,
}

/// The directory of topic metadata files.
#[derive(Debug, Clone)]
pub(crate) struct TopicStore {
    dir: PathBuf,
}

impl TopicStore {
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("meta").join("topics");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io("create metadata directory", &dir, e))?;
        Ok(TopicStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn write(&self, name: &str, record: &TopicRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::CorruptMetadata {
            path: self.path(name),
            reason: e.to_string(),
        })?;
        crate::log::write_atomically(&self.path(name), &json)
    }

    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        std::fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
        crate::log::sync_dir(&self.dir)
    }

    /// Every stored topic. A file that does not parse stops startup with its path named, rather
    /// than silently dropping a topic.
    pub(crate) fn load(&self) -> Result<Vec<StoredTopic>> {
        let mut topics = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", &self.dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let record: TopicRecord =
                serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            topics.push(StoredTopic {
                name: name.to_string(),
                id: record.topic_id,
                partitions: record.partitions,
                leader_epoch: record.leader_epoch,
                configs: record.configs,
            });
        }
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_name_rules() {
        assert!(validate_name("orders.v1_x-2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("has space").is_err());
        assert!(validate_name("ünïcode").is_err());
        assert!(validate_name(&"a".repeat(249)).is_ok());
        assert!(validate_name(&"a".repeat(250)).is_err());
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
