//! One database connection, PostgreSQL or SQLite, behind the few operations the connectors
//! need: introspect a table, run DDL, write statements in one transaction, query rows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::{ToSql, Type};

use super::url::JdbcUrl;
use crate::data::{Schema, SchemaType, logical};
use crate::error::{Error, Result};
use crate::transforms::time::{format_millis, parse_millis};

/// A value bound to or read from SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Milliseconds since the epoch (UTC).
    Timestamp(i64),
}

/// SQLite keeps timestamps as text in this format (sortable, and what its date functions read).
pub(crate) const SQLITE_TIMESTAMP: &str = "yyyy-MM-dd HH:mm:ss.SSS";

/// A result column and the Connect schema of its values (always optional).
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) schema: Schema,
}

pub(crate) enum Db {
    Postgres(tokio_postgres::Client),
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
}

fn db_err(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Database {
        context: context.into(),
        reason: e.to_string(),
    }
}

fn pg_err(context: impl Into<String>, e: tokio_postgres::Error) -> Error {
    // The server's message (e.g. a constraint violation) is in the source.
    let reason = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    Error::Database {
        context: context.into(),
        reason,
    }
}

fn to_system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn from_system_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

type PgParam = Box<dyn ToSql + Sync + Send>;

/// A value as the Rust type the parameter's SQL type takes.
fn pg_param(value: &SqlValue, ty: &Type) -> Result<PgParam> {
    let mismatch = || {
        db_err(
            "binding a parameter",
            format!("cannot bind {value:?} as {ty}"),
        )
    };
    let int = || match value {
        SqlValue::Int(i) => Ok(Some(*i)),
        SqlValue::Bool(b) => Ok(Some(i64::from(*b))),
        SqlValue::Timestamp(ms) => Ok(Some(*ms)),
        SqlValue::Text(s) => s.trim().parse().map(Some).map_err(|_| mismatch()),
        SqlValue::Null => Ok(None),
        _ => Err(mismatch()),
    };
    let float = || match value {
        SqlValue::Float(f) => Ok(Some(*f)),
        SqlValue::Int(i) => Ok(Some(*i as f64)),
        SqlValue::Text(s) => s.trim().parse().map(Some).map_err(|_| mismatch()),
        SqlValue::Null => Ok(None),
        _ => Err(mismatch()),
    };
    let narrow = |v: Option<i64>, max: i64| match v {
        Some(i) if i.abs() > max => Err(mismatch()),
        other => Ok(other),
    };
    Ok(match *ty {
        Type::BOOL => Box::new(match value {
            SqlValue::Bool(b) => Some(*b),
            SqlValue::Int(i) => Some(*i != 0),
            SqlValue::Null => None,
            _ => return Err(mismatch()),
        }),
        Type::INT2 => Box::new(narrow(int()?, i64::from(i16::MAX))?.map(|i| i as i16)),
        Type::INT4 => Box::new(narrow(int()?, i64::from(i32::MAX))?.map(|i| i as i32)),
        Type::INT8 => Box::new(int()?),
        Type::FLOAT4 => Box::new(float()?.map(|f| f as f32)),
        Type::FLOAT8 => Box::new(float()?),
        Type::BYTEA => Box::new(match value {
            SqlValue::Bytes(b) => Some(b.clone()),
            SqlValue::Text(s) => Some(s.clone().into_bytes()),
            SqlValue::Null => None,
            _ => return Err(mismatch()),
        }),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => Box::new(match value {
            SqlValue::Timestamp(ms) | SqlValue::Int(ms) => Some(to_system_time(*ms)),
            SqlValue::Null => None,
            _ => return Err(mismatch()),
        }),
        _ => Box::new(match value {
            SqlValue::Null => None,
            SqlValue::Text(s) => Some(s.clone()),
            SqlValue::Bool(b) => Some(b.to_string()),
            SqlValue::Int(i) => Some(i.to_string()),
            SqlValue::Float(f) => Some(f.to_string()),
            SqlValue::Timestamp(ms) => Some(format_millis(*ms, "yyyy-MM-dd HH:mm:ss.SSS")),
            SqlValue::Bytes(_) => return Err(mismatch()),
        }),
    })
}

fn pg_schema(ty: &Type) -> Option<Schema> {
    Some(
        match *ty {
            Type::BOOL => Schema::boolean(),
            Type::INT2 => Schema::new(SchemaType::Int16),
            Type::INT4 => Schema::int32(),
            Type::INT8 => Schema::int64(),
            Type::FLOAT4 => Schema::new(SchemaType::Float32),
            Type::FLOAT8 => Schema::float64(),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Schema::string(),
            Type::BYTEA => Schema::bytes(),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => Schema::int64().named(logical::TIMESTAMP),
            _ => return None,
        }
        .optional(),
    )
}

fn pg_value(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<SqlValue> {
    let e = |e| pg_err("reading a row", e);
    Ok(match *ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, SqlValue::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, SqlValue::Int),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, |v| SqlValue::Float(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, SqlValue::Float),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, SqlValue::Bytes),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => row
            .try_get::<_, Option<SystemTime>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, |t| SqlValue::Timestamp(from_system_time(t))),
        _ => row
            .try_get::<_, Option<String>>(i)
            .map_err(e)?
            .map_or(SqlValue::Null, SqlValue::Text),
    })
}

fn sqlite_param(value: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        SqlValue::Null => V::Null,
        SqlValue::Bool(b) => V::Integer(i64::from(*b)),
        SqlValue::Int(i) => V::Integer(*i),
        SqlValue::Float(f) => V::Real(*f),
        SqlValue::Text(s) => V::Text(s.clone()),
        SqlValue::Bytes(b) => V::Blob(b.clone()),
        SqlValue::Timestamp(ms) => V::Text(format_millis(*ms, SQLITE_TIMESTAMP)),
    }
}

/// The Connect schema of an SQLite declared type (its type affinity, plus timestamps).
fn sqlite_schema(decl: &str) -> Schema {
    let d = decl.to_ascii_uppercase();
    let s = if d.contains("TIMESTAMP") || d.contains("DATETIME") {
        Schema::int64().named(logical::TIMESTAMP)
    } else if d.contains("INT") {
        Schema::int64()
    } else if d.contains("BOOL") {
        Schema::boolean()
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        Schema::float64()
    } else if d.contains("BLOB") {
        Schema::bytes()
    } else {
        Schema::string()
    };
    s.optional()
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>, schema: &Schema) -> SqlValue {
    use rusqlite::types::ValueRef as R;
    let timestamp = schema.name.as_deref() == Some(logical::TIMESTAMP);
    match v {
        R::Null => SqlValue::Null,
        R::Integer(i) if timestamp => SqlValue::Timestamp(i),
        R::Integer(i) if schema.type_ == SchemaType::Boolean => SqlValue::Bool(i != 0),
        R::Integer(i) => SqlValue::Int(i),
        R::Real(f) => SqlValue::Float(f),
        R::Text(t) => {
            let text = String::from_utf8_lossy(t).into_owned();
            if timestamp {
                let parsed = parse_millis(&text, SQLITE_TIMESTAMP)
                    .or_else(|| parse_millis(&text, "yyyy-MM-dd HH:mm:ss"))
                    .or_else(|| parse_millis(&text, "yyyy-MM-dd'T'HH:mm:ss.SSS"))
                    .or_else(|| parse_millis(&text, "yyyy-MM-dd'T'HH:mm:ss"));
                if let Some(ms) = parsed {
                    return SqlValue::Timestamp(ms);
                }
            }
            SqlValue::Text(text)
        }
        R::Blob(b) => SqlValue::Bytes(b.to_vec()),
    }
}

impl Db {
    pub(crate) async fn connect(url: &JdbcUrl) -> Result<Db> {
        match url {
            JdbcUrl::Postgres {
                host,
                port,
                database,
                user,
                password,
            } => {
                let mut config = tokio_postgres::Config::new();
                config.host(host).port(*port).dbname(database);
                config.connect_timeout(Duration::from_secs(10));
                if let Some(u) = user {
                    config.user(u);
                }
                if let Some(p) = password {
                    config.password(p);
                }
                let (client, connection) =
                    config.connect(tokio_postgres::NoTls).await.map_err(|e| {
                        pg_err(
                            format!("connecting to PostgreSQL at {host}:{port}/{database}"),
                            e,
                        )
                    })?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "PostgreSQL connection ended");
                    }
                });
                Ok(Db::Postgres(client))
            }
            JdbcUrl::Sqlite { path } => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(&path)
                        .map_err(|e| db_err(format!("opening SQLite database {path}"), e))?;
                    // Writers from other tasks wait instead of failing with SQLITE_BUSY.
                    conn.busy_timeout(Duration::from_secs(30))
                        .map_err(|e| db_err("configuring SQLite", e))?;
                    Ok::<_, Error>(conn)
                })
                .await
                .map_err(|e| db_err("opening SQLite", e))??;
                Ok(Db::Sqlite(Arc::new(Mutex::new(conn))))
            }
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    async fn sqlite<T: Send + 'static>(
        conn: &Arc<Mutex<rusqlite::Connection>>,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| db_err("SQLite worker thread", e))?
    }

    /// A table's columns and declared types (`None` when the table does not exist).
    pub(crate) async fn columns(&self, table: &str) -> Result<Option<Vec<(String, String)>>> {
        let cols = match self {
            Db::Postgres(client) => {
                let rows = client
                    .query(
                        "SELECT column_name::text, data_type::text FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                        &[&table],
                    )
                    .await
                    .map_err(|e| pg_err(format!("describing table {table}"), e))?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
                    .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    .map_err(|e| pg_err(format!("describing table {table}"), e))?
            }
            Db::Sqlite(conn) => {
                let table = table.to_string();
                Self::sqlite(conn, move |c| {
                    let sql = format!("PRAGMA table_info({})", super::dialect::quote(&table));
                    let mut stmt = c
                        .prepare(&sql)
                        .map_err(|e| db_err(format!("describing table {table}"), e))?;
                    let rows = stmt
                        .query_map([], |r| {
                            Ok((
                                r.get::<_, String>(1)?,
                                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            ))
                        })
                        .map_err(|e| db_err(format!("describing table {table}"), e))?;
                    rows.collect::<Result<Vec<_>, _>>()
                        .map_err(|e| db_err(format!("describing table {table}"), e))
                })
                .await?
            }
        };
        Ok((!cols.is_empty()).then_some(cols))
    }

    /// Runs a statement without parameters (DDL).
    pub(crate) async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Db::Postgres(client) => client
                .batch_execute(sql)
                .await
                .map_err(|e| pg_err(format!("executing {sql}"), e)),
            Db::Sqlite(conn) => {
                let sql = sql.to_string();
                Self::sqlite(conn, move |c| {
                    c.execute_batch(&sql)
                        .map_err(|e| db_err(format!("executing {sql}"), e))
                })
                .await
            }
        }
    }

    /// Runs every statement in one transaction: all or nothing.
    pub(crate) async fn write(&mut self, statements: Vec<(String, Vec<SqlValue>)>) -> Result<()> {
        match self {
            Db::Postgres(client) => {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| pg_err("starting a transaction", e))?;
                let mut prepared: BTreeMap<String, tokio_postgres::Statement> = BTreeMap::new();
                for (sql, values) in &statements {
                    let stmt = match prepared.get(sql) {
                        Some(s) => s.clone(),
                        None => {
                            let s = tx
                                .prepare(sql)
                                .await
                                .map_err(|e| pg_err(format!("preparing {sql}"), e))?;
                            prepared.insert(sql.clone(), s.clone());
                            s
                        }
                    };
                    let params = values
                        .iter()
                        .zip(stmt.params())
                        .map(|(v, t)| pg_param(v, t))
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&stmt, &refs)
                        .await
                        .map_err(|e| pg_err(format!("executing {sql}"), e))?;
                }
                tx.commit().await.map_err(|e| pg_err("committing", e))
            }
            Db::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    let tx = c
                        .transaction()
                        .map_err(|e| db_err("starting a transaction", e))?;
                    for (sql, values) in &statements {
                        let mut stmt = tx
                            .prepare_cached(sql)
                            .map_err(|e| db_err(format!("preparing {sql}"), e))?;
                        stmt.execute(rusqlite::params_from_iter(values.iter().map(sqlite_param)))
                            .map_err(|e| db_err(format!("executing {sql}"), e))?;
                    }
                    tx.commit().map_err(|e| db_err("committing", e))
                })
                .await
            }
        }
    }

    /// Runs a query; `declared` are the table's declared column types (SQLite), if known.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        declared: Option<BTreeMap<String, String>>,
    ) -> Result<(Vec<Column>, Vec<Vec<SqlValue>>)> {
        match self {
            Db::Postgres(client) => {
                let stmt = client
                    .prepare(sql)
                    .await
                    .map_err(|e| pg_err(format!("preparing {sql}"), e))?;
                let bound = params
                    .iter()
                    .zip(stmt.params())
                    .map(|(v, t)| pg_param(v, t))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = bound
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let rows = client
                    .query(&stmt, &refs)
                    .await
                    .map_err(|e| pg_err(format!("querying {sql}"), e))?;
                let mut keep = Vec::new();
                let mut columns = Vec::new();
                for (i, c) in stmt.columns().iter().enumerate() {
                    match pg_schema(c.type_()) {
                        Some(schema) => {
                            keep.push((i, c.type_().clone()));
                            columns.push(Column {
                                name: c.name().to_string(),
                                schema,
                            });
                        }
                        None => {
                            tracing::warn!(column = c.name(), r#type = %c.type_(), "column of unsupported type skipped")
                        }
                    }
                }
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(
                        keep.iter()
                            .map(|(i, t)| pg_value(row, *i, t))
                            .collect::<Result<Vec<_>>>()?,
                    );
                }
                Ok((columns, out))
            }
            Db::Sqlite(conn) => {
                let sql = sql.to_string();
                Self::sqlite(conn, move |c| {
                    let mut stmt = c
                        .prepare(&sql)
                        .map_err(|e| db_err(format!("preparing {sql}"), e))?;
                    let names: Vec<String> = stmt
                        .column_names()
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    let declared = declared.unwrap_or_default();
                    let mut schemas: Vec<Option<Schema>> = names
                        .iter()
                        .map(|n| declared.get(n).map(|d| sqlite_schema(d)))
                        .collect();
                    let mut raw_rows: Vec<Vec<rusqlite::types::Value>> = Vec::new();
                    let mut rows = stmt
                        .query(rusqlite::params_from_iter(params.iter().map(sqlite_param)))
                        .map_err(|e| db_err(format!("querying {sql}"), e))?;
                    while let Some(row) = rows
                        .next()
                        .map_err(|e| db_err(format!("querying {sql}"), e))?
                    {
                        let mut values = Vec::with_capacity(names.len());
                        for i in 0..names.len() {
                            let v = row.get_ref(i).map_err(|e| db_err("reading a row", e))?;
                            values.push(rusqlite::types::Value::from(v));
                        }
                        raw_rows.push(values);
                    }
                    // Columns without a declared type take the type of their first value.
                    for (i, s) in schemas.iter_mut().enumerate() {
                        if s.is_none() {
                            let first = raw_rows
                                .iter()
                                .map(|r| &r[i])
                                .find(|v| !matches!(v, rusqlite::types::Value::Null));
                            *s = Some(match first {
                                Some(rusqlite::types::Value::Integer(_)) => {
                                    Schema::int64().optional()
                                }
                                Some(rusqlite::types::Value::Real(_)) => {
                                    Schema::float64().optional()
                                }
                                Some(rusqlite::types::Value::Blob(_)) => Schema::bytes().optional(),
                                _ => Schema::string().optional(),
                            });
                        }
                    }
                    let columns: Vec<Column> = names
                        .into_iter()
                        .zip(schemas)
                        .map(|(name, schema)| Column {
                            name,
                            schema: schema.unwrap_or_else(|| Schema::string().optional()),
                        })
                        .collect();
                    let out = raw_rows
                        .iter()
                        .map(|r| {
                            r.iter()
                                .zip(&columns)
                                .map(|(v, c)| {
                                    sqlite_value(rusqlite::types::ValueRef::from(v), &c.schema)
                                })
                                .collect()
                        })
                        .collect();
                    Ok((columns, out))
                })
                .await
            }
        }
    }
}
