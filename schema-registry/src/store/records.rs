//! The `_schemas` topic's records in Confluent's key/value JSON formats.
//!
//! Keys: `{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`,
//! `{"keytype":"CONFIG","subject":null,"magic":0}` (global when the subject is null),
//! `{"keytype":"MODE","subject":"s","magic":0}`, `{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}`,
//! `{"keytype":"CLEAR_SUBJECT",...}` and `{"keytype":"NOOP","magic":0}`. A null value is a
//! tombstone (hard delete).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::compat::CompatibilityLevel;
use crate::schema::{SchemaReference, SchemaType};

/// A record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Schema { subject: String, version: i32 },
    Config { subject: Option<String> },
    Mode { subject: Option<String> },
    DeleteSubject { subject: String },
    ClearSubject { subject: String },
    Noop,
}

impl RecordKey {
    /// The key's JSON bytes, in Confluent's field order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = match self {
            RecordKey::Schema { subject, version } => {
                json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})
            }
            RecordKey::Config { subject } => {
                json!({"keytype": "CONFIG", "subject": subject, "magic": 0})
            }
            RecordKey::Mode { subject } => {
                json!({"keytype": "MODE", "subject": subject, "magic": 0})
            }
            RecordKey::DeleteSubject { subject } => {
                json!({"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0})
            }
            RecordKey::ClearSubject { subject } => {
                json!({"keytype": "CLEAR_SUBJECT", "subject": subject, "magic": 0})
            }
            RecordKey::Noop => json!({"keytype": "NOOP", "magic": 0}),
        };
        // serde_json sorts object keys; Confluent's readers do not depend on the order.
        value.to_string().into_bytes()
    }

    /// Parses a key; `None` for keys that are not JSON or of an unknown type (skipped, as a
    /// newer registry may write types this one does not know).
    pub fn parse(bytes: &[u8]) -> Option<RecordKey> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let subject = value
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_string);
        match value.get("keytype")?.as_str()? {
            "SCHEMA" => Some(RecordKey::Schema {
                subject: subject?,
                version: i32::try_from(value.get("version")?.as_i64()?).ok()?,
            }),
            "CONFIG" => Some(RecordKey::Config { subject }),
            "MODE" => Some(RecordKey::Mode { subject }),
            "DELETE_SUBJECT" => Some(RecordKey::DeleteSubject { subject: subject? }),
            "CLEAR_SUBJECT" => Some(RecordKey::ClearSubject { subject: subject? }),
            "NOOP" => Some(RecordKey::Noop),
            _ => None,
        }
    }
}

fn is_avro(t: &SchemaType) -> bool {
    *t == SchemaType::Avro
}

/// A SCHEMA record's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

/// A CONFIG record's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    pub compatibility_level: CompatibilityLevel,
}

/// Registry modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    Readwrite,
    Readonly,
    ReadonlyOverride,
    Import,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::Readwrite,
            "READONLY" => Mode::Readonly,
            "READONLY_OVERRIDE" => Mode::ReadonlyOverride,
            "IMPORT" => Mode::Import,
            _ => return None,
        })
    }
}

/// A MODE record's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    pub mode: Mode,
}

/// A DELETE_SUBJECT (or CLEAR_SUBJECT) record's value: versions up to `version` are deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_confluents_format() {
        let keys = [
            RecordKey::Schema {
                subject: "t-value".into(),
                version: 3,
            },
            RecordKey::Config { subject: None },
            RecordKey::Config {
                subject: Some("t-value".into()),
            },
            RecordKey::Mode { subject: None },
            RecordKey::DeleteSubject {
                subject: "s".into(),
            },
            RecordKey::ClearSubject {
                subject: "s".into(),
            },
            RecordKey::Noop,
        ];
        for key in keys {
            assert_eq!(RecordKey::parse(&key.to_bytes()), Some(key.clone()));
        }
        let schema_key: Value = serde_json::from_slice(
            &RecordKey::Schema {
                subject: "s".into(),
                version: 1,
            }
            .to_bytes(),
        )
        .unwrap();
        assert_eq!(
            schema_key,
            json!({"keytype":"SCHEMA","subject":"s","version":1,"magic":1})
        );
        let config_key: Value =
            serde_json::from_slice(&RecordKey::Config { subject: None }.to_bytes()).unwrap();
        assert_eq!(
            config_key,
            json!({"keytype":"CONFIG","subject":null,"magic":0})
        );
    }

    #[test]
    fn keys_written_by_confluent_parse() {
        let k = br#"{"keytype":"SCHEMA","subject":"orders-value","version":2,"magic":1}"#;
        assert_eq!(
            RecordKey::parse(k),
            Some(RecordKey::Schema {
                subject: "orders-value".into(),
                version: 2
            })
        );
        assert_eq!(
            RecordKey::parse(br#"{"keytype":"NOOP","magic":0}"#),
            Some(RecordKey::Noop)
        );
        assert_eq!(RecordKey::parse(br#"{"keytype":"FUTURE","magic":0}"#), None);
        assert_eq!(RecordKey::parse(b"not json"), None);
        assert_eq!(
            RecordKey::parse(br#"{"keytype":"SCHEMA","subject":"s","version":99999999999}"#),
            None
        );
    }

    #[test]
    fn values_use_confluents_field_names() {
        let v = SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 7,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"string\"".into(),
            deleted: false,
        };
        let json: Value = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            json!({"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false})
        );
        let confluent = r#"{"subject":"s","version":2,"id":3,"schemaType":"JSON","references":[{"name":"a","subject":"b","version":1}],"schema":"{}","deleted":true,"metadata":null}"#;
        let parsed: SchemaValue = serde_json::from_str(confluent).unwrap();
        assert_eq!(parsed.schema_type, SchemaType::Json);
        assert_eq!(parsed.references[0].subject, "b");
        assert!(parsed.deleted);
        let config: ConfigValue =
            serde_json::from_str(r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#).unwrap();
        assert_eq!(
            config.compatibility_level,
            CompatibilityLevel::FullTransitive
        );
        let mode: ModeValue = serde_json::from_str(r#"{"mode":"IMPORT"}"#).unwrap();
        assert_eq!(mode.mode, Mode::Import);
    }

    proptest::proptest! {
        #[test]
        fn any_key_round_trips(subject in "\\PC{0,40}", version in 1i32..i32::MAX, kind in 0u8..6) {
            let key = match kind {
                0 => RecordKey::Schema { subject, version },
                1 => RecordKey::Config { subject: Some(subject) },
                2 => RecordKey::Mode { subject: Some(subject) },
                3 => RecordKey::DeleteSubject { subject },
                4 => RecordKey::ClearSubject { subject },
                _ => RecordKey::Noop,
            };
            proptest::prop_assert_eq!(RecordKey::parse(&key.to_bytes()), Some(key));
        }

        #[test]
        fn schema_values_round_trip(subject in "\\PC{0,20}", schema in "\\PC{0,60}", id in 0i32..i32::MAX, deleted: bool, json: bool) {
            let value = SchemaValue {
                subject,
                version: 1,
                id,
                schema_type: if json { SchemaType::Json } else { SchemaType::Avro },
                references: vec![],
                schema,
                deleted,
            };
            let bytes = serde_json::to_vec(&value).unwrap();
            proptest::prop_assert_eq!(serde_json::from_slice::<SchemaValue>(&bytes).unwrap(), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_key_parser(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = RecordKey::parse(&bytes);
        }
    }
}
