//! The `connect-configs` topic in Kafka Connect's record formats (JSON without schemas):
//!
//! | key | value |
//! |---|---|
//! | `connector-{name}` | `{"properties": {..}}`; null deletes the connector |
//! | `task-{name}-{n}` | `{"properties": {..}}` (takes effect with the next commit) |
//! | `commit-{name}` | `{"tasks": N}`: tasks 0..N written before it become the connector's tasks |
//! | `target-state-{name}` | `{"state": "STARTED"\|"PAUSED", "state.v2": "STARTED"\|"PAUSED"\|"STOPPED"}` |
//! | `restart-connector-{name}` | `{"include-tasks": bool, "only-failed": bool}` |
//!
//! [`ConfigSnapshot`] is what a worker has read so far.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::runtime::TargetState;

/// One connector's config and committed task configs.
pub(crate) type Props = BTreeMap<String, String>;

/// A parsed config record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConfigRecord {
    Connector(String, Option<Props>),
    Task(String, usize, Option<Props>),
    Commit(String, usize),
    Target(String, Option<TargetState>),
    Restart {
        connector: String,
        include_tasks: bool,
        only_failed: bool,
    },
    /// A key this worker does not handle (e.g. `session-key`); ignored.
    Other,
}

/// What applying a record changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    /// Connectors or committed task configs changed: the group must rebalance.
    Structural,
    /// A connector's target state changed (applied without a rebalance).
    Target(String),
    /// A restart was requested.
    Restart {
        connector: String,
        include_tasks: bool,
        only_failed: bool,
    },
    Nothing,
}

fn props(value: &Json) -> Option<Props> {
    let object = value.get("properties")?.as_object()?;
    Some(
        object
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn target_name(t: TargetState) -> &'static str {
    match t {
        TargetState::Started => "STARTED",
        TargetState::Paused => "PAUSED",
        TargetState::Stopped => "STOPPED",
    }
}

impl ConfigRecord {
    /// Parses a record; values that are not JSON count as null.
    pub(crate) fn parse(key: &str, value: Option<&[u8]>) -> Self {
        let json: Option<Json> = value.and_then(|v| serde_json::from_slice(v).ok());
        let json = json.filter(|j| !j.is_null());
        if let Some(name) = key.strip_prefix("connector-") {
            return ConfigRecord::Connector(name.to_string(), json.as_ref().and_then(props));
        }
        if let Some(name) = key.strip_prefix("commit-") {
            let tasks = json
                .as_ref()
                .and_then(|j| j.get("tasks"))
                .and_then(Json::as_u64)
                .unwrap_or(0);
            return ConfigRecord::Commit(name.to_string(), tasks as usize);
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            let state = json.as_ref().and_then(|j| {
                j.get("state.v2")
                    .or_else(|| j.get("state"))
                    .and_then(Json::as_str)
                    .map(str::to_string)
            });
            let target = match state.as_deref() {
                Some("PAUSED") => Some(TargetState::Paused),
                Some("STOPPED") => Some(TargetState::Stopped),
                Some(_) => Some(TargetState::Started),
                None => None,
            };
            return ConfigRecord::Target(name.to_string(), target);
        }
        if let Some(name) = key.strip_prefix("restart-connector-") {
            let flag = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k))
                    .and_then(Json::as_bool)
                    .unwrap_or(false)
            };
            return ConfigRecord::Restart {
                connector: name.to_string(),
                include_tasks: flag("include-tasks"),
                only_failed: flag("only-failed"),
            };
        }
        if let Some(rest) = key.strip_prefix("task-")
            && let Some((name, n)) = rest.rsplit_once('-')
            && let Ok(n) = n.parse::<usize>()
        {
            return ConfigRecord::Task(name.to_string(), n, json.as_ref().and_then(props));
        }
        ConfigRecord::Other
    }

    /// The record's key and value bytes (`None` for a tombstone).
    pub(crate) fn encode(&self) -> (String, Option<Vec<u8>>) {
        let bytes = |j: Json| Some(j.to_string().into_bytes());
        match self {
            ConfigRecord::Connector(n, p) => (
                format!("connector-{n}"),
                p.as_ref().and_then(|p| bytes(json!({"properties": p}))),
            ),
            ConfigRecord::Task(n, t, p) => (
                format!("task-{n}-{t}"),
                p.as_ref().and_then(|p| bytes(json!({"properties": p}))),
            ),
            ConfigRecord::Commit(n, tasks) => {
                (format!("commit-{n}"), bytes(json!({"tasks": tasks})))
            }
            ConfigRecord::Target(n, t) => (
                format!("target-state-{n}"),
                t.and_then(|t| {
                    // Workers that predate STOPPED read `state`: PAUSED is the closest.
                    let v1 = if t == TargetState::Stopped {
                        "PAUSED"
                    } else {
                        target_name(t)
                    };
                    bytes(json!({"state": v1, "state.v2": target_name(t)}))
                }),
            ),
            ConfigRecord::Restart {
                connector,
                include_tasks,
                only_failed,
            } => (
                format!("restart-connector-{connector}"),
                bytes(json!({"include-tasks": include_tasks, "only-failed": only_failed})),
            ),
            ConfigRecord::Other => (String::new(), None),
        }
    }
}

/// Everything read from the config topic so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigSnapshot {
    /// The next offset to read.
    pub(crate) offset: i64,
    pub(crate) connectors: BTreeMap<String, Props>,
    pub(crate) targets: BTreeMap<String, TargetState>,
    /// Committed task configs.
    pub(crate) tasks: BTreeMap<String, Vec<Props>>,
    /// Task configs written but not committed yet.
    pending: BTreeMap<String, BTreeMap<usize, Props>>,
}

impl ConfigSnapshot {
    pub(crate) fn target(&self, name: &str) -> TargetState {
        self.targets
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }

    /// Connectors with their committed task counts, sorted by name.
    pub(crate) fn task_counts(&self) -> Vec<(String, usize)> {
        self.connectors
            .keys()
            .map(|n| (n.clone(), self.tasks.get(n).map_or(0, Vec::len)))
            .collect()
    }

    /// Applies the record at `offset`.
    pub(crate) fn apply(&mut self, offset: i64, record: ConfigRecord) -> ConfigChange {
        self.offset = self.offset.max(offset + 1);
        match record {
            ConfigRecord::Connector(name, Some(p)) => {
                if self.connectors.get(&name) == Some(&p) {
                    return ConfigChange::Nothing;
                }
                self.connectors.insert(name, p);
                ConfigChange::Structural
            }
            ConfigRecord::Connector(name, None) => {
                let existed = self.connectors.remove(&name).is_some();
                self.targets.remove(&name);
                self.tasks.remove(&name);
                self.pending.remove(&name);
                if existed {
                    ConfigChange::Structural
                } else {
                    ConfigChange::Nothing
                }
            }
            ConfigRecord::Task(name, n, Some(p)) => {
                self.pending.entry(name).or_default().insert(n, p);
                ConfigChange::Nothing
            }
            ConfigRecord::Task(name, n, None) => {
                if let Some(p) = self.pending.get_mut(&name) {
                    p.remove(&n);
                }
                ConfigChange::Nothing
            }
            ConfigRecord::Commit(name, count) => {
                let pending = self.pending.remove(&name).unwrap_or_default();
                let mut tasks = Vec::with_capacity(count);
                for n in 0..count {
                    match pending.get(&n) {
                        Some(p) => tasks.push(p.clone()),
                        None => match self.tasks.get(&name).and_then(|t| t.get(n)) {
                            // Kafka keeps the last committed config of a task not rewritten.
                            Some(p) => tasks.push(p.clone()),
                            None => {
                                tracing::warn!(connector = %name, task = n, "commit names a task config that was never written; ignored");
                                return ConfigChange::Nothing;
                            }
                        },
                    }
                }
                if self.tasks.get(&name) == Some(&tasks) {
                    return ConfigChange::Nothing;
                }
                self.tasks.insert(name, tasks);
                ConfigChange::Structural
            }
            ConfigRecord::Target(name, target) => {
                let before = self.target(&name);
                match target {
                    Some(t) => self.targets.insert(name.clone(), t),
                    None => self.targets.remove(&name),
                };
                if before == self.target(&name) {
                    ConfigChange::Nothing
                } else {
                    ConfigChange::Target(name)
                }
            }
            ConfigRecord::Restart {
                connector,
                include_tasks,
                only_failed,
            } => ConfigChange::Restart {
                connector,
                include_tasks,
                only_failed,
            },
            ConfigRecord::Other => ConfigChange::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn round_trip(r: ConfigRecord) -> ConfigRecord {
        let (key, value) = r.encode();
        ConfigRecord::parse(&key, value.as_deref())
    }

    #[test]
    fn records_use_kafka_connects_keys_and_values() {
        let (key, value) =
            ConfigRecord::Connector("my-conn".into(), Some(p(&[("a", "1")]))).encode();
        assert_eq!(key, "connector-my-conn");
        assert_eq!(
            serde_json::from_slice::<Json>(&value.unwrap()).unwrap(),
            json!({"properties": {"a": "1"}})
        );
        let (key, value) = ConfigRecord::Commit("c".into(), 2).encode();
        assert_eq!(
            (key.as_str(), value.unwrap()),
            ("commit-c", br#"{"tasks":2}"#.to_vec())
        );
        let (key, value) = ConfigRecord::Target("c".into(), Some(TargetState::Stopped)).encode();
        assert_eq!(key, "target-state-c");
        assert_eq!(
            serde_json::from_slice::<Json>(&value.unwrap()).unwrap(),
            json!({"state": "PAUSED", "state.v2": "STOPPED"})
        );
        // Names with dashes and task numbers parse back.
        let t = ConfigRecord::Task("a-b-c".into(), 12, Some(p(&[("x", "y")])));
        assert_eq!(round_trip(t.clone()), t);
        let r = ConfigRecord::Restart {
            connector: "c".into(),
            include_tasks: true,
            only_failed: false,
        };
        assert_eq!(round_trip(r.clone()), r);
        // Kafka's pre-STOPPED records have `state` only; non-string property values are kept.
        assert_eq!(
            ConfigRecord::parse("target-state-c", Some(br#"{"state":"PAUSED"}"#)),
            ConfigRecord::Target("c".into(), Some(TargetState::Paused))
        );
        assert_eq!(
            ConfigRecord::parse("connector-c", Some(br#"{"properties":{"n":3}}"#)),
            ConfigRecord::Connector("c".into(), Some(p(&[("n", "3")])))
        );
        assert_eq!(
            ConfigRecord::parse("session-key", Some(b"{}")),
            ConfigRecord::Other
        );
        assert_eq!(
            ConfigRecord::parse("connector-c", Some(b"not json")),
            ConfigRecord::Connector("c".into(), None)
        );
    }

    #[test]
    fn task_configs_take_effect_at_commit() {
        let mut s = ConfigSnapshot::default();
        let c = p(&[("connector.class", "FileStreamSource")]);
        assert_eq!(
            s.apply(0, ConfigRecord::Connector("c".into(), Some(c.clone()))),
            ConfigChange::Structural
        );
        assert_eq!(
            s.apply(1, ConfigRecord::Task("c".into(), 0, Some(p(&[("t", "0")])))),
            ConfigChange::Nothing
        );
        assert_eq!(s.task_counts(), vec![("c".to_string(), 0)]);
        assert_eq!(
            s.apply(2, ConfigRecord::Commit("c".into(), 1)),
            ConfigChange::Structural
        );
        assert_eq!(s.task_counts(), vec![("c".to_string(), 1)]);
        assert_eq!(s.offset, 3);
        // The same connector config again changes nothing; a commit naming an unwritten task
        // is ignored.
        assert_eq!(
            s.apply(3, ConfigRecord::Connector("c".into(), Some(c))),
            ConfigChange::Nothing
        );
        assert_eq!(
            s.apply(4, ConfigRecord::Commit("c".into(), 2)),
            ConfigChange::Nothing
        );
        assert_eq!(
            s.apply(
                5,
                ConfigRecord::Target("c".into(), Some(TargetState::Paused))
            ),
            ConfigChange::Target("c".into())
        );
        assert_eq!(s.target("c"), TargetState::Paused);
        assert_eq!(
            s.apply(6, ConfigRecord::Connector("c".into(), None)),
            ConfigChange::Structural
        );
        assert!(s.connectors.is_empty() && s.tasks.is_empty());
        assert_eq!(s.target("c"), TargetState::Started);
    }
}
