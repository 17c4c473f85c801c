//! Kafka's single-message transforms and predicates, configured with Kafka's keys
//! (`transforms=a,b`, `transforms.a.type=org.apache.kafka.connect.transforms.InsertField$Value`,
//! `transforms.a.predicate=p`, `transforms.a.negate=true`, `predicates.p.type=...`).

mod fields;
mod headers;
mod predicates;
mod routers;
pub(crate) mod time;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use predicates::Predicate;

use crate::config::{parse_bool, parse_list, prefixed};
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::error::{Error, Result};

/// One transformation of a record; `Ok(None)` drops the record.
pub trait Transform: Send + Sync {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>>;
}

/// The transform classes this runtime knows (the `$Key`/`$Value` variants where Kafka has them).
pub const TRANSFORM_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.DropHeaders",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.Flatten$Key",
    "org.apache.kafka.connect.transforms.Flatten$Value",
    "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
    "org.apache.kafka.connect.transforms.HoistField$Key",
    "org.apache.kafka.connect.transforms.HoistField$Value",
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.InsertHeader",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    "org.apache.kafka.connect.transforms.ValueToKey",
];

/// The predicate classes this runtime knows.
pub const PREDICATE_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
];

/// Whether a keyed transform works on the key or the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Key,
    Value,
}

impl Target {
    pub(crate) fn take(self, r: &mut ConnectRecord) -> (Option<Schema>, Value) {
        match self {
            Target::Key => (r.key_schema.take(), std::mem::take(&mut r.key)),
            Target::Value => (r.value_schema.take(), std::mem::take(&mut r.value)),
        }
    }

    pub(crate) fn set(self, r: &mut ConnectRecord, schema: Option<Schema>, value: Value) {
        match self {
            Target::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Target::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
    }
}

/// A transform's settings (prefix stripped) and its alias for error messages.
pub(crate) struct Settings<'a> {
    pub(crate) alias: &'a str,
    pub(crate) values: BTreeMap<String, String>,
}

impl Settings<'_> {
    pub(crate) fn key(&self, key: &str) -> String {
        format!("transforms.{}.{key}", self.alias)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn required(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| Error::MissingConfig { key: self.key(key) })
    }

    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        parse_list(self.values.get(key))
    }

    pub(crate) fn bad(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::config(&self.key(key), self.get(key).unwrap_or(""), reason)
    }
}

fn build_transform(class: &str, s: &Settings<'_>) -> Result<Box<dyn Transform>> {
    let simple = class.trim().rsplit('.').next().unwrap_or(class);
    let (base, target) = match simple.split_once('$') {
        Some((b, "Key")) => (b, Some(Target::Key)),
        Some((b, "Value")) => (b, Some(Target::Value)),
        Some(_) => ("", None),
        None => (simple, None),
    };
    let keyed = |t: Option<Target>| {
        t.ok_or_else(|| {
            Error::config(
                &s.key("type"),
                class,
                format!("{base} needs its $Key or $Value variant"),
            )
        })
    };
    Ok(match base {
        "Filter" => Box::new(Filter),
        "RegexRouter" => Box::new(routers::RegexRouter::new(s)?),
        "TimestampRouter" => Box::new(routers::TimestampRouter::new(s)?),
        "InsertHeader" => Box::new(headers::InsertHeader::new(s)?),
        "DropHeaders" => Box::new(headers::DropHeaders::new(s)?),
        "HeaderFrom" => Box::new(headers::HeaderFrom::new(s, keyed(target)?)?),
        "ValueToKey" => Box::new(fields::ValueToKey::new(s)?),
        "InsertField" => Box::new(fields::InsertField::new(s, keyed(target)?)?),
        "ReplaceField" => Box::new(fields::ReplaceField::new(s, keyed(target)?)?),
        "MaskField" => Box::new(fields::MaskField::new(s, keyed(target)?)?),
        "HoistField" => Box::new(fields::HoistField::new(s, keyed(target)?)?),
        "ExtractField" => Box::new(fields::ExtractField::new(s, keyed(target)?)?),
        "Flatten" => Box::new(fields::Flatten::new(s, keyed(target)?)?),
        "Cast" => Box::new(fields::Cast::new(s, keyed(target)?)?),
        "SetSchemaMetadata" => Box::new(fields::SetSchemaMetadata::new(s, keyed(target)?)?),
        "TimestampConverter" => Box::new(time::TimestampConverter::new(s, keyed(target)?)?),
        _ => {
            return Err(Error::config(
                &s.key("type"),
                class,
                format!("Class {class} could not be found"),
            ));
        }
    })
}

/// `org.apache.kafka.connect.transforms.Filter`: drops every record (use it with a predicate).
struct Filter;

impl Transform for Filter {
    fn apply(&self, _record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        Ok(None)
    }
}

struct Step {
    alias: String,
    transform: Box<dyn Transform>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// A connector's transforms in order, with their predicates.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| &s.alias))
            .finish()
    }
}

impl TransformChain {
    /// Builds the chain a connector config describes; errors name the key.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self> {
        let mut predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
        for alias in parse_list(config.get("predicates")) {
            let settings = prefixed(config, &format!("predicates.{alias}."));
            let key = format!("predicates.{alias}.type");
            let class = settings
                .get("type")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::MissingConfig { key: key.clone() })?;
            let p = predicates::build(&class, &key, &alias, &settings)?;
            predicates.insert(alias, p);
        }
        let mut steps = Vec::new();
        for alias in parse_list(config.get("transforms")) {
            let values = prefixed(config, &format!("transforms.{alias}."));
            let settings = Settings {
                alias: &alias,
                values,
            };
            let class = settings.required("type")?.to_string();
            let transform = build_transform(&class, &settings)?;
            let predicate = match settings.get("predicate") {
                None => None,
                Some(p) => {
                    let predicate = predicates.get(p).cloned().ok_or_else(|| {
                        settings.bad(
                            "predicate",
                            format!("Predicate {p} is not defined in predicates"),
                        )
                    })?;
                    let negate = parse_bool(&settings.values, "negate", false).map_err(|_| {
                        settings.bad("negate", "Expected value to be either true or false")
                    })?;
                    Some((predicate, negate))
                }
            };
            steps.push(Step {
                alias: alias.clone(),
                transform,
                predicate,
            });
        }
        Ok(TransformChain { steps })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the record through every transform whose predicate holds; `None`: dropped.
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        for step in &self.steps {
            if let Some((p, negate)) = &step.predicate
                && p.test(&record) == *negate
            {
                continue;
            }
            match step.transform.apply(record)? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }
}

/// A struct or string-keyed map's fields, or `None` when the value is neither.
pub(crate) fn fields_of(value: Value) -> Option<(bool, Vec<(String, Value)>)> {
    match value {
        Value::Struct(f) => Some((true, f)),
        Value::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| match k {
                Value::String(s) => Some((s, v)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|f| (false, f)),
        _ => None,
    }
}

/// Rebuilds a struct (`is_struct`) or a string-keyed map.
pub(crate) fn rebuild(is_struct: bool, fields: Vec<(String, Value)>) -> Value {
    if is_struct {
        Value::Struct(fields)
    } else {
        Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect(),
        )
    }
}

/// Requires a struct schema when there is a schema.
pub(crate) fn require_struct(schema: Option<&Schema>, what: &str) -> Result<()> {
    match schema {
        Some(s) if s.type_ != SchemaType::Struct => Err(Error::transform(
            what,
            format!(
                "Only Struct objects supported for [{what}], found: {}",
                s.type_.name()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Header;

    pub(crate) fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filter_with_negated_predicate_keeps_matching_topics() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "keepFoo"),
            (
                "transforms.keepFoo.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.keepFoo.predicate", "isFoo"),
            ("transforms.keepFoo.negate", "true"),
            ("predicates", "isFoo"),
            (
                "predicates.isFoo.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.isFoo.pattern", "foo.*"),
        ]))
        .unwrap();
        let foo = ConnectRecord::new("foo-1", None, Value::from("x"));
        let bar = ConnectRecord::new("bar", None, Value::from("x"));
        assert!(chain.apply(foo).unwrap().is_some());
        assert!(chain.apply(bar).unwrap().is_none());
    }

    #[test]
    fn tombstone_and_header_predicates() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "drop"),
            ("transforms.drop.type", "Filter"),
            ("transforms.drop.predicate", "t"),
            ("predicates", "t,h"),
            ("predicates.t.type", "RecordIsTombstone"),
            ("predicates.h.type", "HasHeaderKey"),
            ("predicates.h.name", "x"),
        ]))
        .unwrap();
        assert!(
            chain
                .apply(ConnectRecord::new("a", None, Value::Null))
                .unwrap()
                .is_none()
        );
        let mut r = ConnectRecord::new("a", None, Value::from("v"));
        r.headers.push(Header::string("x", None));
        assert!(chain.apply(r).unwrap().is_some());
    }

    #[test]
    fn unknown_transform_and_missing_predicate_name_the_key() {
        let err = TransformChain::from_config(&cfg(&[
            ("transforms", "a"),
            ("transforms.a.type", "com.example.Nope"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("transforms.a.type"), "{err}");
        let err = TransformChain::from_config(&cfg(&[("transforms", "a")])).unwrap_err();
        assert!(err.to_string().contains("transforms.a.type"), "{err}");
        let err = TransformChain::from_config(&cfg(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "p"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("transforms.a.predicate"), "{err}");
        let err = TransformChain::from_config(&cfg(&[
            ("transforms", "a"),
            ("transforms.a.type", "InsertField"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("$Key or $Value"), "{err}");
    }
}
