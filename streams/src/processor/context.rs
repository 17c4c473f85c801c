//! What a processor sees of its task.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::store::{KvBackend, StateStore, StoreKind};

/// When a punctuation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// On stream time (the highest record timestamp the task has seen): fires when records
    /// move stream time past the next multiple of the interval.
    StreamTime,
    /// On wall-clock time.
    WallClockTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) node: usize,
    pub(crate) interval: i64,
    pub(crate) kind: PunctuationType,
    /// The next time it fires.
    pub(crate) next: Option<i64>,
}

/// A record for a sink, repartition or changelog topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition (`None`: the producer's partitioner picks by key).
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Bytes>,
    /// Value bytes.
    pub value: Option<Bytes>,
    /// Timestamp.
    pub timestamp: i64,
}

/// Counters of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from source topics.
    pub records_processed: u64,
    /// Records dropped because their window had closed (past grace).
    pub late_records_dropped: u64,
    /// Records skipped by the deserialization exception handler.
    pub records_skipped: u64,
}

type Opener = Box<dyn FnMut(&str, StoreKind) -> Result<Box<dyn KvBackend>>>;

/// The task-wide state a processor works with.
pub struct ProcessorContext {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock: i64,
    pub(crate) current_node: usize,
    pub(crate) schedules: Vec<Schedule>,
    pub(crate) outbox: Vec<OutputRecord>,
    pub(crate) stores: BTreeMap<String, Rc<RefCell<StateStore>>>,
    opener: Opener,
    pub(crate) metrics: TaskMetrics,
    pub(crate) task_partition: i32,
    pub(crate) logging: bool,
    pub(crate) app_id: Arc<str>,
    pub(crate) globals: BTreeMap<String, Rc<RefCell<StateStore>>>,
    pub(crate) partition_counts: Arc<BTreeMap<String, i32>>,
    pub(crate) handler: crate::task::DeserializationHandler,
}

impl std::fmt::Debug for ProcessorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("stream_time", &self.stream_time)
            .finish_non_exhaustive()
    }
}

impl ProcessorContext {
    pub(crate) fn new(task_partition: i32, logging: bool, opener: Opener) -> Self {
        ProcessorContext {
            topic: Arc::from(""),
            partition: task_partition,
            offset: -1,
            timestamp: i64::MIN,
            stream_time: i64::MIN,
            wall_clock: 0,
            current_node: 0,
            schedules: Vec::new(),
            outbox: Vec::new(),
            stores: BTreeMap::new(),
            opener,
            metrics: TaskMetrics::default(),
            task_partition,
            logging,
            app_id: Arc::from(""),
            globals: BTreeMap::new(),
            partition_counts: Arc::new(BTreeMap::new()),
            handler: crate::task::DeserializationHandler::default(),
        }
    }

    /// The topic of the record being processed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Its offset (-1 during punctuation).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Its timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The highest record timestamp this task has seen (`i64::MIN` before the first).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Wall-clock time in ms, as of the last poll (injected by the test driver).
    pub fn wall_clock(&self) -> i64 {
        self.wall_clock
    }

    /// The partition this task works on.
    pub fn task_partition(&self) -> i32 {
        self.task_partition
    }

    /// The application id (internal topics are prefixed with it).
    pub fn application_id(&self) -> &str {
        &self.app_id
    }

    /// Moves stream time to `timestamp` if it is later, and makes it the record's time.
    pub fn observe(&mut self, timestamp: i64) {
        self.timestamp = timestamp;
        if timestamp > self.stream_time {
            self.stream_time = timestamp;
        }
    }

    /// The partition count of a sink topic (known for topics the topology writes).
    pub fn partition_count(&self, topic: &str) -> Result<i32> {
        self.partition_counts
            .get(topic)
            .copied()
            .ok_or_else(|| Error::Topology {
                reason: format!("partition count of {topic} is unknown"),
            })
    }

    /// Counters of this task.
    pub fn metrics(&self) -> &TaskMetrics {
        &self.metrics
    }

    /// Counts a record dropped as late.
    pub fn record_late_drop(&mut self) {
        self.metrics.late_records_dropped += 1;
    }

    /// The task's store `name`, created (empty, or restored by the runtime) on first use.
    pub fn store(&mut self, name: &str, kind: StoreKind) -> Result<Rc<RefCell<StateStore>>> {
        if let Some(store) = self.stores.get(name) {
            if store.borrow().kind() != kind {
                return Err(Error::Topology {
                    reason: format!("store {name} is used as two kinds of store"),
                });
            }
            return Ok(store.clone());
        }
        let backend = (self.opener)(name, kind)?;
        let store = Rc::new(RefCell::new(StateStore::new(
            name,
            kind,
            backend,
            self.logging,
        )));
        self.stores.insert(name.to_string(), store.clone());
        Ok(store)
    }

    /// A global table's store (read-only: the global stream thread writes it).
    pub fn global_store(&self, name: &str) -> Result<Rc<RefCell<StateStore>>> {
        self.globals
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Topology {
                reason: format!("no global store {name}"),
            })
    }

    /// Calls this processor's `punctuate` every `interval_ms` of `kind` time (from `init`).
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> Result<()> {
        if interval_ms <= 0 {
            return Err(Error::Topology {
                reason: format!("punctuation interval must be positive, got {interval_ms}"),
            });
        }
        self.schedules.push(Schedule {
            node: self.current_node,
            interval: interval_ms,
            kind,
            next: (kind == PunctuationType::WallClockTime).then_some(self.wall_clock + interval_ms),
        });
        Ok(())
    }

    /// Queues a record for a topic (sent after processing, before the next commit).
    pub fn send(&mut self, record: OutputRecord) {
        self.outbox.push(record);
    }
}
