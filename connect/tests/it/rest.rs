//! Every REST endpoint's status codes and bodies, and Kafka Connect's error shape for bad input.

use anyhow::Result;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{TestBroker, TestConnect, unique};

fn sink(file: &std::path::Path, topic: &str) -> Value {
    json!({"connector.class": "FileStreamSink", "file": file.display().to_string(), "topics": topic, "tasks.max": "2"})
}

fn assert_error(code: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(code, expected, "{body}");
    assert_eq!(body["error_code"], json!(expected), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message {message:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn root_health_and_plugins() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let (code, root) = connect.get("/").await?;
    assert_eq!(code, 200);
    assert!(root["version"].is_string() && root["commit"].is_string());
    assert!(root["kafka_cluster_id"].is_string(), "{root}");
    let (code, health) = connect.get("/health").await?;
    assert_eq!((code, &health["status"]), (200, &json!("healthy")));

    let (code, plugins) = connect.get("/connector-plugins").await?;
    assert_eq!(code, 200);
    let classes: Vec<&str> = plugins
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert!(classes.contains(&"org.apache.kafka.connect.file.FileStreamSourceConnector"));
    assert!(
        plugins
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["type"] == "source" || p["type"] == "sink")
    );
    let (_, all) = connect
        .get("/connector-plugins?connectorsOnly=false")
        .await?;
    let types: Vec<&str> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["type"].as_str())
        .collect();
    for t in ["transformation", "predicate", "converter"] {
        assert!(types.contains(&t), "{t} missing");
    }

    let (code, defs) = connect
        .get("/connector-plugins/FileStreamSource/config")
        .await?;
    assert_eq!(code, 200);
    let file = defs
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == "file")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (file["type"].as_str(), file["required"].as_bool()),
        (Some("STRING"), Some(true))
    );
    let (code, body) = connect.get("/connector-plugins/Nope/config").await?;
    assert_error(code, &body, 404, "Nope");

    // validate: per-field errors.
    let (code, v) = connect
        .call(
            "PUT",
            "/connector-plugins/FileStreamSinkConnector/config/validate",
            Some(json!({"tasks.max": "x", "topics": "t"})),
        )
        .await?;
    assert_eq!(code, 200);
    assert_eq!(
        v["name"],
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    );
    assert!(v["error_count"].as_u64().unwrap_or(0) >= 3, "{v}");
    let errors_of = |name: &str| -> Vec<String> {
        v["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["value"]["name"] == name)
            .and_then(|c| c["value"]["errors"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect()
    };
    assert!(
        errors_of("tasks.max")
            .iter()
            .any(|e| e.contains("tasks.max")),
        "{v}"
    );
    assert!(!errors_of("file").is_empty());
    assert!(!errors_of("name").is_empty());
    assert!(errors_of("topics").is_empty());
    let (code, body) = connect
        .call(
            "PUT",
            "/connector-plugins/Nope/config/validate",
            Some(json!({})),
        )
        .await?;
    assert_error(code, &body, 400, "Nope");
    connect.stop().await?;
    Ok(())
}

#[tokio::test]
async fn connector_crud_and_status_endpoints() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out.txt");
    let topic = unique("crud");
    let mut connect = TestConnect::start(&broker, &[]).await?;

    let (code, list) = connect.get("/connectors").await?;
    assert_eq!((code, list), (200, json!([])));
    let created = connect.create("s", sink(&out, &topic)).await?;
    assert_eq!(created["name"], "s");
    assert_eq!(created["type"], "sink");
    assert_eq!(created["config"]["name"], "s");
    assert_eq!(
        created["tasks"],
        json!([{"connector": "s", "task": 0}, {"connector": "s", "task": 1}])
    );

    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "s", "config": sink(&out, &topic)})),
        )
        .await?;
    assert_error(code, &body, 409, "already exists");

    let (code, info) = connect.get("/connectors/s").await?;
    assert_eq!((code, &info["name"]), (200, &json!("s")));
    let (code, config) = connect.get("/connectors/s/config").await?;
    assert_eq!((code, &config["topics"]), (200, &json!(topic)));
    let status = connect.wait_state("s", "RUNNING").await?;
    assert_eq!(status["type"], "sink");
    assert_eq!(status["tasks"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        status["connector"]["worker_id"],
        json!(connect.addr.to_string())
    );
    let (code, t) = connect.get("/connectors/s/tasks/1/status").await?;
    assert_eq!(
        (code, &t["id"], &t["state"]),
        (200, &json!(1), &json!("RUNNING"))
    );
    let (code, body) = connect.get("/connectors/s/tasks/5/status").await?;
    assert_error(code, &body, 404, "s-5");
    let (code, body) = connect.get("/connectors/s/tasks/x/status").await?;
    assert_eq!((code, &body["error_code"]), (404, &json!(404)));
    let (code, tasks) = connect.get("/connectors/s/tasks").await?;
    assert_eq!(code, 200);
    assert_eq!(tasks[0]["id"], json!({"connector": "s", "task": 0}));
    assert_eq!(tasks[0]["config"]["file"], json!(out.display().to_string()));

    // expand
    let (_, expanded) = connect.get("/connectors?expand=status&expand=info").await?;
    assert_eq!(expanded["s"]["info"]["name"], "s");
    assert_eq!(expanded["s"]["status"]["connector"]["state"], "RUNNING");

    // PUT config: 200 on update, 201 on create; PATCH merges and removes nulls.
    let mut updated = sink(&out, &topic);
    updated["tasks.max"] = json!("1");
    let (code, body) = connect
        .call("PUT", "/connectors/s/config", Some(updated))
        .await?;
    assert_eq!(
        (code, &body["tasks"].as_array().map(Vec::len)),
        (200, &Some(1))
    );
    let (code, _) = connect
        .call("PUT", "/connectors/t/config", Some(sink(&out, &topic)))
        .await?;
    assert_eq!(code, 201);
    let (code, body) = connect
        .call(
            "PATCH",
            "/connectors/t/config",
            Some(json!({"tasks.max": "3", "errors.log.enable": null})),
        )
        .await?;
    assert_eq!((code, &body["config"]["tasks.max"]), (200, &json!("3")));
    let (code, body) = connect
        .call("PATCH", "/connectors/missing/config", Some(json!({})))
        .await?;
    assert_error(code, &body, 404, "Connector missing not found");
    let mut renamed = sink(&out, &topic);
    renamed["name"] = json!("other");
    let (code, body) = connect
        .call("PUT", "/connectors/t/config", Some(renamed))
        .await?;
    assert_error(code, &body, 400, "doesn't match");

    let (code, body) = connect.call("POST", "/connectors/s/restart", None).await?;
    assert_eq!((code, body), (204, Value::Null));
    let (code, body) = connect
        .call("POST", "/connectors/s/restart?includeTasks=true", None)
        .await?;
    assert_eq!(code, 202);
    assert!(body["tasks"].is_array());
    let (code, body) = connect
        .call("POST", "/connectors/s/restart?includeTasks=maybe", None)
        .await?;
    assert_error(code, &body, 400, "includeTasks");

    let (code, _) = connect
        .call("PUT", "/connectors/s/topics/reset", None)
        .await?;
    assert_eq!(code, 200);
    let (code, topics) = connect.get("/connectors/s/topics").await?;
    assert_eq!((code, topics), (200, json!({"s": {"topics": []}})));

    let (code, body) = connect.call("DELETE", "/connectors/s", None).await?;
    assert_eq!((code, body), (204, Value::Null));
    let (code, body) = connect.get("/connectors/s").await?;
    assert_error(code, &body, 404, "Connector s not found");
    let (code, body) = connect.get("/connectors/s/status").await?;
    assert_error(code, &body, 404, "not found");
    let (code, body) = connect.call("DELETE", "/connectors/s", None).await?;
    assert_error(code, &body, 404, "not found");
    let (code, list) = connect.get("/connectors").await?;
    assert_eq!((code, list), (200, json!(["t"])));
    connect.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_kafka_connect_errors() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let (code, body) = connect
        .call_raw("POST", "/connectors", Bytes::from_static(b"{nope"))
        .await?;
    let body: Value = serde_json::from_slice(&body)?;
    assert_error(code, &body, 400, "Invalid JSON");

    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "x", "config": {"connector.class": "com.example.Missing"}})),
        )
        .await?;
    assert_error(code, &body, 400, "com.example.Missing");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x", "config": {"connector.class": "FileStreamSource", "topic": "t"}})))
        .await?;
    assert_error(code, &body, 400, "file");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x", "config": {"connector.class": "FileStreamSink", "file": "/tmp/x", "tasks.max": "zero"}})))
        .await?;
    assert_error(code, &body, 400, "tasks.max");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x", "config": {"connector.class": "FileStreamSink", "file": "/tmp/x"}})))
        .await?;
    assert_error(code, &body, 400, "topics");

    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "x", "config": {
            "connector.class": "FileStreamSink", "file": "/tmp/x", "topics": "t",
            "transforms": "a", "transforms.a.type": "org.apache.kafka.connect.transforms.Nope"}})),
        )
        .await?;
    assert_error(code, &body, 400, "transforms.a.type");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x", "config": {
            "connector.class": "FileStreamSink", "file": "/tmp/x", "topics": "t", "errors.tolerance": "some"}})))
        .await?;
    assert_error(code, &body, 400, "errors.tolerance");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x", "config": {
            "connector.class": "FileStreamSink", "file": "/tmp/x", "topics": "t", "value.converter": "com.example.Conv"}})))
        .await?;
    assert_error(code, &body, 400, "value.converter");

    let (code, body) = connect
        .call("POST", "/connectors", Some(json!({"name": "x"})))
        .await?;
    assert_error(code, &body, 400, "config");

    let (code, body) = connect
        .call(
            "POST",
            "/connectors",
            Some(json!({"name": "x", "config": {"tasks.max": [1]}})),
        )
        .await?;
    assert_error(code, &body, 400, "tasks.max");

    let (code, body) = connect.get("/nowhere").await?;
    assert_error(code, &body, 404, "404");
    let (code, body) = connect.call("DELETE", "/connector-plugins", None).await?;
    assert_error(code, &body, 405, "405");

    let (code, body) = connect
        .call("PUT", "/connectors/missing/pause", None)
        .await?;
    assert_error(code, &body, 404, "Connector missing not found");
    let (code, list) = connect.get("/connectors").await?;
    assert_eq!((code, list), (200, json!([])));
    connect.stop().await?;
    Ok(())
}
