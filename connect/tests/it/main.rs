//! Integration tests: a real broker in-process, the Connect worker and its REST API.

mod avro;
mod distributed;
mod errors;
mod file_pipeline;
mod harness;
mod headers;
mod jdbc;
mod lifecycle;
mod rest;
mod topic_creation;
