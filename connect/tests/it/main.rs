//! Integration tests: a real broker in-process, the Connect worker and its REST API.

mod avro;
mod errors;
mod file_pipeline;
mod harness;
mod jdbc;
mod lifecycle;
mod rest;
