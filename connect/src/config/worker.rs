//! Worker properties (`connect-standalone.properties`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::connector::parse_i64;
use crate::error::{Error, Result};

/// A standalone worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `bootstrap.servers` (default `127.0.0.1:9092`).
    pub bootstrap_servers: String,
    /// `offset.storage.file.filename`: where source offsets are kept.
    pub offsets_file: Option<PathBuf>,
    /// `offset.flush.interval.ms` (default 60000): how often source offsets are saved and sink
    /// offsets committed.
    pub offset_flush_interval: Duration,
    /// The REST listener (`listeners`, or `rest.host.name`/`rest.port`; default `127.0.0.1:8083`).
    pub rest_addr: String,
    /// `key.converter` / `value.converter` and their `key.converter.*` settings.
    pub key_converter: String,
    pub value_converter: String,
    /// `task.shutdown.graceful.timeout.ms` (default 5000).
    pub task_shutdown_timeout: Duration,
    /// Every property, for `key.converter.*`, `producer.*` and `consumer.*` overrides.
    pub values: BTreeMap<String, String>,
}

impl WorkerConfig {
    /// From worker properties.
    pub fn from_properties(values: &BTreeMap<String, String>) -> Result<Self> {
        let rest_addr = match values.get("listeners").map(|v| v.trim()) {
            Some(l) if !l.is_empty() => {
                let first = l.split(',').next().unwrap_or(l).trim();
                let addr = first.strip_prefix("http://").ok_or_else(|| {
                    Error::config("listeners", l, "only http:// listeners are supported")
                })?;
                if addr.starts_with(':') {
                    format!("0.0.0.0{addr}")
                } else {
                    addr.to_string()
                }
            }
            _ => {
                let host = values
                    .get("rest.host.name")
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "127.0.0.1".into());
                let port = parse_i64(values, "rest.port", 8083)?;
                format!("{host}:{port}")
            }
        };
        let flush = parse_i64(values, "offset.flush.interval.ms", 60_000)?;
        let shutdown = parse_i64(values, "task.shutdown.graceful.timeout.ms", 5_000)?;
        let converter = |key: &str| {
            values
                .get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".into())
        };
        Ok(WorkerConfig {
            bootstrap_servers: values
                .get("bootstrap.servers")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "127.0.0.1:9092".into()),
            offsets_file: values
                .get("offset.storage.file.filename")
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            offset_flush_interval: Duration::from_millis(flush.max(1) as u64),
            rest_addr,
            key_converter: converter("key.converter"),
            value_converter: converter("value.converter"),
            task_shutdown_timeout: Duration::from_millis(shutdown.max(0) as u64),
            values: values.clone(),
        })
    }

    /// A worker against `bootstrap` with defaults otherwise.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        let values = BTreeMap::from([("bootstrap.servers".to_string(), bootstrap.into())]);
        // Defaults cannot fail to parse.
        Self::from_properties(&values).unwrap_or_else(|_| unreachable!())
    }

    /// The properties under `prefix` with it stripped (`producer.`, `key.converter.`).
    pub fn prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        prefixed(&self.values, prefix)
    }
}

pub(crate) fn prefixed(
    values: &BTreeMap<String, String>,
    prefix: &str,
) -> BTreeMap<String, String> {
    values
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_and_defaults() {
        let values = BTreeMap::from([
            ("listeners".to_string(), "http://:18083".to_string()),
            ("offset.flush.interval.ms".to_string(), "100".to_string()),
        ]);
        let c = WorkerConfig::from_properties(&values).unwrap();
        assert_eq!(c.rest_addr, "0.0.0.0:18083");
        assert_eq!(c.offset_flush_interval, Duration::from_millis(100));
        assert_eq!(c.bootstrap_servers, "127.0.0.1:9092");
        let bad = BTreeMap::from([("offset.flush.interval.ms".to_string(), "x".to_string())]);
        assert!(WorkerConfig::from_properties(&bad).is_err());
    }
}
