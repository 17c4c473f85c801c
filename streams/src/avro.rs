//! [`AvroSerde`]: Avro values in Confluent's wire format (magic byte 0, 4-byte schema id)
//! through the schema registry, by way of `fjord-schema-registry`'s serializer and
//! deserializer.
//!
//! Values are `serde_json::Value`s (records as objects), converted to and from Avro by the
//! registry crate; `serde_json::from_value` turns them into a typed struct. The serializer
//! registers its schema under the topic's subject (`TopicNameStrategy`: `{topic}-value` or
//! `{topic}-key`) the first time, the deserializer fetches writer schemas by id; both cache, so
//! after the first record of a schema no request is made. A lookup the caches cannot answer
//! runs on a short-lived helper thread (the processing thread waits for it).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use fjord_schema_registry::serdes::{
    AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy,
};

use crate::error::SerdeError;
use crate::serdes::{Serde, SerdeRef};

/// Avro through the schema registry, for one topic's keys or values.
pub struct AvroSerde {
    topic: String,
    serializer: AvroSerializer,
    deserializer: AvroDeserializer,
}

impl std::fmt::Debug for AvroSerde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSerde")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl AvroSerde {
    /// A serde writing `schema` (Avro JSON) for `topic`'s values (or keys with `is_key`),
    /// reading whatever schema a record was written with.
    pub fn for_topic(
        registry_url: &str,
        topic: &str,
        schema: &str,
        is_key: bool,
    ) -> Result<SerdeRef<serde_json::Value>, SerdeError> {
        let client = Arc::new(RegistryClient::new(registry_url));
        let serializer = AvroSerializer::new(
            client.clone(),
            schema,
            SubjectNameStrategy::TopicName,
            is_key,
        )
        .map_err(|e| SerdeError::Avro(Box::new(e)))?;
        Ok(Arc::new(AvroSerde {
            topic: topic.to_string(),
            serializer,
            deserializer: AvroDeserializer::new(client),
        }))
    }
}

/// Runs `make()`'s future to completion from synchronous code: polled once in place (a cache
/// hit completes without I/O), else on a helper thread with its own runtime.
fn run_sync<T, F>(make: impl Fn() -> F + Sync) -> T
where
    F: Future<Output = T>,
    T: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        let mut first = pin!(make());
        if let Poll::Ready(v) = first.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return v;
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => Some(rt.block_on(make())),
                Err(_) => None,
            }
        })
        .join()
        .ok()
        .flatten()
    })
    .unwrap_or_else(|| {
        // A runtime could not be built or the helper panicked: poll in place once more.
        let mut again = pin!(make());
        loop {
            if let Poll::Ready(v) = again.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return v;
            }
            std::thread::yield_now();
        }
    })
}

impl Serde<serde_json::Value> for AvroSerde {
    fn serialize(&self, value: &serde_json::Value) -> Result<Option<Bytes>, SerdeError> {
        run_sync(|| self.serializer.serialize_json(&self.topic, value))
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| SerdeError::Avro(Box::new(e)))
    }

    fn deserialize(&self, data: Option<&[u8]>) -> Result<serde_json::Value, SerdeError> {
        let data = data.ok_or(SerdeError::Null {
            expected: "Avro record",
        })?;
        run_sync(|| self.deserializer.deserialize_json(data))
            .map_err(|e| SerdeError::Avro(Box::new(e)))
    }
}
