//! The crate's errors.

use datafusion::error::DataFusionError;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL did not parse or plan, or failed while running: DataFusion's message, with the
    /// position in the query when DataFusion reports one.
    #[error("{message}{}", location.map(|(l, c)| format!(" (at line {l}, column {c})")).unwrap_or_default())]
    Sql {
        message: String,
        /// (line, column), both from 1.
        location: Option<(u64, u64)>,
        /// Not a `source`: the message is already DataFusion's (a chain would repeat it).
        cause: Box<DataFusionError>,
    },
    /// A statement of ours (`CREATE STREAM`, `DROP STREAM`, ...) is malformed.
    #[error("{statement}: {reason}")]
    Statement {
        statement: &'static str,
        reason: String,
    },
    /// Talking to the cluster failed.
    #[error("{context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: fjord_client::Error,
    },
    /// A partition stopped yielding records before the end offset the scan planned for.
    #[error(
        "reading {topic}-{partition}: no record past offset {offset} for {waited:?} (end offset {end})"
    )]
    Stalled {
        topic: String,
        partition: i32,
        offset: i64,
        end: i64,
        waited: std::time::Duration,
    },
    /// Talking to the schema registry failed.
    #[error("{context}: {source}")]
    Registry {
        context: String,
        #[source]
        source: fjord_schema_registry::Error,
    },
    /// A registered schema cannot be turned into columns.
    #[error("schema of topic {topic}: {reason}")]
    Schema { topic: String, reason: String },
    /// A continuous query with this name already runs.
    #[error("a stream named {0} already runs")]
    QueryExists(String),
    /// No continuous query has this name.
    #[error("no stream named {0}")]
    NoSuchQuery(String),
    /// Reading or writing a continuous query's checkpoint failed.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint exists but does not parse.
    #[error("checkpoint {path} is corrupt: {reason}")]
    CorruptCheckpoint { path: String, reason: String },
    /// Arrow could not encode or decode data.
    #[error("{context}: {source}")]
    Arrow {
        context: &'static str,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
}

impl Error {
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(fjord_client::Error) -> Error {
        let context = context.into();
        move |source| Error::Kafka { context, source }
    }

    pub(crate) fn arrow(
        context: &'static str,
    ) -> impl FnOnce(datafusion::arrow::error::ArrowError) -> Error {
        move |source| Error::Arrow { context, source }
    }

    /// The DataFusion error inside, if any (for callers that want its kind).
    pub fn datafusion(&self) -> Option<&DataFusionError> {
        match self {
            Error::Sql { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Self {
        let location = error
            .diagnostic()
            .and_then(|d| d.span)
            .filter(|s| s.start.line > 0)
            .map(|s| (s.start.line, s.start.column));
        Error::Sql {
            message: error.to_string().trim().to_string(),
            location,
            cause: Box::new(error),
        }
    }
}

/// Our error as a DataFusion error, for TableProvider and ExecutionPlan callbacks.
pub(crate) fn to_df(error: Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
