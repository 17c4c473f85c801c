//! [`StreamsConfig`]: the application's settings, by Kafka Streams' property names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::task::DeserializationHandler;

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// `at_least_once`: offsets are committed after state and output are flushed.
    #[default]
    AtLeastOnce,
}

/// Settings of a streams application.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of internal topics. Required.
    pub application_id: String,
    /// `bootstrap.servers`. Required.
    pub bootstrap_servers: String,
    /// `state.dir`: where stores live (`{state.dir}/{application.id}/`). Default: the system
    /// temporary directory + `fjord-streams`.
    pub state_dir: PathBuf,
    /// `commit.interval.ms`: how often state is flushed and offsets committed. Default 30000.
    pub commit_interval: Duration,
    /// `num.stream.threads`: consumers (and threads) per instance. Default 1.
    pub num_stream_threads: usize,
    /// `processing.guarantee`: `at_least_once` (the only one until the broker has
    /// transactions).
    pub processing_guarantee: ProcessingGuarantee,
    /// `default.deserialization.exception.handler`: `LogAndFailExceptionHandler` (default),
    /// `LogAndContinueExceptionHandler`, or dead-letter with `errors.dead.letter.queue.topic.name`.
    pub deserialization_handler: DeserializationHandler,
    /// `replication.factor` of internal topics (-1: the broker default). Default -1.
    pub replication_factor: i16,
    /// `poll.ms`: how long a poll waits for records. Default 100.
    pub poll: Duration,
    /// `client.id` prefix of the consumers and producers. Default: the application id.
    pub client_id: String,
    /// Properties passed to the consumers (`consumer.` prefix, e.g. `consumer.session.timeout.ms`).
    pub consumer: BTreeMap<String, String>,
    /// Properties passed to the producers (`producer.` prefix, e.g. `producer.linger.ms`).
    pub producer: BTreeMap<String, String>,
}

fn invalid(key: &str, value: &str, reason: &str) -> Error {
    Error::Config {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

impl StreamsConfig {
    /// Defaults with the two required settings.
    pub fn new(application_id: &str, bootstrap_servers: &str) -> Self {
        StreamsConfig {
            application_id: application_id.to_string(),
            bootstrap_servers: bootstrap_servers.to_string(),
            state_dir: std::env::temp_dir().join("fjord-streams"),
            commit_interval: Duration::from_secs(30),
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            deserialization_handler: DeserializationHandler::LogAndFail,
            replication_factor: -1,
            poll: Duration::from_millis(100),
            client_id: application_id.to_string(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }

    /// Parses Kafka Streams properties; an unknown key or a bad value is an error naming it.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        let required = |key: &str| {
            properties
                .get(key)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| invalid(key, "", "required"))
        };
        let mut config = Self::new(
            &required("application.id")?,
            &required("bootstrap.servers")?,
        );
        let mut handler = None;
        let mut dead_letter = None;
        for (key, value) in properties {
            let ms = || {
                value
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| invalid(key, value, "expected milliseconds"))
            };
            match key.as_str() {
                "application.id" | "bootstrap.servers" => {}
                "state.dir" => config.state_dir = PathBuf::from(value),
                "commit.interval.ms" => config.commit_interval = ms()?,
                "poll.ms" => config.poll = ms()?,
                "client.id" => config.client_id = value.clone(),
                "num.stream.threads" => {
                    config.num_stream_threads = value
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid(key, value, "expected a positive integer"))?;
                }
                "replication.factor" => {
                    config.replication_factor = value
                        .trim()
                        .parse::<i16>()
                        .ok()
                        .filter(|n| *n == -1 || *n >= 1)
                        .ok_or_else(|| invalid(key, value, "expected -1 or a positive integer"))?;
                }
                "processing.guarantee" => match value.trim() {
                    "at_least_once" => {}
                    "exactly_once" | "exactly_once_beta" | "exactly_once_v2" => {
                        return Err(invalid(
                            key,
                            value,
                            "exactly-once needs broker transactions, which Fjord does not have yet; use at_least_once",
                        ));
                    }
                    _ => return Err(invalid(key, value, "expected at_least_once")),
                },
                "default.deserialization.exception.handler"
                | "deserialization.exception.handler" => {
                    let name = value.trim().rsplit('.').next().unwrap_or_default();
                    handler = Some(match name {
                        "LogAndFailExceptionHandler" => DeserializationHandler::LogAndFail,
                        "LogAndContinueExceptionHandler" => DeserializationHandler::LogAndContinue,
                        _ => {
                            return Err(invalid(
                                key,
                                value,
                                "expected LogAndFailExceptionHandler or LogAndContinueExceptionHandler",
                            ));
                        }
                    });
                }
                "errors.dead.letter.queue.topic.name" => {
                    dead_letter = Some(value.trim().to_string()).filter(|v| !v.is_empty());
                }
                other => {
                    if let Some(k) = other.strip_prefix("consumer.") {
                        config.consumer.insert(k.to_string(), value.clone());
                    } else if let Some(k) = other.strip_prefix("producer.") {
                        config.producer.insert(k.to_string(), value.clone());
                    } else {
                        return Err(invalid(key, value, "unknown streams config"));
                    }
                }
            }
        }
        // Kafka (KIP-1034): with a dead-letter topic, records the handler would skip or fail
        // on go there instead.
        config.deserialization_handler = match (dead_letter, handler) {
            (Some(topic), _) => DeserializationHandler::DeadLetter(topic),
            (None, Some(h)) => h,
            (None, None) => DeserializationHandler::LogAndFail,
        };
        Ok(config)
    }

    /// Sets the state directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Sets `commit.interval.ms`.
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Sets `num.stream.threads`.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.num_stream_threads = threads.max(1);
        self
    }

    /// Sets the deserialization exception handler.
    pub fn with_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization_handler = handler;
        self
    }

    /// Sets a consumer property (Kafka's name, without the `consumer.` prefix).
    pub fn with_consumer_property(mut self, key: &str, value: &str) -> Self {
        self.consumer.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets a producer property (Kafka's name, without the `producer.` prefix).
    pub fn with_producer_property(mut self, key: &str, value: &str) -> Self {
        self.producer.insert(key.to_string(), value.to_string());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.application_id.is_empty()
            || !self
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "application.id",
                &self.application_id,
                "use letters, digits, '.', '_' and '-' (it prefixes topic names)",
            ));
        }
        if self.commit_interval.is_zero() {
            return Err(invalid("commit.interval.ms", "0", "must be positive"));
        }
        Ok(())
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
    fn properties_parse_with_kafka_names() {
        let c = StreamsConfig::from_properties(&props(&[
            ("application.id", "wc"),
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("commit.interval.ms", "250"),
            ("num.stream.threads", "2"),
            ("state.dir", "/tmp/x"),
            ("processing.guarantee", "at_least_once"),
            (
                "default.deserialization.exception.handler",
                "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
            ),
            ("consumer.session.timeout.ms", "6000"),
        ]))
        .unwrap();
        assert_eq!(c.commit_interval, Duration::from_millis(250));
        assert_eq!(c.num_stream_threads, 2);
        assert_eq!(
            c.deserialization_handler,
            DeserializationHandler::LogAndContinue
        );
        assert_eq!(
            c.consumer.get("session.timeout.ms").map(String::as_str),
            Some("6000")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let base = [("application.id", "wc"), ("bootstrap.servers", "h:1")];
        for (key, value) in [
            ("commit.interval.ms", "soon"),
            ("num.stream.threads", "0"),
            ("processing.guarantee", "exactly_once_v2"),
            ("no.such.key", "1"),
        ] {
            let mut p = props(&base);
            p.insert(key.into(), value.into());
            let err = StreamsConfig::from_properties(&p).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err =
            StreamsConfig::from_properties(&props(&[("bootstrap.servers", "h:1")])).unwrap_err();
        assert!(err.to_string().contains("application.id"), "{err}");
        let mut p = props(&base);
        p.insert("errors.dead.letter.queue.topic.name".into(), "dlq".into());
        assert_eq!(
            StreamsConfig::from_properties(&p)
                .unwrap()
                .deserialization_handler,
            DeserializationHandler::DeadLetter("dlq".into())
        );
    }
}
