//! The broker's shared state: its config, the topics it hosts and the data directory they live
//! in. Handlers get `&Broker`; mutable state lives behind short-held locks.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use fjord_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::cluster::BrokerCluster;
use crate::config::{BrokerConfig, TopicConfig};
use crate::error::{ApiError, Error, Result};
use crate::group::{GroupConfig, GroupManager, GroupState};
use crate::log::{OffsetCheckpoint, PartitionLog};
use crate::metadata::image::MetadataImage;
use crate::offsets::{OFFSETS_TOPIC, OffsetStore};
use crate::partition::Partition;
use crate::partition::Role;
use crate::producer_ids::ProducerIds;
use crate::topic::{self, Topic, TopicStore};

/// Present in the data directory only after a clean shutdown.
const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
/// Held (with an exclusive file lock) while a broker uses the data directory.
const LOCK_FILE: &str = ".lock";
/// Cluster and node identity, in Kafka's format.
const META_PROPERTIES: &str = "meta.properties";
/// Log start offsets moved by retention and DeleteRecords.
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";

#[derive(Debug, Default)]
struct TopicMap {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// One broker's state.
pub struct Broker {
    config: BrokerConfig,
    cluster_id: String,
    clock: Arc<dyn Clock>,
    topics: RwLock<TopicMap>,
    store: TopicStore,
    log_start_checkpoint: OffsetCheckpoint,
    checkpoint_lock: std::sync::Mutex<()>,
    producer_ids: ProducerIds,
    offsets: OffsetStore,
    groups: GroupManager,
    advertised: RwLock<(String, u16)>,
    appended: watch::Sender<u64>,
    /// Whether logs opened later (partitions assigned by the cluster) need recovery.
    recover: bool,
    /// The cluster link, when this broker is a node of a KRaft-style cluster.
    cluster: std::sync::OnceLock<Arc<BrokerCluster>>,
    /// The `__consumer_offsets` partitions this broker leads (cluster mode).
    led_offsets: std::sync::Mutex<std::collections::BTreeSet<i32>>,
    _lock: File,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .field("cluster_id", &self.cluster_id)
            .finish()
    }
}

impl Broker {
    /// Opens the data directory and loads every topic, recovering logs after an unclean stop.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Broker::open`] with an injected clock.
    pub fn open_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create data directory", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock =
            File::create(&lock_path).map_err(|e| Error::io("create lock file in", &dir, e))?;
        lock.try_lock()
            .map_err(|_| Error::DataDirInUse { path: dir.clone() })?;
        let fresh = !dir.join(META_PROPERTIES).exists();
        let cluster_id = read_or_create_meta(&dir, config.node_id)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = fresh || marker.exists();
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|e| Error::io("remove", &marker, e))?;
            crate::log::sync_dir(&dir)?;
        }
        if !clean {
            tracing::info!(data_dir = %dir.display(), "no clean-shutdown marker: recovering the active segment of every partition");
        }
        let store = TopicStore::open(&dir)?;
        let log_start_checkpoint = OffsetCheckpoint::new(dir.join(LOG_START_CHECKPOINT));
        let log_starts = log_start_checkpoint.read()?;
        let mut topics = TopicMap::default();
        let now = clock.now_ms();
        for stored in store.load()? {
            let topic_config = TopicConfig::new(stored.configs.clone(), config.values())?;
            let mut partitions = Vec::new();
            for index in 0..stored.partitions {
                let log = PartitionLog::open(
                    &partition_dir(&dir, &stored.name, index),
                    !clean,
                    topic_config.log(),
                    log_starts.get(&(stored.name.clone(), index)).copied(),
                    stored.leader_epoch,
                    now,
                )?;
                partitions.push(Arc::new(Partition::new(&stored.name, index, log)));
            }
            let topic = Arc::new(Topic::new(
                &stored.name,
                stored.id,
                stored.leader_epoch,
                topic_config,
                partitions,
            ));
            topics.by_id.insert(stored.id, Arc::clone(&topic));
            topics.by_name.insert(stored.name, topic);
        }
        tracing::info!(topics = topics.by_name.len(), clean, "loaded topics");
        let offsets = OffsetStore::default();
        if let Some(topic) = topics.by_name.get(OFFSETS_TOPIC) {
            offsets.load(topic)?;
        }
        let advertised = config
            .advertised
            .clone()
            .unwrap_or_else(|| (config.listener.ip().to_string(), config.listener.port()));
        let group_config = GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_size: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
        };
        let broker = Arc::new(Broker {
            config,
            cluster_id,
            clock,
            topics: RwLock::new(topics),
            store,
            log_start_checkpoint,
            checkpoint_lock: std::sync::Mutex::new(()),
            producer_ids: ProducerIds::open(dir.join("meta").join("producer-id-block"))?,
            offsets,
            groups: GroupManager::new(group_config),
            advertised: RwLock::new(advertised),
            appended: watch::channel(0).0,
            recover: !clean,
            cluster: std::sync::OnceLock::new(),
            led_offsets: Default::default(),
            _lock: lock,
        });
        broker.load_groups();
        Ok(broker)
    }

    /// Makes this broker a cluster node: from now on the image decides what it hosts.
    pub(crate) fn attach_cluster(&self, cluster: Arc<BrokerCluster>) {
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("cluster link attached twice; keeping the first");
        }
    }

    /// The cluster link, when this broker is a cluster node.
    pub(crate) fn cluster(&self) -> Option<&Arc<BrokerCluster>> {
        self.cluster.get()
    }

    /// Brings the hosted topics and partitions in line with the cluster's metadata image:
    /// opens the logs of replicas assigned here, sets each partition's role (leader or
    /// follower, at the image's leader epoch), and deletes the data of topics that were deleted
    /// and of replicas that moved away.
    pub(crate) fn reconcile(&self, image: &MetadataImage) {
        let me = self.node_id();
        let now = self.now_ms();
        let log_starts = match self.log_start_checkpoint.read() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "could not read the log start checkpoint");
                Default::default()
            }
        };
        let mut removed_dirs = Vec::new();
        {
            let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<Arc<Topic>> = topics
                .by_id
                .values()
                .filter(|t| {
                    image
                        .topics
                        .get(&t.id())
                        .is_none_or(|ti| !ti.partitions.values().any(|p| p.replicas.contains(&me)))
                })
                .cloned()
                .collect();
            for topic in gone {
                topics.by_id.remove(&topic.id());
                topics.by_name.remove(topic.name());
                for p in topic.partitions() {
                    removed_dirs.push(partition_dir(
                        &self.config.data_dir,
                        topic.name(),
                        p.index(),
                    ));
                }
                tracing::info!(topic = topic.name(), "no longer hosting topic");
            }
            for ti in image.topics.values() {
                let hosted: Vec<_> = ti
                    .partitions
                    .iter()
                    .filter(|(_, p)| p.replicas.contains(&me))
                    .collect();
                if hosted.is_empty() {
                    continue;
                }
                let config = match TopicConfig::new(ti.configs.clone(), self.config.values()) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(topic = %ti.name, error = %e, "invalid topic configs in the metadata image; using defaults");
                        match TopicConfig::new(Default::default(), self.config.values()) {
                            Ok(c) => c,
                            Err(_) => continue,
                        }
                    }
                };
                let topic = match topics.by_id.get(&ti.id) {
                    Some(t) => {
                        if t.config().overrides() != config.overrides() {
                            t.set_config(config.clone());
                        }
                        Arc::clone(t)
                    }
                    None => {
                        // A topic of the same name with another id was deleted and recreated.
                        if let Some(old) = topics.by_name.remove(&ti.name) {
                            topics.by_id.remove(&old.id());
                            for p in old.partitions() {
                                removed_dirs.push(partition_dir(
                                    &self.config.data_dir,
                                    old.name(),
                                    p.index(),
                                ));
                            }
                        }
                        let t =
                            Arc::new(Topic::new(&ti.name, ti.id, 0, config.clone(), Vec::new()));
                        topics.by_id.insert(ti.id, Arc::clone(&t));
                        topics.by_name.insert(ti.name.clone(), Arc::clone(&t));
                        tracing::info!(topic = %ti.name, "hosting topic");
                        t
                    }
                };
                topic.set_declared_count(ti.partitions.len() as i32);
                for &(&index, p) in &hosted {
                    let partition = match topic.partition(index) {
                        Some(existing) => existing,
                        None => {
                            let dir = partition_dir(&self.config.data_dir, &ti.name, index);
                            // Removal of an earlier replica's data must not race the new log.
                            removed_dirs.retain(|d| *d != dir);
                            let opened = PartitionLog::open(
                                &dir,
                                self.recover,
                                config.log(),
                                log_starts.get(&(ti.name.clone(), index)).copied(),
                                p.leader_epoch,
                                now,
                            );
                            match opened {
                                Ok(log) => {
                                    let partition = Arc::new(Partition::new(&ti.name, index, log));
                                    topic.add_partitions(vec![Arc::clone(&partition)]);
                                    partition
                                }
                                Err(e) => {
                                    tracing::error!(topic = %ti.name, partition = index, error = %e, "could not open the partition's log");
                                    continue;
                                }
                            }
                        }
                    };
                    if p.leader == me {
                        if !matches!(partition.role(), Role::Leader { epoch } if epoch == p.leader_epoch)
                        {
                            tracing::info!(topic = %ti.name, partition = index, epoch = p.leader_epoch, "leading partition");
                        }
                        partition.become_leader(me, p, ti.id, now);
                    } else {
                        let role = Role::Follower {
                            leader: p.leader,
                            epoch: p.leader_epoch,
                        };
                        if partition.role() != role {
                            partition.become_follower(p.leader, p.leader_epoch);
                            tracing::debug!(topic = %ti.name, partition = index, ?role, "following partition");
                        }
                    }
                }
                let moved: Vec<i32> = topic
                    .partitions()
                    .iter()
                    .map(|p| p.index())
                    .filter(|i| !hosted.iter().any(|(h, _)| *h == i))
                    .collect();
                for index in moved {
                    if topic.remove_partition(index).is_some() {
                        removed_dirs.push(partition_dir(&self.config.data_dir, &ti.name, index));
                    }
                }
            }
        }
        for dir in removed_dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition data");
            }
        }
        // Group coordination follows the leadership of `__consumer_offsets` partitions.
        if let Some(offsets) = self.topic(OFFSETS_TOPIC) {
            let led: std::collections::BTreeSet<i32> = offsets
                .partitions()
                .iter()
                .filter(|p| matches!(p.role(), Role::Leader { .. }))
                .map(|p| p.index())
                .collect();
            let mut previous = self.led_offsets.lock().unwrap_or_else(|p| p.into_inner());
            if *previous != led {
                let gained = led.iter().any(|p| !previous.contains(p));
                *previous = led;
                drop(previous);
                if gained {
                    match self.offsets.load(&offsets) {
                        Ok(()) => self.load_groups(),
                        Err(e) => tracing::error!(error = %e, "could not load committed offsets"),
                    }
                }
            }
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> String {
        if let Some(cluster) = self.cluster()
            && let Some(id) = cluster.image().image.cluster_id.clone()
        {
            return id;
        }
        self.cluster_id.clone()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The host and port clients are told to connect to.
    pub fn advertised(&self) -> (String, u16) {
        self.advertised
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the bound address (when binding port 0) unless `advertised.listeners` is set.
    pub(crate) fn set_bound_address(&self, addr: std::net::SocketAddr) {
        if self.config.advertised.is_none() {
            *self.advertised.write().unwrap_or_else(|p| p.into_inner()) =
                (addr.ip().to_string(), addr.port());
        }
    }

    /// The group coordinator.
    pub(crate) fn groups(&self) -> &GroupManager {
        &self.groups
    }

    /// Feeds the groups stored in `__consumer_offsets` to the coordinator (at start-up).
    fn load_groups(&self) {
        for (group, bytes) in self.offsets.group_metadata() {
            match crate::offsets::decode_group(&group, &bytes) {
                Some(snapshot) => self.groups.load(self, snapshot),
                None => tracing::warn!(group = %group, "skipping unreadable group metadata"),
            }
        }
    }

    /// Committed offsets.
    pub(crate) fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// The internal offsets topic, created on first use (compacted, Kafka's defaults).
    pub(crate) fn offsets_topic(&self) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.topic(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        if self.cluster().is_some() {
            // In a cluster the controller creates it (FindCoordinator asks for that).
            return Err(ApiError::new(
                ErrorCode::NotCoordinator,
                "This broker hosts no partition of __consumer_offsets.",
            ));
        }
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let config = self.topic_config(overrides)?;
        match self.create_topic(
            OFFSETS_TOPIC,
            self.config.offsets_topic_num_partitions,
            config,
            false,
        ) {
            Ok(Some(topic)) => Ok(topic),
            // Created concurrently by another request.
            _ => self.topic(OFFSETS_TOPIC).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    "The offsets topic could not be created.",
                )
            }),
        }
    }

    /// A fresh idempotent-producer id.
    pub(crate) fn next_producer_id(&self) -> Result<i64> {
        self.producer_ids.next()
    }

    /// Wakes long-polling fetches after an append.
    pub(crate) fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(name)
            .cloned()
    }

    pub(crate) fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .get(&id)
            .cloned()
    }

    /// Every topic, sorted by name.
    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Validates a topic's configs against this broker's defaults.
    pub(crate) fn topic_config(
        &self,
        overrides: BTreeMap<String, String>,
    ) -> Result<TopicConfig, ApiError> {
        TopicConfig::new(overrides, self.config.values())
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be created).
    pub(crate) fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        topic::validate_name(name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if partitions <= 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if topics.by_name.contains_key(name) {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        let key = topic::collision_key(name);
        if let Some(other) = topics
            .by_name
            .keys()
            .find(|n| topic::collision_key(n) == key)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {other}"),
            ));
        }
        if validate_only {
            return Ok(None);
        }
        let now = self.now_ms();
        let mut created = Vec::new();
        for index in 0..partitions {
            let dir = partition_dir(&self.config.data_dir, name, index);
            let log = PartitionLog::open(&dir, false, config.log(), None, 0, now)
                .map_err(ApiError::from)?;
            created.push(Arc::new(Partition::new(name, index, log)));
        }
        let topic = Arc::new(Topic::new(name, Uuid::new_v4(), 0, config, created));
        topic.save(&self.store).map_err(ApiError::from)?;
        topics.by_id.insert(topic.id(), Arc::clone(&topic));
        topics.by_name.insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(Some(topic))
    }

    /// Deletes a topic and its data.
    pub(crate) fn delete_topic(&self, topic: &Arc<Topic>) -> Result<(), ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled (delete.topic.enable=false).",
            ));
        }
        {
            let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
            topics.by_name.remove(topic.name());
            topics.by_id.remove(&topic.id());
        }
        self.store.remove(topic.name()).map_err(ApiError::from)?;
        for partition in topic.partitions() {
            let dir = partition_dir(&self.config.data_dir, topic.name(), partition.index());
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory of deleted topic");
            }
        }
        tracing::info!(topic = topic.name(), "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub(crate) fn create_partitions(
        &self,
        topic: &Arc<Topic>,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let current = topic.partition_count();
        if count <= current {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "Topic currently has {current} partitions, which is higher than or equal to the requested {count}."
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let config = topic.config();
        let now = self.now_ms();
        let mut added = Vec::new();
        for index in current..count {
            let dir = partition_dir(&self.config.data_dir, topic.name(), index);
            let log =
                PartitionLog::open(&dir, false, config.log(), None, topic.leader_epoch(), now)
                    .map_err(ApiError::from)?;
            added.push(Arc::new(Partition::new(topic.name(), index, log)));
        }
        topic.add_partitions(added);
        topic.save(&self.store).map_err(ApiError::from)
    }

    /// Replaces a topic's config overrides.
    pub(crate) fn set_topic_config(
        &self,
        topic: &Topic,
        config: TopicConfig,
    ) -> Result<(), ApiError> {
        topic.set_config(config);
        topic.save(&self.store).map_err(ApiError::from)
    }

    /// Persists every partition's log start offset (after retention or DeleteRecords).
    pub(crate) fn checkpoint_log_starts(&self) -> Result<()> {
        let _guard = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut entries = BTreeMap::new();
        for topic in self.topics() {
            for partition in topic.partitions() {
                entries.insert(
                    (topic.name().to_string(), partition.index()),
                    partition.offsets().log_start,
                );
            }
        }
        self.log_start_checkpoint.write(&entries)
    }

    /// One retention pass over every partition.
    pub(crate) fn enforce_retention(&self) {
        let now = self.now_ms();
        let mut deleted = 0;
        for topic in self.topics() {
            let config = topic.config();
            for partition in topic.partitions() {
                match partition.lock().enforce_retention(config.log(), now) {
                    Ok(n) => deleted += n,
                    Err(e) => {
                        tracing::error!(topic = topic.name(), partition = partition.index(), error = %e, "retention failed")
                    }
                }
            }
        }
        if deleted > 0
            && let Err(e) = self.checkpoint_log_starts()
        {
            tracing::error!(error = %e, "could not write the log start offset checkpoint");
        }
    }

    /// One log-cleaner pass over the partitions of compacted topics (`log.cleaner.backoff.ms`).
    pub(crate) fn clean_logs(&self) {
        for topic in self.topics() {
            let config = topic.config();
            if !config.log().cleanup_policy.compact {
                continue;
            }
            for partition in topic.partitions() {
                if let Err(e) = crate::log::clean(|| partition.lock(), config.log(), self.now_ms())
                {
                    tracing::error!(topic = topic.name(), partition = partition.index(), error = %e, "log cleaning failed");
                }
            }
        }
    }

    /// Expires committed offsets of groups without active members after
    /// `offsets.retention.minutes` (measured from each offset's commit time).
    pub(crate) fn expire_offsets(&self) {
        let cutoff = self
            .now_ms()
            .saturating_sub(self.config.offsets_retention_minutes.saturating_mul(60_000));
        for group in self.offsets.groups() {
            let active = self
                .groups
                .describe(&group)
                .is_some_and(|d| !matches!(d.state, GroupState::Empty | GroupState::Dead));
            if active {
                continue;
            }
            let expired: Vec<_> = self
                .offsets
                .expired(&group, cutoff)
                .into_iter()
                .map(|k| (k, None))
                .collect();
            if expired.is_empty() {
                continue;
            }
            let count = expired.len();
            let written = self
                .offsets_topic()
                .map_err(|e| e.message)
                .and_then(|topic| {
                    self.offsets
                        .write(&topic, &group, expired, self.now_ms())
                        .map_err(|e| e.to_string())
                });
            match written {
                Ok(()) => tracing::info!(group = %group, count, "expired committed offsets"),
                Err(e) => tracing::error!(group = %group, error = %e, "could not expire offsets"),
            }
        }
    }

    /// One `flush.ms` pass over every partition.
    pub(crate) fn flush_due(&self) {
        let now = self.now_ms();
        for topic in self.topics() {
            let config = topic.config();
            for partition in topic.partitions() {
                if let Err(e) = partition.lock().flush_if_due(config.log(), now) {
                    tracing::error!(topic = topic.name(), partition = partition.index(), error = %e, "flush failed");
                }
            }
        }
    }

    /// Clean shutdown: fsync every log, write indexes and checkpoints, then the marker that lets
    /// the next start skip recovery.
    pub fn shutdown(&self) -> Result<()> {
        for topic in self.topics() {
            for partition in topic.partitions() {
                partition.lock().close()?;
            }
        }
        self.checkpoint_log_starts()?;
        let marker = self.config.data_dir.join(CLEAN_SHUTDOWN_FILE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("create", &marker, e))?;
        crate::log::sync_dir(&self.config.data_dir)?;
        tracing::info!("broker stopped cleanly");
        Ok(())
    }
}

/// `<data dir>/<topic>-<partition>`, Kafka's layout.
pub(crate) fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Reads `meta.properties`, or writes a new one with a fresh cluster id.
fn read_or_create_meta(dir: &Path, node_id: i32) -> Result<String> {
    let path = dir.join(META_PROPERTIES);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let values: HashMap<&str, &str> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let stored_node = values.get("node.id").and_then(|v| v.parse::<i32>().ok());
            if stored_node.is_some_and(|n| n != node_id) {
                return Err(Error::CorruptMetadata {
                    path,
                    reason: format!(
                        "it belongs to node.id {}, but this broker is node.id {node_id}",
                        stored_node.unwrap_or_default()
                    ),
                });
            }
            values
                .get("cluster.id")
                .map(|s| s.to_string())
                .ok_or(Error::CorruptMetadata {
                    path,
                    reason: "no cluster.id".into(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = base64_url(Uuid::new_v4().as_bytes());
            let text = format!(
                "#Written by Fjord\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
            );
            crate::log::write_atomically(&path, text.as_bytes())?;
            Ok(cluster_id)
        }
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Kafka's cluster ids are a UUID in URL-safe base64 without padding (22 characters).
pub(crate) fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = base64_url(Uuid::nil().as_bytes());
        assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }
}
