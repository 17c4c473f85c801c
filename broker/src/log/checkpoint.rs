//! Kafka's offset checkpoint file format, used for `log-start-offset-checkpoint`:
//!
//! ```text
//! 0                 <- version
//! 2                 <- entry count
//! orders 0 1200     <- topic partition offset
//! orders 1 0
//! ```
//!
//! Written to a temporary file, fsynced and renamed over the old one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::segment::write_atomically;
use crate::error::{Error, Result};

/// A checkpoint file of one offset per partition.
#[derive(Debug, Clone)]
pub(crate) struct OffsetCheckpoint {
    path: PathBuf,
}

impl OffsetCheckpoint {
    pub(crate) fn new(path: PathBuf) -> Self {
        OffsetCheckpoint { path }
    }

    /// Reads the file; a missing file is empty, a malformed one an error naming it.
    pub(crate) fn read(&self) -> Result<BTreeMap<(String, i32), i64>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        };
        parse(&text).ok_or_else(|| Error::CorruptMetadata {
            path: self.path.clone(),
            reason: "expected version 0, a count, then `topic partition offset` lines".into(),
        })
    }

    /// Replaces the file's contents.
    pub(crate) fn write(&self, entries: &BTreeMap<(String, i32), i64>) -> Result<()> {
        write_atomically(&self.path, render(entries).as_bytes())
    }
}

fn render(entries: &BTreeMap<(String, i32), i64>) -> String {
    let mut out = format!("0\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        out.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    out
}

pub(super) fn parse(text: &str) -> Option<BTreeMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let topic = parts.next()?.to_string();
        let partition = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        entries.insert((topic, partition), offset);
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn render_parse_round_trips(entries in proptest::collection::btree_map(("[a-z._-]{1,20}", 0i32..100), 0i64..i64::MAX, 0..20)) {
            prop_assert_eq!(parse(&render(&entries)), Some(entries));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = OffsetCheckpoint::new(dir.path().join("log-start-offset-checkpoint"));
        assert!(checkpoint.read().expect("missing is empty").is_empty());
        let mut entries = BTreeMap::new();
        entries.insert(("t".to_string(), 0), 42);
        checkpoint.write(&entries).expect("write");
        assert_eq!(checkpoint.read().expect("read"), entries);
    }
}
