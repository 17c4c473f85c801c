//! Continuous queries: `CREATE STREAM out [WITH (...)] AS SELECT ...` runs the query over a
//! topic (or a join of two) until it is dropped, writing result rows to the topic `out`.
//!
//! - [`statement`]: our statements (`CREATE STREAM`, `DROP STREAM`, `SHOW QUERIES`,
//!   `DESCRIBE STREAM`), recognized before DataFusion's parser.
//! - [`plan`]: the query's shape (stateless, windowed aggregation, join) and its rewrite to run
//!   over one closed window.
//! - [`window`]: tumbling/hopping windows with watermark and allowed lateness.
//! - [`checkpoint`]: offsets, watermark and open state in one atomically replaced file.
//! - The runner: a task per query; DataFusion runs the query over each batch, closed window or
//!   join step (registered as in-memory tables under the source names), with our functions
//!   (`TUMBLE`, `HOP`, `SESSION`) registered as UDFs.

pub mod checkpoint;
mod functions;
mod options;
pub mod plan;
mod rows;
mod runner;
pub mod statement;
pub mod window;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use options::{QueryOptions, QueryStats};
pub use plan::{ContinuousPlan, QueryKind, WindowSpec};
use statement::Statement;

use crate::SqlContext;
use crate::error::{Error, Result};

/// A running (or stopped, failed) continuous query.
#[derive(Debug)]
struct Entry {
    plan: ContinuousPlan,
    stats: Arc<QueryStats>,
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
}

/// The continuous queries of a context.
#[derive(Debug, Default)]
pub struct Queries {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Queries {
    pub(crate) fn new() -> Self {
        Queries::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Registers the window functions.
pub(crate) fn register_functions(session: &SessionContext) {
    functions::register(session);
}

/// Runs `statement` when it is one of ours.
pub(crate) async fn statement(ctx: &SqlContext, statement: &str) -> Result<Option<RecordBatch>> {
    let Some(parsed) = statement::parse(statement)? else {
        return Ok(None);
    };
    match parsed {
        Statement::CreateStream {
            name,
            options,
            query,
        } => create(ctx, name, &options, &query).await.map(Some),
        Statement::DropStream { name, if_exists } => {
            let entry = ctx.queries.lock().remove(&name);
            let path = checkpoint::path(&ctx.config.state_dir, &name);
            match entry {
                Some(mut e) => {
                    e.cancel.cancel();
                    if let Some(t) = e.task.take() {
                        let _ = t.await;
                    }
                }
                None if if_exists || path.exists() => {}
                None => return Err(Error::NoSuchQuery(name)),
            }
            if let Some(dir) = path.parent() {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(Error::Checkpoint {
                            path: dir.display().to_string(),
                            source: e,
                        });
                    }
                }
            }
            Ok(Some(message(&format!(
                "stream {name} dropped (its topic is kept)"
            ))?))
        }
        Statement::ShowQueries => Ok(Some(listing(ctx, None)?)),
        Statement::DescribeStream { name } => {
            if !ctx.queries.lock().contains_key(&name) {
                return Err(Error::NoSuchQuery(name));
            }
            Ok(Some(listing(ctx, Some(&name))?))
        }
    }
}

async fn create(
    ctx: &SqlContext,
    name: String,
    options: &BTreeMap<String, String>,
    query: &str,
) -> Result<RecordBatch> {
    let options = QueryOptions::from_map(options)?;
    let plan = ContinuousPlan::parse(query)?;
    if ctx
        .queries
        .lock()
        .get(&name)
        .is_some_and(|e| e.task.as_ref().is_some_and(|t| !t.is_finished()))
    {
        return Err(Error::QueryExists(name));
    }
    // The query must plan against the real topics (unknown columns and topics fail here, with
    // DataFusion's message).
    ctx.catalog.refresh().await?;
    let mut tables = BTreeMap::new();
    for source in &plan.sources {
        let Some(table) = ctx.catalog.topic_table(source).await? else {
            return Err(Error::Statement {
                statement: "CREATE STREAM",
                reason: format!("topic {source} does not exist"),
            });
        };
        tables.insert(source.clone(), table);
    }
    validate(ctx, &plan, &tables).await?;
    if plan.sources.contains(&name) {
        return Err(Error::Statement {
            statement: "CREATE STREAM",
            reason: format!("stream {name} would read its own output"),
        });
    }
    // The output topic: created like the first source unless it exists.
    let partitions = match options.partitions {
        Some(p) => p,
        None => tables
            .get(&plan.sources[0])
            .map_or(1, |t| t.partitions.len().max(1) as i32),
    };
    let mut topics = vec![(name.clone(), partitions)];
    if let Some(dlq) = &options.dead_letter_topic {
        topics.push((dlq.clone(), 1));
    }
    for (topic, partitions) in topics {
        let created = ctx
            .catalog
            .admin()
            .create_topic(&topic, partitions, -1, &BTreeMap::new())
            .await;
        // 36: TOPIC_ALREADY_EXISTS.
        if let Err(e) = created {
            if !matches!(&e, fjord_client::Error::Broker { code, .. } if code.code() == 36) {
                return Err(Error::kafka(format!("creating topic {topic}"))(e));
            }
        }
    }
    let stats = Arc::new(QueryStats::new());
    let cancel = CancellationToken::new();
    let runner = runner::Runner {
        name: name.clone(),
        plan: plan.clone(),
        options,
        bootstrap: ctx.config.bootstrap.clone(),
        state_dir: ctx.config.state_dir.clone(),
        stats: stats.clone(),
        tables,
        batch_size: ctx.config.batch_size,
    };
    let task = tokio::spawn(runner.run(cancel.clone()));
    ctx.queries.lock().insert(
        name.clone(),
        Entry {
            plan,
            stats,
            cancel,
            task: Some(task),
        },
    );
    message(&format!("stream {name} started"))
}

/// Plans the query as it will run (over empty tables with the sources' columns, plus the
/// window columns) so that its errors show now.
async fn validate(
    ctx: &SqlContext,
    plan: &ContinuousPlan,
    tables: &BTreeMap<String, Arc<crate::topic::TopicTable>>,
) -> Result<()> {
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().sql_parser.collect_spans = true;
    let session = SessionContext::new_with_config(config);
    register_functions(&session);
    for (name, table) in tables {
        let mut fields: Vec<Field> = datafusion::catalog::TableProvider::schema(table.as_ref())
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if matches!(plan.kind, QueryKind::Window { .. }) {
            let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
            fields.push(Field::new("window_start", ts.clone(), true));
            fields.push(Field::new("window_end", ts, true));
        }
        let schema = Arc::new(Schema::new(fields));
        let t = datafusion::catalog::MemTable::try_new(schema, vec![Vec::new()])?;
        session.register_table(
            datafusion::common::TableReference::bare(name.as_str()),
            Arc::new(t),
        )?;
    }
    let _ = ctx;
    session.sql(&plan.exec_sql).await?.into_optimized_plan()?;
    Ok(())
}

fn message(text: &str) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "result",
        DataType::Utf8,
        false,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![text]))])
        .map_err(Error::arrow("answering"))
}

fn listing(ctx: &SqlContext, only: Option<&str>) -> Result<RecordBatch> {
    let entries = ctx.queries.lock();
    let mut names = Vec::new();
    let mut states = Vec::new();
    let mut kinds = Vec::new();
    let mut sources = Vec::new();
    let (mut rin, mut rout, mut late, mut skipped) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut wms = Vec::new();
    let mut sqls = Vec::new();
    for (name, e) in entries
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
    {
        names.push(name.clone());
        states.push(e.stats.state());
        kinds.push(match &e.plan.kind {
            QueryKind::Stateless => "stateless".to_string(),
            QueryKind::Window {
                window: WindowSpec::Time { size, slide },
                ..
            } if size == slide => format!("tumble {size} ms"),
            QueryKind::Window {
                window: WindowSpec::Time { size, slide },
                ..
            } => format!("hop {slide}/{size} ms"),
            QueryKind::Window {
                window: WindowSpec::Session { gap, .. },
                ..
            } => format!("session gap {gap} ms"),
            QueryKind::Join { bound: Some(b), .. } => format!("join within {b} ms"),
            QueryKind::Join { .. } => "join".to_string(),
        });
        sources.push(e.plan.sources.join(", "));
        rin.push(e.stats.records_in.load(Ordering::Relaxed));
        rout.push(e.stats.records_out.load(Ordering::Relaxed));
        late.push(e.stats.late_dropped.load(Ordering::Relaxed));
        skipped.push(e.stats.skipped.load(Ordering::Relaxed));
        let wm = e.stats.watermark.load(Ordering::Relaxed);
        wms.push((wm != i64::MIN).then_some(wm));
        sqls.push(if only.is_some() {
            format!("{}\n-- runs as: {}", e.plan.sql, e.plan.exec_sql)
        } else {
            e.plan.sql.clone()
        });
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("sources", DataType::Utf8, false),
        Field::new("records_in", DataType::UInt64, false),
        Field::new("records_out", DataType::UInt64, false),
        Field::new("late_dropped", DataType::UInt64, false),
        Field::new("skipped", DataType::UInt64, false),
        Field::new("watermark", ts, true),
        Field::new("query", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(states)),
        Arc::new(StringArray::from(kinds)),
        Arc::new(StringArray::from(sources)),
        Arc::new(UInt64Array::from(rin)),
        Arc::new(UInt64Array::from(rout)),
        Arc::new(UInt64Array::from(late)),
        Arc::new(UInt64Array::from(skipped)),
        Arc::new(TimestampMillisecondArray::from(wms).with_timezone("UTC")),
        Arc::new(StringArray::from(sqls)),
    ];
    RecordBatch::try_new(schema, columns).map_err(Error::arrow("listing queries"))
}

impl SqlContext {
    /// Names of the continuous queries started in this context (running or not).
    pub fn query_names(&self) -> Vec<String> {
        self.queries.lock().keys().cloned().collect()
    }

    /// The counters of a continuous query.
    pub fn query_stats(&self, name: &str) -> Option<Arc<QueryStats>> {
        self.queries.lock().get(name).map(|e| e.stats.clone())
    }

    /// Stops a continuous query, keeping its checkpoint (a later `CREATE STREAM` with the same
    /// name and query resumes from it).
    pub async fn stop(&self, name: &str) -> Result<()> {
        let entry = self.queries.lock().remove(name);
        let Some(mut e) = entry else {
            return Err(Error::NoSuchQuery(name.to_string()));
        };
        e.cancel.cancel();
        match e.task.take() {
            Some(t) => t.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// Stops every continuous query (each writes its checkpoint).
    pub async fn stop_all(&self) -> Result<()> {
        let mut first_error = None;
        for name in self.query_names() {
            if let Err(e) = self.stop(&name).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until some continuous query ends; its error if it failed.
    pub async fn wait_any(&self) -> Result<()> {
        loop {
            let finished = self
                .queries
                .lock()
                .iter()
                .find(|(_, e)| e.task.as_ref().is_some_and(|t| t.is_finished()))
                .map(|(n, _)| n.clone());
            if let Some(name) = finished {
                let task = self
                    .queries
                    .lock()
                    .get_mut(&name)
                    .and_then(|e| e.task.take());
                if let Some(t) = task {
                    return t.await.unwrap_or(Ok(()));
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
