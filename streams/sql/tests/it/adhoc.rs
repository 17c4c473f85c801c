//! Ad-hoc queries against a real broker: the sqllogictest file over fixed topics, EXPLAIN and
//! the scan's pushdown, headers, the CLI formats.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use fjord_sql::arrow::array::{Array, ListArray, StructArray};
use fjord_sql::{OutputFormat, SqlConfig, SqlContext};
use serde_json::json;

use crate::harness::{Rec, TestBroker, produce_recs};

pub(crate) const BASE: i64 = 1_700_000_000_000;

/// The fixed topics the .slt files read.
pub(crate) async fn fixtures(broker: &TestBroker) -> Result<()> {
    broker.create_topic("clicks", 2).await?;
    broker.create_topic("raw", 1).await?;
    broker.create_topic("bad", 1).await?;
    let producer = broker.producer()?;
    let users = ["alice", "bob", "carol"];
    let mut clicks = Vec::new();
    for i in 0..10i64 {
        let mut r = Rec::json(
            Some((i % 2) as i32),
            Some(&format!("k{i}")),
            json!({"user": users[(i % 3) as usize], "amount": 10 * i, "page": format!("/p{}", i % 2)}),
            BASE + 1000 * i,
        );
        if i == 0 {
            r.headers = vec![
                ("source".into(), Some(Bytes::from("web"))),
                ("trace".into(), None),
            ];
        }
        clicks.push(r);
    }
    produce_recs(&producer, "clicks", clicks).await?;
    let raw = |v: &'static [u8], i: i64| Rec {
        partition: Some(0),
        key: None,
        value: Some(Bytes::from_static(v)),
        ts: BASE + i,
        headers: Vec::new(),
    };
    produce_recs(
        &producer,
        "raw",
        vec![raw(b"plain text", 0), raw(b"\x00\xff", 1)],
    )
    .await?;
    produce_recs(
        &producer,
        "bad",
        vec![
            Rec::json(Some(0), None, json!({"n": 1}), BASE),
            Rec {
                partition: Some(0),
                key: None,
                value: Some(Bytes::from_static(b"{\"n\": ")),
                ts: BASE + 1,
                headers: Vec::new(),
            },
            Rec::json(Some(0), None, json!({"n": 3}), BASE + 2),
        ],
    )
    .await?;
    Ok(())
}

async fn context(broker: &TestBroker) -> Result<SqlContext> {
    Ok(SqlContext::connect(SqlConfig::new(broker.bootstrap())).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files_pass_over_fixed_topics() -> Result<()> {
    let broker = TestBroker::start().await?;
    fixtures(&broker).await?;
    let ctx = context(&broker).await?;
    let ran = crate::slt::run(&ctx, "adhoc.slt", include_str!("../slt/adhoc.slt")).await?;
    assert!(ran >= 15, "only {ran} records ran");
    assert_eq!(
        ctx.records_skipped(),
        1,
        "the malformed value of `bad` is counted once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_pushed_down_offsets() -> Result<()> {
    let broker = TestBroker::start().await?;
    fixtures(&broker).await?;
    let ctx = context(&broker).await?;
    let plan = ctx
        .sql("EXPLAIN SELECT amount FROM clicks WHERE partition = 1 AND \"offset\" > 2 AND \"timestamp\" >= '2023-11-14T22:13:25Z'")
        .await?;
    let text = fjord_sql::format::displayable(&plan[0]).map(|b| {
        fjord_sql::arrow::util::pretty::pretty_format_batches(&[b]).map(|t| t.to_string())
    })??;
    // Partition 1 holds i = 1, 3, 5, 7, 9 at offsets 0..4; i >= 5 starts at offset 2, and
    // offset > 2 then makes it 3. Only the referenced columns are decoded.
    assert!(
        text.contains("TopicScanExec: topic=clicks, partitions=1, offsets=[1:[3,5)]"),
        "{text}"
    );
    assert!(
        text.contains("projection=[partition, offset, timestamp, amount]"),
        "{text}"
    );
    assert!(text.contains("via ListOffsets"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_a_list_of_key_value_structs() -> Result<()> {
    let broker = TestBroker::start().await?;
    fixtures(&broker).await?;
    let ctx = context(&broker).await?;
    let batches = ctx
        .sql("SELECT headers FROM clicks WHERE partition = 0 AND \"offset\" = 0")
        .await?;
    let list = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .expect("a list");
    let first = list.value(0);
    let headers = first
        .as_any()
        .downcast_ref::<StructArray>()
        .expect("structs");
    assert_eq!(headers.len(), 2);
    let values = headers.column(1);
    assert!(
        !values.is_null(0) && values.is_null(1),
        "the second header has a null value"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_print_as_table_json_and_csv() -> Result<()> {
    let broker = TestBroker::start().await?;
    fixtures(&broker).await?;
    let ctx = context(&broker).await?;
    let batches = ctx
        .sql(
            "SELECT \"user\", sum(amount) AS total FROM clicks GROUP BY \"user\" ORDER BY \"user\"",
        )
        .await?;
    let mut out = Vec::new();
    fjord_sql::format::write_batches(&mut out, &batches, OutputFormat::Json, true)?;
    assert_eq!(
        String::from_utf8(out)?,
        "{\"user\":\"alice\",\"total\":180}\n{\"user\":\"bob\",\"total\":120}\n{\"user\":\"carol\",\"total\":150}\n"
    );
    let mut out = Vec::new();
    fjord_sql::format::write_batches(&mut out, &batches, OutputFormat::Csv, true)?;
    assert_eq!(
        String::from_utf8(out)?,
        "user,total\nalice,180\nbob,120\ncarol,150\n"
    );
    let mut out = Vec::new();
    fjord_sql::format::write_batches(&mut out, &batches, OutputFormat::Table, true)?;
    let table = String::from_utf8(out)?;
    assert!(table.contains("| alice | 180   |"), "{table}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_scan_reads_every_partition_in_parallel() -> Result<()> {
    let broker = TestBroker::start().await?;
    broker.create_topic("events", 4).await?;
    let producer = broker.producer()?;
    let records: Vec<Rec> = (0..20_000i64)
        .map(|i| {
            Rec::json(
                Some((i % 4) as i32),
                None,
                json!({"g": i % 7, "v": i}),
                BASE + i,
            )
        })
        .collect();
    produce_recs(&producer, "events", records).await?;
    let ctx = SqlContext::connect(SqlConfig::new(broker.bootstrap()).with_batch_size(1000)).await?;
    let plan = ctx
        .sql("EXPLAIN SELECT g, count(*) FROM events GROUP BY g")
        .await?;
    let text = fjord_sql::arrow::util::pretty::pretty_format_batches(&plan)?.to_string();
    assert!(text.contains("partitions=4"), "{text}");
    let b = ctx
        .sql("SELECT count(*) AS n, sum(v) AS s, count(DISTINCT g) AS g FROM events")
        .await?;
    let text = fjord_sql::arrow::util::pretty::pretty_format_batches(&b)?.to_string();
    assert!(text.contains("| 20000 | 199990000 | 7 |"), "{text}");
    let _ = Duration::from_secs(0);
    Ok(())
}
