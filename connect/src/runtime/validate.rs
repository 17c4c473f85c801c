//! Connector config validation, shared by `POST/PUT` (400 with every error) and
//! `PUT /connector-plugins/{p}/config/validate` (per-field errors in Kafka's shape).

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::convert::Converters;
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::error::Error;
use crate::plugin::{Connector, PluginDesc, find_connector};
use crate::transforms::TransformChain;

/// What the validation of a connector config found.
pub(crate) struct Validation {
    pub(crate) plugin: Option<PluginDesc>,
    pub(crate) class: String,
    /// Definition and value entries in Kafka's `validate` shape.
    pub(crate) configs: Vec<Json>,
    pub(crate) groups: Vec<String>,
    /// `key: message` lines.
    pub(crate) errors: Vec<String>,
}

impl Validation {
    pub(crate) fn to_json(&self) -> Json {
        json!({
            "name": self.class,
            "error_count": self.errors.len(),
            "groups": self.groups,
            "configs": self.configs,
        })
    }
}

/// Validates a connector config as Kafka's `validate` endpoint does: every definition with the
/// given value and its errors, plus errors of transforms, converters and the connector itself.
pub(crate) fn validate(config: &BTreeMap<String, String>, worker: &WorkerConfig) -> Validation {
    let class = config.get("connector.class").cloned().unwrap_or_default();
    let plugin = find_connector(&class);
    let mut errors = Vec::new();
    let mut configs = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let def = match &plugin {
        Some(p) => p.connector.full_config_def(),
        None => crate::config::connector_common_def(),
    };
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if plugin.is_none() {
        extra.entry("connector.class".to_string()).or_default().push(format!(
            "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
            crate::plugin::connectors().iter().map(|p| p.class).collect::<Vec<_>>().join(", ")
        ));
    }
    let parsed = ConnectorConfig::parse(config.clone());
    if let (Some(p), Ok(cc)) = (&plugin, &parsed) {
        let check = match &p.connector {
            Connector::Source(c) => c.validate(cc),
            Connector::Sink(c) => c.validate(cc).and_then(|()| cc.sink_topics().map(|_| ())),
        };
        if let Err(e) = check {
            extra.entry(error_key(&e)).or_default().push(e.to_string());
        }
    }
    if let Some(Connector::Source(_)) = plugin.as_ref().map(|p| &p.connector)
        && let Err(e) = super::topic_creation::TopicCreation::from_config(config)
    {
        extra.entry(error_key(&e)).or_default().push(e.to_string());
    }
    if let Err(e) = TransformChain::from_config(config) {
        extra
            .entry("transforms".to_string())
            .or_default()
            .push(e.to_string());
    }
    if let Ok(cc) = &parsed
        && let Err(e) = Converters::build(cc, worker)
    {
        extra.entry(error_key(&e)).or_default().push(e.to_string());
    }
    if let Some(class) = config.get("header.converter")
        && let Err(e) = crate::converter::HeaderConverter::from_class(class)
    {
        extra
            .entry("header.converter".into())
            .or_default()
            .push(e.to_string());
    }
    for (order, key) in def.keys.iter().enumerate() {
        let mut key_errors = key.errors(config);
        if let Some(more) = extra.remove(key.name) {
            key_errors.extend(more);
        }
        for e in &key_errors {
            errors.push(format!("{}: {e}", key.name));
        }
        if !key.group.is_empty() && !groups.iter().any(|g| g == key.group) {
            groups.push(key.group.to_string());
        }
        configs.push(json!({
            "definition": key.definition(order + 1),
            "value": {
                "name": key.name,
                "value": config.get(key.name).cloned().or(key.default.map(str::to_string)),
                "recommended_values": [],
                "errors": key_errors,
                "visible": true,
            }
        }));
    }
    for (key, key_errors) in extra {
        for e in &key_errors {
            errors.push(format!("{key}: {e}"));
        }
        configs.push(json!({
            "value": {"name": key, "value": config.get(&key), "recommended_values": [], "errors": key_errors, "visible": true}
        }));
    }
    Validation {
        class: plugin.as_ref().map_or(class, |p| p.class.to_string()),
        plugin,
        configs,
        groups,
        errors,
    }
}

fn error_key(e: &Error) -> String {
    match e {
        Error::Config { key, .. } | Error::MissingConfig { key } => {
            if key.starts_with("transforms.") || key.starts_with("predicates.") {
                "transforms".into()
            } else {
                key.clone()
            }
        }
        _ => "connector.class".into(),
    }
}
