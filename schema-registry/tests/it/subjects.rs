//! Registration, lookup, versions, deletes and references.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestRegistry, record};

fn user_v1() -> String {
    record("User", r#"{"name":"id","type":"long"}"#)
}

fn user_v2() -> String {
    record(
        "User",
        r#"{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}"#,
    )
}

#[tokio::test]
async fn identical_schemas_share_one_id_across_subjects_and_reregistration() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let id = sr.register("users-value", &user_v1()).await?;
    assert_eq!(id, 1);
    assert_eq!(
        sr.register("users-value", &user_v1()).await?,
        id,
        "re-registering answers the same id"
    );
    // Same schema with other whitespace, under another subject: still one global id.
    let spaced = user_v1().replace(',', " , ");
    assert_eq!(sr.register("audit-value", &spaced).await?, id);
    assert_eq!(
        sr.get("/subjects/users-value/versions").await?,
        (200, json!([1]))
    );
    assert_eq!(
        sr.get("/subjects/audit-value/versions").await?,
        (200, json!([1]))
    );
    let v2 = sr.register("users-value", &user_v2()).await?;
    assert_eq!(v2, 2);
    assert_eq!(
        sr.get("/subjects").await?,
        (200, json!(["audit-value", "users-value"]))
    );
    assert_eq!(
        sr.get("/subjects?subjectPrefix=us").await?,
        (200, json!(["users-value"]))
    );

    let (status, latest) = sr.get("/subjects/users-value/versions/latest").await?;
    assert_eq!(status, 200);
    assert_eq!(
        latest,
        json!({"subject": "users-value", "version": 2, "id": 2, "schema": user_v2()})
    );
    assert_eq!(sr.get("/subjects/users-value/versions/1").await?.1["id"], 1);
    assert_eq!(
        sr.get("/subjects/users-value/versions/-1").await?.1["version"],
        2
    );
    let (status, raw, ct) = sr
        .call_raw(
            "GET",
            "/subjects/users-value/versions/1/schema",
            None,
            Default::default(),
        )
        .await?;
    assert_eq!(
        (status, &raw[..], ct.as_str()),
        (
            200,
            user_v1().as_bytes(),
            "application/vnd.schemaregistry.v1+json"
        )
    );
    Ok(())
}

#[tokio::test]
async fn lookup_finds_the_version_holding_a_schema() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    sr.register("s", &user_v1()).await?;
    sr.register("s", &user_v2()).await?;
    // Attribute order and whitespace do not matter to a lookup.
    let reordered =
        r#"{ "fields": [ {"type": "long", "name": "id"} ], "name": "User", "type": "record" }"#;
    let (status, body) = sr.post("/subjects/s", json!({"schema": reordered})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["subject"].clone(),
            body["version"].clone(),
            body["id"].clone()
        ),
        (json!("s"), json!(1), json!(1))
    );
    assert_eq!(body["schema"], json!(user_v1()));
    let (status, body) = sr
        .post("/subjects/s", json!({"schema": record("Other", "")}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40403)));
    assert_eq!(body["message"], "Schema not found");
    // Answers are cached until the store changes: a delete must show at once.
    for _ in 0..2 {
        let (status, body) = sr.post("/subjects/s", json!({"schema": user_v1()})).await?;
        assert_eq!((status, body["version"].clone()), (200, json!(1)));
    }
    sr.delete("/subjects/s").await?;
    let (status, body) = sr.post("/subjects/s", json!({"schema": user_v1()})).await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (404, json!(40401)),
        "soft-deleted"
    );
    let (status, body) = sr
        .post("/subjects/s?deleted=true", json!({"schema": user_v1()}))
        .await?;
    assert_eq!((status, body["version"].clone()), (200, json!(1)));
    let (status, body) = sr
        .post("/subjects/nope", json!({"schema": user_v1()}))
        .await?;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error_code": 40401, "message": "Subject 'nope' not found."})
        )
    );
    Ok(())
}

#[tokio::test]
async fn soft_then_hard_deletes_follow_confluents_rules() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    sr.register("s", &user_v1()).await?;
    sr.register("s", &user_v2()).await?;
    // Hard delete needs a soft delete first.
    let (status, body) = sr.delete("/subjects/s/versions/1?permanent=true").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40407)));
    assert_eq!(sr.delete("/subjects/s/versions/1").await?, (200, json!(1)));
    let (status, body) = sr.delete("/subjects/s/versions/1").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40406)));
    assert_eq!(sr.get("/subjects/s/versions").await?, (200, json!([2])));
    assert_eq!(
        sr.get("/subjects/s/versions?deleted=true").await?,
        (200, json!([1, 2]))
    );
    assert_eq!(
        sr.get("/subjects/s/versions?deletedOnly=true").await?,
        (200, json!([1]))
    );
    assert_eq!(
        sr.get("/subjects/s/versions/1").await?.1["error_code"],
        40402
    );
    assert_eq!(
        sr.get("/subjects/s/versions/1?deleted=true").await?.1["version"],
        1
    );
    assert_eq!(
        sr.get("/schemas/ids/1").await?.0,
        200,
        "a soft-deleted schema is still served by id"
    );
    assert_eq!(
        sr.delete("/subjects/s/versions/1?permanent=true").await?,
        (200, json!(1))
    );
    assert_eq!(sr.get("/schemas/ids/1").await?.1["error_code"], 40403);

    // Subject: soft delete, then permanent.
    let (status, body) = sr.delete("/subjects/s?permanent=true").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40405)));
    assert_eq!(sr.delete("/subjects/s").await?, (200, json!([2])));
    assert_eq!(sr.get("/subjects").await?, (200, json!([])));
    assert_eq!(sr.get("/subjects?deleted=true").await?, (200, json!(["s"])));
    let (status, body) = sr.delete("/subjects/s").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40404)));
    let (status, body) = sr.get("/subjects/s/versions").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
    sr.put("/config/s", json!({"compatibility": "NONE"}))
        .await?;
    assert_eq!(
        sr.delete("/subjects/s?permanent=true").await?,
        (200, json!([2]))
    );
    let (_, body) = sr.get("/config/s").await?;
    assert_eq!(body["error_code"], 40408, "the subject's config goes too");
    assert_eq!(sr.get("/subjects?deleted=true").await?, (200, json!([])));
    // A new registration after deletes continues the version numbers... from scratch once hard
    // deleted, and never reuses an id.
    assert_eq!(sr.register("s", &record("Fresh", "")).await?, 3);
    assert_eq!(sr.get("/subjects/s/versions").await?, (200, json!([1])));
    let (status, body) = sr.delete("/subjects/missing").await?;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
    Ok(())
}

#[tokio::test]
async fn references_resolve_transitively_and_block_deletes() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let color = r#"{"type":"enum","name":"Color","namespace":"acme","symbols":["RED","GREEN"]}"#;
    sr.register("color", color).await?;
    let paint = r#"{"type":"record","name":"Paint","namespace":"acme","fields":[{"name":"c","type":"Color"}]}"#;
    let (status, body) = sr
        .post(
            "/subjects/paint/versions",
            json!({"schema": paint, "references": [{"name": "acme.Color", "subject": "color", "version": 1}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let paint_id = body["id"].clone();
    // Two levels: a record referencing Paint, which references Color.
    let can = r#"{"type":"record","name":"Can","namespace":"acme","fields":[{"name":"p","type":"Paint"}]}"#;
    let (status, body) = sr
        .post(
            "/subjects/can/versions",
            json!({"schema": can, "references": [{"name": "acme.Paint", "subject": "paint", "version": 1}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (_, version) = sr.get("/subjects/paint/versions/1").await?;
    assert_eq!(
        version["references"],
        json!([{"name": "acme.Color", "subject": "color", "version": 1}])
    );
    assert_eq!(
        sr.get(&format!("/schemas/ids/{paint_id}")).await?.1["references"][0]["subject"],
        "color"
    );
    assert_eq!(
        sr.get("/subjects/color/versions/1/referencedby").await?,
        (200, json!([paint_id]))
    );
    // Without the reference the schema does not parse.
    let (status, body) = sr
        .post("/subjects/other/versions", json!({"schema": paint}))
        .await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    // A referenced version can be neither soft- nor hard-deleted.
    let (status, body) = sr.delete("/subjects/color/versions/1").await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!(42206)),
        "{body}"
    );
    let (status, body) = sr.delete("/subjects/color").await?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42206)));
    let (status, body) = sr
        .post(
            "/subjects/x/versions",
            json!({"schema": paint, "references": [{"name": "acme.Color", "subject": "color", "version": 9}]}),
        )
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!(42201)),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn normalize_stores_the_normalized_form() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let messy = r#"{ "fields": [ {"type": "int", "name": "a", "default": 1} ], "name": "N", "type": "record" }"#;
    let (status, body) = sr
        .post(
            "/subjects/n/versions?normalize=true",
            json!({"schema": messy}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (_, stored) = sr.get("/subjects/n/versions/1").await?;
    let text = stored["schema"].as_str().unwrap_or_default();
    assert!(text.starts_with(r#"{"type":"record","name":"N""#), "{text}");
    assert!(text.contains(r#""default":1"#), "defaults are kept: {text}");
    assert!(!text.contains(' '), "{text}");
    Ok(())
}

#[tokio::test]
async fn json_schemas_register_and_evolve() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let v1 =
        r#"{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}"#;
    let (status, body) = sr
        .post(
            "/subjects/j/versions",
            json!({"schema": v1, "schemaType": "JSON"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (_, fetched) = sr.get(&format!("/schemas/ids/{}", body["id"])).await?;
    assert_eq!(fetched["schemaType"], "JSON");
    let widened =
        r#"{"type":"object","properties":{"a":{"type":"number"}},"additionalProperties":false}"#;
    assert_eq!(
        sr.post(
            "/subjects/j/versions",
            json!({"schema": widened, "schemaType": "JSON"})
        )
        .await?
        .0,
        200
    );
    let narrowed =
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
    let (status, body) = sr
        .post(
            "/subjects/j/versions",
            json!({"schema": narrowed, "schemaType": "JSON"}),
        )
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (409, json!(409)),
        "{body}"
    );
    // Another schema type in the same subject is incompatible.
    let (status, body) = sr
        .post("/subjects/j/versions", json!({"schema": "\"string\""}))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("different schema type")
    );
    Ok(())
}
