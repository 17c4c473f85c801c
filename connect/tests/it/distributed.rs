//! Distributed mode: two in-process workers of one group against an in-process broker. Configs,
//! statuses and offsets in the internal topics, writes forwarded to the leader, tasks spread
//! over the workers and moved when one leaves, 409 while the group rebalances.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use fjord_client::{Consumer, ConsumerConfig, GroupMember, OffsetReset};
use serde_json::{Value, json};

use crate::harness::{TestBroker, TestConnect, WAIT, append_lines, unique, wait_for};

fn source(file: &std::path::Path, topic: &str) -> Value {
    json!({
        "connector.class": "FileStreamSource",
        "file": file.display().to_string(),
        "topic": topic,
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    })
}

/// Every record of an internal topic: (key, value) as text.
async fn read_topic(broker: &TestBroker, topic: &str) -> Result<Vec<(String, Option<String>)>> {
    let admin = fjord_client::Admin::connect(&broker.bootstrap()).await?;
    let partitions = admin.partitions(topic).await?;
    let tps: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_string(), *p)).collect();
    let ends = admin
        .list_offsets(&tps, fjord_client::OffsetSpec::Latest)
        .await?;
    let config = ConsumerConfig::new(broker.bootstrap()).auto_offset_reset(OffsetReset::Earliest);
    let mut consumer = Consumer::new(config).await?;
    consumer.assign(tps.clone())?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let at_end = |c: &Consumer| {
        tps.iter().all(|tp| {
            let end = ends.get(tp).copied().flatten().unwrap_or(0);
            end == 0 || c.position(tp).is_some_and(|p| p >= end)
        })
    };
    while !at_end(&consumer) && tokio::time::Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(300)).await? {
            let text =
                |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            out.push((text(&r.key).unwrap_or_default(), text(&r.value)));
        }
    }
    Ok(out)
}

/// Waits until `worker` answers `GET path` with `check` true.
async fn wait_get(
    worker: &TestConnect,
    path: &str,
    what: &str,
    check: impl Fn(u16, &Value) -> bool,
) -> Result<Value> {
    let mut last = Value::Null;
    let check = &check;
    wait_for(
        what,
        || async move {
            let (status, body) = worker.get(path).await?;
            Ok((check(status, &body), body))
        },
        &mut last,
    )
    .await
    .with_context(|| format!("last answer: {last}"))?;
    Ok(last)
}

fn running_on(status: &Value) -> Option<String> {
    let task = &status["tasks"][0];
    (status["connector"]["state"] == "RUNNING" && task["state"] == "RUNNING")
        .then(|| task["worker_id"].as_str().map(str::to_string))
        .flatten()
}

#[tokio::test]
async fn two_workers_share_connectors_and_followers_forward_writes() -> Result<()> {
    let broker = TestBroker::start().await?;
    let group = unique("dist");
    let a = TestConnect::start_distributed(&broker, &group, &[]).await?;
    let b = TestConnect::start_distributed(&broker, &group, &[]).await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let topic = unique("dist-lines");
    append_lines(&input, (0..50).map(|i| format!("line {i}")))?;

    // Created through the second worker (forwarded when it is not the leader).
    let (status, created) = b
        .call_settled(
            "POST",
            "/connectors",
            Some(json!({"name": "src", "config": source(&input, &topic)})),
        )
        .await?;
    ensure!(status == 201, "{status} {created}");
    ensure!(
        created["name"] == "src" && created["type"] == "source",
        "{created}"
    );
    let (status, dup) = a
        .call_settled(
            "POST",
            "/connectors",
            Some(json!({"name": "src", "config": source(&input, &topic)})),
        )
        .await?;
    ensure!(
        status == 409
            && dup == json!({"error_code": 409, "message": "Connector src already exists"}),
        "{status} {dup}"
    );
    for w in [&a, &b] {
        wait_get(w, "/connectors", "the connector on every worker", |s, v| {
            s == 200 && *v == json!(["src"])
        })
        .await?;
        let status = wait_get(w, "/connectors/src/status", "src RUNNING", |s, v| {
            s == 200 && running_on(v).is_some()
        })
        .await?;
        ensure!(status["type"] == "source", "{status}");
        wait_get(w, "/connectors/src/tasks", "src's task config", |s, v| {
            s == 200 && v[0]["id"] == json!({"connector": "src", "task": 0})
        })
        .await?;
    }
    broker.wait_end_offset(&topic, 50).await?;

    // Kafka Connect's records in the internal topics.
    let configs = read_topic(&broker, &format!("{group}-configs")).await?;
    let keys: BTreeSet<&str> = configs.iter().map(|(k, _)| k.as_str()).collect();
    for key in ["connector-src", "task-src-0", "commit-src"] {
        ensure!(keys.contains(key), "{key} missing from {keys:?}");
    }
    let connector: Value = serde_json::from_str(
        configs
            .iter()
            .find(|(k, _)| k == "connector-src")
            .and_then(|(_, v)| v.as_deref())
            .context("connector-src value")?,
    )?;
    ensure!(
        connector["properties"]["topic"] == json!(topic),
        "{connector}"
    );
    let mut last = Vec::new();
    wait_for(
        "the source offset in the offsets topic",
        || async {
            let records = read_topic(&broker, &format!("{group}-offsets")).await?;
            let want_key = json!(["src", {"filename": input.display().to_string()}]).to_string();
            let done = records.iter().any(|(k, v)| {
                *k == want_key && v.as_deref().is_some_and(|v| v.contains("\"position\""))
            });
            Ok((done, records))
        },
        &mut last,
    )
    .await
    .with_context(|| format!("offsets topic: {last:?}"))?;
    let statuses = read_topic(&broker, &format!("{group}-status")).await?;
    ensure!(
        statuses.iter().any(|(k, v)| k == "status-task-src-0"
            && v.as_deref().is_some_and(|v| v.contains("\"RUNNING\""))),
        "{statuses:?}"
    );

    // A config change restarts the task with the new config: new lines go to the new topic.
    let topic2 = unique("dist-lines2");
    let (status, body) = b
        .call_settled(
            "PUT",
            "/connectors/src/config",
            Some(source(&input, &topic2)),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    for w in [&a, &b] {
        wait_get(w, "/connectors/src/tasks", "the new task config", |s, v| {
            s == 200 && v[0]["config"]["topic"] == json!(topic2)
        })
        .await?;
    }
    append_lines(&input, (50..60).map(|i| format!("line {i}")))?;
    let moved = broker.read(&topic2, 10).await?;
    ensure!(moved[0].value.as_deref() == Some(&b"line 50"[..]));
    ensure!(broker.end_offset(&topic).await? == 50);

    // Restarts: the connector and its tasks through the config topic (202 with the status),
    // one task through the worker that does not run it (sent on to the one that does).
    let (status, body) = b
        .call_settled("POST", "/connectors/src/restart?includeTasks=true", None)
        .await?;
    ensure!(status == 202 && body["name"] == "src", "{status} {body}");
    let status = wait_get(
        &a,
        "/connectors/src/status",
        "RUNNING after the restart",
        |s, v| s == 200 && running_on(v).is_some(),
    )
    .await?;
    let owner = running_on(&status).context("owner")?;
    let other = if a.addr.to_string() == owner { &b } else { &a };
    let (status, body) = other
        .call_settled("POST", "/connectors/src/tasks/0/restart", None)
        .await?;
    ensure!(status == 204, "{status} {body}");
    let (status, body) = other
        .call_settled("POST", "/connectors/src/tasks/7/restart", None)
        .await?;
    ensure!(status == 404, "{status} {body}");
    for w in [&a, &b] {
        wait_get(
            w,
            "/connectors/src/status",
            "RUNNING after the restarts",
            |s, v| s == 200 && running_on(v).is_some(),
        )
        .await?;
    }

    // Pause, resume, stop and delete through either worker; both see the result.
    for (w, action, code, state) in [(&a, "pause", 202, "PAUSED"), (&b, "resume", 202, "RUNNING")] {
        let (status, _) = w
            .call_settled("PUT", &format!("/connectors/src/{action}"), None)
            .await?;
        ensure!(status == code, "{action}: {status}");
        for v in [&a, &b] {
            wait_get(v, "/connectors/src/status", state, |s, v| {
                s == 200 && v["connector"]["state"] == state && v["tasks"][0]["state"] == state
            })
            .await?;
        }
    }
    let (status, _) = b.call_settled("PUT", "/connectors/src/stop", None).await?;
    ensure!(status == 204);
    for v in [&a, &b] {
        wait_get(v, "/connectors/src/status", "STOPPED", |s, v| {
            s == 200 && v["connector"]["state"] == "STOPPED" && v["tasks"] == json!([])
        })
        .await?;
    }
    // Offsets can be read and reset once stopped; the reset reaches the offsets topic.
    let (status, offsets) = a.get("/connectors/src/offsets").await?;
    ensure!(
        status == 200 && offsets["offsets"][0]["offset"]["position"].is_number(),
        "{offsets}"
    );
    let (status, _) = b
        .call_settled("DELETE", "/connectors/src/offsets", None)
        .await?;
    ensure!(status == 200);
    wait_get(&a, "/connectors/src/offsets", "offsets reset", |s, v| {
        s == 200 && v["offsets"] == json!([])
    })
    .await?;
    let (status, _) = a
        .call_settled("PUT", "/connectors/src/resume", None)
        .await?;
    ensure!(status == 202);
    // From the start again: the 60 lines are sent once more to topic2.
    broker.wait_end_offset(&topic2, 70).await?;

    let (status, _) = b.call_settled("DELETE", "/connectors/src", None).await?;
    ensure!(status == 204);
    for w in [&a, &b] {
        wait_get(w, "/connectors", "no connectors", |s, v| {
            s == 200 && *v == json!([])
        })
        .await?;
        let (status, body) = w.get("/connectors/src/status").await?;
        ensure!(status == 404, "{status} {body}");
    }
    Ok(())
}

#[tokio::test]
async fn a_leaving_worker_hands_its_tasks_to_the_other_without_losing_lines() -> Result<()> {
    let broker = TestBroker::start().await?;
    let group = unique("dist");
    let mut workers = vec![
        TestConnect::start_distributed(&broker, &group, &[]).await?,
        TestConnect::start_distributed(&broker, &group, &[]).await?,
    ];
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for n in 0..2 {
        let input = dir.path().join(format!("in{n}.txt"));
        let topic = unique("dist-move");
        append_lines(&input, (0..100).map(|i| format!("{n}-{i}")))?;
        let (status, body) = workers[0]
            .call_settled(
                "POST",
                "/connectors",
                Some(json!({"name": format!("src{n}"), "config": source(&input, &topic)})),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
        files.push((input, topic));
    }
    // Each worker ends up running one of the two tasks (connectors, then tasks, round-robin).
    let mut owners = BTreeSet::new();
    wait_for(
        "the two tasks on two workers",
        || async {
            let mut found = BTreeSet::new();
            for n in 0..2 {
                let (_, status) = workers[1]
                    .get(&format!("/connectors/src{n}/status"))
                    .await?;
                found.extend(running_on(&status));
            }
            Ok((found.len() == 2, found))
        },
        &mut owners,
    )
    .await
    .with_context(|| format!("owners: {owners:?}"))?;
    for (_, topic) in &files {
        broker.wait_end_offset(topic, 100).await?;
    }

    // The worker that runs src0 stops; src0's task moves to the other and resumes from the
    // saved offset.
    let status = workers[0].get("/connectors/src0/status").await?.1;
    let owner = running_on(&status).context("src0's owner")?;
    let leaving = workers
        .iter()
        .position(|w| w.addr.to_string() == owner)
        .context("owner among the workers")?;
    let mut gone = workers.remove(leaving);
    gone.stop().await?;
    let survivor = &workers[0];
    let survivor_id = survivor.addr.to_string();
    for n in 0..2 {
        wait_get(
            survivor,
            &format!("/connectors/src{n}/status"),
            "the task on the survivor",
            |s, v| s == 200 && running_on(v).as_deref() == Some(survivor_id.as_str()),
        )
        .await?;
    }
    append_lines(&files[0].0, (100..150).map(|i| format!("0-{i}")))?;
    broker.wait_end_offset(&files[0].1, 150).await?;
    let records = broker.read(&files[0].1, 150).await?;
    let lines: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let expected: Vec<String> = (0..150).map(|i| format!("0-{i}")).collect();
    ensure!(
        lines == expected,
        "lines differ: {:?}",
        &lines[95..lines.len().min(110)]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        broker.end_offset(&files[0].1).await? == 150,
        "duplicates after the move"
    );
    Ok(())
}

#[tokio::test]
async fn writes_get_409_while_the_group_rebalances() -> Result<()> {
    let broker = TestBroker::start().await?;
    let group = unique("dist");
    // A member that joins first and then goes silent: the next rebalance waits for it until
    // its session expires.
    let mut silent = GroupMember::new(
        &broker.bootstrap(),
        "silent",
        &group,
        "connect",
        Duration::from_secs(8),
        Duration::from_secs(8),
    );
    let mut meta = BytesMut::new();
    meta.put_i16(0);
    meta.put_i16(18);
    meta.put_slice(b"http://127.0.0.1:9");
    meta.put_i64(0);
    let joined = silent
        .join(&[("default".to_string(), meta.freeze())])
        .await?;
    silent
        .sync(vec![(joined.member_id.clone(), Bytes::new())])
        .await?
        .context("assignment")?;

    let worker = TestConnect::start_distributed(&broker, &group, &[]).await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    append_lines(&input, ["x".to_string()])?;
    let body = json!({"name": "src", "config": source(&input, "t409")});
    let (status, answer) = worker
        .call("POST", "/connectors", Some(body.clone()))
        .await?;
    ensure!(
        status == 409
            && answer
                == json!({"error_code": 409, "message": "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)"}),
        "{status} {answer}"
    );
    // Reads are served meanwhile.
    let (status, list) = worker.get("/connectors").await?;
    ensure!(status == 200 && list == json!([]), "{status} {list}");
    // Once the silent member is gone the write goes through.
    let (status, answer) = worker
        .call_settled("POST", "/connectors", Some(body))
        .await?;
    ensure!(status == 201, "{status} {answer}");
    Ok(())
}
