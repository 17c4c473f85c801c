//! fjord-sql's integration tests, against a real broker on an ephemeral loopback port.

mod adhoc;
mod continuous;
#[allow(dead_code)]
mod harness;
#[path = "../common/nexmark.rs"]
mod nexmark;
mod registry;
mod slt;
