//! Windowed stream-stream joins: inner, left and outer.
//!
//! Each side keeps its records in a store (key-first: `length ++ key ++ time ++ offset`) for
//! `before + after + grace`. A record joins every record of the other side with the same key
//! whose time is within `[t - before, t + after]` (mirrored for the right side); the result
//! has the later of the two timestamps. A left (or outer) join does not emit a record
//! without a match at once: it is held in a third store and emitted with `None` for the other
//! side when its window closes (stream time past `t + after + grace`), unless a match arrives
//! first (Kafka's behaviour since KIP-633). A record whose window has closed is dropped as
//! late.

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Grouped, Joined};
use super::join::JoinWindows;
use super::nodes::{FnNode, from_store_bytes, to_store_bytes};
use super::stream::KStream;
use crate::error::Result;
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::SerdeRef;
use crate::store::keys::{session_prefix, time_bytes, time_from};
use crate::store::{StateStore, StoreKind};

type Joiner<VT, VO, VR> = Arc<dyn Fn(Option<&VT>, Option<&VO>) -> Option<VR> + Send + Sync>;

struct Stores {
    this: String,
    other: String,
    outer: String,
}

struct JoinSide<K, VT, VO, VR> {
    names: Arc<Stores>,
    this: Option<Rc<RefCell<StateStore>>>,
    other: Option<Rc<RefCell<StateStore>>>,
    outer: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<K>,
    this_serde: SerdeRef<VT>,
    other_serde: SerdeRef<VO>,
    /// Other records joinable with this side's record at t: `[t - before, t + after]`.
    before: i64,
    after: i64,
    grace: i64,
    /// Hold this side's unmatched records for a `None` result.
    outer_this: bool,
    /// Either side holds unmatched records (a left or outer join).
    holds_unmatched: bool,
    tag: u8,
    joiner: Joiner<VT, VO, VR>,
    down: Downstream<K, VR>,
    buf: Vec<u8>,
    expired_through: i64,
    /// Stream time of the last scan of the unmatched records.
    outer_scanned_at: i64,
    /// Every unmatched record older than this was emitted by an earlier scan (none can be
    /// added below it: such a record would be late), so scans start here instead of walking
    /// the deletions of everything emitted so far.
    outer_scanned_below: i64,
}

impl<K, VT, VO, VR> Lifecycle for JoinSide<K, VT, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.this = Some(ctx.store(&self.names.this, StoreKind::Session)?);
        self.other = Some(ctx.store(&self.names.other, StoreKind::Session)?);
        self.outer = Some(ctx.store(&self.names.outer, StoreKind::Window)?);
        Ok(())
    }
}

/// `time ++ tag ++ offset ++ key` of the unmatched-records store.
fn outer_key(t: i64, tag: u8, offset: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17 + key.len());
    k.extend_from_slice(&time_bytes(t));
    k.push(tag);
    k.extend_from_slice(&offset.to_be_bytes());
    k.extend_from_slice(key);
    k
}

impl<K: Clone + 'static, VT: 'static, VO: 'static, VR: Clone + 'static> JoinSide<K, VT, VO, VR> {
    /// Emits held records whose windows closed, and drops expired records.
    fn expire(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        let st = ctx.stream_time();
        let (Some(outer), Some(this), Some(other)) =
            (self.outer.clone(), self.this.clone(), self.other.clone())
        else {
            return Ok(());
        };
        // Held records close `reach + grace` after their time, reach being before or after.
        let horizon = st.saturating_sub(self.before.min(self.after) + self.grace);
        let candidates = if self.holds_unmatched && st != self.outer_scanned_at {
            let from = time_bytes(self.outer_scanned_below);
            let lower = if self.outer_scanned_below == i64::MIN {
                Bound::Unbounded
            } else {
                Bound::Included(&from[..])
            };
            let found = outer
                .borrow()
                .range(lower, Bound::Excluded(&time_bytes(horizon)[..]))?;
            self.outer_scanned_at = st;
            // Records below this close by now whichever side holds them.
            self.outer_scanned_below = st
                .saturating_sub(self.before.max(self.after))
                .saturating_sub(self.grace);
            found
        } else {
            Vec::new()
        };
        for (stored, value) in candidates {
            if stored.len() < 17 {
                continue;
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&stored[..8]);
            let t = time_from(t);
            let tag = stored[8];
            let reach = if tag == self.tag {
                self.after
            } else {
                self.before
            };
            if t + reach + self.grace >= st {
                continue;
            }
            let key = self
                .key_serde
                .deserialize(Some(&stored[17..]))
                .map_err(|source| crate::Error::Serialization {
                    topic: self.names.outer.clone(),
                    source,
                })?;
            let result = if tag == self.tag {
                let v = from_store_bytes(&self.this_serde, &value, &self.names.outer)?;
                (self.joiner)(Some(&v), None)
            } else {
                let v = from_store_bytes(&self.other_serde, &value, &self.names.outer)?;
                (self.joiner)(None, Some(&v))
            };
            outer.borrow_mut().delete(&stored)?;
            if let Some(r) = result {
                self.down.forward(ctx, Record::new(key, r, t))?;
            }
        }
        // Window stores keep records for before + after + grace (scan every so often).
        let retention = self.before + self.after + self.grace;
        if st.saturating_sub(self.expired_through) > retention.max(1) {
            let cutoff = st.saturating_sub(retention);
            for store in [&this, &other] {
                let all = store.borrow().all()?;
                for (stored, _) in all {
                    let n = stored.len();
                    if n >= 16 {
                        let mut t = [0u8; 8];
                        t.copy_from_slice(&stored[n - 16..n - 8]);
                        if time_from(t) < cutoff {
                            store.borrow_mut().delete(&stored)?;
                        }
                    }
                }
            }
            self.expired_through = st;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, VT: 'static, VO: 'static, VR: Clone + 'static> Processor<K, VT>
    for JoinSide<K, VT, VO, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, VT>) -> Result<()> {
        let (Some(this), Some(other), Some(outer)) =
            (self.this.clone(), self.other.clone(), self.outer.clone())
        else {
            return Ok(());
        };
        let t = record.timestamp;
        let st = ctx.stream_time();
        if t.saturating_add(self.after).saturating_add(self.grace) < st {
            ctx.record_late_drop();
            return self.expire(ctx);
        }
        let key = to_store_bytes(&self.key_serde, &record.key, &self.names.this)?;
        let value = to_store_bytes(&self.this_serde, &record.value, &self.names.this)?;
        session_prefix(&key, &mut self.buf);
        let prefix = self.buf.clone();
        self.buf.extend_from_slice(&time_bytes(t));
        self.buf.extend_from_slice(&ctx.offset().to_be_bytes());
        this.borrow_mut().put(&self.buf, &value)?;
        // The other side's records in [t - before, t + after].
        let mut from = prefix.clone();
        from.extend_from_slice(&time_bytes(t.saturating_sub(self.before)));
        let mut to = prefix;
        to.extend_from_slice(&time_bytes(t.saturating_add(self.after).saturating_add(1)));
        let matches = other
            .borrow()
            .range(Bound::Included(&from[..]), Bound::Excluded(&to[..]))?;
        let mut matched = false;
        for (stored, other_value) in matches {
            let n = stored.len();
            if n < 16 {
                continue;
            }
            let mut ot = [0u8; 8];
            ot.copy_from_slice(&stored[n - 16..n - 8]);
            let ot = time_from(ot);
            let mut off = [0u8; 8];
            off.copy_from_slice(&stored[n - 8..]);
            let off = i64::from_be_bytes(off);
            matched = true;
            // The other record is joined now: it is no longer waiting for a `None` result.
            outer
                .borrow_mut()
                .delete(&outer_key(ot, 1 - self.tag, off, &key))?;
            let ov = from_store_bytes(&self.other_serde, &other_value, &self.names.other)?;
            if let Some(r) = (self.joiner)(Some(&record.value), Some(&ov)) {
                self.down
                    .forward(ctx, Record::new(record.key.clone(), r, t.max(ot)))?;
            }
        }
        if !matched && self.outer_this {
            outer
                .borrow_mut()
                .put(&outer_key(t, self.tag, ctx.offset(), &key), &value)?;
        }
        self.expire(ctx)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    #[allow(clippy::too_many_arguments)]
    fn stream_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, VO>,
        joiner: Joiner<V, VO, VR>,
        windows: JoinWindows,
        joined: Joined<K, V, VO>,
        outer_left: bool,
        outer_right: bool,
        what: &str,
    ) -> KStream<K, VR> {
        let name = joined
            .name
            .clone()
            .unwrap_or_else(|| format!("{what}-{:010}", self.graph.next_id()));
        let left = if self.key_changed {
            let mut g = Grouped::with(joined.key_serde.clone(), joined.value_serde.clone());
            g.name = Some(format!("{name}-left"));
            self.repartition(g)
        } else {
            self.clone()
        };
        let right = if other.key_changed {
            let mut g = Grouped::with(joined.key_serde.clone(), joined.other_serde.clone());
            g.name = Some(format!("{name}-right"));
            other.repartition(g)
        } else {
            other.clone()
        };
        let graph = left.graph.clone();
        graph.copartition(left.group, right.group);
        graph.union(left.group, right.group);
        let stores = Stores {
            this: format!("{name}-this-join-store"),
            other: format!("{name}-other-join-store"),
            outer: format!("{name}-outer-join-store"),
        };
        for s in [&stores.this, &stores.other, &stores.outer] {
            graph.use_store(s, left.group);
        }
        let left_names = Arc::new(Stores {
            this: stores.this.clone(),
            other: stores.other.clone(),
            outer: stores.outer.clone(),
        });
        let right_names = Arc::new(Stores {
            this: stores.other.clone(),
            other: stores.this.clone(),
            outer: stores.outer.clone(),
        });
        let out: KStream<K, VR> = left.derive(false);
        let out_children = out.children.clone();
        let out_id = graph.next_id();
        let shared = Arc::new(move |inst: &mut crate::topology::Instantiator| {
            let children = out_children.clone();
            inst.node(out_id, move |inst| {
                Ok(FnNode::new(
                    Arc::new(
                        |ctx: &mut ProcessorContext, r: Record<K, VR>, down: &Downstream<K, VR>| {
                            down.forward(ctx, r)
                        },
                    ),
                    children.instantiate(inst)?,
                ))
            })
        });
        {
            let shared = shared.clone();
            let (ks, vs, os) = (
                joined.key_serde.clone(),
                joined.value_serde.clone(),
                joined.other_serde.clone(),
            );
            let joiner = joiner.clone();
            left.attach(move |inst| {
                Ok(JoinSide {
                    names: left_names.clone(),
                    this: None,
                    other: None,
                    outer: None,
                    key_serde: ks.clone(),
                    this_serde: vs.clone(),
                    other_serde: os.clone(),
                    before: windows.before,
                    after: windows.after,
                    grace: windows.grace,
                    outer_this: outer_left,
                    holds_unmatched: outer_left || outer_right,
                    tag: 0,
                    joiner: joiner.clone(),
                    down: Downstream::new(vec![shared(inst)?]),
                    buf: Vec::new(),
                    expired_through: i64::MIN,
                    outer_scanned_at: i64::MIN,
                    outer_scanned_below: i64::MIN,
                })
            });
        }
        {
            let (ks, vs, os) = (
                joined.key_serde.clone(),
                joined.other_serde.clone(),
                joined.value_serde.clone(),
            );
            let swapped: Joiner<VO, V, VR> = Arc::new(move |o, t| joiner(t, o));
            right.attach(move |inst| {
                Ok(JoinSide {
                    names: right_names.clone(),
                    this: None,
                    other: None,
                    outer: None,
                    key_serde: ks.clone(),
                    this_serde: vs.clone(),
                    other_serde: os.clone(),
                    before: windows.after,
                    after: windows.before,
                    grace: windows.grace,
                    outer_this: outer_right,
                    holds_unmatched: outer_left || outer_right,
                    tag: 1,
                    joiner: swapped.clone(),
                    down: Downstream::new(vec![shared(inst)?]),
                    buf: Vec::new(),
                    expired_through: i64::MIN,
                    outer_scanned_at: i64::MIN,
                    outer_scanned_below: i64::MIN,
                })
            });
        }
        out
    }

    /// Windowed inner join: a result for every pair of records with equal keys within
    /// `windows`.
    pub fn join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: Joined<K, V, VO>,
    ) -> KStream<K, VR> {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.stream_join(other, joiner, windows, joined, false, false, "join")
    }

    /// Windowed left join: inner results, plus `joiner(v, None)` for a record of this stream
    /// that found no match by the time its window closed.
    pub fn left_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: Joined<K, V, VO>,
    ) -> KStream<K, VR> {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |v, o| v.map(|v| joiner(v, o)));
        self.stream_join(other, joiner, windows, joined, true, false, "left-join")
    }

    /// Windowed outer join: inner results, plus a `None`-sided result for a record of either
    /// stream that found no match by the time its window closed.
    pub fn outer_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: Joined<K, V, VO>,
    ) -> KStream<K, VR> {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |v, o| {
            if v.is_none() && o.is_none() {
                None
            } else {
                Some(joiner(v, o))
            }
        });
        self.stream_join(other, joiner, windows, joined, true, true, "outer-join")
    }
}
