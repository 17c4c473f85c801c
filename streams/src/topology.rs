//! The topology graph: nodes registered by the DSL (or by hand through the processor API),
//! grouped into sub-topologies, and instantiated once per task.
//!
//! Every node is a factory that creates its processor together with its children's. A node
//! with several parents (merge, joins) is created once per task and shared. Sub-topologies are
//! the connected parts of the graph: nodes joined by an edge, a merge, a join or a shared
//! store are in one; a repartition topic starts a new one.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorRef};

/// Raw keys and values as read from a topic.
pub type Raw = Option<Bytes>;

/// Creates a node's processor (and, through it, its children) for one task.
pub type Factory<K, V> = Arc<dyn Fn(&mut Instantiator) -> Result<ProcessorRef<K, V>> + Send + Sync>;

/// The factories of a node's children; the DSL appends as operators are added.
pub struct Children<K, V>(Arc<Mutex<Vec<Factory<K, V>>>>);

impl<K, V> Clone for Children<K, V> {
    fn clone(&self) -> Self {
        Children(self.0.clone())
    }
}

impl<K, V> std::fmt::Debug for Children<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Children")
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Children<K, V> {
    pub(crate) fn new() -> Self {
        Children(Arc::new(Mutex::new(Vec::new())))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Factory<K, V>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, factory: Factory<K, V>) {
        self.lock().push(factory);
    }

    /// Creates every child for a task.
    pub fn instantiate(&self, inst: &mut Instantiator) -> Result<Downstream<K, V>> {
        let factories: Vec<Factory<K, V>> = self.lock().clone();
        let mut children = Vec::with_capacity(factories.len());
        for factory in factories {
            children.push(factory(inst)?);
        }
        Ok(Downstream::new(children))
    }
}

/// Creates one task's processors.
pub struct Instantiator {
    memo: HashMap<usize, Box<dyn Any>>,
    pub(crate) nodes: Vec<Rc<RefCell<dyn Lifecycle>>>,
}

impl std::fmt::Debug for Instantiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instantiator")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Instantiator {
    pub(crate) fn new() -> Self {
        Instantiator {
            memo: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    /// The processor of node `id`, created by `make` the first time in this task.
    pub fn node<K, V, P>(
        &mut self,
        id: usize,
        make: impl FnOnce(&mut Instantiator) -> Result<P>,
    ) -> Result<ProcessorRef<K, V>>
    where
        K: 'static,
        V: 'static,
        P: Processor<K, V> + 'static,
    {
        if let Some(found) = self.memo.get(&id)
            && let Some(p) = found.downcast_ref::<ProcessorRef<K, V>>()
        {
            return Ok(p.clone());
        }
        let processor = Rc::new(RefCell::new(make(self)?));
        self.nodes.push(processor.clone());
        let shared: ProcessorRef<K, V> = processor;
        self.memo.insert(id, Box::new(shared.clone()));
        Ok(shared)
    }
}

/// A source topic of the topology.
pub(crate) struct Source {
    pub(crate) topic: String,
    pub(crate) group: usize,
    pub(crate) factory: Factory<Raw, Raw>,
    /// A repartition topic: its full name is `{application.id}-{topic}`.
    pub(crate) internal: bool,
}

/// A source topic of a built topology.
#[derive(Clone)]
pub(crate) struct SourceEntry {
    pub(crate) topic: String,
    pub(crate) sub: usize,
    pub(crate) factory: Factory<Raw, Raw>,
    pub(crate) internal: bool,
}

impl SourceEntry {
    /// The topic's name for application `app`.
    pub(crate) fn full_name(&self, app: &str) -> String {
        if self.internal {
            format!("{app}-{}", self.topic)
        } else {
            self.topic.clone()
        }
    }
}

/// A global table: every instance reads all partitions of its topic into a local store.
pub(crate) struct GlobalSource {
    pub(crate) topic: String,
    pub(crate) store: String,
}

/// A topic the application creates: repartition or changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// Full name (`{application.id}-{name}`).
    pub name: String,
    /// The sub-topology that writes it (repartition) or owns it (changelog).
    pub writer_group: usize,
    /// Compacted (changelogs) or not (repartition topics).
    pub compacted: bool,
}

#[derive(Default)]
struct Inner {
    next_id: usize,
    parent: Vec<usize>,
    sources: Vec<Source>,
    globals: Vec<GlobalSource>,
    stores: BTreeMap<String, usize>,
    repartitions: Vec<(String, usize)>,
    copartition: Vec<(usize, usize)>,
    sinks: BTreeSet<String>,
    errors: Vec<String>,
}

impl Inner {
    fn find(&mut self, mut g: usize) -> usize {
        while self.parent[g] != g {
            self.parent[g] = self.parent[self.parent[g]];
            g = self.parent[g];
        }
        g
    }
}

/// The shared graph the DSL writes into. Cheap to clone.
#[derive(Clone, Default)]
pub struct Graph {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Graph")
    }
}

impl Graph {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh node id.
    pub fn next_id(&self) -> usize {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
    }

    /// A new sub-topology group.
    pub fn new_group(&self) -> usize {
        let mut inner = self.lock();
        let g = inner.parent.len();
        inner.parent.push(g);
        g
    }

    /// Puts two groups in one sub-topology.
    pub fn union(&self, a: usize, b: usize) {
        let mut inner = self.lock();
        let (ra, rb) = (inner.find(a), inner.find(b));
        if ra != rb {
            inner.parent[rb] = ra;
        }
    }

    /// Records that a join reads both groups' topics partition by partition.
    pub fn copartition(&self, a: usize, b: usize) {
        self.lock().copartition.push((a, b));
    }

    /// Registers a source topic read by `group`.
    pub fn add_source(&self, topic: &str, group: usize, factory: Factory<Raw, Raw>) {
        self.add_source_entry(topic, group, factory, false);
    }

    pub(crate) fn add_source_entry(
        &self,
        topic: &str,
        group: usize,
        factory: Factory<Raw, Raw>,
        internal: bool,
    ) {
        let mut inner = self.lock();
        if inner.sources.iter().any(|s| s.topic == topic)
            || inner.globals.iter().any(|s| s.topic == topic)
        {
            inner
                .errors
                .push(format!("topic {topic} is registered as a source twice"));
        }
        inner.sources.push(Source {
            topic: topic.to_string(),
            group,
            factory,
            internal,
        });
    }

    /// Registers a global table.
    pub(crate) fn add_global(&self, topic: &str, store: &str) {
        let mut inner = self.lock();
        inner.globals.push(GlobalSource {
            topic: topic.to_string(),
            store: store.to_string(),
        });
    }

    /// Registers a store used by `group` (stores used by two groups merge them).
    pub fn use_store(&self, name: &str, group: usize) {
        let existing = self.lock().stores.get(name).copied();
        match existing {
            Some(other) => self.union(other, group),
            None => {
                self.lock().stores.insert(name.to_string(), group);
            }
        }
    }

    /// Registers a repartition topic written by `group` (its readers are another group).
    pub(crate) fn add_repartition(&self, name: &str, group: usize) {
        self.lock().repartitions.push((name.to_string(), group));
    }

    /// Registers an output topic.
    pub(crate) fn add_sink(&self, topic: &str) {
        self.lock().sinks.insert(topic.to_string());
    }

    /// Freezes the graph into a topology.
    pub fn build(&self) -> Result<Topology> {
        let mut inner = self.lock();
        if let Some(e) = inner.errors.first() {
            return Err(Error::Topology { reason: e.clone() });
        }
        if inner.sources.is_empty() && inner.globals.is_empty() {
            return Err(Error::Topology {
                reason: "the topology has no source".into(),
            });
        }
        // Number the sub-topologies by their first source.
        let mut index: BTreeMap<usize, usize> = BTreeMap::new();
        let groups: Vec<usize> = inner.sources.iter().map(|s| s.group).collect();
        let mut source_sub = Vec::new();
        for g in groups {
            let root = inner.find(g);
            let next = index.len();
            source_sub.push(*index.entry(root).or_insert(next));
        }
        let sources: Vec<SourceEntry> = inner
            .sources
            .iter()
            .zip(&source_sub)
            .map(|(s, sub)| SourceEntry {
                topic: s.topic.clone(),
                sub: *sub,
                factory: s.factory.clone(),
                internal: s.internal,
            })
            .collect();
        let store_groups: Vec<(String, usize)> =
            inner.stores.iter().map(|(n, g)| (n.clone(), *g)).collect();
        let mut stores = BTreeMap::new();
        for (name, g) in store_groups {
            let root = inner.find(g);
            if let Some(sub) = index.get(&root) {
                stores.insert(name, *sub);
            }
        }
        let reparts: Vec<(String, usize)> = inner.repartitions.clone();
        let mut repartitions = BTreeMap::new();
        for (name, g) in reparts {
            let root = inner.find(g);
            repartitions.insert(name, index.get(&root).copied().unwrap_or(0));
        }
        let pairs = inner.copartition.clone();
        let mut copartition = Vec::new();
        for (a, b) in pairs {
            let (ra, rb) = (inner.find(a), inner.find(b));
            let topics = |root: usize, inner: &mut Inner| -> BTreeSet<String> {
                let groups: Vec<(String, usize)> = inner
                    .sources
                    .iter()
                    .map(|s| (s.topic.clone(), s.group))
                    .collect();
                groups
                    .into_iter()
                    .filter(|(_, g)| inner.find(*g) == root)
                    .map(|(t, _)| t)
                    .collect()
            };
            let _ = rb;
            copartition.push(topics(ra, &mut inner));
        }
        Ok(Topology {
            sources,
            globals: inner
                .globals
                .iter()
                .map(|g| (g.topic.clone(), g.store.clone()))
                .collect(),
            stores,
            repartitions,
            copartition,
            sinks: inner.sinks.clone(),
            subtopologies: index.len(),
        })
    }
}

/// A built topology: what the runtime and the test driver run.
pub struct Topology {
    pub(crate) sources: Vec<SourceEntry>,
    pub(crate) globals: Vec<(String, String)>,
    /// Store name → sub-topology.
    pub(crate) stores: BTreeMap<String, usize>,
    /// Repartition topic (unprefixed name) → the sub-topology writing it.
    pub(crate) repartitions: BTreeMap<String, usize>,
    /// Sets of topics that must have equal partition counts.
    pub(crate) copartition: Vec<BTreeSet<String>>,
    pub(crate) sinks: BTreeSet<String>,
    pub(crate) subtopologies: usize,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// The source topics of sub-topology `sub`.
    pub fn source_topics(&self, sub: usize) -> Vec<&str> {
        self.sources
            .iter()
            .filter(|s| s.sub == sub)
            .map(|s| s.topic.as_str())
            .collect()
    }

    /// Number of sub-topologies.
    pub fn subtopologies(&self) -> usize {
        self.subtopologies
    }

    /// The state stores (with their sub-topology).
    pub fn stores(&self) -> impl Iterator<Item = (&str, usize)> {
        self.stores.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// A text description of sources, stores and internal topics.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for sub in 0..self.subtopologies {
            out.push_str(&format!("Sub-topology {sub}\n"));
            for t in self.source_topics(sub) {
                out.push_str(&format!("  source {t}\n"));
            }
            for (name, s) in &self.stores {
                if *s == sub {
                    out.push_str(&format!("  store {name}\n"));
                }
            }
            for (name, s) in &self.repartitions {
                if *s == sub {
                    out.push_str(&format!("  repartition to {name}\n"));
                }
            }
        }
        for (topic, store) in &self.globals {
            out.push_str(&format!("Global store {store} from {topic}\n"));
        }
        out
    }
}
