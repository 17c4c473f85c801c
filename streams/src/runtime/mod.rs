//! [`KafkaStreams`]: runs a topology against a cluster.
//!
//! - [`config`]: [`StreamsConfig`] (Kafka Streams' property names).
//! - `thread`: a stream thread: consumer in the group `application.id`, tasks per assigned
//!   partition, restore, poll → process → commit.
//! - [`checkpoint`]: the checkpoint records that make restored state exact.
//!
//! At start the application checks that its source topics exist and that joined topics are
//! co-partitioned, and creates its internal topics: `{application.id}-{name}-repartition`
//! and, compacted, `{application.id}-{store}-changelog`.

pub mod checkpoint;
pub mod config;
mod query;
mod thread;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use fjord_client::{Admin, TopicPartition};
use tokio_util::sync::CancellationToken;

pub use self::config::{ProcessingGuarantee, StreamsConfig};
pub use self::query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore};
use crate::error::{Error, Result};
use crate::processor::TaskMetrics;
use crate::task::TaskId;
use crate::topology::Topology;

/// The changelog topic of a store.
pub fn changelog_topic(app: &str, store: &str) -> String {
    format!("{app}-{store}-changelog")
}

/// Where the application is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Built, not started.
    Created,
    /// Threads are running.
    Running,
    /// Closed.
    NotRunning,
    /// A thread failed.
    Error(String),
}

/// Metrics of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsMetrics {
    /// Records taken from source topics (all tasks this instance ran).
    pub records_processed: u64,
    /// Records dropped for closed windows.
    pub late_records_dropped: u64,
    /// Records skipped by the deserialization exception handler.
    pub records_skipped: u64,
    /// Changelog records to restore, summed over restores (end offsets).
    pub restore_total: u64,
    /// Changelog records restored.
    pub restored: u64,
    /// Stores restored.
    pub stores_restored: u64,
    /// Next offset to process per source partition of the tasks running here now.
    pub positions: BTreeMap<TopicPartition, i64>,
    /// Tasks running on this instance now.
    pub tasks: Vec<TaskId>,
    /// Lag (end offset - position) per assigned source partition, as of the last commit.
    pub lag: BTreeMap<TopicPartition, i64>,
}

#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<Option<String>>,
    /// Store name → task → (owning thread, keyspace), for interactive queries.
    stores: Mutex<BTreeMap<String, BTreeMap<TaskId, (usize, fjall::Keyspace)>>>,
    tasks: Mutex<BTreeMap<usize, BTreeMap<TaskId, TaskMetrics>>>,
    retired: Mutex<TaskMetrics>,
    restore: Mutex<(u64, u64, u64)>,
    lag: Mutex<BTreeMap<usize, BTreeMap<TopicPartition, i64>>>,
    positions: Mutex<BTreeMap<usize, BTreeMap<TopicPartition, i64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn lock_stores(
        &self,
    ) -> MutexGuard<'_, BTreeMap<String, BTreeMap<TaskId, (usize, fjall::Keyspace)>>> {
        lock(&self.stores)
    }
    pub(crate) fn set_failed(&self, reason: String) {
        *lock(&self.state) = Some(reason);
    }
    pub(crate) fn retire(&self, m: &TaskMetrics) {
        let mut r = lock(&self.retired);
        r.records_processed += m.records_processed;
        r.late_records_dropped += m.late_records_dropped;
        r.records_skipped += m.records_skipped;
    }
    pub(crate) fn add_restored(&self, stores: u64, records: u64) {
        let mut r = lock(&self.restore);
        r.1 += records;
        r.2 += stores;
    }
    pub(crate) fn add_restore_total(&self, records: u64) {
        lock(&self.restore).0 += records;
    }
    pub(crate) fn set_lag(&self, thread: usize, lag: BTreeMap<TopicPartition, i64>) {
        lock(&self.lag).insert(thread, lag);
    }
    pub(crate) fn set_task_metrics(
        &self,
        thread: usize,
        m: BTreeMap<TaskId, TaskMetrics>,
        positions: BTreeMap<TopicPartition, i64>,
    ) {
        lock(&self.tasks).insert(thread, m);
        lock(&self.positions).insert(thread, positions);
    }
}

/// A running streams application instance.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    abort: CancellationToken,
    threads: Vec<std::thread::JoinHandle<Result<()>>>,
    started: bool,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl KafkaStreams {
    /// An instance of `topology` with `config` (nothing runs before [`start`](Self::start)).
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        config.validate()?;
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            config,
            shared: Arc::new(Shared::default()),
            shutdown: CancellationToken::new(),
            abort: CancellationToken::new(),
            threads: Vec::new(),
            started: false,
        })
    }

    /// Checks the source topics and co-partitioning, creates internal topics, opens the state
    /// directory and starts `num.stream.threads` threads.
    pub async fn start(&mut self) -> Result<()> {
        if self.started {
            return Ok(());
        }
        let app = self.config.application_id.clone();
        let admin = Admin::connect(&self.config.bootstrap_servers)
            .await
            .map_err(Error::client("connecting to bootstrap.servers"))?;
        let topics = plan_topics(&self.topology, &app, &admin).await?;
        for (name, partitions, compacted) in &topics.internal {
            let mut configs = BTreeMap::new();
            if *compacted {
                configs.insert("cleanup.policy".to_string(), "compact".to_string());
            }
            match admin
                .create_topic(name, *partitions, self.config.replication_factor, &configs)
                .await
            {
                Ok(()) => tracing::info!(topic = %name, partitions, "created internal topic"),
                Err(fjord_client::Error::Broker { code, .. }) if code.code() == 36 => {}
                Err(e) => {
                    return Err(Error::Client {
                        context: format!("creating internal topic {name}"),
                        source: Box::new(e),
                    });
                }
            }
        }
        let dir = self.config.state_dir.join(&app);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating state.dir {}", dir.display()),
            source,
        })?;
        let db = fjall::Database::builder(&dir)
            .open()
            .map_err(|source| Error::Store {
                store: dir.display().to_string(),
                source: Box::new(source),
            })?;
        let partition_counts = Arc::new(topics.counts);
        for index in 0..self.config.num_stream_threads {
            let handle = thread::spawn(thread::ThreadParams {
                index,
                config: self.config.clone(),
                topology: self.topology.clone(),
                db: db.clone(),
                partition_counts: partition_counts.clone(),
                sources: topics.sources.clone(),
                shutdown: self.shutdown.clone(),
                abort: self.abort.clone(),
                shared: self.shared.clone(),
            })?;
            self.threads.push(handle);
        }
        self.started = true;
        Ok(())
    }

    /// The instance's state.
    pub fn state(&self) -> State {
        if let Some(reason) = lock(&self.shared.state).clone() {
            return State::Error(reason);
        }
        match (
            self.started,
            self.shutdown.is_cancelled() || self.abort.is_cancelled(),
        ) {
            (false, _) => State::Created,
            (true, false) => State::Running,
            (true, true) => State::NotRunning,
        }
    }

    /// Counters and lag.
    pub fn metrics(&self) -> StreamsMetrics {
        let mut m = StreamsMetrics::default();
        let retired = lock(&self.shared.retired).clone();
        m.records_processed = retired.records_processed;
        m.late_records_dropped = retired.late_records_dropped;
        m.records_skipped = retired.records_skipped;
        for tasks in lock(&self.shared.tasks).values() {
            m.tasks.extend(tasks.keys().copied());
            for t in tasks.values() {
                m.records_processed += t.records_processed;
                m.late_records_dropped += t.late_records_dropped;
                m.records_skipped += t.records_skipped;
            }
        }
        let (total, restored, stores) = *lock(&self.shared.restore);
        m.restore_total = total;
        m.restored = restored;
        m.stores_restored = stores;
        for p in lock(&self.shared.positions).values() {
            m.positions.extend(p.iter().map(|(k, v)| (k.clone(), *v)));
        }
        for lag in lock(&self.shared.lag).values() {
            m.lag.extend(lag.iter().map(|(k, v)| (k.clone(), *v)));
        }
        m
    }

    /// The local tasks' key-value store `name`, for reads while the application runs.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key_serde: crate::SerdeRef<K>,
        value_serde: crate::SerdeRef<V>,
    ) -> ReadOnlyKeyValueStore<K, V> {
        ReadOnlyKeyValueStore::new(self.shared.clone(), name, key_serde, value_serde)
    }

    /// The local tasks' window store `name` (windows of `size` ms).
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key_serde: crate::SerdeRef<K>,
        value_serde: crate::SerdeRef<V>,
        size: i64,
    ) -> ReadOnlyWindowStore<K, V> {
        ReadOnlyWindowStore::new(self.shared.clone(), name, key_serde, value_serde, size)
    }

    /// Commits, leaves the group and stops the threads.
    pub async fn close(mut self) -> Result<()> {
        self.shutdown.cancel();
        self.join().await
    }

    /// Stops at once without committing or leaving the group, as a crash would (for tests).
    pub async fn kill(mut self) -> Result<()> {
        self.abort.cancel();
        self.join().await
    }

    async fn join(&mut self) -> Result<()> {
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .enumerate()
                .map(|(i, t)| match t.join() {
                    Ok(r) => r,
                    Err(_) => Err(Error::ThreadFailed {
                        thread: i,
                        reason: "panicked".into(),
                    }),
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::ThreadFailed {
            thread: 0,
            reason: e.to_string(),
        })?;
        for (i, r) in joined.into_iter().enumerate() {
            if let Err(e) = r {
                return Err(Error::ThreadFailed {
                    thread: i,
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The topics an application reads, writes and creates.
struct TopicPlan {
    /// Full source topic names with their sub-topology.
    sources: Vec<(String, usize)>,
    /// Internal topics to create: name, partitions, compacted.
    internal: Vec<(String, i32, bool)>,
    /// Partition counts of sink and internal topics (for partitioners).
    counts: BTreeMap<String, i32>,
}

async fn plan_topics(topology: &Topology, app: &str, admin: &Admin) -> Result<TopicPlan> {
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    let mut missing = Vec::new();
    let external: BTreeSet<&str> = topology
        .sources
        .iter()
        .filter(|s| !s.internal)
        .map(|s| s.topic.as_str())
        .chain(topology.globals.iter().map(|(t, _)| t.as_str()))
        .collect();
    for topic in external {
        match admin.partitions(topic).await {
            Ok(p) if !p.is_empty() => {
                counts.insert(topic.to_string(), p.len() as i32);
            }
            Ok(_) => missing.push(topic.to_string()),
            Err(fjord_client::Error::Broker { code, .. }) if code.code() == 3 => {
                missing.push(topic.to_string());
            }
            Err(e) => {
                return Err(Error::Client {
                    context: format!("describing source topic {topic}"),
                    source: Box::new(e),
                });
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::MissingSourceTopics { topics: missing });
    }
    // Sub-topology partition counts: the most partitions among its sources; a repartition
    // topic has its writer's count. Repeat until nothing changes (the graph is acyclic).
    let subs = topology.subtopologies;
    let mut sub_count = vec![0i32; subs];
    for _ in 0..=subs {
        for s in &topology.sources {
            let n = if s.internal {
                topology
                    .repartitions
                    .get(&s.topic)
                    .map_or(0, |w| sub_count[*w])
            } else {
                counts.get(&s.topic).copied().unwrap_or(0)
            };
            sub_count[s.sub] = sub_count[s.sub].max(n);
        }
    }
    // Joined topics must have equal counts; a repartition topic takes the count of the
    // external topics it is joined with.
    let mut forced: BTreeMap<String, i32> = BTreeMap::new();
    for group in &topology.copartition {
        let mut known: Option<(String, i32)> = None;
        for topic in group {
            let Some(n) = counts.get(topic).copied() else {
                continue;
            };
            match &known {
                Some((other, m)) if *m != n => {
                    return Err(Error::NotCoPartitioned {
                        left: other.clone(),
                        left_partitions: *m as usize,
                        right: topic.clone(),
                        right_partitions: n as usize,
                    });
                }
                Some(_) => {}
                None => known = Some((topic.clone(), n)),
            }
        }
        if let Some((_, n)) = known {
            for topic in group {
                if topology.repartitions.contains_key(topic) {
                    forced.insert(topic.clone(), n);
                }
            }
        }
    }
    let mut internal = Vec::new();
    for (topic, writer) in &topology.repartitions {
        let n = forced
            .get(topic)
            .copied()
            .unwrap_or(sub_count[*writer])
            .max(1);
        let full = format!("{app}-{topic}");
        counts.insert(full.clone(), n);
        internal.push((full, n, false));
    }
    // Readers of repartition topics now know their counts.
    for s in topology.sources.iter().filter(|s| s.internal) {
        let n = counts.get(&s.full_name(app)).copied().unwrap_or(1);
        sub_count[s.sub] = sub_count[s.sub].max(n);
    }
    for (store, sub) in &topology.stores {
        internal.push((changelog_topic(app, store), sub_count[*sub].max(1), true));
    }
    for sink in &topology.sinks {
        if let Ok(p) = admin.partitions(sink).await
            && !p.is_empty()
        {
            counts.insert(sink.clone(), p.len() as i32);
        }
    }
    Ok(TopicPlan {
        sources: topology
            .sources
            .iter()
            .map(|s| (s.full_name(app), s.sub))
            .collect(),
        internal,
        counts,
    })
}
