use super::*;

fn schema_record(
    subject: &str,
    version: i32,
    id: i32,
    schema: &str,
    deleted: bool,
) -> (Vec<u8>, Vec<u8>) {
    let key = RecordKey::Schema {
        subject: subject.into(),
        version,
    }
    .to_bytes();
    let value = serde_json::to_vec(&SchemaValue {
        subject: subject.into(),
        version,
        id,
        schema_type: SchemaType::Avro,
        references: vec![],
        schema: schema.into(),
        deleted,
    })
    .unwrap();
    (key, value)
}

fn apply(state: &mut State, (key, value): (Vec<u8>, Vec<u8>)) {
    state.apply(&key, Some(&value)).unwrap();
}

#[test]
fn schemas_soft_and_hard_deletes_replay_in_order() {
    let mut state = State::default();
    apply(&mut state, schema_record("a", 1, 1, r#""string""#, false));
    apply(&mut state, schema_record("a", 2, 2, r#""int""#, false));
    apply(&mut state, schema_record("b", 1, 1, r#""string""#, false));
    assert_eq!(state.subjects(false, false), vec!["a", "b"]);
    assert_eq!(
        state.latest("a", false).map(|(v, e)| (v, e.id)),
        Some((2, 2))
    );
    assert_eq!(
        state.versions_of_id(1, false),
        vec![("a".into(), 1), ("b".into(), 1)]
    );

    // Soft delete of version 2, then hard delete (tombstone).
    apply(&mut state, schema_record("a", 2, 2, r#""int""#, true));
    assert_eq!(state.latest("a", false).map(|(v, _)| v), Some(1));
    assert!(
        state.schema_by_id(2).is_some(),
        "soft-deleted schemas are still served by id"
    );
    let key = RecordKey::Schema {
        subject: "a".into(),
        version: 2,
    }
    .to_bytes();
    state.apply(&key, None).unwrap();
    assert!(state.schema_by_id(2).is_none());
    assert_eq!(state.max_version("a"), 1);
    assert_eq!(state.max_id(), 2, "ids are never reused");

    // DELETE_SUBJECT marks every version up to the given one deleted.
    let key = RecordKey::DeleteSubject {
        subject: "b".into(),
    }
    .to_bytes();
    state
        .apply(&key, Some(br#"{"subject":"b","version":1}"#))
        .unwrap();
    assert_eq!(state.subjects(false, false), vec!["a"]);
    assert_eq!(state.subjects(true, false), vec!["a", "b"]);
    assert_eq!(state.subjects(false, true), vec!["b"]);
}

#[test]
fn identical_schemas_share_an_identity_whatever_their_whitespace() {
    let mut state = State::default();
    apply(
        &mut state,
        schema_record(
            "a",
            1,
            5,
            r#"{"type":"record","name":"R","fields":[]}"#,
            false,
        ),
    );
    let parsed = ParsedSchema::parse(
        SchemaType::Avro,
        r#"{ "fields": [], "type": "record", "name": "R" }"#,
        &[],
    )
    .unwrap();
    let identity = Identity {
        schema_type: SchemaType::Avro,
        normalized: parsed.normalized().to_string(),
        references: vec![],
    };
    assert_eq!(state.id_of(&identity), Some(5));
    assert_eq!(
        &state.schema_by_id(5).unwrap().by_id_body[..],
        br#"{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"}"#
    );
}

#[test]
fn config_and_mode_records_set_and_clear() {
    let mut state = State::default();
    assert_eq!(state.compatibility("s"), CompatibilityLevel::Backward);
    let global = RecordKey::Config { subject: None }.to_bytes();
    let subject = RecordKey::Config {
        subject: Some("s".into()),
    }
    .to_bytes();
    state
        .apply(&global, Some(br#"{"compatibilityLevel":"FULL"}"#))
        .unwrap();
    state
        .apply(&subject, Some(br#"{"compatibilityLevel":"NONE"}"#))
        .unwrap();
    assert_eq!(state.compatibility("s"), CompatibilityLevel::None);
    assert_eq!(state.compatibility("t"), CompatibilityLevel::Full);
    state.apply(&subject, None).unwrap();
    assert_eq!(state.compatibility("s"), CompatibilityLevel::Full);

    let mode = RecordKey::Mode {
        subject: Some("s".into()),
    }
    .to_bytes();
    state.apply(&mode, Some(br#"{"mode":"READONLY"}"#)).unwrap();
    assert_eq!(state.mode("s"), Mode::Readonly);
    assert_eq!(state.mode("t"), Mode::Readwrite);
}

#[test]
fn malformed_records_are_skipped_not_fatal() {
    let mut state = State::default();
    assert!(state.apply(b"garbage", Some(b"x")).is_err());
    let key = RecordKey::Schema {
        subject: "a".into(),
        version: 1,
    }
    .to_bytes();
    assert!(state.apply(&key, Some(b"{not json")).is_err());
    assert!(
        state
            .apply(
                &key,
                Some(br#"{"subject":"other","version":1,"id":1,"schema":"\"int\""}"#)
            )
            .is_err()
    );
    // A schema that no longer parses is kept and served, just never compared.
    state
        .apply(
            &key,
            Some(br#"{"subject":"a","version":1,"id":1,"schema":"{bad"}"#),
        )
        .unwrap();
    assert!(state.schema_by_id(1).unwrap().parsed.is_none());
}

#[test]
fn references_resolve_transitively_and_are_tracked() {
    let mut state = State::default();
    apply(
        &mut state,
        schema_record(
            "base",
            1,
            1,
            r#"{"type":"enum","name":"Color","symbols":["RED"]}"#,
            false,
        ),
    );
    let key = RecordKey::Schema {
        subject: "mid".into(),
        version: 1,
    }
    .to_bytes();
    let value = serde_json::to_vec(&SchemaValue {
        subject: "mid".into(),
        version: 1,
        id: 2,
        schema_type: SchemaType::Avro,
        references: vec![SchemaReference {
            name: "Color".into(),
            subject: "base".into(),
            version: 1,
        }],
        schema: r#"{"type":"record","name":"Paint","fields":[{"name":"c","type":"Color"}]}"#.into(),
        deleted: false,
    })
    .unwrap();
    state.apply(&key, Some(&value)).unwrap();
    assert!(state.schema_by_id(2).unwrap().parsed.is_some());
    assert_eq!(state.referenced_by("base", 1), vec![2]);
    let texts = state
        .reference_texts(&[SchemaReference {
            name: "Paint".into(),
            subject: "mid".into(),
            version: 1,
        }])
        .unwrap();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[0].contains("Color") && texts[1].contains("Paint"),
        "dependencies first"
    );
    let missing = state.reference_texts(&[SchemaReference {
        name: "X".into(),
        subject: "nope".into(),
        version: 1,
    }]);
    assert_eq!(missing.unwrap_err().error_code, 42201);
}
