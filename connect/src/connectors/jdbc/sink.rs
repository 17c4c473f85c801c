//! `JdbcSinkConnector`: records to rows with Confluent's keys. Every `put` is written in
//! transactions of at most `batch.size` records, so a crash never leaves half a batch.

use std::collections::{BTreeMap, BTreeSet};

use super::db::{Db, SqlValue};
use super::dialect::Dialect;
use super::url::JdbcUrl;
use crate::config::{
    ConfigDef, ConfigKey, ConfigType, ConnectorConfig, Importance, parse_bool, parse_list,
};
use crate::data::{Schema, SchemaType, SinkRecord, Value, logical};
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, SinkConnector, SinkTask, TaskConfigs};

const CONNECTOR: &str = "JdbcSinkConnector";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

#[derive(Debug, Clone)]
struct Settings {
    url: JdbcUrl,
    table_format: String,
    insert_mode: InsertMode,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    auto_create: bool,
    auto_evolve: bool,
    batch_size: usize,
    delete_enabled: bool,
    fields_whitelist: Vec<String>,
}

fn get<'a>(values: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
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
        let insert_mode = match get(values, "insert.mode")
            .unwrap_or("insert")
            .to_ascii_lowercase()
            .as_str()
        {
            "insert" => InsertMode::Insert,
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            other => {
                return Err(Error::config(
                    "insert.mode",
                    other,
                    "String must be one of: insert, upsert, update",
                ));
            }
        };
        let pk_mode = match get(values, "pk.mode")
            .unwrap_or("none")
            .to_ascii_lowercase()
            .as_str()
        {
            "none" => PkMode::None,
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            other => {
                return Err(Error::config(
                    "pk.mode",
                    other,
                    "String must be one of: none, kafka, record_key, record_value",
                ));
            }
        };
        let pk_fields = parse_list(values.get("pk.fields"));
        if pk_mode == PkMode::Kafka && !pk_fields.is_empty() && pk_fields.len() != 3 {
            return Err(Error::config(
                "pk.fields",
                &pk_fields.join(","),
                "pk.mode=kafka needs exactly 3 fields (topic, partition, offset) or none",
            ));
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            return Err(Error::config(
                "pk.mode",
                "none",
                "insert.mode upsert and update need a primary key (pk.mode)",
            ));
        }
        let delete_enabled = parse_bool(values, "delete.enabled", false)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(Error::config(
                "delete.enabled",
                "true",
                "Deletes are only supported for pk.mode record_key",
            ));
        }
        let batch = get(values, "batch.size").unwrap_or("3000");
        let batch_size = batch
            .parse::<usize>()
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| Error::config("batch.size", batch, "Value must be at least 1"))?;
        Ok(Settings {
            url,
            table_format: get(values, "table.name.format")
                .unwrap_or("${topic}")
                .to_string(),
            insert_mode,
            pk_mode,
            pk_fields,
            auto_create: parse_bool(values, "auto.create", false)?,
            auto_evolve: parse_bool(values, "auto.evolve", false)?,
            batch_size,
            delete_enabled,
            fields_whitelist: parse_list(values.get("fields.whitelist")),
        })
    }
}

/// `io.confluent.connect.jdbc.JdbcSinkConnector`.
#[derive(Debug, Default)]
pub struct JdbcSinkConnector;

impl SinkConnector for JdbcSinkConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new(super::connection_keys()).with([
            ConfigKey::new(
                "table.name.format",
                ConfigType::String,
                Some("${topic}"),
                Importance::Medium,
                "Destination table name; ${topic} is replaced by the record's topic.",
            )
            .in_group("Data Mapping"),
            ConfigKey::new(
                "insert.mode",
                ConfigType::String,
                Some("insert"),
                Importance::High,
                "insert, upsert or update.",
            )
            .in_group("Writes")
            .one_of(&["insert", "upsert", "update"]),
            ConfigKey::new(
                "pk.mode",
                ConfigType::String,
                Some("none"),
                Importance::High,
                "Where the primary key comes from: none, kafka, record_key, record_value.",
            )
            .in_group("Data Mapping")
            .one_of(&["none", "kafka", "record_key", "record_value"]),
            ConfigKey::new(
                "pk.fields",
                ConfigType::List,
                Some(""),
                Importance::Medium,
                "Primary key field names (meaning depends on pk.mode).",
            )
            .in_group("Data Mapping"),
            ConfigKey::new(
                "fields.whitelist",
                ConfigType::List,
                Some(""),
                Importance::Medium,
                "Record value fields to write; all when empty.",
            )
            .in_group("Data Mapping"),
            ConfigKey::new(
                "auto.create",
                ConfigType::Boolean,
                Some("false"),
                Importance::Medium,
                "Create the destination table from the record schema when missing.",
            )
            .in_group("DDL Support"),
            ConfigKey::new(
                "auto.evolve",
                ConfigType::Boolean,
                Some("false"),
                Importance::Medium,
                "Add columns for new optional fields of the record schema.",
            )
            .in_group("DDL Support"),
            ConfigKey::new(
                "batch.size",
                ConfigType::Int,
                Some("3000"),
                Importance::Medium,
                "Records written per transaction.",
            )
            .in_group("Writes"),
            ConfigKey::new(
                "delete.enabled",
                ConfigType::Boolean,
                Some("false"),
                Importance::Medium,
                "Delete the row of a tombstone's key (needs pk.mode=record_key).",
            )
            .in_group("Writes"),
        ])
    }

    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        Settings::parse(&config.values).map(|_| ())
    }

    fn task_configs(&self, config: &ConnectorConfig, max_tasks: usize) -> Result<TaskConfigs> {
        Ok(vec![config.values.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(JdbcSinkTask::default())
    }
}

/// One column to write: name, schema and value.
type Cell = (String, Schema, SqlValue);

/// A statement before consecutive inserts are merged into multi-row ones.
enum Pending {
    Row {
        table: String,
        names: Vec<String>,
        pk: Vec<String>,
        values: Vec<SqlValue>,
    },
    Stmt(String, Vec<SqlValue>),
}

/// PostgreSQL's limit on parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// Turns pending rows into statements: on PostgreSQL consecutive rows for the same table and
/// columns become one multi-row INSERT (for upserts, a repeated key starts a new statement so
/// that the later row wins, as it would row by row); elsewhere one statement per row.
fn coalesce(items: Vec<Pending>, dialect: Dialect, upsert: bool) -> Vec<(String, Vec<SqlValue>)> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        let (table, names, pk, mut values) = match item {
            Pending::Stmt(sql, values) => {
                out.push((sql, values));
                continue;
            }
            Pending::Row {
                table,
                names,
                pk,
                values,
            } => (table, names, pk, values),
        };
        let key_of = |names: &[String], values: &[SqlValue]| -> String {
            let key: Vec<String> = names
                .iter()
                .zip(values)
                .filter(|(n, _)| pk.contains(n))
                .map(|(_, v)| format!("{v:?}"))
                .collect();
            key.join("\u{1f}")
        };
        let mut keys = std::collections::BTreeSet::from([key_of(&names, &values)]);
        let mut rows = 1;
        if dialect == Dialect::Postgres {
            while let Some(Pending::Row {
                table: t,
                names: n,
                pk: p,
                values: v,
            }) = items.peek()
            {
                if *t != table || *n != names || *p != pk || (rows + 1) * names.len() > MAX_PARAMS {
                    break;
                }
                if upsert && !keys.insert(key_of(n, v)) {
                    break;
                }
                if let Some(Pending::Row { values: v, .. }) = items.next() {
                    values.extend(v);
                    rows += 1;
                }
            }
        }
        let sql = if upsert {
            dialect.upsert_rows(&table, &names, &pk, rows)
        } else {
            dialect.insert_rows(&table, &names, rows)
        };
        out.push((sql, values));
    }
    out
}

enum Op {
    Write {
        table: String,
        cells: Vec<Cell>,
        pk: Vec<String>,
    },
    Delete {
        table: String,
        keys: Vec<Cell>,
    },
}

/// Writes records as rows.
#[derive(Default)]
pub struct JdbcSinkTask {
    settings: Option<Settings>,
    db: Option<Db>,
    /// Known columns per table.
    tables: BTreeMap<String, BTreeSet<String>>,
}

fn data_error(reason: impl Into<String>) -> Error {
    Error::Connector {
        connector: CONNECTOR.into(),
        reason: reason.into(),
    }
}

/// A Connect value as an SQL value.
fn to_sql(schema: &Schema, value: &Value) -> Result<SqlValue> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Int(i) if schema.name.as_deref() == Some(logical::TIMESTAMP) => {
            SqlValue::Timestamp(*i)
        }
        Value::Int(i) => SqlValue::Int(*i),
        Value::Boolean(b) => SqlValue::Bool(*b),
        Value::Float(f) => SqlValue::Float(*f),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Bytes(b.clone()),
        other => {
            return Err(data_error(format!(
                "cannot write a {} value to a column",
                schema_type_name(schema, other)
            )));
        }
    })
}

fn schema_type_name(schema: &Schema, _v: &Value) -> &'static str {
    schema.type_.name()
}

/// The struct fields of a value with its schema.
fn struct_cells(what: &str, schema: Option<&Schema>, value: &Value) -> Result<Vec<Cell>> {
    let schema = schema.filter(|s| s.type_ == SchemaType::Struct).ok_or_else(|| {
        data_error(format!("the record {what} needs a struct schema (use a converter with schemas, e.g. JsonConverter with schemas.enable=true)"))
    })?;
    schema
        .fields
        .iter()
        .map(|f| {
            let v = value.get(&f.name).unwrap_or(&Value::Null);
            Ok((f.name.clone(), f.schema.clone(), to_sql(&f.schema, v)?))
        })
        .collect()
}

impl JdbcSinkTask {
    fn settings(&self) -> Result<&Settings> {
        self.settings
            .as_ref()
            .ok_or_else(|| data_error("task not started"))
    }

    fn key_cells(&self, r: &SinkRecord) -> Result<Vec<Cell>> {
        let s = self.settings()?;
        let rec = &r.record;
        let schema = rec
            .key_schema
            .as_ref()
            .ok_or_else(|| data_error("pk.mode=record_key needs a record key with a schema"))?;
        if schema.type_ == SchemaType::Struct {
            let cells = struct_cells("key", Some(schema), &rec.key)?;
            if s.pk_fields.is_empty() {
                return Ok(cells);
            }
            return s
                .pk_fields
                .iter()
                .map(|f| {
                    cells
                        .iter()
                        .find(|c| &c.0 == f)
                        .cloned()
                        .ok_or_else(|| data_error(format!("key has no field {f}")))
                })
                .collect();
        }
        if rec.key.is_null() {
            return Err(data_error("pk.mode=record_key needs a non-null key"));
        }
        let name = s
            .pk_fields
            .first()
            .cloned()
            .unwrap_or_else(|| "__connect_key".into());
        Ok(vec![(name, schema.clone(), to_sql(schema, &rec.key)?)])
    }

    fn op(&self, r: &SinkRecord) -> Result<Option<Op>> {
        let s = self.settings()?;
        let rec = &r.record;
        let table = s.table_format.replace("${topic}", &rec.topic);
        if rec.value.is_null() {
            if s.delete_enabled {
                return Ok(Some(Op::Delete {
                    table,
                    keys: self.key_cells(r)?,
                }));
            }
            return Ok(None);
        }
        let mut values = struct_cells("value", rec.value_schema.as_ref(), &rec.value)?;
        if !s.fields_whitelist.is_empty() {
            values.retain(|c| s.fields_whitelist.contains(&c.0));
        }
        let (pk, mut cells) = match s.pk_mode {
            PkMode::None => (Vec::new(), Vec::new()),
            PkMode::Kafka => {
                let names = if s.pk_fields.is_empty() {
                    vec![
                        "__connect_topic".to_string(),
                        "__connect_partition".into(),
                        "__connect_offset".into(),
                    ]
                } else {
                    s.pk_fields.clone()
                };
                let cells = vec![
                    (
                        names[0].clone(),
                        Schema::string(),
                        SqlValue::Text(rec.topic.clone()),
                    ),
                    (
                        names[1].clone(),
                        Schema::int32(),
                        SqlValue::Int(r.kafka_partition.into()),
                    ),
                    (
                        names[2].clone(),
                        Schema::int64(),
                        SqlValue::Int(r.kafka_offset),
                    ),
                ];
                (names, cells)
            }
            PkMode::RecordKey => {
                let cells = self.key_cells(r)?;
                (cells.iter().map(|c| c.0.clone()).collect(), cells)
            }
            PkMode::RecordValue => {
                let names = if s.pk_fields.is_empty() {
                    values.iter().map(|c| c.0.clone()).collect()
                } else {
                    for f in &s.pk_fields {
                        if !values.iter().any(|c| &c.0 == f) {
                            return Err(data_error(format!("value has no field {f} (pk.fields)")));
                        }
                    }
                    s.pk_fields.clone()
                };
                (names, Vec::new())
            }
        };
        values.retain(|c| !cells.iter().any(|k| k.0 == c.0));
        cells.extend(values);
        Ok(Some(Op::Write { table, cells, pk }))
    }

    /// Creates or evolves the table so it has these columns.
    async fn ensure_table(&mut self, table: &str, cells: &[Cell], pk: &[String]) -> Result<()> {
        if let Some(known) = self.tables.get(table)
            && cells.iter().all(|c| known.contains(&c.0))
        {
            return Ok(());
        }
        let s = self.settings()?.clone();
        let dialect = self.dialect();
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| data_error("task not started"))?;
        let existing = db.columns(table).await?;
        let columns: Vec<(String, Schema)> =
            cells.iter().map(|c| (c.0.clone(), c.1.clone())).collect();
        let known: BTreeSet<String> = match existing {
            None => {
                if !s.auto_create {
                    return Err(data_error(format!(
                        "Table \"{table}\" is missing and auto-creation is disabled (auto.create)"
                    )));
                }
                let sql = dialect.create_table(table, &columns, pk)?;
                tracing::info!(table, %sql, "creating table");
                match db.execute(&sql).await {
                    Ok(()) => columns.iter().map(|c| c.0.clone()).collect(),
                    // Another task (tasks.max > 1) created it at the same time: use that
                    // one (a later write evolves it if columns are missing).
                    Err(e) => match db.columns(table).await? {
                        Some(existing) => {
                            tracing::info!(table, "the table was created concurrently");
                            existing.into_iter().map(|c| c.0).collect()
                        }
                        None => return Err(e),
                    },
                }
            }
            Some(existing) => {
                let mut known: BTreeSet<String> = existing.into_iter().map(|c| c.0).collect();
                let missing: Vec<&(String, Schema)> =
                    columns.iter().filter(|c| !known.contains(&c.0)).collect();
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|c| c.0.as_str()).collect();
                    if !s.auto_evolve {
                        return Err(data_error(format!(
                            "Table \"{table}\" is missing fields {names:?} and auto-evolution is disabled (auto.evolve)"
                        )));
                    }
                    for (name, schema) in missing {
                        if !schema.optional {
                            return Err(data_error(format!(
                                "Cannot ALTER TABLE \"{table}\" to add missing field {name}, as it is not optional"
                            )));
                        }
                        let sql = dialect.add_column(table, name, schema)?;
                        tracing::info!(table, %sql, "evolving table");
                        db.execute(&sql).await?;
                        known.insert(name.clone());
                    }
                }
                known
            }
        };
        self.tables.insert(table.to_string(), known);
        Ok(())
    }

    fn dialect(&self) -> Dialect {
        match &self.db {
            Some(db) if db.is_postgres() => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    async fn write_chunk(&mut self, records: &[SinkRecord]) -> Result<()> {
        let mut pending = Vec::with_capacity(records.len());
        let dialect = self.dialect();
        let mode = self.settings()?.insert_mode;
        for r in records {
            match self.op(r)? {
                None => {}
                Some(Op::Delete { table, keys }) => {
                    let names: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                    if !self.tables.contains_key(&table) {
                        // Nothing to delete from a table that does not exist.
                        let db = self
                            .db
                            .as_ref()
                            .ok_or_else(|| data_error("task not started"))?;
                        if db.columns(&table).await?.is_none() {
                            continue;
                        }
                    }
                    pending.push(Pending::Stmt(
                        dialect.delete(&table, &names),
                        keys.into_iter().map(|k| k.2).collect(),
                    ));
                }
                Some(Op::Write { table, cells, pk }) => {
                    self.ensure_table(&table, &cells, &pk).await?;
                    let names: Vec<String> = cells.iter().map(|c| c.0.clone()).collect();
                    match mode {
                        InsertMode::Insert | InsertMode::Upsert => pending.push(Pending::Row {
                            table,
                            names,
                            pk,
                            values: cells.into_iter().map(|c| c.2).collect(),
                        }),
                        InsertMode::Update => {
                            let (keys, rest): (Vec<Cell>, Vec<Cell>) =
                                cells.into_iter().partition(|c| pk.contains(&c.0));
                            let non_keys: Vec<String> = rest.iter().map(|c| c.0.clone()).collect();
                            let key_names: Vec<String> = keys.iter().map(|c| c.0.clone()).collect();
                            let values = rest.into_iter().chain(keys).map(|c| c.2).collect();
                            pending.push(Pending::Stmt(
                                dialect.update(&table, &non_keys, &key_names),
                                values,
                            ));
                        }
                    }
                }
            }
        }
        let statements = coalesce(pending, dialect, mode == InsertMode::Upsert);
        if statements.is_empty() {
            return Ok(());
        }
        let db = self
            .db
            .as_mut()
            .ok_or_else(|| data_error("task not started"))?;
        db.write(statements).await
    }
}

impl SinkTask for JdbcSinkTask {
    fn start<'a>(&'a mut self, config: &'a BTreeMap<String, String>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let settings = Settings::parse(config)?;
            self.db = Some(Db::connect(&settings.url).await?);
            self.settings = Some(settings);
            Ok(())
        })
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let batch = self.settings()?.batch_size;
            for chunk in records.chunks(batch) {
                if let Err(e) = self.write_chunk(chunk).await {
                    // The schema cache may be stale after a failed DDL or write.
                    self.tables.clear();
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        // Every put is committed before it returns.
        Box::pin(async { Ok(()) })
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.db = None;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str) -> Pending {
        Pending::Row {
            table: "t".into(),
            names: vec!["id".into(), "name".into()],
            pk: vec!["id".into()],
            values: vec![SqlValue::Int(id), SqlValue::Text(name.into())],
        }
    }

    #[test]
    fn consecutive_rows_merge_and_repeated_keys_split_upserts() {
        let items = vec![
            row(1, "a"),
            row(2, "b"),
            row(1, "c"),
            Pending::Stmt("DELETE".into(), vec![]),
            row(3, "d"),
        ];
        let out = coalesce(items, Dialect::Postgres, true);
        let sqls: Vec<&str> = out.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(sqls.len(), 4);
        assert!(
            sqls[0].contains("VALUES ($1,$2),($3,$4) ON CONFLICT"),
            "{}",
            sqls[0]
        );
        assert!(
            sqls[1].contains("VALUES ($1,$2) ON CONFLICT"),
            "{}",
            sqls[1]
        );
        assert_eq!(sqls[2], "DELETE");
        assert_eq!(out[0].1.len(), 4);
        // Plain inserts keep repeated keys together; SQLite stays row by row.
        let inserts = coalesce(vec![row(1, "a"), row(1, "b")], Dialect::Postgres, false);
        assert_eq!(inserts.len(), 1);
        assert_eq!(
            coalesce(vec![row(1, "a"), row(2, "b")], Dialect::Sqlite, false).len(),
            2
        );
    }
}
