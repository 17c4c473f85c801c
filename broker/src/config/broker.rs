//! Broker configs with Kafka's names (`server.properties` keys), layered from defaults, a file
//! (TOML or `.properties`), `FJORD_*` environment variables and command-line overrides.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::{ConfigDef, ConfigError, ConfigType, Validator, find, get, parse_bool};

const I64_MAX: &str = "9223372036854775807";

/// Every broker config Fjord reads.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "node.id",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(0),
        doc: "This broker's id in the cluster (`broker.id` is read as a synonym).",
    },
    ConfigDef {
        name: "listeners",
        kind: ConfigType::String,
        default: Some("PLAINTEXT://127.0.0.1:9092"),
        validator: Validator::Any,
        doc: "Where Kafka clients connect: `PLAINTEXT://HOST:PORT`. Port 0 binds an ephemeral port.",
    },
    ConfigDef {
        name: "advertised.listeners",
        kind: ConfigType::String,
        default: None,
        validator: Validator::Any,
        doc: "The address given to clients in Metadata, when it differs from `listeners` (default: the bound address).",
    },
    ConfigDef {
        name: "log.dirs",
        kind: ConfigType::String,
        default: None,
        validator: Validator::Any,
        doc: "Directory holding the partition logs and broker metadata (one directory; overrides `log.dir`).",
    },
    ConfigDef {
        name: "log.dir",
        kind: ConfigType::String,
        default: Some("./fjord-data"),
        validator: Validator::Any,
        doc: "Directory holding the data, when `log.dirs` is not set.",
    },
    ConfigDef {
        name: "process.roles",
        kind: ConfigType::List,
        default: None,
        validator: Validator::ListOf(&["broker", "controller"]),
        doc: "KRaft roles of this node: `broker`, `controller` or both. Unset: a single broker without a quorum (Fjord's standalone mode).",
    },
    ConfigDef {
        name: "controller.quorum.voters",
        kind: ConfigType::List,
        default: None,
        validator: Validator::Any,
        doc: "The controller quorum: `id@host:port` for each voter (`1@127.0.0.1:9093,2@127.0.0.1:9094,...`). Required with `process.roles`.",
    },
    ConfigDef {
        name: "controller.listener.names",
        kind: ConfigType::List,
        default: Some("CONTROLLER"),
        validator: Validator::Any,
        doc: "The name of the listener in `listeners` that controllers serve the quorum on.",
    },
    ConfigDef {
        name: "broker.rack",
        kind: ConfigType::String,
        default: None,
        validator: Validator::Any,
        doc: "This broker's rack; replica placement spreads each partition's replicas across racks.",
    },
    ConfigDef {
        name: "broker.session.timeout.ms",
        kind: ConfigType::Int,
        default: Some("9000"),
        validator: Validator::AtLeast(1),
        doc: "A broker that has not heartbeated to the active controller for this long is fenced: it leaves every ISR and its partitions get new leaders.",
    },
    ConfigDef {
        name: "broker.heartbeat.interval.ms",
        kind: ConfigType::Int,
        default: Some("2000"),
        validator: Validator::AtLeast(1),
        doc: "How often a broker heartbeats to the active controller.",
    },
    ConfigDef {
        name: "controller.quorum.election.timeout.ms",
        kind: ConfigType::Int,
        default: Some("1000"),
        validator: Validator::AtLeast(10),
        doc: "How long a controller waits without hearing from the quorum leader before it starts an election (randomized up to twice this).",
    },
    ConfigDef {
        name: "replica.lag.time.max.ms",
        kind: ConfigType::Long,
        default: Some("30000"),
        validator: Validator::AtLeast(1),
        doc: "A follower that has not caught up with the leader's log end for this long is removed from the ISR.",
    },
    ConfigDef {
        name: "replica.fetch.wait.max.ms",
        kind: ConfigType::Int,
        default: Some("500"),
        validator: Validator::AtLeast(0),
        doc: "How long a follower's fetch waits at the leader for new data.",
    },
    ConfigDef {
        name: "replica.fetch.max.bytes",
        kind: ConfigType::Int,
        default: Some("1048576"),
        validator: Validator::AtLeast(1),
        doc: "Bytes a follower asks for per partition in one fetch (at least one batch is always returned).",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        kind: ConfigType::Boolean,
        default: Some("false"),
        validator: Validator::Any,
        doc: "Default for topics: elect a replica outside the ISR when no ISR member is alive (may lose acknowledged records).",
    },
    ConfigDef {
        name: "auto.leader.rebalance.enable",
        kind: ConfigType::Boolean,
        default: Some("true"),
        validator: Validator::Any,
        doc: "Whether the controller moves leadership back to each partition's preferred (first) replica.",
    },
    ConfigDef {
        name: "leader.imbalance.check.interval.seconds",
        kind: ConfigType::Long,
        default: Some("300"),
        validator: Validator::AtLeast(1),
        doc: "How often the controller checks for partitions not led by their preferred replica.",
    },
    ConfigDef {
        name: "offsets.topic.replication.factor",
        kind: ConfigType::Int,
        default: Some("3"),
        validator: Validator::AtLeast(1),
        doc: "Replication factor of `__consumer_offsets` in a cluster (with `process.roles`); capped at the number of registered brokers.",
    },
    ConfigDef {
        name: "auto.create.topics.enable",
        kind: ConfigType::Boolean,
        default: Some("true"),
        validator: Validator::Any,
        doc: "Create a topic when a client asks Metadata for one that does not exist (with `num.partitions` partitions).",
    },
    ConfigDef {
        name: "num.partitions",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(1),
        doc: "Partitions of automatically created topics, and of CreateTopics requests that leave the count to the broker.",
    },
    ConfigDef {
        name: "default.replication.factor",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(1),
        doc: "Replication factor of automatically created topics.",
    },
    ConfigDef {
        name: "delete.topic.enable",
        kind: ConfigType::Boolean,
        default: Some("true"),
        validator: Validator::Any,
        doc: "Whether DeleteTopics is allowed.",
    },
    ConfigDef {
        name: "socket.request.max.bytes",
        kind: ConfigType::Int,
        default: Some("104857600"),
        validator: Validator::AtLeast(1),
        doc: "Largest request frame accepted; a larger frame closes the connection.",
    },
    ConfigDef {
        name: "log.retention.check.interval.ms",
        kind: ConfigType::Long,
        default: Some("300000"),
        validator: Validator::AtLeast(1),
        doc: "How often retention deletes expired segments.",
    },
    ConfigDef {
        name: "log.flush.scheduler.interval.ms",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(1),
        doc: "How often the flusher checks `flush.ms`; Kafka's default never runs it.",
    },
    ConfigDef {
        name: "log.cleaner.backoff.ms",
        kind: ConfigType::Long,
        default: Some("15000"),
        validator: Validator::AtLeast(0),
        doc: "How often the log cleaner looks for compacted logs to clean.",
    },
    ConfigDef {
        name: "log.cleaner.delete.retention.ms",
        kind: ConfigType::Long,
        default: Some("86400000"),
        validator: Validator::AtLeast(0),
        doc: "Default `delete.retention.ms` of topics.",
    },
    ConfigDef {
        name: "log.cleaner.min.cleanable.ratio",
        kind: ConfigType::Double,
        default: Some("0.5"),
        validator: Validator::Between(0.0, 1.0),
        doc: "Default `min.cleanable.dirty.ratio` of topics.",
    },
    ConfigDef {
        name: "log.cleaner.min.compaction.lag.ms",
        kind: ConfigType::Long,
        default: Some("0"),
        validator: Validator::AtLeast(0),
        doc: "Default `min.compaction.lag.ms` of topics.",
    },
    ConfigDef {
        name: "log.cleaner.max.compaction.lag.ms",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(1),
        doc: "Default `max.compaction.lag.ms` of topics.",
    },
    ConfigDef {
        name: "log.cleanup.policy",
        kind: ConfigType::List,
        default: Some("delete"),
        validator: Validator::ListOf(&["delete", "compact"]),
        doc: "Default `cleanup.policy` of topics.",
    },
    ConfigDef {
        name: "compression.type",
        kind: ConfigType::String,
        default: Some("producer"),
        validator: Validator::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        doc: "Default `compression.type` of topics.",
    },
    ConfigDef {
        name: "log.flush.interval.messages",
        kind: ConfigType::Long,
        default: Some(I64_MAX),
        validator: Validator::AtLeast(1),
        doc: "Default `flush.messages` of topics.",
    },
    ConfigDef {
        name: "log.flush.interval.ms",
        kind: ConfigType::Long,
        default: None,
        validator: Validator::AtLeast(0),
        doc: "Default `flush.ms` of topics.",
    },
    ConfigDef {
        name: "log.index.interval.bytes",
        kind: ConfigType::Int,
        default: Some("4096"),
        validator: Validator::AtLeast(0),
        doc: "Default `index.interval.bytes` of topics.",
    },
    ConfigDef {
        name: "message.max.bytes",
        kind: ConfigType::Int,
        default: Some("1048588"),
        validator: Validator::AtLeast(0),
        doc: "Default `max.message.bytes` of topics.",
    },
    ConfigDef {
        name: "log.message.timestamp.type",
        kind: ConfigType::String,
        default: Some("CreateTime"),
        validator: Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        doc: "Default `message.timestamp.type` of topics.",
    },
    ConfigDef {
        name: "min.insync.replicas",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(1),
        doc: "Default `min.insync.replicas` of topics.",
    },
    ConfigDef {
        name: "log.retention.bytes",
        kind: ConfigType::Long,
        default: Some("-1"),
        validator: Validator::AtLeast(-1),
        doc: "Default `retention.bytes` of topics.",
    },
    ConfigDef {
        name: "log.retention.ms",
        kind: ConfigType::Long,
        default: None,
        validator: Validator::AtLeast(-1),
        doc: "Default `retention.ms` of topics (wins over the minutes and hours forms).",
    },
    ConfigDef {
        name: "log.retention.minutes",
        kind: ConfigType::Int,
        default: None,
        validator: Validator::AtLeast(-1),
        doc: "Default retention in minutes, when `log.retention.ms` is not set.",
    },
    ConfigDef {
        name: "log.retention.hours",
        kind: ConfigType::Int,
        default: Some("168"),
        validator: Validator::AtLeast(-1),
        doc: "Default retention in hours, when neither finer form is set.",
    },
    ConfigDef {
        name: "log.segment.bytes",
        kind: ConfigType::Int,
        default: Some("1073741824"),
        validator: Validator::AtLeast(14),
        doc: "Default `segment.bytes` of topics.",
    },
    ConfigDef {
        name: "log.roll.ms",
        kind: ConfigType::Long,
        default: None,
        validator: Validator::AtLeast(1),
        doc: "Default `segment.ms` of topics (wins over `log.roll.hours`).",
    },
    ConfigDef {
        name: "log.roll.hours",
        kind: ConfigType::Int,
        default: Some("168"),
        validator: Validator::AtLeast(1),
        doc: "Default segment age before a roll, in hours.",
    },
    ConfigDef {
        name: "group.initial.rebalance.delay.ms",
        kind: ConfigType::Int,
        default: Some("3000"),
        validator: Validator::AtLeast(0),
        doc: "How long the first rebalance of an empty group waits for more members to join (extended while they keep joining, up to the rebalance timeout).",
    },
    ConfigDef {
        name: "group.min.session.timeout.ms",
        kind: ConfigType::Int,
        default: Some("6000"),
        validator: Validator::AtLeast(0),
        doc: "Smallest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT below it).",
    },
    ConfigDef {
        name: "group.max.session.timeout.ms",
        kind: ConfigType::Int,
        default: Some("1800000"),
        validator: Validator::AtLeast(0),
        doc: "Largest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT above it).",
    },
    ConfigDef {
        name: "group.max.size",
        kind: ConfigType::Int,
        default: Some("2147483647"),
        validator: Validator::AtLeast(1),
        doc: "Most members a consumer group may have (GROUP_MAX_SIZE_REACHED beyond).",
    },
    ConfigDef {
        name: "offsets.topic.num.partitions",
        kind: ConfigType::Int,
        default: Some("50"),
        validator: Validator::AtLeast(1),
        doc: "Partitions of the internal `__consumer_offsets` topic, created on first use; a group's offsets live in partition `hash(group) % this`.",
    },
    ConfigDef {
        name: "offsets.retention.minutes",
        kind: ConfigType::Int,
        default: Some("10080"),
        validator: Validator::AtLeast(1),
        doc: "Committed offsets of a group without active members are deleted this long after they were committed.",
    },
    ConfigDef {
        name: "offsets.retention.check.interval.ms",
        kind: ConfigType::Long,
        default: Some("600000"),
        validator: Validator::AtLeast(1),
        doc: "How often expired committed offsets are looked for.",
    },
    ConfigDef {
        name: "offsets.topic.segment.bytes",
        kind: ConfigType::Int,
        default: Some("104857600"),
        validator: Validator::AtLeast(1),
        doc: "Segment size of `__consumer_offsets` (kept small so compaction can clean it).",
    },
];

/// Keys accepted as another name of a registered key.
const ALIASES: &[(&str, &str)] = &[("broker.id", "node.id")];

/// A broker's validated configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// The address to bind, from `listeners`.
    pub listener: SocketAddr,
    /// `advertised.listeners` host and port, if set.
    pub advertised: Option<(String, u16)>,
    /// `log.dirs` / `log.dir`.
    pub data_dir: PathBuf,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`.
    pub flush_scheduler_interval_ms: u64,
    /// `log.cleaner.backoff.ms`.
    pub cleaner_backoff_ms: u64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// KRaft settings, when `process.roles` is set.
    pub cluster: Option<ClusterSettings>,
    /// Every key set explicitly, validated (topic defaults are resolved from these).
    values: BTreeMap<String, String>,
}

/// A node's cluster settings (`process.roles`, the quorum, the timeouts).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// `process.roles` contains `broker`.
    pub broker: bool,
    /// `process.roles` contains `controller`.
    pub controller: bool,
    /// The controller listener's address (from `listeners`), for controllers.
    pub controller_listener: Option<SocketAddr>,
    /// `controller.quorum.voters`: node id to `host:port`.
    pub voters: BTreeMap<u64, String>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
}

impl BrokerConfig {
    /// Validates explicitly set values (Kafka key names) and fills in defaults. Unknown keys are
    /// logged once and ignored, so a Kafka `server.properties` loads as it is.
    pub fn from_values(values: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut known = BTreeMap::new();
        for (key, value) in values {
            let key = ALIASES
                .iter()
                .find(|(alias, _)| *alias == key)
                .map_or(key.clone(), |(_, k)| k.to_string());
            match find(BROKER_CONFIGS, &key) {
                Some(def) => {
                    def.validate(&value)?;
                    known.insert(key, value.trim().to_string());
                }
                None => tracing::warn!(key = %key, "ignoring unknown broker config"),
            }
        }
        let mut all: BTreeMap<String, String> = BROKER_CONFIGS
            .iter()
            .filter_map(|d| d.default.map(|v| (d.name.to_string(), v.to_string())))
            .collect();
        all.extend(known.clone());
        let listeners = all.get("listeners").cloned().unwrap_or_default();
        let cluster = parse_cluster(&all)?;
        let controller_only = cluster.as_ref().is_some_and(|c| !c.broker);
        let listener = if controller_only {
            "127.0.0.1:0".parse().ok()
        } else {
            parse_listener(&listeners)?
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
        };
        let listener =
            listener.ok_or_else(|| invalid("listeners", &listeners, "host does not resolve"))?;
        let advertised = match all.get("advertised.listeners") {
            Some(text) => {
                let (host, port) = parse_listener(text)?;
                Some((host, port))
            }
            None => None,
        };
        let data_dir = match all.get("log.dirs").or_else(|| all.get("log.dir")) {
            Some(dirs) if dirs.contains(',') => {
                return Err(invalid(
                    "log.dirs",
                    dirs,
                    "only one log directory is supported",
                ));
            }
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from("./fjord-data"),
        };
        let flag = |key: &str| all.get(key).and_then(|v| parse_bool(v)).unwrap_or(false);
        Ok(BrokerConfig {
            node_id: get(&all, "node.id").unwrap_or(1),
            listener,
            advertised,
            data_dir,
            auto_create_topics: flag("auto.create.topics.enable"),
            num_partitions: get(&all, "num.partitions").unwrap_or(1),
            default_replication_factor: get(&all, "default.replication.factor").unwrap_or(1),
            delete_topic_enable: flag("delete.topic.enable"),
            socket_request_max_bytes: get(&all, "socket.request.max.bytes").unwrap_or(104_857_600),
            retention_check_interval_ms: get(&all, "log.retention.check.interval.ms")
                .unwrap_or(300_000),
            flush_scheduler_interval_ms: get(&all, "log.flush.scheduler.interval.ms")
                .unwrap_or(u64::MAX),
            cleaner_backoff_ms: get(&all, "log.cleaner.backoff.ms").unwrap_or(15_000),
            group_initial_rebalance_delay_ms: get(&all, "group.initial.rebalance.delay.ms")
                .unwrap_or(3_000),
            group_min_session_timeout_ms: get(&all, "group.min.session.timeout.ms")
                .unwrap_or(6_000),
            group_max_session_timeout_ms: get(&all, "group.max.session.timeout.ms")
                .unwrap_or(1_800_000),
            group_max_size: get(&all, "group.max.size").unwrap_or(i32::MAX),
            offsets_topic_num_partitions: get(&all, "offsets.topic.num.partitions").unwrap_or(50),
            offsets_topic_segment_bytes: get(&all, "offsets.topic.segment.bytes")
                .unwrap_or(104_857_600),
            offsets_retention_minutes: get(&all, "offsets.retention.minutes").unwrap_or(10_080),
            offsets_retention_check_interval_ms: get(&all, "offsets.retention.check.interval.ms")
                .unwrap_or(600_000),
            cluster,
            values: known,
        })
    }

    /// The explicitly set values (from which topic defaults resolve).
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Every broker config with its effective value and whether it was set explicitly.
    pub fn entries(&self) -> impl Iterator<Item = (&'static ConfigDef, Option<&str>, bool)> {
        BROKER_CONFIGS
            .iter()
            .map(|def| match self.values.get(def.name) {
                Some(v) => (def, Some(v.as_str()), true),
                None => (def, def.default, false),
            })
    }

    /// Reads a config file: TOML when the name ends in `.toml`, Java properties otherwise.
    /// Nested TOML tables flatten to dotted keys, so `log.retention.ms = 1000` means what it
    /// says in either format.
    pub fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "toml") {
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::File {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?;
            let mut out = BTreeMap::new();
            flatten_toml("", &toml::Value::Table(table), &mut out);
            Ok(out)
        } else {
            Ok(parse_properties(&text))
        }
    }

    /// Broker configs from `FJORD_*` variables: `FJORD_LOG_RETENTION_MS` is `log.retention.ms`.
    /// Only names of registered keys are taken.
    pub fn from_env(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
        vars.filter_map(|(name, value)| {
            let key = name
                .strip_prefix("FJORD_")?
                .to_ascii_lowercase()
                .replace('_', ".");
            let known =
                find(BROKER_CONFIGS, &key).is_some() || ALIASES.iter().any(|(a, _)| *a == key);
            known.then_some((key, value))
        })
        .collect()
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// The KRaft settings, when `process.roles` is set.
fn parse_cluster(all: &BTreeMap<String, String>) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(roles) = all.get("process.roles") else {
        return Ok(None);
    };
    let roles: Vec<&str> = roles.split(',').map(str::trim).collect();
    let broker = roles.contains(&"broker");
    let controller = roles.contains(&"controller");
    if !broker && !controller {
        return Err(invalid(
            "process.roles",
            &roles.join(","),
            "expected broker, controller or both",
        ));
    }
    let voters_text = all
        .get("controller.quorum.voters")
        .cloned()
        .unwrap_or_default();
    let mut voters = BTreeMap::new();
    for voter in voters_text
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let (id, addr) = voter.split_once('@').ok_or_else(|| {
            invalid(
                "controller.quorum.voters",
                &voters_text,
                "expected id@host:port entries",
            )
        })?;
        let id: u64 = id.trim().parse().map_err(|_| {
            invalid(
                "controller.quorum.voters",
                &voters_text,
                "a voter id is not a number",
            )
        })?;
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                "a voter address is not host:port",
            ));
        }
        voters.insert(id, addr.trim().to_string());
    }
    if voters.is_empty() {
        return Err(invalid(
            "controller.quorum.voters",
            &voters_text,
            "process.roles needs the quorum's voters (id@host:port,...)",
        ));
    }
    let node_id: u64 = get(all, "node.id").unwrap_or(1);
    let names: Vec<String> = all
        .get("controller.listener.names")
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_else(|| vec!["CONTROLLER".into()]);
    let listeners = all.get("listeners").cloned().unwrap_or_default();
    let controller_listener = if controller {
        if !voters.contains_key(&node_id) {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                &format!("node.id {node_id} has the controller role but is not a voter"),
            ));
        }
        let entry = listeners
            .split(',')
            .map(str::trim)
            .find(|l| {
                l.split_once("://")
                    .is_some_and(|(name, _)| names.contains(&name.to_ascii_uppercase()))
            })
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &listeners,
                    "a controller needs a CONTROLLER://HOST:PORT listener",
                )
            })?;
        let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
        let addr = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| invalid("listeners", &listeners, "controller host does not resolve"))?;
        Some(addr)
    } else {
        None
    };
    let flag =
        |key: &str, default: bool| all.get(key).and_then(|v| parse_bool(v)).unwrap_or(default);
    Ok(Some(ClusterSettings {
        broker,
        controller,
        controller_listener,
        voters,
        rack: all.get("broker.rack").cloned(),
        session_timeout_ms: get(all, "broker.session.timeout.ms").unwrap_or(9_000),
        heartbeat_interval_ms: get(all, "broker.heartbeat.interval.ms").unwrap_or(2_000),
        election_timeout_ms: get(all, "controller.quorum.election.timeout.ms").unwrap_or(1_000),
        replica_lag_time_max_ms: get(all, "replica.lag.time.max.ms").unwrap_or(30_000),
        replica_fetch_wait_max_ms: get(all, "replica.fetch.wait.max.ms").unwrap_or(500),
        replica_fetch_max_bytes: get(all, "replica.fetch.max.bytes").unwrap_or(1_048_576),
        unclean_leader_election: flag("unclean.leader.election.enable", false),
        auto_leader_rebalance: flag("auto.leader.rebalance.enable", true),
        leader_imbalance_check_interval_ms: get::<u64>(
            all,
            "leader.imbalance.check.interval.seconds",
        )
        .unwrap_or(300)
        .saturating_mul(1000),
        offsets_topic_replication_factor: get(all, "offsets.topic.replication.factor").unwrap_or(3),
    }))
}

/// Picks the client listener from a `listeners` value and splits it into host and port.
fn parse_listener(text: &str) -> Result<(String, u16), ConfigError> {
    let entry = text
        .split(',')
        .map(str::trim)
        .find(|l| !l.to_ascii_uppercase().starts_with("CONTROLLER:"))
        .ok_or_else(|| invalid("listeners", text, "no client listener"))?;
    let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("listeners", text, "expected PLAINTEXT://HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid("listeners", text, "port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

fn flatten_toml(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_toml(&key, value, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(items) => {
            let joined: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
                .collect();
            out.insert(prefix.to_string(), joined.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Parses Java `.properties` text: `key=value` or `key: value`, `#`/`!` comments.
fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_server_properties_load_as_they_are() {
        let text = "# Kafka\nbroker.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
                    log.dirs=/tmp/x\nnum.network.threads=3\nlog.retention.hours=1\n";
        let config = BrokerConfig::from_values(parse_properties(text)).expect("valid");
        assert_eq!(config.node_id, 3);
        assert_eq!(config.listener.port(), 19092);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            config
                .values()
                .get("log.retention.hours")
                .map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn toml_dotted_keys_flatten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fjord.toml");
        std::fs::write(&path, "num.partitions = 4\nlog.retention.ms = 1000\nlisteners = \"PLAINTEXT://127.0.0.1:0\"\n")
            .expect("write");
        let values = BrokerConfig::read_file(&path).expect("parse");
        assert_eq!(
            values.get("log.retention.ms").map(String::as_str),
            Some("1000")
        );
        let config = BrokerConfig::from_values(values).expect("valid");
        assert_eq!(config.num_partitions, 4);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut values = BTreeMap::new();
        values.insert("num.partitions".to_string(), "zero".to_string());
        let err = BrokerConfig::from_values(values).unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
    }

    #[test]
    fn env_vars_map_to_registered_keys_only() {
        let vars = vec![
            ("FJORD_LOG_RETENTION_MS".to_string(), "5".to_string()),
            ("FJORD_BIN".to_string(), "/x".to_string()),
        ];
        let values = BrokerConfig::from_env(vars.into_iter());
        assert_eq!(values.len(), 1);
        assert_eq!(
            values.get("log.retention.ms").map(String::as_str),
            Some("5")
        );
    }
}
