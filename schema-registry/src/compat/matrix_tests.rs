//! The compatibility matrix: schema pairs covering every Avro resolution rule, each checked at
//! every level, and transitive levels over three versions.

use super::*;
use crate::schema::{ParsedSchema, SchemaType};

fn avro(text: &str) -> ParsedSchema {
    ParsedSchema::parse(SchemaType::Avro, text, &[])
        .unwrap_or_else(|e| panic!("test schema does not parse: {e}\n{text}"))
}

fn rec(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"R","namespace":"ns","fields":[{fields}]}}"#)
}

fn rec_named(name: &str, extra: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}"{extra},"fields":[{fields}]}}"#)
}

fn field(name: &str, ty: &str) -> String {
    format!(r#"{{"name":"{name}","type":{ty}}}"#)
}

fn field_default(name: &str, ty: &str, default: &str) -> String {
    format!(r#"{{"name":"{name}","type":{ty},"default":{default}}}"#)
}

fn enm(name: &str, symbols: &str, default: Option<&str>) -> String {
    match default {
        Some(d) => {
            format!(r#"{{"type":"enum","name":"{name}","symbols":{symbols},"default":"{d}"}}"#)
        }
        None => format!(r#"{{"type":"enum","name":"{name}","symbols":{symbols}}}"#),
    }
}

fn fixed(name: &str, size: u32) -> String {
    format!(r#"{{"type":"fixed","name":"{name}","size":{size}}}"#)
}

fn list(next: &str, extra_field: &str) -> String {
    format!(
        r#"{{"type":"record","name":"Node","fields":[{{"name":"value","type":"int"}},{{"name":"next","type":["null",{next}]}}{extra_field}]}}"#
    )
}

/// (case, old schema, new schema, new can read old (backward), old can read new (forward)).
fn matrix() -> Vec<(&'static str, String, String, bool, bool)> {
    let s = |t: &str| t.to_string();
    let a_int = field("a", r#""int""#);
    vec![
        // primitives and promotions
        ("same int", s(r#""int""#), s(r#""int""#), true, true),
        ("null to null", s(r#""null""#), s(r#""null""#), true, true),
        ("int to long", s(r#""int""#), s(r#""long""#), true, false),
        ("int to float", s(r#""int""#), s(r#""float""#), true, false),
        (
            "int to double",
            s(r#""int""#),
            s(r#""double""#),
            true,
            false,
        ),
        (
            "long to float",
            s(r#""long""#),
            s(r#""float""#),
            true,
            false,
        ),
        (
            "long to double",
            s(r#""long""#),
            s(r#""double""#),
            true,
            false,
        ),
        (
            "float to double",
            s(r#""float""#),
            s(r#""double""#),
            true,
            false,
        ),
        ("long to int", s(r#""long""#), s(r#""int""#), false, true),
        (
            "double to float",
            s(r#""double""#),
            s(r#""float""#),
            false,
            true,
        ),
        (
            "float to long",
            s(r#""float""#),
            s(r#""long""#),
            false,
            true,
        ),
        (
            "string to bytes",
            s(r#""string""#),
            s(r#""bytes""#),
            true,
            true,
        ),
        (
            "bytes to string",
            s(r#""bytes""#),
            s(r#""string""#),
            true,
            true,
        ),
        (
            "int to string",
            s(r#""int""#),
            s(r#""string""#),
            false,
            false,
        ),
        (
            "boolean to int",
            s(r#""boolean""#),
            s(r#""int""#),
            false,
            false,
        ),
        (
            "string to enum",
            s(r#""string""#),
            enm("E", r#"["A"]"#, None),
            false,
            false,
        ),
        (
            "enum to string",
            enm("E", r#"["A"]"#, None),
            s(r#""string""#),
            false,
            false,
        ),
        // record fields
        (
            "add field with default",
            rec(&a_int),
            rec(&format!(
                "{a_int},{}",
                field_default("b", r#""string""#, r#""x""#)
            )),
            true,
            true,
        ),
        (
            "add field without default",
            rec(&a_int),
            rec(&format!("{a_int},{}", field("b", r#""string""#))),
            false,
            true,
        ),
        (
            "remove field with default",
            rec(&format!(
                "{a_int},{}",
                field_default("b", r#""string""#, r#""x""#)
            )),
            rec(&a_int),
            true,
            true,
        ),
        (
            "remove field without default",
            rec(&format!("{a_int},{}", field("b", r#""string""#))),
            rec(&a_int),
            true,
            false,
        ),
        (
            "rename field with alias",
            rec(&a_int),
            rec(r#"{"name":"b","type":"int","aliases":["a"]}"#),
            true,
            false,
        ),
        (
            "rename field without alias",
            rec(&a_int),
            rec(&field("b", r#""int""#)),
            false,
            false,
        ),
        (
            "field int to long",
            rec(&a_int),
            rec(&field("a", r#""long""#)),
            true,
            false,
        ),
        (
            "field int to string",
            rec(&a_int),
            rec(&field("a", r#""string""#)),
            false,
            false,
        ),
        (
            "fields reordered",
            rec(&format!("{a_int},{}", field("b", r#""string""#))),
            rec(&format!("{},{a_int}", field("b", r#""string""#))),
            true,
            true,
        ),
        (
            "optional field added with null default",
            rec(&a_int),
            rec(&format!(
                "{a_int},{}",
                field_default("c", r#"["null","string"]"#, "null")
            )),
            true,
            true,
        ),
        (
            "nested record field added without default",
            rec(&field("in", &rec_named("In", "", &a_int))),
            rec(&field(
                "in",
                &rec_named("In", "", &format!("{a_int},{}", field("x", r#""long""#))),
            )),
            false,
            true,
        ),
        (
            "nested record field added with default",
            rec(&field("in", &rec_named("In", "", &a_int))),
            rec(&field(
                "in",
                &rec_named(
                    "In",
                    "",
                    &format!("{a_int},{}", field_default("x", r#""long""#, "0")),
                ),
            )),
            true,
            true,
        ),
        (
            "nested record field type narrowed",
            rec(&field("in", &rec_named("In", "", &field("a", r#""long""#)))),
            rec(&field("in", &rec_named("In", "", &a_int))),
            false,
            true,
        ),
        // record names and aliases
        (
            "record renamed",
            rec_named("A", "", &a_int),
            rec_named("B", "", &a_int),
            false,
            false,
        ),
        (
            "record renamed with alias",
            rec_named("A", "", &a_int),
            rec_named("B", r#","aliases":["A"]"#, &a_int),
            true,
            false,
        ),
        (
            "record namespace changed",
            rec_named("A", r#","namespace":"x""#, &a_int),
            rec_named("A", r#","namespace":"y""#, &a_int),
            true,
            true,
        ),
        // enums
        (
            "enum symbol added",
            enm("E", r#"["A","B"]"#, None),
            enm("E", r#"["A","B","C"]"#, None),
            true,
            false,
        ),
        (
            "enum symbol removed",
            enm("E", r#"["A","B","C"]"#, None),
            enm("E", r#"["A","B"]"#, None),
            false,
            true,
        ),
        (
            "enum symbol added, old has default",
            enm("E", r#"["A","B"]"#, Some("A")),
            enm("E", r#"["A","B","C"]"#, Some("A")),
            true,
            true,
        ),
        (
            "enum symbol removed, new has default",
            enm("E", r#"["A","B","C"]"#, None),
            enm("E", r#"["A","B"]"#, Some("A")),
            true,
            true,
        ),
        (
            "enum symbol added, new has default",
            enm("E", r#"["A","B"]"#, None),
            enm("E", r#"["A","B","C"]"#, Some("A")),
            true,
            false,
        ),
        (
            "enum renamed",
            enm("E", r#"["A"]"#, None),
            enm("F", r#"["A"]"#, None),
            false,
            false,
        ),
        (
            "enum symbols reordered",
            enm("E", r#"["A","B"]"#, None),
            enm("E", r#"["B","A"]"#, None),
            true,
            true,
        ),
        (
            "enum field symbol removed in record",
            rec(&field("e", &enm("E", r#"["A","B"]"#, None))),
            rec(&field("e", &enm("E", r#"["A"]"#, None))),
            false,
            true,
        ),
        // fixed
        ("fixed same", fixed("F", 4), fixed("F", 4), true, true),
        (
            "fixed size changed",
            fixed("F", 4),
            fixed("F", 8),
            false,
            false,
        ),
        ("fixed renamed", fixed("F", 4), fixed("G", 4), false, false),
        (
            "fixed to bytes",
            fixed("F", 4),
            s(r#""bytes""#),
            false,
            false,
        ),
        // arrays and maps
        (
            "array int to long",
            s(r#"{"type":"array","items":"int"}"#),
            s(r#"{"type":"array","items":"long"}"#),
            true,
            false,
        ),
        (
            "array int to string",
            s(r#"{"type":"array","items":"int"}"#),
            s(r#"{"type":"array","items":"string"}"#),
            false,
            false,
        ),
        (
            "map int to long",
            s(r#"{"type":"map","values":"int"}"#),
            s(r#"{"type":"map","values":"long"}"#),
            true,
            false,
        ),
        (
            "map string to bytes",
            s(r#"{"type":"map","values":"string"}"#),
            s(r#"{"type":"map","values":"bytes"}"#),
            true,
            true,
        ),
        (
            "array to map",
            s(r#"{"type":"array","items":"int"}"#),
            s(r#"{"type":"map","values":"int"}"#),
            false,
            false,
        ),
        (
            "array of records, field added without default",
            format!(r#"{{"type":"array","items":{}}}"#, rec(&a_int)),
            format!(
                r#"{{"type":"array","items":{}}}"#,
                rec(&format!("{a_int},{}", field("b", r#""int""#)))
            ),
            false,
            true,
        ),
        (
            "map of records, field removed without default",
            format!(
                r#"{{"type":"map","values":{}}}"#,
                rec(&format!("{a_int},{}", field("b", r#""int""#)))
            ),
            format!(r#"{{"type":"map","values":{}}}"#, rec(&a_int)),
            true,
            false,
        ),
        // unions
        (
            "int to nullable int",
            s(r#""int""#),
            s(r#"["null","int"]"#),
            true,
            false,
        ),
        (
            "nullable int to int",
            s(r#"["null","int"]"#),
            s(r#""int""#),
            false,
            true,
        ),
        (
            "union branch added",
            s(r#"["null","int"]"#),
            s(r#"["null","int","string"]"#),
            true,
            false,
        ),
        (
            "union branch removed",
            s(r#"["null","int","string"]"#),
            s(r#"["null","int"]"#),
            false,
            true,
        ),
        (
            "union reordered",
            s(r#"["int","string"]"#),
            s(r#"["string","int"]"#),
            true,
            true,
        ),
        (
            "union branch promoted",
            s(r#"["null","int"]"#),
            s(r#"["null","long"]"#),
            true,
            false,
        ),
        (
            "union string to bytes",
            s(r#"["null","string"]"#),
            s(r#"["null","bytes"]"#),
            true,
            true,
        ),
        (
            "int into union via promotion",
            s(r#""int""#),
            s(r#"["string","long"]"#),
            true,
            false,
        ),
        (
            "record into nullable record",
            rec(&a_int),
            format!(r#"["null",{}]"#, rec(&a_int)),
            true,
            false,
        ),
        (
            "union field loses null",
            rec(&field("a", r#"["null","int"]"#)),
            rec(&a_int),
            false,
            true,
        ),
        // named references and recursion
        (
            "named type reused by reference",
            rec(&format!(
                "{},{}",
                field("x", &fixed("H", 16)),
                field("y", r#""H""#)
            )),
            rec(&format!(
                "{},{}",
                field("x", &fixed("H", 16)),
                field("y", r#""H""#)
            )),
            true,
            true,
        ),
        (
            "named type size changed through reference",
            rec(&format!(
                "{},{}",
                field("x", &fixed("H", 16)),
                field("y", r#""H""#)
            )),
            rec(&format!(
                "{},{}",
                field("x", &fixed("H", 32)),
                field("y", r#""H""#)
            )),
            false,
            false,
        ),
        (
            "recursive type unchanged",
            list(r#""Node""#, ""),
            list(r#""Node""#, ""),
            true,
            true,
        ),
        (
            "recursive type field added with default",
            list(r#""Node""#, ""),
            list(r#""Node""#, r#",{"name":"w","type":"int","default":1}"#),
            true,
            true,
        ),
        (
            "recursive type field added without default",
            list(r#""Node""#, ""),
            list(r#""Node""#, r#",{"name":"w","type":"int"}"#),
            false,
            true,
        ),
        // logical types compare as their underlying types
        (
            "timestamp-millis to long",
            s(r#"{"type":"long","logicalType":"timestamp-millis"}"#),
            s(r#""long""#),
            true,
            true,
        ),
        (
            "date to long",
            s(r#"{"type":"int","logicalType":"date"}"#),
            s(r#""long""#),
            true,
            false,
        ),
        (
            "decimal bytes to bytes",
            s(r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#),
            s(r#""bytes""#),
            true,
            true,
        ),
        (
            "string to uuid",
            s(r#""string""#),
            s(r#"{"type":"string","logicalType":"uuid"}"#),
            true,
            true,
        ),
    ]
}

const LEVELS: [CompatibilityLevel; 7] = [
    CompatibilityLevel::None,
    CompatibilityLevel::Backward,
    CompatibilityLevel::BackwardTransitive,
    CompatibilityLevel::Forward,
    CompatibilityLevel::ForwardTransitive,
    CompatibilityLevel::Full,
    CompatibilityLevel::FullTransitive,
];

#[test]
fn matrix_has_at_least_sixty_pairs() {
    assert!(matrix().len() >= 60, "{}", matrix().len());
}

#[test]
fn every_pair_at_every_level() {
    let mut failures = Vec::new();
    for (case, old, new, backward, forward) in matrix() {
        let old_parsed = avro(&old);
        let new_parsed = avro(&new);
        let previous = [Previous {
            version: 1,
            schema: &old_parsed,
            text: &old,
        }];
        for level in LEVELS {
            let expected = match level {
                CompatibilityLevel::None => true,
                CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => backward,
                CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => forward,
                CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => {
                    backward && forward
                }
            };
            let messages = check(level, &new_parsed, &previous);
            if messages.is_empty() != expected {
                failures.push(format!(
                    "{case} at {}: expected compatible={expected}, got {messages:?}",
                    level.as_str()
                ));
            }
            if !expected && !messages.is_empty() {
                // The reasons are Confluent's verbose messages, ending with the version checked.
                assert!(
                    messages[0].starts_with("{errorType:'"),
                    "{case}: {messages:?}"
                );
                assert!(
                    messages.iter().any(|m| m == "{oldSchemaVersion: 1}"),
                    "{case}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// (level, three versions oldest first, expected compatible with the latest only, with all).
#[test]
fn transitive_levels_check_every_earlier_version() {
    let a = field("a", r#""int""#);
    let b_default = field_default("b", r#""string""#, r#""x""#);
    let b_required = field("b", r#""string""#);
    let v_a = rec(&a);
    let v_ab_default = rec(&format!("{a},{b_default}"));
    let v_ab_required = rec(&format!("{a},{b_required}"));
    let cases = [
        // v3 requires b: v2 wrote b, v1 did not.
        (
            CompatibilityLevel::Backward,
            [&v_a, &v_ab_default, &v_ab_required],
            true,
        ),
        (
            CompatibilityLevel::BackwardTransitive,
            [&v_a, &v_ab_default, &v_ab_required],
            false,
        ),
        // v3 drops b: v2 readers default it, v1 readers require it.
        (
            CompatibilityLevel::Forward,
            [&v_ab_required, &v_ab_default, &v_a],
            true,
        ),
        (
            CompatibilityLevel::ForwardTransitive,
            [&v_ab_required, &v_ab_default, &v_a],
            false,
        ),
        (
            CompatibilityLevel::Full,
            [&v_a, &v_ab_default, &v_ab_required],
            true,
        ),
        (
            CompatibilityLevel::FullTransitive,
            [&v_a, &v_ab_default, &v_ab_required],
            false,
        ),
        // compatible with all three
        (
            CompatibilityLevel::FullTransitive,
            [&v_a, &v_ab_default, &v_ab_default],
            true,
        ),
        (
            CompatibilityLevel::BackwardTransitive,
            [&v_a, &v_ab_default, &v_ab_default],
            true,
        ),
    ];
    for (level, [v1, v2, v3], expected) in cases {
        let p1 = avro(v1);
        let p2 = avro(v2);
        let new = avro(v3);
        let previous = [
            Previous {
                version: 1,
                schema: &p1,
                text: v1,
            },
            Previous {
                version: 2,
                schema: &p2,
                text: v2,
            },
        ];
        let messages = check(level, &new, &previous);
        assert_eq!(
            messages.is_empty(),
            expected,
            "{}: {messages:?}",
            level.as_str()
        );
        if !expected {
            assert!(
                messages.contains(&"{oldSchemaVersion: 1}".to_string()),
                "{messages:?}"
            );
        }
    }
}

#[test]
fn different_schema_types_are_incompatible() {
    let a = avro(r#""string""#);
    let j = ParsedSchema::parse(SchemaType::Json, r#"{"type":"string"}"#, &[]).unwrap();
    let previous = [Previous {
        version: 1,
        schema: &a,
        text: "\"string\"",
    }];
    let messages = check(CompatibilityLevel::Backward, &j, &previous);
    assert_eq!(messages[0], "Incompatible because of different schema type");
}

#[test]
fn json_schema_rules() {
    let json = |t: &str| ParsedSchema::parse(SchemaType::Json, t, &[]).unwrap();
    // (old, new, backward-compatible)
    let cases = [
        (r#"{"type":"integer"}"#, r#"{"type":"number"}"#, true),
        (r#"{"type":"number"}"#, r#"{"type":"integer"}"#, false),
        (
            r#"{"type":"string"}"#,
            r#"{"type":["string","null"]}"#,
            true,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
            false,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#,
            true,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            false,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            true,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            false,
        ),
        (r#"{"enum":["a","b"]}"#, r#"{"enum":["a","b","c"]}"#, true),
        (r#"{"enum":["a","b"]}"#, r#"{"enum":["a"]}"#, false),
        (
            r#"{"type":"string","maxLength":10}"#,
            r#"{"type":"string","maxLength":5}"#,
            false,
        ),
        (
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":10}"#,
            true,
        ),
        (
            r#"{"type":"array","items":{"type":"integer"}}"#,
            r#"{"type":"array","items":{"type":"number"}}"#,
            true,
        ),
        (
            r#"{"type":"array","items":{"type":"number"}}"#,
            r#"{"type":"array","items":{"type":"string"}}"#,
            false,
        ),
    ];
    for (old, new, expected) in cases {
        let o = json(old);
        let previous = [Previous {
            version: 1,
            schema: &o,
            text: old,
        }];
        let messages = check(CompatibilityLevel::Backward, &json(new), &previous);
        assert_eq!(
            messages.is_empty(),
            expected,
            "{old} -> {new}: {messages:?}"
        );
    }
}
