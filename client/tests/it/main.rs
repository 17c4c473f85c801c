//! fjord-client integration tests against a real in-process broker.

mod admin;
mod consumer;
mod harness;
mod pipelining;
mod producer;
