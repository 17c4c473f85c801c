//! Field-level transforms with their Kafka config keys: `InsertField`, `ReplaceField`,
//! `MaskField`, `HoistField`, `ExtractField`, `Flatten`, `Cast`, `SetSchemaMetadata`,
//! `ValueToKey`. Each works on structs with schemas and on schemaless string-keyed maps.

use super::{Settings, Target, Transform, fields_of, rebuild, require_struct};
use crate::data::{ConnectRecord, Field, Schema, SchemaType, Value, logical};
use crate::error::{Error, Result};

fn not_a_struct(what: &str, value: &Value) -> Error {
    Error::transform(
        what,
        format!("Only Map objects supported in absence of schema for [{what}], found: {value:?}"),
    )
}

/// Splits `name!`/`name?` into the name and whether the field is optional (default yes).
fn field_spec(spec: &str) -> (String, bool) {
    if let Some(n) = spec.strip_suffix('!') {
        (n.to_string(), false)
    } else {
        (spec.trim_end_matches('?').to_string(), true)
    }
}

pub(crate) struct InsertField {
    target: Target,
    topic: Option<(String, bool)>,
    partition: Option<(String, bool)>,
    offset: Option<(String, bool)>,
    timestamp: Option<(String, bool)>,
    static_field: Option<((String, bool), String)>,
}

impl InsertField {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let spec = |k: &str| s.get(k).map(field_spec);
        let static_field =
            spec("static.field").map(|f| (f, s.get("static.value").unwrap_or("").to_string()));
        Ok(InsertField {
            target,
            topic: spec("topic.field"),
            partition: spec("partition.field"),
            offset: spec("offset.field"),
            timestamp: spec("timestamp.field"),
            static_field,
        })
    }
}

impl Transform for InsertField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        if value.is_null() {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        }
        require_struct(schema.as_ref(), "field insertion")?;
        let (is_struct, mut fields) =
            fields_of(value.clone()).ok_or_else(|| not_a_struct("field insertion", &value))?;
        let mut schema = schema;
        let mut add = |spec: &(String, bool), field_schema: Schema, v: Value| {
            let (name, optional) = spec;
            fields.retain(|(n, _)| n != name);
            fields.push((name.clone(), v));
            if let Some(s) = &mut schema {
                s.fields.retain(|f| &f.name != name);
                let mut fs = field_schema;
                fs.optional = *optional;
                s.fields.push(Field {
                    name: name.clone(),
                    index: 0,
                    schema: fs,
                });
                s.reindex();
            }
        };
        if let Some(spec) = &self.topic {
            add(spec, Schema::string(), Value::String(record.topic.clone()));
        }
        if let Some(spec) = &self.partition {
            add(
                spec,
                Schema::int32(),
                record
                    .kafka_partition
                    .map_or(Value::Null, |p| Value::Int(p.into())),
            );
        }
        if let Some(spec) = &self.offset {
            add(
                spec,
                Schema::int64(),
                record.kafka_offset.map_or(Value::Null, Value::Int),
            );
        }
        if let Some(spec) = &self.timestamp {
            add(
                spec,
                Schema::int64().named(logical::TIMESTAMP),
                record.timestamp.map_or(Value::Null, Value::Int),
            );
        }
        if let Some((spec, v)) = &self.static_field {
            add(spec, Schema::string(), Value::String(v.clone()));
        }
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

pub(crate) struct ReplaceField {
    target: Target,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let list = |a: &str, b: &str| {
            let l = s.list(a);
            if l.is_empty() { s.list(b) } else { l }
        };
        let renames = s
            .list("renames")
            .iter()
            .map(|pair| {
                pair.split_once(':')
                    .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                    .ok_or_else(|| s.bad("renames", "Invalid rename mapping: expected old:new"))
            })
            .collect::<Result<_>>()?;
        Ok(ReplaceField {
            target,
            exclude: list("exclude", "blacklist"),
            include: list("include", "whitelist"),
            renames,
        })
    }

    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed(&self, name: &str) -> String {
        self.renames
            .iter()
            .find(|(a, _)| a == name)
            .map_or_else(|| name.to_string(), |(_, b)| b.clone())
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        if value.is_null() {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        }
        require_struct(schema.as_ref(), "field replacement")?;
        let (is_struct, fields) =
            fields_of(value.clone()).ok_or_else(|| not_a_struct("field replacement", &value))?;
        let fields = fields
            .into_iter()
            .filter(|(n, _)| self.keep(n))
            .map(|(n, v)| (self.renamed(&n), v))
            .collect();
        let schema = schema.map(|mut s| {
            s.fields.retain(|f| self.keep(&f.name));
            for f in &mut s.fields {
                f.name = self.renamed(&f.name);
            }
            s.reindex();
            s
        });
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

pub(crate) struct MaskField {
    target: Target,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let fields = s.list("fields");
        if fields.is_empty() {
            return Err(Error::MissingConfig {
                key: s.key("fields"),
            });
        }
        Ok(MaskField {
            target,
            fields,
            replacement: s.get("replacement").map(str::to_string),
        })
    }

    fn mask(&self, value: &Value) -> Result<Value> {
        Ok(match (&self.replacement, value) {
            (_, Value::Null) => Value::Null,
            (None, Value::Boolean(_)) => Value::Boolean(false),
            (None, Value::Int(_)) => Value::Int(0),
            (None, Value::Float(_)) => Value::Float(0.0),
            (None, Value::String(_)) => Value::String(String::new()),
            (None, Value::Bytes(_)) => Value::Bytes(Vec::new()),
            (None, Value::Array(_)) => Value::Array(Vec::new()),
            (None, Value::Map(_)) => Value::Map(Vec::new()),
            (Some(r), Value::String(_)) => Value::String(r.clone()),
            (Some(r), Value::Int(_)) => Value::Int(r.parse().map_err(|_| {
                Error::transform("MaskField", format!("Unable to convert {r} to a number"))
            })?),
            (Some(r), Value::Float(_)) => Value::Float(r.parse().map_err(|_| {
                Error::transform("MaskField", format!("Unable to convert {r} to a number"))
            })?),
            (Some(_), other) => {
                return Err(Error::transform(
                    "MaskField",
                    format!("Cannot mask value of type {other:?} with custom replacement"),
                ));
            }
            (None, Value::Struct(_)) => {
                return Err(Error::transform("MaskField", "Cannot mask a struct field"));
            }
        })
    }
}

impl Transform for MaskField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        if value.is_null() {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        }
        require_struct(schema.as_ref(), "masking fields")?;
        let (is_struct, fields) =
            fields_of(value.clone()).ok_or_else(|| not_a_struct("masking fields", &value))?;
        let fields = fields
            .into_iter()
            .map(|(n, v)| {
                if self.fields.contains(&n) {
                    Ok((n, self.mask(&v)?))
                } else {
                    Ok((n, v))
                }
            })
            .collect::<Result<_>>()?;
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

pub(crate) struct HoistField {
    target: Target,
    field: String,
}

impl HoistField {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        Ok(HoistField {
            target,
            field: s.required("field")?.to_string(),
        })
    }
}

impl Transform for HoistField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        match schema {
            Some(s) => {
                let wrapper = Schema::struct_().field(self.field.clone(), s);
                self.target.set(
                    &mut record,
                    Some(wrapper),
                    Value::struct_of([(self.field.clone(), value)]),
                );
            }
            None => {
                let map = Value::Map(vec![(Value::String(self.field.clone()), value)]);
                self.target.set(&mut record, None, map);
            }
        }
        Ok(Some(record))
    }
}

pub(crate) struct ExtractField {
    target: Target,
    field: String,
}

impl ExtractField {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        Ok(ExtractField {
            target,
            field: s.required("field")?.to_string(),
        })
    }
}

impl Transform for ExtractField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        require_struct(schema.as_ref(), "field extraction")?;
        let field_schema = match &schema {
            Some(s) => Some(
                s.field_named(&self.field)
                    .ok_or_else(|| {
                        Error::transform("ExtractField", format!("Unknown field: {}", self.field))
                    })?
                    .schema
                    .clone(),
            ),
            None => None,
        };
        let extracted = match &value {
            Value::Null => Value::Null,
            Value::Struct(_) | Value::Map(_) => {
                value.get(&self.field).cloned().unwrap_or(Value::Null)
            }
            other => return Err(not_a_struct("field extraction", other)),
        };
        self.target.set(&mut record, field_schema, extracted);
        Ok(Some(record))
    }
}

pub(crate) struct Flatten {
    target: Target,
    delimiter: String,
}

impl Flatten {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        Ok(Flatten {
            target,
            delimiter: s
                .values
                .get("delimiter")
                .cloned()
                .unwrap_or_else(|| ".".into()),
        })
    }

    fn flatten_value(&self, prefix: &str, value: Value, out: &mut Vec<(String, Value)>) {
        let name = |n: &str| {
            if prefix.is_empty() {
                n.to_string()
            } else {
                format!("{prefix}{}{n}", self.delimiter)
            }
        };
        match fields_of(value.clone()) {
            Some((_, fields)) => {
                for (n, v) in fields {
                    self.flatten_value(&name(&n), v, out);
                }
            }
            None => out.push((prefix.to_string(), value)),
        }
    }

    fn flatten_schema(&self, prefix: &str, optional: bool, schema: &Schema, out: &mut Schema) {
        for f in &schema.fields {
            let name = if prefix.is_empty() {
                f.name.clone()
            } else {
                format!("{prefix}{}{}", self.delimiter, f.name)
            };
            if f.schema.type_ == SchemaType::Struct {
                self.flatten_schema(&name, optional || f.schema.optional, &f.schema, out);
            } else {
                let mut s = f.schema.clone();
                s.optional |= optional;
                let index = out.fields.len();
                out.fields.push(Field {
                    name,
                    index,
                    schema: s,
                });
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        if value.is_null() {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        }
        require_struct(schema.as_ref(), "flattening")?;
        let is_struct = matches!(value, Value::Struct(_));
        if fields_of(value.clone()).is_none() {
            return Err(not_a_struct("flattening", &value));
        }
        let mut flat = Vec::new();
        self.flatten_value("", value, &mut flat);
        // A struct value follows the flattened schema; nulls of nested structs become nulls
        // of each flattened field.
        let out_schema = schema.as_ref().map(|s| {
            let mut out = Schema::struct_();
            out.name = s.name.clone();
            out.optional = s.optional;
            self.flatten_schema("", false, s, &mut out);
            out
        });
        let flat = match &out_schema {
            Some(s) if is_struct => s
                .fields
                .iter()
                .map(|f| {
                    let v = flat
                        .iter()
                        .find(|(n, _)| n == &f.name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Value::Null);
                    (f.name.clone(), v)
                })
                .collect(),
            _ => flat,
        };
        self.target
            .set(&mut record, out_schema, rebuild(is_struct, flat));
        Ok(Some(record))
    }
}

pub(crate) struct Cast {
    target: Target,
    /// `None` field: the whole value.
    spec: Vec<(Option<String>, SchemaType)>,
}

impl Cast {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let list = s.list("spec");
        if list.is_empty() {
            return Err(Error::MissingConfig { key: s.key("spec") });
        }
        let parse_type = |t: &str| {
            SchemaType::from_name(t.trim())
                .filter(|t| t.is_primitive() && *t != SchemaType::Bytes)
                .ok_or_else(|| s.bad("spec", format!("Invalid type found in casting spec: {t}")))
        };
        let spec = if list.len() == 1 && !list[0].contains(':') {
            vec![(None, parse_type(&list[0])?)]
        } else {
            list.iter()
                .map(|item| {
                    let (f, t) = item
                        .split_once(':')
                        .ok_or_else(|| s.bad("spec", "Expected field:type pairs"))?;
                    Ok((Some(f.trim().to_string()), parse_type(t)?))
                })
                .collect::<Result<_>>()?
        };
        Ok(Cast { target, spec })
    }
}

fn cast_value(value: &Value, to: SchemaType) -> Result<Value> {
    let fail = || Error::transform("Cast", format!("Unable to cast {value:?} to {}", to.name()));
    if value.is_null() {
        return Ok(Value::Null);
    }
    let as_f64 = || match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(match to {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            let i = match value {
                Value::Int(i) => *i,
                Value::String(s) => s.trim().parse().map_err(|_| fail())?,
                _ => as_f64().ok_or_else(fail)? as i64,
            };
            // Java narrows by truncation.
            Value::Int(match to {
                SchemaType::Int8 => i64::from(i as i8),
                SchemaType::Int16 => i64::from(i as i16),
                SchemaType::Int32 => i64::from(i as i32),
                _ => i,
            })
        }
        SchemaType::Float32 | SchemaType::Float64 => Value::Float(as_f64().ok_or_else(fail)?),
        SchemaType::Boolean => match value {
            Value::String(s) => Value::Boolean(s.trim().eq_ignore_ascii_case("true")),
            _ => Value::Boolean(as_f64().ok_or_else(fail)? != 0.0),
        },
        SchemaType::String => Value::String(value.to_text()),
        _ => return Err(fail()),
    })
}

impl Transform for Cast {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        if let [(None, to)] = self.spec.as_slice() {
            let v = cast_value(&value, *to)?;
            let s = schema.map(|s| {
                let mut n = Schema::new(*to);
                n.optional = s.optional;
                n
            });
            self.target.set(&mut record, s, v);
            return Ok(Some(record));
        }
        if value.is_null() {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        }
        require_struct(schema.as_ref(), "cast")?;
        let (is_struct, fields) =
            fields_of(value.clone()).ok_or_else(|| not_a_struct("cast", &value))?;
        let find = |n: &str| {
            self.spec
                .iter()
                .find(|(f, _)| f.as_deref() == Some(n))
                .map(|(_, t)| *t)
        };
        let fields = fields
            .into_iter()
            .map(|(n, v)| match find(&n) {
                Some(t) => Ok((n, cast_value(&v, t)?)),
                None => Ok((n, v)),
            })
            .collect::<Result<_>>()?;
        let schema = schema.map(|mut s| {
            for f in &mut s.fields {
                if let Some(t) = find(&f.name) {
                    let optional = f.schema.optional;
                    f.schema = Schema::new(t);
                    f.schema.optional = optional;
                }
            }
            s
        });
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

pub(crate) struct SetSchemaMetadata {
    target: Target,
    name: Option<String>,
    version: Option<i32>,
}

impl SetSchemaMetadata {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let version = match s.get("schema.version") {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| s.bad("schema.version", "Not a number of type INT"))?,
            ),
            None => None,
        };
        let name = s.get("schema.name").map(str::to_string);
        if name.is_none() && version.is_none() {
            return Err(s.bad("schema.name", "Neither schema name nor version configured"));
        }
        Ok(SetSchemaMetadata {
            target,
            name,
            version,
        })
    }
}

impl Transform for SetSchemaMetadata {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        let mut schema = schema.ok_or_else(|| {
            Error::transform(
                "SetSchemaMetadata",
                "Schema required for updating schema metadata",
            )
        })?;
        if let Some(n) = &self.name {
            schema.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            schema.version = Some(v);
        }
        self.target.set(&mut record, Some(schema), value);
        Ok(Some(record))
    }
}

pub(crate) struct ValueToKey {
    fields: Vec<String>,
}

impl ValueToKey {
    pub(crate) fn new(s: &Settings<'_>) -> Result<Self> {
        let fields = s.list("fields");
        if fields.is_empty() {
            return Err(Error::MissingConfig {
                key: s.key("fields"),
            });
        }
        Ok(ValueToKey { fields })
    }
}

impl Transform for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        require_struct(
            record.value_schema.as_ref(),
            "copying fields from value to key",
        )?;
        let Some((is_struct, fields)) = fields_of(record.value.clone()) else {
            return Err(not_a_struct(
                "copying fields from value to key",
                &record.value,
            ));
        };
        let mut key = Vec::new();
        let mut key_schema = Schema::struct_();
        for name in &self.fields {
            let v = fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            if let Some(s) = &record.value_schema {
                let f = s.field_named(name).ok_or_else(|| {
                    Error::transform("ValueToKey", format!("Field does not exist: {name}"))
                })?;
                key_schema = key_schema.field(name.clone(), f.schema.clone());
            }
            key.push((name.clone(), v.unwrap_or(Value::Null)));
        }
        record.key_schema = record.value_schema.as_ref().map(|_| key_schema);
        record.key = rebuild(is_struct, key);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::TransformChain;
    use super::super::tests::cfg;
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        )
    }

    fn chain(pairs: &[(&str, &str)]) -> TransformChain {
        TransformChain::from_config(&cfg(pairs)).unwrap()
    }

    #[test]
    fn insert_field_with_schema_adds_optional_fields() {
        let c = chain(&[
            ("transforms", "i"),
            (
                "transforms.i.type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("transforms.i.topic.field", "src"),
            ("transforms.i.static.field", "dc"),
            ("transforms.i.static.value", "eu"),
        ]);
        let schema = Schema::struct_().field("id", Schema::int32());
        let r = ConnectRecord::new("t", Some(schema), Value::struct_of([("id", Value::Int(1))]));
        let out = c.apply(r).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::struct_of([
                ("id", Value::Int(1)),
                ("src", Value::from("t")),
                ("dc", Value::from("eu"))
            ])
        );
        let s = out.value_schema.unwrap();
        assert_eq!(s.fields.len(), 3);
        assert!(s.fields[1].schema.optional);
        // Tombstones pass through.
        let t = c
            .apply(ConnectRecord::new("t", None, Value::Null))
            .unwrap()
            .unwrap();
        assert_eq!(t.value, Value::Null);
        // Schemaless values must be maps.
        assert!(
            c.apply(ConnectRecord::new("t", None, Value::from("x")))
                .is_err()
        );
    }

    #[test]
    fn replace_field_excludes_includes_and_renames() {
        let c = chain(&[
            ("transforms", "r"),
            ("transforms.r.type", "ReplaceField$Value"),
            ("transforms.r.exclude", "secret"),
            ("transforms.r.renames", "a:alpha"),
        ]);
        let v = map(&[
            ("a", Value::Int(1)),
            ("secret", Value::from("x")),
            ("b", Value::Int(2)),
        ]);
        let out = c.apply(ConnectRecord::new("t", None, v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            map(&[("alpha", Value::Int(1)), ("b", Value::Int(2))])
        );
        let inc = chain(&[
            ("transforms", "r"),
            ("transforms.r.type", "ReplaceField$Value"),
            ("transforms.r.include", "b"),
        ]);
        let v = map(&[("a", Value::Int(1)), ("b", Value::Int(2))]);
        assert_eq!(
            inc.apply(ConnectRecord::new("t", None, v))
                .unwrap()
                .unwrap()
                .value,
            map(&[("b", Value::Int(2))])
        );
    }

    #[test]
    fn mask_hoist_extract_and_value_to_key() {
        let c = chain(&[
            ("transforms", "m,k"),
            ("transforms.m.type", "MaskField$Value"),
            ("transforms.m.fields", "ssn,age"),
            ("transforms.k.type", "ValueToKey"),
            ("transforms.k.fields", "id"),
        ]);
        let v = map(&[
            ("id", Value::Int(3)),
            ("ssn", Value::from("123")),
            ("age", Value::Int(40)),
        ]);
        let out = c.apply(ConnectRecord::new("t", None, v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            map(&[
                ("id", Value::Int(3)),
                ("ssn", Value::from("")),
                ("age", Value::Int(0))
            ])
        );
        assert_eq!(out.key, map(&[("id", Value::Int(3))]));

        let he = chain(&[
            ("transforms", "h,e"),
            ("transforms.h.type", "HoistField$Value"),
            ("transforms.h.field", "line"),
            ("transforms.e.type", "ExtractField$Value"),
            ("transforms.e.field", "line"),
        ]);
        let r = ConnectRecord::new("t", Some(Schema::string()), Value::from("x"));
        let out = he.apply(r).unwrap().unwrap();
        assert_eq!(out.value, Value::from("x"));
        assert_eq!(out.value_schema, Some(Schema::string()));
    }

    #[test]
    fn flatten_nested_structs() {
        let c = chain(&[
            ("transforms", "f"),
            ("transforms.f.type", "Flatten$Value"),
            ("transforms.f.delimiter", "_"),
        ]);
        let inner = Schema::struct_().field("city", Schema::string()).optional();
        let schema = Schema::struct_()
            .field("id", Schema::int32())
            .field("addr", inner);
        let v = Value::struct_of([
            ("id", Value::Int(1)),
            ("addr", Value::struct_of([("city", Value::from("Oslo"))])),
        ]);
        let out = c
            .apply(ConnectRecord::new("t", Some(schema), v))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value,
            Value::struct_of([("id", Value::Int(1)), ("addr_city", Value::from("Oslo"))])
        );
        let s = out.value_schema.unwrap();
        assert_eq!(s.fields[1].name, "addr_city");
        assert!(s.fields[1].schema.optional);
    }

    #[test]
    fn cast_fields_and_whole_values() {
        let c = chain(&[
            ("transforms", "c"),
            ("transforms.c.type", "Cast$Value"),
            ("transforms.c.spec", "n:int32,s:string"),
        ]);
        let v = map(&[("n", Value::from("42")), ("s", Value::Float(1.5))]);
        let out = c.apply(ConnectRecord::new("t", None, v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            map(&[("n", Value::Int(42)), ("s", Value::from("1.5"))])
        );
        let whole = chain(&[
            ("transforms", "c"),
            ("transforms.c.type", "Cast$Key"),
            ("transforms.c.spec", "int8"),
        ]);
        let mut r = ConnectRecord::new("t", None, Value::Null);
        r.key = Value::Int(300);
        assert_eq!(whole.apply(r).unwrap().unwrap().key, Value::Int(44));
        assert!(
            TransformChain::from_config(&cfg(&[
                ("transforms", "c"),
                ("transforms.c.type", "Cast$Value"),
                ("transforms.c.spec", "n:struct"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn set_schema_metadata_requires_a_schema() {
        let c = chain(&[
            ("transforms", "s"),
            ("transforms.s.type", "SetSchemaMetadata$Value"),
            ("transforms.s.schema.name", "com.example.User"),
            ("transforms.s.schema.version", "2"),
        ]);
        let out = c
            .apply(ConnectRecord::new(
                "t",
                Some(Schema::string()),
                Value::from("x"),
            ))
            .unwrap()
            .unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(
            (s.name.as_deref(), s.version),
            (Some("com.example.User"), Some(2))
        );
        assert!(
            c.apply(ConnectRecord::new("t", None, Value::from("x")))
                .is_err()
        );
    }
}
