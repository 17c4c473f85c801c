//! fjord-connect: a Kafka-Connect-compatible runtime.
//!
//! - [`data`]: Connect's data model ([`Schema`], [`Value`], [`ConnectRecord`]).
//! - [`converter`]: `JsonConverter` (with `schemas.enable` envelopes), `StringConverter`,
//!   `ByteArrayConverter`, `AvroConverter`, and the header converters.
//! - [`transforms`]: Kafka's single-message transforms and predicates.
//! - [`plugin`]: the `SourceConnector`/`SourceTask`/`SinkConnector`/`SinkTask` traits and the
//!   registry of built-in plugins by class name.
//! - [`runtime`]: the worker (task lifecycle, statuses, source offsets, sink commits through a
//!   consumer group, `errors.tolerance` and the dead-letter queue, `topic.creation.*`).
//! - [`distributed`]: distributed mode — workers of one `group.id` share connectors and tasks,
//!   with configs, offsets and statuses in the `connect-configs`, `connect-offsets` and
//!   `connect-status` topics ([`ConnectServer::start_distributed`]).
//! - [`rest`]: the Kafka Connect REST API (axum).
//! - [`connectors`]: built-in connectors (file source and sink, JDBC sink and source).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fjord_connect::{ConnectServer, WorkerConfig};
//! let config = WorkerConfig::from_properties(&[
//!     ("bootstrap.servers".to_string(), "127.0.0.1:9092".to_string()),
//!     ("offset.storage.file.filename".to_string(), "/tmp/connect.offsets".to_string()),
//! ].into_iter().collect())?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let server = ConnectServer::start(config, shutdown).await?;
//! server.run().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod connectors;
pub mod converter;
pub mod data;
pub mod distributed;
mod error;
pub mod plugin;
pub mod rest;
pub mod runtime;
mod server;
pub mod transforms;

pub use config::{ConnectorConfig, DistributedConfig, WorkerConfig};
pub use data::{ConnectRecord, Field, Schema, SchemaType, Value};
pub use error::{Error, Result};
pub use server::ConnectServer;
