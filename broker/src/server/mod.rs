//! The network server: a listener, one task per connection (requests answered in order), and
//! the background tasks (retention, flush). Shutdown: stop accepting, let connections finish
//! the request in hand, then close every log cleanly.

mod connection;
mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::error::{Error, Result};

pub(crate) use connection::client_host;
pub(crate) use router::supported_api_versions;

/// How often the group coordinator's timers are checked.
const GROUP_TICK_MS: u64 = 100;

/// A bound Kafka listener serving one broker.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds the broker's `listeners` address (port 0 picks a free port).
    pub async fn bind(broker: Arc<Broker>) -> Result<Self> {
        let addr = broker.config().listener;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        broker.set_bound_address(local_addr);
        Ok(Server {
            broker,
            listener,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker this server serves.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` is cancelled, then stops cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Server {
            broker,
            listener,
            local_addr,
        } = self;
        tracing::info!(addr = %local_addr, node_id = broker.node_id(), cluster_id = %broker.cluster_id(), "serving Kafka clients");
        let mut background = JoinSet::new();
        background.spawn(periodic(
            Arc::clone(&broker),
            broker.config().retention_check_interval_ms,
            shutdown.clone(),
            |b| b.enforce_retention(),
        ));
        background.spawn(periodic(
            Arc::clone(&broker),
            broker.config().cleaner_backoff_ms,
            shutdown.clone(),
            |b| b.clean_logs(),
        ));
        background.spawn(periodic(
            Arc::clone(&broker),
            broker.config().flush_scheduler_interval_ms,
            shutdown.clone(),
            |b| b.flush_due(),
        ));
        background.spawn(periodic(
            Arc::clone(&broker),
            broker.config().offsets_retention_check_interval_ms,
            shutdown.clone(),
            |b| b.expire_offsets(),
        ));
        // Group sessions and rebalance phases expire on the clock, not only on requests.
        background.spawn(periodic(
            Arc::clone(&broker),
            GROUP_TICK_MS,
            shutdown.clone(),
            |b| b.groups().tick(b),
        ));
        let connections_token = CancellationToken::new();
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(Arc::clone(&broker), stream, peer, connections_token.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections_token.cancel();
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("connections did not finish within 10 s; closing them");
            connections.abort_all();
        }
        background.abort_all();
        // Everything else has stopped: the blocking fsyncs of shutdown may run inline.
        broker.shutdown()
    }
}

async fn periodic(
    broker: Arc<Broker>,
    interval_ms: u64,
    shutdown: CancellationToken,
    work: fn(&Broker),
) {
    if interval_ms >= i64::MAX as u64 / 2 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                let broker = Arc::clone(&broker);
                if let Err(e) = tokio::task::spawn_blocking(move || work(&broker)).await {
                    tracing::error!(error = %e, "background task failed");
                }
            }
        }
    }
}
