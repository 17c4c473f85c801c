//! Joins of a stream with a table, a global table, or another stream.

use std::sync::Arc;

use super::config::{Grouped, Joined};
use super::stream::KStream;
use super::table::{Getter, GlobalKTable, KTable};
use crate::error::{Error, Result};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};

/// How far apart in time two streams' records may be to join: the other side's record at
/// `t'` joins this side's record at `t` when `t - before <= t' <= t + after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// ms before.
    pub before: i64,
    /// ms after.
    pub after: i64,
    /// How long after the window records are still accepted (and left/outer results without
    /// a match are held back), ms.
    pub grace: i64,
}

impl JoinWindows {
    /// `JoinWindows.ofTimeDifferenceAndGrace`: symmetric `difference`.
    pub fn of_time_difference_and_grace(difference: i64, grace: i64) -> Result<Self> {
        if difference < 0 || grace < 0 {
            return Err(Error::Topology {
                reason: format!(
                    "join window difference and grace must not be negative, got {difference} and {grace}"
                ),
            });
        }
        Ok(JoinWindows {
            before: difference,
            after: difference,
            grace,
        })
    }

    /// `JoinWindows.ofTimeDifferenceWithNoGrace`.
    pub fn of_time_difference_with_no_grace(difference: i64) -> Result<Self> {
        Self::of_time_difference_and_grace(difference, 0)
    }

    /// Only `after` ms after (`before` is kept).
    pub fn after(mut self, after: i64) -> Self {
        self.after = after;
        self
    }

    /// Only `before` ms before (`after` is kept).
    pub fn before(mut self, before: i64) -> Self {
        self.before = before;
        self
    }
}

type StreamTableJoiner<K, V, VT, VR> = Arc<dyn Fn(&K, &V, Option<&VT>) -> Option<VR> + Send + Sync>;

/// Looks each stream record's key up in a table's store.
struct StreamTableJoin<K, V, VT, VR> {
    table: Getter<K, VT>,
    global: bool,
    joiner: StreamTableJoiner<K, V, VT, VR>,
    down: Downstream<K, VR>,
}

impl<K: 'static, V: 'static, VT: 'static, VR: 'static> Lifecycle for StreamTableJoin<K, V, VT, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        if self.global {
            self.table.store = Some(ctx.global_store(&self.table.store_name)?);
            Ok(())
        } else {
            self.table.init(ctx)
        }
    }
}

impl<K: Clone + 'static, V: 'static, VT: 'static, VR: Clone + 'static> Processor<K, V>
    for StreamTableJoin<K, V, VT, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let found = self.table.get(&record.key)?;
        match (self.joiner)(&record.key, &record.value, found.as_ref()) {
            Some(out) => self
                .down
                .forward(ctx, Record::new(record.key, out, record.timestamp)),
            None => Ok(()),
        }
    }
}

type Mapper<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;

type GlobalJoiner<K, V, VG, VR> = Arc<dyn Fn(&K, &V, Option<&VG>) -> Option<VR> + Send + Sync>;

/// Looks a key derived from each stream record up in a global table.
struct StreamGlobalJoin<K, V, KG, VG, VR> {
    table: Getter<KG, VG>,
    mapper: Mapper<K, V, KG>,
    joiner: GlobalJoiner<K, V, VG, VR>,
    down: Downstream<K, VR>,
}

impl<K: 'static, V: 'static, KG: 'static, VG: 'static, VR: 'static> Lifecycle
    for StreamGlobalJoin<K, V, KG, VG, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.table.store = Some(ctx.global_store(&self.table.store_name)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, KG: 'static, VG: 'static, VR: Clone + 'static> Processor<K, V>
    for StreamGlobalJoin<K, V, KG, VG, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let key = (self.mapper)(&record.key, &record.value);
        let found = self.table.get(&key)?;
        match (self.joiner)(&record.key, &record.value, found.as_ref()) {
            Some(out) => self
                .down
                .forward(ctx, Record::new(record.key, out, record.timestamp)),
            None => Ok(()),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    fn table_join<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        joiner: StreamTableJoiner<K, V, VT, VR>,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        let stream = if self.key_changed {
            let mut grouped = Grouped::with(joined.key_serde.clone(), joined.value_serde.clone());
            grouped.name = joined.name.clone();
            self.repartition(grouped)
        } else {
            self.clone()
        };
        stream.graph.copartition(stream.group, table.group);
        stream.graph.union(stream.group, table.group);
        let getter = (
            table.store.clone(),
            table.key_serde.clone(),
            table.value_serde.clone(),
        );
        stream.add_node(
            move |down| StreamTableJoin {
                table: Getter::new(&getter.0, getter.1.clone(), getter.2.clone()),
                global: false,
                joiner: joiner.clone(),
                down,
            },
            false,
        )
    }

    /// Joins each record with the table's current value for its key; records without one
    /// are dropped. The stream is repartitioned first if its key changed.
    pub fn join_table<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        self.table_join(
            table,
            Arc::new(move |_, v, t| t.map(|t| joiner(v, t))),
            joined,
        )
    }

    /// Like [`join_table`](Self::join_table), but records without a table value are kept
    /// (the joiner sees `None`).
    pub fn left_join_table<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        self.table_join(table, Arc::new(move |_, v, t| Some(joiner(v, t))), joined)
    }

    fn global_join<KG: 'static, VG: 'static, VR: Clone + 'static>(
        &self,
        table: &GlobalKTable<KG, VG>,
        mapper: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: GlobalJoiner<K, V, VG, VR>,
    ) -> KStream<K, VR> {
        let getter = (
            table.store.clone(),
            table.key_serde.clone(),
            table.value_serde.clone(),
        );
        let mapper: Mapper<K, V, KG> = Arc::new(mapper);
        self.add_node(
            move |down| StreamGlobalJoin {
                table: Getter::new(&getter.0, getter.1.clone(), getter.2.clone()),
                mapper: mapper.clone(),
                joiner: joiner.clone(),
                down,
            },
            self.key_changed,
        )
    }

    /// Joins with a global table through a key derived by `mapper`; records without a match
    /// are dropped. No co-partitioning needed.
    pub fn join_global<KG: 'static, VG: 'static, VR: Clone + 'static>(
        &self,
        table: &GlobalKTable<KG, VG>,
        mapper: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            mapper,
            Arc::new(move |_, v, g| g.map(|g| joiner(v, g))),
        )
    }

    /// Like [`join_global`](Self::join_global), keeping records without a match.
    pub fn left_join_global<KG: 'static, VG: 'static, VR: Clone + 'static>(
        &self,
        table: &GlobalKTable<KG, VG>,
        mapper: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, mapper, Arc::new(move |_, v, g| Some(joiner(v, g))))
    }
}
