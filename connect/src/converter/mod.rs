//! Converters between Connect data and the bytes in Kafka records, selected by Kafka's class
//! names (`key.converter`, `value.converter`, with `key.converter.*` settings).

pub(crate) mod base64;
mod byte_array;
pub mod json;
mod string;

use std::collections::BTreeMap;

pub use byte_array::ByteArrayConverter;
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
];

/// Builds the converter `class` (a Kafka class name or its simple name) from its settings
/// (the `key.converter.` or `value.converter.` prefix already stripped).
pub fn build(
    key: &str,
    class: &str,
    settings: &BTreeMap<String, String>,
    is_key: bool,
) -> Result<Box<dyn Converter>> {
    let simple = class.trim().rsplit('.').next().unwrap_or(class);
    match simple {
        "JsonConverter" => Ok(Box::new(JsonConverter::configure(settings, is_key)?)),
        "StringConverter" => Ok(Box::new(StringConverter)),
        "ByteArrayConverter" => Ok(Box::new(ByteArrayConverter)),
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
