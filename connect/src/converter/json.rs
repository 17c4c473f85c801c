//! `org.apache.kafka.connect.json.JsonConverter`: JSON values, with `schemas.enable` (default
//! true) wrapping each one in Kafka Connect's `{"schema": ..., "payload": ...}` envelope.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value as Json, json};

use crate::data::{Field, Schema, SchemaType, Value};
use crate::error::{Error, Result};

use super::{Converter, base64};

const ENVELOPE_ERROR: &str = "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.";

/// JSON with or without schema envelopes.
#[derive(Debug)]
pub struct JsonConverter {
    pub schemas_enable: bool,
    /// The last envelope schema read and its parsed form: records of a topic mostly share one.
    last_schema: std::sync::Mutex<Option<(Json, Schema)>>,
}

impl JsonConverter {
    /// From the converter's settings (`schemas.enable`).
    pub fn configure(settings: &BTreeMap<String, String>, _is_key: bool) -> Result<Self> {
        let schemas_enable = match settings.get("schemas.enable").map(|s| s.trim()) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(Error::config(
                    "schemas.enable",
                    v,
                    "Expected value to be either true or false",
                ));
            }
        };
        Ok(JsonConverter::new(schemas_enable))
    }

    pub fn new(schemas_enable: bool) -> Self {
        JsonConverter {
            schemas_enable,
            last_schema: std::sync::Mutex::new(None),
        }
    }

    /// Parses an envelope schema, reusing the last one when it is the same.
    fn schema_of(&self, json: &Json) -> Result<Schema, String> {
        let mut last = self.last_schema.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((j, s)) = last.as_ref()
            && j == json
        {
            return Ok(s.clone());
        }
        let schema = json_to_schema(json)?;
        *last = Some((json.clone(), schema.clone()));
        Ok(schema)
    }
}

impl Converter for JsonConverter {
    fn to_bytes(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let payload = match schema {
            Some(s) => value_to_json(s, value)
                .map_err(|r| Error::conversion(format!("a record of topic {topic}"), r))?,
            None => value_to_plain_json(value),
        };
        let json = if self.schemas_enable {
            json!({"schema": schema.map(schema_to_json), "payload": payload})
        } else {
            payload
        };
        serde_json::to_vec(&json)
            .map(Some)
            .map_err(|e| Error::conversion(format!("a record of topic {topic}"), e.to_string()))
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let what = || format!("a record of topic {topic}");
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let json: Json = serde_json::from_slice(bytes).map_err(|e| {
            Error::conversion(
                what(),
                format!(
                    "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
                ),
            )
        })?;
        if !self.schemas_enable {
            return Ok((None, json_to_plain_value(&json)));
        }
        let Json::Object(object) = &json else {
            return Err(Error::conversion(what(), ENVELOPE_ERROR));
        };
        let (Some(schema), Some(payload), 2) =
            (object.get("schema"), object.get("payload"), object.len())
        else {
            return Err(Error::conversion(what(), ENVELOPE_ERROR));
        };
        if schema.is_null() {
            return Ok((None, json_to_plain_value(payload)));
        }
        let schema = self
            .schema_of(schema)
            .map_err(|r| Error::conversion(what(), r))?;
        let value = json_to_value(&schema, payload).map_err(|r| Error::conversion(what(), r))?;
        Ok((Some(schema), value))
    }
}

/// The JSON form of a schema (`JsonConverter.asJsonSchema`).
pub fn schema_to_json(schema: &Schema) -> Json {
    let mut o = Map::new();
    o.insert("type".into(), json!(schema.type_.name()));
    match schema.type_ {
        SchemaType::Struct => {
            let fields: Vec<Json> = schema
                .fields
                .iter()
                .map(|f| {
                    let mut j = schema_to_json(&f.schema);
                    if let Json::Object(m) = &mut j {
                        m.insert("field".into(), json!(f.name));
                    }
                    j
                })
                .collect();
            o.insert("fields".into(), Json::Array(fields));
        }
        SchemaType::Array => {
            if let Some(items) = &schema.value_schema {
                o.insert("items".into(), schema_to_json(items));
            }
        }
        SchemaType::Map => {
            if let Some(k) = &schema.key_schema {
                o.insert("keys".into(), schema_to_json(k));
            }
            if let Some(v) = &schema.value_schema {
                o.insert("values".into(), schema_to_json(v));
            }
        }
        _ => {}
    }
    o.insert("optional".into(), json!(schema.optional));
    if let Some(name) = &schema.name {
        o.insert("name".into(), json!(name));
    }
    if let Some(version) = schema.version {
        o.insert("version".into(), json!(version));
    }
    if let Some(doc) = &schema.doc {
        o.insert("doc".into(), json!(doc));
    }
    if !schema.parameters.is_empty() {
        o.insert("parameters".into(), json!(schema.parameters));
    }
    if let Some(default) = &schema.default
        && let Ok(d) = value_to_json(schema, default)
    {
        o.insert("default".into(), d);
    }
    Json::Object(o)
}

/// A schema from its JSON form (`JsonConverter.asConnectSchema`).
pub fn json_to_schema(json: &Json) -> Result<Schema, String> {
    let Json::Object(o) = json else {
        return Err("Schema must be a JSON object".into());
    };
    let type_name = o
        .get("type")
        .and_then(Json::as_str)
        .ok_or("Schema must contain 'type' field")?;
    let type_ = SchemaType::from_name(type_name)
        .ok_or_else(|| format!("Unknown schema type: {type_name}"))?;
    let mut schema = Schema::new(type_);
    match type_ {
        SchemaType::Struct => {
            let fields = o
                .get("fields")
                .and_then(Json::as_array)
                .ok_or("Struct schema's \"fields\" argument is not an array.")?;
            for (index, f) in fields.iter().enumerate() {
                let name = f
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or("Struct schema's field name not specified properly")?;
                schema.fields.push(Field {
                    name: name.to_string(),
                    index,
                    schema: json_to_schema(f)?,
                });
            }
        }
        SchemaType::Array => {
            let items = o
                .get("items")
                .ok_or("Array schema did not specify the element type")?;
            schema.value_schema = Some(Box::new(json_to_schema(items)?));
        }
        SchemaType::Map => {
            let keys = o
                .get("keys")
                .ok_or("Map schema did not specify the key type")?;
            let values = o
                .get("values")
                .ok_or("Map schema did not specify the value type")?;
            schema.key_schema = Some(Box::new(json_to_schema(keys)?));
            schema.value_schema = Some(Box::new(json_to_schema(values)?));
        }
        _ => {}
    }
    schema.optional = o.get("optional").and_then(Json::as_bool).unwrap_or(false);
    schema.name = o.get("name").and_then(Json::as_str).map(str::to_string);
    schema.version = o
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    schema.doc = o.get("doc").and_then(Json::as_str).map(str::to_string);
    if let Some(Json::Object(params)) = o.get("parameters") {
        for (k, v) in params {
            let v = v
                .as_str()
                .ok_or("Schema parameters must have string values.")?;
            schema.parameters.insert(k.clone(), v.to_string());
        }
    }
    if let Some(default) = o.get("default") {
        let value = json_to_value(&schema, default)?;
        schema.default = Some(Box::new(value));
    }
    Ok(schema)
}

/// A value as JSON following its schema (`bytes` as base64, non-string-keyed maps as pairs).
pub fn value_to_json(schema: &Schema, value: &Value) -> Result<Json, String> {
    if value.is_null() {
        if let Some(default) = &schema.default {
            return value_to_json(schema, default);
        }
        if schema.optional {
            return Ok(Json::Null);
        }
        return Err(format!(
            "Conversion error: null value for field that is required and has no default value ({})",
            schema.type_.name()
        ));
    }
    let mismatch = || {
        format!(
            "Invalid type for {}: {}",
            schema.type_.name(),
            value_type_name(value)
        )
    };
    Ok(match (schema.type_, value) {
        (
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64,
            Value::Int(i),
        ) => json!(i),
        (SchemaType::Float32 | SchemaType::Float64, Value::Float(f)) => {
            Number::from_f64(*f).map_or(Json::Null, Json::Number)
        }
        (SchemaType::Float32 | SchemaType::Float64, Value::Int(i)) => json!(*i as f64),
        (SchemaType::Boolean, Value::Boolean(b)) => json!(b),
        (SchemaType::String, Value::String(s)) => json!(s),
        (SchemaType::Bytes, Value::Bytes(b)) => json!(base64::encode(b)),
        (SchemaType::Array, Value::Array(items)) => {
            let element = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            Json::Array(
                items
                    .iter()
                    .map(|v| value_to_json(element, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        (SchemaType::Map, Value::Map(entries)) => {
            let ks = schema.key_schema.as_deref().ok_or_else(mismatch)?;
            let vs = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            if ks.type_ == SchemaType::String {
                let mut o = Map::new();
                for (k, v) in entries {
                    o.insert(k.to_text(), value_to_json(vs, v)?);
                }
                Json::Object(o)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Ok(json!([value_to_json(ks, k)?, value_to_json(vs, v)?])))
                        .collect::<Result<_, String>>()?,
                )
            }
        }
        (SchemaType::Struct, Value::Struct(_)) => {
            let mut o = Map::new();
            for field in &schema.fields {
                let v = value.get(&field.name).unwrap_or(&Value::Null);
                o.insert(field.name.clone(), value_to_json(&field.schema, v)?);
            }
            Json::Object(o)
        }
        _ => return Err(mismatch()),
    })
}

/// A value as JSON with no schema (structs as objects, bytes as base64).
pub fn value_to_plain_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(base64::encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(value_to_plain_json).collect()),
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                Json::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.to_text(), value_to_plain_json(v)))
                        .collect(),
                )
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| json!([value_to_plain_json(k), value_to_plain_json(v)]))
                        .collect(),
                )
            }
        }
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_plain_json(v)))
                .collect(),
        ),
    }
}

/// A value from schemaless JSON (objects become string-keyed maps, as in Kafka).
pub fn json_to_plain_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(json_to_plain_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), json_to_plain_value(v)))
                .collect(),
        ),
    }
}

/// A value from JSON following its schema (`JsonConverter.convertToConnect`).
pub fn json_to_value(schema: &Schema, json: &Json) -> Result<Value, String> {
    if json.is_null() {
        if let Some(default) = &schema.default {
            return Ok((**default).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(format!(
            "Invalid null value for required {} field",
            schema.type_.name()
        ));
    }
    let mismatch = || {
        format!(
            "Invalid JSON for {} schema: {}",
            schema.type_.name(),
            truncate(json)
        )
    };
    Ok(match schema.type_ {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            let i = json.as_i64().ok_or_else(mismatch)?;
            let fits = match schema.type_ {
                SchemaType::Int8 => i8::try_from(i).is_ok(),
                SchemaType::Int16 => i16::try_from(i).is_ok(),
                SchemaType::Int32 => i32::try_from(i).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(format!("{i} is out of range for {}", schema.type_.name()));
            }
            Value::Int(i)
        }
        SchemaType::Float32 | SchemaType::Float64 => {
            Value::Float(json.as_f64().ok_or_else(mismatch)?)
        }
        SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(mismatch)?),
        SchemaType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        SchemaType::Bytes => {
            let s = json.as_str().ok_or_else(mismatch)?;
            Value::Bytes(base64::decode(s).ok_or_else(mismatch)?)
        }
        SchemaType::Array => {
            let element = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            let items = json.as_array().ok_or_else(mismatch)?;
            Value::Array(
                items
                    .iter()
                    .map(|j| json_to_value(element, j))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let ks = schema.key_schema.as_deref().ok_or_else(mismatch)?;
            let vs = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            match json {
                Json::Object(o) if ks.type_ == SchemaType::String => Value::Map(
                    o.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), json_to_value(vs, v)?)))
                        .collect::<Result<_, String>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((json_to_value(ks, k)?, json_to_value(vs, v)?)),
                            _ => Err("Found invalid map entry instead of array tuple".to_string()),
                        })
                        .collect::<Result<_, String>>()?,
                ),
                _ => return Err(mismatch()),
            }
        }
        SchemaType::Struct => {
            let o = json.as_object().ok_or_else(mismatch)?;
            Value::Struct(
                schema
                    .fields
                    .iter()
                    .map(|f| {
                        let v = o.get(&f.name).unwrap_or(&Json::Null);
                        json_to_value(&f.schema, v)
                            .map(|v| (f.name.clone(), v))
                            .map_err(|e| format!("field {}: {e}", f.name))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
    })
}

fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "Boolean",
        Value::Int(_) => "Long",
        Value::Float(_) => "Double",
        Value::String(_) => "String",
        Value::Bytes(_) => "byte[]",
        Value::Array(_) => "List",
        Value::Map(_) => "Map",
        Value::Struct(_) => "Struct",
    }
}

fn truncate(json: &Json) -> String {
    let mut s = json.to_string();
    if s.len() > 100 {
        let mut end = 100;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_schema() -> Schema {
        Schema::struct_()
            .named("user")
            .field("id", Schema::int32())
            .field("name", Schema::string().optional())
            .field("tags", Schema::array(Schema::string()).optional())
    }

    #[test]
    fn envelope_round_trips_a_struct() {
        let c = JsonConverter::new(true);
        let schema = user_schema();
        let value = Value::struct_of([
            ("id", Value::Int(7)),
            ("name", Value::from("ann")),
            ("tags", Value::Array(vec![Value::from("a")])),
        ]);
        let bytes = c.to_bytes("t", Some(&schema), &value).unwrap().unwrap();
        let json: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            json!({
                "schema": {"type": "struct", "optional": false, "name": "user", "fields": [
                    {"type": "int32", "optional": false, "field": "id"},
                    {"type": "string", "optional": true, "field": "name"},
                    {"type": "array", "items": {"type": "string", "optional": false}, "optional": true, "field": "tags"}
                ]},
                "payload": {"id": 7, "name": "ann", "tags": ["a"]}
            })
        );
        let (s, v) = c.to_connect("t", Some(&bytes)).unwrap();
        assert_eq!(s.as_ref(), Some(&schema));
        assert_eq!(v, value);
    }

    #[test]
    fn envelope_required_without_schemas_disabled() {
        let c = JsonConverter::new(true);
        let err = c.to_connect("t", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(err.to_string().contains("schemas.enable"), "{err}");
        let plain = JsonConverter::new(false);
        let (s, v) = plain
            .to_connect("t", Some(br#"{"a":1,"b":[1.5]}"#))
            .unwrap();
        assert_eq!(s, None);
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("a"), Value::Int(1)),
                (Value::from("b"), Value::Array(vec![Value::Float(1.5)])),
            ])
        );
    }

    #[test]
    fn null_payload_and_tombstones() {
        let c = JsonConverter::new(true);
        assert_eq!(c.to_bytes("t", None, &Value::Null).unwrap(), None);
        assert_eq!(c.to_connect("t", None).unwrap(), (None, Value::Null));
        let (s, v) = c
            .to_connect("t", Some(br#"{"schema":null,"payload":"x"}"#))
            .unwrap();
        assert_eq!((s, v), (None, Value::from("x")));
        let err = c
            .to_connect("t", Some(br#"{"schema":{"type":"int32"},"payload":null}"#))
            .unwrap_err();
        assert!(err.to_string().contains("Invalid null value"), "{err}");
        let ok = c
            .to_connect(
                "t",
                Some(br#"{"schema":{"type":"int32","optional":true},"payload":null}"#),
            )
            .unwrap();
        assert_eq!(ok.1, Value::Null);
    }

    #[test]
    fn bytes_are_base64_and_int_ranges_checked() {
        let c = JsonConverter::new(true);
        let bytes = c
            .to_bytes("t", Some(&Schema::bytes()), &Value::Bytes(b"hi".to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Json>(&bytes).unwrap()["payload"],
            json!("aGk=")
        );
        let err = c
            .to_connect("t", Some(br#"{"schema":{"type":"int8"},"payload":300}"#))
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn maps_with_non_string_keys_are_pairs() {
        let schema = Schema::map(Schema::int32(), Schema::string());
        let value = Value::Map(vec![(Value::Int(1), Value::from("a"))]);
        let json = value_to_json(&schema, &value).unwrap();
        assert_eq!(json, json!([[1, "a"]]));
        assert_eq!(json_to_value(&schema, &json).unwrap(), value);
    }

    #[test]
    fn alternating_schemas_are_each_read_correctly() {
        let c = JsonConverter::new(true);
        let a = br#"{"schema":{"type":"int32"},"payload":1}"#;
        let b = br#"{"schema":{"type":"string","optional":true},"payload":"x"}"#;
        for _ in 0..2 {
            assert_eq!(
                c.to_connect("t", Some(a)).unwrap(),
                (Some(Schema::int32()), Value::Int(1))
            );
            assert_eq!(
                c.to_connect("t", Some(b)).unwrap(),
                (Some(Schema::string().optional()), Value::from("x"))
            );
        }
    }

    #[test]
    fn invalid_json_is_a_data_error() {
        let c = JsonConverter::new(false);
        let err = c.to_connect("t", Some(b"{nope")).unwrap_err();
        assert!(matches!(err, Error::Conversion { .. }));
    }

    #[test]
    fn schemas_enable_must_be_boolean() {
        let settings = BTreeMap::from([("schemas.enable".to_string(), "maybe".to_string())]);
        assert!(JsonConverter::configure(&settings, false).is_err());
    }
}
