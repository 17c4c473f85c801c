//! A task: one sub-topology's processors for one partition, with their stores.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::processor::{
    Lifecycle, OutputRecord, ProcessorContext, ProcessorRef, PunctuationType, Record,
};
use crate::store::{KvBackend, StateStore, StoreKind};
use crate::topology::{Instantiator, Raw, Topology};

/// A task's id: sub-topology and partition (printed as Kafka does, `0_3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: usize,
    /// The partition of its source topics.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What to do with a record whose key or value cannot be deserialized
/// (`default.deserialization.exception.handler`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Log, count and skip the record (`LogAndContinueExceptionHandler`).
    LogAndContinue,
    /// Stop the application with an error (`LogAndFailExceptionHandler`, Kafka's default).
    #[default]
    LogAndFail,
    /// Send the raw record to this topic, count and skip it.
    DeadLetter(String),
}

pub(crate) type StoreOpener = Box<dyn FnMut(&str, StoreKind) -> Result<Box<dyn KvBackend>>>;

/// One task's processors and stores.
pub(crate) struct Task {
    id: TaskId,
    pub(crate) ctx: ProcessorContext,
    roots: BTreeMap<Arc<str>, ProcessorRef<Raw, Raw>>,
    nodes: Vec<Rc<RefCell<dyn Lifecycle>>>,
    /// Next offset to read per source partition (what a commit writes).
    pub(crate) positions: BTreeMap<Arc<str>, i64>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// Creates and initializes sub-topology `id.subtopology`'s processors.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_with(
        topology: &Topology,
        id: TaskId,
        app_id: &str,
        logging: bool,
        handler: DeserializationHandler,
        opener: StoreOpener,
        globals: BTreeMap<String, Rc<RefCell<StateStore>>>,
        partition_counts: Arc<BTreeMap<String, i32>>,
    ) -> Result<Self> {
        let mut ctx = ProcessorContext::new(id.partition, logging, opener);
        ctx.app_id = Arc::from(app_id);
        ctx.handler = handler;
        ctx.globals = globals;
        ctx.partition_counts = partition_counts;
        let mut inst = Instantiator::new();
        let mut roots = BTreeMap::new();
        for source in topology.sources.iter().filter(|s| s.sub == id.subtopology) {
            let root = (source.factory)(&mut inst)?;
            roots.insert(Arc::from(source.full_name(app_id).as_str()), root);
        }
        let nodes = inst.nodes;
        for (i, node) in nodes.iter().enumerate() {
            ctx.current_node = i;
            node.borrow_mut().init(&mut ctx)?;
        }
        Ok(Task {
            id,
            ctx,
            roots,
            nodes,
            positions: BTreeMap::new(),
        })
    }

    /// The task's id.
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// The source topics (full names) this task reads.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &Arc<str>> {
        self.roots.keys()
    }

    /// Stream time.
    pub(crate) fn stream_time(&self) -> i64 {
        self.ctx.stream_time
    }

    /// Processes one source record.
    pub(crate) fn process(
        &mut self,
        topic: &Arc<str>,
        offset: i64,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> Result<()> {
        let Some(root) = self.roots.get(topic) else {
            return Ok(());
        };
        let ctx = &mut self.ctx;
        if !Arc::ptr_eq(&ctx.topic, topic) {
            ctx.topic = topic.clone();
        }
        ctx.partition = self.id.partition;
        ctx.offset = offset;
        ctx.timestamp = timestamp;
        ctx.metrics.records_processed += 1;
        root.borrow_mut()
            .process(ctx, Record::new(key, value, timestamp))?;
        match self.positions.get_mut(topic) {
            Some(p) => *p = offset + 1,
            None => {
                self.positions.insert(topic.clone(), offset + 1);
            }
        }
        self.punctuate(PunctuationType::StreamTime, self.ctx.stream_time)
    }

    /// Runs due punctuations of `kind` at `now`.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        if kind == PunctuationType::WallClockTime {
            self.ctx.wall_clock = now;
        }
        if now == i64::MIN {
            return Ok(());
        }
        for i in 0..self.ctx.schedules.len() {
            let schedule = &mut self.ctx.schedules[i];
            if schedule.kind != kind {
                continue;
            }
            let due = match schedule.next {
                None => {
                    // Stream time: fires with the first record; wall clock: after one interval.
                    if kind == PunctuationType::StreamTime {
                        schedule.next = Some(now + schedule.interval);
                        true
                    } else {
                        schedule.next = Some(now + schedule.interval);
                        false
                    }
                }
                Some(next) if now >= next => {
                    let mut n = next;
                    while n <= now {
                        n += schedule.interval;
                    }
                    schedule.next = Some(n);
                    true
                }
                Some(_) => false,
            };
            if due {
                let node = schedule.node;
                self.ctx.offset = -1;
                self.ctx.timestamp = now;
                self.nodes[node]
                    .borrow_mut()
                    .punctuate(&mut self.ctx, kind, now)?;
            }
        }
        Ok(())
    }

    /// Records queued for sink and repartition topics since the last call.
    pub(crate) fn take_outbox(&mut self) -> Vec<OutputRecord> {
        std::mem::take(&mut self.ctx.outbox)
    }

    /// The task's stores.
    pub(crate) fn stores(&self) -> impl Iterator<Item = (&String, &Rc<RefCell<StateStore>>)> {
        self.ctx.stores.iter()
    }

    /// Writes every store's cached changes to its backend.
    pub(crate) fn write_back(&self) -> Result<()> {
        for store in self.ctx.stores.values() {
            store.borrow_mut().write_back()?;
        }
        Ok(())
    }

    /// Counters.
    pub(crate) fn metrics(&self) -> &crate::processor::TaskMetrics {
        &self.ctx.metrics
    }
}
