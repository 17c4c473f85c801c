//! The store across restarts, and two instances on one broker (leader election, forwarding,
//! failover).

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::json;

use crate::harness::{TestBroker, TestRegistry, record};

#[tokio::test]
async fn a_restarted_registry_serves_the_same_ids_and_state() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut sr = TestRegistry::start(&broker).await?;
    let a = record("A", r#"{"name":"x","type":"int"}"#);
    let b = record("B", "");
    sr.register("s", &a).await?;
    sr.register("t", &b).await?;
    sr.put("/config/s", json!({"compatibility": "NONE"}))
        .await?;
    sr.put("/mode/t", json!({"mode": "READONLY"})).await?;
    sr.delete("/subjects/s/versions/1").await?;
    sr.register("s", &record("A2", "")).await?;
    sr.stop().await;

    let again = TestRegistry::start(&broker).await?;
    assert_eq!(
        again.get("/schemas/ids/1").await?,
        (200, json!({"schema": a}))
    );
    assert_eq!(
        again.get("/schemas/ids/2").await?,
        (200, json!({"schema": b}))
    );
    assert_eq!(again.get("/subjects/s/versions").await?, (200, json!([2])));
    assert_eq!(
        again.get("/subjects/s/versions?deleted=true").await?,
        (200, json!([1, 2]))
    );
    assert_eq!(
        again.get("/config/s").await?,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        again.get("/mode/t").await?,
        (200, json!({"mode": "READONLY"}))
    );
    assert_eq!(
        again.register("u", &record("C", "")).await?,
        4,
        "new ids continue after the old ones"
    );
    Ok(())
}

#[tokio::test]
async fn two_instances_agree_forward_writes_and_fail_over() -> Result<()> {
    let broker = TestBroker::start().await?;
    let first = TestRegistry::start(&broker).await?;
    ensure!(
        first.wait_for_leader().await?.is_self,
        "a lone instance leads"
    );
    let second = TestRegistry::start(&broker).await?;
    // Wait until both see the same leader after the rebalance.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = first.wait_for_leader().await?;
        let b = second.wait_for_leader().await?;
        if a.is_self != b.is_self && a.leader_url.is_some() && a.leader_url == b.leader_url {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no agreed leader: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader_is_first = first.wait_for_leader().await?.is_self;
    // Writes through either instance land once, with distinct ids, and both read them.
    for i in 0..6 {
        let sr = if i % 2 == 0 { &first } else { &second };
        let id = sr
            .register(&format!("s{i}"), &record(&format!("R{i}"), ""))
            .await?;
        assert_eq!(id, i + 1);
        for reader in [&first, &second] {
            let (status, body) = reader.get(&format!("/schemas/ids/{id}")).await?;
            assert_eq!(
                status,
                200,
                "instance {} right after the write",
                reader.url()
            );
            assert!(
                body["schema"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("R{i}"))
            );
        }
    }
    assert_eq!(
        first.get("/subjects").await?,
        second.get("/subjects").await?
    );
    assert_eq!(
        second
            .put("/config", json!({"compatibility": "FULL"}))
            .await?
            .0,
        200
    );
    assert_eq!(
        first.get("/config").await?,
        (200, json!({"compatibilityLevel": "FULL"}))
    );

    // Stop the leader: the other takes over writes.
    let (mut leader, follower) = if leader_is_first {
        (first, second)
    } else {
        (second, first)
    };
    leader.stop().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !follower.wait_for_leader().await?.is_self {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the follower did not take over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(follower.register("after", &record("After", "")).await?, 7);
    Ok(())
}

#[tokio::test]
async fn writes_without_a_leader_get_50004_and_a_dead_leader_50003() -> Result<()> {
    let broker = TestBroker::start().await?;
    // The only instance may not lead: writes find no leader; reads still work.
    let follower = TestRegistry::start_with(&broker, |c| {
        c.leader_eligibility = false;
        c.leader_wait = Duration::from_millis(500);
    })
    .await?;
    let (status, body) = follower
        .post("/subjects/s/versions", json!({"schema": "\"int\""}))
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (500, json!(50004)),
        "{body}"
    );
    assert_eq!(follower.get("/subjects").await?, (200, json!([])));

    // A leader whose advertised URL answers nothing: forwarding fails with 50003.
    let leader = TestRegistry::start_with(&broker, |c| {
        c.advertised_url = Some("http://127.0.0.1:9".into());
    })
    .await?;
    ensure!(
        leader.wait_for_leader().await?.is_self,
        "the eligible instance leads"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while follower.wait_for_leader().await?.leader_url.as_deref() != Some("http://127.0.0.1:9") {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the follower never learnt the leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = follower
        .post("/subjects/s/versions", json!({"schema": "\"int\""}))
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (500, json!(50003)),
        "{body}"
    );
    // The leader itself writes.
    assert_eq!(leader.register("s", "\"int\"").await?, 1);
    Ok(())
}

#[tokio::test]
async fn writes_fail_with_50001_while_the_broker_is_down() -> Result<()> {
    let broker = TestBroker::start().await?;
    let sr = TestRegistry::start(&broker).await?;
    sr.wait_for_leader().await?;
    sr.register("s", "\"int\"").await?;
    drop(broker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = sr
        .post("/subjects/t/versions", json!({"schema": "\"long\""}))
        .await?;
    assert_eq!(
        (status, body["error_code"].clone()),
        (500, json!(50001)),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Error in the backend data store"),
        "{body}"
    );
    // Reads are served from memory meanwhile.
    assert_eq!(sr.get("/subjects").await?, (200, json!(["s"])));
    Ok(())
}
