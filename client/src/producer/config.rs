//! Producer configuration: a typed builder and Kafka's property names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::producer::partitioner::{DefaultPartitioner, Partitioner};

/// How many replicas must have a batch before the broker answers (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has written the batch.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has the batch.
    All,
}

impl Acks {
    /// The wire value.
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// `compression.type` of produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub(crate) fn codec(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as C;
        match self {
            Compression::None => C::None,
            Compression::Gzip => C::Gzip,
            Compression::Snappy => C::Snappy,
            Compression::Lz4 => C::Lz4,
            Compression::Zstd => C::Zstd,
        }
    }
}

/// The producer's settings; defaults are the Java client's.
#[derive(Clone)]
pub struct ProducerConfig {
    /// `bootstrap.servers`: `host:port` of brokers to learn the cluster from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `acks` (default all).
    pub acks: Acks,
    /// `linger.ms`: how long a batch waits for more records (default 5 ms).
    pub linger: Duration,
    /// `batch.size`: a batch is sent when it holds this many bytes (default 16384).
    pub batch_size: usize,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `retries` (default `i32::MAX`; `delivery.timeout.ms` bounds them).
    pub retries: u32,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff: Duration,
    /// `delivery.timeout.ms`: the bound from `send` to success or failure (default 120 s).
    pub delivery_timeout: Duration,
    /// `request.timeout.ms` (default 30 s).
    pub request_timeout: Duration,
    /// `max.block.ms`: how long `send` waits for metadata and buffer space (default 60 s).
    pub max_block: Duration,
    /// `max.in.flight.requests.per.connection` (default 5). Requests to one broker are sent one
    /// at a time today, so any value of at least 1 behaves like 1.
    pub max_in_flight: u32,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits (default 32 MiB).
    pub buffer_memory: usize,
    /// `max.request.size`: the largest record accepted (default 1 MiB).
    pub max_request_size: usize,
    /// `enable.idempotence` (default true, as in the Java client since 3.0).
    pub enable_idempotence: bool,
    /// Chooses partitions (`partitioner.class`; default murmur2 of the key, sticky for no key).
    pub partitioner: Arc<dyn Partitioner>,
}

impl fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("acks", &self.acks)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("compression", &self.compression)
            .field("retries", &self.retries)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("buffer_memory", &self.buffer_memory)
            .field("enable_idempotence", &self.enable_idempotence)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".into()],
            client_id: String::new(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_millis(120_000),
            request_timeout: Duration::from_millis(30_000),
            max_block: Duration::from_millis(60_000),
            max_in_flight: 5,
            buffer_memory: 32 * 1024 * 1024,
            max_request_size: 1024 * 1024,
            enable_idempotence: true,
            partitioner: Arc::new(DefaultPartitioner::new()),
        }
    }
}

/// Keys this producer knows; others are warned about once.
const KNOWN: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "retries",
    "retry.backoff.ms",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "max.block.ms",
    "max.in.flight.requests.per.connection",
    "buffer.memory",
    "max.request.size",
    "enable.idempotence",
    "partitioner.class",
    "partitioner",
];

fn invalid(key: &str, value: &str, reason: &str) -> Error {
    Error::Config {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not a valid number"))
}

fn millis(key: &str, value: &str) -> Result<Duration> {
    Ok(Duration::from_millis(number::<u64>(key, value)?))
}

impl ProducerConfig {
    /// Defaults with these bootstrap servers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        let servers: String = bootstrap_servers.into();
        ProducerConfig {
            bootstrap_servers: split_servers(&servers),
            ..Default::default()
        }
    }

    /// Parses Kafka producer properties. Unknown keys are logged once (at warn) and ignored;
    /// a value that does not parse is an [`Error::Config`] naming the key.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        let mut config = ProducerConfig::default();
        let mut idempotence_set = false;
        let mut acks_set = false;
        for (key, value) in properties {
            let v = value.trim();
            match key.as_str() {
                "bootstrap.servers" => {
                    config.bootstrap_servers = split_servers(v);
                    if config.bootstrap_servers.is_empty() {
                        return Err(invalid(key, value, "no server given"));
                    }
                }
                "client.id" => config.client_id = v.to_string(),
                "acks" => {
                    acks_set = true;
                    config.acks = match v {
                        "0" => Acks::None,
                        "1" => Acks::Leader,
                        "-1" | "all" => Acks::All,
                        _ => return Err(invalid(key, value, "expected 0, 1, -1 or all")),
                    }
                }
                "linger.ms" => config.linger = millis(key, v)?,
                "batch.size" => config.batch_size = number(key, v)?,
                "compression.type" => {
                    config.compression = match v {
                        "none" => Compression::None,
                        "gzip" => Compression::Gzip,
                        "snappy" => Compression::Snappy,
                        "lz4" => Compression::Lz4,
                        "zstd" => Compression::Zstd,
                        _ => {
                            return Err(invalid(
                                key,
                                value,
                                "expected none, gzip, snappy, lz4 or zstd",
                            ));
                        }
                    }
                }
                "retries" => config.retries = number(key, v)?,
                "retry.backoff.ms" => config.retry_backoff = millis(key, v)?,
                "delivery.timeout.ms" => config.delivery_timeout = millis(key, v)?,
                "request.timeout.ms" => config.request_timeout = millis(key, v)?,
                "max.block.ms" => config.max_block = millis(key, v)?,
                "max.in.flight.requests.per.connection" => {
                    config.max_in_flight = number(key, v)?;
                    if config.max_in_flight == 0 {
                        return Err(invalid(key, value, "must be at least 1"));
                    }
                }
                "buffer.memory" => config.buffer_memory = number(key, v)?,
                "max.request.size" => config.max_request_size = number(key, v)?,
                "enable.idempotence" => {
                    idempotence_set = true;
                    config.enable_idempotence = match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid(key, value, "expected true or false")),
                    }
                }
                "partitioner.class" | "partitioner" => match v {
                    ""
                    | "default"
                    | "murmur2"
                    | "murmur2_random"
                    | "org.apache.kafka.clients.producer.internals.DefaultPartitioner"
                    | "org.apache.kafka.clients.producer.internals.BuiltInPartitioner" => {}
                    _ => {
                        return Err(invalid(
                            key,
                            value,
                            "only the default murmur2 partitioner is available by name; \
                             set a custom one with ProducerConfig::with_partitioner",
                        ));
                    }
                },
                _ => warn_unknown(key),
            }
        }
        // As the Java client: idempotence left at its default yields to conflicting settings.
        if !idempotence_set && acks_set && config.acks != Acks::All {
            config.enable_idempotence = false;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(invalid("bootstrap.servers", "", "no server given"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch.size", "0", "must be at least 1"));
        }
        if self.buffer_memory == 0 {
            return Err(invalid("buffer.memory", "0", "must be at least 1"));
        }
        if self.enable_idempotence && self.acks != Acks::All {
            return Err(invalid(
                "acks",
                &self.acks.code().to_string(),
                "must be all (-1) when enable.idempotence is true",
            ));
        }
        Ok(())
    }

    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        if acks != Acks::All {
            self.enable_idempotence = false;
        }
        self
    }
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }
    pub fn with_max_block(mut self, timeout: Duration) -> Self {
        self.max_block = timeout;
        self
    }
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }
    pub fn with_idempotence(mut self, enabled: bool) -> Self {
        self.enable_idempotence = enabled;
        self
    }
    pub fn with_partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }
}

fn split_servers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Warns about an unknown key once per process.
fn warn_unknown(key: &str) {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, OnceLock};
    static WARNED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    let warned = WARNED.get_or_init(Default::default);
    let first = warned
        .lock()
        .map(|mut w| w.insert(key.to_string()))
        .unwrap_or(false);
    if first && !KNOWN.contains(&key) {
        tracing::warn!(key, "unknown producer config, ignored");
    }
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
    fn kafka_property_names_are_parsed() {
        let config = ProducerConfig::from_properties(&props(&[
            ("bootstrap.servers", "a:1, b:2"),
            ("client.id", "me"),
            ("acks", "1"),
            ("linger.ms", "20"),
            ("batch.size", "1000"),
            ("compression.type", "zstd"),
            ("retries", "3"),
            ("retry.backoff.ms", "7"),
            ("delivery.timeout.ms", "5000"),
            ("max.in.flight.requests.per.connection", "1"),
            ("buffer.memory", "4096"),
            ("partitioner.class", "murmur2_random"),
        ]))
        .expect("valid");
        assert_eq!(config.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(config.client_id, "me");
        assert_eq!(config.acks, Acks::Leader);
        assert_eq!(config.linger, Duration::from_millis(20));
        assert_eq!(config.batch_size, 1000);
        assert_eq!(config.compression, Compression::Zstd);
        assert_eq!(config.retries, 3);
        assert_eq!(config.retry_backoff, Duration::from_millis(7));
        assert_eq!(config.delivery_timeout, Duration::from_secs(5));
        assert_eq!(config.max_in_flight, 1);
        assert_eq!(config.buffer_memory, 4096);
        // acks=1 without an explicit enable.idempotence turns idempotence off, as in Java.
        assert!(!config.enable_idempotence);
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (key, value) in [
            ("acks", "2"),
            ("linger.ms", "soon"),
            ("batch.size", "-1"),
            ("compression.type", "brotli"),
            ("enable.idempotence", "yes"),
            ("max.in.flight.requests.per.connection", "0"),
            ("partitioner.class", "com.example.Mine"),
        ] {
            let err = ProducerConfig::from_properties(&props(&[(key, value)]))
                .expect_err("invalid value accepted");
            match &err {
                Error::Config { key: k, .. } => assert_eq!(k, key),
                other => panic!("expected a config error, got {other}"),
            }
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn explicit_idempotence_conflicts_with_acks_1() {
        let err = ProducerConfig::from_properties(&props(&[
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ]))
        .expect_err("conflict accepted");
        assert!(matches!(err, Error::Config { ref key, .. } if key == "acks"));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let config = ProducerConfig::from_properties(&props(&[("sasl.nonsense", "x")]))
            .expect("unknown keys are not errors");
        assert_eq!(config.acks, Acks::All);
        assert!(config.enable_idempotence);
    }
}
