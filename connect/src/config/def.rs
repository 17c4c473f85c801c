//! Typed config definitions (Kafka's `ConfigDef`), rendered by the plugin config and validate
//! endpoints.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

/// A config value's type, named as in Kafka (`STRING`, `INT`, `LIST`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }

    /// Why `value` is not of this type, if it is not.
    pub fn check(self, value: &str) -> Option<String> {
        let v = value.trim();
        let ok = match self {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok(),
            _ => true,
        };
        (!ok).then(|| {
            let expected = match self {
                ConfigType::Boolean => "Expected value to be either true or false",
                ConfigType::Int => "Not a number of type INT",
                ConfigType::Long => "Not a number of type LONG",
                _ => "Not a number of type DOUBLE",
            };
            format!("Invalid value {value} for configuration: {expected}")
        })
    }
}

/// How much a setting matters (`HIGH`, `MEDIUM`, `LOW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// One setting.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: &'static str,
    pub type_: ConfigType,
    /// `None`: required.
    pub default: Option<&'static str>,
    pub importance: Importance,
    pub doc: &'static str,
    pub group: &'static str,
    /// Allowed values (case-insensitive), when the setting is an enumeration.
    pub allowed: &'static [&'static str],
}

impl ConfigKey {
    pub const fn new(
        name: &'static str,
        type_: ConfigType,
        default: Option<&'static str>,
        importance: Importance,
        doc: &'static str,
    ) -> Self {
        ConfigKey {
            name,
            type_,
            default,
            importance,
            doc,
            group: "",
            allowed: &[],
        }
    }

    pub const fn in_group(mut self, group: &'static str) -> Self {
        self.group = group;
        self
    }

    pub const fn one_of(mut self, allowed: &'static [&'static str]) -> Self {
        self.allowed = allowed;
        self
    }

    /// The definition object of `GET /connector-plugins/{p}/config` and `validate`.
    pub fn definition(&self, order: usize) -> Json {
        json!({
            "name": self.name,
            "type": self.type_.name(),
            "required": self.default.is_none(),
            "default_value": self.default,
            "importance": self.importance.name(),
            "documentation": self.doc,
            "group": if self.group.is_empty() { Json::Null } else { json!(self.group) },
            "width": "NONE",
            "display_name": self.name,
            "dependents": [],
            "order": order as i64,
        })
    }

    /// Errors for this key's value in `config`.
    pub fn errors(&self, config: &BTreeMap<String, String>) -> Vec<String> {
        match config.get(self.name) {
            None if self.default.is_none() => vec![format!(
                "Missing required configuration \"{}\" which has no default value.",
                self.name
            )],
            None => Vec::new(),
            Some(v) => {
                let mut errors: Vec<String> = self
                    .type_
                    .check(v)
                    .map(|e| e.replace("configuration:", &format!("configuration {}:", self.name)))
                    .into_iter()
                    .collect();
                if !self.allowed.is_empty()
                    && !self
                        .allowed
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(v.trim()))
                {
                    errors.push(format!(
                        "Invalid value {v} for configuration {}: String must be one of: {}",
                        self.name,
                        self.allowed.join(", ")
                    ));
                }
                errors
            }
        }
    }
}

/// A plugin's settings in order.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new(keys: impl IntoIterator<Item = ConfigKey>) -> Self {
        ConfigDef {
            keys: keys.into_iter().collect(),
        }
    }

    pub fn with(mut self, keys: impl IntoIterator<Item = ConfigKey>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// Every error of `config`, keyed by setting name.
    pub fn validate(
        &self,
        config: &BTreeMap<String, String>,
    ) -> BTreeMap<&'static str, Vec<String>> {
        self.keys
            .iter()
            .map(|k| (k.name, k.errors(config)))
            .collect()
    }

    /// The first error, as a config error naming the key.
    pub fn check(&self, config: &BTreeMap<String, String>) -> crate::Result<()> {
        for key in &self.keys {
            if let Some(first) = key.errors(config).into_iter().next() {
                return Err(match config.get(key.name) {
                    None => crate::Error::MissingConfig {
                        key: key.name.to_string(),
                    },
                    Some(v) => crate::Error::config(key.name, v, first),
                });
            }
        }
        Ok(())
    }
}
