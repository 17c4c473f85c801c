//! Partition replication, Kafka's model: the leader's view of its followers (ISR, high
//! watermark, `acks=-1`), the leader-epoch cache (OffsetForLeaderEpoch) and the follower's
//! truncation rule after a leader change. The state machines here are pure and unit-tested;
//! see docs/replication.md for how the broker drives them.

pub(crate) mod epochs;
pub(crate) mod follower;
pub(crate) mod leader;
