//! Committed offsets, kept in the compacted internal topic `__consumer_offsets` in Kafka's
//! key/value formats (see `codec`), with an in-memory view rebuilt from it at startup.

mod codec;
mod store;

pub(crate) use codec::{CommittedOffset, decode_group, encode_group, partition_for};
pub(crate) use store::{OFFSETS_TOPIC, OffsetStore};
