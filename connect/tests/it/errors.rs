//! errors.tolerance: poison records go to the dead-letter queue with context headers when
//! tolerated, and fail the task (not the worker) when not.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestConnect, unique, wait_lines};

fn header<'a>(record: &'a fjord_client::ConsumerRecord, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[tokio::test]
async fn tolerated_poison_records_land_in_the_dlq_with_error_headers() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let output = dir.path().join("out.txt");
    let topic = unique("events");
    let dlq = unique("dlq");
    broker
        .produce(
            &topic,
            &[
                ("k1", r#"{"a":1}"#),
                ("k2", "not json"),
                ("k3", r#"{"a":2}"#),
            ],
        )
        .await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    connect
        .create(
            "sink",
            json!({
                "connector.class": "FileStreamSinkConnector",
                "topics": topic,
                "file": output.display().to_string(),
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "false",
                "errors.tolerance": "all",
                "errors.log.enable": "true",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }),
        )
        .await?;
    let lines = wait_lines(&output, 2).await?;
    assert_eq!(lines, [r#"{"a":1}"#, r#"{"a":2}"#]);
    let dead = broker.read(&dlq, 1).await?;
    let r = &dead[0];
    assert_eq!(r.value.as_deref(), Some(&b"not json"[..]));
    assert_eq!(r.key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(header(r, "__connect.errors.topic"), Some(topic.as_str()));
    assert_eq!(header(r, "__connect.errors.partition"), Some("0"));
    assert_eq!(header(r, "__connect.errors.offset"), Some("1"));
    assert_eq!(header(r, "__connect.errors.connector.name"), Some("sink"));
    assert_eq!(header(r, "__connect.errors.task.id"), Some("0"));
    assert_eq!(header(r, "__connect.errors.stage"), Some("VALUE_CONVERTER"));
    assert_eq!(
        header(r, "__connect.errors.class.name"),
        Some("org.apache.kafka.connect.json.JsonConverter")
    );
    assert_eq!(
        header(r, "__connect.errors.exception.class.name"),
        Some("org.apache.kafka.connect.errors.DataException")
    );
    assert!(
        header(r, "__connect.errors.exception.message")
            .is_some_and(|m| m.contains("serialization error"))
    );
    connect.wait_state("sink", "RUNNING").await?;
    connect.stop().await?;
    Ok(())
}

#[tokio::test]
async fn untolerated_poison_fails_the_task_with_a_trace_and_restart_recovers() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let output = dir.path().join("out.txt");
    let healthy_out = dir.path().join("healthy.txt");
    let topic = unique("poison");
    let healthy = unique("healthy");
    broker.produce(&topic, &[("", "not json")]).await?;
    broker.produce(&healthy, &[("", "\"ok\"")]).await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let config = json!({
        "connector.class": "FileStreamSink",
        "topics": topic,
        "file": output.display().to_string(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    });
    connect.create("bad", config.clone()).await?;
    connect
        .create(
            "good",
            json!({"connector.class": "FileStreamSink", "topics": healthy, "file": healthy_out.display().to_string(),
                   "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                   "value.converter.schemas.enable": "false"}),
        )
        .await?;
    let status = connect
        .wait_status("bad", "task FAILED", |s| s["tasks"][0]["state"] == "FAILED")
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("Tolerance exceeded"), "{trace}");
    assert!(trace.contains("DataException"), "{trace}");
    assert_eq!(status["connector"]["state"], "RUNNING");
    // The worker and the other connector go on.
    assert_eq!(wait_lines(&healthy_out, 1).await?, ["ok"]);
    let (code, task) = connect.get("/connectors/bad/tasks/0/status").await?;
    assert_eq!((code, &task["state"]), (200, &json!("FAILED")));

    // Tolerating errors and restarting the failed task lets it skip the record.
    let mut fixed = config.clone();
    fixed["errors.tolerance"] = json!("all");
    let (code, _) = connect
        .call("PUT", "/connectors/bad/config", Some(fixed))
        .await?;
    assert_eq!(code, 200);
    connect.wait_state("bad", "RUNNING").await?;
    broker.produce(&topic, &[("", "\"after\"")]).await?;
    assert_eq!(wait_lines(&output, 1).await?, ["after"]);

    // restart?includeTasks&onlyFailed answers with the status.
    let (code, body) = connect
        .call(
            "POST",
            "/connectors/bad/restart?includeTasks=true&onlyFailed=true",
            None,
        )
        .await?;
    assert_eq!(code, 202);
    assert_eq!(body["name"], "bad");
    connect.stop().await?;
    Ok(())
}

#[tokio::test]
async fn source_conversion_errors_go_to_the_dlq_beyond_kafka() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let topic = unique("src-dlq");
    let dlq = unique("src-dlq-dead");
    crate::harness::append_lines(&input, ["only".to_string()])?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    // ByteArrayConverter cannot write a string schema: every record fails conversion.
    connect
        .create(
            "src",
            json!({
                "connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic,
                "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }),
        )
        .await?;
    let dead = broker.read(&dlq, 1).await?;
    assert_eq!(dead[0].value.as_deref(), Some(&br#""only""#[..]));
    assert_eq!(
        header(&dead[0], "__connect.errors.stage"),
        Some("VALUE_CONVERTER")
    );
    assert_eq!(
        header(&dead[0], "__connect.errors.topic"),
        Some(topic.as_str())
    );
    connect.wait_state("src", "RUNNING").await?;
    assert_eq!(broker.end_offset(&topic).await?, 0);
    connect.stop().await?;
    Ok(())
}
