//! Java `.properties` files (and JSON objects) as string maps.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Parses Java properties: `key=value` or `key: value` lines, `#`/`!` comments, trailing `\`
/// continuations.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']);
        let (key, value) = match split {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry.as_str(), ""),
        };
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    out
}

/// Reads a worker or connector config: a JSON object (connector files may use the REST body
/// shape `{"name":..,"config":{..}}`) or Java properties.
pub fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    if text.trim_start().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::config(
                "file",
                &path.display().to_string(),
                format!("invalid JSON: {e}"),
            )
        })?;
        return json_object_to_map(&json)
            .map_err(|reason| Error::config("file", &path.display().to_string(), reason));
    }
    Ok(parse_properties(&text))
}

/// A flat JSON object of scalars, or `{"name":..,"config":{..}}`, as a string map.
pub(crate) fn json_object_to_map(
    json: &serde_json::Value,
) -> Result<BTreeMap<String, String>, String> {
    let object = json.as_object().ok_or("expected a JSON object")?;
    if let Some(config) = object.get("config") {
        let mut map = json_object_to_map(config)?;
        if let Some(name) = object.get("name").and_then(|n| n.as_str()) {
            map.entry("name".to_string())
                .or_insert_with(|| name.to_string());
        }
        return Ok(map);
    }
    object
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return Err(format!("{k} is null")),
                serde_json::Value::Bool(_) | serde_json::Value::Number(_) => v.to_string(),
                _ => return Err(format!("{k} must be a string")),
            };
            Ok((k.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties() {
        let p = parse_properties(
            "# comment\nbootstrap.servers=localhost:9092\nkey.converter : x.Y\n! other\nlong=a,\\\n  b\nempty\n",
        );
        assert_eq!(p["bootstrap.servers"], "localhost:9092");
        assert_eq!(p["key.converter"], "x.Y");
        assert_eq!(p["long"], "a,b");
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn rest_body_shape_is_flattened() {
        let json = serde_json::json!({"name": "n", "config": {"tasks.max": 2, "file": "/x"}});
        let map = json_object_to_map(&json).unwrap();
        assert_eq!(map["name"], "n");
        assert_eq!(map["tasks.max"], "2");
    }
}
