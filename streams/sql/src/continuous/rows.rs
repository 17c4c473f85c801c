//! Helpers over record batches for the continuous operators: event times, hidden columns,
//! window columns, filtering and concatenation.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

/// Name of the hidden event-time column (ms) kept beside buffered rows.
pub(crate) const TS: &str = "__fjord_ts";
/// Name of the hidden column holding the first window start a row still counts for.
pub(crate) const OPEN: &str = "__fjord_open";

/// The event time (ms) of each row, from a timestamp or integer (ms) column.
pub(crate) fn event_times(batch: &RecordBatch, column: &str) -> Result<Vec<Option<i64>>> {
    let Some(col) = batch.column_by_name(column) else {
        return Err(Error::Statement {
            statement: "CREATE STREAM",
            reason: format!("the time column {column} is not a column of the source"),
        });
    };
    let as_ms: ArrayRef = match col.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => col.clone(),
        DataType::Timestamp(_, tz) => {
            compute::cast(col, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
                .map_err(Error::arrow("reading event times"))?
        }
        DataType::Int32 | DataType::UInt32 | DataType::UInt64 | DataType::Float64 => {
            compute::cast(col, &DataType::Int64).map_err(Error::arrow("reading event times"))?
        }
        other => {
            return Err(Error::Statement {
                statement: "CREATE STREAM",
                reason: format!(
                    "the time column {column} is {other}, not a timestamp or milliseconds"
                ),
            });
        }
    };
    let ints =
        compute::cast(&as_ms, &DataType::Int64).map_err(Error::arrow("reading event times"))?;
    let ints = ints
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::Statement {
            statement: "CREATE STREAM",
            reason: "event times are not integers".into(),
        })?;
    Ok(ints.iter().collect())
}

/// The rows `indices` of `batch`.
pub(crate) fn take(batch: &RecordBatch, indices: &[u32]) -> Result<RecordBatch> {
    let idx = UInt32Array::from(indices.to_vec());
    let columns = batch
        .columns()
        .iter()
        .map(|c| compute::take(c, &idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::arrow("selecting rows"))?;
    RecordBatch::try_new(batch.schema(), columns).map_err(Error::arrow("selecting rows"))
}

/// `batch` with extra Int64 columns.
pub(crate) fn with_columns(
    batch: &RecordBatch,
    extra: Vec<(&str, ArrayRef)>,
) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (name, array) in extra {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(Error::arrow("adding columns"))
}

/// `batch` without the columns whose names start with `__fjord_`.
pub(crate) fn without_hidden(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let keep: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.name().starts_with("__fjord_"))
        .map(|(i, _)| i)
        .collect();
    batch
        .project(&keep)
        .map_err(Error::arrow("dropping hidden columns"))
}

/// The schema without hidden columns.
pub(crate) fn visible_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with("__fjord_"))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ))
}

/// A timestamp (ms, UTC) column.
pub(crate) fn timestamps(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// The Int64 column `name` of `batch`.
pub(crate) fn int64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| Error::Statement {
            statement: "CREATE STREAM",
            reason: format!("internal column {name} is missing"),
        })
}

/// Rows of `batch` where `keep` holds.
pub(crate) fn filter(batch: &RecordBatch, keep: Vec<bool>) -> Result<RecordBatch> {
    compute::filter_record_batch(batch, &BooleanArray::from(keep))
        .map_err(Error::arrow("filtering rows"))
}

/// All rows of `batches` in one batch of `schema`.
pub(crate) fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    compute::concat_batches(schema, batches).map_err(Error::arrow("joining batches"))
}
