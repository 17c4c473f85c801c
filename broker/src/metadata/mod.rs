//! Cluster metadata, KRaft-style: the records of the metadata log, the image every node builds
//! from them, and the active controller's decisions (placement, fencing and leader election,
//! AlterPartition, preferred leaders, producer-id blocks). All pure and unit-tested; the Raft
//! quorum that orders the records (openraft over tonic) is the next step of issue 5.

// Driven by the controller quorum once it lands; until then only the tests use it.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod controller;
pub(crate) mod image;
