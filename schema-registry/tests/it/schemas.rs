//! `/`, `/schemas` and `/schemas/ids/{id}` endpoints.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestRegistry, record};

#[tokio::test]
async fn schema_ids_answer_schema_subjects_and_versions() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    assert_eq!(sr.get("/").await?, (200, json!({})));
    assert_eq!(
        sr.get("/schemas/types").await?,
        (200, json!(["JSON", "AVRO"]))
    );
    assert_eq!(sr.get("/schemas").await?, (200, json!([])));
    let a = record("A", r#"{"name":"x","type":"int"}"#);
    let b = record("B", "");
    sr.register("one", &a).await?;
    sr.register("two", &a).await?;
    sr.put("/config/two", json!({"compatibility": "NONE"}))
        .await?;
    sr.register("two", &b).await?;

    let (status, body, content_type) = sr
        .call_raw("GET", "/schemas/ids/1", None, Default::default())
        .await?;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/vnd.schemaregistry.v1+json");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body)?,
        json!({"schema": a})
    );
    let (_, raw, _) = sr
        .call_raw("GET", "/schemas/ids/1/schema", None, Default::default())
        .await?;
    assert_eq!(&raw[..], a.as_bytes());
    assert_eq!(
        sr.get("/schemas/ids/1/subjects").await?,
        (200, json!(["one", "two"]))
    );
    assert_eq!(
        sr.get("/schemas/ids/1/versions").await?,
        (
            200,
            json!([{"subject": "one", "version": 1}, {"subject": "two", "version": 1}])
        )
    );
    for path in [
        "/schemas/ids/3",
        "/schemas/ids/3/schema",
        "/schemas/ids/3/subjects",
        "/schemas/ids/3/versions",
    ] {
        assert_eq!(
            sr.get(path).await?,
            (
                404,
                json!({"error_code": 40403, "message": "Schema 3 not found"})
            ),
            "{path}"
        );
    }
    assert_eq!(sr.get("/schemas/ids/abc").await?.1["error_code"], 40403);

    let (_, all) = sr.get("/schemas").await?;
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    let (_, latest) = sr.get("/schemas?subjectPrefix=tw&latestOnly=true").await?;
    assert_eq!(
        latest,
        json!([{"subject": "two", "version": 2, "id": 2, "schema": b}])
    );
    assert_eq!(
        sr.get("/subjects?offset=1&limit=1").await?,
        (200, json!(["two"]))
    );
    assert_eq!(
        sr.get("/subjects/two/versions?offset=1&limit=-1").await?,
        (200, json!([2]))
    );
    assert_eq!(
        sr.get("/schemas/ids/1/subjects?limit=1").await?,
        (200, json!(["one"]))
    );
    let (_, page) = sr.get("/schemas?offset=1&limit=1").await?;
    assert_eq!(page[0]["subject"], "two");
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn unknown_paths_are_404_with_an_error_body() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let (status, body) = sr.get("/nope").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(404)));
    Ok(())
}
