//! Records to Arrow: the record columns are built directly; value fields go through Arrow's
//! JSON decoder (Avro values are first read through the registry into JSON). A value that does
//! not decode drops its record from the batch and is counted.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    RecordBatchOptions, StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{Fields, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use fjord_client::ConsumerRecord;
use fjord_schema_registry::serdes::AvroDeserializer;

use super::schema::{ValueFormat, header_fields};
use crate::error::{Error, Result};

/// Turns polled records into batches of a (projected) table schema.
#[derive(Debug)]
pub struct RecordDecoder {
    /// The output schema (the projection of the table schema).
    pub schema: SchemaRef,
    /// For each output column: a record column (0..6) or a value field (6 + i).
    columns: Vec<usize>,
    /// The value fields as the decoder reads them (all of them: the decoder needs no subset).
    value_fields: Fields,
    format: ValueFormat,
    avro: Option<Arc<AvroDeserializer>>,
}

/// What [`RecordDecoder::decode`] made of a chunk of records.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    /// Records dropped because their value did not decode.
    pub skipped: usize,
    /// The first decoding error, if any, for the log or a dead-letter topic.
    pub failures: Vec<(usize, String)>,
}

impl RecordDecoder {
    pub fn new(
        table: &SchemaRef,
        projection: Option<&[usize]>,
        value_fields: Fields,
        format: ValueFormat,
        avro: Option<Arc<AvroDeserializer>>,
    ) -> Self {
        let columns: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..table.fields().len()).collect(),
        };
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|i| table.field(*i).clone())
                .collect::<Vec<_>>(),
        ));
        RecordDecoder {
            schema,
            columns,
            value_fields,
            format,
            avro,
        }
    }

    fn needs_values(&self) -> bool {
        self.columns.iter().any(|c| *c >= 6)
    }

    /// Decodes `records` into one batch.
    pub async fn decode(&self, records: &[ConsumerRecord]) -> Result<Decoded> {
        let (values, keep, failures) = if self.needs_values() && !self.value_fields.is_empty() {
            self.decode_values(records).await?
        } else {
            (None, vec![true; records.len()], Vec::new())
        };
        let kept = keep.iter().filter(|k| **k).count();
        let rows = || {
            records
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(r, _)| r)
        };
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let array: ArrayRef = match c {
                0 => {
                    let mut b = BinaryBuilder::with_capacity(kept, kept * 16);
                    rows().for_each(|r| b.append_option(r.key.as_deref()));
                    Arc::new(b.finish())
                }
                1 => {
                    let mut b = BinaryBuilder::with_capacity(kept, kept * 64);
                    rows().for_each(|r| b.append_option(r.value.as_deref()));
                    Arc::new(b.finish())
                }
                2 => {
                    let mut b = Int32Builder::with_capacity(kept);
                    rows().for_each(|r| b.append_value(r.partition));
                    Arc::new(b.finish())
                }
                3 => {
                    let mut b = Int64Builder::with_capacity(kept);
                    rows().for_each(|r| b.append_value(r.offset));
                    Arc::new(b.finish())
                }
                4 => {
                    let mut b =
                        TimestampMillisecondBuilder::with_capacity(kept).with_timezone("UTC");
                    rows().for_each(|r| b.append_value(r.timestamp));
                    Arc::new(b.finish())
                }
                5 => {
                    let mut b = ListBuilder::new(StructBuilder::from_fields(header_fields(), 0));
                    for r in rows() {
                        let s = b.values();
                        for (k, v) in &r.headers {
                            if let Some(kb) = s.field_builder::<StringBuilder>(0) {
                                kb.append_value(k);
                            }
                            if let Some(vb) = s.field_builder::<BinaryBuilder>(1) {
                                vb.append_option(v.as_deref());
                            }
                            s.append(true);
                        }
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
                field => match &values {
                    Some(v) => v.column(field - 6).clone(),
                    None => datafusion::arrow::array::new_null_array(
                        self.schema.field(out.len()).data_type(),
                        kept,
                    ),
                },
            };
            out.push(array);
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            out,
            &RecordBatchOptions::new().with_row_count(Some(kept)),
        )
        .map_err(Error::arrow("assembling a batch"))?;
        Ok(Decoded {
            batch,
            skipped: records.len() - kept,
            failures,
        })
    }

    /// The value fields of every record that decodes, and which records did.
    async fn decode_values(
        &self,
        records: &[ConsumerRecord],
    ) -> Result<(Option<RecordBatch>, Vec<bool>, Vec<(usize, String)>)> {
        let mut texts: Vec<Option<Vec<u8>>> = Vec::new();
        let mut failures = Vec::new();
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.value.as_ref().map_or(3, |v| v.len() + 1))
                .sum(),
        );
        let mut keep = vec![true; records.len()];
        match self.format {
            ValueFormat::Avro => {
                let Some(avro) = &self.avro else {
                    return Ok((None, keep, failures));
                };
                for (i, r) in records.iter().enumerate() {
                    let text = match r.value.as_deref() {
                        None => Some(b"{}".to_vec()),
                        Some(v) => match avro.deserialize_json(v).await {
                            Ok(json) if json.is_object() => serde_json::to_vec(&json).ok(),
                            Ok(_) => {
                                failures.push((i, "the Avro value is not a record".to_string()));
                                None
                            }
                            Err(e) => {
                                failures.push((i, e.to_string()));
                                None
                            }
                        },
                    };
                    keep[i] = text.is_some();
                    texts.push(text);
                }
                for t in texts.iter().flatten() {
                    buf.extend_from_slice(t);
                    buf.push(b'\n');
                }
            }
            _ => {
                for r in records {
                    match r.value.as_deref().map(strip_wire_header) {
                        None | Some([]) => buf.extend_from_slice(b"{}"),
                        Some(v) => buf.extend_from_slice(v),
                    }
                    buf.push(b'\n');
                }
            }
        }
        let rows = keep.iter().filter(|k| **k).count();
        if let Ok(batch) = self.json_batch(&buf, rows) {
            return Ok((Some(batch), keep, failures));
        }
        // Something did not decode: find which records, one at a time.
        let mut parts = Vec::new();
        let mut row = 0;
        for (i, r) in records.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let one: &[u8] = match self.format {
                ValueFormat::Avro => texts[row].as_deref().unwrap_or(b"{}"),
                _ => match r.value.as_deref().map(strip_wire_header) {
                    None | Some([]) => b"{}",
                    Some(v) => v,
                },
            };
            row += 1;
            let checked = if one.first() == Some(&b'{') {
                self.json_batch(one, 1)
            } else {
                Err("the value is not a JSON object".to_string())
            };
            match checked {
                Ok(b) => parts.push(b),
                Err(e) => {
                    keep[i] = false;
                    failures.push((i, e));
                }
            }
        }
        let schema = Arc::new(Schema::new(self.value_fields.clone()));
        let batch = datafusion::arrow::compute::concat_batches(&schema, &parts)
            .map_err(Error::arrow("joining decoded values"))?;
        Ok((Some(batch), keep, failures))
    }

    fn json_batch(&self, buf: &[u8], rows: usize) -> std::result::Result<RecordBatch, String> {
        let schema = Arc::new(Schema::new(self.value_fields.clone()));
        let mut decoder = ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let used = decoder.decode(buf).map_err(|e| e.to_string())?;
        if used != buf.len() {
            return Err("trailing bytes after the JSON value".to_string());
        }
        let batch = decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| RecordBatch::new_empty(schema));
        if batch.num_rows() != rows {
            return Err(format!(
                "{} JSON values for {rows} records",
                batch.num_rows()
            ));
        }
        Ok(batch)
    }
}

/// A JSON value in Confluent's wire format (magic byte 0, 4-byte schema id) without its header.
fn strip_wire_header(v: &[u8]) -> &[u8] {
    match v {
        [0, _, _, _, _, rest @ ..] => rest,
        _ => v,
    }
}
