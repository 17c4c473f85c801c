//! Startup checks and an end-to-end job through the broker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use fjord_streams::{
    Consumed, Error, Grouped, Joined, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder,
    StreamsConfig,
};

use crate::harness::{TestBroker, eventually, produce};

fn config(broker: &TestBroker, app: &str, dir: &tempfile::TempDir) -> StreamsConfig {
    StreamsConfig::new(app, &broker.bootstrap())
        .with_state_dir(dir.path())
        .with_commit_interval(Duration::from_millis(200))
        .with_consumer_property("session.timeout.ms", "2000")
        .with_consumer_property("heartbeat.interval.ms", "300")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_source_topics_are_a_startup_error() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("present", 1).await?;
    let builder = StreamsBuilder::new();
    let ss = || Consumed::with(Serdes::string(), Serdes::string());
    builder
        .stream("present", ss())
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    builder
        .stream("absent-a", ss())
        .to("out2", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir()?;
    let mut streams = KafkaStreams::new(builder.build()?, config(&broker, "missing", &dir))?;
    let err = streams.start().await.unwrap_err();
    assert!(
        matches!(&err, Error::MissingSourceTopics { topics } if topics == &vec!["absent-a".to_string()]),
        "{err}"
    );
    assert!(err.to_string().contains("absent-a"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_of_topics_with_different_partition_counts_are_rejected() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("clicks", 3).await?;
    broker.create_topic("users", 2).await?;
    let builder = StreamsBuilder::new();
    let ss = || Consumed::with(Serdes::string(), Serdes::string());
    let users = builder.table("users", ss(), Materialized::as_store("users"));
    builder
        .stream("clicks", ss())
        .join_table(
            &users,
            |c, u| format!("{c}{u}"),
            Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        )
        .to(
            "enriched",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let dir = tempfile::tempdir()?;
    let mut streams = KafkaStreams::new(builder.build()?, config(&broker, "copart", &dir))?;
    let err = streams.start().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotCoPartitioned { .. }), "{text}");
    assert!(text.contains("clicks") && text.contains("users"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_runs_against_the_broker_with_queries_and_metrics() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("lines", 2).await?;
    broker.create_topic("counts", 2).await?;
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "lines",
            Consumed::with(Serdes::nullable(Serdes::string()), Serdes::string()),
        )
        .flat_map_values(|_, line: String| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, w| w.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("words"),
        )
        .count(Materialized::as_store("word-counts"))
        .to_stream()
        .to(
            "counts",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    let dir = tempfile::tempdir()?;
    let mut streams = KafkaStreams::new(builder.build()?, config(&broker, "wc", &dir))?;
    streams.start().await?;
    let producer = broker.producer()?;
    let lines = ["a b c", "b c", "c", "a a"];
    produce(
        &producer,
        "lines",
        lines.iter().enumerate().map(|(i, l)| {
            (
                Some(Bytes::from(format!("{i}"))),
                Some(Bytes::from(*l)),
                i as i64,
            )
        }),
    )
    .await?;
    // Interactive queries see the final counts.
    let store = streams.key_value_store("word-counts", Serdes::string(), Serdes::i64());
    let expected: BTreeMap<String, i64> = [
        ("a".to_string(), 3),
        ("b".to_string(), 2),
        ("c".to_string(), 3),
    ]
    .into();
    let reached = eventually(Duration::from_secs(30), || {
        store
            .all()
            .is_ok_and(|all| all.into_iter().collect::<BTreeMap<_, _>>() == expected)
    })
    .await;
    assert!(reached, "store holds {:?}", store.all()?);
    assert_eq!(store.get(&"c".to_string())?, Some(3));
    // The output topic's last value per word is the count.
    let out = broker.read("counts", 8, Duration::from_secs(20)).await?;
    let mut last = BTreeMap::new();
    for r in &out {
        let k = String::from_utf8(r.key.clone().unwrap_or_default().to_vec())?;
        let v = i64::from_be_bytes(r.value.as_deref().unwrap_or_default().try_into()?);
        last.insert(k, v);
    }
    assert_eq!(last, expected);
    assert_eq!(out.len(), 8, "one update per word occurrence");
    // Internal topics exist: the repartition topic and the compacted changelog.
    let admin = fjord_client::Admin::connect(&broker.bootstrap()).await?;
    assert_eq!(admin.partitions("wc-words-repartition").await?.len(), 2);
    assert_eq!(admin.partitions("wc-word-counts-changelog").await?.len(), 2);
    let m = streams.metrics();
    assert_eq!(m.records_processed, 4 + 8, "{m:?}");
    streams.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeserializable_records_go_to_the_dead_letter_topic_or_stop_the_application() -> Result<()>
{
    let broker = TestBroker::start().await?;
    for topic in ["numbers", "doubled", "numbers-dlq"] {
        broker.create_topic(topic, 1).await?;
    }
    let topology = || {
        let builder = StreamsBuilder::new();
        builder
            .stream("numbers", Consumed::with(Serdes::string(), Serdes::i64()))
            .map_values(|_, n| n * 2)
            .to("doubled", Produced::with(Serdes::string(), Serdes::i64()));
        builder.build()
    };
    let eight = |n: i64| Some(Bytes::copy_from_slice(&n.to_be_bytes()));
    produce(
        &broker.producer()?,
        "numbers",
        [
            (Some(Bytes::from("a")), eight(1), 0),
            (Some(Bytes::from("b")), Some(Bytes::from("not a number")), 1),
            (Some(Bytes::from("c")), eight(3), 2),
        ],
    )
    .await?;

    // Dead letter: the bad record is set aside, the others are processed.
    let dir = tempfile::tempdir()?;
    let props: BTreeMap<String, String> = [
        ("application.id", "dlq-app"),
        ("bootstrap.servers", broker.bootstrap().as_str()),
        ("state.dir", dir.path().to_str().unwrap_or("/tmp")),
        ("commit.interval.ms", "200"),
        ("errors.dead.letter.queue.topic.name", "numbers-dlq"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut streams = KafkaStreams::new(topology()?, StreamsConfig::from_properties(&props)?)?;
    streams.start().await?;
    let dead = broker
        .read("numbers-dlq", 1, Duration::from_secs(20))
        .await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"not a number"[..]));
    let doubled = broker.read("doubled", 2, Duration::from_secs(20)).await?;
    let values: Vec<i64> = doubled
        .iter()
        .map(|r| {
            i64::from_be_bytes(
                r.value
                    .as_deref()
                    .unwrap_or_default()
                    .try_into()
                    .unwrap_or([0; 8]),
            )
        })
        .collect();
    assert_eq!(values, vec![2, 6]);
    assert!(
        eventually(Duration::from_secs(10), || streams
            .metrics()
            .records_skipped
            == 1)
        .await
    );
    streams.close().await?;

    // Log and fail (the default): the thread stops with an error naming the record.
    let dir = tempfile::tempdir()?;
    let mut streams = KafkaStreams::new(topology()?, config(&broker, "fail-app", &dir))?;
    streams.start().await?;
    let failed = eventually(Duration::from_secs(20), || {
        matches!(streams.state(), fjord_streams::State::Error(_))
    })
    .await;
    assert!(failed, "state {:?}", streams.state());
    let fjord_streams::State::Error(reason) = streams.state() else {
        unreachable!("checked above")
    };
    assert!(reason.contains("numbers-0 at offset 1"), "{reason}");
    assert!(streams.close().await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_threads_of_one_instance_share_the_tasks() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("in4", 4).await?;
    broker.create_topic("out4", 4).await?;
    let builder = StreamsBuilder::new();
    builder
        .stream("in4", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::as_store("per-key"))
        .to_stream()
        .to(
            "out4",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    let dir = tempfile::tempdir()?;
    let mut streams = KafkaStreams::new(
        builder.build()?,
        config(&broker, "threads", &dir).with_threads(2),
    )?;
    streams.start().await?;
    assert!(
        eventually(Duration::from_secs(30), || streams.metrics().tasks.len()
            == 4)
        .await
    );
    produce(
        &broker.producer()?,
        "in4",
        (0..400).map(|i| {
            (
                Some(Bytes::from(format!("k{}", i % 20))),
                Some(Bytes::from_static(b"x")),
                i,
            )
        }),
    )
    .await?;
    let store = streams.key_value_store("per-key", Serdes::string(), Serdes::i64());
    let done = eventually(Duration::from_secs(30), || {
        store
            .all()
            .is_ok_and(|all| all.len() == 20 && all.iter().all(|(_, n)| *n == 20))
    })
    .await;
    assert!(done, "{:?}", store.all()?);
    assert_eq!(
        store.range(&"k10".to_string(), &"k12".to_string())?.len(),
        3
    );
    streams.close().await?;
    Ok(())
}
