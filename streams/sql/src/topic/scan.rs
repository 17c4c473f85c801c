//! `TopicScanExec`: one output partition per Kafka partition, each read by its own consumer on
//! its own task into a bounded channel of record batches.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use fjord_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use tokio::sync::mpsc;

use super::decode::RecordDecoder;
use crate::error::{Error, to_df};

/// Batches a partition reader may have ready before the query takes them (the bound of its
/// queue).
const QUEUE_BATCHES: usize = 4;
/// How long a reader waits without progress before it gives up on a partition.
const STALL: Duration = Duration::from_secs(30);

/// One partition's offsets to read: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// Reads `[start, end)` of a topic's partitions (the end is the high watermark when the query
/// started, so an ad-hoc query sees a snapshot).
#[derive(Debug)]
pub struct TopicScanExec {
    pub(crate) topic: String,
    pub(crate) bootstrap: String,
    pub(crate) ranges: Vec<PartitionRange>,
    pub(crate) decoder: Arc<RecordDecoder>,
    pub(crate) limit: Option<usize>,
    pub(crate) batch_size: usize,
    pub(crate) skipped: Arc<AtomicU64>,
    /// How the start offsets were found (for EXPLAIN).
    pub(crate) pushdown: String,
    properties: Arc<PlanProperties>,
}

impl TopicScanExec {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        topic: String,
        bootstrap: String,
        ranges: Vec<PartitionRange>,
        decoder: Arc<RecordDecoder>,
        limit: Option<usize>,
        batch_size: usize,
        skipped: Arc<AtomicU64>,
        pushdown: String,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(decoder.schema.clone()),
            Partitioning::UnknownPartitioning(ranges.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        TopicScanExec {
            topic,
            bootstrap,
            ranges,
            decoder,
            limit,
            batch_size,
            skipped,
            pushdown,
            properties,
        }
    }
}

impl DisplayAs for TopicScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|r| format!("{}:[{},{})", r.partition, r.start, r.end))
            .collect();
        let columns: Vec<&str> = self
            .decoder
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "TopicScanExec: topic={}, partitions={}, offsets=[{}], projection=[{}]",
            self.topic,
            self.ranges.len(),
            ranges.join(", "),
            columns.join(", ")
        )?;
        if !self.pushdown.is_empty() {
            write!(f, ", pushdown=[{}]", self.pushdown)?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for TopicScanExec {
    fn name(&self) -> &str {
        "TopicScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema: SchemaRef = self.decoder.schema.clone();
        let Some(range) = self.ranges.get(partition).copied() else {
            // No partition to read (every one was pruned): one empty output partition.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let reader = PartitionReader {
            topic: self.topic.clone(),
            bootstrap: self.bootstrap.clone(),
            range,
            decoder: self.decoder.clone(),
            limit: self.limit,
            batch_size: self.batch_size,
            skipped: self.skipped.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = reader.run(&tx).await {
                // The receiver may be gone (the query ended early): nothing to tell then.
                let _ = tx.send(Err(to_df(e))).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

struct PartitionReader {
    topic: String,
    bootstrap: String,
    range: PartitionRange,
    decoder: Arc<RecordDecoder>,
    limit: Option<usize>,
    batch_size: usize,
    skipped: Arc<AtomicU64>,
}

impl PartitionReader {
    async fn run(
        self,
        tx: &mpsc::Sender<DfResult<datafusion::arrow::array::RecordBatch>>,
    ) -> Result<(), Error> {
        let PartitionRange {
            partition,
            start,
            end,
        } = self.range;
        if start >= end || self.limit == Some(0) {
            return Ok(());
        }
        let tp = (self.topic.clone(), partition);
        let mut consumer = Consumer::new(
            ConsumerConfig::new(self.bootstrap.clone())
                .auto_offset_reset(OffsetReset::Earliest)
                .max_partition_fetch_bytes(8 << 20),
        )
        .await
        .map_err(Error::kafka(format!("reading {}-{partition}", self.topic)))?;
        consumer.assign([tp.clone()]).map_err(Error::kafka(format!(
            "assigning {}-{partition}",
            self.topic
        )))?;
        consumer.seek(tp.clone(), start);
        let mut pending: Vec<ConsumerRecord> = Vec::with_capacity(self.batch_size);
        let mut sent = 0usize;
        let limit = self.limit.unwrap_or(usize::MAX);
        let mut last_progress = tokio::time::Instant::now();
        'read: loop {
            if consumer.position(&tp).unwrap_or(start) >= end {
                break;
            }
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(Error::kafka(format!("fetching {}-{partition}", self.topic)))?;
            if records.is_empty() {
                if last_progress.elapsed() > STALL {
                    return Err(Error::Stalled {
                        topic: self.topic.clone(),
                        partition,
                        offset: consumer.position(&tp).unwrap_or(start),
                        end,
                        waited: STALL,
                    });
                }
                continue;
            }
            last_progress = tokio::time::Instant::now();
            for r in records {
                if r.offset < start {
                    continue;
                }
                if r.offset >= end || sent + pending.len() >= limit {
                    break 'read;
                }
                pending.push(r);
                if pending.len() >= self.batch_size {
                    sent += pending.len();
                    if !self.flush(&mut pending, tx).await? {
                        return Ok(());
                    }
                }
            }
        }
        self.flush(&mut pending, tx).await?;
        let _ = consumer.close().await;
        Ok(())
    }

    /// Decodes and sends `pending`; false when the query no longer listens.
    async fn flush(
        &self,
        pending: &mut Vec<ConsumerRecord>,
        tx: &mpsc::Sender<DfResult<datafusion::arrow::array::RecordBatch>>,
    ) -> Result<bool, Error> {
        if pending.is_empty() {
            return Ok(true);
        }
        let decoded = self.decoder.decode(pending).await?;
        if decoded.skipped > 0 {
            self.skipped
                .fetch_add(decoded.skipped as u64, Ordering::Relaxed);
            if let Some((i, reason)) = decoded.failures.first() {
                tracing::warn!(
                    topic = %self.topic,
                    partition = self.range.partition,
                    offset = pending.get(*i).map_or(-1, |r| r.offset),
                    skipped = decoded.skipped,
                    %reason,
                    "records whose value does not decode were skipped"
                );
            }
        }
        pending.clear();
        Ok(tx.send(Ok(decoded.batch)).await.is_ok())
    }
}
