//! Continuous queries against a real broker: windows with late data and a restart, joins,
//! and Nexmark q5/q7 in SQL against the DSL versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use fjord_sql::{SqlConfig, SqlContext};

use crate::harness::{Rec, TestBroker, produce_recs};

const BASE: i64 = 1_700_000_000_000;

async fn context(broker: &TestBroker, state: &Path) -> Result<SqlContext> {
    Ok(SqlContext::connect(SqlConfig::new(broker.bootstrap()).with_state_dir(state)).await?)
}

/// The values of `topic` as JSON, once `count` are there (and nothing more came for 1 s).
async fn output(broker: &TestBroker, topic: &str, count: usize) -> Result<Vec<Value>> {
    let records = broker.read(topic, count, Duration::from_secs(30)).await?;
    if records.len() < count {
        bail!("{topic}: {} records, wanted {count}", records.len());
    }
    // Nothing beyond: wait a little and read again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = broker
        .read(topic, usize::MAX, Duration::from_millis(1500))
        .await?;
    records
        .iter()
        .map(|r| {
            Ok(serde_json::from_slice(
                r.value.as_deref().unwrap_or(b"null"),
            )?)
        })
        .collect()
}

fn view(user: &str, t: i64) -> Rec {
    Rec::json(Some(0), None, json!({"user": user}), BASE + t * 1000)
}

const VIEWS: &str = "CREATE STREAM views_per_10s WITH (allowed_lateness = '5 seconds') AS \
    SELECT CAST(window_start AS BIGINT) AS w, \"user\", count(*) AS views FROM pageviews \
    GROUP BY TUMBLE(\"timestamp\", INTERVAL '10' SECOND), \"user\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_windows_emit_once_with_late_data_across_a_restart() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("pageviews", 1).await?;
    let producer = broker.producer()?;
    let state = tempfile::tempdir()?;
    // a@1 b@2 a@8 a@12, then b@9 (late but within the 5 s lateness), then b@15 closes [0, 10).
    produce_recs(
        &producer,
        "pageviews",
        vec![
            view("a", 1),
            view("b", 2),
            view("a", 8),
            view("a", 12),
            view("b", 9),
            view("b", 15),
        ],
    )
    .await?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(VIEWS).await?;
    let first = output(&broker, "views_per_10s", 2).await?;
    let w = |s: i64| BASE + s * 1000;
    let mut got: Vec<(i64, String, i64)> = first.iter().map(row).collect::<Result<_>>()?;
    got.sort();
    assert_eq!(got, vec![(w(0), "a".into(), 2), (w(0), "b".into(), 2)]);
    let shown = ctx.sql("SHOW QUERIES").await?;
    let text = fjord_sql::arrow::util::pretty::pretty_format_batches(&shown)?.to_string();
    assert!(
        text.contains("views_per_10s")
            && text.contains("RUNNING")
            && text.contains("tumble 10000 ms"),
        "{text}"
    );
    // Stop with [10, 20) open (a@12, b@15); more records arrive while it is down: a@3 is
    // late (its window closed), a@26 closes [10, 20), a@40 closes [20, 30).
    ctx.stop_all().await?;
    produce_recs(
        &producer,
        "pageviews",
        vec![view("a", 3), view("a", 26), view("a", 40)],
    )
    .await?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(VIEWS).await?;
    let all = output(&broker, "views_per_10s", 5).await?;
    let mut got: Vec<(i64, String, i64)> = all.iter().map(row).collect::<Result<_>>()?;
    got.sort();
    assert_eq!(
        got,
        vec![
            (w(0), "a".into(), 2),
            (w(0), "b".into(), 2),
            (w(10), "a".into(), 1),
            (w(10), "b".into(), 1),
            (w(20), "a".into(), 1),
        ],
        "each window exactly once, the open one kept across the restart"
    );
    let stats = ctx.query_stats("views_per_10s").expect("running");
    assert_eq!(
        stats
            .late_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // DROP STREAM stops it and removes its checkpoint.
    ctx.sql("DROP STREAM views_per_10s").await?;
    assert!(ctx.query_names().is_empty());
    assert!(!fjord_sql::continuous::checkpoint::path(state.path(), "views_per_10s").exists());
    Ok(())
}

fn row(v: &Value) -> Result<(i64, String, i64)> {
    match (v["w"].as_i64(), v["user"].as_str(), v["views"].as_i64()) {
        (Some(w), Some(u), Some(n)) => Ok((w, u.to_string(), n)),
        _ => bail!("unexpected row {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_close_after_the_gap() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("pageviews", 1).await?;
    let producer = broker.producer()?;
    let state = tempfile::tempdir()?;
    // a: 0, 2, 4 (one session), 20 (another); b: 1, 30. Gap 5 s.
    produce_recs(
        &producer,
        "pageviews",
        vec![
            view("a", 0),
            view("b", 1),
            view("a", 2),
            view("a", 4),
            view("a", 20),
            view("b", 30),
            view("a", 60),
        ],
    )
    .await?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(
        "CREATE STREAM sessions AS SELECT \"user\", CAST(window_start AS BIGINT) AS s, CAST(window_end AS BIGINT) AS e, count(*) AS n \
         FROM pageviews GROUP BY \"user\", SESSION(\"timestamp\", INTERVAL '5' SECOND)",
    )
    .await?;
    let rows = output(&broker, "sessions", 4).await?;
    let mut got: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|v| {
            (
                v["user"].as_str().unwrap_or("").to_string(),
                (v["s"].as_i64().unwrap_or(0) - BASE) / 1000,
                (v["e"].as_i64().unwrap_or(0) - BASE) / 1000,
                v["n"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    got.sort();
    // Sessions end at their last record (as Kafka's); b@30 closes at 35 <= 60, a@60 is open.
    assert_eq!(
        got,
        vec![
            ("a".into(), 0, 4, 3),
            ("a".into(), 20, 20, 1),
            ("b".into(), 1, 1, 1),
            ("b".into(), 30, 30, 1)
        ]
    );
    ctx.stop_all().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stream_join_within_an_interval() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("orders", 1).await?;
    broker.create_topic("payments", 1).await?;
    let producer = broker.producer()?;
    let state = tempfile::tempdir()?;
    let at = |s: i64| BASE + s * 1000;
    produce_recs(
        &producer,
        "orders",
        vec![
            Rec::json(Some(0), None, json!({"id": 1, "amount": 10}), at(0)),
            Rec::json(Some(0), None, json!({"id": 2, "amount": 20}), at(1)),
            Rec::json(Some(0), None, json!({"id": 3, "amount": 30}), at(2)),
        ],
    )
    .await?;
    // The payments' fields are inferred from what the topic holds when the query starts.
    produce_recs(
        &producer,
        "payments",
        vec![Rec::json(
            Some(0),
            None,
            json!({"order_id": 1, "method": "card"}),
            at(5),
        )],
    )
    .await?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(
        "CREATE STREAM paid AS SELECT o.id, o.amount, p.method FROM orders o JOIN payments p \
         ON o.id = p.order_id AND p.\"timestamp\" BETWEEN o.\"timestamp\" AND o.\"timestamp\" + INTERVAL '10' SECOND",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce_recs(
        &producer,
        "payments",
        vec![
            Rec::json(
                Some(0),
                None,
                json!({"order_id": 3, "method": "cash"}),
                at(3),
            ),
            // Too late for order 2 (paid 19 s after it).
            Rec::json(
                Some(0),
                None,
                json!({"order_id": 2, "method": "card"}),
                at(20),
            ),
        ],
    )
    .await?;
    let rows = output(&broker, "paid", 2).await?;
    let mut got: Vec<(i64, String)> = rows
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().unwrap_or(0),
                v["method"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(1, "card".into()), (3, "cash".into())]);
    ctx.stop_all().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_joined_with_a_compacted_topic_as_a_table() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker
        .create_topic_with("users", 1, &[("cleanup.policy", "compact")])
        .await?;
    broker.create_topic("visits", 1).await?;
    let producer = broker.producer()?;
    let state = tempfile::tempdir()?;
    produce_recs(
        &producer,
        "users",
        vec![
            Rec::json(Some(0), Some("u1"), json!({"name": "Ann"}), BASE),
            Rec::json(Some(0), Some("u2"), json!({"name": "Bo"}), BASE),
            Rec::json(Some(0), Some("u1"), json!({"name": "Anne"}), BASE + 1),
        ],
    )
    .await?;
    produce_recs(
        &producer,
        "visits",
        vec![
            Rec::json(
                Some(0),
                None,
                json!({"user_id": "u1", "page": "/a"}),
                BASE + 10,
            ),
            Rec::json(
                Some(0),
                None,
                json!({"user_id": "u2", "page": "/b"}),
                BASE + 11,
            ),
            Rec::json(
                Some(0),
                None,
                json!({"user_id": "u3", "page": "/c"}),
                BASE + 12,
            ),
        ],
    )
    .await?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(
        "CREATE STREAM enriched AS SELECT v.page, u.name FROM visits v JOIN users u ON v.user_id = CAST(u.key AS VARCHAR)",
    )
    .await?;
    let rows = output(&broker, "enriched", 2).await?;
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|v| {
            (
                v["page"].as_str().unwrap_or("").into(),
                v["name"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("/a".into(), "Anne".into()), ("/b".into(), "Bo".into())],
        "the table's latest value per key; u3 has none"
    );
    ctx.stop_all().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_cause() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("pageviews", 1).await?;
    produce_recs(&broker.producer()?, "pageviews", vec![view("a", 0)]).await?;
    let state = tempfile::tempdir()?;
    let ctx = context(&broker, state.path()).await?;
    let e = ctx
        .sql("CREATE STREAM x AS SELECT nope FROM pageviews")
        .await
        .expect_err("unknown column");
    assert!(e.to_string().contains("No field named nope"), "{e}");
    let e = ctx
        .sql("CREATE STREAM x AS SELECT \"user\", count(*) FROM pageviews GROUP BY \"user\"")
        .await
        .expect_err("no window");
    assert!(e.to_string().contains("needs a window"), "{e}");
    let e = ctx
        .sql("CREATE STREAM x WITH (colour = 'red') AS SELECT * FROM pageviews")
        .await
        .expect_err("bad option");
    assert!(e.to_string().contains("option colour"), "{e}");
    let e = ctx
        .sql("DROP STREAM nothing")
        .await
        .expect_err("no such stream");
    assert!(e.to_string().contains("no stream named nothing"), "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_go_to_the_dead_letter_topic() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("dirty", 1).await?;
    let producer = broker.producer()?;
    produce_recs(
        &producer,
        "dirty",
        vec![
            Rec::json(Some(0), None, json!({"n": 1}), BASE),
            Rec {
                partition: Some(0),
                key: None,
                value: Some(bytes::Bytes::from_static(b"{oops")),
                ts: BASE + 1,
                headers: Vec::new(),
            },
            Rec::json(Some(0), None, json!({"n": 3}), BASE + 2),
        ],
    )
    .await?;
    let state = tempfile::tempdir()?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql("CREATE STREAM clean WITH (dead_letter_topic = 'dirty-dlq') AS SELECT n * 10 AS n FROM dirty").await?;
    let rows = output(&broker, "clean", 2).await?;
    let got: Vec<i64> = rows.iter().map(|v| v["n"].as_i64().unwrap_or(0)).collect();
    assert_eq!(got, vec![10, 30]);
    let dead = broker.read("dirty-dlq", 1, Duration::from_secs(10)).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"{oops"[..]));
    assert!(
        dead[0]
            .headers
            .iter()
            .any(|(k, _)| k == "__fjord.sql.error"),
        "{:?}",
        dead[0].headers
    );
    let stats = ctx.query_stats("clean").expect("running");
    assert_eq!(stats.skipped.load(std::sync::atomic::Ordering::Relaxed), 1);
    ctx.stop_all().await?;
    Ok(())
}

/// DSL results of q5 and q7 for the same events (via TopologyTestDriver).
fn dsl_results(events: &[(Value, i64)]) -> Result<(BTreeMap<i64, i64>, BTreeMap<i64, i64>)> {
    use fjord_streams::test_driver::TopologyTestDriver;
    use fjord_streams::{
        Consumed, EmitStrategy, Grouped, Materialized, Produced, Serdes, StreamsBuilder,
        TimeWindows, WindowedSerde,
    };
    let builder = StreamsBuilder::new();
    let bids = builder
        .stream(
            "nexmark-events",
            Consumed::with(Serdes::unit(), Serdes::json::<Value>()),
        )
        .flat_map_values(|_, e: Value| {
            (e["kind"] == "bid").then(|| {
                (
                    e["auction"].as_i64().unwrap_or(0),
                    e["price"].as_i64().unwrap_or(0),
                )
            })
        });
    // q5: bids per auction per hopping window, then the most per window.
    bids.select_key(|_, (a, _)| *a)
        .group_by_key(
            Grouped::with(Serdes::i64(), Serdes::json::<(i64, i64)>()).named("q5-by-auction"),
        )
        .windowed_by(TimeWindows::of_size_and_grace(10_000, 0)?.advance_by(2_000)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count(Materialized::as_store("q5-counts"))?
        .to_stream()
        .flat_map(|w, n| n.map(|n| (w.window.start, n)))
        .group_by_key(Grouped::with(Serdes::i64(), Serdes::i64()).named("q5-by-window"))
        .reduce(|a, b| (*a).max(*b), Materialized::as_store("q5-max"))
        .to_stream()
        .to(
            "q5-out",
            Produced::with(Serdes::i64(), Serdes::nullable(Serdes::i64())),
        );
    // q7: the highest price per tumbling window.
    bids.select_key(|_, _| 0i64)
        .group_by_key(Grouped::with(Serdes::i64(), Serdes::json::<(i64, i64)>()).named("q7-all"))
        .windowed_by(TimeWindows::of_size_with_no_grace(10_000)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .reduce(
            |a, b| if b.1 > a.1 { *b } else { *a },
            Materialized::as_store("q7-max"),
        )?
        .to_stream()
        .to(
            "q7-out",
            Produced::with(
                WindowedSerde::time(Serdes::i64(), 10_000),
                Serdes::nullable(Serdes::json::<(i64, i64)>()),
            ),
        );
    let mut driver = TopologyTestDriver::new(builder.build()?, "nexmark-dsl")?;
    let input = driver.input_topic("nexmark-events", Serdes::unit(), Serdes::json::<Value>());
    for (e, ts) in events {
        input.pipe(&mut driver, &(), e, *ts)?;
    }
    let q5 = driver.output_topic("q5-out", Serdes::i64(), Serdes::nullable(Serdes::i64()));
    let q7 = driver.output_topic(
        "q7-out",
        WindowedSerde::time(Serdes::i64(), 10_000),
        Serdes::nullable(Serdes::json::<(i64, i64)>()),
    );
    let mut r5 = BTreeMap::new();
    for (w, n) in q5.read_key_values(&mut driver)? {
        if let Some(n) = n {
            r5.insert(w, n);
        }
    }
    let mut r7 = BTreeMap::new();
    for (w, v) in q7.read_key_values(&mut driver)? {
        if let Some((_, p)) = v {
            r7.insert(w.window.start, p);
        }
    }
    Ok((r5, r7))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_q5_and_q7_in_sql_match_the_dsl() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("nexmark-events", 1).await?;
    // 40,000 events at 1 per ms: 40 s of event time.
    let events: Vec<(Value, i64)> = (0..40_000).map(|i| crate::nexmark::event(i, 1)).collect();
    let producer = broker.producer()?;
    produce_recs(
        &producer,
        "nexmark-events",
        events
            .iter()
            .map(|(e, ts)| Rec::json(Some(0), None, e.clone(), *ts))
            .collect(),
    )
    .await?;
    let (dsl5, dsl7) = dsl_results(&events)?;
    assert!(
        dsl5.len() > 10 && dsl7.len() >= 3,
        "{} q5 windows, {} q7 windows",
        dsl5.len(),
        dsl7.len()
    );
    let state = tempfile::tempdir()?;
    let ctx = context(&broker, state.path()).await?;
    ctx.sql(&format!("CREATE STREAM q5 AS {}", crate::nexmark::Q5))
        .await?;
    ctx.sql(&format!("CREATE STREAM q7 AS {}", crate::nexmark::Q7))
        .await?;
    let sql5: BTreeMap<i64, i64> = output(&broker, "q5", dsl5.len())
        .await?
        .iter()
        .map(|v| (v["w"].as_i64().unwrap_or(0), v["n"].as_i64().unwrap_or(0)))
        .collect();
    let sql7: BTreeMap<i64, i64> = output(&broker, "q7", dsl7.len())
        .await?
        .iter()
        .map(|v| {
            (
                v["w"].as_i64().unwrap_or(0),
                v["price"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(sql5, dsl5, "q5: most bids per hopping window");
    assert_eq!(sql7, dsl7, "q7: highest bid per tumbling window");
    ctx.stop_all().await?;
    Ok(())
}
