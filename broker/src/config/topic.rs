//! Topic-level configs: Kafka's names, types, defaults and validation, and the typed
//! [`LogConfig`] the log runs on.

use std::collections::BTreeMap;

use super::{ConfigDef, ConfigError, ConfigType, Validator, find, get};

const I64_MAX: &str = "9223372036854775807";

/// Every topic config Fjord accepts.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        kind: ConfigType::List,
        default: Some("delete"),
        validator: Validator::ListOf(&["delete", "compact"]),
        doc: "`delete` removes old segments by retention.ms/retention.bytes; `compact` has the log cleaner rewrite sealed segments keeping the latest record per key (every log.cleaner.backoff.ms); `compact,delete` does both.",
    },
    ConfigDef {
        name: "compression.type",
        kind: ConfigType::String,
        default: Some("producer"),
        validator: Validator::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        doc: "Codec batches are stored with. `producer` keeps each batch exactly as sent (the fast path); any other value recompresses batches that use a different codec.",
    },
    ConfigDef {
        name: "delete.retention.ms",
        kind: ConfigType::Long,
        default: Some("86400000"),
        validator: Validator::AtLeast(0),
        doc: "How long the cleaner keeps a tombstone (a record with a null value) of a compacted topic after it first cleaned its batch, so that consumers reading the log see the deletion.",
    },
    ConfigDef {
        name: "flush.messages",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(1),
        doc: "Fsync the log after this many records were appended since the last fsync; the produce is acknowledged after that fsync. 1 makes every acknowledged write durable against power loss.",
    },
    ConfigDef {
        name: "flush.ms",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(0),
        doc: "Fsync the log when unflushed data is older than this many milliseconds (checked every log.flush.scheduler.interval.ms).",
    },
    ConfigDef {
        name: "index.interval.bytes",
        kind: ConfigType::Int,
        default: Some("4096"),
        validator: Validator::AtLeast(0),
        doc: "Bytes of log between two entries of the sparse offset and time indexes.",
    },
    ConfigDef {
        name: "max.message.bytes",
        kind: ConfigType::Int,
        default: Some("1048588"),
        validator: Validator::AtLeast(0),
        doc: "Largest record batch the topic accepts, in bytes (after compression); larger batches get MESSAGE_TOO_LARGE.",
    },
    ConfigDef {
        name: "max.compaction.lag.ms",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(1),
        doc: "Longest time a record of a compacted topic may stay uncleaned: a log whose oldest dirty segment is older is cleaned whatever its dirty ratio, and the active segment rolls after this long.",
    },
    ConfigDef {
        name: "message.timestamp.type",
        kind: ConfigType::String,
        default: Some("CreateTime"),
        validator: Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        doc: "`CreateTime` keeps the producer's timestamps; `LogAppendTime` stamps each batch with the broker's clock on append.",
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        kind: ConfigType::Double,
        default: Some("0.5"),
        validator: Validator::Between(0.0, 1.0),
        doc: "The cleaner cleans a compacted log only when its dirty (not yet cleaned) bytes are at least this fraction of the cleanable log.",
    },
    ConfigDef {
        name: "min.compaction.lag.ms",
        kind: ConfigType::Long,
        default: Some("0"),
        validator: Validator::AtLeast(0),
        doc: "Shortest time a record stays uncompacted: segments with a record newer than this are not cleaned yet.",
    },
    ConfigDef {
        name: "min.insync.replicas",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(1),
        doc: "Replicas that must acknowledge an acks=-1 (all) produce. A single broker is its own only replica.",
    },
    ConfigDef {
        name: "retention.bytes",
        kind: ConfigType::Long,
        default: Some("-1"),
        validator: Validator::AtLeast(-1),
        doc: "Largest size a partition may grow to before its oldest segments are deleted; -1 for no limit.",
    },
    ConfigDef {
        name: "retention.ms",
        kind: ConfigType::Long,
        default: Some("604800000"),
        validator: Validator::AtLeast(-1),
        doc: "How long a segment is kept after its newest record's timestamp; -1 for ever.",
    },
    ConfigDef {
        name: "segment.bytes",
        kind: ConfigType::Int,
        default: Some("1073741824"),
        validator: Validator::AtLeast(14),
        doc: "Size at which the active segment is rolled.",
    },
    ConfigDef {
        name: "segment.ms",
        kind: ConfigType::Long,
        default: Some("604800000"),
        validator: Validator::AtLeast(1),
        doc: "Age at which the active segment is rolled even if not full.",
    },
];

/// The broker configs that set a topic config's default, with the factor converting their unit.
/// The first one set wins, as in Kafka (`log.retention.ms` over `log.retention.minutes` over
/// `log.retention.hours`).
pub(crate) fn broker_synonyms(topic_key: &str) -> &'static [(&'static str, i64)] {
    match topic_key {
        "cleanup.policy" => &[("log.cleanup.policy", 1)],
        "compression.type" => &[("compression.type", 1)],
        "delete.retention.ms" => &[("log.cleaner.delete.retention.ms", 1)],
        "flush.messages" => &[("log.flush.interval.messages", 1)],
        "flush.ms" => &[("log.flush.interval.ms", 1)],
        "index.interval.bytes" => &[("log.index.interval.bytes", 1)],
        "max.compaction.lag.ms" => &[("log.cleaner.max.compaction.lag.ms", 1)],
        "max.message.bytes" => &[("message.max.bytes", 1)],
        "message.timestamp.type" => &[("log.message.timestamp.type", 1)],
        "min.cleanable.dirty.ratio" => &[("log.cleaner.min.cleanable.ratio", 1)],
        "min.compaction.lag.ms" => &[("log.cleaner.min.compaction.lag.ms", 1)],
        "min.insync.replicas" => &[("min.insync.replicas", 1)],
        "retention.bytes" => &[("log.retention.bytes", 1)],
        "retention.ms" => &[
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ],
        "segment.bytes" => &[("log.segment.bytes", 1)],
        "segment.ms" => &[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)],
        _ => &[],
    }
}

/// Where a topic config's effective value came from (Kafka's `ConfigSource` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic = 1,
    /// From the broker's static configuration.
    StaticBroker = 4,
    /// The built-in default.
    Default = 5,
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The typed, resolved configs the log of one topic runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub cleanup_policy: CleanupPolicy,
    /// `None` for `producer`; otherwise the Kafka codec number (0 = uncompressed).
    pub compression: Option<i16>,
    /// `delete.retention.ms`: how long tombstones survive after their batch was first cleaned.
    pub delete_retention_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: u64,
    pub max_message_bytes: usize,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    pub timestamp_type: TimestampType,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub segment_bytes: u64,
    /// `segment.ms`; for compacted topics at most `max.compaction.lag.ms` (Kafka's rule, so
    /// that the active segment becomes cleanable in time).
    pub segment_ms: i64,
}

/// A topic's config overrides and the values they resolve to.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
    resolved: BTreeMap<String, (String, ConfigSource)>,
    log: LogConfig,
}

impl TopicConfig {
    /// Validates `overrides` and resolves every topic config against the broker's settings.
    pub fn new(
        overrides: BTreeMap<String, String>,
        broker: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        for (key, value) in &overrides {
            find(TOPIC_CONFIGS, key)
                .ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?
                .validate(value)?;
        }
        let mut resolved = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let entry = if let Some(value) = overrides.get(def.name) {
                (value.trim().to_string(), ConfigSource::Topic)
            } else if let Some(value) = broker_default(def.name, broker) {
                def.validate(&value)?;
                (value, ConfigSource::StaticBroker)
            } else {
                (
                    def.default.unwrap_or_default().to_string(),
                    ConfigSource::Default,
                )
            };
            resolved.insert(def.name.to_string(), entry);
        }
        let values: BTreeMap<String, String> = resolved
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let log = LogConfig::from_values(&values);
        Ok(TopicConfig {
            overrides,
            resolved,
            log,
        })
    }

    /// The typed values.
    pub fn log(&self) -> &LogConfig {
        &self.log
    }

    /// The overrides set on the topic.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// Every config with its effective value and source, in registry order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static ConfigDef, &str, ConfigSource)> {
        TOPIC_CONFIGS.iter().filter_map(|def| {
            self.resolved
                .get(def.name)
                .map(|(v, s)| (def, v.as_str(), *s))
        })
    }
}

/// The broker-level default of a topic config, converted to the topic config's unit.
fn broker_default(topic_key: &str, broker: &BTreeMap<String, String>) -> Option<String> {
    broker_synonyms(topic_key).iter().find_map(|(key, factor)| {
        let value = broker.get(*key)?;
        if *factor == 1 {
            Some(value.clone())
        } else {
            value
                .trim()
                .parse::<i64>()
                .ok()
                .map(|v| if v < 0 { v } else { v.saturating_mul(*factor) }.to_string())
        }
    })
}

impl LogConfig {
    fn from_values(values: &BTreeMap<String, String>) -> Self {
        let policy = values
            .get("cleanup.policy")
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        let compression = match values
            .get("compression.type")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            Some("uncompressed") => Some(0),
            Some("gzip") => Some(1),
            Some("snappy") => Some(2),
            Some("lz4") => Some(3),
            Some("zstd") => Some(4),
            _ => None,
        };
        let timestamp_type = if values
            .get("message.timestamp.type")
            .is_some_and(|v| v.eq_ignore_ascii_case("LogAppendTime"))
        {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        let cleanup_policy = CleanupPolicy {
            delete: policy.contains("delete"),
            compact: policy.contains("compact"),
        };
        let max_compaction_lag_ms = get(values, "max.compaction.lag.ms").unwrap_or(i64::MAX);
        let segment_ms = get(values, "segment.ms").unwrap_or(604_800_000);
        LogConfig {
            cleanup_policy,
            compression,
            delete_retention_ms: get(values, "delete.retention.ms").unwrap_or(86_400_000),
            flush_messages: get(values, "flush.messages").unwrap_or(i64::MAX),
            flush_ms: get(values, "flush.ms").unwrap_or(i64::MAX),
            index_interval_bytes: get(values, "index.interval.bytes").unwrap_or(4096),
            max_message_bytes: get(values, "max.message.bytes").unwrap_or(1_048_588),
            max_compaction_lag_ms,
            timestamp_type,
            min_cleanable_dirty_ratio: get(values, "min.cleanable.dirty.ratio").unwrap_or(0.5),
            min_compaction_lag_ms: get(values, "min.compaction.lag.ms").unwrap_or(0),
            min_insync_replicas: get(values, "min.insync.replicas").unwrap_or(1),
            retention_bytes: get(values, "retention.bytes").unwrap_or(-1),
            retention_ms: get(values, "retention.ms").unwrap_or(604_800_000),
            segment_bytes: get(values, "segment.bytes").unwrap_or(1 << 30),
            segment_ms: if cleanup_policy.compact {
                segment_ms.min(max_compaction_lag_ms)
            } else {
                segment_ms
            },
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        TopicConfig::new(BTreeMap::new(), &BTreeMap::new())
            .map(|c| c.log)
            .unwrap_or_else(|_| LogConfig::from_values(&BTreeMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let log = LogConfig::default();
        assert_eq!(log.retention_ms, 604_800_000);
        assert_eq!(log.segment_bytes, 1_073_741_824);
        assert_eq!(log.max_message_bytes, 1_048_588);
        assert_eq!(log.retention_bytes, -1);
        assert_eq!(log.compression, None);
        assert!(log.cleanup_policy.delete && !log.cleanup_policy.compact);
        assert_eq!(log.delete_retention_ms, 86_400_000);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(log.min_compaction_lag_ms, 0);
        assert_eq!(log.max_compaction_lag_ms, i64::MAX);
    }

    #[test]
    fn cleaner_configs_validate_and_take_their_broker_synonyms() {
        let broker = map(&[
            ("log.cleaner.delete.retention.ms", "1000"),
            ("log.cleaner.min.cleanable.ratio", "0.25"),
            ("log.cleaner.min.compaction.lag.ms", "7"),
            ("log.cleaner.max.compaction.lag.ms", "60000"),
        ]);
        let config =
            TopicConfig::new(map(&[("cleanup.policy", "compact")]), &broker).expect("valid");
        let log = config.log();
        assert_eq!(log.delete_retention_ms, 1_000);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(log.min_compaction_lag_ms, 7);
        assert_eq!(log.max_compaction_lag_ms, 60_000);
        assert_eq!(
            log.segment_ms, 60_000,
            "compacted logs roll by max.compaction.lag.ms"
        );
        for (key, bad) in [
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "-0.1"),
            ("min.cleanable.dirty.ratio", "half"),
            ("delete.retention.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("min.compaction.lag.ms", "-1"),
        ] {
            assert!(
                TopicConfig::new(map(&[(key, bad)]), &BTreeMap::new()).is_err(),
                "{key}={bad}"
            );
        }
    }

    #[test]
    fn topic_override_beats_broker_synonym_beats_default() {
        let broker = map(&[("log.retention.hours", "1"), ("log.segment.bytes", "2048")]);
        let config = TopicConfig::new(map(&[("segment.bytes", "1024")]), &broker).expect("valid");
        assert_eq!(config.log().retention_ms, 3_600_000);
        assert_eq!(config.log().segment_bytes, 1024);
        let sources: BTreeMap<&str, ConfigSource> =
            config.entries().map(|(d, _, s)| (d.name, s)).collect();
        assert_eq!(sources["segment.bytes"], ConfigSource::Topic);
        assert_eq!(sources["retention.ms"], ConfigSource::StaticBroker);
        assert_eq!(sources["max.message.bytes"], ConfigSource::Default);
        let ms_wins = map(&[("log.retention.ms", "5"), ("log.retention.hours", "1")]);
        assert_eq!(
            TopicConfig::new(BTreeMap::new(), &ms_wins)
                .expect("valid")
                .log()
                .retention_ms,
            5
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert_eq!(
            TopicConfig::new(map(&[("retention.msx", "1")]), &BTreeMap::new()).unwrap_err(),
            ConfigError::UnknownKey {
                key: "retention.msx".into()
            }
        );
        assert!(
            TopicConfig::new(
                map(&[("message.timestamp.type", "Whenever")]),
                &BTreeMap::new()
            )
            .is_err()
        );
    }
}
