//! The registry server: binds, reads the store, joins the election and serves the REST API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Forwarder};
use crate::error::{Error, Result};
use crate::leader::{self, ElectionConfig, LeaderState, LeaderWatch};
use crate::registry::Registry;
use crate::store::kafka::{KafkaStore, StoreConfig};

/// Registry settings (Confluent's names in the field docs).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `kafkastore.bootstrap.servers`.
    pub bootstrap: String,
    /// `listeners`, as `host:port` (port 0 picks a free port). Default `127.0.0.1:8081`.
    pub listen: String,
    /// The URL other instances forward writes to (`host.name`); default `http://<bound address>`.
    pub advertised_url: Option<String>,
    /// `kafkastore.topic`, default `_schemas`.
    pub topic: String,
    /// `schema.registry.group.id`, default `schema-registry`.
    pub group_id: String,
    /// `leader.eligibility`, default true.
    pub leader_eligibility: bool,
    /// Elect a leader through the group (default). Off: this instance always writes.
    pub leader_election: bool,
    /// Largest accepted request body, default 16 MiB; larger bodies get 413.
    pub max_body_bytes: usize,
    /// `kafkastore.timeout.ms` (ours defaults to 10 s).
    pub store_timeout: Duration,
    /// Group session timeout, default 10 s.
    pub session_timeout: Duration,
    /// How long a write waits for a leader to be elected before failing with 50004, default
    /// 15 s.
    pub leader_wait: Duration,
}

impl RegistryConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        RegistryConfig {
            bootstrap: bootstrap.into(),
            listen: "127.0.0.1:8081".into(),
            advertised_url: None,
            topic: "_schemas".into(),
            group_id: "schema-registry".into(),
            leader_eligibility: true,
            leader_election: true,
            max_body_bytes: 16 * 1024 * 1024,
            store_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            leader_wait: Duration::from_secs(15),
        }
    }
}

/// A started registry, ready to serve.
pub struct RegistryServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    leader: LeaderWatch,
    router: axum::Router,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for RegistryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RegistryServer {
    /// Binds, reads the `_schemas` topic to its end and joins the election. Background tasks
    /// stop when `shutdown` is cancelled.
    pub async fn start(
        config: RegistryConfig,
        shutdown: CancellationToken,
    ) -> Result<RegistryServer> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let mut store_config = StoreConfig::new(config.bootstrap.clone());
        store_config.topic = config.topic.clone();
        store_config.timeout = config.store_timeout;
        let store = KafkaStore::open(store_config, shutdown.clone()).await?;
        let registry = Arc::new(Registry::new(store));
        let leader = if config.leader_election {
            let url = config.advertised_url.clone().unwrap_or_else(|| {
                if local_addr.ip().is_unspecified() {
                    tracing::warn!(%local_addr, "listening on all addresses: other instances forward writes to loopback unless an advertised URL is set");
                    format!("http://127.0.0.1:{}", local_addr.port())
                } else {
                    format!("http://{local_addr}")
                }
            });
            let mut election = ElectionConfig::new(config.bootstrap.clone(), url);
            election.group_id = config.group_id.clone();
            election.eligible = config.leader_eligibility;
            election.session_timeout = config.session_timeout;
            leader::spawn(election, shutdown.clone())
        } else {
            let (tx, rx) = watch::channel(LeaderState::standalone());
            // Keep the sender alive as long as the server runs.
            let token = shutdown.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                drop(tx);
            });
            rx
        };
        let state = AppState {
            registry: registry.clone(),
            leader: leader.clone(),
            forwarder: Forwarder::new(config.max_body_bytes),
            leader_wait: config.leader_wait,
        };
        let router = api::router(state, config.max_body_bytes);
        Ok(RegistryServer {
            listener,
            local_addr,
            registry,
            leader,
            router,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Who leads, as this instance sees it.
    pub fn leader(&self) -> LeaderWatch {
        self.leader.clone()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self) -> Result<()> {
        let shutdown = self.shutdown.clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(Error::Serve)
    }
}
