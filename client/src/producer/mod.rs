//! The producer: batches records per partition and sends them to partition leaders.
//!
//! [`Producer::send`] waits for room in `buffer.memory` and for the topic's metadata, appends the
//! record to its partition's batch and returns a [`DeliveryFuture`] that resolves when the broker
//! acknowledges the batch. A background task ([`sender`]) drains batches that are full
//! (`batch.size`) or old enough (`linger.ms`) into one Produce request per leader broker,
//! retries retriable failures every `retry.backoff.ms` within `delivery.timeout.ms`, and
//! refreshes metadata when a leader moves or a connection drops. With `enable.idempotence` the
//! batches carry a producer id, epoch and per-partition sequences, so retries are not
//! duplicated.
//!
//! ```no_run
//! # async fn run() -> fjord_client::Result<()> {
//! use fjord_client::{Producer, ProducerConfig, ProducerRecord};
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
//! let delivery = producer.send(ProducerRecord::new("events", "hello").with_key("k")).await?;
//! let metadata = delivery.await?;
//! println!("partition {} offset {}", metadata.partition, metadata.offset);
//! producer.close().await;
//! # Ok(()) }
//! ```

mod accumulator;
mod config;
mod metadata;
mod partitioner;
mod record;
mod request;
mod sender;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{Notify, Semaphore, TryAcquireError, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use accumulator::{Accumulator, PendingRecord};
use metadata::{ClusterMetadata, TopicState};

pub use config::{Acks, Compression, ProducerConfig};
pub use partitioner::{DefaultPartitioner, Partitioner, murmur2, partition_for_key, to_positive};
pub use record::{ProducerRecord, RecordMetadata};

/// The most `buffer.memory` a semaphore can count.
const MAX_MEMORY: usize = Semaphore::MAX_PERMITS >> 1;

/// State shared by [`Producer`] handles and the sender task.
pub(crate) struct Shared {
    pub(crate) config: ProducerConfig,
    memory: Arc<Semaphore>,
    accumulator: Mutex<Accumulator>,
    pub(crate) metadata: watch::Sender<Arc<ClusterMetadata>>,
    topics: Mutex<BTreeSet<String>>,
    pub(crate) refresh: AtomicBool,
    pub(crate) wake: Notify,
    outstanding: AtomicUsize,
    idle: Notify,
    pub(crate) closed: AtomicBool,
    /// Why the last metadata refresh failed (None after a success).
    pub(crate) metadata_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn accumulator(&self) -> MutexGuard<'_, Accumulator> {
        self.accumulator.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn topics(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers a record's `send` and releases its memory.
    pub(crate) fn finish(&self, mut record: PendingRecord, result: Result<RecordMetadata>) {
        if let Some(reply) = record.reply.take() {
            let _ = reply.send(result);
        }
        drop(record.memory.take());
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// A Kafka producer. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Producer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Resolves when the record's batch is acknowledged (or has failed for good).
#[derive(Debug)]
pub struct DeliveryFuture {
    reply: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

impl Producer {
    /// Starts a producer (must be called within a tokio runtime). Nothing connects until the
    /// first `send`.
    pub fn new(config: ProducerConfig) -> Result<Self> {
        config.validate()?;
        let memory = config.buffer_memory.min(MAX_MEMORY);
        let shared = Arc::new(Shared {
            accumulator: Mutex::new(Accumulator::new(config.batch_size, config.linger)),
            memory: Arc::new(Semaphore::new(memory)),
            metadata: watch::Sender::new(Arc::new(ClusterMetadata::default())),
            topics: Mutex::new(BTreeSet::new()),
            refresh: AtomicBool::new(false),
            wake: Notify::new(),
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            metadata_error: Mutex::new(None),
            config,
        });
        let task = tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// A producer from Kafka producer properties (`bootstrap.servers`, `acks`, ...).
    pub fn from_properties(
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        Self::new(ProducerConfig::from_properties(properties)?)
    }

    /// Queues a record. Waits (at most `max.block.ms`) for room in `buffer.memory` and for the
    /// topic's metadata; the returned future resolves when the broker acknowledges the record.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let config = &shared.config;
        let size = record.estimated_size();
        for (limit, key) in [
            (config.max_request_size, "max.request.size"),
            (config.buffer_memory, "buffer.memory"),
        ] {
            if size > limit {
                return Err(Error::RecordTooLarge { size, limit, key });
            }
        }
        let block = config.max_block.min(config.delivery_timeout);
        // One clock read serves the deadline and the batch's creation time.
        let mut now = Instant::now();
        let deadline = tokio::time::Instant::from_std(now) + block;
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        let memory = match shared.memory.clone().try_acquire_many_owned(permits) {
            Ok(memory) => memory,
            Err(TryAcquireError::Closed) => return Err(Error::Closed),
            Err(TryAcquireError::NoPermits) => {
                let memory = tokio::time::timeout_at(
                    deadline,
                    shared.memory.clone().acquire_many_owned(permits),
                )
                .await
                .map_err(|_| Error::BufferFull {
                    timeout_ms: block.as_millis() as u64,
                })?
                .map_err(|_| Error::Closed)?;
                now = Instant::now();
                memory
            }
        };
        let count = self.partition_count(&record.topic, deadline).await?;
        if let Some(p) = record.partition
            && (p < 0 || p >= count)
        {
            return Err(Error::InvalidPartition {
                topic: record.topic,
                partition: p,
                count,
            });
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let (reply, receiver) = oneshot::channel();
        let pending = PendingRecord {
            key: record.key.clone(),
            value: record.value,
            headers: record.headers,
            timestamp,
            size,
            reply: Some(reply),
            memory: Some(memory),
        };
        let partitioner = &config.partitioner;
        let key = record.key.as_deref();
        let sticky = record.partition.is_none() && key.is_none();
        let explicit = record.partition;
        let choose =
            |topic: &str| explicit.unwrap_or_else(|| partitioner.partition(topic, key, count));
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        let appended = {
            let mut acc = shared.accumulator();
            let partition = choose(&record.topic);
            let tp = (record.topic, partition);
            match acc.append(&tp, pending, now, sticky) {
                Ok(appended) => appended,
                Err(pending) => {
                    partitioner.on_new_batch(&tp.0, count, partition);
                    let tp = (tp.0.clone(), choose(&tp.0));
                    acc.append(&tp, *pending, now, false)
                        .unwrap_or(accumulator::Appended::NewBatch)
                }
            }
        };
        // A record that joins an open batch changes nothing the sender waits for.
        if appended.wakes_sender() {
            shared.wake.notify_one();
        }
        Ok(DeliveryFuture { reply: receiver })
    }

    /// The topic's partition count, waiting for metadata until `deadline`.
    async fn partition_count(&self, topic: &str, deadline: tokio::time::Instant) -> Result<i32> {
        let shared = &self.shared;
        let mut changes = shared.metadata.subscribe();
        let mut last_code = None;
        let mut asked = false;
        loop {
            match changes.borrow_and_update().topics.get(topic) {
                Some(TopicState::Leaders(leaders)) if !leaders.is_empty() => {
                    return Ok(leaders.len() as i32);
                }
                Some(TopicState::Error(code)) => last_code = Some(*code),
                _ => {}
            }
            if !asked || last_code.is_some() {
                asked = true;
                shared.topics().insert(topic.to_string());
                shared.refresh.store(true, Ordering::Release);
                shared.wake.notify_one();
            }
            let timed_out = || Error::TopicUnavailable {
                topic: topic.to_string(),
                timeout_ms: shared
                    .config
                    .max_block
                    .min(shared.config.delivery_timeout)
                    .as_millis() as u64,
                code: last_code,
                cause: shared
                    .metadata_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            };
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(timed_out()),
            }
        }
    }

    /// Sends every queued record now and waits until each has an answer.
    pub async fn flush(&self) {
        let shared = &self.shared;
        shared.accumulator().begin_flush();
        shared.wake.notify_one();
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        shared.accumulator().end_flush();
    }

    /// Flushes, then stops the sender task. Later sends fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.flush().await;
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender finishes what is queued, then exits.
        self.shared.closed.store(true, Ordering::Release);
        self.shared.accumulator().begin_flush();
        self.shared.wake.notify_one();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
