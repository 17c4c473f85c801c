//! fjord-schema-registry: a Confluent-compatible schema registry whose state lives in the
//! single-partition compacted `_schemas` topic, and the Avro wire-format serdes.
//!
//! - [`server`]: [`RegistryServer`] binds, reads `_schemas` to its end, joins the leader
//!   election ([`leader`]) and serves the Confluent REST API ([`api`]).
//! - [`registry`]: registration, lookups, deletes, config and mode over the store.
//! - [`store`]: Confluent's `_schemas` record formats, the replayed [`store::state::State`] and
//!   the Kafka reader/writer.
//! - [`schema`], [`compat`]: Avro and JSON Schema parsing and the compatibility rules.
//! - [`serdes`]: the wire format (magic byte 0, 4-byte schema id, Avro binary) with a schema
//!   cache and the subject name strategies.
//!
//! ```no_run
//! # async fn run() -> Result<(), fjord_schema_registry::Error> {
//! use fjord_schema_registry::{RegistryConfig, RegistryServer};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let mut config = RegistryConfig::new("127.0.0.1:9092");
//! config.listen = "127.0.0.1:0".into();
//! let server = RegistryServer::start(config, shutdown.clone()).await?;
//! println!("listening on {}", server.local_addr());
//! server.run().await
//! # }
//! ```

pub mod api;
pub mod compat;
mod error;
pub mod leader;
pub mod registry;
pub mod schema;
pub mod serdes;
pub mod server;
pub mod store;

pub use error::{ApiError, Error, Result, codes};
pub use server::{RegistryConfig, RegistryServer};
