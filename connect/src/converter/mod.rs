//! Converters between Connect data and the bytes in Kafka records, selected by Kafka's class
//! names (`key.converter`, `value.converter`, with `key.converter.*` settings).

pub mod avro;
pub(crate) mod base64;
mod byte_array;
pub mod header;
pub mod json;
mod string;

use std::collections::BTreeMap;

pub use avro::AvroConverter;
pub use byte_array::ByteArrayConverter;
pub use header::HeaderConverter;
pub use json::JsonConverter;
pub use string::StringConverter;

use crate::data::{Schema, Value};
use crate::error::{Error, Result};

/// Turns Connect data into record bytes and back (`org.apache.kafka.connect.storage.Converter`).
pub trait Converter: Send + Sync {
    /// Serializes a key or value; `None` is a null key or value.
    fn to_bytes(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>>;

    /// Deserializes a key or value (`None`: a null key or value).
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value)>;
}

/// The converter classes this runtime knows, by Kafka class name.
pub const CONVERTER_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.json.JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
    "io.confluent.connect.avro.AvroConverter",
];

/// A configured converter: the synchronous ones, or Avro (which talks to a registry).
#[derive(Debug)]
pub enum AnyConverter {
    Sync(Box<dyn Converter>),
    Avro(Box<AvroConverter>),
}

impl std::fmt::Debug for dyn Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Converter")
    }
}

impl AnyConverter {
    pub async fn to_bytes(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        match self {
            AnyConverter::Sync(c) => c.to_bytes(topic, schema, value),
            AnyConverter::Avro(c) => c.to_bytes(topic, schema, value).await,
        }
    }

    pub async fn to_connect(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value)> {
        match self {
            AnyConverter::Sync(c) => c.to_connect(topic, bytes),
            AnyConverter::Avro(c) => c.to_connect(topic, bytes).await,
        }
    }
}

/// Builds the converter `class` (a Kafka class name or its simple name) from its settings
/// (the `key.converter.` or `value.converter.` prefix already stripped).
pub fn build(
    key: &str,
    class: &str,
    settings: &BTreeMap<String, String>,
    is_key: bool,
) -> Result<AnyConverter> {
    let simple = class.trim().rsplit('.').next().unwrap_or(class);
    let sync = |c: Box<dyn Converter>| Ok(AnyConverter::Sync(c));
    match simple {
        "JsonConverter" => sync(Box::new(JsonConverter::configure(settings, is_key)?)),
        "StringConverter" => sync(Box::new(StringConverter)),
        "ByteArrayConverter" => sync(Box::new(ByteArrayConverter)),
        "AvroConverter" => Ok(AnyConverter::Avro(Box::new(AvroConverter::configure(
            settings, is_key,
        )?))),
        _ => Err(Error::config(
            key,
            class,
            format!(
                "Class {class} could not be found; converters: {}",
                CONVERTER_CLASSES.join(", ")
            ),
        )),
    }
}
