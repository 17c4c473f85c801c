//! The task that runs one continuous query: poll the sources, decode, run the operator
//! (stateless, window, join), write results to the output topic, checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use datafusion::prelude::{SessionConfig, SessionContext};
use fjord_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture, OffsetReset, Producer,
    ProducerConfig, ProducerRecord,
};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{self, Checkpoint, Header};
use super::options::{QueryOptions, QueryStats};
use super::plan::{ContinuousPlan, QueryKind, WindowSpec};
use super::rows::{self, TS};
use super::window::TimeWindows;
use crate::error::{Error, Result};
use crate::topic::{RecordDecoder, TopicTable};

/// Sends awaited before more are made (the bound of the output queue).
const MAX_PENDING_SENDS: usize = 50_000;

/// The operator state of each kind of query.
enum Operator {
    Stateless,
    Time {
        windows: TimeWindows,
        time_column: String,
    },
    Session {
        gap: i64,
        keys: Vec<String>,
        time_column: String,
        rows: Vec<RecordBatch>,
        schema: Option<SchemaRef>,
    },
    StreamJoin {
        bound: i64,
        left_rows: Vec<RecordBatch>,
        right_rows: Vec<RecordBatch>,
    },
    TableJoin {
        table: String,
        latest: HashMap<Bytes, ConsumerRecord>,
        snapshot: Option<RecordBatch>,
        loaded: bool,
        load_until: BTreeMap<i32, i64>,
    },
}

pub(crate) struct Runner {
    pub name: String,
    pub plan: ContinuousPlan,
    pub options: QueryOptions,
    pub bootstrap: String,
    pub state_dir: PathBuf,
    pub stats: Arc<QueryStats>,
    pub tables: BTreeMap<String, Arc<TopicTable>>,
    pub batch_size: usize,
}

struct Running {
    r: Runner,
    session: SessionContext,
    decoders: BTreeMap<String, Arc<RecordDecoder>>,
    producer: Producer,
    pending: Vec<DeliveryFuture>,
    watermark: Option<i64>,
    op: Operator,
    checkpoint_path: PathBuf,
    /// Set when windows were emitted since the last checkpoint.
    emitted: bool,
}

impl Runner {
    /// Runs until `cancel`, then writes a last checkpoint.
    pub(crate) async fn run(self, cancel: CancellationToken) -> Result<()> {
        let stats = self.stats.clone();
        let result = self.run_inner(cancel).await;
        match &result {
            Ok(()) => stats.set_state("STOPPED"),
            Err(e) => stats.set_state(format!("FAILED: {e}")),
        }
        result
    }

    async fn run_inner(self, cancel: CancellationToken) -> Result<()> {
        let admin = Admin::connect(&self.bootstrap)
            .await
            .map_err(Error::kafka("connecting"))?;
        let op = self.operator(&admin).await?;
        let mut decoders = BTreeMap::new();
        for (topic, table) in &self.tables {
            let projection = projection(table, &self.plan);
            decoders.insert(topic.clone(), Arc::new(table.decoder(Some(&projection))));
        }
        let session =
            SessionContext::new_with_config(SessionConfig::new().with_batch_size(self.batch_size));
        super::register_functions(&session);
        let producer = Producer::new(
            ProducerConfig::new(self.bootstrap.clone())
                .with_linger(Duration::from_millis(5))
                .with_batch_size(512 * 1024),
        )
        .map_err(Error::kafka("creating the output producer"))?;
        let checkpoint_path = checkpoint::path(&self.state_dir, &self.name);
        let mut running = Running {
            r: self,
            session,
            decoders,
            producer,
            pending: Vec::new(),
            watermark: None,
            op,
            checkpoint_path,
            emitted: false,
        };
        running.main_loop(&admin, cancel).await
    }

    async fn operator(&self, admin: &Admin) -> Result<Operator> {
        Ok(match &self.plan.kind {
            QueryKind::Stateless => Operator::Stateless,
            QueryKind::Window {
                window: WindowSpec::Time { size, slide },
                time_column,
            } => Operator::Time {
                windows: TimeWindows::new(*size, *slide, self.options.lateness),
                time_column: time_column.clone(),
            },
            QueryKind::Window {
                window: WindowSpec::Session { gap, keys },
                time_column,
            } => Operator::Session {
                gap: *gap,
                keys: keys.clone(),
                time_column: time_column.clone(),
                rows: Vec::new(),
                schema: None,
            },
            QueryKind::Join { left, right, bound } => {
                let compacted = |t: &str| {
                    let t = t.to_string();
                    async move {
                        let d = admin
                            .describe_topic(&t)
                            .await
                            .map_err(Error::kafka(format!("describing {t}")))?;
                        Ok::<_, Error>(
                            d.overrides
                                .get("cleanup.policy")
                                .is_some_and(|p| p.contains("compact")),
                        )
                    }
                };
                match (compacted(left).await?, compacted(right).await?) {
                    (false, false) => match bound {
                        Some(b) => Operator::StreamJoin {
                            bound: *b,
                            left_rows: Vec::new(),
                            right_rows: Vec::new(),
                        },
                        None => {
                            return Err(Error::Statement {
                                statement: "CREATE STREAM",
                                reason: "a join of two streams needs a time bound in ON, e.g. b.\"timestamp\" BETWEEN a.\"timestamp\" AND a.\"timestamp\" + INTERVAL '10' MINUTE (or join a compacted topic as a table)".into(),
                            });
                        }
                    },
                    (true, true) => {
                        return Err(Error::Statement {
                            statement: "CREATE STREAM",
                            reason: format!(
                                "{left} and {right} are both tables (compacted): a continuous join needs a stream"
                            ),
                        });
                    }
                    (l, _) => Operator::TableJoin {
                        table: if l { left.clone() } else { right.clone() },
                        latest: HashMap::new(),
                        snapshot: None,
                        loaded: false,
                        load_until: BTreeMap::new(),
                    },
                }
            }
        })
    }
}

/// Columns of `table` the query mentions (all when it selects `*`), plus `timestamp`.
fn projection(table: &TopicTable, plan: &ContinuousPlan) -> Vec<usize> {
    let schema = datafusion::catalog::TableProvider::schema(table);
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.name() == "timestamp"
                || plan
                    .identifiers
                    .as_ref()
                    .is_none_or(|ids| ids.contains(f.name().as_str()))
        })
        .map(|(i, _)| i)
        .collect()
}

impl Running {
    async fn main_loop(&mut self, admin: &Admin, cancel: CancellationToken) -> Result<()> {
        let restored = self.restore()?;
        let mut consumer = Consumer::new(
            ConsumerConfig::new(self.r.bootstrap.clone())
                .auto_offset_reset(OffsetReset::Earliest)
                .max_partition_fetch_bytes(4 << 20),
        )
        .await
        .map_err(Error::kafka("creating the source consumer"))?;
        let mut all = Vec::new();
        for (topic, table) in &self.r.tables {
            for p in &table.partitions {
                all.push((topic.clone(), *p));
            }
        }
        consumer
            .assign(all.clone())
            .map_err(Error::kafka("assigning source partitions"))?;
        if let Some(offsets) = &restored {
            for (topic, parts) in offsets {
                for (p, o) in parts {
                    consumer.seek((topic.clone(), *p), *o);
                }
            }
        }
        // A table is read from its start on every run, before the stream.
        let mut stream_tps = Vec::new();
        if let Operator::TableJoin {
            table, load_until, ..
        } = &mut self.op
        {
            let tps: Vec<_> = all.iter().filter(|(t, _)| t == table).cloned().collect();
            stream_tps = all.iter().filter(|(t, _)| t != table).cloned().collect();
            consumer
                .seek_to_beginning(&tps)
                .await
                .map_err(Error::kafka("seeking the table"))?;
            let ends = admin
                .list_offsets(&tps, fjord_client::OffsetSpec::Latest)
                .await
                .map_err(Error::kafka("listing the table's offsets"))?;
            for ((_, p), end) in ends {
                load_until.insert(p, end.unwrap_or(0));
            }
            consumer.pause(&stream_tps);
        }
        self.r.stats.set_state("RUNNING");
        let mut last_checkpoint = Instant::now();
        loop {
            let records = tokio::select! {
                _ = cancel.cancelled() => break,
                r = consumer.poll(Duration::from_millis(100)) => r.map_err(Error::kafka("polling sources"))?,
            };
            if !records.is_empty() {
                self.process(records).await?;
            }
            if let Operator::TableJoin {
                table,
                loaded,
                load_until,
                ..
            } = &mut self.op
            {
                if !*loaded {
                    let done = load_until.iter().all(|(p, end)| {
                        consumer.position(&(table.clone(), *p)).unwrap_or(0) >= *end
                    });
                    if done {
                        *loaded = true;
                        consumer.resume(&stream_tps);
                    }
                }
            }
            if self.emitted || last_checkpoint.elapsed() >= self.r.options.checkpoint_interval {
                self.checkpoint(consumer.positions()).await?;
                last_checkpoint = Instant::now();
            }
        }
        self.checkpoint(consumer.positions()).await?;
        let _ = consumer.close().await;
        Ok(())
    }

    async fn process(&mut self, records: Vec<ConsumerRecord>) -> Result<()> {
        self.r
            .stats
            .records_in
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        // Per topic, in arrival order.
        let mut by_topic: BTreeMap<String, Vec<ConsumerRecord>> = BTreeMap::new();
        for r in records {
            by_topic
                .entry(r.topic.as_str().to_string())
                .or_default()
                .push(r);
        }
        for (topic, recs) in by_topic {
            if let Operator::TableJoin {
                table,
                latest,
                snapshot,
                ..
            } = &mut self.op
            {
                if *table == topic {
                    for r in recs {
                        let Some(k) = r.key.clone() else { continue };
                        if r.value.is_none() {
                            latest.remove(&k);
                        } else {
                            latest.insert(k, r);
                        }
                    }
                    *snapshot = None;
                    continue;
                }
            }
            let Some(decoder) = self.decoders.get(&topic).cloned() else {
                continue;
            };
            for chunk in recs.chunks(self.r.batch_size.max(1)) {
                let decoded = decoder.decode(chunk).await?;
                if decoded.skipped > 0 {
                    self.r
                        .stats
                        .skipped
                        .fetch_add(decoded.skipped as u64, Ordering::Relaxed);
                    self.dead_letters(chunk, &decoded.failures).await?;
                }
                if decoded.batch.num_rows() > 0 {
                    self.apply(&topic, decoded.batch).await?;
                }
            }
        }
        if let Some(wm) = self.watermark {
            self.r.stats.watermark.store(wm, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn dead_letters(
        &mut self,
        chunk: &[ConsumerRecord],
        failures: &[(usize, String)],
    ) -> Result<()> {
        let Some(dlq) = self.r.options.dead_letter_topic.clone() else {
            if let Some((i, reason)) = failures.first() {
                tracing::warn!(stream = %self.r.name, offset = chunk.get(*i).map_or(-1, |r| r.offset), %reason, "skipping records whose value does not decode");
            }
            return Ok(());
        };
        for (i, reason) in failures {
            let Some(r) = chunk.get(*i) else { continue };
            let mut headers = r.headers.clone();
            headers.push((
                "__fjord.sql.error".into(),
                Some(Bytes::from(reason.clone())),
            ));
            headers.push((
                "__fjord.sql.source".into(),
                Some(Bytes::from(format!(
                    "{}-{}@{}",
                    r.topic.as_str(),
                    r.partition,
                    r.offset
                ))),
            ));
            let send = self
                .producer
                .send(ProducerRecord {
                    topic: dlq.clone(),
                    partition: None,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers,
                    timestamp: Some(r.timestamp),
                })
                .await
                .map_err(Error::kafka(format!("writing to dead-letter topic {dlq}")))?;
            self.pending.push(send);
        }
        Ok(())
    }

    /// Runs the operator on a decoded batch of `topic`.
    async fn apply(&mut self, topic: &str, batch: RecordBatch) -> Result<()> {
        let lateness = self.r.options.lateness;
        match &mut self.op {
            Operator::Stateless => {
                let out = self
                    .sql(&[(topic.to_string(), batch.schema(), vec![batch])])
                    .await?;
                self.emit(out).await?;
            }
            Operator::Time {
                windows,
                time_column,
            } => {
                let times = rows::event_times(&batch, time_column)?;
                let added = windows.add(&batch, &times, &mut self.watermark)?;
                self.r
                    .stats
                    .late_dropped
                    .fetch_add(added.late as u64, Ordering::Relaxed);
                self.r
                    .stats
                    .skipped
                    .fetch_add(added.untimed as u64, Ordering::Relaxed);
                let Some(wm) = self.watermark else {
                    return Ok(());
                };
                let closed = windows.close(wm)?;
                let size = windows.size;
                for (start, rows_of) in closed {
                    let table = rows::with_columns(
                        &rows_of,
                        vec![
                            (
                                "window_start",
                                rows::timestamps(std::iter::repeat_n(start, rows_of.num_rows())),
                            ),
                            (
                                "window_end",
                                rows::timestamps(std::iter::repeat_n(
                                    start + size,
                                    rows_of.num_rows(),
                                )),
                            ),
                        ],
                    )?;
                    let out = self
                        .sql(&[(topic.to_string(), table.schema(), vec![table])])
                        .await?;
                    self.emit(out).await?;
                    self.emitted = true;
                }
            }
            Operator::Session {
                gap,
                time_column,
                rows: buffer,
                schema,
                ..
            } => {
                let gap = *gap;
                let times = rows::event_times(&batch, time_column)?;
                let mut keep = Vec::new();
                let mut tss = Vec::new();
                let mut late = 0;
                for (i, t) in times.iter().enumerate() {
                    let Some(t) = *t else { continue };
                    let wm = self.watermark.map_or(t, |w| w.max(t));
                    self.watermark = Some(wm);
                    if t + gap + lateness <= wm {
                        late += 1;
                        continue;
                    }
                    keep.push(i as u32);
                    tss.push(t);
                }
                self.r.stats.late_dropped.fetch_add(late, Ordering::Relaxed);
                if !keep.is_empty() {
                    let kept = rows::take(&batch, &keep)?;
                    let kept = rows::with_columns(
                        &kept,
                        vec![(
                            TS,
                            Arc::new(datafusion::arrow::array::Int64Array::from(tss)) as ArrayRef,
                        )],
                    )?;
                    schema.get_or_insert_with(|| kept.schema());
                    buffer.push(kept);
                }
                self.close_sessions(topic).await?;
            }
            Operator::StreamJoin {
                bound,
                left_rows,
                right_rows,
            } => {
                let bound = *bound;
                let times = rows::event_times(&batch, "timestamp")?;
                // Late: older than the horizon before this batch (rows of one batch do not
                // make each other late).
                let before = self.watermark.unwrap_or(i64::MIN);
                let late_horizon = before.saturating_sub(bound).saturating_sub(lateness);
                let max = times.iter().flatten().max().copied();
                if let Some(m) = max {
                    self.watermark = Some(self.watermark.map_or(m, |w| w.max(m)));
                }
                let wm = self.watermark.unwrap_or(i64::MIN);
                let horizon = wm.saturating_sub(bound).saturating_sub(lateness);
                let keep: Vec<bool> = times
                    .iter()
                    .map(|t| t.is_some_and(|t| t >= late_horizon))
                    .collect();
                let late = keep.iter().filter(|k| !**k).count();
                self.r
                    .stats
                    .late_dropped
                    .fetch_add(late as u64, Ordering::Relaxed);
                let delta = rows::filter(&batch, keep)?;
                let (left, right) = match &self.r.plan.kind {
                    QueryKind::Join { left, right, .. } => (left.clone(), right.clone()),
                    _ => return Ok(()),
                };
                let schema_of = |t: &str| self.decoders.get(t).map(|d| d.schema.clone());
                let (Some(ls), Some(rs)) = (schema_of(&left), schema_of(&right)) else {
                    return Ok(());
                };
                let tables = if topic == left {
                    let t = vec![
                        (left.clone(), ls, vec![delta.clone()]),
                        (right.clone(), rs, right_rows.clone()),
                    ];
                    left_rows.push(delta);
                    t
                } else {
                    let t = vec![
                        (left.clone(), ls, left_rows.clone()),
                        (right.clone(), rs, vec![delta.clone()]),
                    ];
                    right_rows.push(delta);
                    t
                };
                // Rows too old to match anything still to come.
                for buf in [&mut *left_rows, &mut *right_rows] {
                    let mut kept = Vec::new();
                    for b in buf.drain(..) {
                        let t = rows::event_times(&b, "timestamp")?;
                        let keep: Vec<bool> =
                            t.iter().map(|t| t.is_some_and(|t| t >= horizon)).collect();
                        let b = rows::filter(&b, keep)?;
                        if b.num_rows() > 0 {
                            kept.push(b);
                        }
                    }
                    *buf = kept;
                }
                let out = self.sql(&tables).await?;
                self.emit(out).await?;
            }
            Operator::TableJoin {
                table,
                latest,
                snapshot,
                ..
            } => {
                let table = table.clone();
                if snapshot.is_none() {
                    let records: Vec<ConsumerRecord> = latest.values().cloned().collect();
                    let decoder = self.decoders.get(&table).cloned();
                    if let Some(d) = decoder {
                        *snapshot = Some(d.decode(&records).await?.batch);
                    }
                }
                let Some(snap) = snapshot.clone() else {
                    return Ok(());
                };
                let out = self
                    .sql(&[
                        (topic.to_string(), batch.schema(), vec![batch]),
                        (table, snap.schema(), vec![snap]),
                    ])
                    .await?;
                self.emit(out).await?;
            }
        }
        Ok(())
    }

    /// Emits the sessions that closed by the watermark; keeps the rows of open ones.
    async fn close_sessions(&mut self, topic: &str) -> Result<()> {
        let lateness = self.r.options.lateness;
        let Operator::Session {
            gap,
            keys,
            rows: buffer,
            schema,
            ..
        } = &mut self.op
        else {
            return Ok(());
        };
        let (Some(schema), Some(wm)) = (schema.clone(), self.watermark) else {
            return Ok(());
        };
        if buffer.is_empty() {
            return Ok(());
        }
        let gap = *gap;
        let key_cols: Vec<String> = if keys.is_empty() {
            vec!["1".into()]
        } else {
            keys.clone()
        };
        let named: Vec<String> = key_cols
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS __fjord_k{i}"))
            .collect();
        let parts: Vec<String> = (0..key_cols.len())
            .map(|i| format!("__fjord_k{i}"))
            .collect();
        let by = parts.join(", ");
        let sessionize = format!(
            "WITH b AS (SELECT *, {named} FROM __fjord_buffer), \
             s AS (SELECT *, CASE WHEN {TS} - lag({TS}) OVER (PARTITION BY {by} ORDER BY {TS}) <= {gap} THEN 0 ELSE 1 END AS __fjord_new FROM b), \
             g AS (SELECT *, sum(__fjord_new) OVER (PARTITION BY {by} ORDER BY {TS} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __fjord_sid FROM s) \
             SELECT *, min({TS}) OVER (PARTITION BY {by}, __fjord_sid) AS __fjord_start, max({TS}) OVER (PARTITION BY {by}, __fjord_sid) AS __fjord_end FROM g",
            named = named.join(", ")
        );
        let all = std::mem::take(buffer);
        let table = MemTable::try_new(schema.clone(), vec![all])?;
        let _ = self
            .session
            .deregister_table(TableReference::bare("__fjord_buffer"));
        self.session
            .register_table(TableReference::bare("__fjord_buffer"), Arc::new(table))?;
        let assigned = self.session.sql(&sessionize).await?.collect().await?;
        let visible = rows::visible_schema(&schema);
        let mut closed = Vec::new();
        let mut open = Vec::new();
        for b in assigned {
            let ends = rows::int64_column(&b, "__fjord_end")?.clone();
            let starts = rows::int64_column(&b, "__fjord_start")?.clone();
            let is_closed: Vec<bool> = ends
                .iter()
                .map(|e| e.is_some_and(|e| e + gap + lateness <= wm))
                .collect();
            let keep_open: Vec<bool> = is_closed.iter().map(|c| !c).collect();
            let orig: Vec<usize> = schema
                .fields()
                .iter()
                .filter_map(|f| b.schema().index_of(f.name()).ok())
                .collect();
            let base = b.project(&orig).map_err(Error::arrow("sessions"))?;
            let o = rows::filter(&base, keep_open)?;
            if o.num_rows() > 0 {
                open.push(o);
            }
            let with_window = rows::with_columns(
                &rows::without_hidden(&base)?,
                vec![
                    (
                        "window_start",
                        rows::timestamps(starts.iter().map(|v| v.unwrap_or(0))),
                    ),
                    (
                        "window_end",
                        rows::timestamps(ends.iter().map(|v| v.unwrap_or(0))),
                    ),
                ],
            )?;
            let c = rows::filter(&with_window, is_closed)?;
            if c.num_rows() > 0 {
                closed.push(c);
            }
        }
        if let Operator::Session { rows: buffer, .. } = &mut self.op {
            *buffer = open;
        }
        let _ = visible;
        if !closed.is_empty() {
            let s = closed[0].schema();
            let out = self.sql(&[(topic.to_string(), s, closed)]).await?;
            self.emit(out).await?;
            self.emitted = true;
        }
        Ok(())
    }

    /// Runs the query over `tables` (name, schema, rows), registered under the source names.
    async fn sql(
        &self,
        tables: &[(String, SchemaRef, Vec<RecordBatch>)],
    ) -> Result<Vec<RecordBatch>> {
        for (name, schema, batches) in tables {
            let t = MemTable::try_new(schema.clone(), vec![batches.clone()])?;
            let _ = self
                .session
                .deregister_table(TableReference::bare(name.as_str()));
            self.session
                .register_table(TableReference::bare(name.as_str()), Arc::new(t))?;
        }
        Ok(self
            .session
            .sql(&self.r.plan.exec_sql)
            .await?
            .collect()
            .await?)
    }

    /// Writes result rows to the output topic: the value is the row as a JSON object; the key
    /// is the `key` column when there is one; the timestamp is the `timestamp` column, else
    /// `window_end - 1`.
    async fn emit(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            let keys = column_bytes(&b, "key")?;
            let times = record_times(&b)?;
            let shown = crate::format::displayable(&b)?;
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                w.write(&shown)
                    .map_err(Error::arrow("writing results as JSON"))?;
                w.finish()
                    .map_err(Error::arrow("writing results as JSON"))?;
            }
            for (i, line) in buf
                .split(|c| *c == b'\n')
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                let record = ProducerRecord {
                    topic: self.r.name.clone(),
                    partition: None,
                    key: keys.as_ref().and_then(|k| k.get(i).cloned().flatten()),
                    value: Some(Bytes::copy_from_slice(line)),
                    headers: Vec::new(),
                    timestamp: times.as_ref().and_then(|t| t.get(i).copied().flatten()),
                };
                let send = self
                    .producer
                    .send(record)
                    .await
                    .map_err(Error::kafka(format!("writing to {}", self.r.name)))?;
                self.pending.push(send);
                self.r.stats.records_out.fetch_add(1, Ordering::Relaxed);
            }
            if self.pending.len() >= MAX_PENDING_SENDS {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for p in self.pending.drain(..) {
            p.await
                .map_err(Error::kafka(format!("writing to {}", self.r.name)))?;
        }
        Ok(())
    }

    /// Waits for every send, then records offsets, watermark and open state.
    async fn checkpoint(&mut self, positions: BTreeMap<(String, i32), i64>) -> Result<()> {
        self.flush().await?;
        let mut header = Header {
            sql: self.r.plan.sql.clone(),
            watermark: self.watermark,
            records_in: self.r.stats.records_in.load(Ordering::Relaxed),
            records_out: self.r.stats.records_out.load(Ordering::Relaxed),
            late_dropped: self.r.stats.late_dropped.load(Ordering::Relaxed),
            skipped: self.r.stats.skipped.load(Ordering::Relaxed),
            ..Default::default()
        };
        let table_topic = match &self.op {
            Operator::TableJoin { table, .. } => Some(table.clone()),
            _ => None,
        };
        for ((topic, p), o) in positions {
            if Some(&topic) == table_topic.as_ref() {
                continue;
            }
            header.offsets.entry(topic).or_default().insert(p, o);
        }
        let mut sections = Vec::new();
        match &self.op {
            Operator::Time { windows, .. } => {
                header.next_window = windows.next_window;
                if let (Some(schema), rows) = windows.rows() {
                    sections.push(("rows".to_string(), schema, rows));
                }
            }
            Operator::Session {
                rows,
                schema: Some(schema),
                ..
            } => {
                sections.push(("rows".to_string(), schema.clone(), rows.clone()));
            }
            Operator::StreamJoin {
                left_rows,
                right_rows,
                ..
            } => {
                if let QueryKind::Join { left, right, .. } = &self.r.plan.kind {
                    for (name, rows) in [(left, left_rows), (right, right_rows)] {
                        if let Some(d) = self.decoders.get(name) {
                            sections.push((format!("join:{name}"), d.schema.clone(), rows.clone()));
                        }
                    }
                }
            }
            _ => {}
        }
        let path = self.checkpoint_path.clone();
        let cp = Checkpoint { header, sections };
        tokio::task::spawn_blocking(move || cp.store(&path))
            .await
            .map_err(|e| Error::Checkpoint {
                path: String::new(),
                source: std::io::Error::other(e),
            })??;
        self.emitted = false;
        Ok(())
    }

    /// Loads the checkpoint, if any: returns the offsets to resume from.
    fn restore(&mut self) -> Result<Option<BTreeMap<String, BTreeMap<i32, i64>>>> {
        let Some(cp) = Checkpoint::load(&self.checkpoint_path)? else {
            return Ok(None);
        };
        if cp.header.sql != self.r.plan.sql {
            return Err(Error::Statement {
                statement: "CREATE STREAM",
                reason: format!(
                    "stream {} has a checkpoint for a different query (DROP STREAM {} first to start over)",
                    self.r.name, self.r.name
                ),
            });
        }
        let h = &cp.header;
        self.watermark = h.watermark;
        let s = &self.r.stats;
        s.records_in.store(h.records_in, Ordering::Relaxed);
        s.records_out.store(h.records_out, Ordering::Relaxed);
        s.late_dropped.store(h.late_dropped, Ordering::Relaxed);
        s.skipped.store(h.skipped, Ordering::Relaxed);
        if let Some(wm) = h.watermark {
            s.watermark.store(wm, Ordering::Relaxed);
        }
        for (name, schema, batches) in cp.sections {
            match &mut self.op {
                Operator::Time { windows, .. } if name == "rows" => {
                    windows.next_window = h.next_window;
                    windows.restore(batches)?;
                }
                Operator::Session {
                    rows, schema: sch, ..
                } if name == "rows" => {
                    *sch = Some(schema);
                    *rows = batches;
                }
                Operator::StreamJoin {
                    left_rows,
                    right_rows,
                    ..
                } => {
                    if let QueryKind::Join { left, .. } = &self.r.plan.kind {
                        if name == format!("join:{left}") {
                            *left_rows = batches;
                        } else {
                            *right_rows = batches;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Operator::Time { windows, .. } = &mut self.op {
            if windows.next_window.is_none() {
                windows.next_window = h.next_window;
            }
        }
        tracing::info!(stream = %self.r.name, watermark = ?h.watermark, "resuming from checkpoint");
        Ok(Some(cp.header.offsets))
    }
}

/// The `name` column as bytes per row (text for non-binary types).
fn column_bytes(b: &RecordBatch, name: &str) -> Result<Option<Vec<Option<Bytes>>>> {
    let Some(col) = b.column_by_name(name) else {
        return Ok(None);
    };
    if let Some(bin) = col.as_any().downcast_ref::<BinaryArray>() {
        return Ok(Some(
            bin.iter().map(|v| v.map(Bytes::copy_from_slice)).collect(),
        ));
    }
    let text =
        compute::cast(col, &DataType::Utf8).map_err(Error::arrow("reading the key column"))?;
    let Some(s) = text.as_any().downcast_ref::<StringArray>() else {
        return Ok(None);
    };
    Ok(Some(
        s.iter()
            .map(|v| v.map(|v| Bytes::copy_from_slice(v.as_bytes())))
            .collect(),
    ))
}

/// Record timestamps: the `timestamp` column, else `window_end - 1`.
fn record_times(b: &RecordBatch) -> Result<Option<Vec<Option<i64>>>> {
    for (name, shift) in [("timestamp", 0), ("window_end", 1)] {
        let Some(col) = b.column_by_name(name) else {
            continue;
        };
        if !matches!(col.data_type(), DataType::Timestamp(..)) {
            continue;
        }
        let ms = compute::cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .and_then(|c| compute::cast(&c, &DataType::Int64))
            .map_err(Error::arrow("reading result timestamps"))?;
        let Some(ints) = ms
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
        else {
            continue;
        };
        return Ok(Some(ints.iter().map(|v| v.map(|v| v - shift)).collect()));
    }
    Ok(None)
}
