//! Integration tests against a real broker on an ephemeral loopback port.

mod avro;
mod examples;
mod harness;
mod runtime;
mod windowed;
