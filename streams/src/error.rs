//! The crate's errors.

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record's key or value could not be (de)serialized.
#[derive(Debug, thiserror::Error)]
pub enum SerdeError {
    /// A null (absent) key or value where the serde needs bytes.
    #[error("null data where a {expected} was expected")]
    Null {
        /// What the serde reads.
        expected: &'static str,
    },
    /// The bytes have the wrong length for a fixed-size type.
    #[error("{len} bytes where a {expected} needs {needs}")]
    Length {
        /// What the serde reads.
        expected: &'static str,
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needs: usize,
    },
    /// Not UTF-8.
    #[error("invalid UTF-8")]
    Utf8(#[source] std::str::Utf8Error),
    /// JSON could not be parsed or written.
    #[error("JSON")]
    Json(#[source] serde_json::Error),
    /// The schema registry serdes failed (bad payload, unknown schema id, registry down).
    #[error("Avro through the schema registry")]
    Avro(#[source] Box<fjord_schema_registry::Error>),
}

/// Errors of topologies, state stores and the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topology is invalid (reported when it is built or started).
    #[error("invalid topology: {reason}")]
    Topology {
        /// What is wrong.
        reason: String,
    },
    /// Joined topics are not co-partitioned.
    #[error(
        "topics {left} ({left_partitions} partitions) and {right} ({right_partitions} partitions) are joined but not co-partitioned"
    )]
    NotCoPartitioned {
        /// One topic.
        left: String,
        /// Its partition count.
        left_partitions: usize,
        /// The other topic.
        right: String,
        /// Its partition count.
        right_partitions: usize,
    },
    /// Source topics that do not exist when the application starts.
    #[error("source topics missing: {}", topics.join(", "))]
    MissingSourceTopics {
        /// The missing topics.
        topics: Vec<String>,
    },
    /// A config key has an invalid value.
    #[error("invalid value {value:?} for config {key}: {reason}")]
    Config {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A record could not be deserialized and the handler said fail.
    #[error("deserializing a record of {topic}-{partition} at offset {offset}")]
    Deserialization {
        /// Topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The serde's error.
        #[source]
        source: SerdeError,
    },
    /// A value could not be serialized for a sink, changelog or repartition topic.
    #[error("serializing for {topic}")]
    Serialization {
        /// Where the record was going.
        topic: String,
        /// The serde's error.
        #[source]
        source: SerdeError,
    },
    /// The embedded state store failed.
    #[error("state store {store}")]
    Store {
        /// The store.
        store: String,
        /// fjall's error.
        #[source]
        source: Box<fjall::Error>,
    },
    /// A local file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A changelog record is not in the expected format.
    #[error("corrupt changelog record in {topic}-{partition} at offset {offset}: {reason}")]
    CorruptChangelog {
        /// The changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The Kafka client failed.
    #[error("{context}")]
    Client {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: Box<fjord_client::Error>,
    },
    /// A changelog could not be read to its end in time.
    #[error("restoring from {topic}-{partition} timed out")]
    RestoreTimeout {
        /// The changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The application is not running (never started, or closed).
    #[error("the streams application is not running")]
    NotRunning,
    /// A stream thread stopped with an error or panicked.
    #[error("stream thread {thread} failed: {reason}")]
    ThreadFailed {
        /// The thread's index.
        thread: usize,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn client(context: impl Into<String>) -> impl FnOnce(fjord_client::Error) -> Error {
        let context = context.into();
        move |source| Error::Client {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn store(store: &str) -> impl FnOnce(fjall::Error) -> Error + '_ {
        move |source| Error::Store {
            store: store.to_string(),
            source: Box::new(source),
        }
    }
}
