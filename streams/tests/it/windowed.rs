//! Windowed counts over many generated events, checked against a reference computed here;
//! two instances sharing the partitions; one killed mid-run and its tasks restored by the
//! other from the changelogs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use fjord_client::ProducerRecord;
use fjord_streams::{
    Consumed, EmitStrategy, Grouped, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder,
    StreamsConfig, TimeWindows, WindowedSerde,
};

use crate::harness::{TestBroker, eventually, produce};

const WINDOW: i64 = 60_000;
const GRACE: i64 = 1_000;
const KEYS: u64 = 100;
const BASE: i64 = 1_700_000_000_000;
const PARTITIONS: i32 = 4;

/// Event `i`: key, timestamp (6 ms apart, up to 500 ms out of order).
fn event(i: u64) -> (String, i64) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let key = format!("user-{}", x % KEYS);
    let jitter = ((x >> 8) % 500) as i64;
    (key, BASE + i as i64 * 6 - jitter)
}

/// Counts per (key, window start), computed directly.
fn reference(n: u64) -> HashMap<(String, i64), i64> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let (key, ts) = event(i);
        *counts.entry((key, ts - ts.rem_euclid(WINDOW))).or_insert(0) += 1;
    }
    counts
}

async fn produce_events(broker: &TestBroker, n: u64) -> Result<()> {
    produce_range(broker, 0..n).await?;
    produce_closers(broker, n).await
}

async fn produce_range(broker: &TestBroker, range: std::ops::Range<u64>) -> Result<()> {
    let producer = broker.producer()?;
    produce(
        &producer,
        "events",
        range.map(|i| {
            let (key, ts) = event(i);
            (Some(Bytes::from(key)), Some(Bytes::from_static(b"v")), ts)
        }),
    )
    .await
}

async fn produce_closers(broker: &TestBroker, n: u64) -> Result<()> {
    let producer = broker.producer()?;
    // One record per partition far ahead closes every window.
    let end = BASE + n as i64 * 6 + 10 * WINDOW;
    for p in 0..PARTITIONS {
        producer
            .send(ProducerRecord {
                topic: "events".into(),
                partition: Some(p),
                key: Some(Bytes::from_static(b"closer")),
                value: Some(Bytes::from_static(b"v")),
                headers: Vec::new(),
                timestamp: Some(end),
            })
            .await?
            .await?;
    }
    Ok(())
}

fn topology() -> Result<fjord_streams::topology::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(Serdes::string(), Serdes::bytes()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::bytes()))
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count(Materialized::as_store("counts"))?
        .to_stream()
        .to(
            "window-counts",
            Produced::with(
                WindowedSerde::time(Serdes::string(), WINDOW),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    Ok(builder.build()?)
}

fn config(broker: &TestBroker, dir: &tempfile::TempDir) -> StreamsConfig {
    StreamsConfig::new("windowed", &broker.bootstrap())
        .with_state_dir(dir.path())
        .with_commit_interval(Duration::from_millis(500))
        .with_consumer_property("session.timeout.ms", "2000")
        .with_consumer_property("heartbeat.interval.ms", "300")
}

/// Reads the final window counts and checks them: every emitted value is the reference's
/// (a window may come twice after a crash, never with another value), and every window came.
async fn check_output(broker: &TestBroker, expected: &HashMap<(String, i64), i64>) -> Result<()> {
    let serde = WindowedSerde::time(Serdes::string(), WINDOW);
    let mut seen: HashMap<(String, i64), i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let admin = fjord_client::Admin::connect(&broker.bootstrap()).await?;
    let partitions = admin.partitions("window-counts").await?;
    let mut consumer = fjord_client::Consumer::new(
        fjord_client::ConsumerConfig::new(broker.bootstrap())
            .auto_offset_reset(fjord_client::OffsetReset::Earliest),
    )
    .await?;
    consumer.assign(partitions.iter().map(|p| ("window-counts".to_string(), *p)))?;
    let mut records = 0usize;
    while seen.len() < expected.len() && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await? {
            records += 1;
            let w = serde.deserialize(r.key.as_deref())?;
            if w.key == "closer" {
                continue;
            }
            let count = i64::from_be_bytes(r.value.as_deref().unwrap_or_default().try_into()?);
            let key = (w.key, w.window.start);
            let want = expected.get(&key).copied();
            ensure!(
                want == Some(count),
                "window {key:?}: emitted {count}, reference {want:?}"
            );
            seen.insert(key, count);
        }
    }
    ensure!(
        seen.len() == expected.len(),
        "{} of {} windows emitted ({records} records)",
        seen.len(),
        expected.len()
    );
    Ok(())
}

/// Two instances, once each runs tasks.
async fn start_both(broker: &TestBroker) -> Result<(KafkaStreams, KafkaStreams)> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut a = KafkaStreams::new(topology()?, config(broker, &dir_a))?;
    let mut b = KafkaStreams::new(topology()?, config(broker, &dir_b))?;
    a.start().await?;
    b.start().await?;
    let shared = eventually(Duration::from_secs(30), || {
        let (ta, tb) = (a.metrics().tasks.len(), b.metrics().tasks.len());
        ta > 0 && tb > 0 && ta + tb == PARTITIONS as usize
    })
    .await;
    ensure!(
        shared,
        "tasks not shared: {:?} {:?}",
        a.metrics().tasks,
        b.metrics().tasks
    );
    // The state directories live as long as the test (the instances hold them open).
    std::mem::forget(dir_a);
    std::mem::forget(dir_b);
    Ok((a, b))
}

fn event_count() -> u64 {
    std::env::var("FJORD_STREAMS_IT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_count_of_a_million_events_by_two_instances_matches_the_reference() -> Result<()> {
    let n = event_count();
    let broker = TestBroker::start().await?;
    broker.create_topic("events", PARTITIONS).await?;
    broker.create_topic("window-counts", PARTITIONS).await?;
    let (a, b) = start_both(&broker).await?;
    let started = Instant::now();
    produce_events(&broker, n).await?;
    let produced = started.elapsed();
    let expected = reference(n);
    check_output(&broker, &expected).await?;
    // Metrics are published after each batch; wait for the last one.
    let total = || a.metrics().records_processed + b.metrics().records_processed;
    eventually(Duration::from_secs(10), || total() >= n + PARTITIONS as u64).await;
    let (ma, mb) = (a.metrics(), b.metrics());
    eprintln!(
        "{n} events: produced in {produced:?}, processed in {:?}; instance a {} records, b {}",
        started.elapsed() - produced,
        ma.records_processed,
        mb.records_processed
    );
    // Both instances had tasks, and together they read every event exactly once here.
    ensure!(
        ma.records_processed > 0 && mb.records_processed > 0,
        "{ma:?} {mb:?}"
    );
    assert_eq!(
        ma.records_processed + mb.records_processed,
        n + PARTITIONS as u64
    );
    assert_eq!(ma.late_records_dropped + mb.late_records_dropped, 0);
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_tasks_are_restored_from_the_changelog_by_the_other() -> Result<()> {
    let n = event_count() / 4;
    let broker = TestBroker::start().await?;
    broker.create_topic("events", PARTITIONS).await?;
    broker.create_topic("window-counts", PARTITIONS).await?;
    let (a, b) = start_both(&broker).await?;
    let expected = reference(n);
    // b processes its share of the first half (and commits), then dies; the second half
    // continues windows that b's state holds.
    produce_range(&broker, 0..n / 2).await?;
    let b_metrics = || b.metrics().records_processed;
    ensure!(
        eventually(Duration::from_secs(60), || b_metrics() > n / 8).await,
        "b processed only {}",
        b_metrics()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let processed_by_b = b.metrics().records_processed;
    b.kill().await?;
    produce_range(&broker, n / 2..n).await?;
    produce_closers(&broker, n).await?;
    check_output(&broker, &expected).await?;
    let m = a.metrics();
    eprintln!("b processed {processed_by_b} before it was killed; a: {m:?}");
    ensure!(
        m.stores_restored > 0 && m.restored > 0,
        "a restored nothing: {m:?}"
    );
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    totals.insert("a", m.records_processed);
    ensure!(
        m.records_processed < n + PARTITIONS as u64,
        "a did everything itself: {totals:?}"
    );
    a.close().await?;
    Ok(())
}
