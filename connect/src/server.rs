//! `ConnectServer`: a worker (standalone or distributed) and its REST API on one listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{DistributedConfig, WorkerConfig};
use crate::distributed::Cluster;
use crate::error::{Error, Result};
use crate::runtime::{Worker, WorkerError};

/// A bound, not yet serving, Connect worker.
pub struct ConnectServer {
    listener: TcpListener,
    worker: Arc<Worker>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for ConnectServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectServer")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl ConnectServer {
    /// Binds the REST listener (`listeners`/`rest.port`) and starts the worker.
    pub async fn start(config: WorkerConfig, shutdown: CancellationToken) -> Result<Self> {
        let listener = TcpListener::bind(&config.rest_addr)
            .await
            .map_err(|source| Error::Listen {
                addr: config.rest_addr.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.rest_addr.clone(),
            source,
        })?;
        let worker = Arc::new(Worker::new(config, addr.to_string())?);
        Ok(ConnectServer {
            listener,
            worker,
            shutdown,
        })
    }

    /// Binds the REST listener, creates and reads the internal topics and joins the worker
    /// group `group.id` (distributed mode). Source offsets live in `offset.storage.topic`;
    /// `offset.storage.file.filename` is ignored.
    pub async fn start_distributed(
        mut config: WorkerConfig,
        distributed: DistributedConfig,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        if config.offsets_file.take().is_some() {
            tracing::warn!("offset.storage.file.filename is ignored by a distributed worker");
        }
        let listener = TcpListener::bind(&config.rest_addr)
            .await
            .map_err(|source| Error::Listen {
                addr: config.rest_addr.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.rest_addr.clone(),
            source,
        })?;
        let url = distributed.advertised_url(addr);
        let worker_id = url.trim_start_matches("http://").to_string();
        let worker = Arc::new(Worker::new(config, worker_id)?);
        Cluster::start(&worker, distributed, url).await?;
        Ok(ConnectServer {
            listener,
            worker,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn worker(&self) -> Arc<Worker> {
        self.worker.clone()
    }

    /// Creates (or replaces) a connector from a config map, as `connect-standalone` does with
    /// its connector files.
    pub async fn add_connector(&self, config: BTreeMap<String, String>) -> Result<(), WorkerError> {
        let name = config.get("name").cloned().unwrap_or_default();
        if name.trim().is_empty() {
            return Err(WorkerError::BadRequest(
                "Missing required configuration \"name\" which has no default value.".into(),
            ));
        }
        self.worker
            .put_connector(&name, config, true)
            .await
            .map(|_| ())
    }

    /// Serves until the shutdown token is cancelled, then stops every task.
    pub async fn run(self) -> Result<()> {
        let addr = self.local_addr().to_string();
        let router = crate::rest::router(self.worker.clone());
        let shutdown = self.shutdown.clone();
        tracing::info!(%addr, "Connect REST API listening");
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        self.worker.shutdown().await;
        served.map_err(|source| Error::Listen { addr, source })
    }
}
