//! [`KTable`]: a changelog stream, materialized in a key-value store, and its operators.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Grouped, Materialized};
use super::grouped::KGroupedTable;
use super::nodes::{FnNode, from_store_bytes, to_store_bytes};
use super::stream::KStream;
use crate::error::Result;
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::SerdeRef;
use crate::store::{StateStore, StoreKind};
use crate::topology::{Children, Graph, Instantiator};

/// An update of a table row: the new and the previous value (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value now.
    pub new: Option<V>,
    /// The value before.
    pub old: Option<V>,
}

/// A table: the latest value per key, kept in a state store.
pub struct KTable<K, V> {
    pub(crate) graph: Graph,
    pub(crate) children: Children<K, Change<V>>,
    pub(crate) group: usize,
    pub(crate) store: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            children: self.children.clone(),
            group: self.group,
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable")
            .field("store", &self.store)
            .finish()
    }
}

/// A table replicated in full to every instance.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> std::fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalKTable")
            .field("store", &self.store)
            .finish()
    }
}

impl<K: 'static, V: 'static> GlobalKTable<K, V> {
    pub(crate) fn new(store: String, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        GlobalKTable {
            store,
            key_serde,
            value_serde,
        }
    }

    /// The store holding the table.
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

/// Reads a table's current value of a key from its store.
pub(crate) struct Getter<K, V> {
    pub(crate) store_name: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) store: Option<Rc<RefCell<StateStore>>>,
}

impl<K: 'static, V: 'static> Getter<K, V> {
    pub(crate) fn new(store_name: &str, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Getter {
            store_name: store_name.to_string(),
            key_serde,
            value_serde,
            store: None,
        }
    }

    pub(crate) fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::KeyValue)?);
        Ok(())
    }

    pub(crate) fn get(&self, key: &K) -> Result<Option<V>> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let key = to_store_bytes(&self.key_serde, key, &self.store_name)?;
        let found = store.borrow().get(&key)?;
        match found {
            Some(bytes) => Ok(Some(from_store_bytes(
                &self.value_serde,
                &bytes,
                &self.store_name,
            )?)),
            None => Ok(None),
        }
    }
}

/// Writes each change to a store and forwards it.
pub(crate) struct Materialize<K, V> {
    store_name: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    down: Downstream<K, Change<V>>,
}

impl<K: 'static, V: 'static> Materialize<K, V> {
    pub(crate) fn new(
        store_name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        down: Downstream<K, Change<V>>,
    ) -> Self {
        Materialize {
            store_name: store_name.to_string(),
            store: None,
            key_serde,
            value_serde,
            down,
        }
    }
}

impl<K: 'static, V: 'static> Lifecycle for Materialize<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::KeyValue)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>> for Materialize<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, Change<V>>) -> Result<()> {
        if let Some(store) = &self.store {
            let key = to_store_bytes(&self.key_serde, &record.key, &self.store_name)?;
            match &record.value.new {
                Some(v) => {
                    let v = to_store_bytes(&self.value_serde, v, &self.store_name)?;
                    store.borrow_mut().put(&key, &v)?;
                }
                None => store.borrow_mut().delete(&key)?,
            }
        }
        if record.value.new.is_none() && record.value.old.is_none() {
            return Ok(());
        }
        self.down.forward(ctx, record)
    }
}

type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// One side of a table-table join: looks the key up in the other side's store.
struct TableJoinSide<K, V, VO, VR> {
    other: Getter<K, VO>,
    joiner: TableJoiner<V, VO, VR>,
    down: Downstream<K, Change<VR>>,
}

impl<K: 'static, V: 'static, VO: 'static, VR: 'static> Lifecycle for TableJoinSide<K, V, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.other.init(ctx)
    }
}

impl<K: Clone + 'static, V: 'static, VO: 'static, VR: Clone + 'static> Processor<K, Change<V>>
    for TableJoinSide<K, V, VO, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, Change<V>>) -> Result<()> {
        let other = self.other.get(&record.key)?;
        let new = (self.joiner)(record.value.new.as_ref(), other.as_ref());
        let old = (self.joiner)(record.value.old.as_ref(), other.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        self.down.forward(
            ctx,
            Record::new(record.key, Change { new, old }, record.timestamp),
        )
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    pub(crate) fn root(
        graph: Graph,
        group: usize,
        store: String,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        KTable {
            graph,
            children: Children::new(),
            group,
            store,
            key_serde,
            value_serde,
        }
    }

    /// The store holding the table (for interactive queries).
    pub fn store_name(&self) -> &str {
        &self.store
    }

    /// Adds a processor made per task by `make`.
    pub(crate) fn attach<P>(
        &self,
        make: impl Fn(&mut Instantiator) -> Result<P> + Send + Sync + 'static,
    ) where
        P: Processor<K, Change<V>> + 'static,
    {
        let id = self.graph.next_id();
        let make = Arc::new(make);
        self.children.push(Arc::new(move |inst| {
            let make = make.clone();
            inst.node(id, move |inst| make(inst))
        }));
    }

    /// A derived table: `f` maps each change, the result is materialized in a new store.
    fn derive<V2: Clone + 'static>(
        &self,
        what: &str,
        value_serde: SerdeRef<V2>,
        materialized: Materialized<K, V2>,
        f: impl Fn(&K, Change<V>) -> Change<V2> + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let store = materialized.name_or(&self.graph, what);
        self.graph.use_store(&store, self.group);
        let value_serde = materialized.value_serde.clone().unwrap_or(value_serde);
        let out = KTable::root(
            self.graph.clone(),
            self.group,
            store.clone(),
            self.key_serde.clone(),
            value_serde.clone(),
        );
        let children = out.children.clone();
        let key_serde = self.key_serde.clone();
        let f = Arc::new(f);
        let materialize_id = self.graph.next_id();
        self.attach(move |inst| {
            let (store, key_serde, value_serde) =
                (store.clone(), key_serde.clone(), value_serde.clone());
            let children = children.clone();
            let materialize: crate::processor::ProcessorRef<K, Change<V2>> =
                inst.node(materialize_id, move |inst| {
                    Ok(Materialize::new(
                        &store,
                        key_serde,
                        value_serde,
                        children.instantiate(inst)?,
                    ))
                })?;
            let f = f.clone();
            Ok(FnNode::new(
                Arc::new(
                    move |ctx: &mut ProcessorContext,
                          r: Record<K, Change<V>>,
                          down: &Downstream<K, Change<V2>>| {
                        let change = f(&r.key, r.value);
                        down.forward(ctx, Record::new(r.key, change, r.timestamp))
                    },
                ),
                Downstream::new(vec![materialize]),
            ))
        });
        out
    }

    /// Rows for which `predicate` holds (others read as deleted).
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.derive(
            "filter",
            self.value_serde.clone(),
            materialized,
            move |k, c| Change {
                new: c.new.filter(|v| predicate(k, v)),
                old: c.old.filter(|v| predicate(k, v)),
            },
        )
    }

    /// Rows for which `predicate` does not hold.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v), materialized)
    }

    /// A new value per row.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> V2 + Send + Sync + 'static,
        value_serde: SerdeRef<V2>,
        materialized: Materialized<K, V2>,
    ) -> KTable<K, V2> {
        self.derive("map-values", value_serde, materialized, move |k, c| {
            Change {
                new: c.new.as_ref().map(|v| f(k, v)),
                old: c.old.as_ref().map(|v| f(k, v)),
            }
        })
    }

    /// The table's changes as a stream (`None`: the row was deleted).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let out: KStream<K, Option<V>> = KStream::root(self.graph.clone(), self.group);
        let children = out.children.clone();
        self.attach(move |inst| {
            Ok(FnNode::new(
                Arc::new(
                    |ctx: &mut ProcessorContext,
                     r: Record<K, Change<V>>,
                     down: &Downstream<K, Option<V>>| {
                        down.forward(ctx, Record::new(r.key, r.value.new, r.timestamp))
                    },
                ),
                children.instantiate(inst)?,
            ))
        });
        out
    }

    /// Re-keys rows with `selector` for an aggregation (through a repartition topic).
    pub fn group_by<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        KGroupedTable::from_table(self, Arc::new(selector), grouped)
    }

    fn join_with<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: TableJoiner<V, VO, VR>,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.graph.copartition(self.group, other.group);
        self.graph.union(self.group, other.group);
        let store = materialized.name_or(&self.graph, "join");
        self.graph.use_store(&store, self.group);
        let value_serde = materialized.value_serde.clone().unwrap_or(value_serde);
        let out = KTable::root(
            self.graph.clone(),
            self.group,
            store.clone(),
            self.key_serde.clone(),
            value_serde.clone(),
        );
        let materialize_id = self.graph.next_id();
        let children = out.children.clone();
        let key_serde = self.key_serde.clone();
        let shared = move |inst: &mut Instantiator| {
            let children = children.clone();
            let store = store.clone();
            let key_serde = key_serde.clone();
            let value_serde = value_serde.clone();
            inst.node(materialize_id, move |inst| {
                Ok(Materialize::new(
                    &store,
                    key_serde,
                    value_serde,
                    children.instantiate(inst)?,
                ))
            })
        };
        let shared = Arc::new(shared);
        // This side looks up `other`.
        {
            let shared = shared.clone();
            let getter = (
                other.store.clone(),
                other.key_serde.clone(),
                other.value_serde.clone(),
            );
            let joiner = joiner.clone();
            self.attach(move |inst| {
                Ok(TableJoinSide {
                    other: Getter::new(&getter.0, getter.1.clone(), getter.2.clone()),
                    joiner: joiner.clone(),
                    down: Downstream::new(vec![shared(inst)?]),
                })
            });
        }
        // The other side looks up this one, with the joiner's arguments swapped.
        {
            let getter = (
                self.store.clone(),
                self.key_serde.clone(),
                self.value_serde.clone(),
            );
            let swapped: TableJoiner<VO, V, VR> =
                Arc::new(move |o: Option<&VO>, t: Option<&V>| joiner(t, o));
            other.attach(move |inst| {
                Ok(TableJoinSide {
                    other: Getter::new(&getter.0, getter.1.clone(), getter.2.clone()),
                    joiner: swapped.clone(),
                    down: Downstream::new(vec![shared(inst)?]),
                })
            });
        }
        out
    }

    /// Inner join with another table on the key: a row where both sides have one.
    pub fn join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.join_with(other, joiner, value_serde, materialized)
    }

    /// Left join: a row wherever this table has one.
    pub fn left_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| v.map(|v| joiner(v, o)));
        self.join_with(other, joiner, value_serde, materialized)
    }

    /// Outer join: a row wherever either table has one.
    pub fn outer_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| {
            if v.is_none() && o.is_none() {
                None
            } else {
                Some(joiner(v, o))
            }
        });
        self.join_with(other, joiner, value_serde, materialized)
    }
}
