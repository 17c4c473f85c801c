//! `JdbcSourceConnector`: tables (or a query) to records, in Confluent's modes `bulk`,
//! `incrementing`, `timestamp` and `timestamp+incrementing`. Offsets are
//! `{"incrementing": id}` and/or `{"timestamp": ms}` under the partition `{"table": name}` (or
//! `{"query": "query"}`), so a restarted task continues after the last row it produced.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::db::{Db, SqlValue};
use super::dialect::{Dialect, quote};
use super::url::JdbcUrl;
use crate::config::{ConfigDef, ConfigKey, ConfigType, ConnectorConfig, Importance, parse_list};
use crate::data::{ConnectRecord, Schema, SourceRecord, Value};
use crate::error::{Error, Result};
use crate::plugin::{
    BoxFuture, OffsetMap, SourceConnector, SourceTask, SourceTaskContext, TaskConfigs,
};

/// Longest a `poll` sleeps before returning an empty batch.
const MAX_IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

#[derive(Debug, Clone)]
struct Settings {
    url: JdbcUrl,
    mode: Mode,
    incrementing: Option<String>,
    timestamp: Option<String>,
    tables: Vec<String>,
    query: Option<String>,
    poll_interval: Duration,
    topic_prefix: String,
    batch_max_rows: usize,
}

fn get<'a>(values: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn positive(values: &BTreeMap<String, String>, key: &str, default: &str) -> Result<u64> {
    let v = get(values, key).unwrap_or(default);
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::config(key, v, "Value must be at least 1"))
}

impl Settings {
    fn parse(values: &BTreeMap<String, String>) -> Result<Self> {
        let url = JdbcUrl::parse(
            get(values, "connection.url").ok_or_else(|| Error::MissingConfig {
                key: "connection.url".into(),
            })?,
            get(values, "connection.user"),
            get(values, "connection.password"),
        )?;
        let mode_text =
            get(values, "mode").ok_or_else(|| Error::MissingConfig { key: "mode".into() })?;
        let mode = match mode_text {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            other => {
                return Err(Error::config(
                    "mode",
                    other,
                    "String must be one of: bulk, timestamp, incrementing, timestamp+incrementing",
                ));
            }
        };
        let incrementing = get(values, "incrementing.column.name").map(str::to_string);
        let timestamp = parse_list(values.get("timestamp.column.name"))
            .into_iter()
            .next();
        if matches!(mode, Mode::Incrementing | Mode::TimestampIncrementing)
            && incrementing.is_none()
        {
            return Err(Error::MissingConfig {
                key: "incrementing.column.name".into(),
            });
        }
        if matches!(mode, Mode::Timestamp | Mode::TimestampIncrementing) && timestamp.is_none() {
            return Err(Error::MissingConfig {
                key: "timestamp.column.name".into(),
            });
        }
        let tables = parse_list(values.get("table.whitelist"));
        let query = get(values, "query").map(str::to_string);
        match (tables.is_empty(), &query) {
            (false, Some(_)) => {
                return Err(Error::config(
                    "query",
                    query.as_deref().unwrap_or(""),
                    "query and table.whitelist are mutually exclusive",
                ));
            }
            (true, None) => {
                return Err(Error::config(
                    "table.whitelist",
                    "",
                    "set table.whitelist (tables to copy) or query",
                ));
            }
            _ => {}
        }
        let topic_prefix = values
            .get("topic.prefix")
            .map(|t| t.trim().to_string())
            .ok_or_else(|| Error::MissingConfig {
                key: "topic.prefix".into(),
            })?;
        if query.is_some() && topic_prefix.is_empty() {
            return Err(Error::config(
                "topic.prefix",
                "",
                "query mode needs topic.prefix (the whole topic name)",
            ));
        }
        Ok(Settings {
            url,
            mode,
            incrementing,
            timestamp,
            tables,
            query,
            poll_interval: Duration::from_millis(positive(values, "poll.interval.ms", "5000")?),
            topic_prefix,
            batch_max_rows: usize::try_from(positive(values, "batch.max.rows", "100")?)
                .unwrap_or(100),
        })
    }
}

/// `io.confluent.connect.jdbc.JdbcSourceConnector`.
#[derive(Debug, Default)]
pub struct JdbcSourceConnector;

impl SourceConnector for JdbcSourceConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new(super::connection_keys()).with([
            ConfigKey::new(
                "mode",
                ConfigType::String,
                None,
                Importance::High,
                "bulk, incrementing, timestamp or timestamp+incrementing.",
            )
            .in_group("Mode")
            .one_of(&[
                "bulk",
                "incrementing",
                "timestamp",
                "timestamp+incrementing",
            ]),
            ConfigKey::new(
                "incrementing.column.name",
                ConfigType::String,
                Some(""),
                Importance::Medium,
                "A strictly increasing integer column.",
            )
            .in_group("Mode"),
            ConfigKey::new(
                "timestamp.column.name",
                ConfigType::List,
                Some(""),
                Importance::Medium,
                "Timestamp column(s) of last modification (the first is used).",
            )
            .in_group("Mode"),
            ConfigKey::new(
                "table.whitelist",
                ConfigType::List,
                Some(""),
                Importance::Medium,
                "Tables to copy.",
            )
            .in_group("Database"),
            ConfigKey::new(
                "query",
                ConfigType::String,
                Some(""),
                Importance::Medium,
                "A query instead of tables (its rows go to topic.prefix).",
            )
            .in_group("Mode"),
            ConfigKey::new(
                "poll.interval.ms",
                ConfigType::Int,
                Some("5000"),
                Importance::High,
                "How often to look for new rows.",
            )
            .in_group("Connector"),
            ConfigKey::new(
                "batch.max.rows",
                ConfigType::Int,
                Some("100"),
                Importance::Low,
                "Rows per poll.",
            )
            .in_group("Connector"),
            ConfigKey::new(
                "topic.prefix",
                ConfigType::String,
                None,
                Importance::High,
                "Prefix of the table's topic name (the topic itself in query mode).",
            )
            .in_group("Connector"),
        ])
    }

    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        Settings::parse(&config.values).map(|_| ())
    }

    fn task_configs(&self, config: &ConnectorConfig, max_tasks: usize) -> Result<TaskConfigs> {
        let settings = Settings::parse(&config.values)?;
        if settings.query.is_some() {
            return Ok(vec![config.values.clone()]);
        }
        // Tables round-robin over the tasks, in `tables` of each task's config.
        let n = max_tasks.clamp(1, settings.tables.len());
        let mut groups: Vec<Vec<String>> = vec![Vec::new(); n];
        for (i, t) in settings.tables.iter().enumerate() {
            groups[i % n].push(t.clone());
        }
        Ok(groups
            .into_iter()
            .map(|g| {
                let mut c = config.values.clone();
                c.insert("tables".into(), g.join(","));
                c
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(JdbcSourceTask::default())
    }
}

/// One table or the query, with where it has read to.
struct Querier {
    table: Option<String>,
    topic: String,
    partition: OffsetMap,
    last_incrementing: i64,
    last_timestamp: i64,
    next_run: Instant,
    /// Declared column types (SQLite), read once.
    declared: Option<BTreeMap<String, String>>,
}

/// Polls its tables in turn.
#[derive(Default)]
pub struct JdbcSourceTask {
    settings: Option<Settings>,
    db: Option<Db>,
    queriers: Vec<Querier>,
}

fn source_error(reason: impl Into<String>) -> Error {
    Error::Connector {
        connector: "JdbcSourceConnector".into(),
        reason: reason.into(),
    }
}

impl JdbcSourceTask {
    fn statement(&self, q: &Querier, dialect: Dialect) -> Result<(String, Vec<SqlValue>)> {
        let s = self
            .settings
            .as_ref()
            .ok_or_else(|| source_error("task not started"))?;
        let from = match (&q.table, &s.query) {
            (Some(t), _) => quote(t),
            (None, Some(query)) => format!("({query}) AS fjord_query"),
            (None, None) => return Err(source_error("no table or query")),
        };
        let inc = s.incrementing.as_deref().map(quote).unwrap_or_default();
        let ts = s.timestamp.as_deref().map(quote).unwrap_or_default();
        let p = |n| dialect.placeholder(n);
        let limit = s.batch_max_rows;
        Ok(match s.mode {
            Mode::Bulk => (format!("SELECT * FROM {from}"), Vec::new()),
            Mode::Incrementing => (
                format!(
                    "SELECT * FROM {from} WHERE {inc} > {} ORDER BY {inc} ASC LIMIT {limit}",
                    p(1)
                ),
                vec![SqlValue::Int(q.last_incrementing)],
            ),
            Mode::Timestamp => (
                format!(
                    "SELECT * FROM {from} WHERE {ts} > {} ORDER BY {ts} ASC LIMIT {limit}",
                    p(1)
                ),
                vec![SqlValue::Timestamp(q.last_timestamp)],
            ),
            Mode::TimestampIncrementing => (
                format!(
                    "SELECT * FROM {from} WHERE ({ts} = {} AND {inc} > {}) OR {ts} > {} ORDER BY {ts} ASC, {inc} ASC LIMIT {limit}",
                    p(1),
                    p(2),
                    p(3)
                ),
                vec![
                    SqlValue::Timestamp(q.last_timestamp),
                    SqlValue::Int(q.last_incrementing),
                    SqlValue::Timestamp(q.last_timestamp),
                ],
            ),
        })
    }

    async fn run_querier(&mut self, index: usize) -> Result<Vec<SourceRecord>> {
        let settings = self
            .settings
            .clone()
            .ok_or_else(|| source_error("task not started"))?;
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| source_error("task not started"))?;
        let dialect = if db.is_postgres() {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        };
        if !db.is_postgres()
            && self.queriers[index].declared.is_none()
            && let Some(t) = self.queriers[index].table.clone()
        {
            let cols = db.columns(&t).await?.unwrap_or_default();
            self.queriers[index].declared = Some(cols.into_iter().collect());
        }
        let (sql, params) = self.statement(&self.queriers[index], dialect)?;
        let declared = self.queriers[index].declared.clone();
        let (columns, rows) = db.query(&sql, params, declared).await?;
        let q = &mut self.queriers[index];
        let name = q.table.clone().unwrap_or_else(|| "query".into());
        let mut schema = Schema::struct_().named(name.clone());
        for c in &columns {
            schema = schema.field(c.name.clone(), c.schema.clone());
        }
        let find = |col: &Option<String>| {
            col.as_ref()
                .and_then(|n| columns.iter().position(|c| &c.name == n))
        };
        let inc_index = find(&settings.incrementing);
        let ts_index = find(&settings.timestamp);
        if settings.mode != Mode::Bulk {
            if matches!(
                settings.mode,
                Mode::Incrementing | Mode::TimestampIncrementing
            ) && inc_index.is_none()
            {
                return Err(source_error(format!(
                    "{name} has no column {:?} (incrementing.column.name)",
                    settings.incrementing
                )));
            }
            if matches!(settings.mode, Mode::Timestamp | Mode::TimestampIncrementing)
                && ts_index.is_none()
            {
                return Err(source_error(format!(
                    "{name} has no column {:?} (timestamp.column.name)",
                    settings.timestamp
                )));
            }
        }
        let full = rows.len() >= settings.batch_max_rows && settings.mode != Mode::Bulk;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(i) = inc_index {
                match row[i] {
                    SqlValue::Int(v) => q.last_incrementing = v,
                    _ => {
                        return Err(source_error(format!(
                            "{name}: the incrementing column must be a non-null integer"
                        )));
                    }
                }
            }
            if let Some(i) = ts_index {
                match row[i] {
                    SqlValue::Timestamp(v) => q.last_timestamp = v,
                    _ => {
                        return Err(source_error(format!(
                            "{name}: the timestamp column must be a non-null timestamp"
                        )));
                    }
                }
            }
            let mut offset = OffsetMap::new();
            if inc_index.is_some() {
                offset.insert("incrementing".into(), json!(q.last_incrementing));
            }
            if ts_index.is_some() {
                offset.insert("timestamp".into(), json!(q.last_timestamp));
                offset.insert(
                    "timestamp_nanos".into(),
                    json!((q.last_timestamp.rem_euclid(1000)) * 1_000_000),
                );
            }
            let fields = columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), sql_to_value(v)))
                .collect();
            records.push(SourceRecord {
                source_partition: q.partition.clone(),
                source_offset: offset,
                record: ConnectRecord::new(
                    q.topic.clone(),
                    Some(schema.clone()),
                    Value::Struct(fields),
                ),
            });
        }
        q.next_run = if full {
            Instant::now()
        } else {
            Instant::now() + settings.poll_interval
        };
        Ok(records)
    }
}

fn sql_to_value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Bool(b) => Value::Boolean(b),
        SqlValue::Int(i) | SqlValue::Timestamp(i) => Value::Int(i),
        SqlValue::Float(f) => Value::Float(f),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Bytes(b) => Value::Bytes(b),
    }
}

impl SourceTask for JdbcSourceTask {
    fn start<'a>(
        &'a mut self,
        config: &'a BTreeMap<String, String>,
        context: SourceTaskContext,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let settings = Settings::parse(config)?;
            let now = Instant::now();
            let targets: Vec<Option<String>> = match &settings.query {
                Some(_) => vec![None],
                None => {
                    let mine = parse_list(config.get("tables"));
                    let tables = if mine.is_empty() {
                        settings.tables.clone()
                    } else {
                        mine
                    };
                    tables.into_iter().map(Some).collect()
                }
            };
            self.queriers = targets
                .into_iter()
                .map(|table| {
                    let mut partition = OffsetMap::new();
                    let topic = match (&table, &settings.query) {
                        (Some(t), _) => {
                            partition.insert("table".into(), json!(t));
                            format!("{}{t}", settings.topic_prefix)
                        }
                        (None, q) => {
                            partition.insert("query".into(), json!(q.clone().unwrap_or_default()));
                            settings.topic_prefix.clone()
                        }
                    };
                    let stored = context.offset(&partition).unwrap_or_default();
                    Querier {
                        table,
                        topic,
                        last_incrementing: stored
                            .get("incrementing")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(-1),
                        last_timestamp: stored
                            .get("timestamp")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0),
                        partition,
                        next_run: now,
                        declared: None,
                    }
                })
                .collect();
            self.db = Some(Db::connect(&settings.url).await?);
            self.settings = Some(settings);
            Ok(())
        })
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            let now = Instant::now();
            let due = self
                .queriers
                .iter()
                .enumerate()
                .filter(|(_, q)| q.next_run <= now)
                .min_by_key(|(_, q)| q.next_run)
                .map(|(i, _)| i);
            match due {
                Some(i) => self.run_querier(i).await,
                None => {
                    let next = self
                        .queriers
                        .iter()
                        .map(|q| q.next_run)
                        .min()
                        .unwrap_or(now + MAX_IDLE);
                    tokio::time::sleep_until(next.min(now + MAX_IDLE)).await;
                    Ok(Vec::new())
                }
            }
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.db = None;
        })
    }
}
