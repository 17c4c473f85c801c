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
        let admin = Admin::connect(&self.bootstrap()).await?;
        admin
            .create_topic(topic, partitions, 1, &BTreeMap::new())
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

/// Polls `check` every 100 ms until it holds or `wait` passes.
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
