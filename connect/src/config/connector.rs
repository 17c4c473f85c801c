//! A connector's config: Kafka Connect's common keys (`name`, `connector.class`, `tasks.max`,
//! converters, `transforms`, `predicates`, `errors.*`, sink `topics`/`topics.regex`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::def::{ConfigDef, ConfigKey, ConfigType, Importance};
use crate::error::{Error, Result};

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTolerance {
    /// Any error fails the task.
    None,
    /// Problem records are skipped (and sent to the dead-letter queue if one is set).
    All,
}

/// The `errors.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorsConfig {
    pub tolerance: ErrorTolerance,
    /// `errors.retry.timeout` (0: no retries; -1: forever).
    pub retry_timeout: Option<Duration>,
    pub retry_forever: bool,
    /// `errors.retry.delay.max.ms` (default 60000).
    pub retry_delay_max: Duration,
    /// `errors.log.enable`.
    pub log_enable: bool,
    /// `errors.log.include.messages`.
    pub log_include_messages: bool,
    /// `errors.deadletterqueue.topic.name` (empty: none).
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.topic.replication.factor` (default 3; Fjord caps at the broker count).
    pub dlq_replication_factor: i16,
    /// `errors.deadletterqueue.context.headers.enable`.
    pub dlq_context_headers: bool,
}

/// A connector's validated common config; `values` keeps every key (the connector's own too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    pub name: String,
    pub class: String,
    pub tasks_max: usize,
    pub values: BTreeMap<String, String>,
    pub errors: ErrorsConfig,
}

const COMMON: &str = "Common";
const ERRORS: &str = "Error Handling";

/// The keys every connector has.
pub(crate) fn common_def() -> ConfigDef {
    ConfigDef::new([
        ConfigKey::new("name", ConfigType::String, None, Importance::High,
            "Globally unique name to use for this connector.").in_group(COMMON),
        ConfigKey::new("connector.class", ConfigType::String, None, Importance::High,
            "Name or alias of the class for this connector.").in_group(COMMON),
        ConfigKey::new("tasks.max", ConfigType::Int, Some("1"), Importance::High,
            "Maximum number of tasks to use for this connector.").in_group(COMMON),
        ConfigKey::new("key.converter", ConfigType::Class, Some(""), Importance::Low,
            "Converter class for keys; the worker's when empty.").in_group(COMMON),
        ConfigKey::new("value.converter", ConfigType::Class, Some(""), Importance::Low,
            "Converter class for values; the worker's when empty.").in_group(COMMON),
        ConfigKey::new("header.converter", ConfigType::Class, Some(""), Importance::Low,
            "Header converter class (SimpleHeaderConverter semantics).").in_group(COMMON),
        ConfigKey::new("transforms", ConfigType::List, Some(""), Importance::Low,
            "Aliases for the transformations to be applied to records.").in_group("Transforms"),
        ConfigKey::new("predicates", ConfigType::List, Some(""), Importance::Low,
            "Aliases for the predicates used by transformations.").in_group("Predicates"),
        ConfigKey::new("errors.retry.timeout", ConfigType::Long, Some("0"), Importance::Medium,
            "Maximum duration in milliseconds that a failed operation will be reattempted; -1 for infinite.").in_group(ERRORS),
        ConfigKey::new("errors.retry.delay.max.ms", ConfigType::Long, Some("60000"), Importance::Medium,
            "Maximum duration in milliseconds between consecutive retry attempts.").in_group(ERRORS),
        ConfigKey::new("errors.tolerance", ConfigType::String, Some("none"), Importance::Medium,
            "Behavior for tolerating errors during connector operation: none or all.").in_group(ERRORS).one_of(&["none", "all"]),
        ConfigKey::new("errors.log.enable", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Log each error and the details of the failed operation.").in_group(ERRORS),
        ConfigKey::new("errors.log.include.messages", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Include the record that caused a failure in the log.").in_group(ERRORS),
        ConfigKey::new("errors.deadletterqueue.topic.name", ConfigType::String, Some(""), Importance::Medium,
            "The topic for failed records (sinks, and in Fjord sources too).").in_group(ERRORS),
        ConfigKey::new("errors.deadletterqueue.topic.replication.factor", ConfigType::Int, Some("3"), Importance::Medium,
            "Replication factor used to create the dead letter queue topic.").in_group(ERRORS),
        ConfigKey::new("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Add __connect.errors.* headers with the error context to dead-letter records.").in_group(ERRORS),
    ])
}

/// The extra keys of sink connectors.
pub(crate) fn sink_def() -> ConfigDef {
    ConfigDef::new([
        ConfigKey::new(
            "topics",
            ConfigType::List,
            Some(""),
            Importance::High,
            "List of topics to consume, separated by commas.",
        )
        .in_group(COMMON),
        ConfigKey::new(
            "topics.regex",
            ConfigType::String,
            Some(""),
            Importance::High,
            "Regular expression giving topics to consume.",
        )
        .in_group(COMMON),
    ])
}

/// `true`/`false` (case-insensitive), or an error naming the key.
pub fn parse_bool(values: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match values.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(Error::config(
            key,
            v,
            "Expected value to be either true or false",
        )),
    }
}

/// A comma-separated list with blanks dropped.
pub fn parse_list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn parse_i64(values: &BTreeMap<String, String>, key: &str, default: i64) -> Result<i64> {
    match values.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Error::config(key, v, "Not a number of type LONG")),
    }
}

impl ConnectorConfig {
    /// Validates the common keys (types, required keys, errors.*).
    pub fn parse(values: BTreeMap<String, String>) -> Result<Self> {
        common_def().check(&values)?;
        let name = values.get("name").cloned().unwrap_or_default();
        if name.trim().is_empty() {
            return Err(Error::config(
                "name",
                &name,
                "Connector name must not be empty",
            ));
        }
        let class = values
            .get("connector.class")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string();
        let tasks_max = parse_i64(&values, "tasks.max", 1)?;
        if tasks_max < 1 {
            return Err(Error::config(
                "tasks.max",
                &tasks_max.to_string(),
                "Value must be at least 1",
            ));
        }
        let errors = ErrorsConfig::parse(&values)?;
        Ok(ConnectorConfig {
            name,
            class,
            tasks_max: usize::try_from(tasks_max).unwrap_or(1),
            values,
            errors,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A sink's `topics` and `topics.regex` (exactly one must be set).
    pub fn sink_topics(&self) -> Result<(Vec<String>, Option<String>)> {
        let topics = parse_list(self.values.get("topics"));
        let regex = self
            .values
            .get("topics.regex")
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        match (topics.is_empty(), &regex) {
            (false, Some(_)) => Err(Error::config(
                "topics",
                &topics.join(","),
                "topics and topics.regex are mutually exclusive options, but both are set.",
            )),
            (true, None) => Err(Error::config(
                "topics",
                "",
                "Must configure one of topics or topics.regex",
            )),
            _ => {
                if let Some(r) = &regex
                    && let Err(e) = regex::Regex::new(r)
                {
                    return Err(Error::config("topics.regex", r, e.to_string()));
                }
                if let Some(dlq) = &self.errors.dlq_topic
                    && topics.contains(dlq)
                {
                    return Err(Error::config(
                        "errors.deadletterqueue.topic.name",
                        dlq,
                        "The DLQ topic cannot be set to the same name as one of the source topics",
                    ));
                }
                Ok((topics, regex))
            }
        }
    }
}

impl ErrorsConfig {
    fn parse(values: &BTreeMap<String, String>) -> Result<Self> {
        let tolerance = match values
            .get("errors.tolerance")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => ErrorTolerance::None,
            Some(v) if v == "none" || v.is_empty() => ErrorTolerance::None,
            Some(v) if v == "all" => ErrorTolerance::All,
            Some(v) => {
                return Err(Error::config(
                    "errors.tolerance",
                    &v,
                    "String must be one of: none, all",
                ));
            }
        };
        let retry = parse_i64(values, "errors.retry.timeout", 0)?;
        let delay = parse_i64(values, "errors.retry.delay.max.ms", 60_000)?;
        let dlq_topic = values
            .get("errors.deadletterqueue.topic.name")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let rf = parse_i64(values, "errors.deadletterqueue.topic.replication.factor", 3)?;
        Ok(ErrorsConfig {
            tolerance,
            retry_timeout: (retry > 0).then(|| Duration::from_millis(retry as u64)),
            retry_forever: retry == -1,
            retry_delay_max: Duration::from_millis(delay.max(0) as u64),
            log_enable: parse_bool(values, "errors.log.enable", false)?,
            log_include_messages: parse_bool(values, "errors.log.include.messages", false)?,
            dlq_topic,
            dlq_replication_factor: i16::try_from(rf).unwrap_or(3),
            dlq_context_headers: parse_bool(
                values,
                "errors.deadletterqueue.context.headers.enable",
                false,
            )?,
        })
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
    fn missing_class_names_the_key() {
        let err = ConnectorConfig::parse(map(&[("name", "x")])).unwrap_err();
        assert!(err.to_string().contains("connector.class"), "{err}");
    }

    #[test]
    fn bad_tasks_max_names_the_key() {
        let err = ConnectorConfig::parse(map(&[
            ("name", "x"),
            ("connector.class", "FileStreamSource"),
            ("tasks.max", "many"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("tasks.max"), "{err}");
    }

    #[test]
    fn errors_settings_are_parsed() {
        let c = ConnectorConfig::parse(map(&[
            ("name", "x"),
            ("connector.class", "FileStreamSink"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
            ("topics", "a, b"),
        ]))
        .unwrap();
        assert_eq!(c.errors.tolerance, ErrorTolerance::All);
        assert_eq!(c.errors.dlq_topic.as_deref(), Some("dlq"));
        assert!(c.errors.dlq_context_headers);
        assert_eq!(c.sink_topics().unwrap().0, vec!["a", "b"]);
        let bad = ConnectorConfig::parse(map(&[
            ("name", "x"),
            ("connector.class", "c"),
            ("errors.tolerance", "some"),
        ]))
        .unwrap_err();
        assert!(bad.to_string().contains("errors.tolerance"));
    }

    #[test]
    fn topics_and_regex_are_exclusive() {
        let c = ConnectorConfig::parse(map(&[
            ("name", "x"),
            ("connector.class", "c"),
            ("topics", "a"),
            ("topics.regex", "a.*"),
        ]))
        .unwrap();
        assert!(c.sink_topics().is_err());
    }
}
