//! [`KStream`]: a record stream and its operators.

use std::sync::Arc;

use super::config::{Consumed, Grouped, Materialized, Produced};
use super::grouped::KGroupedStream;
use super::nodes::{FnNode, SinkNode, SourceNode, TableSource};
use super::table::KTable;
use crate::error::{Error, Result};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::topology::{Children, Graph, Instantiator};

/// A stream of records with keys `K` and values `V`.
pub struct KStream<K, V> {
    pub(crate) graph: Graph,
    pub(crate) children: Children<K, V>,
    pub(crate) group: usize,
    /// Whether an operator may have changed the key since the last source (a grouping or join
    /// then goes through a repartition topic).
    pub(crate) key_changed: bool,
}

impl<K: 'static, V: 'static> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            children: self.children.clone(),
            group: self.group,
            key_changed: self.key_changed,
        }
    }
}

impl<K: 'static, V: 'static> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KStream")
            .field("group", &self.group)
            .field("key_changed", &self.key_changed)
            .finish()
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Routes each record to the first branch whose predicate holds ([`KStream::split`]).
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    predicates: Vec<Predicate<K, V>>,
}

impl<K: 'static, V: 'static> std::fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("branches", &self.predicates.len())
            .finish()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> BranchedKStream<K, V> {
    /// Adds a branch for records matching `predicate` (and no earlier branch).
    pub fn branch(mut self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// The branches in order, then one for records no predicate matched.
    pub fn default_branch(mut self) -> Vec<KStream<K, V>> {
        self.predicates.push(Arc::new(|_, _| true));
        self.finish()
    }

    /// The branches in order; records no predicate matched are dropped.
    pub fn no_default_branch(self) -> Vec<KStream<K, V>> {
        self.finish()
    }

    fn finish(self) -> Vec<KStream<K, V>> {
        let outs: Vec<KStream<K, V>> = self
            .predicates
            .iter()
            .map(|_| self.stream.derive(self.stream.key_changed))
            .collect();
        let lists: Vec<Children<K, V>> = outs.iter().map(|o| o.children.clone()).collect();
        let predicates = Arc::new(self.predicates);
        let id = self.stream.graph.next_id();
        self.stream.children.push(Arc::new(move |inst| {
            let lists = lists.clone();
            let predicates = predicates.clone();
            inst.node(id, move |inst| {
                let mut downs = Vec::with_capacity(lists.len());
                for list in &lists {
                    downs.push(list.instantiate(inst)?);
                }
                Ok(BranchNode { predicates, downs })
            })
        }));
        outs
    }
}

struct BranchNode<K, V> {
    predicates: Arc<Vec<Predicate<K, V>>>,
    downs: Vec<Downstream<K, V>>,
}

impl<K: 'static, V: 'static> Lifecycle for BranchNode<K, V> {}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V> for BranchNode<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        for (predicate, down) in self.predicates.iter().zip(&self.downs) {
            if predicate(&record.key, &record.value) {
                return down.forward(ctx, record);
            }
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    pub(crate) fn root(graph: Graph, group: usize) -> Self {
        KStream {
            graph,
            children: Children::new(),
            group,
            key_changed: false,
        }
    }

    /// A new node handle in the same sub-topology.
    pub(crate) fn derive<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        KStream {
            graph: self.graph.clone(),
            children: Children::new(),
            group: self.group,
            key_changed,
        }
    }

    /// Adds a child made by `make` from its own children; returns the child's stream.
    pub(crate) fn add_node<K2, V2, P, M>(&self, make: M, key_changed: bool) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V> + 'static,
        M: Fn(Downstream<K2, V2>) -> P + Send + Sync + 'static,
    {
        let out = self.derive(key_changed);
        let children = out.children.clone();
        let id = self.graph.next_id();
        let make = Arc::new(make);
        self.children.push(Arc::new(move |inst| {
            let children = children.clone();
            let make = make.clone();
            inst.node(id, move |inst| Ok(make(children.instantiate(inst)?)))
        }));
        out
    }

    /// Adds a child processor made by `make` for each task (it instantiates its own children).
    pub(crate) fn attach<P>(
        &self,
        make: impl Fn(&mut Instantiator) -> Result<P> + Send + Sync + 'static,
    ) where
        P: Processor<K, V> + 'static,
    {
        let id = self.graph.next_id();
        let make = Arc::new(make);
        self.children.push(Arc::new(move |inst| {
            let make = make.clone();
            inst.node(id, move |inst| make(inst))
        }));
    }

    /// Adds a child that runs `f` on each record.
    pub(crate) fn add_fn<K2, V2, F>(&self, f: F, key_changed: bool) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        F: Fn(&mut ProcessorContext, Record<K, V>, &Downstream<K2, V2>) -> Result<()>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        self.add_node(move |down| FnNode::new(f.clone(), down), key_changed)
    }

    /// Records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.add_fn(
            move |ctx, r, down| {
                if predicate(&r.key, &r.value) {
                    down.forward(ctx, r)
                } else {
                    Ok(())
                }
            },
            self.key_changed,
        )
    }

    /// Records for which `predicate` does not hold.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// A new key and value per record (marks the stream for repartitioning).
    pub fn map<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.add_fn(
            move |ctx, r, down| {
                let ts = r.timestamp;
                let (k, v) = f(r.key, r.value);
                down.forward(ctx, Record::new(k, v, ts))
            },
            true,
        )
    }

    /// A new value per record (the key is kept).
    pub fn map_values<V2: Clone + 'static>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.add_fn(
            move |ctx, r, down| {
                let v = f(&r.key, r.value);
                down.forward(ctx, Record::new(r.key, v, r.timestamp))
            },
            self.key_changed,
        )
    }

    /// Zero or more records per record.
    pub fn flat_map<K2: Clone + 'static, V2: Clone + 'static, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.add_fn(
            move |ctx, r, down| {
                let ts = r.timestamp;
                for (k, v) in f(r.key, r.value) {
                    down.forward(ctx, Record::new(k, v, ts))?;
                }
                Ok(())
            },
            true,
        )
    }

    /// Zero or more values per record, each with the record's key.
    pub fn flat_map_values<V2: Clone + 'static, I>(
        &self,
        f: impl Fn(&K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.add_fn(
            move |ctx, r, down| {
                let ts = r.timestamp;
                for v in f(&r.key, r.value) {
                    down.forward(ctx, Record::new(r.key.clone(), v, ts))?;
                }
                Ok(())
            },
            self.key_changed,
        )
    }

    /// A new key per record (marks the stream for repartitioning).
    pub fn select_key<K2: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.add_fn(
            move |ctx, r, down| {
                let k = f(&r.key, &r.value);
                down.forward(ctx, Record::new(k, r.value, r.timestamp))
            },
            true,
        )
    }

    /// Calls `f` on each record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        self.add_fn(
            move |ctx, r, down| {
                f(&r.key, &r.value);
                down.forward(ctx, r)
            },
            self.key_changed,
        )
    }

    /// Calls `f` on each record (a terminal operator).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _: KStream<K, V> = self.add_fn(
            move |_ctx, r: Record<K, V>, _down: &Downstream<K, V>| {
                f(&r.key, &r.value);
                Ok(())
            },
            self.key_changed,
        );
    }

    /// Records of both streams.
    pub fn merge(&self, other: &KStream<K, V>) -> Self {
        self.graph.union(self.group, other.group);
        let out = self.derive(self.key_changed || other.key_changed);
        let id = self.graph.next_id();
        for parent in [&self.children, &other.children] {
            let children = out.children.clone();
            parent.push(Arc::new(move |inst| {
                let children = children.clone();
                inst.node(id, move |inst| {
                    Ok(FnNode::new(
                        Arc::new(
                            |ctx: &mut ProcessorContext,
                             r: Record<K, V>,
                             down: &Downstream<K, V>| {
                                down.forward(ctx, r)
                            },
                        ),
                        children.instantiate(inst)?,
                    ))
                })
            }));
        }
        out
    }

    /// Splits the stream by predicates.
    pub fn split(&self) -> BranchedKStream<K, V> {
        BranchedKStream {
            stream: self.clone(),
            predicates: Vec::new(),
        }
    }

    /// Writes the stream to `topic`.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        self.graph.add_sink(topic);
        let topic = topic.to_string();
        let _: KStream<K, V> = self.add_node(
            move |_down: Downstream<K, V>| SinkNode::new(&topic, false, produced.clone()),
            self.key_changed,
        );
    }

    /// A custom processor made per task by `make` from its downstream; `stores` are the
    /// stores it opens (so that they are created, restored and their changelogs named).
    pub fn process<K2, V2, P>(
        &self,
        make: impl Fn(Downstream<K2, V2>) -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V> + 'static,
    {
        for store in stores {
            self.graph.use_store(store, self.group);
        }
        self.add_node(make, true)
    }

    /// Writes the stream through the repartition topic `{application.id}-{name}-repartition`
    /// (partitioned by key) and reads it back: the records of one key meet in one task.
    pub fn repartition(&self, grouped: Grouped<K, V>) -> KStream<K, V> {
        let name = format!(
            "{}-repartition",
            grouped
                .name
                .clone()
                .unwrap_or_else(|| format!("repartition-{:010}", self.graph.next_id()))
        );
        self.graph.add_repartition(&name, self.group);
        let produced = Produced::with(grouped.key_serde.clone(), grouped.value_serde.clone());
        let sink_name = name.clone();
        let _: KStream<K, V> = self.add_node(
            move |_down: Downstream<K, V>| SinkNode::new(&sink_name, true, produced.clone()),
            self.key_changed,
        );
        let group = self.graph.new_group();
        let out: KStream<K, V> = KStream::root(self.graph.clone(), group);
        let children = out.children.clone();
        let id = self.graph.next_id();
        let consumed = Arc::new(Consumed::with(grouped.key_serde, grouped.value_serde));
        self.graph.add_source_entry(
            &name,
            group,
            Arc::new(move |inst| {
                let children = children.clone();
                let consumed = consumed.clone();
                inst.node(id, move |inst| {
                    Ok(SourceNode::new(consumed, children.instantiate(inst)?))
                })
            }),
            true,
        );
        out
    }

    /// A table of the latest value per key (repartitioned first if the key changed).
    pub fn to_table(&self, materialized: Materialized<K, V>) -> Result<KTable<K, V>> {
        let (Some(key_serde), Some(value_serde)) = (
            materialized.key_serde.clone(),
            materialized.value_serde.clone(),
        ) else {
            return Err(Error::Topology {
                reason: "to_table needs key and value serdes in Materialized".into(),
            });
        };
        let stream = if self.key_changed {
            self.repartition(Grouped::with(key_serde.clone(), value_serde.clone()))
        } else {
            self.clone()
        };
        let store = materialized.name_or(&self.graph, "to-table");
        stream.graph.use_store(&store, stream.group);
        let table = KTable::root(
            stream.graph.clone(),
            stream.group,
            store.clone(),
            key_serde.clone(),
            value_serde.clone(),
        );
        let children = table.children.clone();
        let raw = Arc::new(Consumed::with(key_serde.clone(), value_serde.clone()));
        stream.attach(move |inst| {
            Ok(ToTable {
                inner: TableSource::new(raw.clone(), store.clone(), children.instantiate(inst)?),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            })
        });
        Ok(table)
    }

    /// Groups by the current key (repartitioning first if the key changed).
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        let stream = if self.key_changed {
            self.repartition(grouped.clone())
        } else {
            self.clone()
        };
        KGroupedStream::new(stream, grouped)
    }

    /// Groups by a new key (through a repartition topic).
    pub fn group_by<K2: Clone + 'static>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(selector).group_by_key(grouped)
    }
}

/// `to_table`: serializes the stream's records and feeds them to a table source.
struct ToTable<K, V> {
    inner: TableSource<K, V>,
    key_serde: crate::serdes::SerdeRef<K>,
    value_serde: crate::serdes::SerdeRef<V>,
}

impl<K: 'static, V: 'static> Lifecycle for ToTable<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.inner.init(ctx)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V> for ToTable<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let key = super::nodes::to_store_bytes(&self.key_serde, &record.key, "to_table")?;
        let value = self
            .value_serde
            .serialize(&record.value)
            .map_err(|source| Error::Serialization {
                topic: "to_table".into(),
                source,
            })?;
        self.inner
            .process(ctx, Record::new(Some(key), value, record.timestamp))
    }
}
