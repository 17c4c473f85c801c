//! A real broker in-process on an ephemeral loopback port, and a fetch helper.

use std::collections::BTreeMap;
use std::net::SocketAddr;

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

impl TestBroker {
    /// A broker with these Kafka broker configs set.
    pub(crate) async fn start(overrides: &[(&str, &str)]) -> Result<Self> {
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
