//! The DSL: [`StreamsBuilder`] yields [`KStream`]s and [`KTable`]s whose operators add nodes to
//! the topology graph.

mod config;
mod fk_join;
mod grouped;
mod join;
mod nodes;
mod sliding;
mod stream;
mod stream_join;
mod table;
mod window;

use std::sync::Arc;

pub use self::config::{
    Consumed, Grouped, Joined, Materialized, Produced, StreamPartitioner, TimestampExtractor,
};
pub use self::grouped::{KGroupedStream, KGroupedTable};
pub use self::join::JoinWindows;
pub use self::sliding::{SlidingWindowedKStream, SlidingWindows};
pub use self::stream::{BranchedKStream, KStream};
pub use self::table::{Change, GlobalKTable, KTable};
pub use self::window::{
    EmitStrategy, SessionWindowedKStream, SessionWindows, TimeWindowedKStream, TimeWindows, Window,
    Windowed, WindowedSerde,
};

use self::nodes::{SourceNode, TableSource};

/// A key's bytes as stores keep them.
pub(crate) fn store_key<K: 'static>(
    serde: &crate::serdes::SerdeRef<K>,
    key: &K,
    store: &str,
) -> Result<bytes::Bytes> {
    nodes::to_store_bytes(serde, key, store)
}
use crate::error::Result;
use crate::topology::{Graph, Topology};

/// Builds a topology with the DSL.
#[derive(Debug, Clone, Default)]
pub struct StreamsBuilder {
    graph: Graph,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The graph, for processors added by hand.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// A stream of the records of `topic`.
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let group = self.graph.new_group();
        let stream = KStream::root(self.graph.clone(), group);
        let children = stream.children.clone();
        let id = self.graph.next_id();
        let consumed = Arc::new(consumed);
        self.graph.add_source(
            topic,
            group,
            Arc::new(move |inst| {
                let children = children.clone();
                let consumed = consumed.clone();
                inst.node(id, move |inst| {
                    Ok(SourceNode::new(consumed, children.instantiate(inst)?))
                })
            }),
        );
        stream
    }

    /// A table of the latest value per key of `topic` (null values delete), kept in store
    /// `materialized`'s name (or a generated one).
    pub fn table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let group = self.graph.new_group();
        let store = materialized.name_or(&self.graph, "table");
        self.graph.use_store(&store, group);
        let table = KTable::root(
            self.graph.clone(),
            group,
            store.clone(),
            consumed.key_serde.clone(),
            consumed.value_serde.clone(),
        );
        let children = table.children.clone();
        let id = self.graph.next_id();
        let consumed = Arc::new(consumed);
        self.graph.add_source(
            topic,
            group,
            Arc::new(move |inst| {
                let children = children.clone();
                let consumed = consumed.clone();
                let store = store.clone();
                inst.node(id, move |inst| {
                    Ok(TableSource::new(
                        consumed,
                        store,
                        children.instantiate(inst)?,
                    ))
                })
            }),
        );
        table
    }

    /// A table of all partitions of `topic`, replicated to every instance (joins need no
    /// co-partitioning). Its store is read-only to processors.
    pub fn global_table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let store = materialized.name_or(&self.graph, "global");
        self.graph.add_global(topic, &store);
        GlobalKTable::new(store, consumed.key_serde, consumed.value_serde)
    }

    /// The topology built so far.
    pub fn build(&self) -> Result<Topology> {
        self.graph.build()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod close_tests;

#[cfg(test)]
mod join_tests;
