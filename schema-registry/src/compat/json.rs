//! JSON Schema compatibility, a simplified form of Confluent's JSON Schema diff rules: can every
//! document valid under the writer schema be accepted by the reader schema?
//!
//! Checked: `type` (with `integer` ⊂ `number`), object `properties` (recursively),
//! `required`, `additionalProperties` (open vs closed content models, as Confluent: adding a
//! property to an open content model is incompatible), array `items`, `enum`, the numeric and
//! length bounds, and `$ref` (compared by name). Combinators (`allOf`/`anyOf`/`oneOf`) are
//! compared for equality only.

use serde_json::{Map, Value};

/// One JSON Schema incompatibility, printed as Confluent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonIncompatibility {
    pub kind: &'static str,
    pub path: String,
    pub description: String,
}

impl std::fmt::Display for JsonIncompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{errorType:'{}', description:'{} (path '{}')'}}",
            self.kind, self.description, self.path
        )
    }
}

/// Every incompatibility when `reader` must accept what `writer` accepts.
pub fn check(reader: &Value, writer: &Value) -> Vec<JsonIncompatibility> {
    let mut out = Vec::new();
    compare(reader, writer, "#", &mut out, 0);
    out
}

const MAX_DEPTH: usize = 64;

fn push(out: &mut Vec<JsonIncompatibility>, kind: &'static str, path: &str, description: String) {
    out.push(JsonIncompatibility {
        kind,
        path: path.to_string(),
        description,
    });
}

fn types(map: &Map<String, Value>) -> Option<Vec<&str>> {
    match map.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn closed(map: &Map<String, Value>) -> bool {
    matches!(map.get("additionalProperties"), Some(Value::Bool(false)))
}

fn compare(
    reader: &Value,
    writer: &Value,
    path: &str,
    out: &mut Vec<JsonIncompatibility>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let (r, w) = match (reader, writer) {
        (Value::Bool(true), _) | (_, Value::Bool(false)) => return,
        (Value::Bool(false), _) => {
            push(
                out,
                "SCHEMA_NARROWED",
                path,
                "The new schema accepts nothing".into(),
            );
            return;
        }
        (Value::Object(r), Value::Bool(true)) => {
            if !r.is_empty() {
                push(
                    out,
                    "SCHEMA_NARROWED",
                    path,
                    "The new schema constrains an unconstrained schema".into(),
                );
            }
            return;
        }
        (Value::Object(r), Value::Object(w)) => (r, w),
        _ => return,
    };
    if r.get("$ref") != w.get("$ref") {
        push(
            out,
            "REFERENCE_CHANGED",
            path,
            "The referenced schema changed".into(),
        );
    }
    for key in ["allOf", "anyOf", "oneOf", "not"] {
        if r.get(key) != w.get(key) {
            push(
                out,
                "COMBINED_TYPE_CHANGED",
                path,
                format!("The {key} of the schema changed"),
            );
        }
    }
    match (types(r), types(w)) {
        (Some(rt), Some(wt)) => {
            for t in &wt {
                let ok = rt.contains(t) || (*t == "integer" && rt.contains(&"number"));
                if !ok {
                    push(
                        out,
                        "TYPE_CHANGED",
                        path,
                        format!("The type {t} is no longer accepted"),
                    );
                }
            }
        }
        (Some(_), None) => push(
            out,
            "TYPE_NARROWED",
            path,
            "A type was added to an untyped schema".into(),
        ),
        _ => {}
    }
    // Enumerations.
    match (
        r.get("enum").and_then(Value::as_array),
        w.get("enum").and_then(Value::as_array),
    ) {
        (Some(re), Some(we)) if we.iter().any(|v| !re.contains(v)) => push(
            out,
            "ENUM_ARRAY_NARROWED",
            path,
            "Values were removed from the enum".into(),
        ),
        (Some(_), Some(_)) => {}
        (Some(_), None) => push(out, "ENUM_ARRAY_NARROWED", path, "An enum was added".into()),
        _ => {}
    }
    // Bounds: a reader bound must not be tighter than the writer's.
    for (key, upper) in [
        ("maxLength", true),
        ("maximum", true),
        ("maxItems", true),
        ("maxProperties", true),
        ("minLength", false),
        ("minimum", false),
        ("minItems", false),
        ("minProperties", false),
    ] {
        let rb = r.get(key).and_then(Value::as_f64);
        let wb = w.get(key).and_then(Value::as_f64);
        let narrowed = match (rb, wb) {
            (Some(rv), Some(wv)) => {
                if upper {
                    rv < wv
                } else {
                    rv > wv
                }
            }
            (Some(_), None) => true,
            _ => false,
        };
        if narrowed {
            push(
                out,
                "BOUND_NARROWED",
                path,
                format!("The {key} of the schema is narrower"),
            );
        }
    }
    // Arrays.
    if let Some(wi) = w.get("items") {
        if let Some(ri) = r.get("items") {
            compare(ri, wi, &format!("{path}/items"), out, depth + 1);
        }
    } else if let Some(ri) = r.get("items") {
        compare(
            ri,
            &Value::Bool(true),
            &format!("{path}/items"),
            out,
            depth + 1,
        );
    }
    compare_objects(r, w, path, out, depth);
}

fn compare_objects(
    r: &Map<String, Value>,
    w: &Map<String, Value>,
    path: &str,
    out: &mut Vec<JsonIncompatibility>,
    depth: usize,
) {
    let empty = Map::new();
    let rp = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let wp = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, rs) in rp {
        let sub = format!("{path}/properties/{name}");
        match wp.get(name) {
            Some(ws) => compare(rs, ws, &sub, out, depth + 1),
            None if closed(w) => {}
            None => match w.get("additionalProperties") {
                Some(extra @ Value::Object(_)) => compare(rs, extra, &sub, out, depth + 1),
                _ => push(
                    out,
                    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    &sub,
                    format!("The property {name} was added to an open content model"),
                ),
            },
        }
    }
    for (name, ws) in wp {
        if rp.contains_key(name) {
            continue;
        }
        let sub = format!("{path}/properties/{name}");
        match r.get("additionalProperties") {
            Some(Value::Bool(false)) => push(
                out,
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                &sub,
                format!("The property {name} was removed from a closed content model"),
            ),
            Some(extra @ Value::Object(_)) => compare(extra, ws, &sub, out, depth + 1),
            _ => {}
        }
    }
    if closed(r) && !closed(w) {
        push(
            out,
            "ADDITIONAL_PROPERTIES_REMOVED",
            path,
            "additionalProperties became false".into(),
        );
    }
    let required = |m: &Map<String, Value>| -> Vec<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let wr = required(w);
    for name in required(r) {
        if !wr.contains(&name) {
            push(
                out,
                "REQUIRED_PROPERTY_ADDED",
                &format!("{path}/required"),
                format!("The property {name} became required"),
            );
        }
    }
}
