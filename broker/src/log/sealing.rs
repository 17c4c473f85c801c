//! Sealing rolled segments in the background.
//!
//! A roll must not make appends wait for the old segment's fsync (up to `segment.bytes`, 1 GiB
//! by default: ~0.5 s here). [`Sealer`] is that work detached from the segment: fsync the log,
//! then write the index files (index files on disk mean the log they index is on disk, which
//! recovery relies on), then any files that belong after it (the producer snapshot).
//! [`Sealing`] runs each on its own thread and keeps the handles until they are joined.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::segment::write_atomically;
use crate::error::{Error, Result};

/// The work of sealing one rolled segment.
#[derive(Debug)]
pub(crate) struct Sealer {
    file: Arc<File>,
    log_path: PathBuf,
    /// Written atomically, in order, after the fsync: the indexes, then anything added with
    /// [`Sealer::then_write`].
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Sealer {
    pub(crate) fn new(
        file: Arc<File>,
        log_path: PathBuf,
        indexes: [(PathBuf, Vec<u8>); 2],
    ) -> Self {
        Sealer {
            file,
            log_path,
            files: indexes.into(),
        }
    }

    /// Also writes `bytes` to `path` after the seal.
    pub(crate) fn then_write(mut self, path: PathBuf, bytes: Vec<u8>) -> Self {
        self.files.push((path, bytes));
        self
    }

    pub(crate) fn run(self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.log_path, e))?;
        for (path, bytes) in &self.files {
            write_atomically(path, bytes)?;
        }
        Ok(())
    }
}

/// Seals in progress, by segment base offset.
#[derive(Debug, Default)]
pub(crate) struct Sealing {
    running: Vec<(i64, JoinHandle<Result<()>>)>,
}

impl Sealing {
    /// Starts sealing the segment at `base` on its own thread.
    pub(crate) fn start(&mut self, base: i64, sealer: Sealer, dir: &Path) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name("fjord-seal".into())
            .spawn(move || sealer.run())
            .map_err(|e| Error::io("start a thread to seal", dir, e))?;
        self.running.push((base, handle));
        Ok(())
    }

    /// Whether the segment at `base` is still being sealed (or not yet joined).
    pub(crate) fn contains(&self, base: i64) -> bool {
        self.running.iter().any(|(b, _)| *b == base)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Joins the seals that have finished; returns the first failure.
    pub(crate) fn reap(&mut self) -> Result<()> {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|(_, handle)| handle.is_finished());
        self.running = running;
        join_all(done)
    }

    /// Waits for every seal; returns the first failure.
    pub(crate) fn wait(&mut self) -> Result<()> {
        join_all(std::mem::take(&mut self.running))
    }
}

/// Joins seals; a panic in one is an error like a failed fsync. All are joined either way.
fn join_all(seals: Vec<(i64, JoinHandle<Result<()>>)>) -> Result<()> {
    let mut result = Ok(());
    for (base, handle) in seals {
        let joined = handle.join().unwrap_or_else(|_| {
            Err(Error::io(
                "seal",
                Path::new(&format!("segment {base}")),
                std::io::Error::other("the sealing thread panicked"),
            ))
        });
        if let Err(e) = joined
            && result.is_ok()
        {
            result = Err(e);
        }
    }
    result
}
