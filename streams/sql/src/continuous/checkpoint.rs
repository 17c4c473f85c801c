//! A continuous query's checkpoint: one file, `{state_dir}/{stream}/checkpoint`, replaced
//! atomically (temporary name, fsync, rename, directory fsync). It holds the query text, the
//! next offset of every source partition, the watermark and the rows of open windows (or of
//! join buffers) as Arrow IPC streams.
//!
//! Layout: `FJSQLCK1`, u32 length + JSON header, u32 section count, then per section u32 name
//! length + name + u64 length + Arrow IPC stream bytes. Integers are big-endian.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"FJSQLCK1";

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// The query the checkpoint belongs to (a different query must not resume from it).
    pub sql: String,
    /// `topic -> partition -> next offset`.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Highest event time seen (ms), `None` before the first record.
    pub watermark: Option<i64>,
    /// Window kind: the first window start not yet emitted.
    pub next_window: Option<i64>,
    pub records_in: u64,
    pub records_out: u64,
    pub late_dropped: u64,
    pub skipped: u64,
}

/// A checkpoint: header and named sets of rows.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub header: Header,
    pub sections: Vec<(String, SchemaRef, Vec<RecordBatch>)>,
}

/// Where a stream's checkpoint lives.
pub fn path(state_dir: &Path, stream: &str) -> PathBuf {
    state_dir.join(sanitize(stream)).join("checkpoint")
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Checkpoint {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        let header = serde_json::to_vec(&self.header).map_err(|e| Error::CorruptCheckpoint {
            path: String::new(),
            reason: e.to_string(),
        })?;
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.sections.len() as u32).to_be_bytes());
        for (name, schema, batches) in &self.sections {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            let mut ipc = Vec::new();
            {
                let mut w = StreamWriter::try_new(&mut ipc, schema)
                    .map_err(Error::arrow("writing a checkpoint"))?;
                for b in batches {
                    w.write(b).map_err(Error::arrow("writing a checkpoint"))?;
                }
                w.finish().map_err(Error::arrow("writing a checkpoint"))?;
            }
            out.extend_from_slice(&(ipc.len() as u64).to_be_bytes());
            out.extend_from_slice(&ipc);
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: path.display().to_string(),
            reason,
        };
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt("bad magic".into()))?;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(corrupt(format!(
                    "truncated: {n} bytes wanted, {} left",
                    rest.len()
                )));
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        let u32_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let len = u32_of(take(4)?);
        let header: Header =
            serde_json::from_slice(take(len)?).map_err(|e| corrupt(format!("header: {e}")))?;
        let count = u32_of(take(4)?);
        let mut sections = Vec::new();
        for _ in 0..count {
            let len = u32_of(take(4)?);
            let name = String::from_utf8(take(len)?.to_vec())
                .map_err(|e| corrupt(format!("section name: {e}")))?;
            let lb = take(8)?;
            let len = u64::from_be_bytes([lb[0], lb[1], lb[2], lb[3], lb[4], lb[5], lb[6], lb[7]]);
            let len = usize::try_from(len).map_err(|_| corrupt("section too large".into()))?;
            let ipc = take(len)?;
            let reader = StreamReader::try_new(ipc, None)
                .map_err(|e| corrupt(format!("section {name}: {e}")))?;
            let schema = reader.schema();
            let batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| corrupt(format!("section {name}: {e}")))?;
            sections.push((name, schema, batches));
        }
        Ok(Checkpoint { header, sections })
    }

    /// Reads the checkpoint at `path`, `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => Self::decode(&bytes, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Checkpoint {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn store(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Checkpoint {
            path: path.display().to_string(),
            source,
        };
        let bytes = self.encode()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".checkpoint.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn round_trip_and_truncation() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let mut header = Header {
            sql: "SELECT 1".into(),
            watermark: Some(7),
            ..Default::default()
        };
        header.offsets.entry("t".into()).or_default().insert(0, 42);
        let c = Checkpoint {
            header: header.clone(),
            sections: vec![("rows".into(), schema, vec![batch.clone()])],
        };
        let bytes = c.encode().unwrap();
        let back = Checkpoint::decode(&bytes, Path::new("x")).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.sections[0].2, vec![batch]);
        for cut in [0, 5, 12, bytes.len() - 1] {
            assert!(
                Checkpoint::decode(&bytes[..cut], Path::new("x")).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "my stream");
        assert!(Checkpoint::load(&p).unwrap().is_none());
        let c = Checkpoint {
            header: Header {
                sql: "q".into(),
                ..Default::default()
            },
            sections: Vec::new(),
        };
        c.store(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap().unwrap().header.sql, "q");
    }
}
