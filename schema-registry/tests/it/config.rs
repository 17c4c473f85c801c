//! `/config`, `/mode` and `/compatibility`.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestRegistry, record};

#[tokio::test]
async fn global_and_subject_compatibility_levels() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    assert_eq!(
        sr.get("/config").await?,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        sr.put("/config", json!({"compatibility": "full"})).await?,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        sr.get("/config").await?,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let (status, body) = sr
        .put("/config", json!({"compatibility": "SIDEWAYS"}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42203)));

    assert_eq!(sr.get("/config/s").await?.1["error_code"], 40408);
    assert_eq!(
        sr.get("/config/s?defaultToGlobal=true").await?,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        sr.put("/config/s", json!({"compatibility": "NONE"}))
            .await?,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        sr.get("/config/s").await?,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    // NONE on the subject lets anything through.
    sr.register("s", &record("R", r#"{"name":"a","type":"int"}"#))
        .await?;
    sr.register("s", &record("R", r#"{"name":"a","type":"string"}"#))
        .await?;
    assert_eq!(
        sr.delete("/config/s").await?,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(sr.get("/config/s").await?.1["error_code"], 40408);
    assert_eq!(
        sr.delete("/config").await?,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        sr.get("/config").await?,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    Ok(())
}

#[tokio::test]
async fn compatibility_tests_explain_each_problem_when_verbose() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    // A subject without versions accepts anything.
    let v1 = record("R", r#"{"name":"a","type":"int"}"#);
    assert_eq!(
        sr.post("/compatibility/subjects/s/versions", json!({"schema": v1}))
            .await?,
        (200, json!({"is_compatible": true}))
    );
    let (status, body) = sr
        .post(
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": v1}),
        )
        .await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
    sr.register("s", &v1).await?;
    let bad = record(
        "R",
        r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#,
    );
    let (status, body) = sr
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            json!({"schema": bad}),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], false);
    let messages: Vec<&str> = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(
        messages[0].contains("TYPE_MISMATCH") && messages[0].contains("/fields/0/type"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("READER_FIELD_MISSING_DEFAULT_VALUE") && messages[1].contains("'b'"),
        "{messages:?}"
    );
    assert!(messages.contains(&"{oldSchemaVersion: 1}"), "{messages:?}");
    assert_eq!(
        sr.post(
            "/compatibility/subjects/s/versions/1",
            json!({"schema": bad})
        )
        .await?,
        (200, json!({"is_compatible": false}))
    );
    let (status, body) = sr
        .post(
            "/compatibility/subjects/s/versions/7",
            json!({"schema": bad}),
        )
        .await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40402)));
    let (status, body) = sr
        .post(
            "/compatibility/subjects/s/versions/x",
            json!({"schema": bad}),
        )
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42202)));

    // Registration refuses the same schema with 409 and the reasons.
    let (status, body) = sr
        .post("/subjects/s/versions", json!({"schema": bad}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (409, json!(409)));
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "Schema being registered is incompatible with an earlier schema for subject \"s\""
        ),
        "{message}"
    );
    assert!(
        message.contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn transitive_levels_check_all_versions_through_the_api() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let a = r#"{"name":"a","type":"int"}"#;
    sr.register("t", &record("R", a)).await?;
    sr.register(
        "t",
        &record(
            "R",
            &format!(r#"{a},{{"name":"b","type":"string","default":"x"}}"#),
        ),
    )
    .await?;
    let v3 = record("R", &format!(r#"{a},{{"name":"b","type":"string"}}"#));
    // BACKWARD (latest only) accepts v3; BACKWARD_TRANSITIVE refuses it because of v1.
    assert_eq!(
        sr.post("/compatibility/subjects/t/versions", json!({"schema": v3}))
            .await?
            .1["is_compatible"],
        true
    );
    sr.put("/config/t", json!({"compatibility": "BACKWARD_TRANSITIVE"}))
        .await?;
    let (_, body) = sr
        .post(
            "/compatibility/subjects/t/versions?verbose=true",
            json!({"schema": v3}),
        )
        .await?;
    assert_eq!(body["is_compatible"], false);
    assert!(
        body["messages"].to_string().contains("oldSchemaVersion: 1"),
        "{body}"
    );
    assert_eq!(
        sr.post("/subjects/t/versions", json!({"schema": v3}))
            .await?
            .0,
        409
    );
    Ok(())
}

#[tokio::test]
async fn modes_gate_writes_and_import_takes_explicit_ids() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    assert_eq!(sr.get("/mode").await?, (200, json!({"mode": "READWRITE"})));
    assert_eq!(sr.get("/mode/s").await?.1["error_code"], 40409);
    assert_eq!(
        sr.get("/mode/s?defaultToGlobal=true").await?,
        (200, json!({"mode": "READWRITE"}))
    );
    let (status, body) = sr.put("/mode", json!({"mode": "WRITEONLY"})).await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42204)));

    // Global READONLY blocks every subject; DELETE of an unset subject mode is 40409.
    assert_eq!(
        sr.put("/mode", json!({"mode": "READONLY"})).await?,
        (200, json!({"mode": "READONLY"}))
    );
    let (status, body) = sr
        .post("/subjects/x/versions", json!({"schema": "\"int\""}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42205)));
    assert_eq!(
        sr.get("/mode/x?defaultToGlobal=true").await?,
        (200, json!({"mode": "READONLY"}))
    );
    assert_eq!(sr.put("/mode", json!({"mode": "READWRITE"})).await?.0, 200);
    assert_eq!(sr.delete("/mode/x").await?.1["error_code"], 40409);
    assert_eq!(
        sr.put("/mode/s", json!({"mode": "READONLY"})).await?,
        (200, json!({"mode": "READONLY"}))
    );
    let (status, body) = sr
        .post("/subjects/s/versions", json!({"schema": "\"int\""}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42205)));
    assert_eq!(
        sr.delete("/mode/s").await?,
        (200, json!({"mode": "READONLY"}))
    );
    sr.register("s", "\"int\"").await?;

    // IMPORT needs an empty subject (or force) and keeps the given id and version.
    let (status, body) = sr.put("/mode/s", json!({"mode": "IMPORT"})).await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42205)));
    assert_eq!(
        sr.put("/mode/imported", json!({"mode": "IMPORT"})).await?.0,
        200
    );
    let (status, body) = sr
        .post(
            "/subjects/imported/versions",
            json!({"schema": "\"string\"", "id": 100, "version": 7}),
        )
        .await?;
    assert_eq!((status, body.clone()), (200, json!({"id": 100})), "{body}");
    assert_eq!(
        sr.get("/subjects/imported/versions").await?,
        (200, json!([7]))
    );
    assert_eq!(
        sr.get("/schemas/ids/100").await?,
        (200, json!({"schema": "\"string\""}))
    );
    // An id already holding another schema cannot be taken.
    let (status, body) = sr
        .post(
            "/subjects/imported/versions",
            json!({"schema": "\"bytes\"", "id": 100}),
        )
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!(42207)),
        "{body}"
    );
    // Outside IMPORT an explicit id that is not the schema's own is refused.
    let (status, body) = sr
        .post(
            "/subjects/s/versions",
            json!({"schema": "\"long\"", "id": 500}),
        )
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42205)));
    // New ids continue after the imported one.
    assert_eq!(sr.register("s2", "\"boolean\"").await?, 101);
    Ok(())
}
