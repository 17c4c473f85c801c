//! Per-API integration tests against a real broker on an ephemeral loopback port: one test
//! binary, one module per API or feature, sharing the [`harness`].

mod harness;

mod api_versions;
mod bad_input;
mod compaction;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod recovery;
mod retention;
