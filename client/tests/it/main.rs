//! fjord-client integration tests against a real in-process broker.

mod admin;
mod consumer;
mod group_member;
mod harness;
mod pipelining;
mod producer;
