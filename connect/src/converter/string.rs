//! `org.apache.kafka.connect.storage.StringConverter`.

use crate::data::{Schema, Value};
use crate::error::{Error, Result};

use super::Converter;

/// Values as UTF-8 text; reads give an optional string schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn to_bytes(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        Ok(match value {
            Value::Null => None,
            other => Some(other.to_text().into_bytes()),
        })
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let schema = Some(Schema::string().optional());
        match bytes {
            None => Ok((schema, Value::Null)),
            Some(b) => {
                let text = std::str::from_utf8(b).map_err(|e| {
                    Error::conversion(format!("a record of topic {topic}"), e.to_string())
                })?;
                Ok((schema, Value::String(text.to_string())))
            }
        }
    }
}
