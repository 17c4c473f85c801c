//! [`TopologyTestDriver`]: runs a topology without a broker, one record at a time, with
//! explicit timestamps, so that tests can check outputs exactly (Kafka's
//! `TopologyTestDriver`). Every topic has one partition; records written to repartition topics
//! are fed straight back in; stores are in memory.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::processor::{OutputRecord, PunctuationType, Record, TaskMetrics};
use crate::serdes::SerdeRef;
use crate::store::{MemoryBackend, StateStore, StoreKind};
use crate::task::{DeserializationHandler, Task, TaskId};
use crate::topology::Topology;

/// Drives a topology in-process.
pub struct TopologyTestDriver {
    topology: Topology,
    app_id: String,
    tasks: BTreeMap<usize, Task>,
    globals: BTreeMap<String, (String, Rc<RefCell<StateStore>>)>,
    outputs: BTreeMap<String, VecDeque<OutputRecord>>,
    offsets: BTreeMap<String, i64>,
    wall_clock: i64,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// A typed input topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Writes a record with this key, value and timestamp.
    pub fn pipe(
        &self,
        driver: &mut TopologyTestDriver,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<()> {
        let serialize_error = |source| Error::Serialization {
            topic: self.topic.clone(),
            source,
        };
        let key = self.key_serde.serialize(key).map_err(serialize_error)?;
        let value = self.value_serde.serialize(value).map_err(serialize_error)?;
        driver.pipe_raw(&self.topic, key, value, timestamp)
    }
}

/// A typed output topic of a [`TopologyTestDriver`].
pub struct TestOutputTopic<K, V> {
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Takes every record written since the last read, in order.
    pub fn read_records(&self, driver: &mut TopologyTestDriver) -> Result<Vec<Record<K, V>>> {
        let mut out = Vec::new();
        for r in driver.read_raw(&self.topic) {
            let error = |source| Error::Deserialization {
                topic: self.topic.clone(),
                partition: r.partition.unwrap_or(0),
                offset: -1,
                source,
            };
            let key = self
                .key_serde
                .deserialize(r.key.as_deref())
                .map_err(error)?;
            let value = self
                .value_serde
                .deserialize(r.value.as_deref())
                .map_err(error)?;
            out.push(Record::new(key, value, r.timestamp));
        }
        Ok(out)
    }

    /// Takes the records written since the last read as `(key, value)` pairs.
    pub fn read_key_values(&self, driver: &mut TopologyTestDriver) -> Result<Vec<(K, V)>> {
        Ok(self
            .read_records(driver)?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }
}

impl TopologyTestDriver {
    /// A driver for `topology` as application `app_id`, with Kafka's default
    /// deserialization handler (fail).
    pub fn new(topology: Topology, app_id: &str) -> Result<Self> {
        Self::with_handler(topology, app_id, DeserializationHandler::LogAndFail)
    }

    /// A driver with the given deserialization exception handler.
    pub fn with_handler(
        topology: Topology,
        app_id: &str,
        handler: DeserializationHandler,
    ) -> Result<Self> {
        let mut globals = BTreeMap::new();
        for (topic, store) in &topology.globals {
            let s = Rc::new(RefCell::new(StateStore::new(
                store,
                StoreKind::KeyValue,
                Box::new(MemoryBackend::default()),
                false,
            )));
            globals.insert(topic.clone(), (store.clone(), s));
        }
        let mut counts = BTreeMap::new();
        for sink in &topology.sinks {
            counts.insert(sink.clone(), 1);
        }
        let counts = Arc::new(counts);
        let mut tasks = BTreeMap::new();
        for sub in 0..topology.subtopologies {
            let id = TaskId {
                subtopology: sub,
                partition: 0,
            };
            let globals_map: BTreeMap<String, Rc<RefCell<StateStore>>> = globals
                .values()
                .map(|(name, s)| (name.clone(), s.clone()))
                .collect();
            let task = Task::new_with(
                &topology,
                id,
                app_id,
                true,
                handler.clone(),
                Box::new(|_, _| Ok(Box::new(MemoryBackend::default()))),
                globals_map,
                counts.clone(),
            )?;
            tasks.insert(sub, task);
        }
        Ok(TopologyTestDriver {
            topology,
            app_id: app_id.to_string(),
            tasks,
            globals,
            outputs: BTreeMap::new(),
            offsets: BTreeMap::new(),
            wall_clock: 0,
        })
    }

    /// A typed input topic.
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            topic: topic.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// A typed output topic.
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            topic: topic.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// Feeds one raw record to `topic` and runs everything it causes (repartition topics
    /// included).
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<()> {
        if let Some((_, store)) = self.globals.get(topic) {
            if let Some(k) = key.as_deref() {
                match value.as_deref() {
                    Some(v) => store.borrow_mut().put(k, v)?,
                    None => store.borrow_mut().delete(k)?,
                }
            }
            return Ok(());
        }
        let mut queue = VecDeque::from([(topic.to_string(), key, value, timestamp)]);
        while let Some((topic, key, value, ts)) = queue.pop_front() {
            let Some(source) = self
                .topology
                .sources
                .iter()
                .find(|s| s.full_name(&self.app_id) == topic)
            else {
                self.outputs
                    .entry(topic.clone())
                    .or_default()
                    .push_back(OutputRecord {
                        topic: Arc::from(topic.as_str()),
                        partition: Some(0),
                        key,
                        value,
                        timestamp: ts,
                    });
                continue;
            };
            let sub = source.sub;
            let offset = {
                let o = self.offsets.entry(topic.clone()).or_insert(0);
                *o += 1;
                *o - 1
            };
            let Some(task) = self.tasks.get_mut(&sub) else {
                continue;
            };
            let name: Arc<str> = task
                .topics()
                .find(|t| ***t == *topic)
                .cloned()
                .unwrap_or_else(|| Arc::from(topic.as_str()));
            task.process(&name, offset, ts, key, value)?;
            for out in task.take_outbox() {
                queue.push_back((out.topic.to_string(), out.key, out.value, out.timestamp));
            }
        }
        Ok(())
    }

    /// Moves wall-clock time forward and runs due wall-clock punctuations.
    pub fn advance_wall_clock(&mut self, ms: i64) -> Result<()> {
        self.wall_clock += ms;
        let mut produced = Vec::new();
        for task in self.tasks.values_mut() {
            task.punctuate(PunctuationType::WallClockTime, self.wall_clock)?;
            produced.extend(task.take_outbox());
        }
        for out in produced {
            self.pipe_raw(&out.topic, out.key, out.value, out.timestamp)?;
        }
        Ok(())
    }

    /// Takes the raw records written to `topic` since the last read.
    pub fn read_raw(&mut self, topic: &str) -> Vec<OutputRecord> {
        self.outputs
            .get_mut(topic)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// A store of the (single) task that has it.
    pub fn store(&self, name: &str) -> Option<Rc<RefCell<StateStore>>> {
        self.tasks
            .values()
            .find_map(|t| t.ctx.stores.get(name).cloned())
    }

    /// Counters summed over tasks.
    pub fn metrics(&self) -> TaskMetrics {
        let mut m = TaskMetrics::default();
        for t in self.tasks.values() {
            m.records_processed += t.metrics().records_processed;
            m.late_records_dropped += t.metrics().late_records_dropped;
            m.records_skipped += t.metrics().records_skipped;
        }
        m
    }

    /// The changes every store would write to its changelog now.
    pub fn take_changelog(&mut self, store: &str) -> Vec<(Bytes, Option<Bytes>)> {
        self.store(store)
            .map(|s| s.borrow_mut().take_changes().unwrap_or_default())
            .unwrap_or_default()
    }
}
