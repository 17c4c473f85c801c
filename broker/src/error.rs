//! Broker errors, and their mapping onto Kafka wire error codes at the protocol boundary.

use std::path::PathBuf;

use fjord_protocol::{BatchError, ErrorCode};

/// Result with the broker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong inside the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on the log or metadata failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A produced batch failed validation.
    #[error("invalid record batch for {topic}-{partition}")]
    InvalidBatch {
        topic: String,
        partition: i32,
        #[source]
        source: BatchError,
    },
    /// An idempotent producer's batch is out of sequence or from a fenced epoch.
    #[error(transparent)]
    Sequence(crate::log::SequenceError),
    /// The requested offset lies outside `[log start, log end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// No such topic or partition on this broker.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// A configuration key or value was rejected.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listener address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Another broker holds the data directory's lock.
    #[error("cluster: {reason}")]
    Cluster { reason: String },

    #[error("data directory {path} is in use by another broker (its .lock is held)")]
    DataDirInUse { path: PathBuf },
    /// A metadata file could not be parsed.
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata { path: PathBuf, reason: String },
}

impl Error {
    /// Wraps an I/O error with what was being done and to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The Kafka error code a client receives for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::Io { .. } => ErrorCode::KafkaStorageError,
            Error::InvalidBatch { source, .. } => source.error_code(),
            Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            Error::Sequence(crate::log::SequenceError::InvalidEpoch { .. }) => {
                ErrorCode::InvalidProducerEpoch
            }
            Error::Sequence(crate::log::SequenceError::OutOfOrder { .. }) => {
                ErrorCode::OutOfOrderSequenceNumber
            }
            Error::UnknownTopicOrPartition { .. } => ErrorCode::UnknownTopicOrPartition,
            Error::Config(_) => ErrorCode::InvalidConfig,
            Error::CorruptMetadata { .. }
            | Error::DataDirInUse { .. }
            | Error::Bind { .. }
            | Error::Cluster { .. } => ErrorCode::UnknownServerError,
        }
    }
}

/// An error as a client sees it: a Kafka error code and the message sent with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let code = error.error_code();
        if code == ErrorCode::KafkaStorageError || code == ErrorCode::UnknownServerError {
            tracing::error!(error = %error, "request failed");
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ApiError { code, message }
    }
}
