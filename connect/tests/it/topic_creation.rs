//! `topic.creation.*` (KIP-158): a source connector's topics are created with the matching
//! group's partitions and topic configs; a half-configured connector is refused.

use anyhow::{Result, ensure};
use serde_json::json;

use crate::harness::{TestBroker, TestConnect, append_lines, unique};

#[tokio::test]
async fn source_topics_are_created_with_the_matching_groups_settings() -> Result<()> {
    let broker = TestBroker::start().await?;
    let connect = TestConnect::start(&broker, &[]).await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    append_lines(&input, (0..10).map(|i| format!("l{i}")))?;
    let topic = unique("created-compacted");
    connect
        .create(
            "src",
            json!({
                "connector.class": "FileStreamSource",
                "file": input.display().to_string(),
                "topic": topic,
                "topic.creation.groups": "compacted",
                "topic.creation.default.replication.factor": "1",
                "topic.creation.default.partitions": "1",
                "topic.creation.compacted.include": "created-compacted-.*",
                "topic.creation.compacted.partitions": "3",
                "topic.creation.compacted.cleanup.policy": "compact",
            }),
        )
        .await?;
    let admin = fjord_client::Admin::connect(&broker.bootstrap()).await?;
    let mut described = None;
    for _ in 0..100 {
        if let Ok(d) = admin.describe_topic(&topic).await
            && !d.partitions.is_empty()
        {
            described = Some(d);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let described = described.ok_or_else(|| anyhow::anyhow!("{topic} was never created"))?;
    ensure!(described.partitions.len() == 3, "{described:?}");
    ensure!(
        described
            .overrides
            .get("cleanup.policy")
            .map(String::as_str)
            == Some("compact"),
        "{described:?}"
    );
    connect.wait_state("src", "RUNNING").await?;
    // All 10 lines arrived (spread over the 3 partitions).
    let mut total = 0;
    for _ in 0..100 {
        let tps: Vec<(String, i32)> = (0..3).map(|p| (topic.clone(), p)).collect();
        total = admin
            .list_offsets(&tps, fjord_client::OffsetSpec::Latest)
            .await?
            .values()
            .map(|o| o.unwrap_or(0))
            .sum::<i64>();
        if total == 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(total == 10, "{total} records");
    Ok(())
}

#[tokio::test]
async fn half_configured_topic_creation_is_a_400_naming_the_key() -> Result<()> {
    let broker = TestBroker::start().await?;
    let connect = TestConnect::start(&broker, &[]).await?;
    let (status, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "src", "config": {
                "connector.class": "FileStreamSource", "file": "/tmp/x", "topic": "t",
                "topic.creation.default.partitions": "3",
            }})),
        )
        .await?;
    ensure!(status == 400, "{status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("topic.creation.default.replication.factor"),
        "{message}"
    );
    Ok(())
}
