//! The store's Kafka side: the `_schemas` topic is created if missing (one partition,
//! `cleanup.policy=compact`), read from the start into [`State`] by a reader task, and written
//! with `acks=all`; a write returns once the reader has applied it, so every instance's state
//! comes from the topic alone.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use fjord_client::{
    Acks, Admin, Consumer, ConsumerConfig, OffsetReset, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::records::RecordKey;
use super::state::State;
use crate::error::{Error, Result};

/// Kafka's error code for TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// A poll that has not returned after this long is a stalled connection: the reader starts
/// over with a new consumer from its position.
const POLL_STALL: Duration = Duration::from_secs(5);
/// Pause before reconnecting after a failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Where and how the store keeps its topic.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Kafka bootstrap address (`kafkastore.bootstrap.servers`).
    pub bootstrap: String,
    /// The topic (`kafkastore.topic`, default `_schemas`).
    pub topic: String,
    /// How long a write may wait to be read back, and startup to read the topic
    /// (`kafkastore.timeout.ms`; ours defaults to 10 s).
    pub timeout: Duration,
}

impl StoreConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        StoreConfig {
            bootstrap: bootstrap.into(),
            topic: "_schemas".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The `_schemas` topic and the state read from it.
pub struct KafkaStore {
    config: StoreConfig,
    /// Reconnected after any failure (it keeps one connection).
    admin: tokio::sync::Mutex<Option<Admin>>,
    producer: Producer,
    state: Arc<RwLock<State>>,
    /// The next offset the reader will apply.
    applied: watch::Receiver<i64>,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("topic", &self.config.topic)
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

fn kafka(context: impl Into<String>) -> impl FnOnce(fjord_client::Error) -> Error {
    let context = context.into();
    move |source| Error::Kafka { context, source }
}

impl KafkaStore {
    /// Creates the topic if needed, starts the reader and returns once the state has caught up
    /// with the topic's end. The reader stops when `shutdown` is cancelled.
    pub async fn open(config: StoreConfig, shutdown: CancellationToken) -> Result<Arc<KafkaStore>> {
        let admin = Admin::connect(&config.bootstrap)
            .await
            .map_err(kafka(format!("connecting to {}", config.bootstrap)))?;
        ensure_topic(&admin, &config.topic).await?;
        let producer = Producer::new(
            ProducerConfig::new(config.bootstrap.clone())
                .with_client_id("fjord-schema-registry")
                .with_acks(Acks::All)
                .with_linger(Duration::ZERO),
        )
        .map_err(kafka("starting the store writer"))?;
        let state = Arc::new(RwLock::new(State::default()));
        let (tx, applied) = watch::channel(0);
        tokio::spawn(read_loop(config.clone(), state.clone(), tx, shutdown));
        let store = Arc::new(KafkaStore {
            config,
            admin: tokio::sync::Mutex::new(Some(admin)),
            producer,
            state,
            applied,
        });
        store.sync().await?;
        tracing::info!(
            topic = %store.config.topic,
            offset = *store.applied.borrow(),
            "schema store caught up"
        );
        Ok(store)
    }

    /// The state (a short read lock; never hold it across an await).
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until everything in the topic now has been applied.
    pub async fn sync(&self) -> Result<()> {
        let end = self.end_offset().await?;
        self.wait_for(end).await
    }

    /// The topic's log end offset (one reconnect on failure).
    async fn end_offset(&self) -> Result<i64> {
        let tp = (self.config.topic.clone(), 0);
        let mut admin = self.admin.lock().await;
        let mut last = None;
        for _ in 0..2 {
            if admin.is_none() {
                match Admin::connect(&self.config.bootstrap).await {
                    Ok(connected) => *admin = Some(connected),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let Some(connected) = admin.as_ref() else {
                continue;
            };
            match connected
                .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Latest)
                .await
            {
                Ok(offsets) => return Ok(offsets.into_values().next().flatten().unwrap_or(0)),
                Err(e) => {
                    *admin = None;
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(source) => Error::Kafka {
                context: format!("reading the end offset of {}", self.config.topic),
                source,
            },
            None => Error::StoreClosed,
        })
    }

    /// Waits until the reader's position is at least `next_offset`.
    pub async fn wait_for(&self, next_offset: i64) -> Result<()> {
        let mut applied = self.applied.clone();
        let timeout = self.config.timeout;
        let reached = tokio::time::timeout(timeout, applied.wait_for(|a| *a >= next_offset)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::StoreClosed),
            Err(_) => Err(Error::StoreTimeout {
                offset: next_offset,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Writes one record (`None` is a tombstone) and waits until it is applied; returns its
    /// offset.
    pub async fn write(&self, key: &RecordKey, value: Option<Vec<u8>>) -> Result<i64> {
        let record = ProducerRecord {
            topic: self.config.topic.clone(),
            partition: Some(0),
            key: Some(key.to_bytes().into()),
            value: value.map(Into::into),
            ..Default::default()
        };
        let delivery = self
            .producer
            .send(record)
            .await
            .map_err(kafka(format!("writing to {}", self.config.topic)))?;
        let metadata = delivery
            .await
            .map_err(kafka(format!("writing to {}", self.config.topic)))?;
        self.wait_for(metadata.offset + 1).await?;
        Ok(metadata.offset)
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// The next offset the reader will apply.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }
}

async fn ensure_topic(admin: &Admin, topic: &str) -> Result<()> {
    let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    match admin.create_topic(topic, 1, -1, &configs).await {
        Ok(()) => tracing::info!(topic, "created the schema store topic"),
        Err(fjord_client::Error::Broker { code, .. }) if code.code() == TOPIC_ALREADY_EXISTS => {}
        Err(e) => return Err(kafka(format!("creating topic {topic}"))(e)),
    }
    let partitions = admin
        .partitions(topic)
        .await
        .map_err(kafka(format!("describing topic {topic}")))?;
    if partitions.len() != 1 {
        return Err(Error::StoreTopicPartitions {
            topic: topic.to_string(),
            partitions: partitions.len(),
        });
    }
    if let Ok(described) = admin.describe_topic(topic).await
        && described
            .overrides
            .get("cleanup.policy")
            .map(String::as_str)
            != Some("compact")
    {
        tracing::warn!(
            topic,
            "the schema store topic is not compacted (cleanup.policy=compact): old records may be deleted by retention"
        );
    }
    Ok(())
}

/// A consumer of the store partition positioned at `position`.
async fn reader(config: &StoreConfig, position: i64) -> Result<Consumer> {
    let consumer_config = ConsumerConfig::new(config.bootstrap.clone())
        .client_id("fjord-schema-registry")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(consumer_config)
        .await
        .map_err(kafka("starting the store reader"))?;
    let tp = (config.topic.clone(), 0);
    consumer
        .assign([tp.clone()])
        .map_err(kafka("assigning the store partition"))?;
    consumer.seek(tp, position);
    Ok(consumer)
}

/// Applies the topic to `state` from offset 0, for ever; starts over with a new consumer from
/// its position after an error or a stalled poll (a restarted broker).
async fn read_loop(
    config: StoreConfig,
    state: Arc<RwLock<State>>,
    applied: watch::Sender<i64>,
    shutdown: CancellationToken,
) {
    let tp = (config.topic.clone(), 0);
    let mut position = 0;
    'connect: loop {
        let mut consumer = match reader(&config, position).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(error = %e, "starting the schema store reader failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break 'connect,
                    _ = tokio::time::sleep(RETRY_BACKOFF) => continue 'connect,
                }
            }
        };
        loop {
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break 'connect,
                polled = tokio::time::timeout(POLL_STALL, consumer.poll(Duration::from_millis(200))) => polled,
            };
            let records = match polled {
                Ok(Ok(records)) => records,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, position, "reading the schema store failed; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'connect,
                        _ = tokio::time::sleep(RETRY_BACKOFF) => continue 'connect,
                    }
                }
                Err(_) => {
                    tracing::warn!(position, "reading the schema store stalled; reconnecting");
                    continue 'connect;
                }
            };
            if !records.is_empty() {
                let mut state = state.write().unwrap_or_else(|p| p.into_inner());
                for record in &records {
                    let Some(key) = &record.key else { continue };
                    if let Err(reason) = state.apply(key, record.value.as_deref()) {
                        tracing::warn!(offset = record.offset, %reason, "skipping a record of the schema store");
                    }
                }
            }
            if let Some(next) = consumer.position(&tp) {
                position = position.max(next);
                applied.send_if_modified(|a| {
                    let moved = position > *a;
                    if moved {
                        *a = position;
                    }
                    moved
                });
            }
        }
    }
    tracing::debug!("schema store reader stopped");
}
