//! The metadata quorum's Raft plumbing for openraft 0.9: the type config, a durable log store,
//! the state machine (the metadata image) and the network (tonic gRPC, see `rpc.rs`).
//!
//! Files in `<log dir>/__cluster_metadata-0/`:
//! - `raft-log`: newline-delimited JSON operations (`append`, `truncate`, `purge`), fsynced
//!   before openraft is told an append is durable; replayed at start. A torn last line (a crash
//!   mid-write) is dropped: it was never acknowledged.
//! - `raft-vote`, `raft-committed`: the vote and the committed log id, written atomically.
//! - `raft-snapshot`: the latest snapshot (the image as of a log id), written atomically; the
//!   log before it is purged.

// openraft's trait signatures fix the error type (`StorageError`, over 200 bytes); the helpers
// return it too rather than boxing and converting at every call.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metadata::image::{MetadataImage, MetadataRecord};

openraft::declare_raft_types!(
    /// Fjord's metadata quorum: entries carry batches of metadata records, applied atomically.
    pub(crate) TypeConfig:
        D = RecordBatch,
        R = (),
        NodeId = u64,
        Node = BasicNode,
);

pub(crate) type NodeId = u64;
pub(crate) type Raft = openraft::Raft<TypeConfig>;
type SError = StorageError<NodeId>;

/// One Raft entry's payload: records the controller decided together (a topic with its
/// partitions, a fencing with its leader changes), so the image never sees half of a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordBatch(pub(crate) Vec<MetadataRecord>);

fn io_error(e: impl std::fmt::Display) -> SError {
    StorageError::IO {
        source: StorageIOError::write(AnyError::error(e.to_string())),
    }
}

fn read_error(e: impl std::fmt::Display) -> SError {
    StorageError::IO {
        source: StorageIOError::read(AnyError::error(e.to_string())),
    }
}

/// One line of `raft-log`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LogOp {
    Append {
        entry: Entry<TypeConfig>,
    },
    /// Entries from `index` on are removed (a conflicting tail).
    Truncate {
        index: u64,
    },
    /// Entries up to and including `log_id` are removed (they are in a snapshot).
    Purge {
        log_id: LogId<NodeId>,
    },
}

/// Operations written since the log file was last rewritten; past this, a purge rewrites it.
const REWRITE_AFTER_OPS: usize = 10_000;

#[derive(Debug)]
struct LogInner {
    path: PathBuf,
    file: File,
    ops_in_file: usize,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    dir: PathBuf,
}

/// The durable Raft log (and vote). Cheap to clone: clones share the log.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, SError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| read_error(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(format!("{}: {e}", path.display()))),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SError> {
    let bytes = serde_json::to_vec(value).map_err(io_error)?;
    crate::log::write_atomically(path, &bytes).map_err(io_error)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying it.
    pub(crate) fn open(dir: &Path) -> Result<Self, SError> {
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let path = dir.join("raft-log");
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut ops = 0;
        let mut good_len = 0u64;
        if let Ok(file) = File::open(&path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(read_error)?;
                if n == 0 {
                    break;
                }
                if !line.ends_with('\n') {
                    tracing::warn!(path = %path.display(), "dropping a torn last line of the metadata log");
                    break;
                }
                let op: LogOp = match serde_json::from_str(&line) {
                    Ok(op) => op,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable tail of the metadata log");
                        break;
                    }
                };
                good_len += n as u64;
                ops += 1;
                match op {
                    LogOp::Append { entry } => {
                        entries.insert(entry.log_id.index, entry);
                    }
                    LogOp::Truncate { index } => {
                        entries.split_off(&index);
                    }
                    LogOp::Purge { log_id } => {
                        entries = entries.split_off(&(log_id.index + 1));
                        last_purged = Some(log_id);
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error)?;
        // Cut a torn tail so new appends start on a line boundary.
        if file.metadata().map_err(io_error)?.len() != good_len {
            file.set_len(good_len).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        let vote = read_json(&dir.join("raft-vote"))?;
        let committed = read_json(&dir.join("raft-committed"))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                path,
                file,
                ops_in_file: ops,
                entries,
                last_purged,
                vote,
                committed,
                dir: dir.to_path_buf(),
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogInner {
    fn write_ops(&mut self, ops: &[LogOp]) -> Result<(), SError> {
        let mut buf = Vec::new();
        for op in ops {
            serde_json::to_writer(&mut buf, op).map_err(io_error)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(io_error)?;
        self.file.sync_data().map_err(io_error)?;
        self.ops_in_file += ops.len();
        Ok(())
    }

    /// Rewrites the file with only the live entries (after purges made most of it dead).
    fn rewrite(&mut self) -> Result<(), SError> {
        let mut buf = Vec::new();
        let mut ops = 0;
        if let Some(log_id) = self.last_purged {
            serde_json::to_writer(&mut buf, &LogOp::Purge { log_id }).map_err(io_error)?;
            buf.push(b'\n');
            ops += 1;
        }
        for entry in self.entries.values() {
            serde_json::to_writer(
                &mut buf,
                &LogOp::Append {
                    entry: entry.clone(),
                },
            )
            .map_err(io_error)?;
            buf.push(b'\n');
            ops += 1;
        }
        crate::log::write_atomically(&self.path, &buf).map_err(io_error)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_error)?;
        self.ops_in_file = ops;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SError> {
        let mut inner = self.lock();
        write_json(&inner.dir.join("raft-vote"), vote)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SError> {
        let mut inner = self.lock();
        write_json(&inner.dir.join("raft-committed"), &committed)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let result = {
            let mut inner = self.lock();
            let ops: Vec<_> = entries
                .iter()
                .map(|e| LogOp::Append { entry: e.clone() })
                .collect();
            let written = inner.write_ops(&ops);
            if written.is_ok() {
                for entry in entries {
                    inner.entries.insert(entry.log_id.index, entry);
                }
            }
            written
        };
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SError> {
        let mut inner = self.lock();
        inner.write_ops(&[LogOp::Truncate {
            index: log_id.index,
        }])?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SError> {
        let mut inner = self.lock();
        inner.write_ops(&[LogOp::Purge { log_id }])?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        if inner.ops_in_file > REWRITE_AFTER_OPS {
            inner.rewrite()?;
        }
        Ok(())
    }
}

/// What the quorum has applied: the image and the log index it reflects (the version brokers
/// compare to know whether they are behind).
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub(crate) version: u64,
    pub(crate) image: MetadataImage,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The JSON-encoded image.
    data: Vec<u8>,
}

#[derive(Debug)]
struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    image: MetadataImage,
    snapshot: Option<StoredSnapshot>,
    snapshot_idx: u64,
}

/// The state machine: the metadata image, published on a watch channel after every apply.
#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    path: PathBuf,
    published: watch::Sender<Arc<Applied>>,
}

impl StateMachine {
    /// Opens the state machine from the stored snapshot, if any.
    pub(crate) fn open(dir: &Path) -> Result<Self, SError> {
        let path = dir.join("raft-snapshot");
        let snapshot: Option<StoredSnapshot> = read_json(&path)?;
        let (image, last_applied, membership) = match &snapshot {
            Some(s) => (
                serde_json::from_slice(&s.data).map_err(read_error)?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        let version = last_applied.map_or(0, |l| l.index);
        let published = watch::channel(Arc::new(Applied {
            version,
            image: image.clone(),
        }))
        .0;
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(SmInner {
                last_applied,
                membership,
                image,
                snapshot,
                snapshot_idx: 0,
            })),
            path,
            published,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The applied image, updated after every apply.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Applied>> {
        self.published.subscribe()
    }

    /// The current applied image.
    pub(crate) fn current(&self) -> Arc<Applied> {
        Arc::clone(&self.published.borrow())
    }

    fn publish(&self, inner: &SmInner) {
        let applied = Arc::new(Applied {
            version: inner.last_applied.map_or(0, |l| l.index),
            image: inner.image.clone(),
        });
        self.published.send_replace(applied);
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let (meta, data) = {
            let mut inner = self.lock();
            let data = serde_json::to_vec(&inner.image).map_err(io_error)?;
            inner.snapshot_idx += 1;
            let snapshot_id = match inner.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.snapshot_idx),
                None => format!("--{}", inner.snapshot_idx),
            };
            let meta = SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        write_json(&self.path, &stored)?;
        self.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut inner = self.lock();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(RecordBatch(records)) => {
                    // The controller decided these against the same image, so they apply; a
                    // record that does not is logged and skipped, never a crash.
                    for record in &records {
                        if let Err(e) = inner.image.apply(record) {
                            tracing::warn!(index = entry.log_id.index, error = %e, ?record, "metadata record not applied");
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            responses.push(());
        }
        self.publish(&inner);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data).map_err(read_error)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        write_json(&self.path, &stored)?;
        let mut inner = self.lock();
        inner.image = image;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let inner = self.lock();
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(RecordBatch(vec![MetadataRecord::ProducerIds {
                broker: 1,
                next: index as i64 * 1000,
            }])),
        }
    }

    fn append(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        let mut inner = store.lock();
        let ops: Vec<_> = entries
            .iter()
            .map(|e| LogOp::Append { entry: e.clone() })
            .collect();
        inner.write_ops(&ops).unwrap();
        for e in entries {
            inner.entries.insert(e.log_id.index, e);
        }
    }

    #[tokio::test]
    async fn log_survives_reopen_with_truncate_purge_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&store, (1..=10).map(|i| entry(1, i)).collect());
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 8))
            .await
            .unwrap();
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .unwrap();
        let vote = Vote::new(3, 2);
        store.save_vote(&vote).await.unwrap();
        drop(store);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("raft-log"))
            .unwrap();
        f.write_all(b"{\"append\":{\"entr").unwrap();
        drop(f);

        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        let entries = store.try_get_log_entries(0..100).await.unwrap();
        let indexes: Vec<_> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![4, 5, 6, 7]);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        // Appends after the torn tail are readable on the next open.
        append(&store, vec![entry(2, 8)]);
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(8));
    }

    #[tokio::test]
    async fn membership_entries_survive_reopen() {
        // Regression: node ids are map keys in a membership; they must round-trip through the
        // log file's JSON.
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let nodes = BTreeMap::from([
            (
                1u64,
                BasicNode {
                    addr: "127.0.0.1:1".into(),
                },
            ),
            (
                2u64,
                BasicNode {
                    addr: "127.0.0.1:2".into(),
                },
            ),
        ]);
        let membership =
            openraft::Membership::new(vec![std::collections::BTreeSet::from([1u64, 2])], nodes);
        append(
            &store,
            vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(0, 0), 0),
                payload: EntryPayload::Membership(membership),
            }],
        );
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        let entries = store.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert!(matches!(entries[0].payload, EntryPayload::Membership(_)));
    }

    #[tokio::test]
    async fn state_machine_applies_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply(vec![entry(1, 1), entry(1, 2)]).await.unwrap();
        assert_eq!(sm.current().version, 2);
        assert_eq!(sm.current().image.next_producer_id, 2000);
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap();
        let reopened = StateMachine::open(dir.path()).unwrap();
        assert_eq!(reopened.current().version, 2);
        assert_eq!(reopened.current().image.next_producer_id, 2000);
    }
}
