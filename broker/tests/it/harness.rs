//! A real broker on an ephemeral loopback port, and a tiny raw Kafka client to talk to it.
//!
//! [`TestBroker`] runs [`Server`] in-process with a `tempfile` data directory and Kafka-named
//! config overrides; it stops cleanly (cancel, then await `run`), crashes (abort, no clean
//! shutdown) and restarts on the same data directory. [`Client`] encodes requests with the
//! `kafka-protocol` crate, one frame at a time, and can also send raw bytes. Every read is
//! bounded by [`IO_TIMEOUT`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord_broker::{Broker, BrokerConfig, Server};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Upper bound on any single wait for the broker (connect, read, stop).
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Versions the helpers speak; tests that care about a version pass it explicitly.
pub(crate) const PRODUCE_V: i16 = 9;
pub(crate) const FETCH_V: i16 = 12;
pub(crate) const LIST_OFFSETS_V: i16 = 7;
pub(crate) const METADATA_V: i16 = 12;
pub(crate) const CREATE_TOPICS_V: i16 = 7;

/// Wire string from a Rust string.
pub(crate) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Wire topic name from a Rust string.
pub(crate) fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

/// The current wall-clock time in milliseconds, as the broker's clock reads it.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A broker served in-process on `127.0.0.1:0`, over a temporary data directory.
pub(crate) struct TestBroker {
    dir: tempfile::TempDir,
    overrides: BTreeMap<String, String>,
    running: Option<Running>,
}

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<fjord_broker::Result<()>>,
}

impl TestBroker {
    /// A broker with the default configuration.
    pub(crate) async fn start() -> Result<Self> {
        Self::with_overrides(&[]).await
    }

    /// A broker with these Kafka broker configs set (e.g. `("num.partitions", "3")`).
    pub(crate) async fn with_overrides(overrides: &[(&str, &str)]) -> Result<Self> {
        let mut broker = TestBroker {
            dir: tempfile::tempdir().context("create the data directory")?,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            running: None,
        };
        broker.launch().await?;
        Ok(broker)
    }

    fn config(&self) -> Result<BrokerConfig> {
        let mut values = self.overrides.clone();
        values.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
        values.insert("log.dirs".into(), self.dir.path().display().to_string());
        Ok(BrokerConfig::from_values(values)?)
    }

    async fn launch(&mut self) -> Result<()> {
        ensure!(self.running.is_none(), "the broker is already running");
        let broker = Broker::open(self.config()?).context("open the broker")?;
        let server = Server::bind(broker).await.context("bind the server")?;
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        self.running = Some(Running {
            addr,
            shutdown,
            task,
        });
        Ok(())
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .map(|r| r.addr)
            .expect("the broker is not running")
    }

    /// The broker's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<data dir>/<topic>-<partition>`.
    pub(crate) fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.path().join(format!("{topic}-{partition}"))
    }

    /// Whether the server task is still running (it has not returned or panicked).
    pub(crate) fn is_serving(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.task.is_finished())
    }

    /// A new connection to the broker.
    pub(crate) async fn client(&self) -> Result<Client> {
        Client::connect(self.addr()).await
    }

    /// Stops the broker cleanly: cancels it and waits for `run` to return `Ok`.
    pub(crate) async fn stop(&mut self) -> Result<()> {
        let running = self.running.take().context("the broker is not running")?;
        running.shutdown.cancel();
        let result = tokio::time::timeout(IO_TIMEOUT, running.task)
            .await
            .context("the broker did not stop within the timeout")?
            .context("the broker task panicked")?;
        result.context("the broker's clean shutdown failed")
    }

    /// Stops the broker without a clean shutdown: the server task is dropped mid-flight, no
    /// shutdown marker is written, so the next start recovers.
    pub(crate) async fn crash(&mut self) -> Result<()> {
        let running = self.running.take().context("the broker is not running")?;
        running.task.abort();
        let _ = tokio::time::timeout(IO_TIMEOUT, running.task).await;
        Ok(())
    }

    /// Starts the broker again on the same data directory (after [`stop`](Self::stop) or
    /// [`crash`](Self::crash)).
    pub(crate) async fn start_again(&mut self) -> Result<()> {
        // After a crash the aborted tasks release the broker (and its data directory lock) as
        // the runtime drops them; give that a moment.
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        loop {
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e)
                    if tokio::time::Instant::now() < deadline
                        && e.chain().any(|c| c.to_string().contains("in use")) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Clean stop, then start on the same data directory.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.start_again().await
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown.cancel();
        }
    }
}

/// A raw Kafka connection: one request frame out, one response frame in.
pub(crate) struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Encodes a request frame (size prefix included) with the next correlation id.
    pub(crate) fn frame<R: Request>(&mut self, version: i16, request: &R) -> Result<(i32, Bytes)> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut out = BytesMut::new();
        out.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(s("fjord-it")))
            .encode(&mut out, key.request_header_version(version))?;
        request
            .encode(&mut out, version)
            .with_context(|| format!("encode {key:?} v{version}"))?;
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok((correlation_id, out.freeze()))
    }

    /// Sends a request without waiting for its response; returns its correlation id.
    pub(crate) async fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32> {
        let (correlation_id, frame) = self.frame(version, request)?;
        self.send_raw(&frame).await?;
        Ok(correlation_id)
    }

    /// Reads the next response, which must be `R`'s at `version` for `correlation_id`.
    pub(crate) async fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        let mut frame = self.read_frame().await?.with_context(|| {
            format!("connection closed instead of a {key:?} v{version} response")
        })?;
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .with_context(|| format!("decode the {key:?} v{version} response header"))?;
        ensure!(
            header.correlation_id == correlation_id,
            "response correlation id {} answers request {correlation_id}",
            header.correlation_id
        );
        let response = R::Response::decode(&mut frame, version)
            .with_context(|| format!("decode the {key:?} v{version} response body"))?;
        ensure!(
            !frame.has_remaining(),
            "{} bytes left after the {key:?} v{version} response",
            frame.remaining()
        );
        Ok(response)
    }

    /// Sends a request and reads its response.
    pub(crate) async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response> {
        let correlation_id = self.send(version, request).await?;
        self.receive::<R>(version, correlation_id).await
    }

    /// Writes bytes as they are.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        tokio::time::timeout(IO_TIMEOUT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .context("write timed out")??;
        Ok(())
    }

    /// Writes bytes, ignoring a broker that already closed the connection (for garbage input).
    pub(crate) async fn send_raw_lossy(&mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(IO_TIMEOUT, async {
            let _ = self.stream.write_all(bytes).await;
            let _ = self.stream.flush().await;
        })
        .await;
    }

    /// Closes the write side: the broker sees end of stream after what was sent.
    pub(crate) async fn finish_writing(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads one response frame (without its size prefix); `None` when the broker closed the
    /// connection cleanly between frames.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Bytes>> {
        self.read_frame_within(IO_TIMEOUT)
            .await?
            .context("no response within the timeout")
    }

    /// [`read_frame`](Self::read_frame) bounded by `limit`; the outer `None` means nothing
    /// arrived in time.
    pub(crate) async fn read_frame_within(
        &mut self,
        limit: Duration,
    ) -> Result<Option<Option<Bytes>>> {
        let read = async {
            let mut prefix = [0u8; 4];
            match self.stream.read_exact(&mut prefix).await {
                Ok(_) => {}
                // A reset (unread bytes left in the broker's socket) is a close too.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(anyhow::Error::from(e)),
            }
            let len = i32::from_be_bytes(prefix);
            ensure!(len >= 0, "negative response size {len}");
            let mut frame = vec![0u8; len as usize];
            self.stream.read_exact(&mut frame).await?;
            Ok(Some(Bytes::from(frame)))
        };
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Asserts that the broker closes this connection without answering.
    pub(crate) async fn expect_closed(&mut self) -> Result<()> {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut buf))
            .await
            .context("the broker kept the connection open")?;
        match read {
            Ok(0) => Ok(()),
            Ok(n) => bail!("expected the connection to close, got {n} bytes"),
            // A reset (unread bytes left in the broker's socket) is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// ---- Request helpers at the versions above; each checks nothing but transport. ----

/// A CreateTopics entry with `partitions` partitions, replication factor 1 and `configs`.
pub(crate) fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

/// Creates a topic and returns its id; fails unless the broker reports success.
pub(crate) async fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<Uuid> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable(name, partitions, configs)])
        .with_timeout_ms(5_000);
    let response = client.call(CREATE_TOPICS_V, &request).await?;
    let result = response.topics.first().context("no topic result")?;
    ensure!(
        result.error_code == 0,
        "creating {name} failed: {:?} {:?}",
        result.error_code.err(),
        result.error_message
    );
    Ok(result.topic_id)
}

/// The topic id Metadata reports for `name`.
pub(crate) async fn topic_id(client: &mut Client, name: &str) -> Result<Uuid> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic(name))),
    ]));
    let response = client.call(METADATA_V, &request).await?;
    let found = response.topics.first().context("no topic in Metadata")?;
    ensure!(
        found.error_code == 0,
        "Metadata for {name}: {:?}",
        found.error_code.err()
    );
    Ok(found.topic_id)
}

/// A produce request of one partition's records.
pub(crate) fn produce_request(
    name: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Produces `records` (acks=1) and returns the partition's response.
pub(crate) async fn produce(
    client: &mut Client,
    name: &str,
    partition: i32,
    records: Vec<u8>,
) -> Result<PartitionProduceResponse> {
    let request = produce_request(name, partition, 1, Bytes::from(records));
    let response = client.call(PRODUCE_V, &request).await?;
    let topic = response
        .responses
        .into_iter()
        .next()
        .context("no topic in Produce")?;
    topic
        .partition_responses
        .into_iter()
        .next()
        .context("no partition in Produce")
}

/// Produces and requires success; returns the base offset.
pub(crate) async fn produce_ok(
    client: &mut Client,
    name: &str,
    partition: i32,
    records: Vec<u8>,
) -> Result<i64> {
    let response = produce(client, name, partition, records).await?;
    ensure!(
        response.error_code == 0,
        "produce to {name}-{partition} failed: {:?} {:?}",
        response.error_code.err(),
        response.error_message
    );
    Ok(response.base_offset)
}

/// A fetch of one partition by name (versions below 13).
pub(crate) fn fetch_request(
    name: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_log_start_offset(-1)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ])
}

/// Fetches one partition (no wait) and returns its data.
pub(crate) async fn fetch(
    client: &mut Client,
    name: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> Result<PartitionData> {
    let request = fetch_request(name, partition, offset, partition_max_bytes);
    let response = client.call(FETCH_V, &request).await?;
    ensure!(
        response.error_code == 0,
        "fetch failed: {:?}",
        response.error_code.err()
    );
    response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in Fetch")
}

/// Fetches everything from `offset` to the high watermark, batch by batch, requiring success.
pub(crate) async fn fetch_all(
    client: &mut Client,
    name: &str,
    partition: i32,
    mut offset: i64,
) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let data = fetch(client, name, partition, offset, 1024 * 1024).await?;
        ensure!(
            data.error_code == 0,
            "fetch {name}-{partition} at {offset}: {:?}",
            data.error_code.err()
        );
        let records = data.records.unwrap_or_default();
        if records.is_empty() {
            ensure!(
                offset >= data.high_watermark,
                "empty fetch at {offset} below the high watermark {}",
                data.high_watermark
            );
            return Ok(out);
        }
        for record in decode(records)? {
            if record.offset >= offset {
                offset = record.offset + 1;
                out.push(record);
            }
        }
    }
    bail!("fetch_all did not reach the end")
}

/// Decodes every batch in `bytes`.
pub(crate) fn decode(mut bytes: Bytes) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| anyhow!("decode: {e}"))? {
        out.extend(set.records);
    }
    Ok(out)
}

/// Splits fetched records into their batches (each a whole batch, validated or not).
pub(crate) fn split_batches(bytes: &Bytes) -> Result<Vec<Bytes>> {
    fjord_protocol::batch::Batches::new(bytes)
        .map(|item| {
            item.map(|(_, range)| bytes.slice(range))
                .map_err(|e| anyhow!("bad batch framing: {e}"))
        })
        .collect()
}

/// One ListOffsets lookup.
pub(crate) async fn list_offset(
    client: &mut Client,
    version: i16,
    name: &str,
    partition: i32,
    timestamp: i64,
) -> Result<ListOffsetsPartitionResponse> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = client.call(version, &request).await?;
    response
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in ListOffsets")
}

/// A batch of `count` records whose values are `value-<i>`, encoded with `compression`.
pub(crate) fn encoded_batch(count: i32, timestamp: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: i,
            timestamp: timestamp + i64::from(i),
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding a record batch");
    buf.to_vec()
}

/// A deterministic pseudo-random byte string (xorshift), for garbage input.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
