//! `TopicTable`: a topic as a DataFusion table.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Fields, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use fjord_client::{Admin, Consumer, ConsumerConfig, OffsetReset, OffsetSpec};
use fjord_schema_registry::serdes::{AvroDeserializer, RegistryClient};
use serde_json::Value as Json;

use super::bounds::ScanBounds;
use super::decode::RecordDecoder;
use super::scan::{PartitionRange, TopicScanExec};
use super::schema::{self, ValueFormat};
use crate::error::{Error, Result, to_df};

/// What every topic table of a context shares.
#[derive(Debug, Clone)]
pub struct TopicSource {
    pub bootstrap: String,
    pub registry: Option<Arc<RegistryClient>>,
    /// Values read to infer the fields of JSON values without a registered schema.
    pub sample_records: usize,
    /// Rows per record batch.
    pub batch_size: usize,
    /// Records skipped because their value did not decode (all scans of the context).
    pub skipped: Arc<AtomicU64>,
}

/// A topic as a table: the record columns and the value's fields.
#[derive(Debug)]
pub struct TopicTable {
    pub(crate) topic: String,
    pub(crate) source: TopicSource,
    pub(crate) schema: SchemaRef,
    /// The value fields as the decoder reads them (before renames).
    pub(crate) value_fields: Fields,
    pub(crate) format: ValueFormat,
    avro: Option<Arc<AvroDeserializer>>,
    pub(crate) partitions: Vec<i32>,
}

impl TopicTable {
    /// The table of `topic`, or `None` when there is no such topic.
    pub async fn discover(
        source: &TopicSource,
        admin: &Admin,
        topic: &str,
    ) -> Result<Option<Self>> {
        let partitions = match admin.partitions(topic).await {
            Ok(p) => p,
            Err(fjord_client::Error::Broker { code, .. }) if code.code() == 3 => return Ok(None),
            Err(e) => return Err(Error::kafka(format!("describing topic {topic}"))(e)),
        };
        let (value_fields, format) = match Self::registered(source, topic).await? {
            Some(found) => found,
            None => {
                let samples = sample_values(source, admin, topic, &partitions).await?;
                let fields = schema::infer_json_fields(&samples)?;
                let format = if fields.is_empty() {
                    ValueFormat::Raw
                } else {
                    ValueFormat::Json
                };
                (fields, format)
            }
        };
        let (schema, decoded) = schema::table_schema(&value_fields);
        let avro = match (format, &source.registry) {
            (ValueFormat::Avro, Some(r)) => Some(Arc::new(AvroDeserializer::new(r.clone()))),
            _ => None,
        };
        tracing::debug!(topic, %format, fields = decoded.len(), "topic table");
        Ok(Some(TopicTable {
            topic: topic.to_string(),
            source: source.clone(),
            schema,
            value_fields: decoded,
            format,
            avro,
            partitions,
        }))
    }

    /// The value fields from the latest schema registered under `{topic}-value`, if any.
    async fn registered(
        source: &TopicSource,
        topic: &str,
    ) -> Result<Option<(Fields, ValueFormat)>> {
        let Some(registry) = &source.registry else {
            return Ok(None);
        };
        let subject = format!("{topic}-value");
        let fetched = match registry.subject_version(&subject, -1).await {
            Ok(f) => f,
            // 40401 subject not found, 40402 version not found: no registered schema.
            Err(fjord_schema_registry::Error::Api(api)) if api.error_code / 100 == 404 => {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::Registry {
                    context: format!("fetching the schema of {subject}"),
                    source: e,
                });
            }
        };
        use fjord_schema_registry::schema::SchemaType;
        Ok(match fetched.schema_type {
            SchemaType::Avro => Some((
                schema::fields_from_avro(topic, &fetched.schema)?,
                ValueFormat::Avro,
            )),
            SchemaType::Json => Some((
                schema::fields_from_json_schema(topic, &fetched.schema)?,
                ValueFormat::Json,
            )),
            _ => None,
        })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How values are decoded.
    pub fn format(&self) -> ValueFormat {
        self.format
    }

    /// The decoder for a projection of this table.
    pub(crate) fn decoder(&self, projection: Option<&[usize]>) -> RecordDecoder {
        RecordDecoder::new(
            &self.schema,
            projection,
            self.value_fields.clone(),
            self.format,
            self.avro.clone(),
        )
    }

    /// The offsets to read per partition for `bounds`, and how they were found.
    pub(crate) async fn ranges(
        &self,
        bounds: &ScanBounds,
    ) -> Result<(Vec<PartitionRange>, String)> {
        let admin = Admin::connect(&self.source.bootstrap)
            .await
            .map_err(Error::kafka("connecting"))?;
        let parts: Vec<i32> = match &bounds.partitions {
            Some(p) => self
                .partitions
                .iter()
                .copied()
                .filter(|x| p.contains(x))
                .collect(),
            None => self.partitions.clone(),
        };
        if parts.is_empty() || bounds.is_empty() {
            return Ok((Vec::new(), "no partition can match".into()));
        }
        let tps: Vec<(String, i32)> = parts.iter().map(|p| (self.topic.clone(), *p)).collect();
        let list = |spec| {
            let admin = &admin;
            let tps = &tps;
            async move {
                admin
                    .list_offsets(tps, spec)
                    .await
                    .map_err(Error::kafka(format!("listing offsets of {}", self.topic)))
            }
        };
        let earliest = list(OffsetSpec::Earliest).await?;
        let latest = list(OffsetSpec::Latest).await?;
        let by_time = match bounds.min_timestamp {
            Some(ts) => Some(list(OffsetSpec::Timestamp(ts)).await?),
            None => None,
        };
        let mut notes = Vec::new();
        if let Some(ts) = bounds.min_timestamp {
            notes.push(format!("timestamp >= {ts} via ListOffsets"));
        }
        if bounds.min_offset.is_some() || bounds.max_offset.is_some() {
            notes.push(format!(
                "offset in [{}, {}]",
                bounds.min_offset.map_or("-".into(), |o| o.to_string()),
                bounds.max_offset.map_or("-".into(), |o| o.to_string())
            ));
        }
        if let Some(p) = &bounds.partitions {
            notes.push(format!("partition in {p:?}"));
        }
        let mut ranges = Vec::new();
        for tp in &tps {
            let end_log = latest.get(tp).copied().flatten().unwrap_or(0);
            let mut start = earliest.get(tp).copied().flatten().unwrap_or(0);
            let mut end = end_log;
            if let Some(by_time) = &by_time {
                // No record at or after the time: nothing to read.
                start = start.max(by_time.get(tp).copied().flatten().unwrap_or(end_log));
            }
            if let Some(lo) = bounds.min_offset {
                start = start.max(lo);
            }
            if let Some(hi) = bounds.max_offset {
                end = end.min(hi.saturating_add(1));
            }
            ranges.push(PartitionRange {
                partition: tp.1,
                start,
                end: end.max(start),
            });
        }
        Ok((ranges, notes.join(", ")))
    }
}

#[async_trait]
impl TableProvider for TopicTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if ScanBounds::usable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut bounds = ScanBounds::default();
        for f in filters {
            bounds.apply(f);
        }
        let (ranges, pushdown) = self.ranges(&bounds).await.map_err(to_df)?;
        let decoder = Arc::new(self.decoder(projection.map(|p| p.as_slice())));
        Ok(Arc::new(TopicScanExec::new(
            self.topic.clone(),
            self.source.bootstrap.clone(),
            ranges,
            decoder,
            limit,
            self.source.batch_size,
            self.source.skipped.clone(),
            pushdown,
        )))
    }
}

/// Up to `source.sample_records` values from the start of the topic's partitions, as JSON
/// (values that are not JSON are left out).
async fn sample_values(
    source: &TopicSource,
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<Json>> {
    if partitions.is_empty() || source.sample_records == 0 {
        return Ok(Vec::new());
    }
    let tps: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_string(), *p)).collect();
    let earliest = admin
        .list_offsets(&tps, OffsetSpec::Earliest)
        .await
        .map_err(Error::kafka(format!("listing offsets of {topic}")))?;
    let latest = admin
        .list_offsets(&tps, OffsetSpec::Latest)
        .await
        .map_err(Error::kafka(format!("listing offsets of {topic}")))?;
    let per_partition = (source.sample_records / tps.len()).max(1) as i64;
    // What each partition should be read up to.
    let mut want: Vec<((String, i32), i64)> = Vec::new();
    for tp in &tps {
        let start = earliest.get(tp).copied().flatten().unwrap_or(0);
        let end = latest.get(tp).copied().flatten().unwrap_or(0);
        if end > start {
            want.push((tp.clone(), end.min(start + per_partition)));
        }
    }
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let mut consumer = Consumer::new(
        ConsumerConfig::new(source.bootstrap.clone()).auto_offset_reset(OffsetReset::Earliest),
    )
    .await
    .map_err(Error::kafka(format!("sampling {topic}")))?;
    consumer
        .assign(want.iter().map(|(tp, _)| tp.clone()))
        .map_err(Error::kafka(format!("sampling {topic}")))?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let done = want
            .iter()
            .all(|(tp, end)| consumer.position(tp).unwrap_or(0) >= *end);
        if done {
            break;
        }
        let records = consumer
            .poll(Duration::from_millis(200))
            .await
            .map_err(Error::kafka(format!("sampling {topic}")))?;
        for r in records {
            let Some(limit) = want
                .iter()
                .find(|(tp, _)| tp.1 == r.partition)
                .map(|(_, e)| *e)
            else {
                continue;
            };
            if r.offset >= limit {
                continue;
            }
            if let Some(v) = r.value.as_deref() {
                let v = match v {
                    [0, _, _, _, _, rest @ ..] => rest,
                    _ => v,
                };
                if let Ok(json) = serde_json::from_slice::<Json>(v) {
                    out.push(json);
                }
            }
        }
        // Stop reading partitions that have given their share.
        let full: Vec<(String, i32)> = want
            .iter()
            .filter(|(tp, end)| consumer.position(tp).unwrap_or(0) >= *end)
            .map(|(tp, _)| tp.clone())
            .collect();
        consumer.pause(&full);
    }
    let _ = consumer.close().await;
    Ok(out)
}
