//! Kafka-named configuration: one registry of typed entries per resource (topic, broker) that
//! parsing, validation, `DescribeConfigs` and the generated docs all read.

mod broker;
mod topic;

use std::collections::BTreeMap;

pub use broker::{BROKER_CONFIGS, BrokerConfig, ClusterSettings};
pub(crate) use topic::broker_synonyms;
pub use topic::{
    CleanupPolicy, ConfigSource, LogConfig, TOPIC_CONFIGS, TimestampType, TopicConfig,
};

/// A rejected configuration key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key is not a known config of this resource.
    #[error("unknown config '{key}'")]
    UnknownKey { key: String },
    /// A config file cannot be read or parsed.
    #[error("cannot read config file {path}: {reason}")]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The value does not parse or validate.
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// Kafka's config value types, with their `DescribeConfigs` wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
        }
    }
}

/// How a value is checked beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    /// Any value of the type.
    Any,
    /// A number at least this large.
    AtLeast(i64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings, not empty.
    ListOf(&'static [&'static str]),
    /// A number in this closed range.
    Between(f64, f64),
}

/// One documented, typed config entry.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// Kafka's name for the key.
    pub name: &'static str,
    /// The value type.
    pub kind: ConfigType,
    /// The default, `None` for Kafka's `null`.
    pub default: Option<&'static str>,
    /// The extra check applied to values.
    pub validator: Validator,
    /// What the key does, as the docs show it.
    pub doc: &'static str,
}

impl ConfigDef {
    /// Checks a value against the type and validator.
    pub fn validate(&self, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            key: self.name.to_string(),
            value: value.to_string(),
            reason,
        };
        let number = match self.kind {
            ConfigType::Boolean => {
                parse_bool(value).ok_or_else(|| invalid("expected true or false".into()))?;
                None
            }
            ConfigType::Int => Some(
                value
                    .trim()
                    .parse::<i32>()
                    .map(i64::from)
                    .map_err(|_| invalid("expected a 32-bit integer".into()))?,
            ),
            ConfigType::Long => Some(
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| invalid("expected a 64-bit integer".into()))?,
            ),
            ConfigType::Double => {
                let n = value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| invalid("expected a number".into()))?;
                if let Validator::Between(min, max) = self.validator
                    && !(min..=max).contains(&n)
                {
                    return Err(invalid(format!("must be between {min} and {max}")));
                }
                None
            }
            ConfigType::String | ConfigType::List => None,
        };
        match (self.validator, number) {
            (Validator::AtLeast(min), Some(n)) if n < min => {
                Err(invalid(format!("must be at least {min}")))
            }
            (Validator::OneOf(allowed), _)
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) =>
            {
                Err(invalid(format!("must be one of {}", allowed.join(", "))))
            }
            (Validator::ListOf(allowed), _) => {
                let items: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if items.is_empty()
                    || items
                        .iter()
                        .any(|i| !allowed.iter().any(|a| a.eq_ignore_ascii_case(i)))
                {
                    Err(invalid(format!("must be a list of {}", allowed.join(", "))))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// Looks a key up in a registry.
pub fn find(registry: &'static [ConfigDef], key: &str) -> Option<&'static ConfigDef> {
    registry.iter().find(|d| d.name == key)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads a typed value from a resolved map (values there are already validated).
fn get<T: std::str::FromStr>(values: &BTreeMap<String, String>, key: &str) -> Option<T> {
    values.get(key).and_then(|v| v.trim().parse().ok())
}

/// Renders a registry as a Markdown table (the source of `docs/configuration.md`).
pub fn markdown_table(registry: &'static [ConfigDef]) -> String {
    let mut out = String::from(
        "| key | type | default | valid values | description |\n|---|---|---|---|---|\n",
    );
    for def in registry {
        let valid = match def.validator {
            Validator::Any => String::new(),
            Validator::AtLeast(min) => format!("[{min}, ...]"),
            Validator::Between(min, max) => format!("[{min}, ..., {max}]"),
            Validator::OneOf(values) | Validator::ListOf(values) => values.join(", "),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            def.name,
            def.kind.name(),
            def.default.map_or("null".to_string(), |d| format!("`{d}`")),
            valid,
            def.doc
        ));
    }
    out
}

/// The whole configuration reference, as committed in `docs/configuration.md`.
pub fn reference_doc() -> String {
    format!(
        "# Configuration reference\n\n\
         Generated from the config registry (`broker/src/config/`); the test \
         `configuration_doc_matches_the_registry` keeps this file in step.\n\n\
         ## Broker configs\n\n\
         Set in `fjord broker --config FILE` (TOML or Kafka `server.properties`), as `FJORD_*` environment \
         variables (`FJORD_LOG_RETENTION_MS` sets `log.retention.ms`), or with `--override key=value`.\n\n{}\n\
         ## Topic configs\n\n\
         Set per topic through CreateTopics, AlterConfigs and IncrementalAlterConfigs; the broker-wide \
         default of each is its `log.`-prefixed broker config where Kafka has one.\n\n{}",
        markdown_table(BROKER_CONFIGS),
        markdown_table(TOPIC_CONFIGS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_reject_bad_values_naming_the_key() {
        let def = find(TOPIC_CONFIGS, "retention.ms").expect("registered");
        assert!(def.validate("1000").is_ok());
        let err = def.validate("soon").unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
        let policy = find(TOPIC_CONFIGS, "cleanup.policy").expect("registered");
        assert!(policy.validate("compact,delete").is_ok());
        assert!(policy.validate("shred").is_err());
        let segment = find(TOPIC_CONFIGS, "segment.bytes").expect("registered");
        assert!(segment.validate("13").is_err());
    }

    #[test]
    fn every_default_passes_its_own_validator() {
        for def in TOPIC_CONFIGS.iter().chain(BROKER_CONFIGS) {
            if let Some(default) = def.default {
                assert!(
                    def.validate(default).is_ok(),
                    "{} default {default}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn configuration_doc_matches_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != reference_doc() {
            if std::env::var_os("FJORD_BLESS").is_some() {
                std::fs::write(path, reference_doc()).expect("write docs/configuration.md");
            } else {
                panic!(
                    "docs/configuration.md is stale: run `FJORD_BLESS=1 cargo test -p fjord-broker configuration_doc`"
                );
            }
        }
    }
}
