//! A stream thread: one consumer in the application's group, the tasks of its assigned
//! partitions, a producer, and the poll → process → commit loop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_client::{
    Admin, AssignmentStrategy, Consumer, ConsumerConfig, DeliveryFuture, OffsetReset, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CHECKPOINT_HEADER, Checkpoint, checkpoint_key, common_checkpoint};
use super::{Shared, StreamsConfig, changelog_topic};
use crate::error::{Error, Result};
use crate::processor::PunctuationType;
use crate::store::{FjallBackend, KvBackend, MemoryBackend, StateStore, StoreKind};
use crate::task::{Task, TaskId};
use crate::topology::Topology;

/// Output futures awaited before more are queued.
const MAX_PENDING: usize = 50_000;

pub(crate) struct ThreadParams {
    pub(crate) index: usize,
    pub(crate) config: StreamsConfig,
    pub(crate) topology: Arc<Topology>,
    pub(crate) db: fjall::Database,
    pub(crate) partition_counts: Arc<BTreeMap<String, i32>>,
    /// Full source topic names with their sub-topology.
    pub(crate) sources: Vec<(String, usize)>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) abort: CancellationToken,
    pub(crate) shared: Arc<Shared>,
}

struct OwnedTask {
    task: Task,
    /// Source partitions of the task (full topic name).
    topics: Vec<Arc<str>>,
    /// Processed anything since the last commit.
    dirty: bool,
    /// Commits of this task by this thread (alternates the checkpoint key).
    commits: u64,
}

struct StreamThread {
    p: ThreadParams,
    consumer: Consumer,
    producer: Producer,
    admin: Admin,
    tasks: BTreeMap<TaskId, OwnedTask>,
    /// (topic, partition, task) of assigned partitions.
    routes: Vec<(Arc<str>, i32, TaskId)>,
    pending: Vec<DeliveryFuture>,
    globals: BTreeMap<String, Rc<RefCell<StateStore>>>,
    global_consumer: Option<Consumer>,
    /// Global topic → store.
    global_topics: BTreeMap<String, Rc<RefCell<StateStore>>>,
    last_commit: Instant,
}

/// Runs a stream thread on its own OS thread with a single-threaded runtime.
pub(crate) fn spawn(p: ThreadParams) -> Result<std::thread::JoinHandle<Result<()>>> {
    let name = format!("{}-StreamThread-{}", p.config.application_id, p.index);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io {
                    context: "starting a stream thread's runtime".into(),
                    source,
                })?;
            let shared = p.shared.clone();
            let result = rt.block_on(async move {
                let thread = StreamThread::start(p).await?;
                thread.run().await
            });
            if let Err(e) = &result {
                tracing::error!(error = %e, "stream thread failed");
                shared.set_failed(e.to_string());
            }
            result
        })
        .map_err(|source| Error::Io {
            context: "spawning a stream thread".into(),
            source,
        })
}

fn consumer_config(
    config: &StreamsConfig,
    client_id: String,
    group: bool,
) -> Result<ConsumerConfig> {
    let mut c = ConsumerConfig::new(config.bootstrap_servers.clone())
        .client_id(client_id)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false);
    if group {
        c = c
            .group_id(config.application_id.clone())
            .assignment_strategies(vec![AssignmentStrategy::Range]);
    }
    for (k, v) in &config.consumer {
        c.set(k, v).map_err(|e| Error::Config {
            key: format!("consumer.{}", e.key),
            value: e.value.clone(),
            reason: e.reason.clone(),
        })?;
    }
    Ok(c)
}

impl StreamThread {
    async fn start(p: ThreadParams) -> Result<Self> {
        let app = p.config.application_id.clone();
        let client_id = format!("{}-StreamThread-{}", p.config.client_id, p.index);
        let mut consumer = Consumer::new(consumer_config(
            &p.config,
            format!("{client_id}-consumer"),
            true,
        )?)
        .await
        .map_err(Error::client("creating the stream thread's consumer"))?;
        let topics: Vec<String> = p.sources.iter().map(|(t, _)| t.clone()).collect();
        consumer
            .subscribe(topics)
            .map_err(Error::client("subscribing to the source topics"))?;
        let mut pc = ProducerConfig::from_properties(
            &p.config
                .producer
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain([
                    (
                        "bootstrap.servers".to_string(),
                        p.config.bootstrap_servers.clone(),
                    ),
                    ("client.id".to_string(), format!("{client_id}-producer")),
                ])
                .collect(),
        )
        .map_err(Error::client("configuring the producer"))?;
        if !p.config.producer.contains_key("linger.ms") {
            pc = pc.with_linger(Duration::from_millis(5));
        }
        if !p.config.producer.contains_key("batch.size") {
            pc = pc.with_batch_size(256 * 1024);
        }
        let producer = Producer::new(pc).map_err(Error::client("creating the producer"))?;
        let admin = Admin::connect(&p.config.bootstrap_servers)
            .await
            .map_err(Error::client("connecting the admin client"))?;
        let mut thread = StreamThread {
            p,
            consumer,
            producer,
            admin,
            tasks: BTreeMap::new(),
            routes: Vec::new(),
            pending: Vec::new(),
            globals: BTreeMap::new(),
            global_consumer: None,
            global_topics: BTreeMap::new(),
            last_commit: Instant::now(),
        };
        thread.start_globals().await?;
        tracing::info!(application_id = %app, thread = thread.p.index, "stream thread started");
        Ok(thread)
    }

    /// Reads every global table's topic to its end, then keeps a consumer on them.
    async fn start_globals(&mut self) -> Result<()> {
        if self.p.topology.globals.is_empty() {
            return Ok(());
        }
        let mut partitions = Vec::new();
        for (topic, store) in &self.p.topology.globals {
            let s = Rc::new(RefCell::new(StateStore::new(
                store,
                StoreKind::KeyValue,
                Box::new(MemoryBackend::default()),
                false,
            )));
            self.globals.insert(store.clone(), s.clone());
            self.global_topics.insert(topic.clone(), s);
            for p in self
                .admin
                .partitions(topic)
                .await
                .map_err(Error::client(format!("reading partitions of {topic}")))?
            {
                partitions.push((topic.clone(), p));
            }
        }
        let mut consumer = Consumer::new(consumer_config(
            &self.p.config,
            format!("{}-global-{}", self.p.config.client_id, self.p.index),
            false,
        )?)
        .await
        .map_err(Error::client("creating the global consumer"))?;
        consumer
            .assign(partitions.clone())
            .map_err(Error::client("assigning global partitions"))?;
        let ends = self
            .admin
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await
            .map_err(Error::client("reading global topic ends"))?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let done = ends
                .iter()
                .all(|(tp, end)| end.is_none_or(|e| consumer.position(tp).is_some_and(|p| p >= e)));
            if done || Instant::now() > deadline {
                break;
            }
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(Error::client("reading global topics"))?;
            self.apply_global(records)?;
        }
        self.global_consumer = Some(consumer);
        Ok(())
    }

    fn apply_global(&mut self, records: Vec<fjord_client::ConsumerRecord>) -> Result<()> {
        for r in records {
            let Some(store) = self.global_topics.get(r.topic.as_str()) else {
                continue;
            };
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            match r.value.as_deref() {
                Some(v) => store.borrow_mut().put(key, v)?,
                None => store.borrow_mut().delete(key)?,
            }
        }
        Ok(())
    }

    async fn run(mut self) -> Result<()> {
        let poll = self.p.config.poll;
        loop {
            if self.p.abort.is_cancelled() {
                // A crash, for tests: no commit, no leaving the group.
                return Ok(());
            }
            if self.p.shutdown.is_cancelled() {
                break;
            }
            let records = tokio::select! {
                r = self.consumer.poll(poll) => r.map_err(Error::client("polling source topics"))?,
                _ = self.p.abort.cancelled() => return Ok(()),
            };
            if self.p.abort.is_cancelled() {
                return Ok(());
            }
            self.sync_assignment().await?;
            self.process_all(records).await?;
            self.publish_metrics();
            self.punctuate_wall_clock().await?;
            if let Some(global) = self.global_consumer.as_mut() {
                let records = global
                    .poll(Duration::ZERO)
                    .await
                    .map_err(Error::client("reading global topics"))?;
                self.apply_global(records)?;
            }
            if self.last_commit.elapsed() >= self.p.config.commit_interval {
                self.commit().await?;
            }
            self.publish_metrics();
        }
        self.commit().await?;
        self.close_tasks();
        self.producer.close().await;
        self.consumer
            .close()
            .await
            .map_err(Error::client("closing the consumer"))
    }

    /// Creates tasks for new partitions (restoring their stores) and drops revoked ones.
    async fn sync_assignment(&mut self) -> Result<()> {
        let assigned = self.consumer.assignment();
        let same = assigned.len() == self.routes.len()
            && assigned
                .iter()
                .all(|(t, p)| self.routes.iter().any(|(rt, rp, _)| **rt == **t && rp == p));
        if same {
            return Ok(());
        }
        let mut wanted: BTreeMap<TaskId, Vec<String>> = BTreeMap::new();
        for (topic, partition) in &assigned {
            let Some((_, sub)) = self.p.sources.iter().find(|(t, _)| t == topic) else {
                continue;
            };
            wanted
                .entry(TaskId {
                    subtopology: *sub,
                    partition: *partition,
                })
                .or_default()
                .push(topic.clone());
        }
        // Revoked: their uncommitted work is dropped; the new owner restores to the last
        // checkpoint and reprocesses from there (writing to the changelog after losing the
        // partition could interleave with the new owner's writes).
        let gone: Vec<TaskId> = self
            .tasks
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            tracing::info!(task = %id, "task revoked");
            self.drop_task(id);
        }
        for (id, topics) in wanted {
            if self.tasks.contains_key(&id) {
                continue;
            }
            tracing::info!(task = %id, ?topics, "task assigned");
            self.create_task(id).await?;
        }
        self.routes.clear();
        for (id, owned) in &self.tasks {
            for topic in &owned.topics {
                if assigned
                    .iter()
                    .any(|(t, p)| **t == **topic && *p == id.partition)
                {
                    self.routes.push((topic.clone(), id.partition, *id));
                }
            }
        }
        // Partitions of tasks that were not created (no such sub-topology) still count as
        // routed so that the comparison above settles.
        for (t, p) in &assigned {
            if !self.routes.iter().any(|(rt, rp, _)| **rt == **t && rp == p) {
                self.routes.push((
                    Arc::from(t.as_str()),
                    *p,
                    TaskId {
                        subtopology: usize::MAX,
                        partition: *p,
                    },
                ));
            }
        }
        Ok(())
    }

    fn drop_task(&mut self, id: TaskId) {
        if let Some(owned) = self.tasks.remove(&id) {
            self.p.shared.retire(owned.task.metrics());
        }
        // Only this thread's registration: after a rebalance another thread may own the task
        // already, and its stores must stay visible to interactive queries.
        let mut stores = self.p.shared.lock_stores();
        for tasks in stores.values_mut() {
            if tasks
                .get(&id)
                .is_some_and(|(owner, _)| *owner == self.p.index)
            {
                tasks.remove(&id);
            }
        }
    }

    fn close_tasks(&mut self) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.drop_task(id);
        }
    }

    async fn create_task(&mut self, id: TaskId) -> Result<()> {
        let db = self.p.db.clone();
        let shared = self.p.shared.clone();
        let thread = self.p.index;
        let opener = Box::new(
            move |name: &str, _kind: StoreKind| -> Result<Box<dyn KvBackend>> {
                let backend = FjallBackend::open(&db, &format!("{name}.{id}"))?;
                shared
                    .lock_stores()
                    .entry(name.to_string())
                    .or_default()
                    .insert(id, (thread, backend.keyspace()));
                Ok(Box::new(backend))
            },
        );
        let mut task = Task::new_with(
            &self.p.topology,
            id,
            &self.p.config.application_id,
            true,
            self.p.config.deserialization_handler.clone(),
            opener,
            self.globals.clone(),
            self.p.partition_counts.clone(),
        )?;
        task.ctx.wall_clock = wall_clock();
        let checkpoint = self.restore(&mut task).await?;
        let topics: Vec<Arc<str>> = task.topics().cloned().collect();
        if let Some(c) = checkpoint {
            task.ctx.stream_time = c.stream_time;
            for (topic, offset) in c.positions {
                if let Some(t) = topics.iter().find(|t| ***t == *topic) {
                    task.positions.insert(t.clone(), offset);
                }
            }
        }
        self.tasks.insert(
            id,
            OwnedTask {
                task,
                topics,
                dirty: false,
                commits: 0,
            },
        );
        Ok(())
    }

    /// Replays the task's changelogs up to their latest common checkpoint.
    async fn restore(&mut self, task: &mut Task) -> Result<Option<Checkpoint>> {
        let stores: Vec<(String, Rc<RefCell<StateStore>>)> =
            task.stores().map(|(n, s)| (n.clone(), s.clone())).collect();
        if stores.is_empty() {
            return Ok(None);
        }
        let started = Instant::now();
        let partition = task.id().partition;
        let mut logs = Vec::with_capacity(stores.len());
        for (name, _) in &stores {
            let topic = changelog_topic(&self.p.config.application_id, name);
            logs.push(self.read_changelog(&topic, partition).await?);
        }
        let markers: Vec<Vec<(usize, Bytes)>> = logs
            .iter()
            .map(|log| {
                log.iter()
                    .enumerate()
                    .filter(|(_, r)| r.2)
                    .filter_map(|(i, r)| r.1.clone().map(|v| (i, v)))
                    .collect()
            })
            .collect();
        let common = common_checkpoint(&markers);
        let mut restored = 0u64;
        for (_, store) in &stores {
            store.borrow_mut().clear()?;
        }
        let Some((upto, payload)) = common else {
            tracing::info!(task = %task.id(), "no checkpoint in the changelogs: starting empty");
            return Ok(None);
        };
        for (((_, store), log), end) in stores.iter().zip(&logs).zip(&upto) {
            let mut store = store.borrow_mut();
            for (key, value, marker) in &log[..*end] {
                if *marker {
                    continue;
                }
                store.restore(key, value.as_deref())?;
                restored += 1;
            }
            self.p.shared.add_restored(1, 0);
        }
        self.p.shared.add_restored(0, restored);
        let checkpoint = Checkpoint::decode(&payload);
        tracing::info!(
            task = %task.id(),
            records = restored,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restored state from changelogs"
        );
        Ok(checkpoint)
    }

    /// Every record of a changelog partition: (key, value, is a checkpoint).
    async fn read_changelog(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<(Bytes, Option<Bytes>, bool)>> {
        let tp: TopicPartition = (topic.to_string(), partition);
        let ends = self
            .admin
            .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Latest)
            .await
            .map_err(Error::client(format!(
                "reading the end of {topic}-{partition}"
            )))?;
        let end = ends.get(&tp).copied().flatten().unwrap_or(0);
        let mut out = Vec::new();
        if end == 0 {
            return Ok(out);
        }
        self.p.shared.add_restore_total(end as u64);
        let mut consumer = Consumer::new(consumer_config(
            &self.p.config,
            format!("{}-restore-{}", self.p.config.client_id, self.p.index),
            false,
        )?)
        .await
        .map_err(Error::client("creating the restore consumer"))?;
        consumer
            .assign([tp.clone()])
            .map_err(Error::client("assigning a changelog partition"))?;
        consumer
            .seek_to_beginning(std::slice::from_ref(&tp))
            .await
            .map_err(Error::client(format!("seeking {topic}-{partition}")))?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while consumer.position(&tp).is_none_or(|p| p < end) {
            if Instant::now() > deadline || self.p.abort.is_cancelled() {
                return Err(Error::RestoreTimeout {
                    topic: topic.to_string(),
                    partition,
                });
            }
            for r in consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(Error::client(format!("reading {topic}-{partition}")))?
            {
                if r.offset >= end {
                    continue;
                }
                let marker = r.headers.iter().any(|(k, _)| k == CHECKPOINT_HEADER);
                let Some(key) = r.key else {
                    return Err(Error::CorruptChangelog {
                        topic: topic.to_string(),
                        partition,
                        offset: r.offset,
                        reason: "a changelog record without a key",
                    });
                };
                out.push((key, r.value, marker));
            }
        }
        let _ = consumer.close().await;
        Ok(out)
    }

    /// Processes records in chunks, yielding between them so that the consumer's heartbeats
    /// run (the thread's runtime is single-threaded).
    async fn process_all(&mut self, records: Vec<fjord_client::ConsumerRecord>) -> Result<()> {
        let mut records = records.into_iter();
        loop {
            let chunk: Vec<fjord_client::ConsumerRecord> = records.by_ref().take(2_000).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.process(chunk)?;
            for owned in self.tasks.values() {
                owned.task.write_back()?;
            }
            self.send_outputs().await?;
            tokio::task::yield_now().await;
        }
    }

    fn process(&mut self, records: Vec<fjord_client::ConsumerRecord>) -> Result<()> {
        let mut last: Option<(usize, TaskId)> = None;
        for r in records {
            let route = match last {
                Some((i, id))
                    if *self.routes[i].0 == *r.topic.as_str()
                        && self.routes[i].1 == r.partition =>
                {
                    Some((i, id))
                }
                _ => self
                    .routes
                    .iter()
                    .position(|(t, p, _)| **t == *r.topic.as_str() && *p == r.partition)
                    .map(|i| (i, self.routes[i].2)),
            };
            let Some((i, id)) = route else {
                continue;
            };
            last = Some((i, id));
            let Some(owned) = self.tasks.get_mut(&id) else {
                continue;
            };
            let topic = self.routes[i].0.clone();
            // Below the task's position: processed already (before the checkpoint it was
            // restored from, or before a rebalance moved the consumer back to the committed
            // offset).
            if owned
                .task
                .positions
                .get(&topic)
                .is_some_and(|p| r.offset < *p)
            {
                continue;
            }
            owned.dirty = true;
            owned
                .task
                .process(&topic, r.offset, r.timestamp, r.key, r.value)?;
        }
        Ok(())
    }

    async fn punctuate_wall_clock(&mut self) -> Result<()> {
        let now = wall_clock();
        for owned in self.tasks.values_mut() {
            owned.task.punctuate(PunctuationType::WallClockTime, now)?;
        }
        self.send_outputs().await
    }

    async fn send_outputs(&mut self) -> Result<()> {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let Some(owned) = self.tasks.get_mut(&id) else {
                continue;
            };
            let outbox = owned.task.take_outbox();
            for out in outbox {
                let record = ProducerRecord {
                    topic: out.topic.to_string(),
                    partition: out.partition,
                    key: out.key,
                    value: out.value,
                    headers: Vec::new(),
                    timestamp: Some(out.timestamp),
                };
                self.send(record).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, record: ProducerRecord) -> Result<()> {
        let topic = record.topic.clone();
        let future = self
            .producer
            .send(record)
            .await
            .map_err(Error::client(format!("producing to {topic}")))?;
        self.pending.push(future);
        if self.pending.len() >= MAX_PENDING {
            self.await_pending().await?;
        }
        Ok(())
    }

    async fn await_pending(&mut self) -> Result<()> {
        for future in self.pending.drain(..) {
            future
                .await
                .map_err(Error::client("delivering an output or changelog record"))?;
        }
        Ok(())
    }

    /// Writes store changes and checkpoints, waits for every output, then commits offsets.
    async fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        let app = self.p.config.application_id.clone();
        let mut offsets = BTreeMap::new();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        let mut any = false;
        for id in ids {
            let Some(owned) = self.tasks.get_mut(&id) else {
                continue;
            };
            if !owned.dirty {
                continue;
            }
            owned.dirty = false;
            owned.commits += 1;
            let key = checkpoint_key(owned.commits);
            any = true;
            let checkpoint = Checkpoint {
                stream_time: owned.task.stream_time(),
                positions: owned
                    .task
                    .positions
                    .iter()
                    .map(|(t, o)| (t.to_string(), *o))
                    .collect(),
            }
            .encode();
            for (t, o) in &owned.task.positions {
                offsets.insert((t.to_string(), id.partition), *o);
            }
            let mut records = Vec::new();
            for (name, store) in owned.task.stores() {
                let topic = changelog_topic(&app, name);
                for (key, value) in store.borrow_mut().take_changes()? {
                    records.push(ProducerRecord {
                        topic: topic.clone(),
                        partition: Some(id.partition),
                        key: Some(key),
                        value,
                        headers: Vec::new(),
                        timestamp: None,
                    });
                }
                records.push(ProducerRecord {
                    topic,
                    partition: Some(id.partition),
                    key: Some(key.clone()),
                    value: Some(checkpoint.clone()),
                    headers: vec![(
                        CHECKPOINT_HEADER.to_string(),
                        Some(Bytes::from_static(b"1")),
                    )],
                    timestamp: None,
                });
            }
            for record in records {
                self.send(record).await?;
            }
        }
        if !any {
            return Ok(());
        }
        self.producer.flush().await;
        self.await_pending().await?;
        if let Err(e) = self.consumer.commit_sync(offsets).await {
            // The checkpoints hold the positions; the next owner skips what they cover.
            tracing::warn!(error = %e, "committing offsets failed");
        }
        self.update_lag().await;
        Ok(())
    }

    async fn update_lag(&mut self) {
        let partitions: Vec<TopicPartition> = self
            .routes
            .iter()
            .map(|(t, p, _)| (t.to_string(), *p))
            .collect();
        if partitions.is_empty() {
            return;
        }
        let Ok(ends) = self
            .admin
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await
        else {
            return;
        };
        let mut lag = BTreeMap::new();
        for (tp, end) in ends {
            let position = self.consumer.position(&tp).unwrap_or(0);
            lag.insert(tp, end.unwrap_or(0).saturating_sub(position).max(0));
        }
        self.p.shared.set_lag(self.p.index, lag);
    }

    fn publish_metrics(&self) {
        let metrics = self
            .tasks
            .iter()
            .map(|(id, t)| (*id, t.task.metrics().clone()))
            .collect();
        let positions = self
            .tasks
            .iter()
            .flat_map(|(id, t)| {
                t.task
                    .positions
                    .iter()
                    .map(move |(topic, o)| ((topic.to_string(), id.partition), *o))
            })
            .collect();
        self.p
            .shared
            .set_task_metrics(self.p.index, metrics, positions);
    }
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
