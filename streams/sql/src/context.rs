//! [`SqlContext`]: a DataFusion session whose tables are the topics of a cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use fjord_client::Admin;
use fjord_schema_registry::serdes::RegistryClient;

use crate::catalog::TopicCatalog;
use crate::error::{Error, Result};
use crate::topic::TopicSource;

/// Where the topics are and how to read them.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// Schema registry URL (`http://host:8081`); without it values are read as JSON with
    /// inferred fields.
    pub registry: Option<String>,
    /// Values sampled to infer the fields of JSON values (default 1,000).
    pub sample_records: usize,
    /// Rows per Arrow record batch (default 8,192).
    pub batch_size: usize,
    /// Where continuous queries keep their checkpoints (default `$TMPDIR/fjord-sql`).
    pub state_dir: PathBuf,
}

impl SqlConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        SqlConfig {
            bootstrap: bootstrap.into(),
            registry: None,
            sample_records: 1000,
            batch_size: 8192,
            state_dir: std::env::temp_dir().join("fjord-sql"),
        }
    }

    pub fn with_registry(mut self, url: impl Into<String>) -> Self {
        self.registry = Some(url.into());
        self
    }

    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    pub fn with_sample_records(mut self, records: usize) -> Self {
        self.sample_records = records;
        self
    }
}

/// SQL over the topics of a cluster. Statements are DataFusion's SQL (`SELECT`, `EXPLAIN`,
/// `SHOW TABLES`, `DESCRIBE t`, ...) plus the continuous-query statements (`CREATE STREAM`,
/// `SHOW QUERIES`, `DROP STREAM`).
pub struct SqlContext {
    pub(crate) config: SqlConfig,
    pub(crate) session: SessionContext,
    pub(crate) catalog: Arc<TopicCatalog>,
    pub(crate) source: TopicSource,
    pub(crate) queries: crate::continuous::Queries,
}

impl std::fmt::Debug for SqlContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlContext")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SqlContext {
    /// Connects to the cluster (and checks that it answers).
    pub async fn connect(config: SqlConfig) -> Result<Self> {
        let admin = Arc::new(
            Admin::connect(&config.bootstrap)
                .await
                .map_err(Error::kafka(format!("connecting to {}", config.bootstrap)))?,
        );
        let source = TopicSource {
            bootstrap: config.bootstrap.clone(),
            registry: config
                .registry
                .as_ref()
                .map(|url| Arc::new(RegistryClient::new(url.clone()))),
            sample_records: config.sample_records,
            batch_size: config.batch_size,
            skipped: Arc::new(AtomicU64::new(0)),
        };
        let catalog = Arc::new(TopicCatalog::new(source.clone(), admin));
        catalog.refresh().await?;
        let session = session_with(catalog.clone(), config.batch_size)?;
        Ok(SqlContext {
            queries: crate::continuous::Queries::new(),
            config,
            session,
            catalog,
            source,
        })
    }

    /// The DataFusion session underneath (to register functions or tables, or build
    /// DataFrames).
    pub fn session(&self) -> &SessionContext {
        &self.session
    }

    /// The topics-as-tables schema.
    pub fn catalog(&self) -> &Arc<TopicCatalog> {
        &self.catalog
    }

    /// Records skipped so far because their value did not decode.
    pub fn records_skipped(&self) -> u64 {
        self.source.skipped.load(Ordering::Relaxed)
    }

    /// Runs one statement and collects its result.
    pub async fn sql(&self, statement: &str) -> Result<Vec<RecordBatch>> {
        let stream = self.execute(statement).await?;
        Ok(datafusion::physical_plan::common::collect(stream).await?)
    }

    /// Runs one statement, its result as a stream of batches (for results too large to
    /// collect). `CREATE STREAM` starts the continuous query in the background and answers at
    /// once.
    pub async fn execute(&self, statement: &str) -> Result<SendableRecordBatchStream> {
        if let Some(batch) = crate::continuous::statement(self, statement).await? {
            let schema = batch.schema();
            return Ok(Box::pin(
                datafusion::physical_plan::memory::MemoryStream::try_new(
                    vec![batch],
                    schema,
                    None,
                )?,
            ));
        }
        self.catalog.refresh().await?;
        let frame = self.session.sql(statement).await?;
        Ok(frame.execute_stream().await?)
    }
}

/// A session whose default schema is `catalog`.
pub(crate) fn session_with(
    catalog: Arc<TopicCatalog>,
    batch_size: usize,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(batch_size);
    // Spans let planning errors say where in the query they are.
    config.options_mut().sql_parser.collect_spans = true;
    let session = SessionContext::new_with_config(config);
    crate::continuous::register_functions(&session);
    let Some(default) = session.catalog("datafusion") else {
        return Err(Error::Statement {
            statement: "session",
            reason: "DataFusion's default catalog is missing".into(),
        });
    };
    default.register_schema("public", catalog)?;
    Ok(session)
}
