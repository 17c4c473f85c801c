//! Records as connectors and transforms see them.

use bytes::Bytes;
use serde_json::Map;

use super::{Schema, Value};

/// A record header as Connect data; the `header.converter` turns it into bytes and back.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub schema: Option<Schema>,
    pub value: Value,
}

impl Header {
    /// A string header (or a null one).
    pub fn string(key: impl Into<String>, value: Option<&str>) -> Self {
        Header {
            key: key.into(),
            schema: value.map(|_| Schema::string()),
            value: value.map_or(Value::Null, |v| Value::String(v.to_string())),
        }
    }

    /// A header with raw bytes.
    pub fn bytes(key: impl Into<String>, value: Option<Bytes>) -> Self {
        Header {
            key: key.into(),
            schema: value.as_ref().map(|_| Schema::bytes()),
            value: value.map_or(Value::Null, |v| Value::Bytes(v.to_vec())),
        }
    }
}

/// The part of a record that transforms and converters handle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectRecord {
    pub topic: String,
    pub kafka_partition: Option<i32>,
    /// The record's offset in Kafka (sink records only).
    pub kafka_offset: Option<i64>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl ConnectRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value_schema: Option<Schema>, value: Value) -> Self {
        ConnectRecord {
            topic: topic.into(),
            value_schema,
            value,
            ..Default::default()
        }
    }

    /// The last header with this key.
    pub fn header(&self, key: &str) -> Option<&Header> {
        self.headers.iter().rev().find(|h| h.key == key)
    }
}

/// A record produced by a source task, with where it came from (`sourcePartition`) and how
/// far the task has read (`sourceOffset`), both JSON maps as in Kafka Connect.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub source_partition: Map<String, serde_json::Value>,
    pub source_offset: Map<String, serde_json::Value>,
    pub record: ConnectRecord,
}

/// A record handed to a sink task, with its Kafka coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub record: ConnectRecord,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}
