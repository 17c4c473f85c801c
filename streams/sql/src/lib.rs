//! fjord-sql: SQL over Fjord (or any Kafka) topics, on DataFusion and Arrow.
//!
//! Every topic is a table with the columns `key`, `value` (bytes), `partition`, `offset`,
//! `timestamp` (ms, UTC), `headers` (a list of `{key, value}`), followed by the fields of the
//! value: from the schema registered under `{topic}-value` (Avro or JSON Schema) or inferred
//! from a sample of JSON values. Partitions are scanned in parallel; filters on `partition`,
//! `offset` and a lower bound on `timestamp` (through ListOffsets) decide what is fetched.
//!
//! - [`SqlContext`]: runs statements, returns Arrow [`RecordBatch`](datafusion::arrow::array::RecordBatch)es.
//! - [`topic`]: the table provider and scan.
//! - [`continuous`]: `CREATE STREAM … AS SELECT …`: windowed and joined queries that run until
//!   dropped and write to a topic.
//! - [`format`]: results as a table, JSON lines or CSV.
//!
//! ```no_run
//! # async fn run() -> fjord_sql::Result<()> {
//! use fjord_sql::{SqlConfig, SqlContext};
//! let ctx = SqlContext::connect(SqlConfig::new("127.0.0.1:9092")).await?;
//! let batches = ctx.sql(r#"SELECT "user", sum(amount) FROM clicks GROUP BY "user""#).await?;
//! # Ok(()) }
//! ```

pub mod catalog;
mod context;
pub mod continuous;
mod error;
pub mod format;
pub mod topic;

pub use context::{SqlConfig, SqlContext};
pub use datafusion;
pub use datafusion::arrow;
pub use error::{Error, Result};
pub use format::OutputFormat;
