//! Grouped streams and tables and their aggregations.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::config::{Grouped, Materialized};
use super::nodes::{from_store_bytes, to_store_bytes};
use super::stream::KStream;
use super::table::{Change, KTable};
use super::window::{SessionWindowedKStream, SessionWindows, TimeWindowedKStream, TimeWindows};
use crate::error::{Result, SerdeError};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::{Serde, SerdeRef, Serdes};
use crate::store::{StateStore, StoreKind};

/// `(key, value, aggregate or None before the first) -> aggregate`.
pub(crate) type Aggregator<K, V, VA> = Arc<dyn Fn(&K, &V, Option<VA>) -> VA + Send + Sync>;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
}

impl<K: 'static, V: 'static> std::fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KGroupedStream")
    }
}

/// Aggregates a stream per key into a key-value store.
pub(crate) struct StreamAggregate<K, V, VA> {
    store_name: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    agg_serde: SerdeRef<VA>,
    aggregator: Aggregator<K, V, VA>,
    down: Downstream<K, Change<VA>>,
}

impl<K: 'static, V: 'static, VA: 'static> Lifecycle for StreamAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::KeyValue)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, V>
    for StreamAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let key = to_store_bytes(&self.key_serde, &record.key, &self.store_name)?;
        let old_bytes = store.borrow().get(&key)?;
        let old = match old_bytes {
            Some(b) => Some(from_store_bytes(&self.agg_serde, &b, &self.store_name)?),
            None => None,
        };
        let new = (self.aggregator)(&record.key, &record.value, old.clone());
        let bytes = to_store_bytes(&self.agg_serde, &new, &self.store_name)?;
        store.borrow_mut().put(&key, &bytes)?;
        self.down.forward(
            ctx,
            Record::new(
                record.key,
                Change {
                    new: Some(new),
                    old,
                },
                record.timestamp,
            ),
        )
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        KGroupedStream { stream, grouped }
    }

    pub(crate) fn aggregate_with<VA: Clone + 'static>(
        &self,
        aggregator: Aggregator<K, V, VA>,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<K, VA>,
        what: &str,
    ) -> KTable<K, VA> {
        let graph = &self.stream.graph;
        let store = materialized.name_or(graph, what);
        graph.use_store(&store, self.stream.group);
        let agg_serde = materialized.value_serde.clone().unwrap_or(agg_serde);
        let key_serde = self.grouped.key_serde.clone();
        let table = KTable::root(
            graph.clone(),
            self.stream.group,
            store.clone(),
            key_serde.clone(),
            agg_serde.clone(),
        );
        let children = table.children.clone();
        self.stream.attach(move |inst| {
            Ok(StreamAggregate {
                store_name: store.clone(),
                store: None,
                key_serde: key_serde.clone(),
                agg_serde: agg_serde.clone(),
                aggregator: aggregator.clone(),
                down: children.instantiate(inst)?,
            })
        });
        table
    }

    /// Records per key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_with(
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            Serdes::i64(),
            materialized,
            "count",
        )
    }

    /// Combines the values per key with `reducer(aggregate, value)` (the first value starts).
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.aggregate_with(
            Arc::new(move |_, v: &V, agg: Option<V>| match agg {
                Some(a) => reducer(&a, v),
                None => v.clone(),
            }),
            self.grouped.value_serde.clone(),
            materialized,
            "reduce",
        )
    }

    /// Folds the values per key into `init()` with `adder(key, value, aggregate)`.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            Arc::new(move |k, v, agg: Option<VA>| adder(k, v, agg.unwrap_or_else(&init))),
            agg_serde,
            materialized,
            "aggregate",
        )
    }

    /// Tumbling or hopping windows.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.stream.clone(), self.grouped.clone(), windows)
    }

    /// Sliding windows.
    pub fn windowed_by_sliding(
        &self,
        windows: super::sliding::SlidingWindows,
    ) -> super::sliding::SlidingWindowedKStream<K, V> {
        super::sliding::SlidingWindowedKStream::new(
            self.stream.clone(),
            self.grouped.clone(),
            windows,
        )
    }

    /// Session windows.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream::new(self.stream.clone(), self.grouped.clone(), windows)
    }
}

/// A value of a re-keyed table on its way to the aggregation: added or subtracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tagged<V> {
    add: bool,
    value: V,
}

struct TaggedSerde<V>(SerdeRef<V>);

impl<V: 'static> Serde<Tagged<V>> for TaggedSerde<V> {
    fn serialize(&self, value: &Tagged<V>) -> Result<Option<Bytes>, SerdeError> {
        let inner = self.0.serialize(&value.value)?;
        let mut out = BytesMut::with_capacity(1 + inner.as_ref().map_or(0, |b| b.len()));
        out.put_u8(if value.add { b'+' } else { b'-' });
        if let Some(b) = inner {
            out.put_slice(&b);
        }
        Ok(Some(out.freeze()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Tagged<V>, SerdeError> {
        let data = data.ok_or(SerdeError::Null {
            expected: "tagged table change",
        })?;
        let Some((tag, rest)) = data.split_first() else {
            return Err(SerdeError::Length {
                expected: "tagged table change",
                len: 0,
                needs: 1,
            });
        };
        Ok(Tagged {
            add: *tag == b'+',
            value: self.0.deserialize(Some(rest))?,
        })
    }
}

/// A table re-keyed for aggregation.
pub struct KGroupedTable<K, V> {
    stream: KStream<K, Tagged<V>>,
    grouped: Grouped<K, V>,
}

impl<K: 'static, V: 'static> std::fmt::Debug for KGroupedTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KGroupedTable")
    }
}

/// Re-keys a table row.
pub(crate) type Selector<K0, V0, K, V> = Arc<dyn Fn(&K0, &V0) -> (K, V) + Send + Sync>;

type TableAggregator<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

struct TableAggregate<K, V, VA> {
    store_name: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    agg_serde: SerdeRef<VA>,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    adder: TableAggregator<K, V, VA>,
    subtractor: TableAggregator<K, V, VA>,
    down: Downstream<K, Change<VA>>,
}

impl<K: 'static, V: 'static, VA: 'static> Lifecycle for TableAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::KeyValue)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, Tagged<V>>
    for TableAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, Tagged<V>>) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let key = to_store_bytes(&self.key_serde, &record.key, &self.store_name)?;
        let old_bytes = store.borrow().get(&key)?;
        let old = match old_bytes {
            Some(b) => Some(from_store_bytes(&self.agg_serde, &b, &self.store_name)?),
            None => None,
        };
        let base = old.clone().unwrap_or_else(|| (self.init)());
        let new = if record.value.add {
            (self.adder)(&record.key, &record.value.value, base)
        } else {
            (self.subtractor)(&record.key, &record.value.value, base)
        };
        let bytes = to_store_bytes(&self.agg_serde, &new, &self.store_name)?;
        store.borrow_mut().put(&key, &bytes)?;
        self.down.forward(
            ctx,
            Record::new(
                record.key,
                Change {
                    new: Some(new),
                    old,
                },
                record.timestamp,
            ),
        )
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedTable<K, V> {
    pub(crate) fn from_table<K0: Clone + 'static, V0: Clone + 'static>(
        table: &KTable<K0, V0>,
        selector: Selector<K0, V0, K, V>,
        grouped: Grouped<K, V>,
    ) -> Self {
        let changes: KStream<K0, Change<V0>> = KStream::root(table.graph.clone(), table.group);
        let children = changes.children.clone();
        table.attach(move |inst| {
            Ok(super::nodes::FnNode::new(
                Arc::new(
                    |ctx: &mut ProcessorContext,
                     r: Record<K0, Change<V0>>,
                     down: &Downstream<K0, Change<V0>>| down.forward(ctx, r),
                ),
                children.instantiate(inst)?,
            ))
        });
        let tagged: KStream<K, Tagged<V>> = changes.flat_map(move |k, change: Change<V0>| {
            // Subtract the old row before adding the new one, as Kafka does.
            let mut out = Vec::with_capacity(2);
            if let Some(old) = &change.old {
                let (k2, v2) = selector(&k, old);
                out.push((
                    k2,
                    Tagged {
                        add: false,
                        value: v2,
                    },
                ));
            }
            if let Some(new) = &change.new {
                let (k2, v2) = selector(&k, new);
                out.push((
                    k2,
                    Tagged {
                        add: true,
                        value: v2,
                    },
                ));
            }
            out
        });
        let tagged_serde: SerdeRef<Tagged<V>> = Arc::new(TaggedSerde(grouped.value_serde.clone()));
        let mut through = Grouped::with(grouped.key_serde.clone(), tagged_serde);
        through.name = grouped.name.clone();
        let stream = tagged.repartition(through);
        KGroupedTable { stream, grouped }
    }

    /// Folds rows per key: `adder` for new rows, `subtractor` for replaced or deleted ones.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let graph = &self.stream.graph;
        let store = materialized.name_or(graph, "table-aggregate");
        graph.use_store(&store, self.stream.group);
        let agg_serde = materialized.value_serde.clone().unwrap_or(agg_serde);
        let key_serde = self.grouped.key_serde.clone();
        let table = KTable::root(
            graph.clone(),
            self.stream.group,
            store.clone(),
            key_serde.clone(),
            agg_serde.clone(),
        );
        let children = table.children.clone();
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(init);
        let adder: TableAggregator<K, V, VA> = Arc::new(adder);
        let subtractor: TableAggregator<K, V, VA> = Arc::new(subtractor);
        self.stream.attach(move |inst| {
            Ok(TableAggregate {
                store_name: store.clone(),
                store: None,
                key_serde: key_serde.clone(),
                agg_serde: agg_serde.clone(),
                init: init.clone(),
                adder: adder.clone(),
                subtractor: subtractor.clone(),
                down: children.instantiate(inst)?,
            })
        });
        table
    }

    /// Rows per key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate(
            || 0,
            |_, _, n| n + 1,
            |_, _, n| n - 1,
            Serdes::i64(),
            materialized,
        )
    }

    /// `adder(aggregate, value)` for new rows and `subtractor(aggregate, value)` for old ones.
    pub fn reduce(
        &self,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        init: impl Fn() -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let serde = self.grouped.value_serde.clone();
        self.aggregate(
            init,
            move |_, v, agg| adder(&agg, v),
            move |_, v, agg| subtractor(&agg, v),
            serde,
            materialized,
        )
    }
}
