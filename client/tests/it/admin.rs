//! Admin against a real broker: partitions, records, cluster.

use std::collections::BTreeMap;

use anyhow::Result;
use fjord_client::{Admin, Error, OffsetSpec};
use fjord_protocol::ErrorCode;
use kafka_protocol::records::Compression;

use crate::harness::{TestBroker, produce_values};

#[tokio::test]
async fn partitions_records_and_cluster_are_administered() -> Result<()> {
    let broker = TestBroker::start().await?;
    let admin = Admin::connect(&broker.bootstrap()).await?;
    admin.create_topic("admin", 1, 1, &BTreeMap::new()).await?;
    admin.create_partitions("admin", 3).await?;
    assert_eq!(admin.partitions("admin").await?, vec![0, 1, 2]);
    // Shrinking is refused with Kafka's code.
    match admin.create_partitions("admin", 2).await {
        Err(Error::Broker { code, .. }) => assert_eq!(code, ErrorCode::InvalidPartitions),
        other => panic!("expected INVALID_PARTITIONS, got {other:?}"),
    }

    let mut conn = broker.connection().await?;
    produce_values(&mut conn, "admin", 1, 0, 10, 1_000, Compression::None).await?;
    let tp = ("admin".to_string(), 1);
    let low = admin
        .delete_records(&BTreeMap::from([(tp.clone(), 4)]))
        .await?;
    assert_eq!(low, BTreeMap::from([(tp.clone(), 4)]));
    let earliest = admin
        .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Earliest)
        .await?;
    assert_eq!(earliest[&tp], Some(4));
    // Past the high watermark: OFFSET_OUT_OF_RANGE.
    match admin.delete_records(&BTreeMap::from([(tp, 99)])).await {
        Err(Error::Broker { code, .. }) => assert_eq!(code, ErrorCode::OffsetOutOfRange),
        other => panic!("expected OFFSET_OUT_OF_RANGE, got {other:?}"),
    }

    let cluster = admin.describe_cluster().await?;
    assert!(!cluster.cluster_id.is_empty());
    assert_eq!(cluster.brokers.len(), 1);
    let (id, host, port, _) = &cluster.brokers[0];
    assert_eq!(cluster.controller_id, *id);
    assert_eq!(format!("{host}:{port}"), broker.bootstrap());
    Ok(())
}

/// A broker on `addr` over `dir`, stopped by cancelling the returned token.
async fn serve_at(
    dir: &std::path::Path,
    addr: &str,
) -> Result<tokio_util::sync::CancellationToken> {
    let values = BTreeMap::from([
        ("listeners".to_string(), format!("PLAINTEXT://{addr}")),
        ("log.dirs".to_string(), dir.display().to_string()),
    ]);
    let broker = fjord_broker::Broker::open(fjord_broker::BrokerConfig::from_values(values)?)?;
    let server = fjord_broker::Server::bind(broker).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    Ok(shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reconnects_after_the_broker_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.to_string()
    };
    let first = serve_at(dir.path(), &addr).await?;
    let admin = Admin::connect(&addr).await?;
    admin
        .create_topic("survives", 2, 1, &BTreeMap::new())
        .await?;
    // Stop the broker (its connections close) and start it again on the same address.
    first.cancel();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        match serve_at(dir.path(), &addr).await {
            Ok(token) => break token,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing_free_log(&e);
            }
            Err(e) => return Err(e),
        }
    };
    // The admin's old connection is dead; the next call reconnects instead of failing.
    assert_eq!(admin.partitions("survives").await?, vec![0, 1]);
    second.cancel();
    Ok(())
}

/// Why a restart attempt failed (the old broker may still hold the lock or the port).
fn tracing_free_log(error: &anyhow::Error) {
    eprintln!("broker not restarted yet: {error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_and_producer_carry_on_after_the_broker_restarts() -> Result<()> {
    use fjord_client::{
        Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    };
    let dir = tempfile::tempdir()?;
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.to_string()
    };
    let first = serve_at(dir.path(), &addr).await?;
    Admin::connect(&addr)
        .await?
        .create_topic("restart", 1, 1, &BTreeMap::new())
        .await?;
    let producer = Producer::new(ProducerConfig::new(&addr))?;
    producer
        .send(ProducerRecord::new("restart", "before"))
        .await?
        .await?;
    let mut consumer = Consumer::new(
        ConsumerConfig::new(&addr)
            .auto_offset_reset(OffsetReset::Earliest)
            .fetch_max_wait(std::time::Duration::from_millis(100)),
    )
    .await?;
    consumer.assign([("restart".to_string(), 0)])?;
    let mut seen = Vec::new();
    while seen.is_empty() {
        seen.extend(consumer.poll(std::time::Duration::from_millis(200)).await?);
    }
    first.cancel();
    let restart_deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        match serve_at(dir.path(), &addr).await {
            Ok(token) => break token,
            Err(e) if std::time::Instant::now() < restart_deadline => tracing_free_log(&e),
            Err(e) => return Err(e),
        }
    };
    let started = std::time::Instant::now();
    producer
        .send(ProducerRecord::new("restart", "after"))
        .await?
        .await?;
    let mut after = Vec::new();
    while after.is_empty() {
        anyhow::ensure!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the consumer did not read past the restart within 10 s"
        );
        match consumer.poll(std::time::Duration::from_millis(200)).await {
            Ok(records) => after.extend(records),
            Err(e) => eprintln!("poll after restart: {e}"),
        }
    }
    assert_eq!(after[0].value.as_deref(), Some(&b"after"[..]));
    assert_eq!(after[0].offset, 1);
    eprintln!("caught up {:?} after the restart", started.elapsed());
    producer.close().await;
    second.cancel();
    Ok(())
}
