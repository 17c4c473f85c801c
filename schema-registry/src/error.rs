//! The crate's errors: [`Error`] for operations (store, server, serdes) and [`ApiError`], a
//! Confluent REST error (`{"error_code": 40401, "message": "..."}` with its HTTP status).

use serde::{Deserialize, Serialize};

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong running the registry or its serdes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka request for the store failed.
    #[error("{context}")]
    Kafka {
        context: String,
        #[source]
        source: fjord_client::Error,
    },
    /// The store topic exists with a partition count other than one.
    #[error("the store topic {topic} has {partitions} partitions; the registry needs exactly 1")]
    StoreTopicPartitions { topic: String, partitions: usize },
    /// The store did not read its own write back in time.
    #[error("timed out after {timeout_ms} ms waiting for the store to read offset {offset}")]
    StoreTimeout { offset: i64, timeout_ms: u64 },
    /// The store reader has stopped (shutdown or a fatal Kafka error).
    #[error("the store reader has stopped")]
    StoreClosed,
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// An HTTP request to another registry instance failed.
    #[error("HTTP request to {url} failed: {reason}")]
    Http { url: String, reason: String },
    /// The registry answered with a Confluent error.
    #[error("schema registry error {}: {}", .0.error_code, .0.message)]
    Api(ApiError),
    /// A serialized payload does not start with magic byte 0.
    #[error("unknown magic byte {0}")]
    UnknownMagicByte(u8),
    /// A serialized payload is shorter than the 5-byte header.
    #[error("payload of {0} bytes is shorter than the 5-byte wire-format header")]
    ShortPayload(usize),
    /// Avro encoding or decoding failed.
    #[error("Avro {operation} failed")]
    Avro {
        operation: &'static str,
        #[source]
        source: Box<apache_avro::Error>,
    },
    /// A schema from the registry does not parse.
    #[error("schema {id} does not parse: {reason}")]
    InvalidSchema { id: i32, reason: String },
    /// A subject name strategy needs a named schema (record, enum or fixed).
    #[error("the {strategy} strategy needs a named schema")]
    UnnamedSchema { strategy: &'static str },
}

/// A Confluent REST error: HTTP status, `error_code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub error_code: i32,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error_code)
    }
}

/// Confluent's error codes.
pub mod codes {
    pub const SUBJECT_NOT_FOUND: i32 = 40401;
    pub const VERSION_NOT_FOUND: i32 = 40402;
    pub const SCHEMA_NOT_FOUND: i32 = 40403;
    pub const SUBJECT_SOFT_DELETED: i32 = 40404;
    pub const SUBJECT_NOT_SOFT_DELETED: i32 = 40405;
    pub const SCHEMA_VERSION_SOFT_DELETED: i32 = 40406;
    pub const SCHEMA_VERSION_NOT_SOFT_DELETED: i32 = 40407;
    pub const SUBJECT_COMPATIBILITY_NOT_CONFIGURED: i32 = 40408;
    pub const SUBJECT_MODE_NOT_CONFIGURED: i32 = 40409;
    /// Confluent's registry answers an incompatible schema with `error_code` 409 (its
    /// `Errors.INCOMPATIBLE_SCHEMA_ERROR_CODE` is the bare HTTP status).
    pub const INCOMPATIBLE_SCHEMA: i32 = 409;
    pub const INVALID_SCHEMA: i32 = 42201;
    pub const INVALID_VERSION: i32 = 42202;
    pub const INVALID_COMPATIBILITY_LEVEL: i32 = 42203;
    pub const INVALID_MODE: i32 = 42204;
    pub const OPERATION_NOT_PERMITTED: i32 = 42205;
    pub const REFERENCE_EXISTS: i32 = 42206;
    pub const ID_DOES_NOT_MATCH: i32 = 42207;
    pub const STORE_ERROR: i32 = 50001;
    pub const OPERATION_TIMEOUT: i32 = 50002;
    pub const FORWARDING_FAILED: i32 = 50003;
    pub const UNKNOWN_LEADER: i32 = 50004;
}

impl ApiError {
    pub fn new(status: u16, error_code: i32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }

    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(
            404,
            codes::SUBJECT_NOT_FOUND,
            format!("Subject '{subject}' not found."),
        )
    }

    pub fn version_not_found(version: i32) -> Self {
        Self::new(
            404,
            codes::VERSION_NOT_FOUND,
            format!("Version {version} not found."),
        )
    }

    pub fn schema_not_found() -> Self {
        Self::new(404, codes::SCHEMA_NOT_FOUND, "Schema not found")
    }

    pub fn schema_id_not_found(id: i32) -> Self {
        Self::new(
            404,
            codes::SCHEMA_NOT_FOUND,
            format!("Schema {id} not found"),
        )
    }

    pub fn subject_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            codes::SUBJECT_SOFT_DELETED,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    pub fn subject_not_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            codes::SUBJECT_NOT_SOFT_DELETED,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    pub fn version_soft_deleted(subject: &str, version: i32) -> Self {
        Self::new(
            404,
            codes::SCHEMA_VERSION_SOFT_DELETED,
            format!(
                "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    pub fn version_not_soft_deleted(subject: &str, version: i32) -> Self {
        Self::new(
            404,
            codes::SCHEMA_VERSION_NOT_SOFT_DELETED,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    pub fn compatibility_not_configured(subject: &str) -> Self {
        Self::new(
            404,
            codes::SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    pub fn mode_not_configured(subject: &str) -> Self {
        Self::new(
            404,
            codes::SUBJECT_MODE_NOT_CONFIGURED,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )
    }

    pub fn incompatible(subject: &str, messages: &[String]) -> Self {
        Self::new(
            409,
            codes::INCOMPATIBLE_SCHEMA,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                messages.join(", ")
            ),
        )
    }

    pub fn invalid_schema(details: &str) -> Self {
        Self::new(
            422,
            codes::INVALID_SCHEMA,
            format!("Invalid schema: {details}"),
        )
    }

    pub fn invalid_version(text: &str) -> Self {
        Self::new(
            422,
            codes::INVALID_VERSION,
            format!(
                "The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    pub fn invalid_compatibility() -> Self {
        Self::new(
            422,
            codes::INVALID_COMPATIBILITY_LEVEL,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
        )
    }

    pub fn invalid_mode() -> Self {
        Self::new(
            422,
            codes::INVALID_MODE,
            "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, and IMPORT",
        )
    }

    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(422, codes::OPERATION_NOT_PERMITTED, message)
    }

    pub fn reference_exists(subject: &str, version: i32) -> Self {
        Self::new(
            422,
            codes::REFERENCE_EXISTS,
            format!(
                "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}."
            ),
        )
    }

    pub fn id_does_not_match(message: impl Into<String>) -> Self {
        Self::new(422, codes::ID_DOES_NOT_MATCH, message)
    }

    /// A request body that is not the JSON the endpoint expects (Jackson's 422 in Confluent).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, 422, message)
    }

    pub fn store(message: impl Into<String>) -> Self {
        Self::new(500, codes::STORE_ERROR, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(500, codes::OPERATION_TIMEOUT, message)
    }

    pub fn forwarding_failed(message: impl Into<String>) -> Self {
        Self::new(500, codes::FORWARDING_FAILED, message)
    }

    pub fn unknown_leader() -> Self {
        Self::new(
            500,
            codes::UNKNOWN_LEADER,
            "Unknown leader; writes are refused until one is elected",
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Api(api) => api,
            Error::StoreTimeout { .. } => {
                ApiError::timeout(format!("Error while writing to the store: {error}"))
            }
            Error::Http { .. } => ApiError::forwarding_failed(format!(
                "Error while forwarding the request to the leader: {error}"
            )),
            other => {
                let mut message = format!("Error in the backend data store: {other}");
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    message.push_str(": ");
                    message.push_str(&s.to_string());
                    source = s.source();
                }
                ApiError::store(message)
            }
        }
    }
}
