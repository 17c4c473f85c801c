//! Partition replication, the broker's moving parts (the rules are `replication/`):
//!
//! - Replica fetchers: one task per leader this broker follows partitions of. Each fetch asks
//!   for every partition it follows there, from its log end, with the replica id set (Kafka's
//!   Fetch API); the answer's batches are appended as they are (offsets and epochs are the
//!   leader's) and the leader's high watermark is taken.
//! - Before fetching at a new leader epoch a follower truncates a divergent tail: it asks the
//!   leader where its own latest epoch ends (OffsetForLeaderEpoch, KIP-101/279).
//! - Leaders send AlterPartition to the controller when a follower joins or leaves the ISR.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, OffsetForLeaderEpochRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::controller::{ControllerReply, ControllerRequest};
use super::node::BrokerCluster;
use crate::broker::Broker;
use crate::partition::{Partition, Role};
use crate::replication::epochs::EpochEnd;

/// Fetch v12: topics by name, the replica id in the request (v15 moved it).
const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE: usize = 256 << 20;

/// Sends a leader's AlterPartition in the background and applies the answer.
pub(crate) fn send_alter_partition(
    cluster: Arc<BrokerCluster>,
    partition: Arc<Partition>,
    request: ControllerRequest,
) {
    tokio::spawn(async move {
        let reply = cluster.client.call(&request, Duration::from_secs(10)).await;
        match reply {
            Ok(ControllerReply::Partition { state }) => {
                tracing::info!(topic = partition.topic(), partition = partition.index(), isr = ?state.isr, "ISR changed");
                partition.isr_changed(Some(&state));
            }
            Ok(ControllerReply::Error { code, message }) => {
                tracing::debug!(topic = partition.topic(), partition = partition.index(), code, %message, "AlterPartition refused");
                partition.isr_changed(None);
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected AlterPartition reply");
                partition.isr_changed(None);
            }
            Err(e) => {
                tracing::debug!(error = %e.message, "AlterPartition failed");
                partition.isr_changed(None);
            }
        }
    });
}

/// Leaders drop followers that stopped catching up (`replica.lag.time.max.ms`).
pub(crate) async fn check_isr(
    broker: Arc<Broker>,
    cluster: Arc<BrokerCluster>,
    shutdown: CancellationToken,
) -> crate::error::Result<()> {
    let lag = cluster.settings.replica_lag_time_max_ms;
    let period = Duration::from_millis((lag / 2).clamp(10, 5_000) as u64);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(period) => {}
        }
        let now = broker.now_ms();
        for topic in broker.topics() {
            for partition in topic.partitions() {
                if let Some(request) = partition.check_lagging(now, lag) {
                    send_alter_partition(Arc::clone(&cluster), partition, request);
                }
            }
        }
    }
}

/// Keeps one fetcher task per leader that this broker follows partitions of.
pub(crate) async fn run_fetchers(
    broker: Arc<Broker>,
    cluster: Arc<BrokerCluster>,
    shutdown: CancellationToken,
) -> crate::error::Result<()> {
    let mut fetchers: HashMap<(i32, String, u16), CancellationToken> = HashMap::new();
    loop {
        let image = cluster.image();
        let mut wanted = BTreeMap::new();
        for topic in broker.topics() {
            for partition in topic.partitions() {
                if let Role::Follower { leader, .. } = partition.role()
                    && leader >= 0
                    && let Some(b) = image.image.brokers.get(&leader)
                {
                    wanted.insert((leader, b.host.clone(), b.port), ());
                }
            }
        }
        fetchers.retain(|key, token| {
            let keep = wanted.contains_key(key);
            if !keep {
                token.cancel();
            }
            keep
        });
        for key in wanted.into_keys() {
            if fetchers.contains_key(&key) {
                continue;
            }
            let token = shutdown.child_token();
            fetchers.insert(key.clone(), token.clone());
            tokio::spawn(fetch_from(
                Arc::clone(&broker),
                Arc::clone(&cluster),
                key,
                token,
            ));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// A connection to a leader, speaking the Kafka protocol as a client.
struct LeaderConnection {
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
}

impl LeaderConnection {
    async fn connect(host: &str, port: u16, me: i32) -> std::io::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((host, port)))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        Ok(LeaderConnection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(format!("fjord-replica-fetcher-{me}")),
        })
    }

    async fn send<R>(&mut self, request: &R, version: i16) -> std::io::Result<R::Response>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        self.correlation = self.correlation.wrapping_add(1);
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| invalid(e.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| invalid(e.to_string()))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_RESPONSE)
                .ok_or_else(|| invalid(format!("bad response length {len}")))?;
            let mut body = BytesMut::zeroed(len);
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(body.freeze())
        };
        let mut body = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out")
            })??;
        let header = ResponseHeader::decode(
            &mut body,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| invalid(e.to_string()))?;
        if header.correlation_id != self.correlation {
            return Err(invalid("correlation id mismatch".into()));
        }
        let response =
            R::Response::decode(&mut body, version).map_err(|e| invalid(e.to_string()))?;
        if body.has_remaining() {
            tracing::debug!(left = body.remaining(), "bytes left after a response");
        }
        Ok(response)
    }
}

/// The partitions this broker follows at `leader`: (partition, its leader epoch).
fn followed(broker: &Broker, leader: i32) -> Vec<(Arc<Partition>, i32)> {
    let mut out = Vec::new();
    for topic in broker.topics() {
        for partition in topic.partitions() {
            if let Role::Follower { leader: l, epoch } = partition.role()
                && l == leader
            {
                out.push((partition, epoch));
            }
        }
    }
    out
}

/// One leader's fetcher: truncate where needed, then fetch in a loop.
async fn fetch_from(
    broker: Arc<Broker>,
    cluster: Arc<BrokerCluster>,
    (leader, host, port): (i32, String, u16),
    token: CancellationToken,
) {
    let me = broker.node_id();
    let mut backoff = Duration::from_millis(50);
    let mut last_report: Option<std::time::Instant> = None;
    'connect: loop {
        if token.is_cancelled() {
            return;
        }
        let mut conn = match LeaderConnection::connect(&host, port, me).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(leader, error = %e, "cannot reach the leader");
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && last_report.is_none_or(|t: std::time::Instant| {
                        t.elapsed() > Duration::from_millis(500)
                    })
                {
                    last_report = Some(std::time::Instant::now());
                    let cluster = Arc::clone(&cluster);
                    tokio::spawn(async move {
                        let request = ControllerRequest::ReportUnreachable { broker: leader };
                        let _ = cluster.client.call(&request, Duration::from_secs(2)).await;
                    });
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        loop {
            if token.is_cancelled() {
                return;
            }
            let partitions = followed(&broker, leader);
            if partitions.is_empty() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
            for (partition, epoch) in &partitions {
                if partition.needs_truncation(*epoch)
                    && let Err(e) = truncate(&mut conn, &broker, partition, *epoch).await
                {
                    partition.truncation_failed();
                    tracing::debug!(leader, error = %e, "truncation request failed");
                    continue 'connect;
                }
            }
            let request = fetch_request(me, &cluster, &partitions);
            let fetched = tokio::select! {
                _ = token.cancelled() => return,
                r = conn.send(&request, FETCH_VERSION) => r,
            };
            let response = match fetched {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(leader, error = %e, "replica fetch failed");
                    continue 'connect;
                }
            };
            let mut errors = false;
            let now = broker.now_ms();
            for topic in response.responses {
                let Some(t) = broker.topic(topic.topic.0.as_str()) else {
                    continue;
                };
                let config = t.config();
                for data in topic.partitions {
                    let Some(partition) = t.partition(data.partition_index) else {
                        continue;
                    };
                    if data.error_code != 0 {
                        errors = true;
                        tracing::debug!(
                            topic = t.name(),
                            partition = data.partition_index,
                            code = data.error_code,
                            "replica fetch error"
                        );
                        continue;
                    }
                    if !matches!(partition.role(), Role::Follower { leader: l, .. } if l == leader)
                    {
                        continue;
                    }
                    let records = data.records.unwrap_or_default();
                    if let Err(e) = partition.append_replicated(
                        &records,
                        data.high_watermark,
                        config.log(),
                        now,
                    ) {
                        errors = true;
                        tracing::warn!(topic = t.name(), partition = data.partition_index, error = %e, "could not append fetched batches");
                    }
                }
            }
            broker.notify_appended();
            if errors {
                // Usually a leadership change the image has not shown yet.
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

fn fetch_request(
    me: i32,
    cluster: &BrokerCluster,
    partitions: &[(Arc<Partition>, i32)],
) -> FetchRequest {
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (partition, epoch) in partitions {
        let offsets = partition.offsets();
        topics
            .entry(partition.topic().to_string())
            .or_default()
            .push(
                FetchPartition::default()
                    .with_partition(partition.index())
                    .with_current_leader_epoch(*epoch)
                    .with_fetch_offset(offsets.log_end)
                    .with_log_start_offset(offsets.log_start)
                    .with_partition_max_bytes(cluster.settings.replica_fetch_max_bytes),
            );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(cluster.settings.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(10 << 20)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Asks the leader where this log's latest epoch ends and cuts a divergent tail.
async fn truncate(
    conn: &mut LeaderConnection,
    broker: &Broker,
    partition: &Partition,
    epoch: i32,
) -> std::io::Result<()> {
    let Some(latest) = partition.lock().latest_epoch() else {
        return Ok(());
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(
                    partition.topic().to_string(),
                )))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(partition.index())
                        .with_current_leader_epoch(epoch)
                        .with_leader_epoch(latest.epoch),
                ]),
        ]);
    let response = conn.send(&request, EPOCH_VERSION).await?;
    let answer = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition == partition.index());
    let Some(answer) = answer else {
        return Err(std::io::Error::other("no answer for the partition"));
    };
    if answer.error_code != 0 {
        return Err(std::io::Error::other(format!(
            "OffsetForLeaderEpoch error {}",
            answer.error_code
        )));
    }
    let leader_end = EpochEnd {
        epoch: answer.leader_epoch,
        end_offset: answer.end_offset,
    };
    let config = broker
        .topic(partition.topic())
        .map(|t| t.config())
        .ok_or_else(|| std::io::Error::other("topic vanished"))?;
    let mut log = partition.lock();
    let target = crate::replication::follower::truncation_offset(
        log.epochs(),
        log.log_end_offset(),
        log.high_watermark(),
        leader_end,
    );
    if target < log.log_end_offset() {
        tracing::info!(
            topic = partition.topic(),
            partition = partition.index(),
            from = log.log_end_offset(),
            to = target,
            "truncating a divergent tail before following the new leader"
        );
        log.truncate_to(target, config.log(), broker.now_ms())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}
