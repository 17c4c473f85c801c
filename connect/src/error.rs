//! Connect errors.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the runtime, a converter, a transform or a connector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config value is missing or invalid.
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    Config {
        key: String,
        value: String,
        reason: String,
    },
    /// A required config key is not set.
    #[error("missing required configuration \"{key}\" which has no default value")]
    MissingConfig { key: String },
    /// No plugin has this class name or alias.
    #[error("failed to find any class that implements Connector and which name matches {class}")]
    UnknownPlugin { class: String },
    /// A converter could not turn bytes into Connect data or back.
    #[error("converting {what}: {reason}")]
    Conversion { what: String, reason: String },
    /// A transform could not handle a record.
    #[error("transform {transform}: {reason}")]
    Transform { transform: String, reason: String },
    /// A connector or task failed.
    #[error("connector {connector}: {reason}")]
    Connector { connector: String, reason: String },
    /// A file could not be read or written.
    #[error("{action} {path}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Kafka client call failed.
    #[error("{context}")]
    Kafka {
        context: String,
        #[source]
        source: fjord_client::Error,
    },
    /// The REST listener could not be bound or served.
    #[error("REST server on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A database call failed.
    #[error("{context}: {reason}")]
    Database { context: String, reason: String },
}

impl Error {
    pub(crate) fn config(key: &str, value: &str, reason: impl Into<String>) -> Self {
        Error::Config {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn conversion(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Conversion {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn transform(transform: &str, reason: impl Into<String>) -> Self {
        Error::Transform {
            transform: transform.to_string(),
            reason: reason.into(),
        }
    }

    /// The error and its sources on one line.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    /// A Java-exception-like class name for statuses and DLQ headers.
    pub fn class_name(&self) -> &'static str {
        match self {
            Error::Config { .. } | Error::MissingConfig { .. } | Error::UnknownPlugin { .. } => {
                "org.apache.kafka.common.config.ConfigException"
            }
            Error::Conversion { .. } => "org.apache.kafka.connect.errors.DataException",
            Error::Transform { .. } => "org.apache.kafka.connect.errors.DataException",
            _ => "org.apache.kafka.connect.errors.ConnectException",
        }
    }
}
