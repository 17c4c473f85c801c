//! fjord-client integration tests against a real in-process broker.

mod harness;
mod producer;
