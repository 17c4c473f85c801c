//! Consumer configuration: a typed builder, or Kafka's property names as a string map.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Where to start when a partition has no committed offset, or its position is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail with `OFFSET_OUT_OF_RANGE` (or no committed offset) instead of resetting.
    None,
}

/// Which records a fetch returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    /// Only records of committed transactions, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// A partition assignment strategy of the classic consumer protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    Range,
    RoundRobin,
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name in JoinGroup (Kafka's names).
    pub fn protocol_name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The strategy with this protocol name.
    pub fn from_protocol_name(name: &str) -> Option<Self> {
        [Self::Range, Self::RoundRobin, Self::CooperativeSticky]
            .into_iter()
            .find(|s| s.protocol_name() == name)
    }

    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        // Java class names are accepted too, so pasted configs work.
        let short = value.rsplit('.').next().unwrap_or(value);
        match short {
            "range" | "RangeAssignor" => Some(Self::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Self::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }
}

/// A property with a value this client cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for consumer config {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Consumer settings; every field is named and defaulted as in Kafka's consumer configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `bootstrap.servers`: `host:port` entries (the first reachable one is used).
    pub bootstrap_servers: Vec<String>,
    /// `group.id`: required for `subscribe` and for commits.
    pub group_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// `group.instance.id`: static membership.
    pub group_instance_id: Option<String>,
    /// `auto.offset.reset` (default latest).
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (default true when a group is set).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms` (default 45000).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3000).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (default 300000): the rebalance timeout sent in JoinGroup.
    pub max_poll_interval: Duration,
    /// `metadata.max.age.ms` (default 300000): how often a pattern subscription looks for new
    /// matching topics.
    pub metadata_max_age: Duration,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms` (default 500).
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `isolation.level` (default read_uncommitted).
    pub isolation_level: IsolationLevel,
    /// `check.crcs` (default true, as in the Java client): verify each fetched batch's CRC32C.
    pub check_crcs: bool,
    /// `partition.assignment.strategy` (default range, cooperative-sticky as in Kafka 3+).
    pub assignment_strategies: Vec<AssignmentStrategy>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".into()],
            group_id: None,
            client_id: "fjord-consumer".into(),
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            metadata_max_age: Duration::from_millis(300_000),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
            check_crcs: true,
            assignment_strategies: vec![
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky,
            ],
        }
    }
}

/// Keys warned about already in this process.
fn warned() -> &'static Mutex<BTreeSet<String>> {
    static WARNED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    WARNED.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| invalid(key, value, "expected milliseconds (a non-negative integer)"))
}

fn parse_i32(key: &str, value: &str) -> Result<i32, ConfigError> {
    match value.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(invalid(
            key,
            value,
            "expected a non-negative 32-bit integer",
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

impl ConsumerConfig {
    /// A config with Kafka's defaults and these bootstrap servers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ConsumerConfig {
            bootstrap_servers: split_servers(&bootstrap_servers.into()),
            ..Self::default()
        }
    }

    /// Reads Kafka property names (`bootstrap.servers`, `group.id`, ...). Unknown keys are
    /// warned about once per process; a bad value is an error naming its key.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = ConsumerConfig::default();
        for (key, value) in properties {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one Kafka-named property.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, ConfigError> {
        match key {
            "bootstrap.servers" => {
                let servers = split_servers(value);
                if servers.is_empty() || servers.iter().any(|s| !s.contains(':')) {
                    return Err(invalid(key, value, "expected host:port[,host:port...]"));
                }
                self.bootstrap_servers = servers;
            }
            "group.id" => self.group_id = non_empty(value),
            "client.id" => self.client_id = value.trim().to_string(),
            "group.instance.id" => self.group_instance_id = non_empty(value),
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(invalid(key, value, "expected earliest, latest or none")),
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "check.crcs" => self.check_crcs = parse_bool(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value)?,
            "session.timeout.ms" => self.session_timeout = parse_ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "fetch.min.bytes" => self.fetch_min_bytes = parse_i32(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "max.partition.fetch.bytes" => {
                self.max_partition_fetch_bytes = parse_i32(key, value)?;
                if self.max_partition_fetch_bytes == 0 {
                    return Err(invalid(key, value, "must be positive"));
                }
            }
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => {
                        return Err(invalid(
                            key,
                            value,
                            "expected read_uncommitted or read_committed",
                        ));
                    }
                }
            }
            "partition.assignment.strategy" => {
                let strategies = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        AssignmentStrategy::parse(s).ok_or_else(|| {
                            invalid(
                                key,
                                value,
                                format!(
                                    "unknown strategy {:?} (range, roundrobin, cooperative-sticky)",
                                    s.trim()
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if strategies.is_empty() {
                    return Err(invalid(key, value, "at least one strategy is needed"));
                }
                self.assignment_strategies = strategies;
            }
            _ => {
                let first = warned()
                    .lock()
                    .map(|mut w| w.insert(key.to_string()))
                    .unwrap_or(false);
                if first {
                    tracing::warn!(key, "unknown consumer config ignored");
                }
            }
        }
        Ok(self)
    }

    /// Checks values that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval >= self.session_timeout {
            return Err(invalid(
                "heartbeat.interval.ms",
                &self.heartbeat_interval.as_millis().to_string(),
                "must be lower than session.timeout.ms",
            ));
        }
        Ok(())
    }

    /// Sets `group.id`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }
    /// Sets `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }
    /// Sets `group.instance.id`.
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }
    /// Sets `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }
    /// Sets `auto.commit.interval.ms`.
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }
    /// Sets `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }
    /// Sets `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }
    /// Sets `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }
    /// Sets `fetch.min.bytes`.
    pub fn fetch_min_bytes(mut self, bytes: i32) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }
    /// Sets `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }
    /// Sets `max.partition.fetch.bytes`.
    pub fn max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }
    /// Sets `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }
    /// Sets `partition.assignment.strategy`.
    pub fn assignment_strategies(mut self, strategies: Vec<AssignmentStrategy>) -> Self {
        self.assignment_strategies = strategies;
        self
    }
}

fn split_servers(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_property_names_set_typed_fields() {
        let config = ConsumerConfig::from_properties(&props(&[
            ("bootstrap.servers", "a:9092, b:9093"),
            ("group.id", "g"),
            ("client.id", "c"),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("auto.commit.interval.ms", "100"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("max.poll.interval.ms", "20000"),
            ("fetch.min.bytes", "10"),
            ("fetch.max.wait.ms", "50"),
            ("max.partition.fetch.bytes", "4096"),
            ("isolation.level", "read_committed"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.RoundRobinAssignor,range",
            ),
            ("group.instance.id", "i-1"),
        ]))
        .unwrap();
        assert_eq!(config.bootstrap_servers, vec!["a:9092", "b:9093"]);
        assert_eq!(config.group_id.as_deref(), Some("g"));
        assert_eq!(config.client_id, "c");
        assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
        assert!(!config.enable_auto_commit);
        assert_eq!(config.auto_commit_interval, Duration::from_millis(100));
        assert_eq!(config.session_timeout, Duration::from_secs(10));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(config.max_poll_interval, Duration::from_secs(20));
        assert_eq!(config.fetch_min_bytes, 10);
        assert_eq!(config.fetch_max_wait, Duration::from_millis(50));
        assert_eq!(config.max_partition_fetch_bytes, 4096);
        assert_eq!(config.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(
            config.assignment_strategies,
            vec![AssignmentStrategy::RoundRobin, AssignmentStrategy::Range]
        );
        assert_eq!(config.group_instance_id.as_deref(), Some("i-1"));
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (key, value) in [
            ("auto.offset.reset", "smallest"),
            ("enable.auto.commit", "yes"),
            ("session.timeout.ms", "-1"),
            ("fetch.min.bytes", "lots"),
            ("isolation.level", "serializable"),
            ("partition.assignment.strategy", "sticky-ish"),
            ("bootstrap.servers", "nohostport"),
            ("max.partition.fetch.bytes", "0"),
        ] {
            let err = ConsumerConfig::from_properties(&props(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn heartbeat_must_be_below_session_timeout() {
        let err = ConsumerConfig::from_properties(&props(&[
            ("session.timeout.ms", "1000"),
            ("heartbeat.interval.ms", "1000"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "heartbeat.interval.ms");
    }

    #[test]
    fn unknown_keys_are_ignored_and_remembered() {
        let config =
            ConsumerConfig::from_properties(&props(&[("no.such.key", "1"), ("group.id", "g")]))
                .unwrap();
        assert_eq!(config.group_id.as_deref(), Some("g"));
        assert!(warned().lock().unwrap().contains("no.such.key"));
    }
}
