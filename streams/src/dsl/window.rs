//! Windows on event time: tumbling and hopping ([`TimeWindows`]) and sessions
//! ([`SessionWindows`]), the windowed aggregations, and when their results are emitted.
//!
//! Semantics follow Kafka Streams: a time window is `[start, start + size)` with starts at
//! multiples of `advance`; a window closes when stream time reaches `end + grace`, and a record
//! for a closed window is dropped and counted as late. A session holds a key's records no more
//! than `gap` apart, `[first, last]` inclusive; a record within `gap` of sessions merges them;
//! a session is late when `end < stream time - grace`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::config::{Grouped, Materialized};
use super::grouped::Aggregator;
use super::nodes::{from_store_bytes, to_store_bytes};
use super::stream::KStream;
use super::table::{Change, KTable};
use crate::error::{Error, Result, SerdeError};
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::{Serde, SerdeRef, Serdes};
use crate::store::keys::{
    session_key, session_prefix, split_session_key, split_window_key, time_bytes, window_key,
};
use crate::store::{StateStore, StoreKind};

/// Fixed-size windows: tumbling (`advance == size`) or hopping (`advance < size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window length, ms.
    pub size: i64,
    /// Distance between window starts, ms.
    pub advance: i64,
    /// How long after a window's end records are still accepted, ms.
    pub grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` ms with `grace` ms for out-of-order records
    /// (`TimeWindows.ofSizeAndGrace`).
    pub fn of_size_and_grace(size: i64, grace: i64) -> Result<Self> {
        let w = TimeWindows {
            size,
            advance: size,
            grace,
        };
        w.validate()?;
        Ok(w)
    }

    /// Tumbling windows with no grace (`TimeWindows.ofSizeWithNoGrace`).
    pub fn of_size_with_no_grace(size: i64) -> Result<Self> {
        Self::of_size_and_grace(size, 0)
    }

    /// Hopping windows advancing by `advance` ms.
    pub fn advance_by(mut self, advance: i64) -> Result<Self> {
        self.advance = advance;
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Topology { reason });
        if self.size <= 0 {
            return bad(format!("window size must be positive, got {}", self.size));
        }
        if self.advance <= 0 || self.advance > self.size {
            return bad(format!(
                "window advance must be in (0, size = {}], got {}",
                self.size, self.advance
            ));
        }
        if self.grace < 0 {
            return bad(format!("grace must not be negative, got {}", self.grace));
        }
        Ok(())
    }

    /// Starts of the windows containing `ts`, in order (Kafka's `windowsFor`).
    pub fn window_starts(&self, ts: i64) -> impl Iterator<Item = i64> + use<> {
        let first = (ts - self.size + self.advance).max(0);
        let first = first - first.rem_euclid(self.advance);
        let advance = self.advance;
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |s| *s <= ts)
    }
}

/// Session windows: activity separated by gaps of inactivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Records further apart than this start a new session, ms.
    pub gap: i64,
    /// How long after a session's end records are still accepted, ms.
    pub grace: i64,
}

impl SessionWindows {
    /// `SessionWindows.ofInactivityGapAndGrace`.
    pub fn of_inactivity_gap_and_grace(gap: i64, grace: i64) -> Result<Self> {
        if gap <= 0 || grace < 0 {
            return Err(Error::Topology {
                reason: format!(
                    "session gap must be positive and grace not negative, got {gap} and {grace}"
                ),
            });
        }
        Ok(SessionWindows { gap, grace })
    }
}

/// When windowed results go downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update of a window (Kafka's default).
    #[default]
    OnWindowUpdate,
    /// Once, when the window closes (`EmitStrategy.onWindowClose()`, or
    /// `suppress(untilWindowCloses)`).
    OnWindowClose,
}

/// A window's bounds (`end` exclusive for time windows, inclusive for sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Start, ms.
    pub start: i64,
    /// End, ms.
    pub end: i64,
}

/// A key within a window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// Windowed keys as Kafka's `TimeWindowedSerializer` writes them: key bytes, then the start as
/// 8 big-endian bytes (the end is start + `size`). For sessions the end follows as well.
pub struct WindowedSerde<K> {
    inner: SerdeRef<K>,
    /// `Some(size)`: time windows (end = start + size); `None`: sessions (end written).
    size: Option<i64>,
}

impl<K: 'static> std::fmt::Debug for WindowedSerde<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedSerde")
            .field("size", &self.size)
            .finish()
    }
}

impl<K: 'static> WindowedSerde<K> {
    /// For time windows of `size` ms.
    pub fn time(inner: SerdeRef<K>, size: i64) -> SerdeRef<Windowed<K>> {
        Arc::new(WindowedSerde {
            inner,
            size: Some(size),
        })
    }

    /// For session windows (Kafka's `SessionWindowedSerializer`: key, end, start).
    pub fn session(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
        Arc::new(WindowedSerde { inner, size: None })
    }
}

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(&value.key)?.unwrap_or_default();
        let mut out = BytesMut::with_capacity(key.len() + 16);
        out.put_slice(&key);
        match self.size {
            Some(_) => out.put_i64(value.window.start),
            None => {
                out.put_i64(value.window.end);
                out.put_i64(value.window.start);
            }
        }
        Ok(Some(out.freeze()))
    }

    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let data = data.ok_or(SerdeError::Null {
            expected: "windowed key",
        })?;
        let tail = if self.size.is_some() { 8 } else { 16 };
        if data.len() < tail {
            return Err(SerdeError::Length {
                expected: "windowed key",
                len: data.len(),
                needs: tail,
            });
        }
        let (key, times) = data.split_at(data.len() - tail);
        let word = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            i64::from_be_bytes(a)
        };
        let window = match self.size {
            Some(size) => {
                let start = word(times);
                Window {
                    start,
                    end: start + size,
                }
            }
            None => Window {
                end: word(&times[..8]),
                start: word(&times[8..]),
            },
        };
        Ok(Windowed {
            key: self.inner.deserialize(Some(key))?,
            window,
        })
    }
}

/// A grouped stream over time windows.
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    windows: TimeWindows,
    emit: EmitStrategy,
}

impl<K: 'static, V: 'static> std::fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindowedKStream")
            .field("windows", &self.windows)
            .field("emit", &self.emit)
            .finish()
    }
}

struct TimeWindowAggregate<K, V, VA> {
    store_name: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    agg_serde: SerdeRef<VA>,
    windows: TimeWindows,
    retention: i64,
    emit: EmitStrategy,
    aggregator: Aggregator<K, V, VA>,
    down: Downstream<Windowed<K>, Change<VA>>,
    /// Windows starting at or before this were closed (emitted or expired) already.
    closed_through: i64,
    /// Every window starting below this has been removed (`i64::MIN`: not scanned yet).
    scanned_below: i64,
    buf: Vec<u8>,
}

impl<K: 'static, V: 'static, VA: 'static> Lifecycle for TimeWindowAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::Window)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> TimeWindowAggregate<K, V, VA> {
    /// Emits (on close) and removes windows past their close time or retention.
    fn close_windows(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let st = ctx.stream_time();
        if st == i64::MIN {
            return Ok(());
        }
        // Close time of a window: start + size + grace <= stream time.
        let horizon = match self.emit {
            EmitStrategy::OnWindowClose => self.windows.size + self.windows.grace,
            EmitStrategy::OnWindowUpdate => self.retention,
        };
        // Windows with start + horizon <= stream time; scanned once per newly closed start.
        let cutoff = st.saturating_sub(horizon);
        let aligned = cutoff - cutoff.rem_euclid(self.windows.advance);
        if aligned <= self.closed_through {
            return Ok(());
        }
        let bound = time_bytes(cutoff.saturating_add(1));
        // Windows below the last scan's bound are gone already; starting there keeps the scan
        // off the backend's tombstones of every window closed so far.
        let from = time_bytes(self.scanned_below);
        let lower = if self.scanned_below == i64::MIN {
            Bound::Unbounded
        } else {
            Bound::Included(&from[..])
        };
        let closed = store.borrow().range(lower, Bound::Excluded(&bound[..]))?;
        for (stored, value) in closed {
            let Some((start, key_bytes)) = split_window_key(&stored) else {
                continue;
            };
            if self.emit == EmitStrategy::OnWindowClose {
                let key = self
                    .key_serde
                    .deserialize(Some(key_bytes))
                    .map_err(|source| Error::Serialization {
                        topic: self.store_name.clone(),
                        source,
                    })?;
                let agg = from_store_bytes(&self.agg_serde, &value, &self.store_name)?;
                let windowed = Windowed {
                    key,
                    window: Window {
                        start,
                        end: start + self.windows.size,
                    },
                };
                ctx.timestamp = start + self.windows.size - 1;
                self.down.forward(
                    ctx,
                    Record::new(
                        windowed,
                        Change {
                            new: Some(agg),
                            old: None,
                        },
                        start + self.windows.size - 1,
                    ),
                )?;
            }
            store.borrow_mut().delete(&stored)?;
        }
        self.closed_through = aligned;
        self.scanned_below = cutoff.saturating_add(1);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, V>
    for TimeWindowAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let key_bytes = to_store_bytes(&self.key_serde, &record.key, &self.store_name)?;
        let close_time = ctx.stream_time().saturating_sub(self.windows.grace);
        for start in self.windows.window_starts(record.timestamp) {
            let end = start + self.windows.size;
            if end <= close_time {
                ctx.record_late_drop();
                tracing::debug!(
                    store = %self.store_name,
                    timestamp = record.timestamp,
                    window_start = start,
                    stream_time = ctx.stream_time(),
                    "dropping a record for a closed window"
                );
                continue;
            }
            window_key(start, &key_bytes, &mut self.buf);
            let old_bytes = store.borrow().get(&self.buf)?;
            let old = match old_bytes {
                Some(b) => Some(from_store_bytes(&self.agg_serde, &b, &self.store_name)?),
                None => None,
            };
            let new = (self.aggregator)(&record.key, &record.value, old.clone());
            let bytes = to_store_bytes(&self.agg_serde, &new, &self.store_name)?;
            store.borrow_mut().put(&self.buf, &bytes)?;
            if self.emit == EmitStrategy::OnWindowUpdate {
                let windowed = Windowed {
                    key: record.key.clone(),
                    window: Window { start, end },
                };
                self.down.forward(
                    ctx,
                    Record::new(
                        windowed,
                        Change {
                            new: Some(new),
                            old,
                        },
                        record.timestamp,
                    ),
                )?;
            }
        }
        self.close_windows(ctx)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> TimeWindowedKStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>, windows: TimeWindows) -> Self {
        TimeWindowedKStream {
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

    fn aggregate_with<VA: Clone + 'static>(
        &self,
        aggregator: Aggregator<K, V, VA>,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<Windowed<K>, VA>,
        what: &str,
    ) -> Result<KTable<Windowed<K>, VA>> {
        let graph = &self.stream.graph;
        let store = materialized.name_or(graph, what);
        graph.use_store(&store, self.stream.group);
        let agg_serde = materialized.value_serde.clone().unwrap_or(agg_serde);
        let retention = materialized
            .retention
            .unwrap_or(self.windows.size + self.windows.grace);
        if retention < self.windows.size + self.windows.grace {
            return Err(Error::Topology {
                reason: format!(
                    "retention of {store} ({retention} ms) is shorter than window size + grace"
                ),
            });
        }
        let key_serde = self.grouped.key_serde.clone();
        let table = KTable::root(
            graph.clone(),
            self.stream.group,
            store.clone(),
            WindowedSerde::time(key_serde.clone(), self.windows.size),
            agg_serde.clone(),
        );
        let children = table.children.clone();
        let (windows, emit) = (self.windows, self.emit);
        self.stream.attach(move |inst| {
            Ok(TimeWindowAggregate {
                store_name: store.clone(),
                store: None,
                key_serde: key_serde.clone(),
                agg_serde: agg_serde.clone(),
                windows,
                retention,
                emit,
                aggregator: aggregator.clone(),
                down: children.instantiate(inst)?,
                closed_through: i64::MIN,
                scanned_below: i64::MIN,
                buf: Vec::new(),
            })
        });
        Ok(table)
    }

    /// Records per key and window.
    pub fn count(
        &self,
        materialized: Materialized<Windowed<K>, i64>,
    ) -> Result<KTable<Windowed<K>, i64>> {
        self.aggregate_with(
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            Serdes::i64(),
            materialized,
            "windowed-count",
        )
    }

    /// `reducer(aggregate, value)` per key and window.
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<Windowed<K>, V>,
    ) -> Result<KTable<Windowed<K>, V>> {
        self.aggregate_with(
            Arc::new(move |_, v: &V, agg: Option<V>| match agg {
                Some(a) => reducer(&a, v),
                None => v.clone(),
            }),
            self.grouped.value_serde.clone(),
            materialized,
            "windowed-reduce",
        )
    }

    /// Folds values per key and window into `init()`.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<Windowed<K>, VA>,
    ) -> Result<KTable<Windowed<K>, VA>> {
        self.aggregate_with(
            Arc::new(move |k, v, agg: Option<VA>| adder(k, v, agg.unwrap_or_else(&init))),
            agg_serde,
            materialized,
            "windowed-aggregate",
        )
    }
}

/// A grouped stream over session windows.
pub struct SessionWindowedKStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    windows: SessionWindows,
    emit: EmitStrategy,
}

impl<K: 'static, V: 'static> std::fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowedKStream")
            .field("windows", &self.windows)
            .finish()
    }
}

type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;
type Adder<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

struct SessionAggregate<K, V, VA> {
    store_name: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    agg_serde: SerdeRef<VA>,
    windows: SessionWindows,
    emit: EmitStrategy,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    adder: Adder<K, V, VA>,
    merger: Merger<K, VA>,
    down: Downstream<Windowed<K>, Change<VA>>,
    buf: Vec<u8>,
    /// Stream time of the last scan for closed sessions.
    scanned_at: i64,
    /// Emit-on-close: the stored sessions by end time, so closing costs what closes rather
    /// than a scan of the store (built from the store on first use, after any restore).
    by_end: Option<BTreeSet<(i64, Bytes)>>,
}

impl<K: 'static, V: 'static, VA: 'static> Lifecycle for SessionAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::Session)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> SessionAggregate<K, V, VA> {
    /// Emit-on-close: a session is final when stream time reaches `end + gap + grace` (no
    /// record can extend or merge it after that).
    fn close_sessions(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        if self.emit != EmitStrategy::OnWindowClose {
            return Ok(());
        }
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let st = ctx.stream_time();
        if st == i64::MIN || st == self.scanned_at {
            return Ok(());
        }
        self.scanned_at = st;
        let horizon = st.saturating_sub(self.windows.gap + self.windows.grace);
        let by_end = match &mut self.by_end {
            Some(index) => index,
            None => {
                let mut index = BTreeSet::new();
                for (stored, _) in store.borrow().all()? {
                    if let Some((_, _, end)) = split_session_key(&stored) {
                        index.insert((end, stored));
                    }
                }
                self.by_end.insert(index)
            }
        };
        let mut closed = Vec::new();
        while let Some(first) = by_end.first()
            && first.0 <= horizon
        {
            if let Some((_, stored)) = by_end.pop_first() {
                closed.push(stored);
            }
        }
        for stored in closed {
            let Some((key_bytes, start, end)) = split_session_key(&stored) else {
                continue;
            };
            let Some(value) = store.borrow().get(&stored)? else {
                continue;
            };
            let key = self
                .key_serde
                .deserialize(Some(key_bytes))
                .map_err(|source| Error::Serialization {
                    topic: self.store_name.clone(),
                    source,
                })?;
            let agg = from_store_bytes(&self.agg_serde, &value, &self.store_name)?;
            store.borrow_mut().delete(&stored)?;
            self.down.forward(
                ctx,
                Record::new(
                    Windowed {
                        key,
                        window: Window { start, end },
                    },
                    Change {
                        new: Some(agg),
                        old: None,
                    },
                    end,
                ),
            )?;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, V>
    for SessionAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let ts = record.timestamp;
        let key_bytes = to_store_bytes(&self.key_serde, &record.key, &self.store_name)?;
        let close_time = ctx.stream_time().saturating_sub(self.windows.grace);
        // Sessions of this key with end >= ts - gap and start <= ts + gap.
        session_prefix(&key_bytes, &mut self.buf);
        let mut from = self.buf.clone();
        from.extend_from_slice(&time_bytes(ts.saturating_sub(self.windows.gap)));
        let mut to = self.buf.clone();
        to.extend_from_slice(&[0xff; 17]);
        let candidates = store
            .borrow()
            .range(Bound::Included(&from[..]), Bound::Included(&to[..]))?;
        let mut merged = Vec::new();
        let (mut start, mut end) = (ts, ts);
        let mut agg = (self.init)();
        for (stored, value) in candidates {
            let Some((_, s, e)) = split_session_key(&stored) else {
                continue;
            };
            if s > ts.saturating_add(self.windows.gap) {
                continue;
            }
            let v = from_store_bytes(&self.agg_serde, &value, &self.store_name)?;
            agg = (self.merger)(&record.key, agg, v.clone());
            start = start.min(s);
            end = end.max(e);
            merged.push((stored, s, e, v));
        }
        if end < close_time {
            ctx.record_late_drop();
            return Ok(());
        }
        let emit_updates = self.emit == EmitStrategy::OnWindowUpdate;
        let grown = !(merged.len() == 1 && merged[0].1 == start && merged[0].2 == end);
        let mut old_same = None;
        for (stored, s, e, v) in merged {
            if s == start && e == end && !grown {
                old_same = Some(v);
                continue;
            }
            store.borrow_mut().delete(&stored)?;
            if let Some(index) = &mut self.by_end {
                index.remove(&(e, stored));
            }
            if emit_updates {
                self.down.forward(
                    ctx,
                    Record::new(
                        Windowed {
                            key: record.key.clone(),
                            window: Window { start: s, end: e },
                        },
                        Change {
                            new: None,
                            old: Some(v),
                        },
                        ts,
                    ),
                )?;
            }
        }
        let agg = (self.adder)(&record.key, &record.value, agg);
        session_key(&key_bytes, start, end, &mut self.buf);
        let bytes = to_store_bytes(&self.agg_serde, &agg, &self.store_name)?;
        store.borrow_mut().put(&self.buf, &bytes)?;
        if let Some(index) = &mut self.by_end {
            index.insert((end, Bytes::copy_from_slice(&self.buf)));
        }
        if emit_updates {
            self.down.forward(
                ctx,
                Record::new(
                    Windowed {
                        key: record.key,
                        window: Window { start, end },
                    },
                    Change {
                        new: Some(agg),
                        old: old_same,
                    },
                    ts,
                ),
            )?;
        }
        self.close_sessions(ctx)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> SessionWindowedKStream<K, V> {
    pub(crate) fn new(
        stream: KStream<K, V>,
        grouped: Grouped<K, V>,
        windows: SessionWindows,
    ) -> Self {
        SessionWindowedKStream {
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

    /// Folds values per key and session into `init()`; `merger` combines two sessions'
    /// aggregates when a record bridges them.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        agg_serde: SerdeRef<VA>,
        materialized: Materialized<Windowed<K>, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let graph = &self.stream.graph;
        let store = materialized.name_or(graph, "session-aggregate");
        graph.use_store(&store, self.stream.group);
        let agg_serde = materialized.value_serde.clone().unwrap_or(agg_serde);
        let key_serde = self.grouped.key_serde.clone();
        let table = KTable::root(
            graph.clone(),
            self.stream.group,
            store.clone(),
            WindowedSerde::session(key_serde.clone()),
            agg_serde.clone(),
        );
        let children = table.children.clone();
        let (windows, emit) = (self.windows, self.emit);
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(init);
        let adder: Adder<K, V, VA> = Arc::new(adder);
        let merger: Merger<K, VA> = Arc::new(merger);
        self.stream.attach(move |inst| {
            Ok(SessionAggregate {
                store_name: store.clone(),
                store: None,
                key_serde: key_serde.clone(),
                agg_serde: agg_serde.clone(),
                windows,
                emit,
                init: init.clone(),
                adder: adder.clone(),
                merger: merger.clone(),
                down: children.instantiate(inst)?,
                buf: Vec::new(),
                scanned_at: i64::MIN,
                by_end: None,
            })
        });
        table
    }

    /// Records per key and session.
    pub fn count(&self, materialized: Materialized<Windowed<K>, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate(
            || 0,
            |_, _, n| n + 1,
            |_, a, b| a + b,
            Serdes::i64(),
            materialized,
        )
    }
}
