//! The columns of a topic table: the record's own (`key`, `value`, `partition`, `offset`,
//! `timestamp`, `headers`) and the value's fields, from a registered schema (Avro or JSON
//! Schema, subject `{topic}-value`) or inferred from a sample of JSON values.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::Value as Json;

/// Names of the record columns, in table order.
pub const RECORD_COLUMNS: [&str; 6] = [
    "key",
    "value",
    "partition",
    "offset",
    "timestamp",
    "headers",
];

/// How values are turned into the value-field columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// No value fields (values are not JSON objects, or the topic is empty).
    Raw,
    /// JSON objects (plain, or in Confluent's wire format with a JSON Schema id).
    Json,
    /// Avro in Confluent's wire format, writer schemas from the registry.
    Avro,
}

impl std::fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueFormat::Raw => "raw",
            ValueFormat::Json => "json",
            ValueFormat::Avro => "avro",
        })
    }
}

/// The timestamp column's type: milliseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn header_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(header_fields()),
        true,
    )))
}

/// Fields of one header: `key` (text) and `value` (bytes, null for a null header value).
pub fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The full table schema: record columns, then value fields. A value field whose name is a
/// record column's is renamed `value_<name>`; a second clash drops it.
pub fn table_schema(value_fields: &Fields) -> (SchemaRef, Fields) {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", timestamp_type(), false),
        Field::new("headers", header_type(), false),
    ];
    let mut decoded = Vec::new();
    for f in value_fields.iter() {
        let mut name = f.name().clone();
        if RECORD_COLUMNS.contains(&name.as_str()) {
            name = format!("value_{name}");
        }
        if fields.iter().any(|g| g.name() == &name) {
            tracing::warn!(field = %f.name(), "value field dropped: its name clashes with a column");
            continue;
        }
        fields.push(
            f.as_ref()
                .clone()
                .with_name(name.clone())
                .with_nullable(true),
        );
        // The decoder sees the field under its name in the value.
        decoded.push(f.as_ref().clone().with_nullable(true));
    }
    (Arc::new(Schema::new(fields)), Fields::from(decoded))
}

/// Arrow fields of a registered Avro record schema. Types without an Arrow column of their own
/// here (maps, nested records, fixed) are left out; unions with null become nullable columns.
pub fn fields_from_avro(topic: &str, schema: &str) -> Result<Fields, crate::Error> {
    let parsed: Json = serde_json::from_str(schema).map_err(|e| crate::Error::Schema {
        topic: topic.to_string(),
        reason: format!("the registered Avro schema is not JSON: {e}"),
    })?;
    let Some(fields) = parsed.get("fields").and_then(Json::as_array) else {
        return Err(crate::Error::Schema {
            topic: topic.to_string(),
            reason: "the registered Avro schema is not a record".into(),
        });
    };
    let mut out = Vec::new();
    for f in fields {
        let (Some(name), Some(ty)) = (f.get("name").and_then(Json::as_str), f.get("type")) else {
            continue;
        };
        if let Some(dt) = avro_type(ty) {
            out.push(Field::new(name, dt, true));
        }
    }
    Ok(Fields::from(out))
}

fn avro_type(ty: &Json) -> Option<DataType> {
    match ty {
        Json::String(s) => match s.as_str() {
            "boolean" => Some(DataType::Boolean),
            "int" => Some(DataType::Int32),
            "long" => Some(DataType::Int64),
            "float" => Some(DataType::Float32),
            "double" => Some(DataType::Float64),
            "string" => Some(DataType::Utf8),
            _ => None,
        },
        Json::Array(branches) => {
            let non_null: Vec<_> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match non_null.as_slice() {
                [one] => avro_type(one),
                _ => None,
            }
        }
        Json::Object(o) => match o.get("type").and_then(Json::as_str) {
            Some("enum") => Some(DataType::Utf8),
            Some("array") => o
                .get("items")
                .and_then(avro_type)
                .map(|item| DataType::List(Arc::new(Field::new("item", item, true)))),
            Some(inner @ ("int" | "long" | "string" | "boolean" | "float" | "double")) => {
                avro_type(&Json::String(inner.to_string()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Arrow fields of a registered JSON Schema's top-level `properties`.
pub fn fields_from_json_schema(topic: &str, schema: &str) -> Result<Fields, crate::Error> {
    let parsed: Json = serde_json::from_str(schema).map_err(|e| crate::Error::Schema {
        topic: topic.to_string(),
        reason: format!("the registered JSON Schema is not JSON: {e}"),
    })?;
    let Some(props) = parsed.get("properties").and_then(Json::as_object) else {
        return Err(crate::Error::Schema {
            topic: topic.to_string(),
            reason: "the registered JSON Schema has no properties".into(),
        });
    };
    let mut out = Vec::new();
    for (name, p) in props {
        let types: Vec<&str> = match p.get("type") {
            Some(Json::String(s)) => vec![s.as_str()],
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => continue,
        };
        let dt = match types.as_slice() {
            ["string"] => DataType::Utf8,
            ["integer"] => DataType::Int64,
            ["number"] | ["integer", "number"] | ["number", "integer"] => DataType::Float64,
            ["boolean"] => DataType::Boolean,
            _ => continue,
        };
        out.push(Field::new(name, dt, true));
    }
    Ok(Fields::from(out))
}

/// Fields inferred from sample values (JSON objects; anything else is ignored), by name (the
/// order serde_json keeps object keys in). Fields seen only as null become text.
pub fn infer_json_fields(samples: &[Json]) -> Result<Fields, crate::Error> {
    let objects: Vec<&Json> = samples.iter().filter(|v| v.is_object()).collect();
    if objects.is_empty() {
        return Ok(Fields::empty());
    }
    let inferred = datafusion::arrow::json::reader::infer_json_schema_from_iterator(
        objects
            .iter()
            .map(|v| Ok::<_, datafusion::arrow::error::ArrowError>(*v)),
    )
    .map_err(crate::Error::arrow("inferring the value schema"))?;
    let mut order: Vec<&str> = Vec::new();
    for o in &objects {
        if let Some(map) = o.as_object() {
            for k in map.keys() {
                if !order.contains(&k.as_str()) {
                    order.push(k);
                }
            }
        }
    }
    let mut out = Vec::new();
    for name in order {
        if let Ok(f) = inferred.field_with_name(name) {
            let f = if f.data_type() == &DataType::Null {
                f.clone().with_data_type(DataType::Utf8)
            } else {
                f.clone()
            };
            out.push(f.with_nullable(true));
        }
    }
    Ok(Fields::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inferred_fields_are_sorted_by_name_and_widen_numbers() {
        let f = infer_json_fields(&[
            json!({"user": "a", "amount": 1}),
            json!({"amount": 2.5, "x": null}),
            json!(7),
        ])
        .unwrap();
        let names: Vec<_> = f
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("amount", DataType::Float64),
                ("user", DataType::Utf8),
                ("x", DataType::Utf8)
            ]
        );
    }

    #[test]
    fn clashing_value_fields_are_renamed() {
        let (schema, decoded) = table_schema(&Fields::from(vec![Field::new(
            "timestamp",
            DataType::Int64,
            true,
        )]));
        assert_eq!(schema.field(6).name(), "value_timestamp");
        assert_eq!(decoded[0].name(), "timestamp");
    }

    #[test]
    fn avro_record_fields() {
        let s = r#"{"type":"record","name":"C","fields":[{"name":"user","type":"string"},{"name":"n","type":["null","long"]},{"name":"m","type":{"type":"map","values":"long"}}]}"#;
        let f = fields_from_avro("t", s).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].data_type(), &DataType::Int64);
    }

    #[test]
    fn json_schema_properties() {
        let s = r#"{"type":"object","properties":{"user":{"type":"string"},"n":{"type":["integer","null"]}}}"#;
        let f = fields_from_json_schema("t", s).unwrap();
        assert_eq!(f.len(), 2);
    }
}
