//! The source task loop: poll → transform → convert → produce; offsets are recorded once the
//! batch's records are acknowledged, and written to the offsets file every
//! `offset.flush.interval.ms` and when the task stops.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use std::collections::HashSet;

use fjord_client::{Admin, DeliveryFuture, ProducerRecord};
use tokio::time::Instant;

use super::errors::{RawRecord, Stage};
use super::worker::TaskContext;
use crate::converter::json::value_to_plain_json;
use crate::data::SourceRecord;
use crate::error::{Error, Result};
use crate::plugin::{OffsetMap, SourceConnector, SourceTask, SourceTaskContext};
use crate::runtime::status::State;
use crate::runtime::topic_creation::TopicCreation;

pub(crate) async fn run(ctx: TaskContext, connector: Arc<dyn SourceConnector>) {
    let mut task = connector.create_task();
    let result = run_task(&ctx, task.as_mut()).await;
    task.stop().await;
    flush_offsets(&ctx).await;
    ctx.finish(result);
}

async fn flush_offsets(ctx: &TaskContext) {
    if let Err(e) = ctx.worker.offsets.save().await {
        tracing::warn!(connector = %ctx.connector, error = %e.chain(), "cannot save source offsets");
    }
}

async fn run_task(ctx: &TaskContext, task: &mut dyn SourceTask) -> Result<()> {
    let pipeline = ctx.pipeline()?;
    // Distributed: the offsets the previous owner of this task saved are read first.
    if let Some(log) = ctx.worker.offset_log.get() {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = log.read_to_end(std::time::Duration::from_secs(60)) => r?,
        }
    }
    let offsets = ctx.worker.offsets.clone();
    let name = ctx.connector.clone();
    let context = SourceTaskContext {
        offsets: Arc::new(move |p| offsets.get(&name, p)),
    };
    tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(()),
        r = task.start(&ctx.task_config, context) => r?,
    }
    let mut topics = TopicCreator::new(ctx)?;
    let mut paused = ctx.sync_pause_status(None);
    let mut paused_rx = ctx.paused.clone();
    let mut last_flush = Instant::now();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let result = loop {
        if paused {
            if let Err(e) = retire_all(ctx, &mut in_flight).await {
                break Err(e);
            }
            flush_offsets(ctx).await;
            tokio::select! {
                _ = ctx.cancel.cancelled() => break Ok(()),
                changed = paused_rx.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                }
            }
            paused = ctx.sync_pause_status(Some(paused));
            continue;
        }
        let batch = tokio::select! {
            _ = ctx.cancel.cancelled() => break Ok(()),
            r = task.poll() => r,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        let idle = batch.is_empty();
        if !idle {
            let sent = tokio::select! {
                _ = ctx.cancel.cancelled() => break Ok(()),
                r = send_batch(ctx, &pipeline, &mut topics, batch) => r,
            };
            match sent {
                Ok(b) => in_flight.push_back(b),
                Err(e) => break Err(e),
            }
        }
        // Offsets become committable in order, once their batch is acknowledged; a few
        // batches stay in flight so that producing overlaps with polling.
        while in_flight.len() > MAX_IN_FLIGHT || (idle && !in_flight.is_empty()) {
            let Some(oldest) = in_flight.pop_front() else {
                break;
            };
            retire(ctx, oldest).await?;
        }
        if last_flush.elapsed() >= ctx.worker.config.offset_flush_interval {
            flush_offsets(ctx).await;
            last_flush = Instant::now();
        }
        paused = ctx.sync_pause_status(Some(paused));
    };
    // Stopping: what was sent is waited for (bounded by task.shutdown.graceful.timeout.ms),
    // so its offsets are saved.
    if result.is_ok() {
        retire_all(ctx, &mut in_flight).await?;
    }
    result
}

/// Source batches sent at once; more wait for the oldest to be acknowledged.
const MAX_IN_FLIGHT: usize = 4;

/// A sent batch: its records' delivery futures and the offsets they make committable.
struct InFlight {
    deliveries: Vec<(String, DeliveryFuture)>,
    offsets: Vec<(OffsetMap, OffsetMap)>,
}

/// Waits for a batch's acknowledgements, then records its offsets.
async fn retire(ctx: &TaskContext, batch: InFlight) -> Result<()> {
    for (topic, d) in batch.deliveries {
        d.await.map_err(|e| Error::Kafka {
            context: format!("producing to {topic}"),
            source: e,
        })?;
    }
    for (p, o) in batch.offsets {
        ctx.worker.offsets.put(&ctx.connector, p, o);
    }
    Ok(())
}

async fn retire_all(ctx: &TaskContext, in_flight: &mut VecDeque<InFlight>) -> Result<()> {
    while let Some(batch) = in_flight.pop_front() {
        retire(ctx, batch).await?;
    }
    Ok(())
}

/// Converts and sends a batch (without waiting for acknowledgements).
async fn send_batch(
    ctx: &TaskContext,
    pipeline: &super::worker::Pipeline,
    topics: &mut TopicCreator,
    batch: Vec<SourceRecord>,
) -> Result<InFlight> {
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut offsets: Vec<(OffsetMap, OffsetMap)> = Vec::with_capacity(batch.len());
    for record in batch {
        offsets.push((record.source_partition, record.source_offset));
        let Some(out) = convert(ctx, pipeline, record.record).await? else {
            continue;
        };
        ctx.worker.note_topic(&ctx.connector, &out.topic);
        topics.ensure(&out.topic).await?;
        let topic = out.topic.clone();
        let delivery = ctx
            .worker
            .producer
            .send(out)
            .await
            .map_err(|e| Error::Kafka {
                context: format!("producing to {topic}"),
                source: e,
            })?;
        deliveries.push((topic, delivery));
    }
    Ok(InFlight {
        deliveries,
        offsets,
    })
}

/// Transforms and converts one record; `None` when dropped by a transform or a tolerated error.
async fn convert(
    ctx: &TaskContext,
    pipeline: &super::worker::Pipeline,
    record: crate::data::ConnectRecord,
) -> Result<Option<ProducerRecord>> {
    let raw = |r: &crate::data::ConnectRecord| RawRecord {
        topic: r.topic.clone(),
        partition: r.kafka_partition,
        offset: None,
        key: (!r.key.is_null()).then(|| Bytes::from(value_to_plain_json(&r.key).to_string())),
        value: (!r.value.is_null()).then(|| Bytes::from(value_to_plain_json(&r.value).to_string())),
        headers: r
            .headers
            .iter()
            .map(|h| {
                let bytes = crate::converter::header::HeaderConverter::Simple
                    .from_connect(&h.key, h.schema.as_ref(), &h.value)
                    .ok()
                    .flatten();
                (h.key.clone(), bytes.map(Bytes::from))
            })
            .collect(),
    };
    let original = raw(&record);
    let record = match pipeline.transforms.apply(record) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => {
            ctx.reporter(pipeline)
                .report(Stage::Transformation, "transforms", e, &original)
                .await?;
            return Ok(None);
        }
    };
    let key = match pipeline
        .converters
        .key
        .to_bytes(&record.topic, record.key_schema.as_ref(), &record.key)
        .await
    {
        Ok(k) => k,
        Err(e) => {
            let class = pipeline.converters.key_class.clone();
            ctx.reporter(pipeline)
                .report(Stage::KeyConverter, &class, e, &raw(&record))
                .await?;
            return Ok(None);
        }
    };
    let value = match pipeline
        .converters
        .value
        .to_bytes(&record.topic, record.value_schema.as_ref(), &record.value)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            let class = pipeline.converters.value_class.clone();
            ctx.reporter(pipeline)
                .report(Stage::ValueConverter, &class, e, &raw(&record))
                .await?;
            return Ok(None);
        }
    };
    let mut headers = Vec::with_capacity(record.headers.len());
    for h in &record.headers {
        match pipeline
            .converters
            .header
            .from_connect(&h.key, h.schema.as_ref(), &h.value)
        {
            Ok(bytes) => headers.push((h.key.clone(), bytes.map(Bytes::from))),
            Err(e) => {
                ctx.reporter(pipeline)
                    .report(Stage::HeaderConverter, "header.converter", e, &raw(&record))
                    .await?;
                return Ok(None);
            }
        }
    }
    Ok(Some(ProducerRecord {
        topic: record.topic,
        partition: record.kafka_partition,
        key: key.map(Bytes::from),
        value: value.map(Bytes::from),
        headers,
        timestamp: record.timestamp,
    }))
}

/// Creates the topics the task writes to, once each, when `topic.creation.*` asks for it.
struct TopicCreator {
    creation: Option<TopicCreation>,
    bootstrap: String,
    seen: HashSet<String>,
}

impl TopicCreator {
    fn new(ctx: &TaskContext) -> Result<Self> {
        let enabled = ctx
            .worker
            .config
            .values
            .get("topic.creation.enable")
            .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
        let creation = if enabled {
            TopicCreation::from_config(&ctx.config.values)?
        } else {
            None
        };
        Ok(TopicCreator {
            creation,
            bootstrap: ctx.worker.config.bootstrap_servers.clone(),
            seen: HashSet::new(),
        })
    }

    async fn ensure(&mut self, topic: &str) -> Result<()> {
        let Some(creation) = &self.creation else {
            return Ok(());
        };
        if self.seen.contains(topic) {
            return Ok(());
        }
        let kafka = |source| Error::Kafka {
            context: format!("creating topic {topic} (topic.creation.*)"),
            source,
        };
        let admin = Admin::connect(&self.bootstrap).await.map_err(kafka)?;
        let exists = admin
            .list_topics()
            .await
            .map_err(kafka)?
            .iter()
            .any(|t| t.name == topic);
        if !exists {
            let group = creation.group_for(topic);
            match admin
                .create_topic(topic, group.partitions, group.replication, &group.configs)
                .await
            {
                Ok(()) => {
                    tracing::info!(%topic, group = %group.name, partitions = group.partitions, "created a topic for a source connector")
                }
                // TOPIC_ALREADY_EXISTS: another task was first.
                Err(fjord_client::Error::Broker { code, .. }) if code.code() == 36 => {}
                Err(e) => return Err(kafka(e)),
            }
        }
        self.seen.insert(topic.to_string());
        Ok(())
    }
}

impl TaskContext {
    /// Publishes RUNNING or PAUSED when the target changed (or at first); returns whether
    /// the task is paused now.
    pub(crate) fn sync_pause_status(&self, before: Option<bool>) -> bool {
        let now = *self.paused.borrow();
        if before != Some(now) {
            let state = if now { State::Paused } else { State::Running };
            self.worker
                .status
                .set_task(&self.connector, self.task, state, None);
        }
        now
    }
}
