//! fjord-client: a pure-Rust Kafka client (no librdkafka).
//!
//! [`Producer`] (batching, compression, acks, retries, idempotence, the Java client's murmur2
//! partitioner), [`Consumer`] (assign or subscribe in a group, commits, seeks, a `Stream` of
//! records), [`Admin`] (topics, configs, records, offsets, groups, cluster) and [`Connection`],
//! one broker connection that negotiates API versions and sends typed requests. Configs take
//! Kafka's property names (`ProducerConfig::from_properties`, `ConsumerConfig::from_properties`).
//!
//! ```no_run
//! # async fn run() -> Result<(), fjord_client::Error> {
//! let admin = fjord_client::Admin::connect("127.0.0.1:9092").await?;
//! for group in admin.list_groups().await? {
//!     println!("{} {}", group.group_id, group.state);
//! }
//! # Ok(()) }
//! ```

mod admin;
mod connection;
pub mod consumer;
mod error;
mod pipeline;
mod producer;
mod requests;

pub use admin::{
    Admin, ClusterDescription, GroupDescription, GroupListing, MemberDescription, OffsetSpec,
    Reassignment, TopicPartition,
};
pub use connection::Connection;
pub use consumer::{
    AssignmentStrategy, CommitCallback, ConfigError, Consumer, ConsumerConfig, ConsumerRecord,
    GroupMember, HeartbeatOutcome, IsolationLevel, JoinedGroup, OffsetReset, RebalanceListener,
    Topic,
};
pub use error::{Error, Result};
pub use producer::{
    Acks, Compression, DefaultPartitioner, DeliveryFuture, Partitioner, Producer, ProducerConfig,
    ProducerRecord, RecordMetadata, murmur2, partition_for_key, to_positive,
};
