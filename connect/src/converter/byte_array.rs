//! `org.apache.kafka.connect.converters.ByteArrayConverter`.

use crate::data::{Schema, SchemaType, Value};
use crate::error::{Error, Result};

use super::Converter;

/// Bytes passed through unchanged; reads give an optional bytes schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn to_bytes(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(s) = schema
            && s.type_ != SchemaType::Bytes
        {
            return Err(Error::conversion(
                format!("a record of topic {topic}"),
                format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    s.type_.name()
                ),
            ));
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(Error::conversion(
                format!("a record of topic {topic}"),
                format!("ByteArrayConverter is not compatible with objects of type {other:?}"),
            )),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let schema = Some(Schema::bytes().optional());
        Ok((
            schema,
            bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ))
    }
}
