//! Bad input: every malformed request gets a Confluent error, never a 5xx or a crash.

use anyhow::Result;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{MAX_BODY, TestBroker, TestRegistry};

#[tokio::test]
async fn malformed_bodies_and_schemas_get_confluent_errors() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let ct = Some("application/json");
    let (status, body, _) = sr
        .call_raw("POST", "/subjects/s/versions", ct, Bytes::from("{not json"))
        .await?;
    let body: Value = serde_json::from_slice(&body)?;
    assert_eq!((status, body["error_code"].clone()), (400, json!(400)));
    let (status, body, _) = sr
        .call_raw("POST", "/subjects/s/versions", ct, Bytes::from("[1,2]"))
        .await?;
    let body: Value = serde_json::from_slice(&body)?;
    assert_eq!((status, body["error_code"].clone()), (422, json!(422)));

    let cases = [
        (json!({}), "Empty schema"),
        (json!({"schema": ""}), "Empty schema"),
        (json!({"schema": "{"}), "EOF while parsing"),
        (json!({"schema": "{\"type\":\"record\"}"}), "Invalid schema"),
        (
            json!({"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"nope\"}]}"}),
            "nope",
        ),
        (
            json!({"schema": "\"int\"", "schemaType": "XML"}),
            "Invalid schema type XML",
        ),
        (
            json!({"schema": "\"int\"", "schemaType": "PROTOBUF"}),
            "Invalid schema type PROTOBUF",
        ),
        (
            json!({"schema": "{\"type\": 5}", "schemaType": "JSON"}),
            "invalid type",
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = sr.post("/subjects/s/versions", request.clone()).await?;
        assert_eq!(
            (status, body["error_code"].clone()),
            (422, json!(42201)),
            "{request}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{request}: {message}");
    }
    for version in ["0", "-2", "abc", "99999999999", "1.5"] {
        let (status, body) = sr.get(&format!("/subjects/s/versions/{version}")).await?;
        assert_eq!(
            (status, body["error_code"].clone()),
            (422, json!(42202)),
            "{version}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("'{version}'"))
        );
    }
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let big = json!({"schema": format!("\"{}\"", "x".repeat(MAX_BODY))}).to_string();
    let (status, body, _) = sr
        .call_raw(
            "POST",
            "/subjects/s/versions",
            Some("application/json"),
            Bytes::from(big),
        )
        .await?;
    let body: Value = serde_json::from_slice(&body)?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (413, json!(413)),
        "{body}"
    );
    // The registry still serves.
    assert_eq!(sr.get("/subjects").await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn any_content_type_is_read_as_json() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    for ct in [
        None,
        Some("application/json"),
        Some("application/vnd.schemaregistry+json"),
        Some("text/plain"),
    ] {
        let (status, body, content_type) = sr
            .call_raw(
                "POST",
                "/subjects/s/versions",
                ct,
                Bytes::from(r#"{"schema":"\"int\""}"#),
            )
            .await?;
        assert_eq!((status, &body[..]), (200, &br#"{"id":1}"#[..]), "{ct:?}");
        assert_eq!(content_type, "application/vnd.schemaregistry.v1+json");
    }
    Ok(())
}

#[tokio::test]
async fn garbage_never_crashes_the_registry() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    let deep = format!(
        "{}\"int\"{}",
        "{\"type\":\"array\",\"items\":".repeat(200),
        "}".repeat(200)
    );
    let deep_union = format!("{}\"int\"{}", "[".repeat(500), "]".repeat(500));
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00],
        b"null".to_vec(),
        b"{\"schema\": 5}".to_vec(),
        b"{\"schema\": \"\\\"int\\\"\", \"references\": 5}".to_vec(),
        b"{\"schema\": \"\\\"int\\\"\", \"references\": [{\"name\":\"a\",\"subject\":\"nope\",\"version\":-1}]}".to_vec(),
        json!({"schema": deep}).to_string().into_bytes(),
        json!({"schema": deep_union}).to_string().into_bytes(),
        json!({"schema": "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}"}).to_string().into_bytes(),
        json!({"schema": "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}"}).to_string().into_bytes(),
        json!({"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}]}"}).to_string().into_bytes(),
        json!({"schema": "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":-3}"}).to_string().into_bytes(),
    ];
    let paths = [
        ("POST", "/subjects/g/versions"),
        ("POST", "/subjects/g"),
        ("POST", "/compatibility/subjects/g/versions"),
        ("PUT", "/config/g"),
        ("PUT", "/mode/g"),
    ];
    for body in &bodies {
        for (method, path) in paths {
            let (status, answer, _) = sr
                .call_raw(
                    method,
                    path,
                    Some("application/json"),
                    Bytes::from(body.clone()),
                )
                .await?;
            assert!(
                (200..500).contains(&status),
                "{method} {path} {}: {status} {}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&answer)
            );
        }
    }
    assert_eq!(sr.get("/").await?, (200, json!({})));
    Ok(())
}
