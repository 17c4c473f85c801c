//! Producer id allocation for idempotent producers (InitProducerId). Ids are reserved in
//! blocks: the end of the current block is persisted (`meta/producer-id-block`, written
//! atomically) before any id of it is handed out, so a restart never reuses an id.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;

/// Hands out unique producer ids.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// `(next id, end of the reserved block)`.
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Opens the allocator; the next id is the end of the last reserved block.
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((next, next)),
        })
    }

    /// A fresh producer id.
    pub(crate) fn next(&self) -> Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == state.1 {
            let end = state.1 + BLOCK_SIZE;
            crate::log::write_atomically(&self.path, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("producer-id-block");
        let first = ProducerIds::open(path.clone()).expect("open");
        let a = first.next().expect("id");
        let b = first.next().expect("id");
        assert_ne!(a, b);
        drop(first);
        let second = ProducerIds::open(path).expect("reopen");
        let c = second.next().expect("id");
        assert!(
            c > b,
            "{c} must not reuse an id handed out before the restart"
        );
    }
}
