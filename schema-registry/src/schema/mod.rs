//! Schema types the registry stores: Avro (the default) and JSON Schema.

pub mod avro;
pub mod json;

use serde::{Deserialize, Serialize};

pub use self::avro::AvroSchema;
pub use self::json::JsonSchema;

/// A schema's type as the REST API spells it (`schemaType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses the API's spelling (case-insensitive, as Confluent).
    pub fn parse(text: &str) -> Option<SchemaType> {
        match text.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A reference from one schema to a version of another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema parsed for its type.
#[derive(Debug, Clone)]
pub enum ParsedSchema {
    Avro(AvroSchema),
    Json(JsonSchema),
}

impl ParsedSchema {
    /// Parses `text` as `schema_type`; `references` are the referenced schemas' texts,
    /// dependencies first. The error is the parser's message.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        references: &[String],
    ) -> Result<ParsedSchema, String> {
        match schema_type {
            SchemaType::Avro => AvroSchema::parse(text, references).map(ParsedSchema::Avro),
            SchemaType::Json => JsonSchema::parse(text).map(ParsedSchema::Json),
            SchemaType::Protobuf => Err("Protobuf schemas are not supported".to_string()),
        }
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            ParsedSchema::Avro(_) => SchemaType::Avro,
            ParsedSchema::Json(_) => SchemaType::Json,
        }
    }

    /// The normalized text (see [`AvroSchema::normalized`]).
    pub fn normalized(&self) -> &str {
        match self {
            ParsedSchema::Avro(s) => s.normalized(),
            ParsedSchema::Json(s) => s.normalized(),
        }
    }
}

/// `text` without the whitespace between JSON tokens (strings untouched). For valid JSON only.
pub fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings_and_drops_token_whitespace() {
        assert_eq!(
            minify_json("{ \"a b\" : [ 1 , \"x \\\" y\" ] }\n"),
            "{\"a b\":[1,\"x \\\" y\"]}"
        );
    }

    #[test]
    fn schema_types_parse_case_insensitively() {
        assert_eq!(SchemaType::parse("avro"), Some(SchemaType::Avro));
        assert_eq!(SchemaType::parse("JSON"), Some(SchemaType::Json));
        assert_eq!(SchemaType::parse("xml"), None);
    }
}
