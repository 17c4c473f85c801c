//! Header converters (`header.converter`, on the worker or the connector): header values are
//! Connect data (schema and value) inside the runtime and bytes in Kafka.
//!
//! - `org.apache.kafka.connect.storage.SimpleHeaderConverter` (the default), as Kafka's: bytes
//!   are read as a UTF-8 string and parsed like `Values.parseString` (`true`/`false` →
//!   boolean; integers → the smallest of int8/16/32/64; decimals → float64; a JSON array or
//!   object of one primitive type → array or string-keyed map; anything else → string;
//!   non-UTF-8 → bytes). Values are written like `Values.convertToString` (strings as they
//!   are, numbers and booleans as text, bytes in base64, structs, maps and arrays as JSON).
//! - `org.apache.kafka.connect.storage.StringConverter`: strings both ways (other values
//!   written as text).
//! - `org.apache.kafka.connect.converters.ByteArrayConverter`: bytes as they are (writing
//!   anything but bytes or a string fails).

use crate::converter::base64;
use crate::data::{Schema, SchemaType, Value};
use crate::error::{Error, Result};

/// A header converter (`org.apache.kafka.connect.storage.HeaderConverter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderConverter {
    #[default]
    Simple,
    String,
    ByteArray,
}

/// The header converter classes, by Kafka class name.
pub const HEADER_CONVERTER_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.storage.SimpleHeaderConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
];

impl HeaderConverter {
    /// By Kafka class name or simple name; empty means the default (Simple).
    pub fn from_class(class: &str) -> Result<Self> {
        let class = class.trim();
        let simple = class.rsplit('.').next().unwrap_or(class);
        match simple {
            "" | "SimpleHeaderConverter" => Ok(HeaderConverter::Simple),
            "StringConverter" => Ok(HeaderConverter::String),
            "ByteArrayConverter" => Ok(HeaderConverter::ByteArray),
            _ => Err(Error::config(
                "header.converter",
                class,
                format!(
                    "Class {class} could not be found; header converters: {}",
                    HEADER_CONVERTER_CLASSES.join(", ")
                ),
            )),
        }
    }

    /// Header bytes (`None`: a null header) to Connect data.
    pub fn to_connect(&self, bytes: Option<&[u8]>) -> (Option<Schema>, Value) {
        let Some(bytes) = bytes else {
            return (None, Value::Null);
        };
        match self {
            HeaderConverter::ByteArray => (Some(Schema::bytes()), Value::Bytes(bytes.to_vec())),
            HeaderConverter::String => (
                Some(Schema::string()),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            ),
            HeaderConverter::Simple => match std::str::from_utf8(bytes) {
                Ok(text) => parse_string(text),
                Err(_) => (Some(Schema::bytes()), Value::Bytes(bytes.to_vec())),
            },
        }
    }

    /// Connect data to header bytes (`None`: a null header).
    pub fn from_connect(
        &self,
        header: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if value.is_null() {
            return Ok(None);
        }
        match (self, value) {
            (HeaderConverter::ByteArray, Value::Bytes(b)) => Ok(Some(b.clone())),
            (HeaderConverter::ByteArray, Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            (HeaderConverter::ByteArray, _) => Err(Error::conversion(
                format!("header {header}"),
                "ByteArrayConverter writes only bytes",
            )),
            (_, value) => Ok(Some(to_string(value).into_bytes())),
        }
    }
}

fn int_schema(i: i64) -> Schema {
    let t = if i8::try_from(i).is_ok() {
        SchemaType::Int8
    } else if i16::try_from(i).is_ok() {
        SchemaType::Int16
    } else if i32::try_from(i).is_ok() {
        SchemaType::Int32
    } else {
        SchemaType::Int64
    };
    Schema::new(t)
}

fn scalar(json: &serde_json::Value) -> Option<(Schema, Value)> {
    match json {
        serde_json::Value::Bool(b) => Some((Schema::boolean(), Value::Boolean(*b))),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Some((int_schema(i), Value::Int(i))),
            None => n.as_f64().map(|f| (Schema::float64(), Value::Float(f))),
        },
        serde_json::Value::String(s) => Some((Schema::string(), Value::String(s.clone()))),
        _ => None,
    }
}

/// One schema for every element (the widest integer type when they differ), if they share a
/// kind.
fn common(items: &[(Schema, Value)]) -> Option<Schema> {
    let first = items.first()?.0.clone();
    let ints = |t: SchemaType| {
        matches!(
            t,
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64
        )
    };
    let mut widest = first.clone();
    for (s, _) in items {
        if ints(s.type_) && ints(widest.type_) {
            if rank(s.type_) > rank(widest.type_) {
                widest = s.clone();
            }
        } else if s.type_ != widest.type_ {
            return None;
        }
    }
    Some(widest)
}

fn rank(t: SchemaType) -> u8 {
    match t {
        SchemaType::Int8 => 0,
        SchemaType::Int16 => 1,
        SchemaType::Int32 => 2,
        _ => 3,
    }
}

/// `Values.parseString` for the cases headers carry.
pub(crate) fn parse_string(text: &str) -> (Option<Schema>, Value) {
    let trimmed = text.trim();
    let string = || (Some(Schema::string()), Value::String(text.to_string()));
    if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
        return (
            Some(Schema::boolean()),
            Value::Boolean(trimmed.eq_ignore_ascii_case("true")),
        );
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return (Some(int_schema(i)), Value::Int(i));
    }
    if trimmed.contains(['.', 'e', 'E'])
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && let Ok(f) = trimmed.parse::<f64>()
    {
        return (Some(Schema::float64()), Value::Float(f));
    }
    if (trimmed.starts_with('[') && trimmed.ends_with(']'))
        || (trimmed.starts_with('{') && trimmed.ends_with('}'))
    {
        match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(serde_json::Value::Array(items)) => {
                let parsed: Option<Vec<(Schema, Value)>> = items.iter().map(scalar).collect();
                if let Some(parsed) = parsed
                    && let Some(element) = common(&parsed)
                        .or_else(|| parsed.is_empty().then(|| Schema::string().optional()))
                {
                    let values = parsed.into_iter().map(|(_, v)| v).collect();
                    return (Some(Schema::array(element)), Value::Array(values));
                }
            }
            Ok(serde_json::Value::Object(map)) => {
                let parsed: Option<Vec<(String, (Schema, Value))>> = map
                    .iter()
                    .map(|(k, v)| scalar(v).map(|s| (k.clone(), s)))
                    .collect();
                if let Some(parsed) = parsed {
                    let schemas: Vec<(Schema, Value)> =
                        parsed.iter().map(|(_, s)| s.clone()).collect();
                    if let Some(value_schema) = common(&schemas) {
                        let entries = parsed
                            .into_iter()
                            .map(|(k, (_, v))| (Value::String(k), v))
                            .collect();
                        return (
                            Some(Schema::map(Schema::string(), value_schema)),
                            Value::Map(entries),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    string()
}

/// `Values.convertToString`.
pub(crate) fn to_string(value: &Value) -> String {
    match value {
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 => {
            format!("{f:.1}")
        }
        Value::Bytes(b) => base64::encode(b),
        other => other.to_text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (SchemaType, Value) {
        let (schema, value) = HeaderConverter::Simple.to_connect(Some(text.as_bytes()));
        (schema.map_or(SchemaType::String, |s| s.type_), value)
    }

    #[test]
    fn simple_header_converter_infers_types_as_kafkas_values_parse_string() {
        assert_eq!(parsed("true"), (SchemaType::Boolean, Value::Boolean(true)));
        assert_eq!(parsed("42"), (SchemaType::Int8, Value::Int(42)));
        assert_eq!(parsed("300"), (SchemaType::Int16, Value::Int(300)));
        assert_eq!(parsed("70000"), (SchemaType::Int32, Value::Int(70000)));
        assert_eq!(
            parsed("5000000000"),
            (SchemaType::Int64, Value::Int(5_000_000_000))
        );
        assert_eq!(parsed("1.5"), (SchemaType::Float64, Value::Float(1.5)));
        assert_eq!(
            parsed("hello world"),
            (SchemaType::String, Value::String("hello world".into()))
        );
        let (schema, value) = HeaderConverter::Simple.to_connect(Some(b"[1, 2, 300]"));
        let schema = schema.unwrap();
        assert_eq!(schema.type_, SchemaType::Array);
        assert_eq!(
            value,
            Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(300)])
        );
        let (schema, _) = HeaderConverter::Simple.to_connect(Some(br#"{"a": "x", "b": "y"}"#));
        assert_eq!(schema.unwrap().type_, SchemaType::Map);
        // Mixed arrays and other text stay strings; null stays null; non-UTF-8 is bytes.
        assert_eq!(parsed("[1, \"a\"]").0, SchemaType::String);
        assert_eq!(parsed("1.2.3").0, SchemaType::String);
        assert_eq!(
            HeaderConverter::Simple.to_connect(None),
            (None, Value::Null)
        );
        assert_eq!(
            HeaderConverter::Simple.to_connect(Some(&[0xff, 0xfe])).1,
            Value::Bytes(vec![0xff, 0xfe])
        );
    }

    #[test]
    fn values_are_written_as_kafkas_values_convert_to_string() {
        let w = |v: Value| {
            HeaderConverter::Simple
                .from_connect("h", None, &v)
                .unwrap()
                .map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(w(Value::String("abc".into())).as_deref(), Some("abc"));
        assert_eq!(w(Value::Int(5)).as_deref(), Some("5"));
        assert_eq!(w(Value::Float(2.0)).as_deref(), Some("2.0"));
        assert_eq!(w(Value::Boolean(false)).as_deref(), Some("false"));
        assert_eq!(w(Value::Bytes(b"hi".to_vec())).as_deref(), Some("aGk="));
        assert_eq!(
            w(Value::struct_of([
                ("a", Value::Int(1)),
                ("b", Value::String("x".into()))
            ]))
            .as_deref(),
            Some(r#"{"a":1,"b":"x"}"#)
        );
        assert_eq!(w(Value::Null), None);
        // Round trip through the parser.
        let (_, v) = HeaderConverter::Simple.to_connect(Some(b"123"));
        assert_eq!(w(v).as_deref(), Some("123"));
    }

    #[test]
    fn string_and_byte_array_header_converters() {
        assert_eq!(
            HeaderConverter::String.to_connect(Some(b"42")).1,
            Value::String("42".into())
        );
        assert_eq!(
            HeaderConverter::ByteArray.to_connect(Some(b"42")).1,
            Value::Bytes(b"42".to_vec())
        );
        assert!(
            HeaderConverter::ByteArray
                .from_connect("h", None, &Value::Int(1))
                .is_err()
        );
        assert_eq!(
            HeaderConverter::from_class("org.apache.kafka.connect.storage.SimpleHeaderConverter")
                .unwrap(),
            HeaderConverter::Simple
        );
        let err = HeaderConverter::from_class("com.example.Nope").unwrap_err();
        assert!(err.to_string().contains("header.converter"));
    }
}
