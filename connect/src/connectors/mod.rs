//! Built-in connectors.

pub mod file;
pub mod jdbc;

use std::sync::Arc;

use crate::plugin::{Connector, PluginDesc};

/// Plugins beyond the file connectors.
pub(crate) fn extra_plugins(version: &'static str) -> Vec<PluginDesc> {
    vec![
        PluginDesc {
            class: "io.confluent.connect.jdbc.JdbcSinkConnector",
            version,
            connector: Connector::Sink(Arc::new(jdbc::JdbcSinkConnector)),
        },
        PluginDesc {
            class: "io.confluent.connect.jdbc.JdbcSourceConnector",
            version,
            connector: Connector::Source(Arc::new(jdbc::JdbcSourceConnector)),
        },
    ]
}
