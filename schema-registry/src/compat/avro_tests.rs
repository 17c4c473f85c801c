use super::*;

fn parse(text: &str) -> AvroSchema {
    AvroSchema::parse(text, &[]).unwrap()
}

#[test]
fn every_missing_field_is_reported_with_its_path() {
    let writer = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
    let reader = parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"},{"name":"c","type":"int"}]}"#,
    );
    let found = check(&reader, &writer);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0].kind, IncompatibilityKind::TypeMismatch);
    assert_eq!(found[0].location, "/fields/0/type");
    assert_eq!(
        found[0].info,
        "reader type: STRING not compatible with writer type: INT"
    );
    assert_eq!(
        found[1].kind,
        IncompatibilityKind::ReaderFieldMissingDefaultValue
    );
    assert_eq!(found[1].location, "/fields/1");
    assert_eq!(found[1].info, "b");
    assert_eq!(found[2].location, "/fields/2");
    assert_eq!(
        found[1].to_string(),
        "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'b' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'b'}"
    );
}

#[test]
fn enum_symbols_fixed_sizes_and_names_are_reported() {
    let found = check(
        &parse(r#"{"type":"enum","name":"E","symbols":["A"]}"#),
        &parse(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, IncompatibilityKind::MissingEnumSymbols);
    assert_eq!(found[0].location, "/symbols");
    assert_eq!(found[0].info, "[B, C]");

    let found = check(
        &parse(r#"{"type":"fixed","name":"G","size":8}"#),
        &parse(r#"{"type":"fixed","name":"F","size":4}"#),
    );
    let kinds: Vec<_> = found.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        vec![
            IncompatibilityKind::NameMismatch,
            IncompatibilityKind::FixedSizeMismatch
        ]
    );
    assert_eq!(found[0].info, "expected: F");
    assert_eq!(found[1].info, "expected: 4, found: 8");
}

#[test]
fn union_branches_missing_from_the_reader_are_reported_by_index() {
    let found = check(
        &parse(r#"["null","int"]"#),
        &parse(r#"["null","int","string","boolean"]"#),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].kind, IncompatibilityKind::MissingUnionBranch);
    assert_eq!(found[0].location, "/2");
    assert_eq!(found[0].info, "reader union lacking writer type: STRING");
    assert_eq!(found[1].location, "/3");
}

#[test]
fn reader_alias_matches_a_qualified_writer_name() {
    let writer = parse(r#"{"type":"record","name":"Old","namespace":"a.b","fields":[]}"#);
    let reader =
        parse(r#"{"type":"record","name":"New","namespace":"a.b","aliases":["Old"],"fields":[]}"#);
    assert!(check(&reader, &writer).is_empty());
    let reader = parse(
        r#"{"type":"record","name":"New","namespace":"x","aliases":["a.b.Old"],"fields":[]}"#,
    );
    assert!(check(&reader, &writer).is_empty());
}

#[test]
fn mutually_recursive_types_terminate() {
    let a = r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}]}]}"#;
    assert!(check(&parse(a), &parse(a)).is_empty());
}

/// Each level's record is used twice (inline, then by name), so the schema text is linear in
/// its depth but a walk over it is exponential: the comparison budget bounds the work.
#[test]
fn pathological_nesting_is_bounded() {
    fn nested(depth: usize, tag: &str) -> String {
        let mut inner = r#""int""#.to_string();
        for d in 1..=depth {
            let previous = if d == 1 {
                r#""long""#.to_string()
            } else {
                format!(r#""L{tag}{}""#, d - 1)
            };
            inner = format!(
                r#"{{"type":"record","name":"L{tag}{d}","fields":[{{"name":"a","type":["null",{inner}]}},{{"name":"b","type":["null",{previous}]}}]}}"#
            );
        }
        inner
    }
    let reader = parse(&nested(22, ""));
    let writer = parse(&nested(22, ""));
    let started = std::time::Instant::now();
    let found = check(&reader, &writer);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].info.contains("too complex"), "{found:?}");
    // Shallow versions of the same shape are compared in full.
    assert!(check(&parse(&nested(8, "")), &parse(&nested(8, ""))).is_empty());
}
