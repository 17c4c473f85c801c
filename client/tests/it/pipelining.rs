//! `max.in.flight.requests.per.connection` and connection loss, observed through a byte-level
//! TCP proxy in front of a real broker (the broker advertises the proxy, so every request
//! passes through it). The proxy counts Produce requests on the wire without an answer yet,
//! and can cut connections.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use fjord_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{TestBroker, create_topic, fetch_all};

/// What the proxy saw.
#[derive(Default)]
struct Stats {
    /// Produce requests forwarded and not yet answered (all connections).
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    produce_requests: AtomicUsize,
    /// When set, the next Produce request's connection is cut before it is forwarded.
    cut_next_produce: AtomicBool,
    cuts: AtomicUsize,
}

/// Listens on an ephemeral port and forwards every connection to `target`.
async fn start_proxy(listener: TcpListener, target: String, stats: Arc<Stats>) {
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let stats = stats.clone();
            tokio::spawn(async move {
                let produce_ids: Arc<Mutex<HashSet<i32>>> = Arc::default();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = forward(
                    client_read,
                    server_write,
                    stats.clone(),
                    produce_ids.clone(),
                    true,
                );
                let down = forward(server_read, client_write, stats, produce_ids, false);
                // Either direction ending (or a cut) closes both.
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
}

/// Copies size-prefixed frames, counting Produce requests (up) and their answers (down).
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    stats: Arc<Stats>,
    produce_ids: Arc<Mutex<HashSet<i32>>>,
    requests: bool,
) -> std::io::Result<()> {
    loop {
        let size = from.read_i32().await?;
        let mut body = vec![0u8; size as usize];
        from.read_exact(&mut body).await?;
        if requests {
            let api_key = i16::from_be_bytes([body[0], body[1]]);
            let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            if api_key == 0 {
                if stats.cut_next_produce.swap(false, Ordering::SeqCst) {
                    stats.cuts.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                stats.produce_requests.fetch_add(1, Ordering::SeqCst);
                produce_ids.lock().expect("lock").insert(correlation_id);
                let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
            }
        } else {
            let correlation_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            if produce_ids.lock().expect("lock").remove(&correlation_id) {
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        to.write_all(&frame).await?;
    }
}

/// A broker that advertises a proxy in front of it, and the proxy's counters.
async fn broker_behind_proxy() -> Result<(TestBroker, String, Arc<Stats>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy = listener.local_addr()?.to_string();
    let advertised = format!("PLAINTEXT://{proxy}");
    let broker = TestBroker::start_with(&[("advertised.listeners", advertised.as_str())]).await?;
    let stats = Arc::new(Stats::default());
    start_proxy(listener, broker.bootstrap(), stats.clone()).await;
    Ok((broker, proxy, stats))
}

fn config(bootstrap: &str, max_in_flight: u32, idempotent: bool) -> ProducerConfig {
    let mut config = ProducerConfig::new(bootstrap)
        .with_acks(if idempotent { Acks::All } else { Acks::Leader })
        .with_idempotence(idempotent)
        .with_batch_size(2048)
        .with_linger(Duration::ZERO)
        .with_retry_backoff(Duration::from_millis(20))
        .with_delivery_timeout(Duration::from_secs(20));
    config.max_in_flight = max_in_flight;
    config
}

/// Sends `count` 400-byte records to partition 0 without waiting; returns their offsets.
async fn send_all(producer: &Producer, topic: &str, count: usize) -> Result<Vec<i64>> {
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let value = format!("{i:0>400}");
        deliveries.push(
            producer
                .send(ProducerRecord::new(topic, value).with_partition(0))
                .await?,
        );
    }
    let mut offsets = Vec::with_capacity(count);
    for delivery in deliveries {
        offsets.push(delivery.await?.offset);
    }
    Ok(offsets)
}

/// The partition's values, parsed back to the record numbers.
async fn numbers_in_log(broker: &TestBroker, topic: &str) -> Result<Vec<usize>> {
    let records = fetch_all(&broker.bootstrap(), topic, 0).await?;
    Ok(records
        .iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_deref().unwrap_or_default())
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX)
        })
        .collect())
}

#[tokio::test]
async fn several_produce_requests_are_in_flight_on_one_connection() -> Result<()> {
    let (broker, proxy, stats) = broker_behind_proxy().await?;
    create_topic(&mut broker.connection().await?, "pipelined", 1).await?;
    let producer = Producer::new(config(&proxy, 5, false))?;
    let offsets = send_all(&producer, "pipelined", 3000).await?;
    producer.close().await;
    assert_eq!(offsets, (0..3000).collect::<Vec<i64>>());
    assert_eq!(
        numbers_in_log(&broker, "pipelined").await?,
        (0..3000).collect::<Vec<_>>()
    );
    let max = stats.max_in_flight.load(Ordering::SeqCst);
    ensure!(
        (2..=5).contains(&max),
        "max Produce requests in flight: {max}"
    );
    Ok(())
}

#[tokio::test]
async fn max_in_flight_one_waits_for_each_answer() -> Result<()> {
    let (broker, proxy, stats) = broker_behind_proxy().await?;
    create_topic(&mut broker.connection().await?, "serial", 1).await?;
    let producer = Producer::new(config(&proxy, 1, false))?;
    send_all(&producer, "serial", 1000).await?;
    producer.close().await;
    ensure!(stats.produce_requests.load(Ordering::SeqCst) > 1);
    assert_eq!(stats.max_in_flight.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn idempotent_producer_survives_cut_connections_without_duplicates_or_reordering()
-> Result<()> {
    let (broker, proxy, stats) = broker_behind_proxy().await?;
    create_topic(&mut broker.connection().await?, "cut", 1).await?;
    let producer = Arc::new(Producer::new(config(&proxy, 5, true))?);
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move { send_all(&producer, "cut", 3000).await })
    };
    // Cut a connection mid-stream a few times, each at the next Produce request.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        stats.cut_next_produce.store(true, Ordering::SeqCst);
    }
    let offsets = sender.await??;
    producer.close().await;
    ensure!(
        stats.cuts.load(Ordering::SeqCst) >= 1,
        "no connection was cut"
    );
    assert_eq!(offsets, (0..3000).collect::<Vec<i64>>());
    assert_eq!(
        numbers_in_log(&broker, "cut").await?,
        (0..3000).collect::<Vec<_>>()
    );
    Ok(())
}
