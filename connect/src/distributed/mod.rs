//! Distributed mode: workers with one `group.id` share connectors and tasks through a group of
//! protocol type `connect`, with configs, source offsets and statuses in compacted topics.
//!
//! ```text
//! protocol.rs     ConnectProtocol v0 (`default`, eager): worker metadata, assignments, the
//!                 round-robin assignor
//! config_log.rs   connect-configs record formats and the ConfigSnapshot read from them
//! log.rs          KafkaBasedLog: an internal topic read from the beginning, read-to-end
//! herder.rs       Cluster: internal topics, the group loop, the leader's writes, forwarding
//! ```

mod config_log;
mod herder;
mod log;
mod protocol;

pub(crate) use config_log::ConfigSnapshot;
pub use herder::Cluster;
pub(crate) use herder::{CONFLICTING, FORWARDED, STALE_CONFIG};
pub(crate) use log::KafkaBasedLog;
pub(crate) use protocol::Assignment;
