//! The store: state kept in the compacted `_schemas` topic.

pub mod kafka;
pub mod records;
pub mod state;
