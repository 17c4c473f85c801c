//! Connector and task statuses as the REST API reports them.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value as Json, json};

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
}

/// One task's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub state: State,
    /// The error trace of a FAILED task.
    pub trace: Option<String>,
}

/// A connector's status and its tasks'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub state: State,
    pub trace: Option<String>,
    pub type_: &'static str,
    pub tasks: BTreeMap<usize, TaskStatus>,
}

/// Every connector's status, shared by the worker, the task loops and the REST API.
#[derive(Debug)]
pub struct StatusBoard {
    worker_id: String,
    connectors: Mutex<BTreeMap<String, ConnectorStatus>>,
}

impl StatusBoard {
    pub fn new(worker_id: impl Into<String>) -> Self {
        StatusBoard {
            worker_id: worker_id.into(),
            connectors: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ConnectorStatus>> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub(crate) fn set_connector(&self, name: &str, type_: &'static str, state: State) {
        let mut map = self.lock();
        let entry = map
            .entry(name.to_string())
            .or_insert_with(|| ConnectorStatus {
                state,
                trace: None,
                type_,
                tasks: BTreeMap::new(),
            });
        entry.state = state;
        entry.trace = None;
        if state == State::Stopped {
            entry.tasks.clear();
        }
    }

    /// Marks a connector FAILED with the error's trace.
    pub(crate) fn fail_connector(&self, name: &str, type_: &'static str, trace: String) {
        self.set_connector(name, type_, State::Failed);
        if let Some(c) = self.lock().get_mut(name) {
            c.trace = Some(trace);
        }
    }

    pub(crate) fn set_task(&self, name: &str, task: usize, state: State, trace: Option<String>) {
        if let Some(c) = self.lock().get_mut(name) {
            c.tasks.insert(task, TaskStatus { state, trace });
        }
    }

    /// Keeps tasks `0..count` only.
    pub(crate) fn truncate_tasks(&self, name: &str, count: usize) {
        if let Some(c) = self.lock().get_mut(name) {
            c.tasks.retain(|id, _| *id < count);
        }
    }

    pub(crate) fn remove(&self, name: &str) {
        self.lock().remove(name);
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
        let c = self.connector(name)?;
        let mut connector = json!({"state": c.state.name(), "worker_id": self.worker_id});
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
        let mut j = json!({"id": id, "state": t.state.name(), "worker_id": self.worker_id});
        if let Some(trace) = &t.trace {
            j["trace"] = json!(trace);
        }
        j
    }
}
