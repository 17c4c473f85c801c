//! The standalone worker: connector configs, target states and task handles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fjord_client::{Admin, Producer, ProducerConfig};
use serde_json::{Map, Value as Json, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::convert::Converters;
use super::errors::{ErrorReporter, trace};
use super::offsets::OffsetStore;
use super::status::{State, StatusBoard};
use super::validate::validate;
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::distributed::{Cluster, KafkaBasedLog};
use crate::error::{Error, Result};
use crate::plugin::{Connector, PluginDesc, TaskConfigs};
use crate::transforms::TransformChain;

/// A REST-level failure: Kafka Connect's status code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

impl WorkerError {
    pub fn status(&self) -> u16 {
        match self {
            WorkerError::NotFound(_) => 404,
            WorkerError::Conflict(_) => 409,
            WorkerError::BadRequest(_) => 400,
            WorkerError::Internal(_) => 500,
        }
    }

    fn not_found(name: &str) -> Self {
        WorkerError::NotFound(format!("Connector {name} not found"))
    }
}

/// What a connector is asked to be (`target state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

/// `GET /connectors/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub tasks: usize,
    pub type_: &'static str,
}

impl ConnectorInfo {
    pub fn to_json(&self) -> Json {
        let tasks: Vec<Json> = (0..self.tasks)
            .map(|t| json!({"connector": self.name, "task": t}))
            .collect();
        json!({"name": self.name, "config": self.config, "tasks": tasks, "type": self.type_})
    }
}

/// What task loops share with the worker.
pub(crate) struct WorkerShared {
    pub(crate) config: WorkerConfig,
    pub(crate) producer: Arc<Producer>,
    pub(crate) offsets: Arc<OffsetStore>,
    pub(crate) status: Arc<StatusBoard>,
    pub(crate) topics: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Distributed mode: the offsets topic, read to its end before a source task starts.
    pub(crate) offset_log: OnceLock<KafkaBasedLog>,
}

impl WorkerShared {
    /// Records that a connector uses a topic (`GET /connectors/{n}/topics`); distributed, as
    /// Kafka Connect's `topic-{topic}-connector-{connector}` status record too.
    pub(crate) fn note_topic(&self, connector: &str, topic: &str) {
        let mut map = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let set = map.entry(connector.to_string()).or_default();
        if !set.contains(topic) {
            set.insert(topic.to_string());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let value = json!({"topic": {"name": topic, "connector": connector, "task": 0, "discoverTimestamp": now}});
            self.status.publish_raw(
                format!("topic-{topic}-connector-{connector}"),
                Some(value.to_string().into_bytes()),
            );
        }
    }
}

/// A task's converters, transforms and error handling.
pub(crate) struct Pipeline {
    pub(crate) converters: Converters,
    pub(crate) transforms: TransformChain,
    reporter: ErrorReporter,
}

/// Everything one running task needs.
pub(crate) struct TaskContext {
    pub(crate) connector: String,
    pub(crate) task: usize,
    pub(crate) config: ConnectorConfig,
    pub(crate) task_config: BTreeMap<String, String>,
    pub(crate) worker: Arc<WorkerShared>,
    pub(crate) cancel: CancellationToken,
    pub(crate) paused: watch::Receiver<bool>,
}

impl TaskContext {
    pub(crate) fn pipeline(&self) -> Result<Pipeline> {
        Ok(Pipeline {
            converters: Converters::build(&self.config, &self.worker.config)?,
            transforms: TransformChain::from_config(&self.config.values)?,
            reporter: ErrorReporter::new(
                &self.connector,
                self.task,
                self.config.errors.clone(),
                self.worker.producer.clone(),
                &self.worker.config.bootstrap_servers,
            ),
        })
    }

    pub(crate) fn reporter<'a>(&self, pipeline: &'a Pipeline) -> &'a ErrorReporter {
        &pipeline.reporter
    }

    /// Publishes how the task ended: FAILED with the trace, or nothing on a requested stop.
    pub(crate) fn finish(&self, result: Result<()>) {
        if let Err(e) = result {
            if self.cancel.is_cancelled() {
                tracing::debug!(connector = %self.connector, task = self.task, error = %e.chain(), "task ended while stopping");
                return;
            }
            tracing::error!(connector = %self.connector, task = self.task, error = %e.chain(), "task failed");
            self.worker
                .status
                .set_task(&self.connector, self.task, State::Failed, Some(trace(&e)));
        }
    }
}

pub(crate) struct TaskHandle {
    cancel: CancellationToken,
    pub(crate) paused: watch::Sender<bool>,
    /// The supervisor that reports a panic of the task.
    join: JoinHandle<()>,
    /// The task itself.
    abort: tokio::task::AbortHandle,
    /// The configs it started with (distributed mode restarts it when they change).
    pub(crate) task_config: BTreeMap<String, String>,
    pub(crate) connector_config: BTreeMap<String, String>,
}

pub(crate) struct ConnectorEntry {
    pub(crate) config: ConnectorConfig,
    pub(crate) plugin: PluginDesc,
    pub(crate) target: TargetState,
    pub(crate) task_configs: TaskConfigs,
    pub(crate) tasks: Vec<Option<TaskHandle>>,
}

/// A Connect worker: standalone, or one of a distributed group.
pub struct Worker {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) connectors: tokio::sync::Mutex<BTreeMap<String, ConnectorEntry>>,
    cluster_id: Mutex<Option<String>>,
    /// Distributed mode: the group, the internal topics and the leader.
    pub(crate) cluster: OnceLock<Arc<Cluster>>,
    /// Distributed mode: the connectors this worker is assigned.
    pub(crate) owned: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.shared.status.worker_id())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Opens the offsets file and starts the shared producer.
    pub fn new(config: WorkerConfig, worker_id: impl Into<String>) -> Result<Self> {
        let offsets = OffsetStore::open(config.offsets_file.as_deref())?;
        let mut props = BTreeMap::from([
            (
                "bootstrap.servers".to_string(),
                config.bootstrap_servers.clone(),
            ),
            ("acks".to_string(), "all".to_string()),
            ("linger.ms".to_string(), "5".to_string()),
            (
                "client.id".to_string(),
                "connect-worker-producer".to_string(),
            ),
        ]);
        props.extend(config.prefixed("producer."));
        let producer = ProducerConfig::from_properties(&props)
            .and_then(Producer::new)
            .map_err(|e| Error::Kafka {
                context: "starting the worker's producer".into(),
                source: e,
            })?;
        Ok(Worker {
            shared: Arc::new(WorkerShared {
                config,
                producer: Arc::new(producer),
                offsets: Arc::new(offsets),
                status: Arc::new(StatusBoard::new(worker_id)),
                topics: Mutex::new(BTreeMap::new()),
                offset_log: OnceLock::new(),
            }),
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            cluster_id: Mutex::new(None),
            cluster: OnceLock::new(),
            owned: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.shared.config
    }

    pub fn status(&self) -> &StatusBoard {
        &self.shared.status
    }

    /// The Kafka cluster id (asked once).
    pub async fn cluster_id(&self) -> Option<String> {
        if let Some(id) = self
            .cluster_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(id);
        }
        let admin = Admin::connect(&self.shared.config.bootstrap_servers)
            .await
            .ok()?;
        let id = admin.describe_cluster().await.ok()?.cluster_id;
        *self.cluster_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        Some(id)
    }

    /// Names of every connector.
    pub async fn names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// Validates a config for `PUT /connector-plugins/{p}/config/validate`.
    pub fn validate_json(&self, config: &BTreeMap<String, String>) -> Json {
        validate(config, &self.shared.config).to_json()
    }

    /// Creates a connector, or with `allow_update` replaces an existing one's config (restarting
    /// it). Returns whether it was created.
    pub async fn put_connector(
        &self,
        name: &str,
        values: BTreeMap<String, String>,
        allow_update: bool,
    ) -> Result<(bool, ConnectorInfo), WorkerError> {
        self.put_connector_in_state(name, values, allow_update, None)
            .await
    }

    /// Like [`Worker::put_connector`], and a new connector starts in `initial` (`POST
    /// /connectors` with `initial_state`).
    pub async fn put_connector_in_state(
        &self,
        name: &str,
        mut values: BTreeMap<String, String>,
        allow_update: bool,
        initial: Option<TargetState>,
    ) -> Result<(bool, ConnectorInfo), WorkerError> {
        if name.trim().is_empty() {
            return Err(WorkerError::BadRequest(
                "Connector name must not be empty".into(),
            ));
        }
        if name.contains('/') {
            return Err(WorkerError::BadRequest(format!(
                "Connector name {name} must not contain '/'"
            )));
        }
        match values.get("name") {
            Some(n) if n != name => {
                return Err(WorkerError::BadRequest(format!(
                    "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
                )));
            }
            _ => {
                values.insert("name".into(), name.to_string());
            }
        }
        let validation = validate(&values, &self.shared.config);
        if !validation.errors.is_empty() {
            return Err(WorkerError::BadRequest(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                validation.errors.len(),
                validation.errors.join("\n")
            )));
        }
        let (Some(plugin), Ok(config)) = (validation.plugin, ConnectorConfig::parse(values)) else {
            return Err(WorkerError::BadRequest(
                "Connector configuration is invalid".into(),
            ));
        };
        if let Some(cluster) = self.cluster.get() {
            return cluster
                .write_connector(self, name, config.values, plugin, allow_update, initial)
                .await;
        }
        let mut connectors = self.connectors.lock().await;
        let created = match connectors.remove(name) {
            Some(mut old) => {
                if !allow_update {
                    connectors.insert(name.to_string(), old);
                    return Err(WorkerError::Conflict(format!(
                        "Connector {name} already exists"
                    )));
                }
                let target = old.target;
                self.stop_tasks(&mut old).await;
                let mut entry = self.new_entry(config, plugin, target);
                self.start_tasks(name, &mut entry);
                connectors.insert(name.to_string(), entry);
                false
            }
            None => {
                let mut entry = self.new_entry(config, plugin, TargetState::Started);
                self.start_tasks(name, &mut entry);
                connectors.insert(name.to_string(), entry);
                true
            }
        };
        drop(connectors);
        if created && let Some(target) = initial {
            self.set_target(name, target).await?;
        }
        let info = self.info(name).await?;
        tracing::info!(connector = name, created, "connector configured");
        Ok((created, info))
    }

    /// `PATCH /connectors/{n}/config`: merges keys (JSON null removes one).
    pub async fn patch_connector(
        &self,
        name: &str,
        patch: Map<String, Json>,
    ) -> Result<ConnectorInfo, WorkerError> {
        let mut values = {
            let connectors = self.connectors.lock().await;
            connectors
                .get(name)
                .ok_or_else(|| WorkerError::not_found(name))?
                .config
                .values
                .clone()
        };
        for (k, v) in patch {
            match v {
                Json::Null => {
                    values.remove(&k);
                }
                Json::String(s) => {
                    values.insert(k, s);
                }
                Json::Bool(_) | Json::Number(_) => {
                    values.insert(k, v.to_string());
                }
                _ => {
                    return Err(WorkerError::BadRequest(format!(
                        "Config {k} must be a string"
                    )));
                }
            }
        }
        self.put_connector(name, values, true)
            .await
            .map(|(_, info)| info)
    }

    fn new_entry(
        &self,
        config: ConnectorConfig,
        plugin: PluginDesc,
        target: TargetState,
    ) -> ConnectorEntry {
        ConnectorEntry {
            config,
            plugin,
            target,
            task_configs: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Plans and spawns the tasks for the entry's target state.
    fn start_tasks(&self, name: &str, entry: &mut ConnectorEntry) {
        let status = &self.shared.status;
        let type_ = entry.plugin.connector.type_name();
        if entry.target == TargetState::Stopped {
            status.set_connector(name, type_, State::Stopped);
            entry.task_configs.clear();
            entry.tasks.clear();
            return;
        }
        let max = entry.config.tasks_max;
        let planned = match &entry.plugin.connector {
            Connector::Source(c) => c.task_configs(&entry.config, max),
            Connector::Sink(c) => c.task_configs(&entry.config, max),
        };
        let mut task_configs = match planned {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(connector = name, error = %e.chain(), "connector failed");
                status.fail_connector(name, type_, trace(&e));
                entry.task_configs.clear();
                entry.tasks.clear();
                return;
            }
        };
        task_configs.truncate(max);
        let state = if entry.target == TargetState::Paused {
            State::Paused
        } else {
            State::Running
        };
        status.set_connector(name, type_, state);
        status.truncate_tasks(name, task_configs.len());
        entry.tasks = (0..task_configs.len())
            .map(|id| Some(self.spawn_task(name, id, entry, &task_configs[id])))
            .collect();
        entry.task_configs = task_configs;
    }

    pub(crate) fn spawn_task(
        &self,
        name: &str,
        id: usize,
        entry: &ConnectorEntry,
        task_config: &BTreeMap<String, String>,
    ) -> TaskHandle {
        let cancel = CancellationToken::new();
        let (paused_tx, paused_rx) = watch::channel(entry.target == TargetState::Paused);
        self.shared
            .status
            .set_task(name, id, State::Unassigned, None);
        let ctx = TaskContext {
            connector: name.to_string(),
            task: id,
            config: entry.config.clone(),
            task_config: task_config.clone(),
            worker: self.shared.clone(),
            cancel: cancel.clone(),
            paused: paused_rx,
        };
        let inner = match &entry.plugin.connector {
            Connector::Source(c) => tokio::spawn(super::source::run(ctx, c.clone())),
            Connector::Sink(c) => tokio::spawn(super::sink::run(ctx, c.clone())),
        };
        let abort = inner.abort_handle();
        // A panicking connector fails its task, never the worker.
        let status = self.shared.status.clone();
        let connector = name.to_string();
        let join = tokio::spawn(async move {
            if let Err(e) = inner.await
                && e.is_panic()
            {
                let reason = e
                    .into_panic()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "the task panicked".into());
                tracing::error!(connector = %connector, task = id, %reason, "task panicked");
                status.set_task(
                    &connector,
                    id,
                    State::Failed,
                    Some(format!(
                        "org.apache.kafka.connect.errors.ConnectException: task panicked: {reason}"
                    )),
                );
            }
        });
        TaskHandle {
            cancel,
            paused: paused_tx,
            join,
            abort,
            task_config: task_config.clone(),
            connector_config: entry.config.values.clone(),
        }
    }

    pub(crate) async fn stop_task(&self, handle: TaskHandle) {
        handle.cancel.cancel();
        let timeout = self
            .shared
            .config
            .task_shutdown_timeout
            .max(Duration::from_millis(100));
        if tokio::time::timeout(timeout, handle.join).await.is_err() {
            tracing::warn!(
                "task did not stop within task.shutdown.graceful.timeout.ms; aborting it"
            );
            handle.abort.abort();
        }
    }

    pub(crate) async fn stop_tasks(&self, entry: &mut ConnectorEntry) {
        let handles: Vec<TaskHandle> = entry.tasks.drain(..).flatten().collect();
        for h in &handles {
            h.cancel.cancel();
        }
        for h in handles {
            self.stop_task(h).await;
        }
    }

    pub(crate) fn info_of(name: &str, entry: &ConnectorEntry) -> ConnectorInfo {
        ConnectorInfo {
            name: name.to_string(),
            config: entry.config.values.clone(),
            tasks: entry.task_configs.len(),
            type_: entry.plugin.connector.type_name(),
        }
    }

    pub async fn info(&self, name: &str) -> Result<ConnectorInfo, WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        Ok(Self::info_of(name, entry))
    }

    /// `GET /connectors/{n}/tasks`: each task's id and config.
    pub async fn tasks(
        &self,
        name: &str,
    ) -> Result<Vec<(usize, BTreeMap<String, String>)>, WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        Ok(entry.task_configs.iter().cloned().enumerate().collect())
    }

    pub async fn delete(&self, name: &str) -> Result<(), WorkerError> {
        if let Some(cluster) = self.cluster.get() {
            return cluster.delete_connector(self, name).await;
        }
        let mut connectors = self.connectors.lock().await;
        let mut entry = connectors
            .remove(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        self.stop_tasks(&mut entry).await;
        self.shared.status.remove(name);
        self.shared
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        tracing::info!(connector = name, "connector deleted");
        Ok(())
    }

    /// Changes the target state (`pause`, `resume`, `stop`).
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<(), WorkerError> {
        if let Some(cluster) = self.cluster.get() {
            return cluster.write_target(self, name, target).await;
        }
        let mut connectors = self.connectors.lock().await;
        let entry = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        let before = entry.target;
        entry.target = target;
        let type_ = entry.plugin.connector.type_name();
        match (before, target) {
            (_, TargetState::Stopped) => {
                self.stop_tasks(entry).await;
                entry.task_configs.clear();
                self.shared
                    .status
                    .set_connector(name, type_, State::Stopped);
            }
            (TargetState::Stopped, _) => self.start_tasks(name, entry),
            (_, t) => {
                let paused = t == TargetState::Paused;
                let state = if paused {
                    State::Paused
                } else {
                    State::Running
                };
                if self
                    .shared
                    .status
                    .connector(name)
                    .is_some_and(|c| c.state != State::Failed)
                {
                    self.shared.status.set_connector(name, type_, state);
                }
                for h in entry.tasks.iter().flatten() {
                    let _ = h.paused.send(paused);
                }
            }
        }
        Ok(())
    }

    /// `POST /connectors/{n}/restart`: with `include_tasks`, the tasks too (only failed ones
    /// with `only_failed`). Returns whether any task was restarted.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<bool, WorkerError> {
        if let Some(cluster) = self.cluster.get() {
            return cluster
                .write_restart(self, name, include_tasks, only_failed)
                .await;
        }
        let mut connectors = self.connectors.lock().await;
        let entry = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        let status = self.shared.status.connector(name);
        let connector_failed = status.as_ref().is_some_and(|s| s.state == State::Failed);
        if !include_tasks {
            if !only_failed || connector_failed {
                self.stop_tasks(entry).await;
                self.start_tasks(name, entry);
            }
            return Ok(false);
        }
        let ids: Vec<usize> = (0..entry.tasks.len())
            .filter(|id| {
                !only_failed
                    || status
                        .as_ref()
                        .and_then(|s| s.tasks.get(id))
                        .is_some_and(|t| t.state == State::Failed)
            })
            .collect();
        if connector_failed || (!only_failed && entry.tasks.is_empty()) {
            self.stop_tasks(entry).await;
            self.start_tasks(name, entry);
            return Ok(true);
        }
        for id in &ids {
            self.shared
                .status
                .set_task(name, *id, State::Restarting, None);
        }
        for id in ids {
            self.restart_task_in(name, entry, id).await;
        }
        Ok(true)
    }

    pub(crate) async fn restart_task_in(&self, name: &str, entry: &mut ConnectorEntry, id: usize) {
        if let Some(h) = entry.tasks.get_mut(id).and_then(Option::take) {
            self.stop_task(h).await;
        }
        if let Some(tc) = entry.task_configs.get(id).cloned() {
            let handle = self.spawn_task(name, id, entry, &tc);
            if let Some(slot) = entry.tasks.get_mut(id) {
                *slot = Some(handle);
            }
        }
    }

    /// `POST /connectors/{n}/tasks/{t}/restart`.
    pub async fn restart_task(&self, name: &str, id: usize) -> Result<(), WorkerError> {
        self.restart_task_from(name, id, false).await
    }

    /// `POST /connectors/{n}/tasks` (internal, distributed mode only).
    pub async fn put_task_configs(
        &self,
        name: &str,
        configs: TaskConfigs,
    ) -> Result<(), WorkerError> {
        match self.cluster.get() {
            Some(cluster) => cluster.write_task_configs(self, name, configs).await,
            None => Err(WorkerError::NotFound("HTTP 404 Not Found".into())),
        }
    }

    /// A task restart; `forwarded`: another worker sent it here, so it is never sent on.
    pub(crate) async fn restart_task_from(
        &self,
        name: &str,
        id: usize,
        forwarded: bool,
    ) -> Result<(), WorkerError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        if id >= entry.tasks.len() {
            return Err(WorkerError::NotFound(format!("Task {name}-{id} not found")));
        }
        if let Some(cluster) = self.cluster.get()
            && entry.tasks[id].is_none()
        {
            if forwarded {
                return Err(WorkerError::Conflict(
                    crate::distributed::CONFLICTING.into(),
                ));
            }
            // Another worker runs it: ask that worker.
            drop(connectors);
            return cluster.restart_remote_task(self, name, id).await;
        }
        self.restart_task_in(name, entry, id).await;
        Ok(())
    }

    /// `GET /connectors/{n}/topics`.
    pub async fn active_topics(&self, name: &str) -> Result<Vec<String>, WorkerError> {
        if !self.connectors.lock().await.contains_key(name) {
            return Err(WorkerError::not_found(name));
        }
        let topics = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
        Ok(topics
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// `PUT /connectors/{n}/topics/reset`.
    pub async fn reset_topics(&self, name: &str) -> Result<(), WorkerError> {
        if !self.connectors.lock().await.contains_key(name) {
            return Err(WorkerError::not_found(name));
        }
        let removed = self
            .shared
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        for topic in removed.into_iter().flatten() {
            self.shared
                .status
                .publish_raw(format!("topic-{topic}-connector-{name}"), None);
        }
        Ok(())
    }

    /// `GET /connectors/{n}/offsets`.
    pub async fn offsets(&self, name: &str) -> Result<Json, WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        let offsets: Vec<Json> = match entry.plugin.connector {
            Connector::Source(_) => self
                .shared
                .offsets
                .connector_offsets(name)
                .into_iter()
                .map(|(p, o)| json!({"partition": p, "offset": o}))
                .collect(),
            Connector::Sink(_) => {
                let committed = async {
                    let admin = Admin::connect(&self.shared.config.bootstrap_servers).await?;
                    admin.committed_offsets(&format!("connect-{name}")).await
                }
                .await
                .map_err(|e| {
                    WorkerError::Internal(format!("Failed to retrieve consumer group offsets: {e}"))
                })?;
                committed
                    .into_iter()
                    .map(|((t, p), o)| {
                        json!({"partition": {"kafka_topic": t, "kafka_partition": p}, "offset": {"kafka_offset": o}})
                    })
                    .collect()
            }
        };
        Ok(json!({"offsets": offsets}))
    }

    fn require_stopped(name: &str, entry: &ConnectorEntry) -> Result<(), WorkerError> {
        if entry.target != TargetState::Stopped {
            return Err(WorkerError::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )));
        }
        Ok(())
    }

    /// `PATCH /connectors/{n}/offsets` (the connector must be STOPPED).
    pub async fn alter_offsets(&self, name: &str, body: &Json) -> Result<(), WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        Self::require_stopped(name, entry)?;
        let list = body
            .get("offsets")
            .and_then(Json::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                WorkerError::BadRequest(
                    "Partitions / offsets need to be provided for an alter offsets request".into(),
                )
            })?;
        match entry.plugin.connector {
            Connector::Source(_) => {
                for item in list {
                    let partition =
                        item.get("partition")
                            .and_then(Json::as_object)
                            .ok_or_else(|| {
                                WorkerError::BadRequest(
                                    "Source partitions must be JSON objects".into(),
                                )
                            })?;
                    match item.get("offset") {
                        Some(Json::Object(o)) => {
                            self.shared.offsets.put(name, partition.clone(), o.clone())
                        }
                        Some(Json::Null) | None => self.shared.offsets.remove(name, partition),
                        Some(_) => {
                            return Err(WorkerError::BadRequest(
                                "Source offsets must be JSON objects or null".into(),
                            ));
                        }
                    }
                }
                self.flush_offsets().await
            }
            Connector::Sink(_) => {
                let mut offsets = BTreeMap::new();
                for item in list {
                    let p = &item["partition"];
                    let (Some(topic), Some(partition)) =
                        (p["kafka_topic"].as_str(), p["kafka_partition"].as_i64())
                    else {
                        return Err(WorkerError::BadRequest(
                            "Sink partitions need kafka_topic (string) and kafka_partition (integer)".into(),
                        ));
                    };
                    let partition = i32::try_from(partition).map_err(|_| {
                        WorkerError::BadRequest(format!("Invalid kafka_partition {partition}"))
                    })?;
                    let offset = item["offset"]["kafka_offset"]
                        .as_i64()
                        .filter(|o| *o >= 0)
                        .ok_or_else(|| {
                            WorkerError::BadRequest(
                                "Sink offsets need a non-negative kafka_offset".into(),
                            )
                        })?;
                    offsets.insert((topic.to_string(), partition), offset);
                }
                let admin = Admin::connect(&self.shared.config.bootstrap_servers)
                    .await
                    .map_err(|e| WorkerError::Internal(e.to_string()))?;
                admin
                    .alter_group_offsets(&format!("connect-{name}"), &offsets)
                    .await
                    .map_err(|e| {
                        WorkerError::Internal(format!(
                            "Failed to alter consumer group offsets: {e}"
                        ))
                    })
            }
        }
    }

    /// `DELETE /connectors/{n}/offsets` (the connector must be STOPPED).
    pub async fn reset_offsets(&self, name: &str) -> Result<(), WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::not_found(name))?;
        Self::require_stopped(name, entry)?;
        match entry.plugin.connector {
            Connector::Source(_) => {
                self.shared.offsets.clear_connector(name);
                self.flush_offsets().await
            }
            Connector::Sink(_) => {
                let admin = Admin::connect(&self.shared.config.bootstrap_servers)
                    .await
                    .map_err(|e| WorkerError::Internal(e.to_string()))?;
                match admin.delete_group(&format!("connect-{name}")).await {
                    Ok(()) => Ok(()),
                    // GROUP_ID_NOT_FOUND: nothing was committed.
                    Err(fjord_client::Error::Broker { code, .. }) if code.code() == 69 => Ok(()),
                    Err(e) => Err(WorkerError::Internal(format!(
                        "Failed to reset consumer group offsets: {e}"
                    ))),
                }
            }
        }
    }

    async fn flush_offsets(&self) -> Result<(), WorkerError> {
        self.shared
            .offsets
            .save()
            .await
            .map_err(|e| WorkerError::Internal(e.chain()))
    }

    /// Stops every task, saves offsets and closes the producer (distributed: stops taking
    /// part in rebalances first, and leaves the group once the tasks are stopped).
    pub async fn shutdown(&self) {
        let member = match self.cluster.get() {
            Some(cluster) => cluster.stop().await,
            None => None,
        };
        let mut connectors = self.connectors.lock().await;
        for entry in connectors.values_mut() {
            self.stop_tasks(entry).await;
        }
        drop(connectors);
        if let Err(e) = self.flush_offsets().await {
            tracing::warn!(error = %e, "cannot save source offsets at shutdown");
        }
        if let Some(mut member) = member
            && let Err(e) = member.leave().await
        {
            tracing::warn!(error = %e, "leaving the Connect group");
        }
        self.shared.producer.close().await;
    }
}
