//! Avro schemas: parsing with references, the registry's normalized form and the Parsing
//! Canonical Form with its fingerprints.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use apache_avro::Schema;
use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, UuidSchema};

/// A parsed Avro schema with the named types it and its references define.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    /// The referenced schemas, parsed (dependencies first).
    schemata: Vec<Schema>,
    /// Full name → definition, for resolving `Schema::Ref`.
    named: HashMap<String, Schema>,
    normalized: String,
}

impl AvroSchema {
    /// Parses `text`, resolving named types against `references` (schema texts, each a named
    /// record, enum or fixed, dependencies first). The error is the parser's message.
    pub fn parse(text: &str, references: &[String]) -> Result<AvroSchema, String> {
        // apache-avro asserts some invariants with panics; a schema must never take the
        // registry down, so a panic while parsing counts as an invalid schema.
        let parsed = catch_unwind(AssertUnwindSafe(|| -> Result<AvroSchema, String> {
            let (schema, schemata) = if references.is_empty() {
                (
                    Schema::parse_str(text).map_err(|e| describe(&e))?,
                    Vec::new(),
                )
            } else {
                Schema::parse_str_with_list(text, references).map_err(|e| describe(&e))?
            };
            let mut named = HashMap::new();
            for s in schemata.iter().chain(std::iter::once(&schema)) {
                collect_named(s, &mut named);
            }
            let normalized = serde_json::to_string(&schema).map_err(|e| e.to_string())?;
            Ok(AvroSchema {
                schema,
                schemata,
                named,
                normalized,
            })
        }));
        match parsed {
            Ok(result) => result,
            Err(_) => Err("the Avro parser rejected the schema".to_string()),
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The referenced schemas this one was parsed with (for resolving its references when
    /// encoding or decoding).
    pub fn schemata(&self) -> &[Schema] {
        &self.schemata
    }

    /// The definition of a named type by full name.
    pub fn named(&self, fullname: &str) -> Option<&Schema> {
        self.named.get(fullname)
    }

    /// The registry's normalized text: attributes in the specification's order, full names,
    /// no insignificant whitespace, but defaults, docs, aliases and logical types kept (they
    /// matter to compatibility, unlike in the Parsing Canonical Form).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The specification's Parsing Canonical Form.
    pub fn canonical_form(&self) -> String {
        catch_unwind(AssertUnwindSafe(|| self.schema.canonical_form()))
            .unwrap_or_else(|_| self.normalized.clone())
    }

    /// The CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form, as a number (the
    /// Java `SchemaNormalization.parsingFingerprint64`).
    pub fn fingerprint64(&self) -> i64 {
        let bytes = self.schema.fingerprint::<apache_avro::rabin::Rabin>().bytes;
        let mut le = [0u8; 8];
        for (dst, src) in le.iter_mut().zip(bytes.iter()) {
            *dst = *src;
        }
        i64::from_le_bytes(le)
    }

    /// The top-level full name for named types (used by the RecordName subject strategies).
    pub fn full_name(&self) -> Option<String> {
        match &self.schema {
            Schema::Record(r) => Some(r.name.fullname(None)),
            Schema::Enum(e) => Some(e.name.fullname(None)),
            Schema::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }
}

/// The error and its sources, `: `-separated (the parser's top-level message alone is vague).
fn describe(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn collect_named(schema: &Schema, out: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.fullname(None), schema.clone());
            for field in &r.fields {
                collect_named(&field.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            out.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Duration(f)
        | Schema::Uuid(UuidSchema::Fixed(f))
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => {
            out.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_named(&a.items, out),
        Schema::Map(m) => collect_named(&m.types, out),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_named(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_strips_docs_defaults_and_whitespace_and_qualifies_names() {
        let s = AvroSchema::parse(
            r#"{ "type": "record", "namespace": "com.acme", "name": "User", "doc": "a user",
                 "fields": [ {"name": "id", "type": "long", "default": 0, "doc": "key"},
                             {"name": "tags", "type": {"type": "array", "items": "string"}} ] }"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            s.canonical_form(),
            r#"{"name":"com.acme.User","type":"record","fields":[{"name":"id","type":"long"},{"name":"tags","type":{"type":"array","items":"string"}}]}"#
        );
    }

    #[test]
    fn canonical_form_of_primitives_is_the_bare_name() {
        for (text, expected) in [
            (r#""int""#, r#""int""#),
            (r#"{"type": "string"}"#, r#""string""#),
            (
                r#"{"type":"fixed","name":"F","size":16,"doc":"d"}"#,
                r#"{"name":"F","type":"fixed","size":16}"#,
            ),
        ] {
            let s = AvroSchema::parse(text, &[]).unwrap();
            assert_eq!(s.canonical_form(), expected, "{text}");
        }
    }

    #[test]
    fn normalized_form_keeps_defaults_and_is_whitespace_insensitive() {
        let a = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}"#,
            &[],
        )
        .unwrap();
        let b = AvroSchema::parse(
            "{ \"fields\" : [ { \"default\": 1, \"type\": \"int\", \"name\": \"a\" } ],\n \"name\": \"R\", \"type\": \"record\" }",
            &[],
        )
        .unwrap();
        assert_eq!(a.normalized(), b.normalized());
        assert!(
            a.normalized().contains("\"default\":1"),
            "{}",
            a.normalized()
        );
    }

    /// Fingerprints computed independently with fastavro
    /// (`fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")`: the 8 bytes little-endian, as in
    /// Avro's single-object encoding, in hex).
    #[test]
    fn rabin_fingerprints_match_an_independent_implementation() {
        for (text, hex) in [
            (r#""null""#, "8a8f25cce724dd63"),
            (r#""int""#, "8f5c393f1ad57572"),
            (r#""string""#, "c70345637248018f"),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
                "3715a01bf361b035",
            ),
        ] {
            let s = AvroSchema::parse(text, &[]).unwrap();
            let le: String = s
                .fingerprint64()
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(le, hex, "{text}");
        }
        // The Avro specification's test value for "null" (Java's parsingFingerprint64).
        assert_eq!(
            AvroSchema::parse(r#""null""#, &[]).unwrap().fingerprint64(),
            7195948357588979594
        );
    }

    #[test]
    fn references_resolve_named_types_from_other_schemas() {
        let address = r#"{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}"#.to_string();
        let s = AvroSchema::parse(
            r#"{"type":"record","name":"User","namespace":"com.acme","fields":[{"name":"home","type":"Address"}]}"#,
            &[address],
        )
        .unwrap();
        assert!(s.named("com.acme.Address").is_some());
        assert!(
            AvroSchema::parse(
                r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Address"}]}"#,
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn invalid_schemas_are_errors_not_panics() {
        for text in [
            "",
            "{",
            "42",
            r#"{"type":"record"}"#,
            r#"{"type":"record","name":"R","fields":[{"name":"a"}]}"#,
            r#"{"type":"fixed","name":"F","size":-1}"#,
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
            r#"{"type":"nope"}"#,
            r#"["int","int"]"#,
        ] {
            assert!(AvroSchema::parse(text, &[]).is_err(), "{text}");
        }
    }
}
