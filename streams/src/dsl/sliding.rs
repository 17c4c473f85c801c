//! Sliding windows (Kafka's `SlidingWindows`, KIP-450): windows of a fixed time difference
//! whose bounds follow the records. Every record at `t` has a window ending at it,
//! `[t - d, t]`, and a window starting just after it, `[t + 1, t + 1 + d]`, if that one holds
//! a record; both bounds are inclusive. A window closes when stream time passes
//! `end + grace`; a record whose windows have all closed (`t + d + grace < stream time`) is
//! dropped as late.
//!
//! This implementation keeps each key's raw records for `2d + grace` and recomputes the
//! aggregate of every window a record touches from them: exact for any aggregator, at a cost
//! that grows with the number of records per key within `2d`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Grouped, Materialized};
use super::nodes::{from_store_bytes, to_store_bytes};
use super::stream::KStream;
use super::table::{Change, KTable};
use super::window::{EmitStrategy, Window, Windowed, WindowedSerde};
use crate::error::{Error, Result};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::{SerdeRef, Serdes};
use crate::store::keys::{session_prefix, split_window_key, time_bytes, time_from, window_key};
use crate::store::{StateStore, StoreKind};

/// Sliding windows of `time_difference` ms (inclusive) with `grace` ms for late records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Largest time difference between two records of a window, ms.
    pub time_difference: i64,
    /// How long after a window's end records are still accepted, ms.
    pub grace: i64,
}

impl SlidingWindows {
    /// `SlidingWindows.ofTimeDifferenceAndGrace`.
    pub fn of_time_difference_and_grace(time_difference: i64, grace: i64) -> Result<Self> {
        if time_difference <= 0 || grace < 0 {
            return Err(Error::Topology {
                reason: format!(
                    "sliding window difference must be positive and grace not negative, got {time_difference} and {grace}"
                ),
            });
        }
        Ok(SlidingWindows {
            time_difference,
            grace,
        })
    }

    /// `SlidingWindows.ofTimeDifferenceWithNoGrace`.
    pub fn of_time_difference_with_no_grace(time_difference: i64) -> Result<Self> {
        Self::of_time_difference_and_grace(time_difference, 0)
    }
}

type Adder<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

struct SlidingAggregate<K, V, VA> {
    records_name: String,
    windows_name: String,
    records: Option<Rc<RefCell<StateStore>>>,
    windows: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    agg_serde: SerdeRef<VA>,
    spec: SlidingWindows,
    emit: EmitStrategy,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    adder: Adder<K, V, VA>,
    down: Downstream<Windowed<K>, Change<VA>>,
    expired_at: i64,
}

impl<K, V, VA> Lifecycle for SlidingAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.records = Some(ctx.store(&self.records_name, StoreKind::Session)?);
        self.windows = Some(ctx.store(&self.windows_name, StoreKind::Window)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> SlidingAggregate<K, V, VA> {
    /// Emits (on close) and removes closed windows; drops raw records no window needs.
    fn close(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        let (Some(windows), Some(records)) = (self.windows.clone(), self.records.clone()) else {
            return Ok(());
        };
        let st = ctx.stream_time();
        let d = self.spec.time_difference;
        // Closed: end + grace < st, i.e. start < st - grace - d.
        let bound = time_bytes(st.saturating_sub(self.spec.grace + d));
        let closed = windows
            .borrow()
            .range(Bound::Unbounded, Bound::Excluded(&bound[..]))?;
        for (stored, value) in closed {
            let Some((start, key_bytes)) = split_window_key(&stored) else {
                continue;
            };
            if self.emit == EmitStrategy::OnWindowClose {
                let key = self
                    .key_serde
                    .deserialize(Some(key_bytes))
                    .map_err(|source| Error::Serialization {
                        topic: self.windows_name.clone(),
                        source,
                    })?;
                let agg = from_store_bytes(&self.agg_serde, &value, &self.windows_name)?;
                self.down.forward(
                    ctx,
                    Record::new(
                        Windowed {
                            key,
                            window: Window {
                                start,
                                end: start + d,
                            },
                        },
                        Change {
                            new: Some(agg),
                            old: None,
                        },
                        start + d,
                    ),
                )?;
            }
            windows.borrow_mut().delete(&stored)?;
        }
        let retention = 2 * d + self.spec.grace + 1;
        if st.saturating_sub(self.expired_at) > retention {
            let cutoff = st.saturating_sub(retention);
            let all = records.borrow().all()?;
            for (stored, _) in all {
                let n = stored.len();
                if n >= 16 {
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&stored[n - 16..n - 8]);
                    if time_from(t) < cutoff {
                        records.borrow_mut().delete(&stored)?;
                    }
                }
            }
            self.expired_at = st;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, V>
    for SlidingAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let (Some(records), Some(windows)) = (self.records.clone(), self.windows.clone()) else {
            return Ok(());
        };
        let (t, d, grace) = (record.timestamp, self.spec.time_difference, self.spec.grace);
        let st = ctx.stream_time();
        if t.saturating_add(d).saturating_add(grace) < st {
            ctx.record_late_drop();
            return self.close(ctx);
        }
        let key = to_store_bytes(&self.key_serde, &record.key, &self.records_name)?;
        let value = to_store_bytes(&self.value_serde, &record.value, &self.records_name)?;
        let mut prefix = Vec::new();
        session_prefix(&key, &mut prefix);
        let mut stored = prefix.clone();
        stored.extend_from_slice(&time_bytes(t));
        stored.extend_from_slice(&ctx.offset().to_be_bytes());
        records.borrow_mut().put(&stored, &value)?;
        // This key's records that any affected window can hold.
        let mut from = prefix.clone();
        from.extend_from_slice(&time_bytes(t.saturating_sub(2 * d + 1)));
        let mut to = prefix;
        to.extend_from_slice(&time_bytes(t.saturating_add(2 * d + 2)));
        let mut near: Vec<(i64, V)> = Vec::new();
        for (k, v) in records
            .borrow()
            .range(Bound::Included(&from[..]), Bound::Excluded(&to[..]))?
        {
            let n = k.len();
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&k[n - 16..n - 8]);
            near.push((
                time_from(ts),
                from_store_bytes(&self.value_serde, &v, &self.records_name)?,
            ));
        }
        near.sort_by_key(|(ts, _)| *ts);
        // Windows whose contents changed: left windows [r - d, r] with r in [t, t + d], right
        // windows [r + 1, r + 1 + d] with r in [t - d - 1, t - 1], and t's own right window.
        let mut starts = BTreeMap::new();
        for (r, _) in &near {
            if (t..=t + d).contains(r) {
                starts.insert(r - d, ());
            }
            if (t - d - 1..t).contains(r) {
                starts.insert(r + 1, ());
            }
        }
        starts.insert(t + 1, ());
        let mut buf = Vec::new();
        for start in starts.into_keys() {
            let end = start + d;
            if end + grace < st {
                continue;
            }
            let mut agg: Option<VA> = None;
            for (r, v) in &near {
                if (start..=end).contains(r) {
                    let base = agg.take().unwrap_or_else(|| (self.init)());
                    agg = Some((self.adder)(&record.key, v, base));
                }
            }
            let Some(agg) = agg else {
                continue;
            };
            window_key(start, &key, &mut buf);
            let old_bytes = windows.borrow().get(&buf)?;
            let old = match old_bytes {
                Some(b) => Some(from_store_bytes(&self.agg_serde, &b, &self.windows_name)?),
                None => None,
            };
            let bytes = to_store_bytes(&self.agg_serde, &agg, &self.windows_name)?;
            if old_bytes_equal(&old, &bytes, &self.agg_serde, &self.windows_name)? {
                continue;
            }
            windows.borrow_mut().put(&buf, &bytes)?;
            if self.emit == EmitStrategy::OnWindowUpdate {
                self.down.forward(
                    ctx,
                    Record::new(
                        Windowed {
                            key: record.key.clone(),
                            window: Window { start, end },
                        },
                        Change {
                            new: Some(agg),
                            old,
                        },
                        t.max(start),
                    ),
                )?;
            }
        }
        self.close(ctx)
    }
}

/// Whether the stored aggregate already equals `bytes` (an unchanged window is not re-emitted).
fn old_bytes_equal<VA: 'static>(
    old: &Option<VA>,
    bytes: &[u8],
    serde: &SerdeRef<VA>,
    store: &str,
) -> Result<bool> {
    match old {
        Some(o) => Ok(to_store_bytes(serde, o, store)?[..] == *bytes),
        None => Ok(false),
    }
}

/// A grouped stream over sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    windows: SlidingWindows,
    emit: EmitStrategy,
}

impl<K, V> std::fmt::Debug for SlidingWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindowedKStream")
            .field("windows", &self.windows)
            .finish()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> SlidingWindowedKStream<K, V> {
    pub(crate) fn new(
        stream: KStream<K, V>,
        grouped: Grouped<K, V>,
        windows: SlidingWindows,
    ) -> Self {
        SlidingWindowedKStream {
            stream,
            grouped,
            windows,
            emit: EmitStrategy::default(),
        }
    }

    /// When results are emitted.
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Folds values per key and window into `init()`.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<Windowed<K>, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let graph = &self.stream.graph;
        let store = materialized.name_or(graph, "sliding-aggregate");
        let records = format!("{store}-records");
        graph.use_store(&store, self.stream.group);
        graph.use_store(&records, self.stream.group);
        let agg_serde = materialized.value_serde.clone().unwrap_or(agg_serde);
        let key_serde = self.grouped.key_serde.clone();
        let value_serde = self.grouped.value_serde.clone();
        let table = KTable::root(
            graph.clone(),
            self.stream.group,
            store.clone(),
            WindowedSerde::time(key_serde.clone(), self.windows.time_difference),
            agg_serde.clone(),
        );
        let children = table.children.clone();
        let (spec, emit) = (self.windows, self.emit);
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(init);
        let adder: Adder<K, V, VA> = Arc::new(adder);
        self.stream.attach(move |inst| {
            Ok(SlidingAggregate {
                records_name: records.clone(),
                windows_name: store.clone(),
                records: None,
                windows: None,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                agg_serde: agg_serde.clone(),
                spec,
                emit,
                init: init.clone(),
                adder: adder.clone(),
                down: children.instantiate(inst)?,
                expired_at: i64::MIN,
            })
        });
        table
    }

    /// Records per key and window.
    pub fn count(&self, materialized: Materialized<Windowed<K>, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate(|| 0, |_, _, n| n + 1, Serdes::i64(), materialized)
    }
}
