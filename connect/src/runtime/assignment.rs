//! Distributed mode: bringing this worker's connectors and tasks in line with the config topic
//! ([`Worker::sync_entries`]) and with the group's assignment ([`Worker::reconcile`]).
//!
//! Every worker knows every connector (for the REST API's reads) but runs only the tasks it is
//! assigned. The worker assigned a connector reports the connector's status and computes its
//! task configs; when they differ from the committed ones it sends them to the leader, which
//! writes them to the config topic (and the commit starts a rebalance).

use std::collections::{BTreeMap, BTreeSet};

use super::errors::trace;
use super::status::State;
use super::worker::{ConnectorEntry, TargetState, Worker};
use crate::config::ConnectorConfig;
use crate::distributed::{Assignment, ConfigSnapshot};
use crate::plugin::{Connector, TaskConfigs, find_connector};

/// Task configs an owned connector wants committed.
pub(crate) type TaskConfigUpdate = (String, TaskConfigs);

impl Worker {
    /// Adds, updates and removes connector entries to match the snapshot; pauses and resumes
    /// local tasks on target-state changes. Tasks are started and stopped by
    /// [`Worker::reconcile`] after the next rebalance.
    pub(crate) async fn sync_entries(&self, snapshot: &ConfigSnapshot) -> Vec<TaskConfigUpdate> {
        let mut connectors = self.connectors.lock().await;
        let gone: Vec<String> = connectors
            .keys()
            .filter(|n| !snapshot.connectors.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(mut entry) = connectors.remove(&name) {
                self.stop_tasks(&mut entry).await;
            }
            self.shared.status.remove(&name);
            self.shared
                .topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            self.owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            tracing::info!(connector = %name, "connector deleted");
        }
        for (name, values) in &snapshot.connectors {
            let class = values.get("connector.class").cloned().unwrap_or_default();
            let Some(plugin) = find_connector(&class) else {
                tracing::warn!(connector = %name, %class, "the config topic names an unknown connector class; skipped");
                continue;
            };
            let config = match ConnectorConfig::parse(values.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(connector = %name, error = %e.chain(), "invalid connector config in the config topic; skipped");
                    continue;
                }
            };
            let target = snapshot.target(name);
            let task_configs = snapshot.tasks.get(name).cloned().unwrap_or_default();
            let type_ = plugin.connector.type_name();
            match connectors.get_mut(name) {
                Some(entry) => {
                    let before = entry.target;
                    entry.config = config;
                    entry.plugin = plugin;
                    entry.task_configs = task_configs;
                    entry.target = target;
                    if before != target && target != TargetState::Stopped {
                        let paused = target == TargetState::Paused;
                        for h in entry.tasks.iter().flatten() {
                            let _ = h.paused.send(paused);
                        }
                    }
                }
                None => {
                    connectors.insert(
                        name.clone(),
                        ConnectorEntry {
                            config,
                            plugin,
                            target,
                            task_configs,
                            tasks: Vec::new(),
                        },
                    );
                }
            }
            self.shared.status.set_type(name, type_);
        }
        self.run_owned(&connectors, None)
    }

    /// The tasks running here (reported when joining the group).
    pub(crate) async fn running_tasks(&self) -> Vec<(String, usize)> {
        let connectors = self.connectors.lock().await;
        connectors
            .iter()
            .flat_map(|(n, e)| {
                e.tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.is_some())
                    .map(move |(id, _)| (n.clone(), id))
            })
            .collect()
    }

    /// Starts the tasks assigned here and stops the others (and those whose configs changed).
    pub(crate) async fn reconcile(&self, assignment: &Assignment) -> Vec<TaskConfigUpdate> {
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) =
            assignment.connectors.iter().cloned().collect();
        let assigned: BTreeSet<(String, usize)> = assignment.tasks.iter().cloned().collect();
        let mut connectors = self.connectors.lock().await;
        for (name, entry) in connectors.iter_mut() {
            let count = entry.task_configs.len();
            let mut to_stop = Vec::new();
            for id in 0..entry.tasks.len() {
                let keep = id < count
                    && entry.target != TargetState::Stopped
                    && assigned.contains(&(name.clone(), id))
                    && entry.tasks[id].as_ref().is_some_and(|h| {
                        h.task_config == entry.task_configs[id]
                            && h.connector_config == entry.config.values
                    });
                if !keep && let Some(h) = entry.tasks[id].take() {
                    to_stop.push(h);
                }
            }
            for h in to_stop {
                self.stop_task(h).await;
            }
            entry.tasks.truncate(count);
            entry.tasks.resize_with(count, || None);
            if entry.target == TargetState::Stopped {
                continue;
            }
            for id in 0..count {
                if entry.tasks[id].is_none() && assigned.contains(&(name.clone(), id)) {
                    let task_config = entry.task_configs[id].clone();
                    let handle = self.spawn_task(name, id, entry, &task_config);
                    entry.tasks[id] = Some(handle);
                }
            }
        }
        let running: Vec<String> = connectors
            .iter()
            .flat_map(|(n, e)| {
                e.tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.is_some())
                    .map(move |(id, _)| format!("{n}-{id}"))
            })
            .collect();
        tracing::info!(connectors = ?assignment.connectors, tasks = ?running, "assignment applied");
        self.run_owned(&connectors, None)
    }

    /// `restart-connector-{name}`: restarts the connector if it is assigned here, and the
    /// tasks of it that run here (all or only the failed ones).
    pub(crate) async fn restart_local(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Vec<TaskConfigUpdate> {
        let mut connectors = self.connectors.lock().await;
        let status = self.shared.status.connector(name);
        let mut updates = Vec::new();
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name);
        let connector_failed = status.as_ref().is_some_and(|s| s.state == State::Failed);
        if owned && (!only_failed || connector_failed) {
            updates = self.run_owned(&connectors, Some(name));
        }
        if !include_tasks {
            return updates;
        }
        let Some(entry) = connectors.get_mut(name) else {
            return updates;
        };
        let ids: Vec<usize> = (0..entry.tasks.len())
            .filter(|id| entry.tasks[*id].is_some())
            .filter(|id| {
                !only_failed
                    || status
                        .as_ref()
                        .and_then(|s| s.tasks.get(id))
                        .is_some_and(|t| t.state == State::Failed)
            })
            .collect();
        for id in &ids {
            self.shared
                .status
                .set_task(name, *id, State::Restarting, None);
        }
        for id in ids {
            self.restart_task_in(name, entry, id).await;
        }
        updates
    }

    /// Runs the connectors assigned here (all, or just `force`, which is re-run even when its
    /// status is already current): publishes their status and returns task configs that
    /// differ from the committed ones.
    fn run_owned(
        &self,
        connectors: &BTreeMap<String, ConnectorEntry>,
        force: Option<&str>,
    ) -> Vec<TaskConfigUpdate> {
        let owned: Vec<String> = match force {
            Some(name) => vec![name.to_string()],
            None => self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        };
        let status = &self.shared.status;
        let mut updates = Vec::new();
        for name in owned {
            let Some(entry) = connectors.get(&name) else {
                continue;
            };
            let type_ = entry.plugin.connector.type_name();
            let current = status.connector(&name);
            let is = |state: State| {
                force.is_none()
                    && current
                        .as_ref()
                        .is_some_and(|c| c.state == state && c.worker_id == status.worker_id())
            };
            if entry.target == TargetState::Stopped {
                if !is(State::Stopped) {
                    status.set_connector(&name, type_, State::Stopped);
                }
                continue;
            }
            let max = entry.config.tasks_max;
            let planned = match &entry.plugin.connector {
                Connector::Source(c) => c.task_configs(&entry.config, max),
                Connector::Sink(c) => c.task_configs(&entry.config, max),
            };
            match planned {
                Err(e) => {
                    if !is(State::Failed) {
                        tracing::error!(connector = %name, error = %e.chain(), "connector failed");
                        status.fail_connector(&name, type_, trace(&e));
                    }
                }
                Ok(mut task_configs) => {
                    task_configs.truncate(max);
                    let state = if entry.target == TargetState::Paused {
                        State::Paused
                    } else {
                        State::Running
                    };
                    if !is(state) {
                        status.set_connector(&name, type_, state);
                    }
                    status.truncate_tasks(&name, entry.task_configs.len());
                    if task_configs != entry.task_configs {
                        updates.push((name.clone(), task_configs));
                    }
                }
            }
        }
        updates
    }
}
