//! Pause, resume, stop, offsets reset and task restarts as in Kafka Connect.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestBroker, TestConnect, append_lines, unique};

#[tokio::test]
async fn pause_resume_stop_and_offsets_reset() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let offsets = dir.path().join("connect.offsets");
    let topic = unique("life");
    append_lines(&input, (0..10).map(|i| format!("a{i}")))?;
    let offsets_prop = offsets.display().to_string();
    let mut connect = TestConnect::start(
        &broker,
        &[("offset.storage.file.filename", offsets_prop.as_str())],
    )
    .await?;
    connect
        .create(
            "src",
            json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic,
                   "value.converter": "org.apache.kafka.connect.storage.StringConverter"}),
        )
        .await?;
    broker.wait_end_offset(&topic, 10).await?;

    // Paused: the task stays, reports PAUSED and produces nothing.
    let (code, _) = connect.call("PUT", "/connectors/src/pause", None).await?;
    assert_eq!(code, 202);
    connect.wait_state("src", "PAUSED").await?;
    append_lines(&input, (10..20).map(|i| format!("a{i}")))?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        broker.end_offset(&topic).await?,
        10,
        "a paused source produced"
    );

    let (code, _) = connect.call("PUT", "/connectors/src/resume", None).await?;
    assert_eq!(code, 202);
    connect.wait_state("src", "RUNNING").await?;
    broker.wait_end_offset(&topic, 20).await?;

    // Offsets can only change while STOPPED.
    let (code, body) = connect
        .call("DELETE", "/connectors/src/offsets", None)
        .await?;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("STOPPED"),
        "{body}"
    );

    let (code, _) = connect.call("PUT", "/connectors/src/stop", None).await?;
    assert_eq!(code, 204);
    let status = connect
        .wait_status("src", "STOPPED", |s| s["connector"]["state"] == "STOPPED")
        .await?;
    assert_eq!(status["tasks"], json!([]));
    let (_, tasks) = connect.get("/connectors/src/tasks").await?;
    assert_eq!(tasks, json!([]));

    // Rewind to byte 0 of line a15: "a0\n".."a9\n" are 3 bytes each, "a10\n".. 4 bytes.
    let position = 30 + 5 * 4;
    let patch = json!({"offsets": [{"partition": {"filename": input.display().to_string()}, "offset": {"position": position}}]});
    let (code, body) = connect
        .call("PATCH", "/connectors/src/offsets", Some(patch))
        .await?;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message": "The offsets for this connector have been altered successfully"})
        )
    );
    let (_, got) = connect.get("/connectors/src/offsets").await?;
    assert_eq!(got["offsets"][0]["offset"]["position"], json!(position));
    let (code, _) = connect.call("PUT", "/connectors/src/resume", None).await?;
    assert_eq!(code, 202);
    connect.wait_state("src", "RUNNING").await?;
    // a15..a19 again.
    broker.wait_end_offset(&topic, 25).await?;
    let records = broker.read(&topic, 25).await?;
    assert_eq!(records[20].value.as_deref(), Some(&b"a15"[..]));

    // Reset: everything again from the start.
    connect.call("PUT", "/connectors/src/stop", None).await?;
    connect
        .wait_status("src", "STOPPED", |s| s["connector"]["state"] == "STOPPED")
        .await?;
    let (code, body) = connect
        .call("DELETE", "/connectors/src/offsets", None)
        .await?;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message": "The offsets for this connector have been reset successfully"})
        )
    );
    connect.call("PUT", "/connectors/src/resume", None).await?;
    broker.wait_end_offset(&topic, 45).await?;

    // Task restart keeps the connector running.
    let (code, _) = connect
        .call("POST", "/connectors/src/tasks/0/restart", None)
        .await?;
    assert_eq!(code, 204);
    connect.wait_state("src", "RUNNING").await?;
    let (code, _) = connect
        .call("POST", "/connectors/src/tasks/7/restart", None)
        .await?;
    assert_eq!(code, 404);
    connect.stop().await?;
    Ok(())
}
