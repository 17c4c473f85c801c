//! `io.confluent.connect.avro.AvroConverter` through the Fjord (or any Confluent-compatible)
//! schema registry: `schema.registry.url` (first of a comma-separated list), subjects by
//! TopicNameStrategy (`<topic>-key`, `<topic>-value`), schemas registered on first use.
//!
//! Connect schemas map to Avro as Confluent's `AvroData` does: int8/int16/int32 → `int`, int64
//! → `long`, float32 → `float`, float64 → `double`, `Timestamp` → `long` with
//! `timestamp-millis`, optional → `["null", T]` with default null, structs → records (named by
//! the schema name, else `ConnectDefault`, `ConnectDefault2`, ...), string-keyed maps → `map`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use apache_avro::types::Value as Avro;
use fjord_schema_registry::serdes::{
    AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy,
};
use serde_json::{Value as Json, json};

use crate::data::{Field, Schema, SchemaType, Value, logical};
use crate::error::{Error, Result};

/// Avro through a schema registry.
pub struct AvroConverter {
    client: Arc<RegistryClient>,
    is_key: bool,
    serializers: Mutex<HashMap<String, Arc<AvroSerializer>>>,
    deserializer: AvroDeserializer,
    /// By schema id: the Connect schema and the writer's Avro schema (JSON).
    schemas: Mutex<HashMap<i32, (Schema, Arc<Json>)>>,
}

impl std::fmt::Debug for AvroConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroConverter")
            .field("registry", &self.client.base_url())
            .finish_non_exhaustive()
    }
}

fn err(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::conversion(what.to_string(), reason.to_string())
}

impl AvroConverter {
    /// From the converter's settings (`schema.registry.url` required).
    pub fn configure(settings: &BTreeMap<String, String>, is_key: bool) -> Result<Self> {
        let prefix = if is_key {
            "key.converter"
        } else {
            "value.converter"
        };
        let url = settings
            .get("schema.registry.url")
            .and_then(|u| u.split(',').map(str::trim).find(|u| !u.is_empty()))
            .ok_or_else(|| Error::MissingConfig {
                key: format!("{prefix}.schema.registry.url"),
            })?;
        if !url.starts_with("http://") {
            return Err(Error::config(
                &format!("{prefix}.schema.registry.url"),
                url,
                "only http:// registry URLs are supported",
            ));
        }
        let client = Arc::new(RegistryClient::new(url.trim_end_matches('/')));
        Ok(AvroConverter {
            deserializer: AvroDeserializer::new(client.clone()),
            client,
            is_key,
            serializers: Mutex::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
        })
    }

    pub async fn to_bytes(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        let what = format!("a record of topic {topic} to Avro");
        if value.is_null() && schema.is_none_or(|s| s.optional) {
            return Ok(None);
        }
        let inferred;
        let schema = match schema {
            Some(s) => s,
            None => {
                inferred = infer(value).ok_or_else(|| {
                    err(
                        &what,
                        "a schemaless value other than a primitive needs a schema",
                    )
                })?;
                &inferred
            }
        };
        let mut counter = 0;
        let avro_schema = to_avro_schema(schema, &mut counter)
            .map_err(|r| err(&what, r))?
            .to_string();
        let serializer = {
            let mut cache = self.serializers.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&avro_schema) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(
                        AvroSerializer::new(
                            self.client.clone(),
                            &avro_schema,
                            SubjectNameStrategy::TopicName,
                            self.is_key,
                        )
                        .map_err(|e| err(&what, e))?,
                    );
                    cache.insert(avro_schema.clone(), s.clone());
                    s
                }
            }
        };
        let datum = to_avro_value(schema, value).map_err(|r| err(&what, r))?;
        serializer
            .serialize(topic, datum)
            .await
            .map(Some)
            .map_err(|e| err(&what, error_chain(&e)))
    }

    pub async fn to_connect(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value)> {
        let what = format!("a record of topic {topic} from Avro");
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let (id, _) = fjord_schema_registry::serdes::decode(bytes).map_err(|e| err(&what, e))?;
        let datum = self
            .deserializer
            .deserialize(bytes)
            .await
            .map_err(|e| err(&what, error_chain(&e)))?;
        let cached = self
            .schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        let (schema, writer) = match cached {
            Some((s, json)) => (s, json),
            None => {
                let fetched = self
                    .client
                    .schema_by_id(id)
                    .await
                    .map_err(|e| err(&what, error_chain(&e)))?;
                let json: Json =
                    serde_json::from_str(&fetched.schema).map_err(|e| err(&what, e))?;
                let s = from_avro_schema(&json, &mut BTreeMap::new()).map_err(|r| err(&what, r))?;
                let json = Arc::new(json);
                self.schemas
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, (s.clone(), json.clone()));
                (s, json)
            }
        };
        let value = from_avro_datum(&writer, datum, &mut BTreeMap::new());
        Ok((Some(schema), value))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn infer(value: &Value) -> Option<Schema> {
    Some(match value {
        Value::Boolean(_) => Schema::boolean(),
        Value::Int(_) => Schema::int64(),
        Value::Float(_) => Schema::float64(),
        Value::String(_) => Schema::string(),
        Value::Bytes(_) => Schema::bytes(),
        _ => return None,
    })
}

/// The Avro schema (JSON) of a Connect schema.
pub(crate) fn to_avro_schema(schema: &Schema, counter: &mut usize) -> Result<Json, String> {
    let base = match schema.type_ {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 => json!("int"),
        SchemaType::Int64 if schema.name.as_deref() == Some(logical::TIMESTAMP) => {
            json!({"type": "long", "logicalType": "timestamp-millis"})
        }
        SchemaType::Int64 => json!("long"),
        SchemaType::Float32 => json!("float"),
        SchemaType::Float64 => json!("double"),
        SchemaType::Boolean => json!("boolean"),
        SchemaType::String => json!("string"),
        SchemaType::Bytes => json!("bytes"),
        SchemaType::Array => {
            let items = schema
                .value_schema
                .as_deref()
                .ok_or("array schema without items")?;
            json!({"type": "array", "items": to_avro_schema(items, counter)?})
        }
        SchemaType::Map => {
            let keys = schema
                .key_schema
                .as_deref()
                .ok_or("map schema without keys")?;
            if keys.type_ != SchemaType::String {
                return Err("only maps with string keys convert to Avro".into());
            }
            let values = schema
                .value_schema
                .as_deref()
                .ok_or("map schema without values")?;
            json!({"type": "map", "values": to_avro_schema(values, counter)?})
        }
        SchemaType::Struct if schema.name.as_deref() == Some(UNION) => {
            let mut members = Vec::with_capacity(schema.fields.len() + 1);
            if schema.optional {
                members.push(json!("null"));
            }
            for f in &schema.fields {
                let mut member = f.schema.clone();
                member.optional = false;
                members.push(to_avro_schema(&member, counter)?);
            }
            return Ok(Json::Array(members));
        }
        SchemaType::Struct => {
            *counter += 1;
            let name = schema.name.clone().unwrap_or_else(|| {
                if *counter == 1 {
                    "ConnectDefault".into()
                } else {
                    format!("ConnectDefault{counter}")
                }
            });
            let (namespace, name) = match name.rsplit_once('.') {
                Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
                None if schema.name.is_none() => {
                    (Some("io.confluent.connect.avro".to_string()), name)
                }
                None => (None, name),
            };
            let fields = schema
                .fields
                .iter()
                .map(|f| {
                    let mut field =
                        json!({"name": f.name, "type": to_avro_schema(&f.schema, counter)?});
                    if f.schema.optional {
                        field["default"] = Json::Null;
                    }
                    Ok(field)
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut record = json!({"type": "record", "name": name, "fields": fields});
            if let Some(ns) = namespace {
                record["namespace"] = json!(ns);
            }
            if let Some(doc) = &schema.doc {
                record["doc"] = json!(doc);
            }
            record
        }
    };
    Ok(if schema.optional {
        json!(["null", base])
    } else {
        base
    })
}

/// A Connect value as an Avro datum (resolved against the schema by the serializer).
pub(crate) fn to_avro_value(schema: &Schema, value: &Value) -> Result<Avro, String> {
    Ok(match (schema.type_, value) {
        (_, Value::Null) => Avro::Null,
        (SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32, Value::Int(i)) => {
            Avro::Int(i32::try_from(*i).map_err(|_| format!("{i} does not fit an Avro int"))?)
        }
        (SchemaType::Int64, Value::Int(i)) => Avro::Long(*i),
        (SchemaType::Float32, Value::Float(f)) => Avro::Float(*f as f32),
        (SchemaType::Float64, Value::Float(f)) => Avro::Double(*f),
        (SchemaType::Float32, Value::Int(i)) => Avro::Float(*i as f32),
        (SchemaType::Float64, Value::Int(i)) => Avro::Double(*i as f64),
        (SchemaType::Boolean, Value::Boolean(b)) => Avro::Boolean(*b),
        (SchemaType::String, Value::String(s)) => Avro::String(s.clone()),
        (SchemaType::Bytes, Value::Bytes(b)) => Avro::Bytes(b.clone()),
        (SchemaType::Array, Value::Array(items)) => {
            let element = schema
                .value_schema
                .as_deref()
                .ok_or("array schema without items")?;
            Avro::Array(
                items
                    .iter()
                    .map(|v| to_avro_value(element, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        (SchemaType::Map, Value::Map(entries)) => {
            let vs = schema
                .value_schema
                .as_deref()
                .ok_or("map schema without values")?;
            Avro::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.to_text(), to_avro_value(vs, v)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        (SchemaType::Struct, Value::Struct(fields)) if schema.name.as_deref() == Some(UNION) => {
            // The member that is set (the serializer picks the matching union branch).
            let Some((f, v)) = schema.fields.iter().find_map(|f| {
                fields
                    .iter()
                    .find(|(n, v)| *n == f.name && !v.is_null())
                    .map(|(_, v)| (f, v))
            }) else {
                return Ok(Avro::Null);
            };
            let mut member = f.schema.clone();
            member.optional = false;
            to_avro_value(&member, v)?
        }
        (SchemaType::Struct, Value::Struct(_) | Value::Map(_)) => Avro::Record(
            schema
                .fields
                .iter()
                .map(|f| {
                    Ok((
                        f.name.clone(),
                        to_avro_value(&f.schema, value.get(&f.name).unwrap_or(&Value::Null))?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        (t, v) => return Err(format!("a {} schema does not fit {v:?}", t.name())),
    })
}

/// The Connect schema of an Avro schema (JSON); `named` holds records seen so far.
pub(crate) fn from_avro_schema(
    json: &Json,
    named: &mut BTreeMap<String, Schema>,
) -> Result<Schema, String> {
    match json {
        Json::String(t) => Ok(match t.as_str() {
            "int" => Schema::int32(),
            "long" => Schema::int64(),
            "float" => Schema::new(SchemaType::Float32),
            "double" => Schema::float64(),
            "boolean" => Schema::boolean(),
            "string" => Schema::string(),
            "bytes" => Schema::bytes(),
            other => named
                .get(other)
                .cloned()
                .ok_or_else(|| format!("unsupported Avro type {other}"))?,
        }),
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match non_null.as_slice() {
                [one] => from_avro_schema(one, named).map(Schema::optional),
                [] => Err("a union of null only".into()),
                members => {
                    // Confluent's AvroData: a struct with one optional field per member.
                    let mut schema = Schema::struct_().named(UNION);
                    for (index, member) in members.iter().enumerate() {
                        schema.fields.push(Field {
                            name: member_name(member),
                            index,
                            schema: from_avro_schema(member, named)?.optional(),
                        });
                    }
                    Ok(if members.len() < branches.len() {
                        schema.optional()
                    } else {
                        schema
                    })
                }
            }
        }
        Json::Object(o) => {
            let t = o.get("type").ok_or("Avro schema without type")?;
            let logical_type = o.get("logicalType").and_then(Json::as_str);
            match (t.as_str(), logical_type) {
                (Some("long"), Some("timestamp-millis")) => {
                    Ok(Schema::int64().named(logical::TIMESTAMP))
                }
                (Some("record"), _) => {
                    let name = o
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or("record without name")?;
                    let full = match o.get("namespace").and_then(Json::as_str) {
                        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
                        _ => name.to_string(),
                    };
                    let mut schema = Schema::struct_();
                    if !full.starts_with("io.confluent.connect.avro.ConnectDefault") {
                        schema.name = Some(full.clone());
                    }
                    schema.doc = o.get("doc").and_then(Json::as_str).map(str::to_string);
                    for (index, f) in o
                        .get("fields")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let fname = f
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or("field without name")?;
                        let ftype = f.get("type").ok_or("field without type")?;
                        schema.fields.push(Field {
                            name: fname.to_string(),
                            index,
                            schema: from_avro_schema(ftype, named)?,
                        });
                    }
                    named.insert(full, schema.clone());
                    Ok(schema)
                }
                (Some("array"), _) => Ok(Schema::array(from_avro_schema(
                    o.get("items").ok_or("array without items")?,
                    named,
                )?)),
                (Some("map"), _) => Ok(Schema::map(
                    Schema::string(),
                    from_avro_schema(o.get("values").ok_or("map without values")?, named)?,
                )),
                (Some("enum"), _) => Ok(Schema::string()),
                (Some("fixed"), _) => Ok(Schema::bytes()),
                _ => from_avro_schema(t, named),
            }
        }
        _ => Err("invalid Avro schema".into()),
    }
}

/// Confluent's name for the struct a general Avro union becomes.
pub(crate) const UNION: &str = "io.confluent.connect.avro.Union";

/// The field name of a union member, as Confluent's AvroData names it: the simple name of a
/// record, enum or fixed, else the type's name (`int`, `string`, `array`, ...).
fn member_name(member: &Json) -> String {
    let simple = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    match member {
        Json::String(t) => simple(t),
        Json::Object(o) => match o.get("type").and_then(Json::as_str) {
            Some("record" | "enum" | "fixed") => {
                simple(o.get("name").and_then(Json::as_str).unwrap_or_default())
            }
            Some(t) => t.to_string(),
            None => o.get("type").map(member_name).unwrap_or_default(),
        },
        other => other.to_string(),
    }
}

/// A decoded datum as a Connect value, guided by the writer's Avro schema so that general
/// unions become Confluent's union structs (`named` collects named types on the way).
pub(crate) fn from_avro_datum(
    json: &Json,
    datum: Avro,
    named: &mut BTreeMap<String, Json>,
) -> Value {
    match (json, datum) {
        (Json::Array(branches), Avro::Union(index, inner)) => {
            let Some(branch) = branches.get(index as usize) else {
                return from_avro_value(*inner);
            };
            let members: Vec<&Json> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            if members.len() < 2 || branch.as_str() == Some("null") {
                return from_avro_datum(branch, *inner, named);
            }
            let chosen = member_name(branch);
            let mut value = Some(from_avro_datum(branch, *inner, named));
            Value::Struct(
                members
                    .iter()
                    .map(|m| {
                        let name = member_name(m);
                        let v = if name == chosen { value.take() } else { None };
                        (name, v.unwrap_or(Value::Null))
                    })
                    .collect(),
            )
        }
        (Json::Object(o), Avro::Record(fields)) => {
            if let Some(name) = o.get("name").and_then(Json::as_str) {
                named.insert(name.to_string(), json.clone());
                if let Some(ns) = o.get("namespace").and_then(Json::as_str) {
                    named.insert(format!("{ns}.{name}"), json.clone());
                }
            }
            let types: BTreeMap<&str, &Json> = o
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| Some((f.get("name")?.as_str()?, f.get("type")?)))
                .collect();
            Value::Struct(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match types.get(k.as_str()) {
                            Some(t) => from_avro_datum(t, v, named),
                            None => from_avro_value(v),
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        (Json::Object(o), Avro::Array(items)) if o.contains_key("items") => {
            let items_schema = &o["items"];
            Value::Array(
                items
                    .into_iter()
                    .map(|v| from_avro_datum(items_schema, v, named))
                    .collect(),
            )
        }
        (Json::Object(o), Avro::Map(entries)) if o.contains_key("values") => {
            let values_schema = &o["values"];
            let mut sorted: Vec<(String, Avro)> = entries.into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(
                sorted
                    .into_iter()
                    .map(|(k, v)| (Value::String(k), from_avro_datum(values_schema, v, named)))
                    .collect(),
            )
        }
        (Json::String(name), datum) if named.contains_key(name) => {
            let json = named[name].clone();
            from_avro_datum(&json, datum, named)
        }
        (_, datum) => from_avro_value(datum),
    }
}

/// A decoded Avro datum as a Connect value.
pub(crate) fn from_avro_value(datum: Avro) -> Value {
    match datum {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Boolean(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::Int(i.into()),
        Avro::Long(i) | Avro::TimestampMillis(i) | Avro::LocalTimestampMillis(i) => Value::Int(i),
        Avro::TimeMicros(i) | Avro::TimestampMicros(i) | Avro::LocalTimestampMicros(i) => {
            Value::Int(i / 1000)
        }
        Avro::Float(f) => Value::Float(f.into()),
        Avro::Double(f) => Value::Float(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::Bytes(b),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Union(_, inner) => from_avro_value(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(from_avro_value).collect()),
        Avro::Map(entries) => {
            let mut sorted: Vec<(String, Avro)> = entries.into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(
                sorted
                    .into_iter()
                    .map(|(k, v)| (Value::String(k), from_avro_value(v)))
                    .collect(),
            )
        }
        Avro::Record(fields) => Value::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (k, from_avro_value(v)))
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_round_trip_through_avro() {
        let schema = Schema::struct_()
            .named("com.example.User")
            .field("id", Schema::int32())
            .field("name", Schema::string().optional())
            .field("at", Schema::int64().named(logical::TIMESTAMP))
            .field("tags", Schema::array(Schema::string()))
            .field(
                "attrs",
                Schema::map(Schema::string(), Schema::int64()).optional(),
            )
            .field("inner", Schema::struct_().field("x", Schema::float64()));
        let avro = to_avro_schema(&schema, &mut 0).unwrap();
        assert_eq!(avro["name"], "User");
        assert_eq!(avro["namespace"], "com.example");
        assert_eq!(
            avro["fields"][1],
            json!({"name": "name", "type": ["null", "string"], "default": null})
        );
        assert_eq!(avro["fields"][5]["type"]["name"], "ConnectDefault2");
        apache_avro::Schema::parse(&avro).unwrap();
        let back = from_avro_schema(&avro, &mut BTreeMap::new()).unwrap();
        assert_eq!(back.fields.len(), 6);
        assert_eq!(back.name.as_deref(), Some("com.example.User"));
        assert!(back.fields[1].schema.optional);
        assert_eq!(
            back.fields[2].schema.name.as_deref(),
            Some(logical::TIMESTAMP)
        );
        assert_eq!(back.fields[5].schema.name, None);
    }

    #[test]
    fn general_unions_are_confluent_union_structs_both_ways() {
        let avro = json!({"type": "record", "name": "E", "fields": [
            {"name": "v", "type": ["null", "int", "string",
                {"type": "record", "name": "com.x.Point", "fields": [{"name": "x", "type": "int"}]}]},
            {"name": "w", "type": ["long", "boolean"]}
        ]});
        let schema = from_avro_schema(&avro, &mut BTreeMap::new()).unwrap();
        let v = &schema.fields[0].schema;
        assert_eq!(v.name.as_deref(), Some(UNION));
        assert!(v.optional);
        let names: Vec<&str> = v.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["int", "string", "Point"]);
        assert!(v.fields.iter().all(|f| f.schema.optional));
        assert!(!schema.fields[1].schema.optional);

        // Written back: the same union (null first), and values pick their branch.
        let back = to_avro_schema(&schema, &mut 0).unwrap();
        assert_eq!(back["fields"][0]["type"][0], "null");
        assert_eq!(back["fields"][0]["type"][1], "int");
        assert_eq!(back["fields"][1]["type"], json!(["long", "boolean"]));
        let parsed = apache_avro::Schema::parse(&back).unwrap();
        let value = Value::struct_of([
            (
                "v",
                Value::struct_of([
                    ("int", Value::Null),
                    ("string", Value::String("s".into())),
                    ("Point", Value::Null),
                ]),
            ),
            (
                "w",
                Value::struct_of([("long", Value::Null), ("boolean", Value::Boolean(true))]),
            ),
        ]);
        let datum = to_avro_value(&schema, &value)
            .unwrap()
            .resolve(&parsed)
            .unwrap();
        assert_eq!(from_avro_datum(&back, datum, &mut BTreeMap::new()), value);
        // A record member, through the original writer schema.
        let point = Value::struct_of([
            (
                "v",
                Value::struct_of([
                    ("int", Value::Null),
                    ("string", Value::Null),
                    ("Point", Value::struct_of([("x", Value::Int(3))])),
                ]),
            ),
            (
                "w",
                Value::struct_of([("long", Value::Int(9)), ("boolean", Value::Null)]),
            ),
        ]);
        let writer = apache_avro::Schema::parse(&avro).unwrap();
        let datum = to_avro_value(&schema, &point)
            .unwrap()
            .resolve(&writer)
            .unwrap();
        assert_eq!(from_avro_datum(&avro, datum, &mut BTreeMap::new()), point);
    }

    #[test]
    fn values_convert_and_resolve() {
        let schema = Schema::struct_()
            .field("id", Schema::int32())
            .field("name", Schema::string().optional());
        let value = Value::struct_of([("id", Value::Int(1)), ("name", Value::Null)]);
        let avro_schema =
            apache_avro::Schema::parse(&to_avro_schema(&schema, &mut 0).unwrap()).unwrap();
        let datum = to_avro_value(&schema, &value)
            .unwrap()
            .resolve(&avro_schema)
            .unwrap();
        assert_eq!(from_avro_value(datum), value);
        assert!(to_avro_value(&Schema::int32(), &Value::Int(1 << 40)).is_err());
    }
}
