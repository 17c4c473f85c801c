//! Values. The schema, when there is one, carries the precise type (`int8` vs `int64`); a
//! value holds the widest Rust type of its family.

/// A Connect value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Boolean(bool),
    /// int8, int16, int32 and int64.
    Int(i64),
    /// float32 and float64.
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Key/value pairs in order (keys need not be strings).
    Map(Vec<(Value, Value)>),
    /// Field names and values in the schema's order.
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A struct's or string-keyed map's field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == name))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as text, the way Kafka's `Values.convertToString` prints primitives.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::String(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => {
                let mut out = String::new();
                write_json(other, &mut out);
                out
            }
        }
    }

    /// A struct or a string-keyed map built from `(name, value)` pairs.
    pub fn struct_of<I, S>(fields: I) -> Value
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        Value::Struct(fields.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }
}

/// Appends a value as JSON keeping struct field and map entry order (serde_json's map sorts).
fn write_json(value: &Value, out: &mut String) {
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    match value {
        Value::Struct(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(k));
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        Value::Map(entries) if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(&k.to_text()));
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&crate::converter::json::value_to_plain_json(other).to_string()),
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}
