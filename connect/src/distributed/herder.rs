//! The distributed herder ([`Cluster`]): the internal topics, the worker group and the leader's
//! writes.
//!
//! ```text
//! config topic ──KafkaBasedLog──► ConfigSnapshot ──► Worker::sync_entries (every worker)
//!                                      │ structural change (connector added/removed, commit)
//!                                      ▼
//! group loop: JoinGroup ─► leader: read config to end, round-robin plan ─► SyncGroup
//!             ─► wait for the assignment's config offset ─► Worker::reconcile ─► heartbeats
//! REST writes ─► leader (followers forward) ─► config topic records ─► read back ─► answer
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use fjord_client::{Admin, GroupMember, HeartbeatOutcome, Producer, ProducerRecord};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config_log::{ConfigChange, ConfigRecord, ConfigSnapshot, Props};
use super::log::KafkaBasedLog;
use super::protocol::{
    self, Assignment, CONFIG_MISMATCH, NO_ERROR, PROTOCOL_NAME, PROTOCOL_TYPE, WorkerState,
};
use crate::config::DistributedConfig;
use crate::error::{Error, Result};
use crate::plugin::{PluginDesc, TaskConfigs};
use crate::runtime::{ConnectorInfo, TargetState, Worker, WorkerError};

/// Marks a request one worker sends another; the receiver serves it itself.
pub(crate) const FORWARDED: &str = "x-fjord-forwarded";
/// Kafka Connect's 409 while a rebalance is expected or under way.
pub(crate) const STALE_CONFIG: &str = "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)";
/// Kafka Connect's 409 when a request reached a worker that cannot serve it any more.
pub(crate) const CONFLICTING: &str =
    "Cannot complete request because of a conflicting operation (e.g. worker rebalance)";

const READ_BACK: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const STATUS_QUEUE: usize = 4096;

/// How this worker sees the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupView {
    pub(crate) generation: i32,
    pub(crate) leader_url: Option<String>,
    pub(crate) is_leader: bool,
    /// Between a change that needs a rebalance and the end of that rebalance.
    pub(crate) rebalancing: bool,
}

/// Config changes read but not handled by the group loop yet.
#[derive(Debug, Default)]
struct Pending {
    any: bool,
    structural: bool,
    restarts: Vec<(String, bool, bool)>,
}

/// A distributed worker's share of the cluster (see the module docs).
pub struct Cluster {
    pub(crate) config: DistributedConfig,
    pub(crate) url: String,
    snapshot: Arc<Mutex<ConfigSnapshot>>,
    pending: Arc<Mutex<Pending>>,
    notify: Arc<Notify>,
    config_log: KafkaBasedLog,
    view: watch::Sender<GroupView>,
    producer: Arc<Producer>,
    http: Client<HttpConnector, Full<Bytes>>,
    cancel: CancellationToken,
    group_loop: Mutex<Option<JoinHandle<Option<GroupMember>>>>,
    /// Serializes the leader's config writes (each checks the snapshot first).
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("group", &self.config.group_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the internal topics when missing (compacted; replication capped at the number of
/// brokers).
async fn ensure_topics(bootstrap: &str, config: &DistributedConfig) -> Result<()> {
    let kafka = |context: &str| {
        let context = context.to_string();
        move |source| Error::Kafka { context, source }
    };
    let admin = Admin::connect(bootstrap)
        .await
        .map_err(kafka("connecting to create the internal topics"))?;
    let brokers = admin
        .describe_cluster()
        .await
        .map_err(kafka("describing the cluster"))?
        .brokers
        .len()
        .max(1);
    let compact = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    for (topic, partitions, replication) in [
        (&config.config_topic, 1, config.config_replication),
        (
            &config.offset_topic,
            config.offset_partitions,
            config.offset_replication,
        ),
        (
            &config.status_topic,
            config.status_partitions,
            config.status_replication,
        ),
    ] {
        let replication = if replication > 0 && replication as usize > brokers {
            tracing::warn!(%topic, replication, brokers, "fewer brokers than the replication factor; capping it");
            brokers as i16
        } else {
            replication
        };
        match admin
            .create_topic(topic, partitions, replication, &compact)
            .await
        {
            Ok(()) => tracing::info!(%topic, partitions, "created an internal Connect topic"),
            // TOPIC_ALREADY_EXISTS
            Err(fjord_client::Error::Broker { code, .. }) if code.code() == 36 => {}
            Err(e) => return Err(kafka(&format!("creating {topic}"))(e)),
        }
    }
    Ok(())
}

impl Cluster {
    /// Creates the internal topics, reads them, and starts taking part in the group.
    pub(crate) async fn start(
        worker: &Arc<Worker>,
        config: DistributedConfig,
        url: String,
    ) -> Result<Arc<Cluster>> {
        let bootstrap = worker.config().bootstrap_servers.clone();
        ensure_topics(&bootstrap, &config).await?;
        let cancel = CancellationToken::new();
        let shared = worker.shared.clone();
        let producer = shared.producer.clone();

        // Source offsets.
        shared
            .offsets
            .use_topic(&config.offset_topic, producer.clone());
        let offsets = shared.offsets.clone();
        let offset_log = KafkaBasedLog::start(
            &bootstrap,
            &config.offset_topic,
            move |r| {
                if let Some(key) = &r.key {
                    offsets.apply_remote(key, r.value.as_deref());
                }
            },
            cancel.clone(),
        )
        .await?;

        // Statuses: local changes are written by one task, in order; others' are read.
        let (tx, mut rx) = mpsc::channel::<(String, Option<Vec<u8>>)>(STATUS_QUEUE);
        shared.status.set_publisher(tx);
        let status_topic = config.status_topic.clone();
        let status_producer = producer.clone();
        tokio::spawn(async move {
            while let Some((key, value)) = rx.recv().await {
                let record = ProducerRecord {
                    topic: status_topic.clone(),
                    partition: None,
                    key: Some(Bytes::from(key)),
                    value: value.map(Bytes::from),
                    headers: Vec::new(),
                    timestamp: None,
                };
                if let Err(e) = status_producer.send(record).await {
                    tracing::warn!(error = %e, "writing a status record");
                }
            }
        });
        let board = shared.status.clone();
        let topics_shared = shared.clone();
        let status_log = KafkaBasedLog::start(
            &bootstrap,
            &config.status_topic,
            move |r| {
                let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                    return;
                };
                if let Some(rest) = key.strip_prefix("topic-") {
                    if let Some((topic, connector)) = rest.rsplit_once("-connector-") {
                        let mut topics = lock(&topics_shared.topics);
                        if r.value.is_some() {
                            topics
                                .entry(connector.to_string())
                                .or_default()
                                .insert(topic.to_string());
                        } else if let Some(set) = topics.get_mut(connector) {
                            set.remove(topic);
                        }
                    }
                    return;
                }
                board.apply_remote(key, r.value.as_deref());
            },
            cancel.clone(),
        )
        .await?;

        // Connector configs.
        let snapshot = Arc::new(Mutex::new(ConfigSnapshot::default()));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let notify = Arc::new(Notify::new());
        let (snap, pend, note) = (snapshot.clone(), pending.clone(), notify.clone());
        let config_log = KafkaBasedLog::start(
            &bootstrap,
            &config.config_topic,
            move |r| {
                let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                    return;
                };
                let record = ConfigRecord::parse(key, r.value.as_deref());
                let change = lock(&snap).apply(r.offset, record);
                let mut p = lock(&pend);
                p.any = true;
                match change {
                    ConfigChange::Structural => p.structural = true,
                    ConfigChange::Restart {
                        connector,
                        include_tasks,
                        only_failed,
                    } => p.restarts.push((connector, include_tasks, only_failed)),
                    ConfigChange::Target(_) | ConfigChange::Nothing => {}
                }
                drop(p);
                note.notify_one();
            },
            cancel.clone(),
        )
        .await?;
        for log in [&offset_log, &status_log, &config_log] {
            log.read_to_end(READ_BACK).await?;
        }
        let _ = shared.offset_log.set(offset_log);
        // Restarts requested before this worker started are not ours to replay.
        lock(&pending).restarts.clear();

        let (view, _) = watch::channel(GroupView {
            generation: -1,
            leader_url: None,
            is_leader: false,
            rebalancing: true,
        });
        let cluster = Arc::new(Cluster {
            config,
            url,
            snapshot,
            pending,
            notify,
            config_log,
            view,
            producer,
            http: Client::builder(TokioExecutor::new()).build_http(),
            cancel,
            group_loop: Mutex::new(None),
            writes: tokio::sync::Mutex::new(()),
        });
        let _ = worker.cluster.set(cluster.clone());
        let initial = cluster.snapshot();
        worker.sync_entries(&initial).await;
        let task = tokio::spawn(group_loop(cluster.clone(), worker.clone()));
        *lock(&cluster.group_loop) = Some(task);
        Ok(cluster)
    }

    pub(crate) fn snapshot(&self) -> ConfigSnapshot {
        lock(&self.snapshot).clone()
    }

    pub(crate) fn view(&self) -> GroupView {
        self.view.borrow().clone()
    }

    /// Stops taking part in rebalances; returns the membership so the caller can leave the
    /// group once its tasks are stopped.
    pub(crate) async fn stop(&self) -> Option<GroupMember> {
        self.cancel.cancel();
        let task = lock(&self.group_loop).take();
        match task {
            Some(t) => t.await.ok().flatten(),
            None => None,
        }
    }

    /// After a forwarded write: read our own copy before answering.
    pub(crate) async fn catch_up(&self, worker: &Worker) {
        if let Err(e) = self.config_log.read_to_end(READ_BACK).await {
            tracing::warn!(error = %e.chain(), "catching up with the config topic");
        }
        let snapshot = self.snapshot();
        let updates = worker.sync_entries(&snapshot).await;
        self.submit_all(updates);
    }

    fn require_leader(&self) -> Result<(), WorkerError> {
        let view = self.view();
        if view.rebalancing {
            return Err(WorkerError::Conflict(STALE_CONFIG.into()));
        }
        if !view.is_leader {
            return Err(WorkerError::Conflict(CONFLICTING.into()));
        }
        Ok(())
    }

    /// Writes records to the config topic in order and waits until they have been read back.
    async fn write(&self, records: Vec<ConfigRecord>) -> Result<(), WorkerError> {
        let mut last = -1;
        for record in records {
            let (key, value) = record.encode();
            let sent = self
                .producer
                .send(ProducerRecord {
                    topic: self.config.config_topic.clone(),
                    partition: Some(0),
                    key: Some(Bytes::from(key)),
                    value: value.map(Bytes::from),
                    headers: Vec::new(),
                    timestamp: None,
                })
                .await;
            let meta = match sent {
                Ok(d) => d.await,
                Err(e) => Err(e),
            }
            .map_err(|e| {
                WorkerError::Internal(format!(
                    "Failed to write to the config topic {}: {e}",
                    self.config.config_topic
                ))
            })?;
            last = last.max(meta.offset);
        }
        if !self.config_log.wait_for(last + 1, READ_BACK).await {
            return Err(WorkerError::Internal(format!(
                "Timed out reading back the config topic {}",
                self.config.config_topic
            )));
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> Result<(), WorkerError> {
        if lock(&self.snapshot).connectors.contains_key(name) {
            Ok(())
        } else {
            Err(WorkerError::NotFound(format!("Connector {name} not found")))
        }
    }

    async fn sync(&self, worker: &Worker) {
        let snapshot = self.snapshot();
        let updates = worker.sync_entries(&snapshot).await;
        self.submit_all(updates);
    }

    /// `POST /connectors`, `PUT /connectors/{n}/config` on the leader.
    pub(crate) async fn write_connector(
        &self,
        worker: &Worker,
        name: &str,
        values: Props,
        _plugin: PluginDesc,
        allow_update: bool,
        initial: Option<TargetState>,
    ) -> Result<(bool, ConnectorInfo), WorkerError> {
        let _serial = self.writes.lock().await;
        self.require_leader()?;
        let exists = self.exists(name).is_ok();
        if exists && !allow_update {
            return Err(WorkerError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        let mut records = Vec::new();
        if !exists && let Some(t) = initial {
            // The target state first, so that the connector never runs in another one.
            records.push(ConfigRecord::Target(name.to_string(), Some(t)));
        }
        records.push(ConfigRecord::Connector(name.to_string(), Some(values)));
        self.write(records).await?;
        self.sync(worker).await;
        tracing::info!(
            connector = name,
            created = !exists,
            "connector config written"
        );
        Ok((!exists, worker.info(name).await?))
    }

    /// `DELETE /connectors/{n}` on the leader.
    pub(crate) async fn delete_connector(
        &self,
        worker: &Worker,
        name: &str,
    ) -> Result<(), WorkerError> {
        let _serial = self.writes.lock().await;
        self.require_leader()?;
        self.exists(name)?;
        self.write(vec![
            ConfigRecord::Connector(name.to_string(), None),
            ConfigRecord::Target(name.to_string(), None),
        ])
        .await?;
        self.sync(worker).await;
        Ok(())
    }

    /// `PUT /connectors/{n}/pause|resume|stop` on the leader. Stopping also commits an empty
    /// task list, as Kafka Connect does.
    pub(crate) async fn write_target(
        &self,
        worker: &Worker,
        name: &str,
        target: TargetState,
    ) -> Result<(), WorkerError> {
        let _serial = self.writes.lock().await;
        self.require_leader()?;
        self.exists(name)?;
        let mut records = vec![ConfigRecord::Target(name.to_string(), Some(target))];
        if target == TargetState::Stopped {
            records.push(ConfigRecord::Commit(name.to_string(), 0));
        }
        self.write(records).await?;
        self.sync(worker).await;
        Ok(())
    }

    /// `POST /connectors/{n}/restart` on the leader: a `restart-connector-{n}` record that
    /// every worker applies to what it runs.
    pub(crate) async fn write_restart(
        &self,
        worker: &Worker,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<bool, WorkerError> {
        let _serial = self.writes.lock().await;
        self.require_leader()?;
        self.exists(name)?;
        self.write(vec![ConfigRecord::Restart {
            connector: name.to_string(),
            include_tasks,
            only_failed,
        }])
        .await?;
        // Mark what will restart, as Kafka's answer does.
        if include_tasks && let Some(status) = worker.status().connector(name) {
            for (id, t) in status.tasks {
                if !only_failed || t.state == crate::runtime::State::Failed {
                    worker.status().set_task_remote_view(
                        name,
                        id,
                        crate::runtime::State::Restarting,
                    );
                }
            }
        }
        Ok(include_tasks)
    }

    /// `POST /connectors/{n}/tasks` (internal): task configs from the worker that runs the
    /// connector, written by the leader.
    pub(crate) async fn write_task_configs(
        &self,
        worker: &Worker,
        name: &str,
        configs: TaskConfigs,
    ) -> Result<(), WorkerError> {
        let _serial = self.writes.lock().await;
        self.require_leader()?;
        self.exists(name)?;
        if lock(&self.snapshot).tasks.get(name) == Some(&configs) {
            return Ok(());
        }
        let mut records: Vec<ConfigRecord> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| ConfigRecord::Task(name.to_string(), i, Some(c.clone())))
            .collect();
        records.push(ConfigRecord::Commit(name.to_string(), configs.len()));
        self.write(records).await?;
        self.sync(worker).await;
        tracing::info!(
            connector = name,
            tasks = configs.len(),
            "task configs committed"
        );
        Ok(())
    }

    /// Sends owned connectors' new task configs to the leader (in the background, retried).
    pub(crate) fn submit_all(&self, updates: Vec<(String, TaskConfigs)>) {
        for (name, configs) in updates {
            let http = self.http.clone();
            let view = self.view.subscribe();
            let url = self.url.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                for attempt in 0..30 {
                    if cancel.is_cancelled() {
                        return;
                    }
                    let v = view.borrow().clone();
                    if let (false, Some(leader)) = (v.rebalancing, v.leader_url.clone()) {
                        let target = format!("{leader}/connectors/{}/tasks", encode(&name));
                        let body = serde_json::to_vec(&configs).unwrap_or_default();
                        match post(&http, &target, body).await {
                            Ok((status, _)) if (200..300).contains(&status) => return,
                            // Deleted meanwhile.
                            Ok((404, _)) => return,
                            Ok((status, body)) => {
                                tracing::debug!(connector = %name, status, body = %String::from_utf8_lossy(&body), from = %url, "task configs not accepted yet")
                            }
                            Err(e) => {
                                tracing::debug!(connector = %name, error = %e, "sending task configs to the leader")
                            }
                        }
                    }
                    let wait = Duration::from_millis(200 * (attempt + 1).min(10));
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                tracing::warn!(connector = %name, "gave up sending task configs to the leader");
            });
        }
    }

    /// `POST /connectors/{n}/tasks/{t}/restart` for a task another worker runs.
    pub(crate) async fn restart_remote_task(
        &self,
        worker: &Worker,
        name: &str,
        id: usize,
    ) -> Result<(), WorkerError> {
        let owner = worker
            .status()
            .task(name, id)
            .map(|t| t.worker_id)
            .filter(|w| w != worker.status().worker_id())
            .ok_or_else(|| WorkerError::Conflict(CONFLICTING.into()))?;
        let target = format!(
            "http://{owner}/connectors/{}/tasks/{id}/restart",
            encode(name)
        );
        match post(&self.http, &target, Vec::new()).await {
            Ok((status, _)) if (200..300).contains(&status) => Ok(()),
            Ok((404, body)) => Err(WorkerError::NotFound(message(&body))),
            Ok((_, body)) => Err(WorkerError::Conflict(message(&body))),
            Err(e) => Err(WorkerError::Conflict(format!("{CONFLICTING}: {e}"))),
        }
    }
}

fn message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| CONFLICTING.to_string())
}

/// Percent-encodes a connector name for a URL path.
fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn post(
    http: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Vec<u8>,
) -> std::result::Result<(u16, Bytes), String> {
    let request = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .header(FORWARDED, "1")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(HTTP_TIMEOUT, http.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// Takes the config changes read so far: syncs the entries, handles restarts, and says whether
/// a rebalance is needed.
async fn handle_pending(cluster: &Cluster, worker: &Worker) -> bool {
    let pending = std::mem::take(&mut *lock(&cluster.pending));
    if !pending.any {
        return false;
    }
    let snapshot = cluster.snapshot();
    let mut updates = worker.sync_entries(&snapshot).await;
    for (name, include_tasks, only_failed) in pending.restarts {
        updates.extend(
            worker
                .restart_local(&name, include_tasks, only_failed)
                .await,
        );
    }
    cluster.submit_all(updates);
    pending.structural
}

/// What a rebalance ended with.
enum Rebalanced {
    /// Try again (the group moved on, or this worker is behind the config topic).
    Retry,
    /// Done; `follow_up`: the leader held back tasks that move between live workers, so
    /// another round follows once their old owners have stopped them.
    Done { follow_up: bool },
}

/// One rebalance: join, (as leader) assign, sync, apply.
async fn rebalance(
    cluster: &Cluster,
    worker: &Worker,
    member: &mut GroupMember,
) -> Result<Rebalanced, fjord_client::Error> {
    cluster.view.send_modify(|v| v.rebalancing = true);
    let offset = lock(&cluster.snapshot).offset;
    let metadata = WorkerState {
        url: cluster.url.clone(),
        config_offset: offset,
        running: worker.running_tasks().await,
    }
    .encode();
    let mut follow_up = false;
    let joined = member
        .join(&[(PROTOCOL_NAME.to_string(), metadata)])
        .await?;
    let assignments = if joined.is_leader() {
        let mut states = BTreeMap::new();
        for (id, meta) in &joined.members {
            match WorkerState::decode(meta.clone()) {
                Ok(s) => {
                    states.insert(id.clone(), s);
                }
                Err(e) => tracing::warn!(member = %id, error = %e, "undecodable worker metadata"),
            }
        }
        if let Err(e) = cluster
            .config_log
            .read_to_end(cluster.config.worker_sync_timeout)
            .await
        {
            tracing::warn!(error = %e.chain(), "the leader could not catch up with the config topic");
        }
        let snapshot = cluster.snapshot();
        let max_member_offset = states.values().map(|s| s.config_offset).max().unwrap_or(0);
        let error = if snapshot.offset < max_member_offset {
            CONFIG_MISMATCH
        } else {
            NO_ERROR
        };
        let ids: Vec<String> = joined.members.iter().map(|(id, _)| id.clone()).collect();
        let running: BTreeMap<String, Vec<(String, usize)>> = states
            .iter()
            .map(|(id, s)| (id.clone(), s.running.clone()))
            .collect();
        let mut plan = protocol::assign(&ids, &snapshot.task_counts(), &running);
        follow_up = protocol::hold_back_moves(&mut plan, &running);
        tracing::info!(
            generation = joined.generation,
            workers = ids.len(),
            ?plan,
            "assigning as leader"
        );
        plan.into_iter()
            .map(|(id, (connectors, tasks))| {
                let a = Assignment {
                    error,
                    leader: joined.member_id.clone(),
                    leader_url: cluster.url.clone(),
                    config_offset: snapshot.offset,
                    connectors,
                    tasks,
                };
                (id, a.encode())
            })
            .collect()
    } else {
        Vec::new()
    };
    let Some(bytes) = member.sync(assignments).await? else {
        return Ok(Rebalanced::Retry);
    };
    let assignment = match Assignment::decode(bytes) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable assignment; rejoining");
            return Ok(Rebalanced::Retry);
        }
    };
    if assignment.error != NO_ERROR {
        tracing::info!("the leader is behind the config topic; rejoining");
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Ok(Rebalanced::Retry);
    }
    if !cluster
        .config_log
        .wait_for(assignment.config_offset, cluster.config.worker_sync_timeout)
        .await
    {
        tracing::info!("could not read the config topic up to the assignment's offset; rejoining");
        return Ok(Rebalanced::Retry);
    }
    worker.status().set_generation(joined.generation);
    handle_pending(cluster, worker).await;
    let updates = worker.reconcile(&assignment).await;
    cluster.submit_all(updates);
    let is_leader = assignment.leader == joined.member_id;
    cluster.view.send_replace(GroupView {
        generation: joined.generation,
        leader_url: Some(assignment.leader_url.clone()),
        is_leader,
        rebalancing: follow_up,
    });
    tracing::info!(generation = joined.generation, leader = %assignment.leader_url, is_leader, follow_up, "rebalance done");
    Ok(Rebalanced::Done { follow_up })
}

/// The group loop: rebalances, heartbeats, config changes. Returns the membership on shutdown
/// (the worker leaves the group after stopping its tasks).
async fn group_loop(cluster: Arc<Cluster>, worker: Arc<Worker>) -> Option<GroupMember> {
    let config = &cluster.config;
    let mut member = GroupMember::new(
        &worker.config().bootstrap_servers,
        &format!("connect-{}", cluster.url),
        &config.group_id,
        PROTOCOL_TYPE,
        config.session_timeout,
        config.rebalance_timeout,
    );
    let mut need_join = true;
    let mut last_heartbeat = Instant::now();
    loop {
        if cluster.cancel.is_cancelled() {
            break;
        }
        if need_join {
            let result = tokio::select! {
                _ = cluster.cancel.cancelled() => break,
                r = rebalance(&cluster, &worker, &mut member) => r,
            };
            match result {
                Ok(Rebalanced::Done { follow_up }) => {
                    // The leader starts the follow-up round itself.
                    need_join = follow_up;
                    last_heartbeat = Instant::now();
                }
                Ok(Rebalanced::Retry) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "joining the Connect group; retrying");
                    tokio::select! {
                        _ = cluster.cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
            continue;
        }
        tokio::select! {
            _ = cluster.cancel.cancelled() => break,
            _ = cluster.notify.notified() => {
                if handle_pending(&cluster, &worker).await {
                    cluster.view.send_modify(|v| v.rebalancing = true);
                    need_join = true;
                }
            }
            _ = tokio::time::sleep(config.heartbeat_interval) => {
                match member.heartbeat().await {
                    Ok(HeartbeatOutcome::Stable) => last_heartbeat = Instant::now(),
                    Ok(outcome) => {
                        tracing::info!(?outcome, "the Connect group is rebalancing");
                        cluster.view.send_modify(|v| v.rebalancing = true);
                        need_join = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat failed");
                        if last_heartbeat.elapsed() > config.session_timeout {
                            cluster.view.send_modify(|v| v.rebalancing = true);
                            need_join = true;
                        }
                    }
                }
            }
        }
    }
    cluster.view.send_modify(|v| v.rebalancing = true);
    Some(member)
}
