//! The table-table foreign-key join (KIP-213): each row of the left table points at a row of
//! the right table through a key extracted from its value; the result table has a row per left
//! row (inner: while the right row exists).
//!
//! The two tables are partitioned differently, so the join talks through two repartition
//! topics, as Kafka's does:
//! - `{app}-{name}-subscription-registration-repartition`, keyed by the foreign key: a left
//!   row subscribes to its right row (and unsubscribes from the previous one when its foreign
//!   key changes). The right side keeps the subscriptions in a store (`foreign key ++ left
//!   key`) and answers each with the right row's value.
//! - `{app}-{name}-subscription-response-repartition`, keyed by the left key: the answers, and
//!   the right side's updates to every subscriber when a right row changes. The left side
//!   drops an answer whose hash of the left value no longer matches the current row (a newer
//!   subscription is on its way).

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::config::{Grouped, Materialized};
use super::nodes::to_store_bytes;
use super::stream::KStream;
use super::table::{Change, KTable, Materialize};
use crate::error::Result;
use crate::processor::{Downstream, Lifecycle, Processor, ProcessorContext, Record};
use crate::serdes::{SerdeRef, Serdes};
use crate::store::keys::session_prefix;
use crate::store::{StateStore, StoreKind};

const SUBSCRIBE: u8 = 0;
const UNSUBSCRIBE: u8 = 1;
const DELETE_AND_PROPAGATE: u8 = 2;

/// FNV-1a of a left value's bytes.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn subscription(action: u8, h: u64, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + key.len());
    b.put_u8(action);
    b.put_u64(h);
    b.put_slice(key);
    b.freeze()
}

fn response(h: u64, value: Option<&[u8]>) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + value.map_or(0, <[u8]>::len));
    b.put_u64(h);
    match value {
        Some(v) => {
            b.put_u8(1);
            b.put_slice(v);
        }
        None => b.put_u8(0),
    }
    b.freeze()
}

type StoreRef = Rc<RefCell<StateStore>>;

fn opened(ctx: &mut ProcessorContext, name: &str) -> Result<StoreRef> {
    ctx.store(name, StoreKind::KeyValue)
}

/// Right side: keeps subscriptions, answers them with the right row.
struct SubscriptionProcessor {
    subscriptions: String,
    right: String,
    stores: Option<(StoreRef, StoreRef)>,
    down: Downstream<Bytes, Bytes>,
}

impl Lifecycle for SubscriptionProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.stores = Some((opened(ctx, &self.subscriptions)?, opened(ctx, &self.right)?));
        Ok(())
    }
}

impl Processor<Bytes, Bytes> for SubscriptionProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<Bytes, Bytes>) -> Result<()> {
        let Some((subs, right)) = self.stores.clone() else {
            return Ok(());
        };
        let v = &record.value;
        if v.len() < 9 {
            return Ok(());
        }
        let (action, h, left_key) = (
            v[0],
            u64::from_be_bytes(v[1..9].try_into().unwrap_or([0; 8])),
            v.slice(9..),
        );
        let mut key = Vec::new();
        session_prefix(&record.key, &mut key);
        key.extend_from_slice(&left_key);
        match action {
            SUBSCRIBE => {
                subs.borrow_mut().put(&key, &h.to_be_bytes())?;
                let found = right.borrow().get(&record.key)?;
                self.down.forward(
                    ctx,
                    Record::new(left_key, response(h, found.as_deref()), record.timestamp),
                )
            }
            UNSUBSCRIBE => subs.borrow_mut().delete(&key),
            _ => {
                subs.borrow_mut().delete(&key)?;
                self.down.forward(
                    ctx,
                    Record::new(left_key, response(h, None), record.timestamp),
                )
            }
        }
    }
}

/// Right side: a changed right row goes to every subscriber.
struct RightChangeProcessor<KO, VO> {
    subscriptions: String,
    store: Option<Rc<RefCell<StateStore>>>,
    key_serde: SerdeRef<KO>,
    value_serde: SerdeRef<VO>,
    down: Downstream<Bytes, Bytes>,
}

impl<KO, VO> Lifecycle for RightChangeProcessor<KO, VO> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(opened(ctx, &self.subscriptions)?);
        Ok(())
    }
}

impl<KO: 'static, VO: 'static> Processor<KO, Option<VO>> for RightChangeProcessor<KO, VO> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext,
        record: Record<KO, Option<VO>>,
    ) -> Result<()> {
        let Some(subs) = self.store.clone() else {
            return Ok(());
        };
        let ko = to_store_bytes(&self.key_serde, &record.key, &self.subscriptions)?;
        let value = match &record.value {
            Some(v) => Some(to_store_bytes(&self.value_serde, v, &self.subscriptions)?),
            None => None,
        };
        let mut prefix = Vec::new();
        session_prefix(&ko, &mut prefix);
        let mut end = prefix.clone();
        end.push(0xff);
        let subscribers = subs
            .borrow()
            .range(Bound::Included(&prefix[..]), Bound::Excluded(&end[..]))?;
        for (stored, h) in subscribers {
            if stored.len() < prefix.len() || !stored.starts_with(&prefix) {
                continue;
            }
            let left_key = stored.slice(prefix.len()..);
            let h = u64::from_be_bytes(h[..].try_into().unwrap_or([0; 8]));
            self.down.forward(
                ctx,
                Record::new(left_key, response(h, value.as_deref()), record.timestamp),
            )?;
        }
        Ok(())
    }
}

type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Left side: turns answers into result rows, if they answer the current left value.
struct ResponseProcessor<K, V, VO, VR> {
    left: String,
    store: Option<Rc<RefCell<StateStore>>>,
    result: String,
    results: Option<Rc<RefCell<StateStore>>>,
    result_serde: SerdeRef<VR>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    other_serde: SerdeRef<VO>,
    joiner: FkJoiner<V, VO, VR>,
    down: Downstream<K, Change<VR>>,
}

impl<K, V, VO, VR> Lifecycle for ResponseProcessor<K, V, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(opened(ctx, &self.left)?);
        self.results = Some(opened(ctx, &self.result)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, VO: 'static, VR: Clone + 'static> Processor<Bytes, Bytes>
    for ResponseProcessor<K, V, VO, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<Bytes, Bytes>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let r = &record.value;
        if r.len() < 9 {
            return Ok(());
        }
        let h = u64::from_be_bytes(r[..8].try_into().unwrap_or([0; 8]));
        let other = (r[8] == 1).then(|| r.slice(9..));
        let key = self
            .key_serde
            .deserialize(Some(&record.key))
            .map_err(|source| crate::Error::Serialization {
                topic: self.left.clone(),
                source,
            })?;
        let current = store.borrow().get(&record.key)?;
        let new = match current {
            None => None,
            Some(bytes) if hash(&bytes) != h => return Ok(()),
            Some(bytes) => {
                let v = super::nodes::from_store_bytes(&self.value_serde, &bytes, &self.left)?;
                let o = match other {
                    Some(o) => Some(super::nodes::from_store_bytes(
                        &self.other_serde,
                        &o,
                        &self.left,
                    )?),
                    None => None,
                };
                (self.joiner)(&v, o.as_ref())
            }
        };
        // The previous result, so that a row that stops joining is deleted downstream.
        let old = match self
            .results
            .as_ref()
            .map(|s| s.borrow().get(&record.key))
            .transpose()?
        {
            Some(Some(b)) => Some(super::nodes::from_store_bytes(
                &self.result_serde,
                &b,
                &self.result,
            )?),
            _ => None,
        };
        self.down
            .forward(ctx, Record::new(key, Change { new, old }, record.timestamp))
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    fn fk_join<KO: Clone + 'static, VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        right: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: FkJoiner<V, VO, VR>,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let graph = self.graph.clone();
        let name = materialized
            .name
            .clone()
            .unwrap_or_else(|| format!("fk-join-{:010}", graph.next_id()));
        let subscriptions = format!("{name}-subscriptions");
        // Left changes -> subscriptions keyed by foreign key.
        let changes: KStream<K, Change<V>> = KStream::root(graph.clone(), self.group);
        let children = changes.children.clone();
        self.attach(move |inst| {
            Ok(super::nodes::FnNode::new(
                Arc::new(
                    |ctx: &mut ProcessorContext,
                     r: Record<K, Change<V>>,
                     down: &Downstream<K, Change<V>>| { down.forward(ctx, r) },
                ),
                children.instantiate(inst)?,
            ))
        });
        let (lk, lv, rk) = (
            self.key_serde.clone(),
            self.value_serde.clone(),
            right.key_serde.clone(),
        );
        let foreign_key = Arc::new(foreign_key);
        let left_store = self.store.clone();
        let subs: KStream<Bytes, Bytes> = changes.add_fn(
            move |ctx, r: Record<K, Change<V>>, down: &Downstream<Bytes, Bytes>| {
                let key = to_store_bytes(&lk, &r.key, &left_store)?;
                let fk_of = |v: &V| to_store_bytes(&rk, &foreign_key(v), &left_store);
                let old_fk = match &r.value.old {
                    Some(v) => Some(fk_of(v)?),
                    None => None,
                };
                match &r.value.new {
                    Some(v) => {
                        let fk = fk_of(v)?;
                        if let Some(old) = old_fk.filter(|o| *o != fk) {
                            down.forward(
                                ctx,
                                Record::new(old, subscription(UNSUBSCRIBE, 0, &key), r.timestamp),
                            )?;
                        }
                        let h = hash(&to_store_bytes(&lv, v, &left_store)?);
                        down.forward(
                            ctx,
                            Record::new(fk, subscription(SUBSCRIBE, h, &key), r.timestamp),
                        )
                    }
                    None => match old_fk {
                        Some(old) => down.forward(
                            ctx,
                            Record::new(
                                old,
                                subscription(DELETE_AND_PROPAGATE, 0, &key),
                                r.timestamp,
                            ),
                        ),
                        None => Ok(()),
                    },
                }
            },
            true,
        );
        let registered = subs.repartition(
            Grouped::with(Serdes::bytes(), Serdes::bytes())
                .named(&format!("{name}-subscription-registration")),
        );
        graph.copartition(registered.group, right.group);
        graph.union(registered.group, right.group);
        graph.use_store(&subscriptions, right.group);
        let (subs_name, right_store) = (subscriptions.clone(), right.store.clone());
        let answers: KStream<Bytes, Bytes> = registered.add_node(
            move |down| SubscriptionProcessor {
                subscriptions: subs_name.clone(),
                right: right_store.clone(),
                stores: None,
                down,
            },
            true,
        );
        let (subs_name, ks, vs) = (
            subscriptions.clone(),
            right.key_serde.clone(),
            right.value_serde.clone(),
        );
        let updates: KStream<Bytes, Bytes> = right.to_stream().add_node(
            move |down| RightChangeProcessor {
                subscriptions: subs_name.clone(),
                store: None,
                key_serde: ks.clone(),
                value_serde: vs.clone(),
                down,
            },
            true,
        );
        let responses = answers.merge(&updates).repartition(
            Grouped::with(Serdes::bytes(), Serdes::bytes())
                .named(&format!("{name}-subscription-response")),
        );
        graph.copartition(responses.group, self.group);
        graph.union(responses.group, self.group);
        let store = format!("{name}-store");
        graph.use_store(&store, self.group);
        let out = KTable::root(
            graph.clone(),
            self.group,
            store.clone(),
            self.key_serde.clone(),
            value_serde.clone(),
        );
        let out_children = out.children.clone();
        let (left, ks, vs, os) = (
            self.store.clone(),
            self.key_serde.clone(),
            self.value_serde.clone(),
            right.value_serde.clone(),
        );
        let materialize_id = graph.next_id();
        let (result_store, result_serde) = (store.clone(), value_serde.clone());
        responses.attach(move |inst| {
            let (store, ks2, vr) = (store.clone(), ks.clone(), value_serde.clone());
            let children = out_children.clone();
            let materialize: crate::processor::ProcessorRef<K, Change<VR>> =
                inst.node(materialize_id, move |inst| {
                    Ok(Materialize::new(
                        &store,
                        ks2,
                        vr,
                        children.instantiate(inst)?,
                    ))
                })?;
            Ok(ResponseProcessor {
                left: left.clone(),
                store: None,
                result: result_store.clone(),
                results: None,
                result_serde: result_serde.clone(),
                key_serde: ks.clone(),
                value_serde: vs.clone(),
                other_serde: os.clone(),
                joiner: joiner.clone(),
                down: Downstream::new(vec![materialize]),
            })
        });
        out
    }

    /// Foreign-key inner join: a row per left row whose `foreign_key(value)` row exists in
    /// `right`, updated when either changes.
    pub fn join_foreign_key<KO: Clone + 'static, VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        right: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o| o.map(|o| joiner(v, o)));
        self.fk_join(right, foreign_key, joiner, value_serde, materialized)
    }

    /// Foreign-key left join: a row per left row; the joiner sees `None` while the right row
    /// is missing.
    pub fn left_join_foreign_key<KO: Clone + 'static, VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        right: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        value_serde: SerdeRef<VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v, o)));
        self.fk_join(right, foreign_key, joiner, value_serde, materialized)
    }
}
