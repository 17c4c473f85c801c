//! A real broker on an ephemeral loopback port (in-process, over a temporary directory), and
//! helpers to create topics, produce and read records through fjord-client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use fjord_broker::{Broker, BrokerConfig, Server};
use fjord_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer, ProducerConfig,
    ProducerRecord,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A broker served on `127.0.0.1:0`; stopped on drop.
pub(crate) struct TestBroker {
    _dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    _task: JoinHandle<fjord_broker::Result<()>>,
}

impl TestBroker {
    pub(crate) async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut values = BTreeMap::new();
        values.insert(
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        );
        values.insert("log.dirs".to_string(), dir.path().display().to_string());
        // Rebalances in tests should not wait for the default 3 s.
        values.insert(
            "group.initial.rebalance.delay.ms".to_string(),
            "0".to_string(),
        );
        // A killed instance is noticed after the short session timeout the tests ask for.
        values.insert(
            "group.min.session.timeout.ms".to_string(),
            "1000".to_string(),
        );
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

    pub(crate) async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(topic, partitions, &[]).await
    }

    pub(crate) async fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let admin = Admin::connect(&self.bootstrap()).await?;
        let configs: BTreeMap<String, String> = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        admin
            .create_topic(topic, partitions, 1, &configs)
            .await
            .with_context(|| format!("creating {topic}"))?;
        Ok(())
    }

    pub(crate) fn producer(&self) -> Result<Producer> {
        Ok(Producer::new(
            ProducerConfig::new(self.bootstrap())
                .with_linger(Duration::from_millis(5))
                .with_batch_size(512 * 1024),
        )?)
    }

    /// Every record of `topic` until `count` have arrived (or `wait` passes).
    pub(crate) async fn read(
        &self,
        topic: &str,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<ConsumerRecord>> {
        let admin = Admin::connect(&self.bootstrap()).await?;
        let partitions = admin.partitions(topic).await?;
        let mut consumer = Consumer::new(
            ConsumerConfig::new(self.bootstrap()).auto_offset_reset(OffsetReset::Earliest),
        )
        .await?;
        consumer.assign(partitions.iter().map(|p| (topic.to_string(), *p)))?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < count && tokio::time::Instant::now() < deadline {
            out.extend(consumer.poll(Duration::from_millis(200)).await?);
        }
        Ok(out)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Sends records and waits for all acknowledgements.
pub(crate) async fn produce(
    producer: &Producer,
    topic: &str,
    records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>, i64)>,
) -> Result<()> {
    let mut pending = Vec::new();
    for (key, value, ts) in records {
        pending.push(
            producer
                .send(ProducerRecord {
                    topic: topic.to_string(),
                    partition: None,
                    key,
                    value,
                    headers: Vec::new(),
                    timestamp: Some(ts),
                })
                .await?,
        );
        if pending.len() >= 100_000 {
            for p in pending.drain(..) {
                p.await?;
            }
        }
    }
    for p in pending {
        p.await?;
    }
    Ok(())
}

/// A record to write: partition, key, value, timestamp, headers.
pub(crate) struct Rec {
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) ts: i64,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
}

impl Rec {
    pub(crate) fn json(
        partition: Option<i32>,
        key: Option<&str>,
        value: serde_json::Value,
        ts: i64,
    ) -> Self {
        Rec {
            partition,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from(value.to_string())),
            ts,
            headers: Vec::new(),
        }
    }
}

/// Sends records (in order) and waits for all acknowledgements.
pub(crate) async fn produce_recs(
    producer: &Producer,
    topic: &str,
    records: Vec<Rec>,
) -> Result<()> {
    let mut pending = Vec::new();
    for r in records {
        pending.push(
            producer
                .send(ProducerRecord {
                    topic: topic.to_string(),
                    partition: r.partition,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    timestamp: Some(r.ts),
                })
                .await?,
        );
    }
    for p in pending {
        p.await?;
    }
    Ok(())
}

/// Polls `check` every 100 ms until it holds or `wait` passes.
#[allow(dead_code)]
pub(crate) async fn eventually(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}
