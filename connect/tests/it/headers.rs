//! `header.converter`: headers made by transforms are Connect data, written by the header
//! converter (SimpleHeaderConverter by default, as Kafka's `Values.convertToString`).

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::harness::{TestBroker, TestConnect, append_lines, unique};

fn header<'a>(r: &'a fjord_client::ConsumerRecord, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
}

#[tokio::test]
async fn transform_headers_are_written_by_the_header_converter() -> Result<()> {
    let broker = TestBroker::start().await?;
    let connect = TestConnect::start(&broker, &[]).await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    append_lines(&input, ["first".to_string()])?;
    let topic = unique("headers");
    let config = |topic: &str, header_converter: Option<&str>| {
        let mut c = json!({
            "connector.class": "FileStreamSource",
            "file": input.display().to_string(),
            "topic": topic,
            "transforms": "hoist,copy,n",
            "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line",
            "transforms.copy.type": "org.apache.kafka.connect.transforms.HeaderFrom$Value",
            "transforms.copy.fields": "line",
            "transforms.copy.headers": "copied",
            "transforms.copy.operation": "copy",
            "transforms.n.type": "org.apache.kafka.connect.transforms.InsertHeader",
            "transforms.n.header": "n",
            "transforms.n.value.literal": "1.50",
        });
        if let Some(h) = header_converter {
            c["header.converter"] = json!(h);
        }
        c
    };
    connect.create("src", config(&topic, None)).await?;
    let records = broker.read(&topic, 1).await?;
    ensure!(
        header(&records[0], "copied") == Some(&b"first"[..]),
        "{:?}",
        records[0].headers
    );
    // The literal is parsed (a float64) and written back as Kafka writes it.
    ensure!(
        header(&records[0], "n") == Some(&b"1.5"[..]),
        "{:?}",
        records[0].headers
    );

    // ByteArrayConverter cannot write a float header: the task fails at HEADER_CONVERTER.
    let other = unique("headers-bytes");
    connect
        .create(
            "bytes",
            config(
                &other,
                Some("org.apache.kafka.connect.converters.ByteArrayConverter"),
            ),
        )
        .await?;
    let status = connect
        .wait_status("bytes", "FAILED", |s| s["tasks"][0]["state"] == "FAILED")
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().context("trace")?;
    ensure!(trace.contains("ByteArrayConverter"), "{trace}");

    // An unknown header converter is a 400 naming the key.
    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "bad", "config": config("x", Some("com.example.Nope"))})),
        )
        .await?;
    ensure!(code == 400, "{code} {body}");
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("header.converter")),
        "{body}"
    );
    Ok(())
}
