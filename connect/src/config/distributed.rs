//! Distributed worker properties (`connect-distributed.properties`), beside the common ones in
//! [`WorkerConfig`](super::WorkerConfig).

use std::collections::BTreeMap;
use std::time::Duration;

use super::connector::parse_i64;
use crate::error::{Error, Result};

/// A distributed worker's group and internal topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedConfig {
    /// `group.id` (required): workers with the same id share connectors.
    pub group_id: String,
    /// `config.storage.topic` (default `connect-configs`; one partition).
    pub config_topic: String,
    /// `offset.storage.topic` (default `connect-offsets`).
    pub offset_topic: String,
    /// `status.storage.topic` (default `connect-status`).
    pub status_topic: String,
    /// `config.storage.replication.factor` (default 3; -1: the broker's default).
    pub config_replication: i16,
    /// `offset.storage.replication.factor` (default 3).
    pub offset_replication: i16,
    /// `status.storage.replication.factor` (default 3).
    pub status_replication: i16,
    /// `offset.storage.partitions` (default 25).
    pub offset_partitions: i32,
    /// `status.storage.partitions` (default 5).
    pub status_partitions: i32,
    /// `session.timeout.ms` (default 10000): a worker silent this long leaves the group.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3000).
    pub heartbeat_interval: Duration,
    /// `rebalance.timeout.ms` (default 60000).
    pub rebalance_timeout: Duration,
    /// `worker.sync.timeout.ms` (default 3000): how long the leader waits to catch up with the
    /// config topic before assigning.
    pub worker_sync_timeout: Duration,
    /// `connect.protocol` as configured (`default`, `compatible`, `sessioned`); the eager
    /// `default` protocol is used in every case.
    pub protocol: String,
    /// `scheduled.rebalance.max.delay.ms` (default 300000): accepted for compatibility; the
    /// eager protocol reassigns a departed worker's tasks at once.
    pub scheduled_rebalance_max_delay: Duration,
    /// The URL other workers forward requests to: `rest.advertised.listener` (http),
    /// `rest.advertised.host.name` and `rest.advertised.port`, each defaulting to the bound
    /// listener.
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
}

fn text(values: &BTreeMap<String, String>, key: &str, default: &str) -> String {
    values
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn millis(values: &BTreeMap<String, String>, key: &str, default: i64) -> Result<Duration> {
    let v = parse_i64(values, key, default)?;
    if v < 0 {
        return Err(Error::config(
            key,
            &v.to_string(),
            "Value must be at least 0",
        ));
    }
    Ok(Duration::from_millis(v as u64))
}

fn replication(values: &BTreeMap<String, String>, key: &str) -> Result<i16> {
    let v = parse_i64(values, key, 3)?;
    if v == 0 || v < -1 || v > i64::from(i16::MAX) {
        return Err(Error::config(
            key,
            &v.to_string(),
            "Value must be -1 (the broker's default) or a positive number",
        ));
    }
    Ok(v as i16)
}

fn partitions(values: &BTreeMap<String, String>, key: &str, default: i64) -> Result<i32> {
    let v = parse_i64(values, key, default)?;
    if v == 0 || v < -1 || v > i64::from(i32::MAX) {
        return Err(Error::config(
            key,
            &v.to_string(),
            "Value must be -1 (the broker's default) or a positive number",
        ));
    }
    Ok(v as i32)
}

impl DistributedConfig {
    /// From worker properties; `group.id` is required.
    pub fn from_properties(values: &BTreeMap<String, String>) -> Result<Self> {
        let group_id = values
            .get("group.id")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::MissingConfig {
                key: "group.id".into(),
            })?;
        let protocol = text(values, "connect.protocol", "sessioned");
        if !["default", "compatible", "sessioned"].contains(&protocol.as_str()) {
            return Err(Error::config(
                "connect.protocol",
                &protocol,
                "String must be one of: eager, compatible, sessioned",
            ));
        }
        let session_timeout = millis(values, "session.timeout.ms", 10_000)?;
        let heartbeat_interval = millis(values, "heartbeat.interval.ms", 3_000)?;
        if heartbeat_interval >= session_timeout {
            return Err(Error::config(
                "heartbeat.interval.ms",
                &heartbeat_interval.as_millis().to_string(),
                "must be lower than session.timeout.ms",
            ));
        }
        let advertised_port = match values
            .get("rest.advertised.port")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) => Some(
                v.parse::<u16>()
                    .map_err(|_| Error::config("rest.advertised.port", v, "Not a port number"))?,
            ),
        };
        if let Some(l) = values.get("rest.advertised.listener")
            && !l.trim().is_empty()
            && !l.trim().eq_ignore_ascii_case("http")
        {
            return Err(Error::config(
                "rest.advertised.listener",
                l,
                "only http is supported",
            ));
        }
        Ok(DistributedConfig {
            group_id,
            config_topic: text(values, "config.storage.topic", "connect-configs"),
            offset_topic: text(values, "offset.storage.topic", "connect-offsets"),
            status_topic: text(values, "status.storage.topic", "connect-status"),
            config_replication: replication(values, "config.storage.replication.factor")?,
            offset_replication: replication(values, "offset.storage.replication.factor")?,
            status_replication: replication(values, "status.storage.replication.factor")?,
            offset_partitions: partitions(values, "offset.storage.partitions", 25)?,
            status_partitions: partitions(values, "status.storage.partitions", 5)?,
            session_timeout,
            heartbeat_interval,
            rebalance_timeout: millis(values, "rebalance.timeout.ms", 60_000)?,
            worker_sync_timeout: millis(values, "worker.sync.timeout.ms", 3_000)?,
            protocol,
            scheduled_rebalance_max_delay: millis(
                values,
                "scheduled.rebalance.max.delay.ms",
                300_000,
            )?,
            advertised_host: values
                .get("rest.advertised.host.name")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            advertised_port,
        })
    }

    /// The URL other workers reach this one at, given the bound REST address.
    pub fn advertised_url(&self, bound: std::net::SocketAddr) -> String {
        let host = self.advertised_host.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                bound.ip().to_string()
            }
        });
        let port = self.advertised_port.unwrap_or(bound.port());
        format!("http://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_required_group_id() {
        let err = DistributedConfig::from_properties(&values(&[])).unwrap_err();
        assert!(err.to_string().contains("group.id"), "{err}");
        let c = DistributedConfig::from_properties(&values(&[("group.id", "g")])).unwrap();
        assert_eq!(c.config_topic, "connect-configs");
        assert_eq!(c.offset_topic, "connect-offsets");
        assert_eq!(c.status_topic, "connect-status");
        assert_eq!((c.offset_partitions, c.status_partitions), (25, 5));
        assert_eq!(c.config_replication, 3);
        assert_eq!(c.session_timeout, Duration::from_secs(10));
        assert_eq!(
            c.advertised_url("0.0.0.0:8083".parse().unwrap()),
            "http://127.0.0.1:8083"
        );
    }

    #[test]
    fn the_example_worker_file_parses() {
        let text = include_str!("../../../examples/connect/connect-distributed.properties");
        let values = crate::config::parse_properties(text);
        let c = DistributedConfig::from_properties(&values).unwrap();
        assert_eq!(c.group_id, "connect-cluster");
        assert_eq!(c.config_replication, 1);
        crate::config::WorkerConfig::from_properties(&values).unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v) in [
            ("config.storage.replication.factor", "0"),
            ("offset.storage.partitions", "x"),
            ("heartbeat.interval.ms", "20000"),
            ("connect.protocol", "nope"),
            ("rest.advertised.port", "99999"),
            ("rest.advertised.listener", "https"),
        ] {
            let err = DistributedConfig::from_properties(&values(&[("group.id", "g"), (k, v)]))
                .unwrap_err();
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
        let c = DistributedConfig::from_properties(&values(&[
            ("group.id", "g"),
            ("rest.advertised.host.name", "w1"),
            ("rest.advertised.port", "9000"),
        ]))
        .unwrap();
        assert_eq!(
            c.advertised_url("127.0.0.1:1".parse().unwrap()),
            "http://w1:9000"
        );
    }
}
