//! JSON Schema: parsed as a JSON document with light structural validation.

use serde_json::Value;

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// A JSON Schema document.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    value: Value,
    normalized: String,
}

impl JsonSchema {
    /// Parses and checks the keywords whose shape the registry relies on (`type`,
    /// `properties`, `required`, `items`, `enum`).
    pub fn parse(text: &str) -> Result<JsonSchema, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))?;
        validate(&value, 0)?;
        let normalized = serde_json::to_string(&value).map_err(|e| e.to_string())?;
        Ok(JsonSchema { value, normalized })
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Compact JSON with object keys sorted.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The `title`, used by the RecordName subject strategies.
    pub fn title(&self) -> Option<String> {
        self.value
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Depth limit for nested schemas (a registry must not recurse without bound on input).
const MAX_DEPTH: usize = 64;

fn validate(value: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("schema nested deeper than {MAX_DEPTH} levels"));
    }
    let map = match value {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "a JSON Schema is an object or a boolean, not {other}"
            ));
        }
    };
    if let Some(t) = map.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for name in names {
            match name.as_str() {
                Some(n) if TYPES.contains(&n) => {}
                _ => return Err(format!("invalid type {name}")),
            }
        }
    }
    if let Some(props) = map.get("properties") {
        let Value::Object(props) = props else {
            return Err("properties must be an object".into());
        };
        for sub in props.values() {
            validate(sub, depth + 1)?;
        }
    }
    if let Some(required) = map.get("required") {
        let ok = required
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string));
        if !ok {
            return Err("required must be an array of strings".into());
        }
    }
    if let Some(items) = map.get("items") {
        validate(items, depth + 1)?;
    }
    if let Some(e) = map.get("enum")
        && !e.is_array()
    {
        return Err("enum must be an array".into());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = map.get(key) {
            let Some(list) = list.as_array() else {
                return Err(format!("{key} must be an array"));
            };
            for sub in list {
                validate(sub, depth + 1)?;
            }
        }
    }
    if let Some(extra) = map.get("additionalProperties") {
        validate(extra, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schemas_parse_and_normalize_key_order() {
        let a =
            JsonSchema::parse(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#).unwrap();
        let b =
            JsonSchema::parse(r#"{ "properties": {"a": {"type": "string"}}, "type": "object" }"#)
                .unwrap();
        assert_eq!(a.normalized(), b.normalized());
    }

    #[test]
    fn malformed_json_schemas_are_rejected() {
        for text in [
            "{",
            "42",
            r#"{"type":"float"}"#,
            r#"{"properties":[]}"#,
            r#"{"required":"a"}"#,
            r#"{"type":"object","properties":{"a":{"type":7}}}"#,
        ] {
            assert!(JsonSchema::parse(text).is_err(), "{text}");
        }
    }
}
