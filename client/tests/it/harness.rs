//! A real broker in-process on an ephemeral loopback port, and helpers to create topics,
//! produce raw batches and fetch records back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::records::{
    Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use anyhow::{Context, Result, anyhow, ensure};
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_client::Connection;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A broker served on `127.0.0.1:0` over a temporary directory; stopped on drop.
pub(crate) struct TestBroker {
    _dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    _task: JoinHandle<fjord_broker::Result<()>>,
}

/// Upper bound on waiting for something to arrive.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

impl TestBroker {
    /// A broker with the default configuration.
    pub(crate) async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// A new client connection.
    pub(crate) async fn connection(&self) -> Result<Connection> {
        Ok(Connection::connect(&self.bootstrap(), "it").await?)
    }

    /// A broker with these Kafka broker configs set.
    pub(crate) async fn start_with(overrides: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut values: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        values.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
        values.insert("log.dirs".into(), dir.path().display().to_string());
        let broker = Broker::open(BrokerConfig::from_values(values)?)?;
        let server = Server::bind(broker).await?;
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Ok(TestBroker {
            _dir: dir,
            addr,
            shutdown,
            _task: task,
        })
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Every record of a partition, from offset 0 to the high watermark.
pub(crate) async fn fetch_all(addr: &str, topic: &str, partition: i32) -> Result<Vec<Record>> {
    let mut conn = Connection::connect(addr, "it-fetch").await?;
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..1000 {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_log_start_offset(-1)
                            .with_current_leader_epoch(-1)
                            .with_last_fetched_epoch(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let response = conn.send_at(&request, 12).await?;
        let data = response
            .responses
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
            .context("no partition in Fetch")?;
        ensure!(data.error_code == 0, "fetch error {}", data.error_code);
        let mut records = data.records.unwrap_or_default();
        if records.is_empty() {
            return Ok(out);
        }
        for set in RecordBatchDecoder::decode_all(&mut records).map_err(|e| anyhow!("{e}"))? {
            for record in set.records {
                if record.offset >= offset {
                    offset = record.offset + 1;
                    out.push(record);
                }
            }
        }
    }
    Ok(out)
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// Creates a topic with `partitions` partitions (replication factor 1).
pub(crate) async fn create_topic(
    conn: &mut Connection,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(5_000);
    let response = conn.send_at(&request, 7).await?;
    let result = response.topics.first().context("no topic result")?;
    ensure!(
        result.error_code == 0,
        "creating {topic}: error {}",
        result.error_code
    );
    Ok(())
}

/// Produces records `first..first+count` (key `key-i`, value `value-i`, header `n=i`,
/// timestamp `base_timestamp + i`) as one batch; returns the base offset.
pub(crate) async fn produce_values(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    first: i64,
    count: i64,
    base_timestamp: i64,
    compression: Compression,
) -> Result<i64> {
    let records: Vec<Record> = (first..first + count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i - first,
            sequence: (i - first) as i32 - 1,
            timestamp: base_timestamp + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: IndexMap::from_iter([(
                StrBytes::from_static_str("n"),
                Some(Bytes::from(i.to_string())),
            )]),
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
    .map_err(|e| anyhow!("encode: {e}"))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(buf.freeze())),
                ]),
        ]);
    let response = conn.send_at(&request, 9).await?;
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in Produce")?;
    ensure!(
        p.error_code == 0,
        "produce to {topic}-{partition}: error {}",
        p.error_code
    );
    Ok(p.base_offset)
}
