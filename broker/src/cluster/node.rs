//! One cluster node: a controller (Raft voter serving the controller listener), a broker
//! (Kafka listener, registered with the quorum, applying its metadata image), or both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fjord_protocol::ErrorCode;
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::controller::{ControllerApi, ControllerReply, ControllerRequest, QuorumClient};
use super::raft::{Applied, LogStore, NodeId, Raft, StateMachine};
use super::rpc;
use super::rpc::Network;
use crate::broker::Broker;
use crate::config::{BrokerConfig, ClusterSettings};
use crate::error::{ApiError, Error, Result};
use crate::server::Server;

/// The metadata log's directory under `log.dirs` (Kafka's name).
const METADATA_DIR: &str = "__cluster_metadata-0";

/// How long admin requests wait for the active controller.
pub(crate) const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker's link to the cluster: the quorum client, its registration and its image.
#[derive(Debug)]
pub(crate) struct BrokerCluster {
    pub(crate) client: QuorumClient,
    pub(crate) settings: ClusterSettings,
    image: watch::Sender<Arc<Applied>>,
    epoch: AtomicI64,
    /// The current producer-id block: next id and end (exclusive).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
}

impl BrokerCluster {
    /// The metadata image this broker has applied.
    pub(crate) fn image(&self) -> Arc<Applied> {
        Arc::clone(&self.image.borrow())
    }

    /// Waits (up to `timeout`) until the applied image satisfies `f`.
    pub(crate) async fn wait_for(&self, timeout: Duration, f: impl Fn(&Applied) -> bool) -> bool {
        let mut rx = self.image.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| f(a)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A producer id unique in the cluster, from blocks the controller hands out.
    pub(crate) async fn next_producer_id(&self, broker: i32) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let reply = self
                .client
                .call(
                    &ControllerRequest::AllocateProducerIds { broker, size: 1000 },
                    CONTROLLER_TIMEOUT,
                )
                .await?;
            match reply {
                ControllerReply::ProducerIds { start, size } => *block = (start, start + size),
                other => return Err(other.into_error()),
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// A controller write that answers `Done`, with the admin timeout.
    pub(crate) async fn write(&self, request: ControllerRequest) -> Result<u64, ApiError> {
        let version = self.client.write(&request, CONTROLLER_TIMEOUT).await?;
        // Answer once this broker's image has the write (read-your-writes for the client).
        self.wait_for(Duration::from_secs(5), |a| a.version >= version)
            .await;
        Ok(self.image().version)
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    /// The Kafka listener's address, when the node is a broker.
    pub client_addr: Option<SocketAddr>,
    /// The controller listener's address, when the node is a controller.
    pub controller_addr: Option<SocketAddr>,
    broker: Option<(i32, Arc<BrokerCluster>)>,
    tasks: JoinSet<Result<()>>,
}

impl Node {
    /// Starts the roles `config.cluster` names. Requires `process.roles`.
    pub async fn start(config: BrokerConfig, shutdown: CancellationToken) -> Result<Node> {
        let settings = config.cluster.clone().ok_or_else(|| Error::Cluster {
            reason: "a cluster node needs process.roles and controller.quorum.voters".into(),
        })?;
        let node_id = u64::try_from(config.node_id).unwrap_or_default();
        let mut tasks = JoinSet::new();
        let mut controller_addr = None;
        let mut local_sm = None;
        if settings.controller {
            let (addr, sm) =
                start_controller(node_id, &config, &settings, &mut tasks, &shutdown).await?;
            controller_addr = Some(addr);
            local_sm = Some(sm);
        }
        let mut client_addr = None;
        let mut broker_link = None;
        if settings.broker {
            let broker = Broker::open(config.clone())?;
            let server = Server::bind(Arc::clone(&broker)).await?;
            client_addr = Some(server.local_addr());
            let client =
                QuorumClient::new(&settings.voters).map_err(|reason| Error::Cluster { reason })?;
            let cluster = Arc::new(BrokerCluster {
                client,
                settings: settings.clone(),
                image: watch::channel(Arc::new(Applied::default())).0,
                epoch: AtomicI64::new(-1),
                producer_ids: tokio::sync::Mutex::new((0, 0)),
            });
            broker.attach_cluster(Arc::clone(&cluster));
            broker_link = Some((broker.node_id(), Arc::clone(&cluster)));
            tasks.spawn(heartbeats(
                Arc::clone(&broker),
                Arc::clone(&cluster),
                shutdown.clone(),
            ));
            tasks.spawn(follow_image(
                Arc::clone(&broker),
                Arc::clone(&cluster),
                local_sm,
                shutdown.clone(),
            ));
            tasks.spawn(super::replica::run_fetchers(
                Arc::clone(&broker),
                Arc::clone(&cluster),
                shutdown.clone(),
            ));
            tasks.spawn(super::replica::check_isr(
                Arc::clone(&broker),
                Arc::clone(&cluster),
                shutdown.clone(),
            ));
            let token = shutdown.clone();
            tasks.spawn(async move { server.run(token).await });
        }
        Ok(Node {
            client_addr,
            controller_addr,
            broker: broker_link,
            tasks,
        })
    }

    /// Waits until this node's broker is registered and unfenced in its metadata image (it can
    /// lead partitions and be placed), or `timeout` passes. Controllers-only nodes are ready
    /// at once.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let Some((id, cluster)) = &self.broker else {
            return Ok(());
        };
        let ready = cluster
            .wait_for(timeout, |a| {
                a.image.cluster_id.is_some() && a.image.brokers.get(id).is_some_and(|b| !b.fenced)
            })
            .await;
        if ready {
            Ok(())
        } else {
            Err(Error::Cluster {
                reason: format!(
                    "broker {id} was not admitted to the cluster within {timeout:?}: is a majority of controller.quorum.voters running?"
                ),
            })
        }
    }

    /// Runs until every role has stopped (after `shutdown` is cancelled); the first error wins.
    pub async fn wait(mut self) -> Result<()> {
        let mut first = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| {
                Err(Error::Cluster {
                    reason: format!("a node task failed: {e}"),
                })
            });
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

async fn start_controller(
    node_id: NodeId,
    config: &BrokerConfig,
    settings: &ClusterSettings,
    tasks: &mut JoinSet<Result<()>>,
    shutdown: &CancellationToken,
) -> Result<(SocketAddr, StateMachine)> {
    let dir = config.data_dir.join(METADATA_DIR);
    let storage = |e: openraft::StorageError<NodeId>| Error::Cluster {
        reason: format!("metadata log in {}: {e}", dir.display()),
    };
    let log = LogStore::open(&dir).map_err(storage)?;
    let sm = StateMachine::open(&dir).map_err(storage)?;
    let election = settings.election_timeout_ms.max(10);
    let raft_config = openraft::Config {
        cluster_name: "fjord".into(),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        heartbeat_interval: (election / 5).max(5),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::Cluster {
        reason: format!("controller quorum config: {e}"),
    })?;
    let network = Network {
        voters: settings.voters.clone(),
    };
    let raft = Raft::new(node_id, Arc::new(raft_config), network, log, sm.clone())
        .await
        .map_err(|e| Error::Cluster {
            reason: format!("starting the controller quorum: {e}"),
        })?;
    let addr = settings.controller_listener.ok_or_else(|| Error::Cluster {
        reason: "a controller needs a CONTROLLER listener".into(),
    })?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let api = Arc::new(ControllerApi::new(
        node_id,
        raft.clone(),
        sm.clone(),
        config,
        settings.clone(),
    ));
    let service = rpc::server(raft.clone(), Arc::clone(&api));
    let token = shutdown.clone();
    let serving_raft = raft.clone();
    tasks.spawn(async move {
        tracing::info!(addr = %bound, node_id, "serving the controller quorum");
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                token.cancelled_owned(),
            )
            .await;
        if let Err(e) = serving_raft.shutdown().await {
            tracing::warn!(error = %e, "controller quorum did not stop cleanly");
        }
        served.map_err(|e| Error::Cluster {
            reason: format!("controller listener: {e}"),
        })
    });
    tasks.spawn({
        let token = shutdown.clone();
        async move {
            api.run_timers(token).await;
            Ok(())
        }
    });
    // Quorum leadership changes are worth a line in the log.
    tasks.spawn({
        let token = shutdown.clone();
        let mut metrics = raft.metrics();
        async move {
            let mut last = None;
            loop {
                let (leader, term) = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.current_term)
                };
                if leader.is_some() && leader != last {
                    tracing::info!(node_id, leader = ?leader, term, "controller quorum leader");
                    last = leader;
                }
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    changed = metrics.changed() => if changed.is_err() { return Ok(()) },
                }
            }
        }
    });
    // Every voter proposes the same initial membership; on a restarted or already formed
    // quorum this is refused and harmless.
    let members: std::collections::BTreeMap<NodeId, BasicNode> = settings
        .voters
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    if let Err(e) = raft.initialize(members).await {
        tracing::debug!(error = %e, "quorum already initialized");
    }
    Ok((bound, sm))
}

/// Registers the broker and heartbeats; registers again when the controller no longer knows
/// this incarnation.
async fn heartbeats(
    broker: Arc<Broker>,
    cluster: Arc<BrokerCluster>,
    shutdown: CancellationToken,
) -> Result<()> {
    let interval = Duration::from_millis(cluster.settings.heartbeat_interval_ms.max(10));
    let id = broker.node_id();
    loop {
        let epoch = cluster.epoch.load(Ordering::Acquire);
        let request = if epoch < 0 {
            let (host, port) = broker.advertised();
            ControllerRequest::RegisterBroker {
                id,
                host,
                port,
                rack: cluster.settings.rack.clone(),
            }
        } else if cluster.image().version == 0 {
            // Not unfenced before the image is applied: it could be elected leader of
            // partitions it does not know it holds yet.
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            continue;
        } else {
            ControllerRequest::Heartbeat { id, epoch }
        };
        let call = cluster.client.call(&request, interval * 2);
        let reply = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = call => r,
        };
        match reply {
            Ok(ControllerReply::Registered { epoch }) => {
                tracing::info!(broker = id, epoch, "registered with the controller quorum");
                cluster.epoch.store(epoch, Ordering::Release);
                continue;
            }
            Ok(ControllerReply::Heartbeat { .. }) => {}
            Ok(ControllerReply::Error { code, message }) => {
                if code == ErrorCode::StaleBrokerEpoch.code() {
                    tracing::warn!(broker = id, %message, "registering again");
                    cluster.epoch.store(-1, Ordering::Release);
                    continue;
                }
                tracing::warn!(broker = id, code, %message, "heartbeat refused");
            }
            Ok(other) => tracing::warn!(?other, "unexpected heartbeat reply"),
            Err(e) => tracing::debug!(error = %e.message, "heartbeat failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Keeps the broker's image current and applies each new one: from the local state machine on
/// a combined node, by long-polling a controller otherwise.
async fn follow_image(
    broker: Arc<Broker>,
    cluster: Arc<BrokerCluster>,
    local: Option<StateMachine>,
    shutdown: CancellationToken,
) -> Result<()> {
    let apply = |applied: Arc<Applied>| {
        let broker = Arc::clone(&broker);
        let cluster = Arc::clone(&cluster);
        async move {
            let image = Arc::clone(&applied);
            let result = tokio::task::spawn_blocking(move || broker.reconcile(&image.image)).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "applying the metadata image failed");
            }
            cluster.image.send_replace(applied);
        }
    };
    // Never act on a stale image: a restarting node replays its metadata log, and an old
    // state (a leadership long gone) would make it lead or truncate wrongly. As in KRaft, a
    // broker applies nothing until its image reaches the quorum's committed state.
    let caught_up = loop {
        let barrier = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = cluster.client.call(&ControllerRequest::Barrier, Duration::from_secs(10)) => r,
        };
        match barrier {
            Ok(ControllerReply::Committed { version }) => break version,
            Ok(other) => tracing::debug!(?other, "unexpected barrier reply"),
            Err(e) => tracing::debug!(error = %e.message, "waiting for the controller quorum"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tracing::info!(version = caught_up, "metadata caught up with the quorum");
    if let Some(sm) = local {
        let mut rx = sm.subscribe();
        loop {
            let applied = Arc::clone(&rx.borrow_and_update());
            if applied.version > cluster.image().version && applied.version >= caught_up {
                apply(applied).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = rx.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
    loop {
        let known = cluster.image().version;
        let request = ControllerRequest::FetchImage {
            known_version: known,
            wait_ms: 5_000,
        };
        let reply = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = cluster.client.call(&request, Duration::from_secs(10)) => r,
        };
        match reply {
            Ok(ControllerReply::Image { version, image })
                if version > known && version >= caught_up =>
            {
                apply(Arc::new(Applied {
                    version,
                    image: *image,
                }))
                .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e.message, "metadata fetch failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
