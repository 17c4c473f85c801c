//! The processor API: [`Processor`]s connected into a graph, each with a [`ProcessorContext`]
//! that gives the current record's metadata, stream time, state stores, punctuation and sinks.
//!
//! A processor forwards to its children through a [`Downstream`]; the DSL builds its operators
//! from the same pieces.

mod context;

use std::cell::RefCell;
use std::rc::Rc;

pub use self::context::{OutputRecord, ProcessorContext, PunctuationType, TaskMetrics};
use crate::error::Result;

/// A record flowing through a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time, milliseconds since the epoch.
    pub timestamp: i64,
}

impl<K, V> Record<K, V> {
    /// A record.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
        }
    }

    /// The same timestamp with another key and value.
    pub fn with<K2, V2>(&self, key: K2, value: V2) -> Record<K2, V2> {
        Record {
            key,
            value,
            timestamp: self.timestamp,
        }
    }
}

/// Init, punctuation and flush: the parts of a processor that do not depend on its types.
pub trait Lifecycle {
    /// Called once per task before any record (open stores, schedule punctuation here).
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
    /// Called when a schedule registered with [`ProcessorContext::schedule`] is due.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext,
        kind: PunctuationType,
        time: i64,
    ) -> Result<()> {
        let _ = (ctx, kind, time);
        Ok(())
    }
}

/// Processes records of key type `K` and value type `V`.
pub trait Processor<K, V>: Lifecycle {
    /// Handles one record; forwards results through its [`Downstream`].
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()>;
}

/// A processor instance shared by its parents.
pub type ProcessorRef<K, V> = Rc<RefCell<dyn Processor<K, V>>>;

/// The children a processor forwards to.
pub struct Downstream<K, V> {
    children: Vec<ProcessorRef<K, V>>,
}

impl<K, V> std::fmt::Debug for Downstream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream")
            .field("children", &self.children.len())
            .finish()
    }
}

impl<K: Clone, V: Clone> Downstream<K, V> {
    /// Children to forward to.
    pub fn new(children: Vec<ProcessorRef<K, V>>) -> Self {
        Downstream { children }
    }

    /// Whether there is no child.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Sends `record` to every child (cloned for all but the last).
    pub fn forward(&self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let Some((last, rest)) = self.children.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.borrow_mut().process(ctx, record.clone())?;
        }
        last.borrow_mut().process(ctx, record)
    }
}
