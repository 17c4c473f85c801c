//! Result batches as text: an aligned table, JSON lines or CSV. Binary columns (`key`,
//! `value`) are shown as text when they are UTF-8 and as `0x…` hex otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::{Error, Result};

/// An output format of `fjord sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Csv,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "csv" => Ok(OutputFormat::Csv),
            other => Err(format!("unknown format {other:?} (table, json or csv)")),
        }
    }
}

/// Binary columns turned to text for display.
pub fn displayable(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match c.as_any().downcast_ref::<BinaryArray>() {
            Some(bin) => {
                let mut b = StringBuilder::with_capacity(bin.len(), bin.value_data().len());
                for i in 0..bin.len() {
                    if bin.is_null(i) {
                        b.append_null();
                    } else {
                        let v = bin.value(i);
                        match std::str::from_utf8(v) {
                            Ok(s) => b.append_value(s),
                            Err(_) => b.append_value(hex(v)),
                        }
                    }
                }
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                columns.push(Arc::new(b.finish()));
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::arrow("formatting"))
}

fn hex(v: &[u8]) -> String {
    let mut s = String::with_capacity(2 + v.len() * 2);
    s.push_str("0x");
    for b in v {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes `batches` in `format` to `out`. `header` says whether CSV gets its header line (only
/// the first chunk of a streamed result should).
pub fn write_batches(
    out: &mut dyn std::io::Write,
    batches: &[RecordBatch],
    format: OutputFormat,
    header: bool,
) -> Result<()> {
    let shown: Vec<RecordBatch> = batches.iter().map(displayable).collect::<Result<_>>()?;
    match format {
        OutputFormat::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&shown)
                .map_err(Error::arrow("formatting"))?;
            writeln!(out, "{table}").map_err(io)?;
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in &shown {
                w.write(b).map_err(Error::arrow("writing JSON"))?;
            }
            w.finish().map_err(Error::arrow("writing JSON"))?;
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(header)
                .build(&mut *out);
            for b in &shown {
                w.write(b).map_err(Error::arrow("writing CSV"))?;
            }
        }
    }
    Ok(())
}

fn io(e: std::io::Error) -> Error {
    Error::Arrow {
        context: "writing output",
        source: datafusion::arrow::error::ArrowError::IoError(e.to_string(), e),
    }
}
