//! The processors behind the DSL's stateless operators, sources and sinks.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use super::config::{Consumed, Produced};
use super::table::Change;
use crate::error::{Error, Result, SerdeError};
use crate::processor::{Downstream, Lifecycle, OutputRecord, Processor, ProcessorContext, Record};
use crate::serdes::SerdeRef;
use crate::store::{StateStore, StoreKind};
use crate::task::DeserializationHandler;
use crate::topology::Raw;

/// A processor from a function of the record and the downstream.
pub(crate) struct FnNode<F, K2, V2> {
    f: Arc<F>,
    down: Downstream<K2, V2>,
}

impl<F, K2: 'static, V2: 'static> FnNode<F, K2, V2> {
    pub(crate) fn new(f: Arc<F>, down: Downstream<K2, V2>) -> Self {
        FnNode { f, down }
    }
}

impl<F, K2: 'static, V2: 'static> Lifecycle for FnNode<F, K2, V2> {}

impl<K: 'static, V: 'static, K2: 'static, V2: 'static, F> Processor<K, V> for FnNode<F, K2, V2>
where
    F: Fn(&mut ProcessorContext, Record<K, V>, &Downstream<K2, V2>) -> Result<()>,
{
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        (self.f)(ctx, record, &self.down)
    }
}

/// Applies the deserialization exception handler to a record that failed.
pub(crate) fn on_deserialization_error(
    ctx: &mut ProcessorContext,
    raw: &Record<Raw, Raw>,
    error: SerdeError,
) -> Result<()> {
    match &ctx.handler {
        DeserializationHandler::LogAndFail => Err(Error::Deserialization {
            topic: ctx.topic().to_string(),
            partition: ctx.partition(),
            offset: ctx.offset(),
            source: error,
        }),
        DeserializationHandler::LogAndContinue => {
            tracing::warn!(
                topic = ctx.topic(),
                partition = ctx.partition(),
                offset = ctx.offset(),
                error = %error,
                "skipping a record that cannot be deserialized"
            );
            ctx.metrics.records_skipped += 1;
            Ok(())
        }
        DeserializationHandler::DeadLetter(topic) => {
            tracing::warn!(
                topic = ctx.topic(),
                partition = ctx.partition(),
                offset = ctx.offset(),
                dead_letter_topic = %topic,
                error = %error,
                "sending a record that cannot be deserialized to the dead-letter topic"
            );
            let topic: Arc<str> = Arc::from(topic.as_str());
            ctx.metrics.records_skipped += 1;
            ctx.send(OutputRecord {
                topic,
                partition: None,
                key: raw.key.clone(),
                value: raw.value.clone(),
                timestamp: raw.timestamp,
            });
            Ok(())
        }
    }
}

fn decode<K: 'static, V: 'static>(
    consumed: &Consumed<K, V>,
    record: &Record<Raw, Raw>,
) -> Result<(K, V, i64), SerdeError> {
    let key = consumed.key_serde.deserialize(record.key.as_deref())?;
    let value = consumed.value_serde.deserialize(record.value.as_deref())?;
    let ts = match &consumed.extractor {
        Some(extract) => extract(&key, &value, record.timestamp),
        None => record.timestamp,
    };
    Ok((key, value, ts))
}

/// Deserializes a source topic's records.
pub(crate) struct SourceNode<K, V> {
    consumed: Arc<Consumed<K, V>>,
    down: Downstream<K, V>,
}

impl<K: 'static, V: 'static> SourceNode<K, V> {
    pub(crate) fn new(consumed: Arc<Consumed<K, V>>, down: Downstream<K, V>) -> Self {
        SourceNode { consumed, down }
    }
}

impl<K: 'static, V: 'static> Lifecycle for SourceNode<K, V> {}

impl<K: Clone + 'static, V: Clone + 'static> Processor<Raw, Raw> for SourceNode<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<Raw, Raw>) -> Result<()> {
        match decode(&self.consumed, &record) {
            Ok((key, value, ts)) => {
                ctx.observe(ts);
                self.down.forward(ctx, Record::new(key, value, ts))
            }
            Err(e) => on_deserialization_error(ctx, &record, e),
        }
    }
}

/// Keeps the latest value per key of a topic and forwards each change.
pub(crate) struct TableSource<K, V> {
    consumed: Arc<Consumed<K, V>>,
    store_name: String,
    store: Option<std::rc::Rc<std::cell::RefCell<StateStore>>>,
    down: Downstream<K, Change<V>>,
}

impl<K: 'static, V: 'static> TableSource<K, V> {
    pub(crate) fn new(
        consumed: Arc<Consumed<K, V>>,
        store_name: String,
        down: Downstream<K, Change<V>>,
    ) -> Self {
        TableSource {
            consumed,
            store_name,
            store: None,
            down,
        }
    }
}

impl<K: 'static, V: 'static> Lifecycle for TableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        self.store = Some(ctx.store(&self.store_name, StoreKind::KeyValue)?);
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<Raw, Raw> for TableSource<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<Raw, Raw>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let Some(key_bytes) = record.key.as_deref() else {
            // A table cannot hold a null key (Kafka skips such records too).
            ctx.metrics.records_skipped += 1;
            return Ok(());
        };
        let key = match self.consumed.key_serde.deserialize(Some(key_bytes)) {
            Ok(k) => k,
            Err(e) => return on_deserialization_error(ctx, &record, e),
        };
        let new = match record.value.as_deref() {
            None => None,
            Some(bytes) => match self.consumed.value_serde.deserialize(Some(bytes)) {
                Ok(v) => Some(v),
                Err(e) => return on_deserialization_error(ctx, &record, e),
            },
        };
        let ts = match (&self.consumed.extractor, &new) {
            (Some(extract), Some(v)) => extract(&key, v, record.timestamp),
            _ => record.timestamp,
        };
        ctx.observe(ts);
        let old_bytes = store.borrow().get(key_bytes)?;
        let old =
            match old_bytes {
                Some(b) => Some(self.consumed.value_serde.deserialize(Some(&b)).map_err(
                    |source| Error::Serialization {
                        topic: self.store_name.clone(),
                        source,
                    },
                )?),
                None => None,
            };
        if old.is_none() && new.is_none() {
            return Ok(());
        }
        match record.value.as_deref() {
            Some(v) => store.borrow_mut().put(key_bytes, v)?,
            None => store.borrow_mut().delete(key_bytes)?,
        }
        self.down
            .forward(ctx, Record::new(key, Change { new, old }, ts))
    }
}

/// Writes records to a topic.
pub(crate) struct SinkNode<K, V> {
    /// The topic as given (an internal topic is prefixed with the application id at init).
    name: String,
    internal: bool,
    topic: Arc<str>,
    produced: Produced<K, V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> SinkNode<K, V> {
    pub(crate) fn new(name: &str, internal: bool, produced: Produced<K, V>) -> Self {
        SinkNode {
            name: name.to_string(),
            internal,
            topic: Arc::from(name),
            produced,
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> Lifecycle for SinkNode<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext) -> Result<()> {
        if self.internal {
            self.topic = Arc::from(format!("{}-{}", ctx.application_id(), self.name).as_str());
        }
        Ok(())
    }
}

impl<K: 'static, V: 'static> Processor<K, V> for SinkNode<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext, record: Record<K, V>) -> Result<()> {
        let error = |source| Error::Serialization {
            topic: self.topic.to_string(),
            source,
        };
        let key = self
            .produced
            .key_serde
            .serialize(&record.key)
            .map_err(error)?;
        let value = self
            .produced
            .value_serde
            .serialize(&record.value)
            .map_err(error)?;
        let partition = match &self.produced.partitioner {
            Some(partitioner) => {
                let count = ctx.partition_count(&self.topic)?;
                Some(partitioner(&record.key, &record.value, count).rem_euclid(count.max(1)))
            }
            None => None,
        };
        ctx.send(OutputRecord {
            topic: self.topic.clone(),
            partition,
            key,
            value,
            timestamp: record.timestamp,
        });
        Ok(())
    }
}

/// Bytes of a value for a store.
pub(crate) fn to_store_bytes<T: 'static>(
    serde: &SerdeRef<T>,
    value: &T,
    store: &str,
) -> Result<Bytes> {
    match serde.serialize(value) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(Error::Serialization {
            topic: store.to_string(),
            source: SerdeError::Null {
                expected: "non-null store key or value",
            },
        }),
        Err(source) => Err(Error::Serialization {
            topic: store.to_string(),
            source,
        }),
    }
}

/// A value read back from a store.
pub(crate) fn from_store_bytes<T: 'static>(
    serde: &SerdeRef<T>,
    bytes: &[u8],
    store: &str,
) -> Result<T> {
    serde
        .deserialize(Some(bytes))
        .map_err(|source| Error::Serialization {
            topic: store.to_string(),
            source,
        })
}
