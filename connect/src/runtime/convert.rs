//! A task's key and value converters: the connector's `key.converter`/`value.converter` (with
//! their `key.converter.*` settings) or the worker's.

use std::collections::BTreeMap;

use crate::config::{ConnectorConfig, WorkerConfig, prefixed};
use crate::converter::{self, AnyConverter, HeaderConverter};
use crate::error::Result;

pub(crate) struct Converters {
    pub(crate) key: AnyConverter,
    pub(crate) value: AnyConverter,
    pub(crate) key_class: String,
    pub(crate) value_class: String,
    /// `header.converter` (the connector's, else the worker's; SimpleHeaderConverter).
    pub(crate) header: HeaderConverter,
}

fn pick(
    connector: &BTreeMap<String, String>,
    worker: &WorkerConfig,
    name: &str,
    default: &str,
) -> (String, BTreeMap<String, String>) {
    let prefix = format!("{name}.");
    match connector
        .get(name)
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        Some(class) => (class.to_string(), prefixed(connector, &prefix)),
        None => (default.to_string(), worker.prefixed(&prefix)),
    }
}

impl Converters {
    pub(crate) fn build(config: &ConnectorConfig, worker: &WorkerConfig) -> Result<Self> {
        let (key_class, key_settings) = pick(
            &config.values,
            worker,
            "key.converter",
            &worker.key_converter,
        );
        let (value_class, value_settings) = pick(
            &config.values,
            worker,
            "value.converter",
            &worker.value_converter,
        );
        let header_class = config
            .values
            .get("header.converter")
            .or_else(|| worker.values.get("header.converter"))
            .map(|c| c.trim())
            .unwrap_or_default();
        Ok(Converters {
            header: HeaderConverter::from_class(header_class)?,
            key: converter::build("key.converter", &key_class, &key_settings, true)?,
            value: converter::build("value.converter", &value_class, &value_settings, false)?,
            key_class,
            value_class,
        })
    }
}
