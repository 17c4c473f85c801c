//! The sender task: drains ready batches into Produce requests, up to
//! `max.in.flight.requests.per.connection` per leader broker (pipelined on one connection),
//! completes `send` futures, retries within `delivery.timeout.ms` and refreshes metadata.
//!
//! Without idempotence a partition may have several batches in flight, so a retried batch can
//! land after a later one (as with the Java client); with idempotence a partition has one batch
//! in flight at a time, so retries never reorder or duplicate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use fjord_protocol::ErrorCode;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pipeline::{Pipeline, Slot};
use crate::producer::Shared;
use crate::producer::accumulator::{PendingRecord, ProducerBatch, Sequenced, TopicPartition};
use crate::producer::config::{Acks, Compression};
use crate::producer::metadata;
use crate::producer::record::RecordMetadata;
use crate::producer::request::{self, TopicBatches};

/// A finished Produce request.
struct Done {
    node: i32,
    batches: Vec<ProducerBatch>,
    /// The response (None with acks=0), and the connection if this request opened it.
    result: Result<(Option<Pipeline>, Option<ProduceResponse>)>,
}

struct Sender {
    shared: Arc<Shared>,
    connections: HashMap<i32, Pipeline>,
    metadata_connection: Option<Connection>,
    /// Requests in flight per broker, and batches in flight per partition.
    node_in_flight: HashMap<i32, usize>,
    partition_in_flight: HashMap<TopicPartition, usize>,
    in_flight: usize,
    last_refresh: Option<Instant>,
    /// Producer id and epoch (idempotence), and the next sequence per partition.
    producer: Option<(i64, i16)>,
    last_init: Option<Instant>,
    sequences: HashMap<TopicPartition, i32>,
}

/// Runs until the producer is closed and everything sent has an answer.
pub(crate) async fn run(shared: Arc<Shared>) {
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
    let mut sender = Sender {
        shared,
        connections: HashMap::new(),
        metadata_connection: None,
        node_in_flight: HashMap::new(),
        partition_in_flight: HashMap::new(),
        in_flight: 0,
        last_refresh: None,
        producer: None,
        last_init: None,
        sequences: HashMap::new(),
    };
    loop {
        let now = Instant::now();
        sender.expire(now);
        let backoff = sender.shared.config.retry_backoff;
        let wants_refresh = sender.shared.refresh.load(Ordering::Acquire);
        if wants_refresh && sender.last_refresh.is_none_or(|at| now >= at + backoff) {
            sender.refresh_metadata().await;
        }
        if sender.shared.config.enable_idempotence
            && sender.producer.is_none()
            && sender.last_init.is_none_or(|at| now >= at + backoff)
            && !sender.accumulator_empty()
        {
            sender.init_producer_id().await;
        }
        // Each round sends at most one batch per partition; go on while rounds send something
        // (a partition may have several ready batches and room for more in flight).
        let blocked = loop {
            let (blocked, sent) = sender.send_ready(Instant::now(), &done_tx);
            if blocked || sent == 0 {
                break blocked;
            }
        };
        if sender.shared.closed.load(Ordering::Acquire)
            && sender.accumulator_empty()
            && sender.in_flight == 0
        {
            break;
        }
        let now = Instant::now();
        let mut deadline = sender.next_deadline().filter(|d| *d > now);
        if blocked || sender.shared.refresh.load(Ordering::Acquire) {
            let retry = now + backoff;
            deadline = Some(deadline.map_or(retry, |d| d.min(retry)));
        }
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sender.shared.wake.notified() => {}
            Some(done) = done_rx.recv() => sender.complete(done),
            _ = sleep => {}
        }
    }
}

impl Sender {
    fn metadata_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.shared
            .metadata_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn accumulator_empty(&self) -> bool {
        self.shared.accumulator().is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.shared.accumulator().next_deadline()
    }

    /// Fails batches that waited longer than `delivery.timeout.ms`.
    fn expire(&mut self, now: Instant) {
        let timeout = self.shared.config.delivery_timeout;
        let expired = self.shared.accumulator().expire(now, timeout);
        for batch in expired {
            self.fail_timeout(batch);
        }
    }

    async fn connect_any(&mut self) -> Result<&mut Connection> {
        if self.metadata_connection.is_none() {
            let known: Vec<String> = self
                .shared
                .metadata
                .borrow()
                .brokers
                .values()
                .cloned()
                .collect();
            let mut last = None;
            for addr in known.iter().chain(&self.shared.config.bootstrap_servers) {
                match Connection::connect(addr, &self.shared.config.client_id).await {
                    Ok(c) => {
                        self.metadata_connection = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.metadata_connection.is_none() {
                return Err(last.unwrap_or(Error::Closed));
            }
        }
        self.metadata_connection.as_mut().ok_or(Error::Closed)
    }

    async fn refresh_metadata(&mut self) {
        self.last_refresh = Some(Instant::now());
        self.shared.refresh.store(false, Ordering::Release);
        let topics = self.shared.topics().clone();
        let result = match self.connect_any().await {
            Ok(conn) => metadata::fetch(conn, &topics).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(md) => {
                tracing::debug!(
                    topics = topics.len(),
                    brokers = md.brokers.len(),
                    "metadata refreshed"
                );
                *self.metadata_error() = None;
                self.shared.metadata.send_replace(Arc::new(md));
            }
            Err(error) => {
                let text = crate::error::chain(&error);
                let mut last = self.metadata_error();
                // Retries come every retry.backoff.ms: say each distinct failure once.
                if last.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "metadata refresh failed; retrying");
                } else {
                    tracing::debug!(error = %text, "metadata refresh failed again");
                }
                *last = Some(text);
                drop(last);
                self.metadata_connection = None;
                self.shared.refresh.store(true, Ordering::Release);
            }
        }
    }

    async fn init_producer_id(&mut self) {
        self.last_init = Some(Instant::now());
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let result = async {
            let conn = self.connect_any().await?;
            let version = conn.version_of::<InitProducerIdRequest>()?.min(4);
            conn.send_at(&request, version).await
        }
        .await;
        match result {
            Ok(r) if r.error_code == 0 => {
                tracing::debug!(
                    producer_id = r.producer_id.0,
                    epoch = r.producer_epoch,
                    "producer id"
                );
                self.producer = Some((r.producer_id.0, r.producer_epoch));
                self.sequences.clear();
            }
            Ok(r) => {
                let error = Error::broker("InitProducerId", r.error_code, None);
                tracing::warn!(%error, "no producer id yet");
            }
            Err(error) => {
                tracing::warn!(%error, "no producer id yet");
                self.metadata_connection = None;
            }
        }
    }

    /// Sends the first ready batch of each partition whose leader is known and has room in
    /// flight. Returns whether some ready batch waits for metadata or a producer id, and how
    /// many requests went out.
    fn send_ready(&mut self, now: Instant, done: &mpsc::Sender<Done>) -> (bool, usize) {
        let md = self.shared.metadata.borrow().clone();
        let idempotent = self.shared.config.enable_idempotence;
        let max_in_flight = self.shared.config.max_in_flight.max(1) as usize;
        let per_partition = if idempotent { 1 } else { max_in_flight };
        let mut blocked = false;
        let mut sent = 0;
        let mut by_node: BTreeMap<i32, (Vec<ProducerBatch>, usize)> = BTreeMap::new();
        {
            let mut acc = self.shared.accumulator();
            for tp in acc.ready(now) {
                if self.partition_in_flight.get(&tp).copied().unwrap_or(0) >= per_partition {
                    continue;
                }
                let Some(leader) = md.leader(&tp.0, tp.1) else {
                    blocked = true;
                    self.shared.refresh.store(true, Ordering::Release);
                    continue;
                };
                let node_busy = self.node_in_flight.get(&leader).copied().unwrap_or(0);
                // While the first request opens the connection, the others wait for it.
                if node_busy >= max_in_flight
                    || (node_busy > 0 && !self.connections.contains_key(&leader))
                {
                    continue;
                }
                if idempotent && self.producer.is_none() {
                    blocked = true;
                    continue;
                }
                let (batches, bytes) = by_node.entry(leader).or_default();
                if *bytes >= self.shared.config.max_request_size {
                    continue;
                }
                let Some(mut batch) = acc.drain(&tp) else {
                    continue;
                };
                if let Some((producer_id, producer_epoch)) = self.producer
                    && idempotent
                    && batch.sequenced.is_none_or(|s| {
                        (s.producer_id, s.producer_epoch) != (producer_id, producer_epoch)
                    })
                {
                    let next = self.sequences.entry(tp.clone()).or_insert(0);
                    batch.sequenced = Some(Sequenced {
                        producer_id,
                        producer_epoch,
                        base_sequence: *next,
                    });
                    *next = next.wrapping_add(batch.records.len() as i32) & i32::MAX;
                }
                *bytes += batch.size;
                batches.push(batch);
            }
        }
        for (node, (batches, _)) in by_node {
            let Some(addr) = md.brokers.get(&node).cloned() else {
                continue;
            };
            sent += 1;
            *self.node_in_flight.entry(node).or_default() += 1;
            for b in &batches {
                *self.partition_in_flight.entry(b.tp.clone()).or_default() += 1;
            }
            self.in_flight += 1;
            // The place in the connection's write order is taken now, in drain order.
            let slot = self.connections.get(&node).map(Pipeline::reserve);
            let config = &self.shared.config;
            let task = Produce {
                node,
                addr,
                client_id: config.client_id.clone(),
                acks: config.acks,
                timeout_ms: config.request_timeout.as_millis().min(i32::MAX as u128) as i32,
                compression: config.compression,
                request_timeout: config.request_timeout,
            };
            tokio::spawn(task.run(slot, batches, done.clone()));
        }
        (blocked, sent)
    }

    fn complete(&mut self, done: Done) {
        if let Some(n) = self.node_in_flight.get_mut(&done.node) {
            *n = n.saturating_sub(1);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        for b in &done.batches {
            if let Some(n) = self.partition_in_flight.get_mut(&b.tp) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.partition_in_flight.remove(&b.tp);
                }
            }
        }
        let now = Instant::now();
        let (connection, response) = match done.result {
            Ok(ok) => ok,
            Err(error) => {
                let retriable = matches!(
                    error,
                    Error::Io { .. } | Error::Connect { .. } | Error::Timeout { .. }
                );
                tracing::warn!(%error, node = done.node, retriable, "produce request failed");
                self.connections.remove(&done.node);
                self.shared.refresh.store(true, Ordering::Release);
                for batch in done.batches {
                    if retriable {
                        self.retry_or_fail(batch, now, duplicate(&error));
                    } else {
                        self.fail(batch, || duplicate(&error));
                    }
                }
                return;
            }
        };
        if let Some(connection) = connection {
            self.connections.insert(done.node, connection);
        }
        let Some(response) = response else {
            // acks=0: nothing to learn but that the request was written.
            for batch in done.batches {
                let partition = batch.tp.1;
                for record in batch.records {
                    let timestamp = record.timestamp;
                    self.shared.finish(
                        record,
                        Ok(RecordMetadata {
                            partition,
                            offset: -1,
                            timestamp,
                        }),
                    );
                }
            }
            return;
        };
        let mut answers = HashMap::new();
        for topic in response.responses {
            for p in topic.partition_responses {
                answers.insert((topic.name.0.to_string(), p.index), p);
            }
        }
        for batch in done.batches {
            let Some(answer) = answers.remove(&batch.tp) else {
                let error = Error::Protocol {
                    addr: format!("node {}", done.node),
                    reason: format!("no answer for {}-{}", batch.tp.0, batch.tp.1),
                };
                self.retry_or_fail(batch, now, error);
                continue;
            };
            let code = ErrorCode::try_from_code(answer.error_code);
            if answer.error_code == 0 || code == Some(ErrorCode::DuplicateSequenceNumber) {
                let partition = batch.tp.1;
                for (i, record) in batch.records.into_iter().enumerate() {
                    let offset = if answer.base_offset >= 0 {
                        answer.base_offset + i as i64
                    } else {
                        -1
                    };
                    let timestamp = if answer.log_append_time_ms >= 0 {
                        answer.log_append_time_ms
                    } else {
                        record.timestamp
                    };
                    self.shared.finish(
                        record,
                        Ok(RecordMetadata {
                            partition,
                            offset,
                            timestamp,
                        }),
                    );
                }
                continue;
            }
            let code = code.unwrap_or(ErrorCode::UnknownServerError);
            if matches!(
                code,
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::LeaderNotAvailable
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::KafkaStorageError
            ) {
                self.shared.refresh.store(true, Ordering::Release);
            }
            let context = format!("producing to {}-{}", batch.tp.0, batch.tp.1);
            let message = answer.error_message.map(|m| m.to_string());
            let error = Error::Broker {
                context,
                code,
                message,
            };
            if code.is_retriable() {
                tracing::debug!(%error, "retrying");
                self.retry_or_fail(batch, now, error);
            } else {
                if batch.sequenced.is_some() {
                    // Later sequences of this partition would leave a gap: start over with a
                    // new producer id.
                    self.producer = None;
                }
                self.fail(batch, || duplicate(&error));
            }
        }
    }

    fn retry_or_fail(&mut self, mut batch: ProducerBatch, now: Instant, error: Error) {
        let config = &self.shared.config;
        let retry_at = now + config.retry_backoff;
        if batch.attempts >= config.retries {
            self.fail(batch, || duplicate(&error));
        } else if retry_at >= batch.created + config.delivery_timeout {
            self.fail_timeout(batch);
        } else {
            batch.attempts += 1;
            self.shared.accumulator().requeue(batch, retry_at);
        }
    }

    fn fail_timeout(&mut self, batch: ProducerBatch) {
        if batch.sequenced.is_some() {
            self.producer = None;
        }
        let (topic, partition) = batch.tp.clone();
        let timeout_ms = self.shared.config.delivery_timeout.as_millis() as u64;
        self.fail(batch, || Error::DeliveryTimeout {
            topic: topic.clone(),
            partition,
            timeout_ms,
        });
    }

    fn fail(&self, batch: ProducerBatch, error: impl Fn() -> Error) {
        for record in batch.records {
            self.shared.finish(record, Err(error()));
        }
    }
}

/// Encoded batches grouped by topic, in the order given.
fn group_by_topic<'a>(encoded: &'a [(&'a TopicPartition, Bytes)]) -> Vec<TopicBatches<'a>> {
    let mut topics: Vec<TopicBatches<'a>> = Vec::new();
    for (tp, records) in encoded {
        match topics.iter_mut().find(|(name, _)| *name == tp.0) {
            Some((_, partitions)) => partitions.push((tp.1, records.clone())),
            None => topics.push((&tp.0, vec![(tp.1, records.clone())])),
        }
    }
    topics
}

/// A copy of an error for each record of a failed batch.
fn duplicate(error: &Error) -> Error {
    let io = |source: &std::io::Error| std::io::Error::new(source.kind(), source.to_string());
    match error {
        Error::Connect { addr, source } => Error::Connect {
            addr: addr.clone(),
            source: io(source),
        },
        Error::Io { addr, source } => Error::Io {
            addr: addr.clone(),
            source: io(source),
        },
        Error::Timeout {
            api,
            addr,
            timeout_ms,
        } => Error::Timeout {
            api: api.clone(),
            addr: addr.clone(),
            timeout_ms: *timeout_ms,
        },
        Error::Unsupported { api, addr } => Error::Unsupported {
            api: api.clone(),
            addr: addr.clone(),
        },
        Error::Broker {
            context,
            code,
            message,
        } => Error::Broker {
            context: context.clone(),
            code: *code,
            message: message.clone(),
        },
        other => Error::Protocol {
            addr: String::new(),
            reason: other.to_string(),
        },
    }
}

/// One Produce request to one broker.
struct Produce {
    node: i32,
    addr: String,
    client_id: String,
    acks: Acks,
    timeout_ms: i32,
    compression: Compression,
    request_timeout: std::time::Duration,
}

impl Produce {
    async fn run(self, slot: Option<Slot>, batches: Vec<ProducerBatch>, done: mpsc::Sender<Done>) {
        let result = self.exchange(slot, &batches).await;
        let _ = done
            .send(Done {
                node: self.node,
                batches,
                result,
            })
            .await;
    }

    /// Sends the request in `slot`, or on a new connection when there is none yet.
    async fn exchange(
        &self,
        slot: Option<Slot>,
        batches: &[ProducerBatch],
    ) -> Result<(Option<Pipeline>, Option<ProduceResponse>)> {
        // Compress and encode first (the slot's place in the write order is already taken).
        let encoded = self.encode_batches(batches);
        let (slot, opened) = match slot {
            Some(slot) => (slot, None),
            None => {
                let connection = Connection::connect(&self.addr, &self.client_id).await?;
                let pipeline = Pipeline::new(connection);
                (pipeline.reserve(), Some(pipeline))
            }
        };
        let encoded = encoded?;
        let common = slot.version_of::<ProduceRequest>()?;
        let expect_response = self.acks != Acks::None;
        let response = if common >= request::MIN_VERSION {
            // The usual path: batches go out as they are, no copy into a frame buffer.
            let version = common.min(request::MAX_VERSION);
            let topics = group_by_topic(&encoded);
            let (acks, timeout_ms) = (self.acks.code(), self.timeout_ms);
            slot.send_frame::<ProduceRequest>(
                version,
                expect_response,
                self.request_timeout,
                |correlation_id| {
                    request::produce_frame(
                        version,
                        correlation_id,
                        &self.client_id,
                        acks,
                        timeout_ms,
                        &topics,
                    )
                },
            )
            .await?
        } else {
            slot.send(
                &self.request(&encoded),
                common,
                expect_response,
                self.request_timeout,
            )
            .await?
        };
        Ok((opened, response))
    }

    /// Each batch compressed and encoded, with its partition.
    fn encode_batches<'b>(
        &self,
        batches: &'b [ProducerBatch],
    ) -> Result<Vec<(&'b TopicPartition, Bytes)>> {
        batches
            .iter()
            .map(|batch| {
                encode(batch, self.compression)
                    .map(|records| (&batch.tp, records.freeze()))
                    .map_err(|reason| Error::Protocol {
                        addr: self.addr.clone(),
                        reason,
                    })
            })
            .collect()
    }

    /// A Produce request through kafka-protocol's encoder (brokers older than v3).
    fn request(&self, encoded: &[(&TopicPartition, Bytes)]) -> ProduceRequest {
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        for (tp, records) in encoded {
            topics.entry(&tp.0).or_default().push(
                PartitionProduceData::default()
                    .with_index(tp.1)
                    .with_records(Some(records.clone())),
            );
        }
        ProduceRequest::default()
            .with_acks(self.acks.code())
            .with_timeout_ms(self.timeout_ms)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partition_data(partitions)
                    })
                    .collect(),
            )
    }
}

/// One magic-v2 record batch of `batch`'s records.
pub(crate) fn encode(batch: &ProducerBatch, compression: Compression) -> Result<BytesMut, String> {
    let (producer_id, producer_epoch, base_sequence) = match batch.sequenced {
        Some(s) => (s.producer_id, s.producer_epoch, s.base_sequence),
        None => (-1, -1, -1),
    };
    let records: Vec<Record> = batch
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| to_record(r, i as i32, producer_id, producer_epoch, base_sequence))
        .collect();
    let mut buf = BytesMut::with_capacity(batch.size + 64);
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: compression.codec(),
        },
    )
    .map_err(|e| format!("encoding a batch for {}-{}: {e}", batch.tp.0, batch.tp.1))?;
    Ok(buf)
}

fn to_record(
    record: &PendingRecord,
    index: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Record {
    let headers: IndexMap<StrBytes, Option<bytes::Bytes>> = record
        .headers
        .iter()
        .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
        .collect();
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: i64::from(index),
        // The encoder derives the base sequence from the first record; without idempotence
        // it must come out as -1.
        sequence: base_sequence.wrapping_add(index),
        timestamp: record.timestamp,
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }
}
