//! File source → topic → file sink, and resuming from stored offsets after a worker restart.

use anyhow::Result;
use serde_json::{Value, json};

use crate::harness::{TestBroker, TestConnect, append_lines, unique, wait_lines};

fn source_config(file: &std::path::Path, topic: &str) -> Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "file": file.display().to_string(),
        "topic": topic,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    })
}

fn sink_config(file: &std::path::Path, topic: &str) -> Value {
    json!({
        "connector.class": "FileStreamSink",
        "file": file.display().to_string(),
        "topics": topic,
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    })
}

#[tokio::test]
async fn file_to_topic_to_file_resumes_after_restart_without_duplicates() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let offsets = dir.path().join("connect.offsets");
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let topic = unique("lines");
    let first: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    append_lines(&input, first.clone())?;
    let offsets_prop = offsets.display().to_string();
    let worker_props = [("offset.storage.file.filename", offsets_prop.as_str())];

    let mut connect = TestConnect::start(&broker, &worker_props).await?;
    connect.create("src", source_config(&input, &topic)).await?;
    connect.create("sink", sink_config(&output, &topic)).await?;
    let lines = wait_lines(&output, 100).await?;
    assert_eq!(lines, first);
    connect.wait_state("src", "RUNNING").await?;
    let (status, topics) = connect.get("/connectors/src/topics").await?;
    assert_eq!(
        (status, &topics),
        (200, &json!({"src": {"topics": [topic]}}))
    );
    connect.stop().await?;
    assert_eq!(broker.end_offset(&topic).await?, 100);

    // A new worker over the same offsets file and group continues where the first stopped.
    let more: Vec<String> = (100..150).map(|i| format!("line {i}")).collect();
    append_lines(&input, more.clone())?;
    let mut connect = TestConnect::start(&broker, &worker_props).await?;
    let (status, _) = connect.get("/connectors/src").await?;
    assert_eq!(
        status, 404,
        "standalone connectors come from files or REST, not memory"
    );
    connect.create("src", source_config(&input, &topic)).await?;
    connect.create("sink", sink_config(&output, &topic)).await?;
    let lines = wait_lines(&output, 150).await?;
    let expected: Vec<String> = first.iter().chain(&more).cloned().collect();
    assert_eq!(lines, expected);
    broker.wait_end_offset(&topic, 150).await?;
    assert_eq!(
        broker.end_offset(&topic).await?,
        150,
        "the source re-read lines it had produced"
    );
    let (_, offsets_body) = connect.get("/connectors/src/offsets").await?;
    let len = std::fs::metadata(&input)?.len();
    assert_eq!(
        offsets_body,
        json!({"offsets": [{"partition": {"filename": input.display().to_string()}, "offset": {"position": len}}]})
    );
    connect.stop().await?;
    Ok(())
}

#[tokio::test]
async fn json_converter_writes_schema_envelopes() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let topic = unique("json");
    append_lines(&input, ["hello".to_string()])?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    connect
        .create(
            "src",
            json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic}),
        )
        .await?;
    let records = broker.read(&topic, 1).await?;
    let value: Value = serde_json::from_slice(records[0].value.as_deref().unwrap_or_default())?;
    assert_eq!(
        value,
        json!({"schema": {"type": "string", "optional": false}, "payload": "hello"})
    );
    assert_eq!(records[0].key, None);
    connect.stop().await?;
    Ok(())
}
