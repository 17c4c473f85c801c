//! Integration tests: the registry over a real in-process broker, through its HTTP API.

mod bad_input;
mod config;
mod harness;
mod instances;
mod schemas;
mod serdes;
mod subjects;
