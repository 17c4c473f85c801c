//! JDBC sink and source against the real PostgreSQL at 127.0.0.1:5432 (database `test`, user
//! `postgres`, trust auth) and SQLite files.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::harness::{TestBroker, TestConnect, append_lines, wait_for, wait_lines};

const PG_URL: &str = "jdbc:postgresql://127.0.0.1:5432/test?user=postgres";

/// A table name unique to this run (lowercase, so quoting does not matter).
fn table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "fj_{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Pg {
    client: tokio_postgres::Client,
    tables: Vec<String>,
}

impl Pg {
    async fn connect() -> Result<Self> {
        let (client, connection) = tokio_postgres::connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=10",
            tokio_postgres::NoTls,
        )
        .await
        .context("PostgreSQL at 127.0.0.1:5432 (database test, user postgres) is needed")?;
        tokio::spawn(connection);
        Ok(Pg {
            client,
            tables: Vec::new(),
        })
    }

    fn own(&mut self, table: &str) {
        self.tables.push(table.to_string());
    }

    async fn exec(&self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .with_context(|| sql.to_string())
    }

    /// Rows as JSON text via row_to_json, in `order`.
    async fn rows(&self, table: &str, order: &str) -> Result<Vec<Value>> {
        let sql = format!("SELECT row_to_json(t)::text FROM \"{table}\" t ORDER BY {order}");
        match self.client.query(sql.as_str(), &[]).await {
            Ok(rows) => rows
                .iter()
                .map(|r| Ok(serde_json::from_str(&r.try_get::<_, String>(0)?)?))
                .collect(),
            // Not created yet.
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42P01") => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn wait_rows(&self, table: &str, order: &str, expected: &[Value]) -> Result<()> {
        let mut last = Vec::new();
        wait_for(
            &format!("rows of {table}"),
            || async {
                let rows = self.rows(table, order).await?;
                Ok((rows == expected, rows))
            },
            &mut last,
        )
        .await
        .with_context(|| format!("last rows: {last:?}"))
    }

    async fn cleanup(&self) {
        for t in &self.tables {
            let _ = self
                .client
                .batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\""))
                .await;
        }
    }
}

/// A JsonConverter envelope.
fn envelope(schema: Value, payload: Value) -> String {
    json!({"schema": schema, "payload": payload}).to_string()
}

#[tokio::test]
async fn file_to_topic_to_postgres_insert_with_kafka_keys() -> Result<()> {
    let mut pg = Pg::connect().await?;
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.txt");
    let tbl = table("lines");
    pg.own(&tbl);
    append_lines(&input, (0..5).map(|i| format!("line {i}")))?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    connect
        .create("src", json!({
            "connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": tbl,
            "transforms": "hoist", "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line",
        }))
        .await?;
    connect
        .create(
            "pg",
            json!({
                "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
                "connection.url": PG_URL, "topics": tbl, "auto.create": "true",
                "pk.mode": "kafka", "insert.mode": "insert",
            }),
        )
        .await?;
    let expected: Vec<Value> = (0..5)
        .map(|i| json!({"__connect_topic": tbl, "__connect_partition": 0, "__connect_offset": i, "line": format!("line {i}")}))
        .collect();
    let result = pg.wait_rows(&tbl, "__connect_offset", &expected).await;
    connect.stop().await?;
    pg.cleanup().await;
    result
}

#[tokio::test]
async fn postgres_upsert_delete_and_evolve_from_keyed_records() -> Result<()> {
    let mut pg = Pg::connect().await?;
    let broker = TestBroker::start().await?;
    let tbl = table("users");
    pg.own(&tbl);
    let key = |id: i64| envelope(json!({"type": "int32", "optional": false}), json!(id));
    let value_schema = json!({"type": "struct", "name": "user", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "name", "type": "string", "optional": true}]});
    let v = |id: i64, name: &str| envelope(value_schema.clone(), json!({"id": id, "name": name}));
    let records = [
        (key(1), v(1, "ann")),
        (key(2), v(2, "bob")),
        (key(1), v(1, "anna")),
        (key(3), v(3, "cy")),
    ];
    let pairs: Vec<(&str, &str)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    broker.produce(&tbl, &pairs).await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    connect
        .create(
            "pg",
            json!({
                "connector.class": "JdbcSinkConnector", "connection.url": PG_URL, "topics": tbl,
                "auto.create": "true", "auto.evolve": "true", "insert.mode": "upsert",
                "pk.mode": "record_key", "pk.fields": "id", "delete.enabled": "true",
            }),
        )
        .await?;
    let rows = |pairs: &[(i64, &str)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(id, n)| json!({"id": id, "name": n}))
            .collect()
    };
    let result = async {
        pg.wait_rows(&tbl, "id", &rows(&[(1, "anna"), (2, "bob"), (3, "cy")]))
            .await?;
        // A tombstone deletes; a record with a new optional field adds a column.
        let producer =
            fjord_client::Producer::new(fjord_client::ProducerConfig::new(broker.bootstrap()))?;
        let mut tomb =
            fjord_client::ProducerRecord::new(tbl.clone(), bytes::Bytes::new()).with_key(key(2));
        tomb.value = None;
        producer.send(tomb).await?.await?;
        producer.close().await;
        let evolved = json!({"type": "struct", "name": "user", "optional": false, "fields": [
            {"field": "id", "type": "int32", "optional": false},
            {"field": "name", "type": "string", "optional": true},
            {"field": "email", "type": "string", "optional": true}]});
        let v4 = envelope(evolved, json!({"id": 4, "name": "dee", "email": "d@x"}));
        broker
            .produce(&tbl, &[(key(4).as_str(), v4.as_str())])
            .await?;
        pg.wait_rows(
            &tbl,
            "id",
            &[
                json!({"id": 1, "name": "anna", "email": null}),
                json!({"id": 3, "name": "cy", "email": null}),
                json!({"id": 4, "name": "dee", "email": "d@x"}),
            ],
        )
        .await
    }
    .await;
    connect.stop().await?;
    pg.cleanup().await;
    result
}

#[tokio::test]
async fn postgres_table_to_topic_to_file_incrementing_and_timestamp() -> Result<()> {
    let mut pg = Pg::connect().await?;
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let inc = table("inc");
    let ts = table("ts");
    pg.own(&inc);
    pg.own(&ts);
    pg.exec(&format!(
        "CREATE TABLE \"{inc}\" (id SERIAL PRIMARY KEY, name TEXT NOT NULL)"
    ))
    .await?;
    pg.exec(&format!("INSERT INTO \"{inc}\" (name) VALUES ('a'), ('b')"))
        .await?;
    pg.exec(&format!(
        "CREATE TABLE \"{ts}\" (k TEXT PRIMARY KEY, updated TIMESTAMP NOT NULL)"
    ))
    .await?;
    pg.exec(&format!(
        "INSERT INTO \"{ts}\" VALUES ('x', '2024-01-01 00:00:00'), ('y', '2024-01-01 00:00:01')"
    ))
    .await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let out_inc = dir.path().join("inc.txt");
    let out_ts = dir.path().join("ts.txt");
    let result = async {
        for (name, mode, t, extra) in [
            (
                "src-inc",
                "incrementing",
                &inc,
                json!({"incrementing.column.name": "id"}),
            ),
            (
                "src-ts",
                "timestamp",
                &ts,
                json!({"timestamp.column.name": "updated"}),
            ),
        ] {
            let mut config = json!({
                "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
                "connection.url": PG_URL, "mode": mode, "table.whitelist": t,
                "topic.prefix": "pg-", "poll.interval.ms": "200",
            });
            if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            connect.create(name, config).await?;
        }
        for (name, t, out) in [("sink-inc", &inc, &out_inc), ("sink-ts", &ts, &out_ts)] {
            connect
                .create(
                    name,
                    json!({"connector.class": "FileStreamSink", "topics": format!("pg-{t}"),
                    "file": out.display().to_string()}),
                )
                .await?;
        }
        assert_eq!(
            wait_lines(&out_inc, 2).await?,
            [r#"{"id":1,"name":"a"}"#, r#"{"id":2,"name":"b"}"#]
        );
        pg.exec(&format!("INSERT INTO \"{inc}\" (name) VALUES ('c')"))
            .await?;
        assert_eq!(wait_lines(&out_inc, 3).await?[2], r#"{"id":3,"name":"c"}"#);

        // 2024-01-01T00:00:00Z is 1704067200000 ms.
        assert_eq!(
            wait_lines(&out_ts, 2).await?,
            [
                r#"{"k":"x","updated":1704067200000}"#,
                r#"{"k":"y","updated":1704067201000}"#,
            ]
        );
        pg.exec(&format!(
            "UPDATE \"{ts}\" SET updated = '2024-01-01 00:00:05' WHERE k = 'x'"
        ))
        .await?;
        assert_eq!(
            wait_lines(&out_ts, 3).await?[2],
            r#"{"k":"x","updated":1704067205000}"#
        );
        let (_, offsets) = connect.get("/connectors/src-inc/offsets").await?;
        assert_eq!(
            offsets,
            json!({"offsets": [{"partition": {"table": inc}, "offset": {"incrementing": 3}}]})
        );
        anyhow::Ok(())
    }
    .await;
    connect.stop().await?;
    pg.cleanup().await;
    result
}

#[tokio::test]
async fn sqlite_sink_upsert_and_source_incrementing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("fjord.db");
    let url = format!("jdbc:sqlite:{}", db.display());
    let topic = table("orders");
    let schema = json!({"type": "struct", "optional": false, "fields": [
        {"field": "id", "type": "int64", "optional": false},
        {"field": "item", "type": "string", "optional": false},
        {"field": "at", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "optional": true}]});
    let v = |id: i64, item: &str| {
        envelope(
            schema.clone(),
            json!({"id": id, "item": item, "at": 1_704_067_200_000i64 + id}),
        )
    };
    let values = [v(1, "tea"), v(2, "cake"), v(1, "coffee")];
    let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("", v.as_str())).collect();
    broker.produce(&topic, &pairs).await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let out = dir.path().join("out.txt");
    let result = async {
        connect
            .create("sqlite-sink", json!({
                "connector.class": "JdbcSinkConnector", "connection.url": url, "topics": topic,
                "table.name.format": "orders", "auto.create": "true", "insert.mode": "upsert",
                "pk.mode": "record_value", "pk.fields": "id",
            }))
            .await?;
        let check_db = db.clone();
        let mut last = Vec::new();
        wait_for("sqlite rows", || {
            let path = check_db.clone();
            async move {
                let rows = tokio::task::spawn_blocking(move || -> Result<Vec<(i64, String, String)>> {
                    let conn = rusqlite::Connection::open(&path)?;
                    let mut stmt = match conn.prepare("SELECT id, item, at FROM orders ORDER BY id") {
                        Ok(s) => s,
                        Err(_) => return Ok(Vec::new()),
                    };
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .await??;
                Ok((rows.len() == 2 && rows[0].1 == "coffee", rows))
            }
        }, &mut last)
        .await
        .with_context(|| format!("{last:?}"))?;
        assert_eq!(last, [
            (1, "coffee".to_string(), "2024-01-01 00:00:00.001".to_string()),
            (2, "cake".to_string(), "2024-01-01 00:00:00.002".to_string()),
        ]);

        // The same table back out, incrementing on id, to a file.
        connect
            .create("sqlite-src", json!({
                "connector.class": "JdbcSourceConnector", "connection.url": url, "mode": "incrementing",
                "incrementing.column.name": "id", "table.whitelist": "orders", "topic.prefix": format!("{topic}-"),
                "poll.interval.ms": "200",
            }))
            .await?;
        connect
            .create("file-sink", json!({"connector.class": "FileStreamSink", "topics": format!("{topic}-orders"),
                "file": out.display().to_string()}))
            .await?;
        assert_eq!(wait_lines(&out, 2).await?, [
            r#"{"id":1,"item":"coffee","at":1704067200001}"#,
            r#"{"id":2,"item":"cake","at":1704067200002}"#,
        ]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        anyhow::Ok(())
    }
    .await;
    connect.stop().await?;
    result
}

#[tokio::test]
async fn postgres_timestamp_incrementing_bulk_and_query_modes() -> Result<()> {
    let mut pg = Pg::connect().await?;
    let broker = TestBroker::start().await?;
    let tbl = table("events");
    pg.own(&tbl);
    pg.exec(&format!(
        "CREATE TABLE \"{tbl}\" (id INT PRIMARY KEY, kind TEXT, at TIMESTAMP NOT NULL)"
    ))
    .await?;
    // Two rows share a timestamp: timestamp+incrementing must not lose either.
    pg.exec(&format!(
        "INSERT INTO \"{tbl}\" VALUES (1, 'a', '2024-01-01 00:00:00'), (2, 'b', '2024-01-01 00:00:00'), (3, 'c', '2024-01-01 00:00:01')"
    ))
    .await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let prefix = format!("{tbl}-");
    let result =
        async {
            connect
            .create("ts-inc", json!({
                "connector.class": "JdbcSourceConnector", "connection.url": PG_URL,
                "mode": "timestamp+incrementing", "incrementing.column.name": "id",
                "timestamp.column.name": "at", "table.whitelist": tbl, "topic.prefix": prefix,
                "poll.interval.ms": "200", "batch.max.rows": "2",
            }))
            .await?;
            connect
            .create("bulk", json!({
                "connector.class": "JdbcSourceConnector", "connection.url": PG_URL, "mode": "bulk",
                "query": format!("SELECT id, kind FROM \"{tbl}\" WHERE id < 3"),
                "topic.prefix": format!("{tbl}-bulk"), "poll.interval.ms": "60000",
            }))
            .await?;
            let topic = format!("{prefix}{tbl}");
            let records = broker.read(&topic, 3).await?;
            let ids: Vec<Value> = records
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Value>(r.value.as_deref().unwrap_or_default())
                        .map(|v| v["payload"]["id"].clone())
                })
                .collect::<Result<_, _>>()?;
            assert_eq!(ids, [json!(1), json!(2), json!(3)]);
            // A row at an existing timestamp with a higher id, and an update moving a row later.
            pg.exec(&format!(
                "INSERT INTO \"{tbl}\" VALUES (4, 'd', '2024-01-01 00:00:01')"
            ))
            .await?;
            pg.exec(&format!(
                "UPDATE \"{tbl}\" SET at = '2024-01-01 00:00:02' WHERE id = 1"
            ))
            .await?;
            let records = broker.read(&topic, 5).await?;
            let tail: Vec<Value> = records[3..]
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Value>(r.value.as_deref().unwrap_or_default())
                        .map(|v| v["payload"]["id"].clone())
                })
                .collect::<Result<_, _>>()?;
            assert_eq!(tail, [json!(4), json!(1)]);
            let bulk = broker.read(&format!("{tbl}-bulk"), 2).await?;
            let first: Value =
                serde_json::from_slice(bulk[0].value.as_deref().unwrap_or_default())?;
            assert_eq!(first["payload"], json!({"id": 1, "kind": "a"}));
            assert_eq!(
                first["schema"]["fields"][0],
                json!({"field": "id", "type": "int32", "optional": true})
            );
            anyhow::Ok(())
        }
        .await;
    connect.stop().await?;
    pg.cleanup().await;
    result
}

#[tokio::test]
async fn sqlite_timestamp_mode_reads_text_timestamps() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("ts.db");
    {
        let conn = rusqlite::Connection::open(&db)?;
        conn.execute_batch(
            "CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT, updated TIMESTAMP);
             INSERT INTO log VALUES (1, 'x', '2024-01-01 00:00:00.000'), (2, 'y', '2024-01-01 00:00:01.500');",
        )?;
    }
    let topic_prefix = table("sqlts");
    let mut connect = TestConnect::start(&broker, &[]).await?;
    let result = async {
        connect
            .create(
                "src",
                json!({
                    "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
                    "connection.url": format!("jdbc:sqlite:{}", db.display()), "mode": "timestamp",
                    "timestamp.column.name": "updated", "table.whitelist": "log",
                    "topic.prefix": format!("{topic_prefix}-"), "poll.interval.ms": "200",
                }),
            )
            .await?;
        let topic = format!("{topic_prefix}-log");
        let records = broker.read(&topic, 2).await?;
        let v: Value = serde_json::from_slice(records[1].value.as_deref().unwrap_or_default())?;
        assert_eq!(
            v["payload"],
            json!({"id": 2, "msg": "y", "updated": 1_704_067_201_500i64})
        );
        assert_eq!(
            v["schema"]["fields"][2]["name"],
            "org.apache.kafka.connect.data.Timestamp"
        );
        let path = db.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch("UPDATE log SET updated = '2024-01-01 00:00:03.000' WHERE id = 1")?;
            Ok(())
        })
        .await??;
        let records = broker.read(&topic, 3).await?;
        let v: Value = serde_json::from_slice(records[2].value.as_deref().unwrap_or_default())?;
        assert_eq!(v["payload"]["id"], 1);
        anyhow::Ok(())
    }
    .await;
    connect.stop().await?;
    result
}

#[tokio::test]
async fn a_failing_put_is_retried_with_backoff_until_it_succeeds() -> Result<()> {
    let mut pg = Pg::connect().await?;
    let broker = TestBroker::start().await?;
    let tbl = table("retry");
    pg.own(&tbl);
    let schema = json!({"type": "struct", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false}]});
    let values: Vec<String> = (1..=3)
        .map(|i| envelope(schema.clone(), json!({"id": i})))
        .collect();
    let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("", v.as_str())).collect();
    broker.produce(&tbl, &pairs).await?;
    let mut connect = TestConnect::start(&broker, &[]).await?;
    // The table is missing and auto.create is off: every put fails until it exists.
    connect
        .create(
            "pg",
            json!({
                "connector.class": "JdbcSinkConnector", "connection.url": PG_URL, "topics": tbl,
                "insert.mode": "insert", "errors.retry.timeout": "60000",
                "errors.retry.delay.max.ms": "500",
            }),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = connect.get("/connectors/pg/status").await?.1;
    let result = async {
        anyhow::ensure!(status["tasks"][0]["state"] == "RUNNING", "{status}");
        pg.exec(&format!("CREATE TABLE \"{tbl}\" (id INT PRIMARY KEY)"))
            .await?;
        let expected: Vec<Value> = (1..=3).map(|i| json!({"id": i})).collect();
        pg.wait_rows(&tbl, "id", &expected).await?;
        connect.wait_state("pg", "RUNNING").await.map(|_| ())
    }
    .await;
    connect.stop().await?;
    pg.cleanup().await;
    result
}
