//! Client errors.

use fjord_protocol::ErrorCode;

/// Result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached.
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection failed mid-request.
    #[error("connection to {addr} failed")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// No answer within the request timeout.
    #[error("{api} request to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        api: String,
        addr: String,
        timeout_ms: u64,
    },
    /// The broker serves no version of the API that this client knows.
    #[error("broker {addr} does not support {api}")]
    Unsupported { api: String, addr: String },
    /// A frame could not be encoded or decoded.
    #[error("protocol error with {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The broker answered with an error code.
    #[error("{context}: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker {
        context: String,
        code: ErrorCode,
        message: Option<String>,
    },
    /// A configuration value is invalid.
    #[error("invalid value {value:?} for config {key}: {reason}")]
    Config {
        key: String,
        value: String,
        reason: String,
    },
    /// The producer or consumer was closed.
    #[error("the client is closed")]
    Closed,
    /// A record is larger than `max.request.size` or `buffer.memory`.
    #[error("record of {size} bytes is larger than {limit} ({key})")]
    RecordTooLarge {
        size: usize,
        limit: usize,
        key: &'static str,
    },
    /// `send` waited `max.block.ms` for `buffer.memory` to free up.
    #[error("no room in buffer.memory within {timeout_ms} ms")]
    BufferFull { timeout_ms: u64 },
    /// A topic's metadata did not become available in time.
    #[error("topic {topic} not available after {timeout_ms} ms{}{}",
        code.map(|c| format!(": {c}")).unwrap_or_default(),
        cause.as_deref().map(|c| format!(" (last metadata error: {c})")).unwrap_or_default())]
    TopicUnavailable {
        topic: String,
        timeout_ms: u64,
        code: Option<ErrorCode>,
        /// Why the last metadata request failed, e.g. the bootstrap server refused connections.
        cause: Option<String>,
    },
    /// A record names a partition the topic does not have.
    #[error("topic {topic} has {count} partitions, no partition {partition}")]
    InvalidPartition {
        topic: String,
        partition: i32,
        count: i32,
    },
    /// A record was not acknowledged within `delivery.timeout.ms`.
    #[error("record for {topic}-{partition} not delivered within {timeout_ms} ms")]
    DeliveryTimeout {
        topic: String,
        partition: i32,
        timeout_ms: u64,
    },
}

/// An error and its sources on one line: `cannot connect to a:1: Connection refused`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl Error {
    /// An error code from a response, with what was being done.
    pub(crate) fn broker(context: impl Into<String>, code: i16, message: Option<String>) -> Self {
        Error::Broker {
            context: context.into(),
            code: ErrorCode::try_from_code(code).unwrap_or(ErrorCode::UnknownServerError),
            message,
        }
    }
}
