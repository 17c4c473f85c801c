//! The consumer against a real broker: assign and poll, codecs, seeks, offset reset, pause,
//! commits, and a group of two subscribed consumers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fjord_client::{
    AssignmentStrategy, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener,
    TopicPartition,
};
use kafka_protocol::records::Compression;
use tokio::time::Instant;

use crate::harness::{TestBroker, WAIT, create_topic, produce_values};

/// Groups rebalance without the initial delay.
const NO_DELAY: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_string(), partition)
}

fn config(broker: &TestBroker) -> ConsumerConfig {
    ConsumerConfig::new(broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(50))
}

/// Polls until `count` records arrived (failing after [`WAIT`]).
async fn poll_n(consumer: &mut Consumer, count: usize) -> Result<Vec<ConsumerRecord>> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < count {
        ensure!(
            Instant::now() < deadline,
            "only {} of {count} records arrived",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(100)).await?);
    }
    Ok(out)
}

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test]
async fn assign_and_poll_from_mid_batch_returns_exact_records() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "mid", 1).await?;
    produce_values(&mut conn, "mid", 0, 0, 5, 1_000, Compression::None).await?;
    produce_values(&mut conn, "mid", 0, 5, 5, 1_000, Compression::None).await?;

    let mut consumer = Consumer::new(config(&broker)).await?;
    consumer.assign([tp("mid", 0)])?;
    consumer.seek(tp("mid", 0), 3);
    let records = poll_n(&mut consumer, 7).await?;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (3..10).collect::<Vec<_>>()
    );
    let first = &records[0];
    assert_eq!(first.topic, "mid");
    assert_eq!(first.partition, 0);
    assert_eq!(first.key.as_deref(), Some(&b"key-3"[..]));
    assert_eq!(first.value.as_deref(), Some(&b"value-3"[..]));
    assert_eq!(first.timestamp, 1_003);
    assert_eq!(first.headers, vec![("n".to_string(), Some("3".into()))]);
    assert_eq!(consumer.position(&tp("mid", 0)), Some(10));
    // Nothing more: a poll waits its timeout and returns empty.
    assert!(consumer.poll(Duration::from_millis(100)).await?.is_empty());
    consumer.close().await?;
    Ok(())
}

#[tokio::test]
async fn compressed_batches_of_every_codec_are_decoded() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "codecs", 1).await?;
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for (i, codec) in codecs.iter().enumerate() {
        produce_values(&mut conn, "codecs", 0, i as i64 * 4, 4, 1_000, *codec).await?;
    }
    let mut consumer = Consumer::new(config(&broker)).await?;
    consumer.assign([tp("codecs", 0)])?;
    // From inside the gzip batch: the records before the position are skipped.
    consumer.seek(tp("codecs", 0), 6);
    let records = poll_n(&mut consumer, 14).await?;
    let expected: Vec<String> = (6..20).map(|i| format!("value-{i}")).collect();
    assert_eq!(values(&records), expected);
    Ok(())
}

#[tokio::test]
async fn seek_to_timestamp_beginning_and_end() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "times", 1).await?;
    // Timestamps 10_000 + offset.
    produce_values(&mut conn, "times", 0, 0, 5, 10_000, Compression::None).await?;
    produce_values(&mut conn, "times", 0, 5, 5, 10_000, Compression::Lz4).await?;
    let p = tp("times", 0);
    let mut consumer = Consumer::new(config(&broker)).await?;
    consumer.assign([p.clone()])?;

    consumer
        .seek_to_timestamp(std::slice::from_ref(&p), 10_006)
        .await?;
    assert_eq!(consumer.position(&p), Some(6));
    let records = poll_n(&mut consumer, 4).await?;
    assert_eq!(records[0].offset, 6);
    assert_eq!(records[0].timestamp, 10_006);

    // After the last record: the end.
    consumer
        .seek_to_timestamp(std::slice::from_ref(&p), 99_999)
        .await?;
    assert_eq!(consumer.position(&p), Some(10));
    consumer.seek_to_beginning(std::slice::from_ref(&p)).await?;
    assert_eq!(consumer.position(&p), Some(0));
    consumer.seek_to_end(std::slice::from_ref(&p)).await?;
    assert_eq!(consumer.position(&p), Some(10));
    Ok(())
}

#[tokio::test]
async fn auto_offset_reset_latest_none_and_out_of_range() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "reset", 1).await?;
    produce_values(&mut conn, "reset", 0, 0, 3, 1_000, Compression::None).await?;
    let p = tp("reset", 0);

    // latest: only records produced after the position was set.
    let mut latest = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Latest)).await?;
    latest.assign([p.clone()])?;
    assert!(latest.poll(Duration::from_millis(100)).await?.is_empty());
    assert_eq!(latest.position(&p), Some(3));
    produce_values(&mut conn, "reset", 0, 3, 2, 1_000, Compression::None).await?;
    assert_eq!(
        values(&poll_n(&mut latest, 2).await?),
        ["value-3", "value-4"]
    );

    // none: no committed offset is an error naming the partition.
    let mut none = Consumer::new(
        config(&broker)
            .group_id("reset-none")
            .auto_offset_reset(OffsetReset::None),
    )
    .await?;
    none.assign([p.clone()])?;
    let err = none.poll(Duration::from_millis(100)).await.unwrap_err();
    assert!(err.to_string().contains("reset-0"), "{err}");

    // earliest: a position past the end is reset to the start.
    let mut earliest = Consumer::new(config(&broker)).await?;
    earliest.assign([p.clone()])?;
    earliest.seek(p.clone(), 1_000);
    let records = poll_n(&mut earliest, 5).await?;
    assert_eq!(records[0].offset, 0);
    Ok(())
}

#[tokio::test]
async fn paused_partitions_are_not_fetched_until_resumed() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "pause", 2).await?;
    produce_values(&mut conn, "pause", 0, 0, 2, 1_000, Compression::None).await?;
    produce_values(&mut conn, "pause", 1, 0, 2, 1_000, Compression::None).await?;
    let mut consumer = Consumer::new(config(&broker)).await?;
    consumer.assign([tp("pause", 0), tp("pause", 1)])?;
    consumer.pause(&[tp("pause", 1)]);
    let records = poll_n(&mut consumer, 2).await?;
    assert!(records.iter().all(|r| r.partition == 0));
    assert!(consumer.poll(Duration::from_millis(200)).await?.is_empty());
    assert_eq!(consumer.paused(), vec![tp("pause", 1)]);
    consumer.resume(&[tp("pause", 1)]);
    let records = poll_n(&mut consumer, 2).await?;
    assert!(records.iter().all(|r| r.partition == 1));
    Ok(())
}

#[tokio::test]
async fn commits_round_trip_and_set_the_next_consumers_position() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "commits", 2).await?;
    produce_values(&mut conn, "commits", 0, 0, 10, 1_000, Compression::None).await?;
    let (p0, p1) = (tp("commits", 0), tp("commits", 1));
    let group = config(&broker)
        .group_id("committers")
        .enable_auto_commit(false);

    let mut first = Consumer::new(group.clone()).await?;
    first.assign([p0.clone(), p1.clone()])?;
    assert_eq!(
        first.committed(&[p0.clone(), p1.clone()]).await?,
        BTreeMap::from([(p0.clone(), None), (p1.clone(), None)])
    );
    first.commit_sync(BTreeMap::from([(p0.clone(), 7)])).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    first
        .commit_async(
            BTreeMap::from([(p1.clone(), 0)]),
            Some(Box::new(move |result| {
                let _ = tx.send(result.is_ok());
            })),
        )
        .await?;
    ensure!(rx.await?, "the asynchronous commit failed");
    assert_eq!(
        first.committed(&[p0.clone(), p1.clone()]).await?,
        BTreeMap::from([(p0.clone(), Some(7)), (p1.clone(), Some(0))])
    );
    first.close().await?;

    // A new consumer of the group starts at the committed offset.
    let mut second = Consumer::new(group).await?;
    second.assign([p0.clone()])?;
    let records = poll_n(&mut second, 3).await?;
    assert_eq!(records[0].offset, 7);
    Ok(())
}

#[tokio::test]
async fn auto_commit_on_close_is_seen_by_the_next_consumer() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "auto", 1).await?;
    produce_values(&mut conn, "auto", 0, 0, 4, 1_000, Compression::None).await?;
    let p = tp("auto", 0);
    let group = config(&broker).group_id("auto-committers");
    let mut first = Consumer::new(group.clone()).await?;
    first.assign([p.clone()])?;
    poll_n(&mut first, 4).await?;
    first.close().await?;
    let mut second = Consumer::new(group).await?;
    assert_eq!(
        second.committed(std::slice::from_ref(&p)).await?[&p],
        Some(4)
    );
    produce_values(&mut conn, "auto", 0, 4, 1, 1_000, Compression::None).await?;
    second.assign([p.clone()])?;
    assert_eq!(values(&poll_n(&mut second, 1).await?), ["value-4"]);
    Ok(())
}

/// What a group member's task reports.
#[derive(Default)]
struct Seen {
    records: Vec<(i32, i64)>,
    assignment: Vec<TopicPartition>,
}

struct Recorder(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("revoked {partitions:?}"));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("assigned {partitions:?}"));
    }
}

/// Runs a subscribed consumer in a task until `stop`, reporting records and assignment.
fn member(
    mut consumer: Consumer,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let records = consumer.poll(Duration::from_millis(50)).await?;
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.records
                .extend(records.iter().map(|r| (r.partition, r.offset)));
            seen.assignment = consumer.assignment();
        }
        consumer.close().await?;
        Ok(())
    })
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !check() {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn group_of_two_splits_and_takes_over(
    strategy: AssignmentStrategy,
    topic: &str,
) -> Result<()> {
    let broker = TestBroker::start_with(NO_DELAY).await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, topic, 4).await?;
    for p in 0..4 {
        produce_values(&mut conn, topic, p, 0, 10, 1_000, Compression::None).await?;
    }
    let group = config(&broker)
        .group_id(format!("group-{topic}"))
        .assignment_strategies(vec![strategy])
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(100))
        .auto_commit_interval(Duration::from_millis(100));

    let events = Arc::new(Mutex::new(Vec::new()));
    let mut a = Consumer::new(group.clone().client_id("a")).await?;
    a.subscribe([topic])?;
    a.set_rebalance_listener(Recorder(events.clone()));
    let mut b = Consumer::new(group.clone().client_id("b")).await?;
    b.subscribe([topic])?;
    let (seen_a, seen_b) = (Arc::default(), Arc::default());
    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let task_a = member(a, Arc::clone(&seen_a), stop_a.clone());
    let task_b = member(b, Arc::clone(&seen_b), stop_b.clone());

    let seen_a: Arc<Mutex<Seen>> = seen_a;
    let seen_b: Arc<Mutex<Seen>> = seen_b;
    wait_for("a 2/2 split and every record", || {
        let (a, b) = (
            seen_a.lock().unwrap_or_else(PoisonError::into_inner),
            seen_b.lock().unwrap_or_else(PoisonError::into_inner),
        );
        a.assignment.len() == 2
            && b.assignment.len() == 2
            && a.records.len() + b.records.len() >= 40
    })
    .await?;
    {
        let (a, b) = (
            seen_a.lock().unwrap_or_else(PoisonError::into_inner),
            seen_b.lock().unwrap_or_else(PoisonError::into_inner),
        );
        let union: BTreeSet<TopicPartition> =
            a.assignment.iter().chain(&b.assignment).cloned().collect();
        assert_eq!(union.len(), 4, "a {:?} b {:?}", a.assignment, b.assignment);
        let mut all: Vec<(i32, i64)> = a.records.iter().chain(&b.records).copied().collect();
        all.sort();
        let expected: Vec<(i32, i64)> = (0..4).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
        assert_eq!(all, expected, "every record exactly once");
    }

    // b leaves: a takes all four partitions and reads what is produced next.
    stop_b.store(true, Ordering::SeqCst);
    task_b.await.context("b panicked")??;
    wait_for("a to own all four partitions", || {
        seen_a
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .assignment
            .len()
            == 4
    })
    .await?;
    for p in 0..4 {
        produce_values(&mut conn, topic, p, 10, 1, 1_000, Compression::None).await?;
    }
    wait_for("a to read the new records", || {
        let a = seen_a.lock().unwrap_or_else(PoisonError::into_inner);
        (0..4).all(|p| a.records.contains(&(p, 10)))
    })
    .await?;
    stop_a.store(true, Ordering::SeqCst);
    task_a.await.context("a panicked")??;
    let events = events.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(
        events.iter().any(|e| e.starts_with("assigned")),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn range_group_of_two_splits_four_partitions_and_survives_a_leave() -> Result<()> {
    group_of_two_splits_and_takes_over(AssignmentStrategy::Range, "range-group").await
}

#[tokio::test]
async fn round_robin_group_of_two_splits_four_partitions_and_survives_a_leave() -> Result<()> {
    group_of_two_splits_and_takes_over(AssignmentStrategy::RoundRobin, "rr-group").await
}

#[tokio::test]
async fn cooperative_sticky_group_of_two_splits_four_partitions_and_survives_a_leave() -> Result<()>
{
    group_of_two_splits_and_takes_over(AssignmentStrategy::CooperativeSticky, "coop-group").await
}

#[tokio::test]
async fn config_from_kafka_properties_connects() -> Result<()> {
    let broker = TestBroker::start_with(NO_DELAY).await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "props", 1).await?;
    produce_values(&mut conn, "props", 0, 0, 2, 1_000, Compression::None).await?;
    let props: BTreeMap<String, String> = [
        ("bootstrap.servers", broker.bootstrap().as_str()),
        ("group.id", "props"),
        ("auto.offset.reset", "earliest"),
        ("fetch.max.wait.ms", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
    consumer.subscribe(["props"])?;
    assert_eq!(
        values(&poll_n(&mut consumer, 2).await?),
        ["value-0", "value-1"]
    );
    consumer.close().await?;
    Ok(())
}

#[tokio::test]
async fn the_consumer_as_a_stream_yields_records_in_order() -> Result<()> {
    use futures_core::Stream;
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "stream", 1).await?;
    produce_values(&mut conn, "stream", 0, 0, 3, 1_000, Compression::Gzip).await?;
    let mut consumer = Consumer::new(config(&broker)).await?;
    consumer.assign([tp("stream", 0)])?;
    let mut stream = consumer.into_stream(Duration::from_millis(50));
    let mut got = Vec::new();
    while got.len() < 3 {
        let next = tokio::time::timeout(
            WAIT,
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)),
        )
        .await
        .context("no record from the stream")?;
        got.push(next.context("the stream ended")??.offset);
    }
    assert_eq!(got, vec![0, 1, 2]);
    let (consumer, rest) = stream.into_inner().context("no poll in flight")?;
    assert!(rest.is_empty());
    assert_eq!(consumer.position(&tp("stream", 0)), Some(3));
    Ok(())
}

#[tokio::test]
async fn pattern_subscription_picks_up_new_matching_topics() -> Result<()> {
    let broker = TestBroker::start_with(NO_DELAY).await?;
    let mut conn = broker.connection().await?;
    for topic in ["orders-eu", "orders-us", "ordersx", "payments"] {
        create_topic(&mut conn, topic, 1).await?;
        produce_values(&mut conn, topic, 0, 0, 3, 1_000, Compression::None).await?;
    }
    let mut group = config(&broker).group_id("pattern");
    group.metadata_max_age = Duration::from_millis(200);
    let mut consumer = Consumer::new(group).await?;
    consumer.subscribe_pattern("orders-.*")?;
    let records = poll_n(&mut consumer, 6).await?;
    let topics: BTreeSet<&str> = records.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, BTreeSet::from(["orders-eu", "orders-us"]));

    // A topic created later that matches joins the subscription at the next metadata check
    // (the rebalance commits first, so only the new topic's records come next).
    create_topic(&mut conn, "orders-apac", 1).await?;
    produce_values(&mut conn, "orders-apac", 0, 0, 2, 1_000, Compression::None).await?;
    let records = poll_n(&mut consumer, 2).await?;
    assert!(records.iter().all(|r| r.topic == "orders-apac"));
    assert!(consumer.assignment().contains(&tp("orders-apac", 0)));
    assert!(
        !consumer
            .assignment()
            .iter()
            .any(|(t, _)| t == "ordersx" || t == "payments")
    );

    // A bad pattern is a config error naming it.
    let mut other = Consumer::new(config(&broker).group_id("bad")).await?;
    let err = other.subscribe_pattern("orders-(").unwrap_err();
    assert!(err.to_string().contains("orders-("), "{err}");
    consumer.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_seek_after_poll_discards_the_prefetched_round() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut conn = broker.connection().await?;
    create_topic(&mut conn, "prefetch", 1).await?;
    produce_values(&mut conn, "prefetch", 0, 0, 50, 1_000, Compression::None).await?;
    let mut consumer = Consumer::new(config(&broker).max_partition_fetch_bytes(256)).await?;
    consumer.assign([tp("prefetch", 0)])?;
    let first = poll_n(&mut consumer, 1).await?;
    assert_eq!(first[0].offset, 0);
    // The next round is prefetched from where the first ended; seeking back must win.
    consumer.seek(tp("prefetch", 0), 3);
    let again = poll_n(&mut consumer, 1).await?;
    assert_eq!(
        again[0].offset,
        3,
        "{:?}",
        again.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    // Reading on without seeks returns every record once, in order.
    let mut offsets: Vec<i64> = again.iter().map(|r| r.offset).collect();
    while offsets.len() < 47 {
        offsets.extend(poll_n(&mut consumer, 1).await?.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (3..50).collect::<Vec<i64>>());
    Ok(())
}
