//! JDBC-style sink and source for PostgreSQL (tokio-postgres) and SQLite (rusqlite), with the
//! config keys and class names of Confluent's JDBC connector (`io.confluent.connect.jdbc.*`):
//! `connection.url` in JDBC form (`jdbc:postgresql://host:5432/db?user=..`,
//! `jdbc:sqlite:/path/db`), `connection.user`, `connection.password`; the sink's
//! `table.name.format`, `insert.mode`, `pk.mode`, `pk.fields`, `auto.create`, `auto.evolve`,
//! `batch.size`, `delete.enabled`; the source's `mode`, `incrementing.column.name`,
//! `timestamp.column.name`, `table.whitelist`, `query`, `poll.interval.ms`, `topic.prefix`,
//! `batch.max.rows`.

mod db;
mod dialect;
mod sink;
mod source;
mod url;

pub use sink::{JdbcSinkConnector, JdbcSinkTask};
pub use source::{JdbcSourceConnector, JdbcSourceTask};
pub use url::JdbcUrl;

use crate::config::{ConfigKey, ConfigType, Importance};

/// Connection settings shared by the sink and the source.
pub(crate) fn connection_keys() -> [ConfigKey; 3] {
    [
        ConfigKey::new(
            "connection.url",
            ConfigType::String,
            None,
            Importance::High,
            "JDBC connection URL: jdbc:postgresql://host:port/db?user=.. or jdbc:sqlite:/path/db.",
        )
        .in_group("Connection"),
        ConfigKey::new(
            "connection.user",
            ConfigType::String,
            Some(""),
            Importance::High,
            "JDBC connection user.",
        )
        .in_group("Connection"),
        ConfigKey::new(
            "connection.password",
            ConfigType::Password,
            Some(""),
            Importance::High,
            "JDBC connection password.",
        )
        .in_group("Connection"),
    ]
}
