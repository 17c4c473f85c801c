//! The Fjord broker: a Kafka-wire-compatible server on a durable segmented log.
//!
//! [`Broker`] holds the state (topics, partition logs under the data directory); [`Server`]
//! serves it to Kafka clients. Batches stay bytes: the broker validates each batch's header and
//! CRC, writes the offsets into it and appends it as sent; fetches return file bytes.
//!
//! ```no_run
//! # async fn run() -> Result<(), fjord_broker::Error> {
//! use fjord_broker::{Broker, BrokerConfig, Server};
//! let config = BrokerConfig::from_values(Default::default())?;
//! let server = Server::bind(Broker::open(config)?).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

mod broker;
mod clock;
mod cluster;
pub mod config;
mod error;
mod group;
mod handlers;
mod log;
mod metadata;
mod offsets;
mod partition;
mod producer_ids;
mod recompress;
mod replication;
mod server;
mod topic;

#[doc(hidden)]
pub mod fuzzing;

pub use broker::Broker;
pub use clock::{Clock, SystemClock};
pub use cluster::Node;
pub use config::BrokerConfig;
pub use error::{ApiError, Error, Result};
pub use log::SequenceError;
pub use server::Server;
