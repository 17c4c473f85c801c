//! The cluster: a KRaft-style metadata quorum on openraft (controllers), and the brokers that
//! register with it and apply its metadata image.
//!
//! - `raft`: the Raft log store, the state machine (the metadata image) and the type config.
//! - `rpc`: the controller listener's gRPC service (tonic) and openraft's network over it.
//! - `controller`: the controller API (registration, heartbeats, topic changes,
//!   AlterPartition, image fetches) and the active controller's timers (fencing, preferred
//!   leaders).
//! - `node`: starting a node's roles and the broker side (heartbeats, image following).
//! - `replica`: replica fetchers (followers), follower truncation, ISR changes (leaders).

mod controller;
mod node;
mod raft;
mod replica;
mod rpc;

pub(crate) use controller::ControllerRequest;
pub(crate) use node::BrokerCluster;
pub use node::Node;
pub(crate) use replica::send_alter_partition;
