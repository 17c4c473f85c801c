//! fjord-client integration tests against a real in-process broker.

mod consumer;
mod harness;
mod producer;
