//! Nexmark q1, q5 and q7 as fjord-sql continuous queries, and an ad-hoc `count(*) … GROUP BY`
//! scan. Events are JSON (the SQL engine decodes values itself), written to one topic; each
//! query reads the topic from the start and writes its own output topic. Prints events/s.
//!
//! `cargo bench -p fjord-sql --bench nexmark_sql -- [events] [scan-records] [partitions]`
//! (defaults 1,000,000, 10,000,000 and 1). Runs a broker in-process on a loopback port unless
//! `FJORD_BOOTSTRAP` names one. `scan-records` 0 skips the scan.

#[path = "../tests/common/nexmark.rs"]
mod nexmark;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_sql::{SqlConfig, SqlContext};

async fn produce(
    bootstrap: &str,
    topic: &str,
    n: u64,
    partitions: i32,
    value: impl Fn(u64) -> (Vec<u8>, i64),
) -> Result<()> {
    let producer = Producer::new(
        ProducerConfig::new(bootstrap.to_string())
            .with_linger(Duration::from_millis(5))
            .with_batch_size(1 << 20),
    )?;
    let mut pending = Vec::new();
    for i in 0..n {
        let (v, ts) = value(i);
        let record = ProducerRecord::new(topic, Bytes::from(v))
            .with_partition((i % partitions as u64) as i32)
            .with_timestamp(ts);
        pending.push(producer.send(record).await?);
        if pending.len() >= 100_000 {
            for p in pending.drain(..) {
                p.await?;
            }
        }
    }
    for p in pending {
        p.await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let scan: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let partitions: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir()?;
    let (_broker, bootstrap) = match std::env::var("FJORD_BOOTSTRAP") {
        Ok(b) => (None, b),
        Err(_) => {
            let mut values = BTreeMap::new();
            values.insert(
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            );
            values.insert(
                "log.dirs".to_string(),
                dir.path().join("broker").display().to_string(),
            );
            let broker =
                fjord_broker::Broker::open(fjord_broker::BrokerConfig::from_values(values)?)?;
            let server = fjord_broker::Server::bind(broker).await?;
            let addr = server.local_addr().to_string();
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(server.run(shutdown.clone()));
            (Some(shutdown.drop_guard()), addr)
        }
    };
    let admin = Admin::connect(&bootstrap).await?;
    if n > 0 {
        admin
            .create_topic("nexmark-events", partitions, 1, &BTreeMap::new())
            .await?;
        let started = Instant::now();
        // 10 events per ms, as the DSL bench.
        produce(&bootstrap, "nexmark-events", n, partitions, |i| {
            let (e, ts) = nexmark::event(i, 10);
            (e.to_string().into_bytes(), ts)
        })
        .await?;
        println!(
            "generated {n} JSON events into {partitions} partition(s) in {:?}",
            started.elapsed()
        );
        println!("| query | events | seconds | events/s |");
        println!("|---|---:|---:|---:|");
        for (name, sql) in [
            ("q1", nexmark::Q1),
            ("q5", nexmark::Q5),
            ("q7", nexmark::Q7),
        ] {
            let ctx = SqlContext::connect(
                SqlConfig::new(bootstrap.clone()).with_state_dir(dir.path().join(name)),
            )
            .await?;
            let started = Instant::now();
            ctx.sql(&format!("CREATE STREAM \"nexmark-sql-{name}\" AS {sql}"))
                .await?;
            let stats = ctx
                .query_stats(&format!("nexmark-sql-{name}"))
                .ok_or_else(|| anyhow::anyhow!("{name} not running"))?;
            let elapsed = loop {
                let state = stats.state();
                if state.starts_with("FAILED") {
                    bail!("{name}: {state}");
                }
                if stats.records_in.load(Ordering::Relaxed) >= n {
                    break started.elapsed();
                }
                if started.elapsed() > Duration::from_secs(900) {
                    bail!("{name} did not finish");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            ctx.stop_all().await?;
            let out = stats.records_out.load(Ordering::Relaxed);
            println!(
                "| {name} | {n} | {:.2} | {:.0} | ({out} results)",
                elapsed.as_secs_f64(),
                n as f64 / elapsed.as_secs_f64()
            );
        }
    }
    if scan > 0 {
        admin
            .create_topic("scan-events", partitions, 1, &BTreeMap::new())
            .await?;
        let started = Instant::now();
        produce(&bootstrap, "scan-events", scan, partitions, |i| {
            (
                format!("{{\"user\":\"u{}\",\"amount\":{}}}", i % 1000, i % 97).into_bytes(),
                nexmark::BASE + i as i64,
            )
        })
        .await?;
        println!(
            "generated {scan} records into scan-events in {:?}",
            started.elapsed()
        );
        let ctx = SqlContext::connect(SqlConfig::new(bootstrap.clone())).await?;
        for (what, sql) in [
            (
                "count(*) GROUP BY partition (no value decoding)",
                "SELECT partition, count(*) FROM \"scan-events\" GROUP BY partition",
            ),
            (
                "count(*) GROUP BY a JSON field",
                "SELECT \"user\", count(*) FROM \"scan-events\" GROUP BY \"user\"",
            ),
        ] {
            let started = Instant::now();
            let batches = ctx.sql(sql).await?;
            let elapsed = started.elapsed().as_secs_f64();
            let groups: usize = batches.iter().map(|b| b.num_rows()).sum();
            println!(
                "| scan: {what} | {scan} | {elapsed:.2} | {:.0} | ({groups} groups)",
                scan as f64 / elapsed
            );
        }
    }
    Ok(())
}
