//! Connector and task statuses as the REST API reports them.
//!
//! Standalone, the board holds this worker's statuses. Distributed, it is the cluster's view:
//! local changes are also published to the status topic (Kafka Connect's `status-connector-{n}`
//! and `status-task-{n}-{t}` records, `{"state","trace","worker_id","generation"}`), and the
//! other workers' records are applied as they are read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

/// A status-topic record: key and value (`None` is a tombstone).
pub(crate) type StatusRecord = (String, Option<Vec<u8>>);

/// A connector's or task's state, named as in Kafka Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Failed => "FAILED",
            State::Restarting => "RESTARTING",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "UNASSIGNED" => State::Unassigned,
            "RUNNING" => State::Running,
            "PAUSED" => State::Paused,
            "STOPPED" => State::Stopped,
            "FAILED" => State::Failed,
            "RESTARTING" => State::Restarting,
            _ => return None,
        })
    }
}

/// One task's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub state: State,
    /// The error trace of a FAILED task.
    pub trace: Option<String>,
    /// The worker that runs it.
    pub worker_id: String,
}

/// A connector's status and its tasks'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub state: State,
    pub trace: Option<String>,
    pub type_: &'static str,
    pub worker_id: String,
    pub tasks: BTreeMap<usize, TaskStatus>,
}

/// Every connector's status, shared by the worker, the task loops and the REST API.
#[derive(Debug)]
pub struct StatusBoard {
    worker_id: String,
    connectors: Mutex<BTreeMap<String, ConnectorStatus>>,
    /// Each connector's type (`source`/`sink`), known from its config, for statuses that
    /// arrive from other workers.
    types: Mutex<BTreeMap<String, &'static str>>,
    /// Distributed mode: where local changes go (the status topic writer).
    publisher: OnceLock<mpsc::Sender<StatusRecord>>,
    generation: AtomicI32,
}

fn connector_key(name: &str) -> String {
    format!("status-connector-{name}")
}

fn task_key(name: &str, task: usize) -> String {
    format!("status-task-{name}-{task}")
}

impl StatusBoard {
    pub fn new(worker_id: impl Into<String>) -> Self {
        StatusBoard {
            worker_id: worker_id.into(),
            connectors: Mutex::new(BTreeMap::new()),
            types: Mutex::new(BTreeMap::new()),
            publisher: OnceLock::new(),
            generation: AtomicI32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ConnectorStatus>> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Distributed mode: publish local changes to this channel.
    pub(crate) fn set_publisher(&self, tx: mpsc::Sender<StatusRecord>) {
        let _ = self.publisher.set(tx);
    }

    pub(crate) fn set_generation(&self, generation: i32) {
        self.generation.store(generation, Ordering::Relaxed);
    }

    fn publish(&self, key: String, state: Option<(State, Option<&str>)>) {
        let Some(tx) = self.publisher.get() else {
            return;
        };
        let value = state.map(|(s, trace)| {
            json!({
                "state": s.name(),
                "trace": trace,
                "worker_id": self.worker_id,
                "generation": self.generation.load(Ordering::Relaxed),
            })
            .to_string()
            .into_bytes()
        });
        if tx.try_send((key, value)).is_err() {
            tracing::warn!("the status topic writer is behind; a status update was not published");
        }
    }

    /// Publishes a raw record (active topics) in distributed mode.
    pub(crate) fn publish_raw(&self, key: String, value: Option<Vec<u8>>) {
        if let Some(tx) = self.publisher.get()
            && tx.try_send((key, value)).is_err()
        {
            tracing::warn!("the status topic writer is behind; a record was not published");
        }
    }

    /// Sets the connector's type (from its config) without changing its state.
    pub(crate) fn set_type(&self, name: &str, type_: &'static str) {
        self.types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), type_);
        if let Some(c) = self.lock().get_mut(name) {
            c.type_ = type_;
        }
    }

    pub(crate) fn set_connector(&self, name: &str, type_: &'static str, state: State) {
        self.set_connector_traced(name, type_, state, None);
    }

    fn set_connector_traced(
        &self,
        name: &str,
        type_: &'static str,
        state: State,
        trace: Option<String>,
    ) {
        let mut cleared = Vec::new();
        {
            let mut map = self.lock();
            let entry = map
                .entry(name.to_string())
                .or_insert_with(|| ConnectorStatus {
                    state,
                    trace: None,
                    type_,
                    worker_id: self.worker_id.clone(),
                    tasks: BTreeMap::new(),
                });
            entry.state = state;
            entry.type_ = type_;
            entry.trace.clone_from(&trace);
            entry.worker_id.clone_from(&self.worker_id);
            if state == State::Stopped {
                cleared = std::mem::take(&mut entry.tasks).into_keys().collect();
            }
        }
        self.publish(connector_key(name), Some((state, trace.as_deref())));
        for t in cleared {
            self.publish(task_key(name, t), None);
        }
    }

    /// Marks a connector FAILED with the error's trace.
    pub(crate) fn fail_connector(&self, name: &str, type_: &'static str, trace: String) {
        self.set_connector_traced(name, type_, State::Failed, Some(trace));
    }

    pub(crate) fn set_task(&self, name: &str, task: usize, state: State, trace: Option<String>) {
        {
            let mut map = self.lock();
            // Standalone, a task of a deleted connector leaves no trace; distributed, the
            // connector's status may not have been read yet.
            if self.publisher.get().is_none() && !map.contains_key(name) {
                return;
            }
            let entry = map
                .entry(name.to_string())
                .or_insert_with(|| ConnectorStatus {
                    state: State::Unassigned,
                    trace: None,
                    type_: "",
                    worker_id: self.worker_id.clone(),
                    tasks: BTreeMap::new(),
                });
            entry.tasks.insert(
                task,
                TaskStatus {
                    state,
                    trace: trace.clone(),
                    worker_id: self.worker_id.clone(),
                },
            );
        }
        self.publish(task_key(name, task), Some((state, trace.as_deref())));
    }

    /// Shows a task in `state` here without publishing it (the worker that runs the task
    /// publishes its real state).
    pub(crate) fn set_task_remote_view(&self, name: &str, task: usize, state: State) {
        if let Some(t) = self
            .lock()
            .get_mut(name)
            .and_then(|c| c.tasks.get_mut(&task))
        {
            t.state = state;
            t.trace = None;
        }
    }

    /// Keeps tasks `0..count` only.
    pub(crate) fn truncate_tasks(&self, name: &str, count: usize) {
        let mut removed = Vec::new();
        if let Some(c) = self.lock().get_mut(name) {
            removed = c.tasks.keys().copied().filter(|id| *id >= count).collect();
            c.tasks.retain(|id, _| *id < count);
        }
        for t in removed {
            self.publish(task_key(name, t), None);
        }
    }

    pub(crate) fn remove(&self, name: &str) {
        self.types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let removed = self.lock().remove(name);
        if let Some(c) = removed {
            self.publish(connector_key(name), None);
            for t in c.tasks.keys() {
                self.publish(task_key(name, *t), None);
            }
        }
    }

    /// Applies another worker's status record (distributed mode); our own are already here.
    pub(crate) fn apply_remote(&self, key: &str, value: Option<&[u8]>) {
        let parsed: Option<Json> = value.and_then(|v| serde_json::from_slice(v).ok());
        let status = parsed.as_ref().and_then(|j| {
            let state = State::parse(j.get("state")?.as_str()?)?;
            let worker = j.get("worker_id")?.as_str()?.to_string();
            let trace = j.get("trace").and_then(Json::as_str).map(str::to_string);
            Some((state, trace, worker))
        });
        if let Some((_, _, worker)) = &status
            && *worker == self.worker_id
        {
            return;
        }
        let mut map = self.lock();
        if let Some(name) = key.strip_prefix("status-connector-") {
            match status {
                Some((state, trace, worker_id)) => {
                    let entry = map
                        .entry(name.to_string())
                        .or_insert_with(|| ConnectorStatus {
                            state,
                            trace: None,
                            type_: "",
                            worker_id: worker_id.clone(),
                            tasks: BTreeMap::new(),
                        });
                    entry.state = state;
                    entry.trace = trace;
                    entry.worker_id = worker_id;
                    if state == State::Stopped {
                        entry.tasks.clear();
                    }
                }
                None => {
                    map.remove(name);
                }
            }
        } else if let Some(rest) = key.strip_prefix("status-task-")
            && let Some((name, id)) = rest.rsplit_once('-')
            && let Ok(id) = id.parse::<usize>()
        {
            match status {
                Some((state, trace, worker_id)) => {
                    let entry = map
                        .entry(name.to_string())
                        .or_insert_with(|| ConnectorStatus {
                            state: State::Unassigned,
                            trace: None,
                            type_: "",
                            worker_id: worker_id.clone(),
                            tasks: BTreeMap::new(),
                        });
                    entry.tasks.insert(
                        id,
                        TaskStatus {
                            state,
                            trace,
                            worker_id,
                        },
                    );
                }
                None => {
                    if let Some(c) = map.get_mut(name) {
                        c.tasks.remove(&id);
                    }
                }
            }
        }
    }

    pub fn connector(&self, name: &str) -> Option<ConnectorStatus> {
        self.lock().get(name).cloned()
    }

    pub fn task(&self, name: &str, task: usize) -> Option<TaskStatus> {
        self.lock()
            .get(name)
            .and_then(|c| c.tasks.get(&task).cloned())
    }

    /// `GET /connectors/{name}/status`.
    pub fn status_json(&self, name: &str) -> Option<Json> {
        let mut c = self.connector(name)?;
        if c.type_.is_empty() {
            c.type_ = self
                .types
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .copied()
                .unwrap_or("unknown");
        }
        let mut connector = json!({"state": c.state.name(), "worker_id": c.worker_id});
        if let Some(t) = &c.trace {
            connector["trace"] = json!(t);
        }
        let tasks: Vec<Json> = c
            .tasks
            .iter()
            .map(|(id, t)| self.task_json(*id, t))
            .collect();
        Some(json!({"name": name, "connector": connector, "tasks": tasks, "type": c.type_}))
    }

    /// A task's status object.
    pub fn task_json(&self, id: usize, t: &TaskStatus) -> Json {
        let mut j = json!({"id": id, "state": t.state.name(), "worker_id": t.worker_id});
        if let Some(trace) = &t.trace {
            j["trace"] = json!(trace);
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_changes_are_published_in_kafkas_format_and_remote_ones_applied() {
        let board = StatusBoard::new("a:1");
        let (tx, mut rx) = mpsc::channel(16);
        board.set_publisher(tx);
        board.set_generation(4);
        board.set_connector("c", "source", State::Running);
        board.set_task("c", 0, State::Failed, Some("boom".into()));
        let (key, value) = rx.try_recv().unwrap();
        assert_eq!(key, "status-connector-c");
        let v: Json = serde_json::from_slice(&value.unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"state": "RUNNING", "trace": null, "worker_id": "a:1", "generation": 4})
        );
        let (key, value) = rx.try_recv().unwrap();
        assert_eq!(key, "status-task-c-0");
        assert_eq!(
            serde_json::from_slice::<Json>(&value.unwrap()).unwrap()["trace"],
            "boom"
        );

        // Another worker's task; our own echo is ignored.
        board.apply_remote(
            "status-task-c-1",
            Some(br#"{"state":"RUNNING","trace":null,"worker_id":"b:2","generation":4}"#),
        );
        board.apply_remote(
            "status-task-c-0",
            Some(br#"{"state":"RUNNING","trace":null,"worker_id":"a:1","generation":3}"#),
        );
        let s = board.status_json("c").unwrap();
        assert_eq!(s["tasks"][0]["state"], "FAILED");
        assert_eq!(s["tasks"][1]["worker_id"], "b:2");
        board.apply_remote("status-task-c-1", None);
        assert!(board.task("c", 1).is_none());

        // Removing publishes tombstones for the connector and its tasks.
        board.remove("c");
        let tombstones: Vec<StatusRecord> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(tombstones.contains(&("status-connector-c".to_string(), None)));
        assert!(tombstones.contains(&("status-task-c-0".to_string(), None)));
    }
}
