//! The plugin traits and the registry of built-in plugins by class name.
//!
//! A connector is a Rust type behind [`SourceConnector`] or [`SinkConnector`]; it validates its
//! config and splits the work into task configs, and makes [`SourceTask`]s or [`SinkTask`]s
//! that the worker runs. Task methods return boxed futures so that tasks can be trait objects.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Map;

use crate::config::{ConfigDef, ConnectorConfig};
use crate::connectors::file::{FileStreamSinkConnector, FileStreamSourceConnector};
use crate::data::{SinkRecord, SourceRecord};
use crate::error::Result;

/// A boxed, sendable future (what task methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Task configs, one map per task.
pub type TaskConfigs = Vec<BTreeMap<String, String>>;

/// A source partition or offset (a JSON object, as in Kafka Connect).
pub type OffsetMap = Map<String, serde_json::Value>;

/// A source connector: validates its config and plans tasks.
pub trait SourceConnector: Send + Sync {
    /// The connector's own settings (the common ones are added by the runtime).
    fn config_def(&self) -> ConfigDef;
    /// Checks the config beyond types and required keys; errors name the key.
    fn validate(&self, _config: &ConnectorConfig) -> Result<()> {
        Ok(())
    }
    /// The configs of at most `max_tasks` tasks.
    fn task_configs(&self, config: &ConnectorConfig, max_tasks: usize) -> Result<TaskConfigs>;
    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SourceTask>;
}

/// A sink connector: validates its config and plans tasks.
pub trait SinkConnector: Send + Sync {
    fn config_def(&self) -> ConfigDef;
    fn validate(&self, _config: &ConnectorConfig) -> Result<()> {
        Ok(())
    }
    fn task_configs(&self, config: &ConnectorConfig, max_tasks: usize) -> Result<TaskConfigs>;
    fn create_task(&self) -> Box<dyn SinkTask>;
}

/// Looks up a source partition's committed offset.
pub(crate) type OffsetLookup = dyn Fn(&OffsetMap) -> Option<OffsetMap> + Send + Sync;

/// What a source task can read from the runtime: the offsets committed so far.
#[derive(Clone)]
pub struct SourceTaskContext {
    pub(crate) offsets: Arc<OffsetLookup>,
}

impl std::fmt::Debug for SourceTaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTaskContext").finish_non_exhaustive()
    }
}

impl SourceTaskContext {
    /// The last committed offset of a source partition.
    pub fn offset(&self, partition: &OffsetMap) -> Option<OffsetMap> {
        (self.offsets)(partition)
    }

    /// A context over fixed offsets (for tests of tasks).
    pub fn fixed(offsets: Vec<(OffsetMap, OffsetMap)>) -> Self {
        SourceTaskContext {
            offsets: Arc::new(move |p| {
                offsets.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone())
            }),
        }
    }
}

/// Reads from an external system. `poll` should return within about a second even when there
/// is nothing to read (an empty batch), so the worker can pause and stop it promptly.
pub trait SourceTask: Send {
    fn start<'a>(
        &'a mut self,
        config: &'a BTreeMap<String, String>,
        context: SourceTaskContext,
    ) -> BoxFuture<'a, Result<()>>;
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>>;
    fn stop(&mut self) -> BoxFuture<'_, ()>;
}

/// Writes to an external system. After `flush` succeeds, everything `put` so far is durable and
/// the worker commits the consumed offsets.
pub trait SinkTask: Send {
    fn start<'a>(&'a mut self, config: &'a BTreeMap<String, String>) -> BoxFuture<'a, Result<()>>;
    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>>;
    fn flush(&mut self) -> BoxFuture<'_, Result<()>>;
    fn stop(&mut self) -> BoxFuture<'_, ()>;
}

/// A connector plugin.
#[derive(Clone)]
pub enum Connector {
    Source(Arc<dyn SourceConnector>),
    Sink(Arc<dyn SinkConnector>),
}

impl Connector {
    pub fn type_name(&self) -> &'static str {
        match self {
            Connector::Source(_) => "source",
            Connector::Sink(_) => "sink",
        }
    }

    /// The connector's settings with the common (and sink) keys first.
    pub fn full_config_def(&self) -> ConfigDef {
        match self {
            Connector::Source(c) => crate::config::connector_common_def().with(c.config_def().keys),
            Connector::Sink(c) => crate::config::connector_common_def()
                .with(crate::config::connector_sink_def().keys)
                .with(c.config_def().keys),
        }
    }
}

/// A registered connector class.
#[derive(Clone)]
pub struct PluginDesc {
    /// The Java class name Kafka Connect would list.
    pub class: &'static str,
    pub version: &'static str,
    pub connector: Connector,
}

/// The built-in connector plugins.
pub fn connectors() -> Vec<PluginDesc> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = vec![
        PluginDesc {
            class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
            version,
            connector: Connector::Sink(Arc::new(FileStreamSinkConnector)),
        },
        PluginDesc {
            class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
            version,
            connector: Connector::Source(Arc::new(FileStreamSourceConnector)),
        },
    ];
    out.extend(crate::connectors::extra_plugins(version));
    out
}

/// The plugin named by `class`: the full class name, the simple name, or the simple name without
/// its `Connector` suffix (Kafka's aliases), case-sensitive as in Kafka.
pub fn find_connector(class: &str) -> Option<PluginDesc> {
    let class = class.trim();
    connectors().into_iter().find(|p| {
        let simple = p.class.rsplit('.').next().unwrap_or(p.class);
        class == p.class || class == simple || simple.strip_suffix("Connector") == Some(class)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_class_names_and_aliases_resolve() {
        for name in [
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "FileStreamSourceConnector",
            "FileStreamSource",
        ] {
            let p = find_connector(name).expect(name);
            assert_eq!(p.connector.type_name(), "source");
        }
        assert!(find_connector("FileStreamSinkConnector").is_some());
        assert!(find_connector("NoSuchConnector").is_none());
    }
}
