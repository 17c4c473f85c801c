//! The sink task loop: the `connect-{name}` consumer group → convert → transform → put; every
//! `offset.flush.interval.ms` (and when stopping) flush → commit the consumed positions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_client::{Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};
use tokio::time::Instant;

use super::errors::{RawRecord, Stage};
use super::worker::{Pipeline, TaskContext};
use crate::config::prefixed;
use crate::data::{ConnectRecord, Header, SinkRecord};
use crate::error::{Error, Result};
use crate::plugin::{SinkConnector, SinkTask};

/// How long one consumer poll waits.
const POLL: Duration = Duration::from_millis(500);
/// Pause after a failed poll before trying again.
const POLL_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) async fn run(ctx: TaskContext, connector: Arc<dyn SinkConnector>) {
    let mut task = connector.create_task();
    let mut consumer = None;
    let result = run_task(&ctx, task.as_mut(), &mut consumer).await;
    task.stop().await;
    if let Some(c) = consumer
        && let Err(e) = c.close().await
    {
        tracing::debug!(connector = %ctx.connector, error = %e, "closing the sink consumer");
    }
    ctx.finish(result);
}

fn consumer_config(ctx: &TaskContext) -> Result<ConsumerConfig> {
    let mut props = BTreeMap::from([
        (
            "bootstrap.servers".to_string(),
            ctx.worker.config.bootstrap_servers.clone(),
        ),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("max.poll.interval.ms".to_string(), "300000".to_string()),
        // Topics are matched by pattern (below); a topic created after the task started is
        // picked up within this interval.
        ("metadata.max.age.ms".to_string(), "2000".to_string()),
    ]);
    props.extend(ctx.worker.config.prefixed("consumer."));
    props.extend(prefixed(&ctx.config.values, "consumer.override."));
    // The group and commits belong to the runtime.
    props.insert("group.id".into(), format!("connect-{}", ctx.connector));
    props.insert("enable.auto.commit".into(), "false".into());
    props.insert(
        "client.id".into(),
        format!("connector-consumer-{}-{}", ctx.connector, ctx.task),
    );
    ConsumerConfig::from_properties(&props).map_err(|e| Error::config(&e.key, &e.value, e.reason))
}

async fn run_task(
    ctx: &TaskContext,
    task: &mut dyn SinkTask,
    slot: &mut Option<Consumer>,
) -> Result<()> {
    let pipeline = ctx.pipeline()?;
    let (topics, regex) = ctx.config.sink_topics()?;
    let config = consumer_config(ctx)?;
    let consumer = tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(()),
        c = Consumer::new(config) => c.map_err(|e| Error::Kafka { context: "starting the sink consumer".into(), source: e })?,
    };
    let consumer = slot.insert(consumer);
    // `topics` is subscribed as a pattern of the exact names, so that a topic which does not
    // exist yet joins the assignment once it is created (as the Java consumer's metadata
    // refresh does for a plain subscription).
    let pattern = match regex {
        Some(r) => r,
        None => {
            for t in &topics {
                ctx.worker.note_topic(&ctx.connector, t);
            }
            topics
                .iter()
                .map(|t| regex::escape(t))
                .collect::<Vec<_>>()
                .join("|")
        }
    };
    consumer
        .subscribe_pattern(&pattern)
        .map_err(|e| Error::Kafka {
            context: "subscribing".into(),
            source: e,
        })?;
    tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(()),
        r = task.start(&ctx.task_config) => r?,
    }
    let mut paused = ctx.sync_pause_status(None);
    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let result = loop {
        paused = ctx.sync_pause_status(Some(paused));
        if paused {
            let assigned = consumer.assignment();
            consumer.pause(&assigned);
        } else {
            let held = consumer.paused();
            consumer.resume(&held);
        }
        let records = tokio::select! {
            _ = ctx.cancel.cancelled() => break Ok(()),
            r = consumer.poll(POLL) => r,
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(connector = %ctx.connector, task = ctx.task, error = %e, "sink poll failed; retrying");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => break Ok(()),
                    _ = tokio::time::sleep(POLL_BACKOFF) => continue,
                }
            }
        };
        let mut batch = Vec::with_capacity(records.len());
        let mut failed = None;
        for record in records {
            positions.insert(
                (record.topic.to_string(), record.partition),
                record.offset + 1,
            );
            match convert(ctx, &pipeline, record).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if !batch.is_empty()
            && let Err(e) = put(ctx, task, batch).await
        {
            break Err(e);
        }
        if last_commit.elapsed() >= ctx.worker.config.offset_flush_interval {
            if let Err(e) = commit(ctx, task, consumer, &positions, &mut committed).await {
                break Err(e);
            }
            last_commit = Instant::now();
        }
    };
    if result.is_ok() {
        commit(ctx, task, consumer, &positions, &mut committed).await?;
    }
    result
}

/// `put` with retries within `errors.retry.timeout`.
async fn put(ctx: &TaskContext, task: &mut dyn SinkTask, batch: Vec<SinkRecord>) -> Result<()> {
    let errors = &ctx.config.errors;
    if errors.retry_timeout.is_none() && !errors.retry_forever {
        return task.put(batch).await;
    }
    let deadline = errors.retry_timeout.map(|t| Instant::now() + t);
    let mut delay = Duration::from_millis(300);
    loop {
        match task.put(batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now + delay > d) {
                    return Err(e);
                }
                tracing::warn!(connector = %ctx.connector, task = ctx.task, error = %e.chain(), "put failed; retrying");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(e),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(errors.retry_delay_max.max(Duration::from_millis(1)));
            }
        }
    }
}

async fn commit(
    ctx: &TaskContext,
    task: &mut dyn SinkTask,
    consumer: &mut Consumer,
    positions: &BTreeMap<TopicPartition, i64>,
    committed: &mut BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    let changed: BTreeMap<TopicPartition, i64> = positions
        .iter()
        .filter(|(tp, o)| committed.get(*tp) != Some(*o))
        .map(|(tp, o)| (tp.clone(), *o))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    task.flush().await?;
    match consumer.commit_sync(changed.clone()).await {
        Ok(()) => committed.extend(changed),
        Err(e) => {
            tracing::warn!(connector = %ctx.connector, task = ctx.task, error = %e, "offset commit failed; will retry")
        }
    }
    Ok(())
}

async fn convert(
    ctx: &TaskContext,
    pipeline: &Pipeline,
    record: ConsumerRecord,
) -> Result<Option<SinkRecord>> {
    let raw = RawRecord {
        topic: record.topic.to_string(),
        partition: Some(record.partition),
        offset: Some(record.offset),
        key: record.key.clone(),
        value: record.value.clone(),
        headers: record.headers.clone(),
    };
    let (key_schema, key) = match pipeline
        .converters
        .key
        .to_connect(&record.topic, record.key.as_deref())
        .await
    {
        Ok(k) => k,
        Err(e) => {
            let class = pipeline.converters.key_class.clone();
            ctx.reporter(pipeline)
                .report(Stage::KeyConverter, &class, e, &raw)
                .await?;
            return Ok(None);
        }
    };
    let (value_schema, value) = match pipeline
        .converters
        .value
        .to_connect(&record.topic, record.value.as_deref())
        .await
    {
        Ok(v) => v,
        Err(e) => {
            let class = pipeline.converters.value_class.clone();
            ctx.reporter(pipeline)
                .report(Stage::ValueConverter, &class, e, &raw)
                .await?;
            return Ok(None);
        }
    };
    let connect = ConnectRecord {
        topic: record.topic.to_string(),
        kafka_partition: Some(record.partition),
        kafka_offset: Some(record.offset),
        key_schema,
        key,
        value_schema,
        value,
        timestamp: Some(record.timestamp),
        headers: record
            .headers
            .iter()
            .map(|(key, value)| {
                let (schema, value) = pipeline.converters.header.to_connect(value.as_deref());
                Header {
                    key: key.clone(),
                    schema,
                    value,
                }
            })
            .collect(),
    };
    match pipeline.transforms.apply(connect) {
        Ok(Some(r)) => Ok(Some(SinkRecord {
            kafka_partition: record.partition,
            kafka_offset: record.offset,
            record: r,
        })),
        Ok(None) => Ok(None),
        Err(e) => {
            ctx.reporter(pipeline)
                .report(Stage::Transformation, "transforms", e, &raw)
                .await?;
            Ok(None)
        }
    }
}
