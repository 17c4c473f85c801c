//! End-to-end throughput of file source → topic → JDBC (PostgreSQL) sink, with raw PostgreSQL
//! baselines. Not a criterion bench: one run, rows/s per stage.
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo bench -p fjord-connect --bench pipeline            # 200,000 rows
//! ROWS=1000000 cargo bench -p fjord-connect --bench pipeline
//! ```
//! Needs the PostgreSQL at 127.0.0.1:5432 (database `test`, user `postgres`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_connect::WorkerConfig;
use fjord_connect::runtime::Worker;
use tokio_util::sync::CancellationToken;

const PG: &str = "host=127.0.0.1 port=5432 dbname=test user=postgres";

fn line(i: usize) -> String {
    // ~200 bytes per row.
    format!(
        "{i:010} {}",
        "abcdefghijklmnopqrstuvwxyz0123456789".repeat(5)
    )
}

async fn wait(
    what: &str,
    timeout: Duration,
    mut done: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let broker = Broker::open(BrokerConfig::from_values(config(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &dir.path().join("data").display().to_string()),
        ("auto.create.topics.enable", "true"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]))?)?;
    let server = Server::bind(broker).await?;
    let bootstrap = server.local_addr().to_string();
    tokio::spawn(server.run(shutdown.clone()));

    let (pg, connection) = tokio_postgres::connect(PG, tokio_postgres::NoTls)
        .await
        .context("PostgreSQL")?;
    tokio::spawn(connection);
    let suffix = std::process::id();
    let (sink_table, multi_table, row_table, copy_table) = (
        format!("bench_sink_{suffix}"),
        format!("bench_multi_{suffix}"),
        format!("bench_row_{suffix}"),
        format!("bench_copy_{suffix}"),
    );
    for t in [&sink_table, &multi_table, &row_table, &copy_table] {
        pg.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
            .await?;
    }

    let input = dir.path().join("in.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for i in 0..rows {
        writeln!(f, "{}", line(i))?;
    }
    f.flush()?;
    drop(f);

    let worker = Worker::new(
        WorkerConfig::from_properties(&config(&[
            ("bootstrap.servers", &bootstrap),
            ("offset.flush.interval.ms", "1000"),
            ("producer.linger.ms", "5"),
            ("producer.batch.size", "262144"),
            ("consumer.max.partition.fetch.bytes", "4194304"),
        ]))?,
        "bench",
    )?;
    let topic = format!("bench-{suffix}");

    // Stage 1: file source → topic (JSON with schema envelopes, as the sink needs structs).
    let started = Instant::now();
    worker
        .put_connector(
            "source",
            config(&[
                ("connector.class", "FileStreamSource"),
                ("file", &input.display().to_string()),
                ("topic", &topic),
                ("batch.size", "5000"),
                ("transforms", "hoist"),
                (
                    "transforms.hoist.type",
                    "org.apache.kafka.connect.transforms.HoistField$Value",
                ),
                ("transforms.hoist.field", "line"),
            ]),
            false,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = fjord_client::Admin::connect(&bootstrap).await?;
    let tp = (topic.clone(), 0);
    wait("the source", Duration::from_secs(1800), async || {
        let end = admin
            .list_offsets(std::slice::from_ref(&tp), fjord_client::OffsetSpec::Latest)
            .await
            .ok()
            .and_then(|m| m.get(&tp).copied().flatten())
            .unwrap_or(0);
        Ok(end >= rows as i64)
    })
    .await?;
    let source_secs = started.elapsed().as_secs_f64();

    // Stage 2: topic → PostgreSQL.
    let started = Instant::now();
    worker
        .put_connector(
            "sink",
            config(&[
                ("connector.class", "JdbcSinkConnector"),
                (
                    "connection.url",
                    "jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
                ),
                ("topics", &topic),
                ("table.name.format", &sink_table),
                ("auto.create", "true"),
                ("pk.mode", "kafka"),
            ]),
            false,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let count = format!("SELECT count(*) FROM {sink_table}");
    wait("the sink", Duration::from_secs(1800), async || {
        Ok(match pg.query_one(count.as_str(), &[]).await {
            Ok(row) => row.try_get::<_, i64>(0)? >= rows as i64,
            Err(_) => false,
        })
    })
    .await?;
    let sink_secs = started.elapsed().as_secs_f64();
    worker.shutdown().await;

    // Baselines: the same rows with multi-row INSERTs of 1000 rows, and row by row in one
    // transaction.
    let ddl = |t: &str| {
        format!(
            "CREATE TABLE {t} (__connect_topic TEXT NOT NULL, __connect_partition INT NOT NULL, __connect_offset BIGINT NOT NULL, line TEXT NOT NULL, PRIMARY KEY(__connect_topic,__connect_partition,__connect_offset))"
        )
    };
    pg.batch_execute(&ddl(&multi_table)).await?;
    let started = Instant::now();
    for chunk in (0..rows).collect::<Vec<_>>().chunks(1000) {
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        let mut tuples = Vec::new();
        for (j, i) in chunk.iter().enumerate() {
            tuples.push(format!(
                "(${},${},${},${})",
                j * 4 + 1,
                j * 4 + 2,
                j * 4 + 3,
                j * 4 + 4
            ));
            params.push(Box::new(topic.clone()));
            params.push(Box::new(0i32));
            params.push(Box::new(*i as i64));
            params.push(Box::new(line(*i)));
        }
        let sql = format!("INSERT INTO {multi_table} VALUES {}", tuples.join(","));
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        pg.execute(sql.as_str(), &refs).await?;
    }
    let multi_secs = started.elapsed().as_secs_f64();

    // COPY of the same rows from a CSV file the server reads itself (the raw limit; the file
    // is written before the clock starts).
    let csv = std::env::temp_dir().join(format!("fjord-bench-copy-{suffix}.csv"));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        for i in 0..rows {
            writeln!(f, "{topic},0,{i},{}", line(i))?;
        }
        f.flush()?;
    }
    pg.batch_execute(&ddl(&copy_table)).await?;
    let started = Instant::now();
    pg.batch_execute(&format!(
        "COPY {copy_table} FROM '{}' WITH (FORMAT csv)",
        csv.display()
    ))
    .await
    .context("COPY (the PostgreSQL server reads the file: same machine, superuser)")?;
    let copy_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&csv);

    pg.batch_execute(&ddl(&row_table)).await?;
    let started = Instant::now();
    pg.batch_execute("BEGIN").await?;
    let stmt = pg
        .prepare(&format!("INSERT INTO {row_table} VALUES ($1,$2,$3,$4)"))
        .await?;
    for i in 0..rows {
        pg.execute(&stmt, &[&topic, &0i32, &(i as i64), &line(i)])
            .await?;
    }
    pg.batch_execute("COMMIT").await?;
    let row_secs = started.elapsed().as_secs_f64();

    for t in [&sink_table, &multi_table, &row_table, &copy_table] {
        pg.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
            .await?;
    }
    shutdown.cancel();
    let rate = |secs: f64| rows as f64 / secs;
    println!("rows: {rows} (~200 bytes each)");
    println!(
        "file source -> topic:              {:>10.0} rows/s ({source_secs:.1} s)",
        rate(source_secs)
    );
    println!(
        "topic -> JDBC sink -> PostgreSQL:  {:>10.0} rows/s ({sink_secs:.1} s)",
        rate(sink_secs)
    );
    println!(
        "end to end (stages in sequence):   {:>10.0} rows/s",
        rate(source_secs + sink_secs)
    );
    println!(
        "PostgreSQL multi-row INSERT x1000: {:>10.0} rows/s ({multi_secs:.1} s)",
        rate(multi_secs)
    );
    println!(
        "PostgreSQL row-by-row INSERT, 1 tx:{:>10.0} rows/s ({row_secs:.1} s)",
        rate(row_secs)
    );
    println!(
        "PostgreSQL COPY (server-side CSV): {:>10.0} rows/s ({copy_secs:.1} s)",
        rate(copy_secs)
    );
    println!(
        "sink / multi-row INSERT:           {:>10.2}x",
        multi_secs / sink_secs
    );
    Ok(())
}
