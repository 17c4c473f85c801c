//! The controller listener's transport: a tonic gRPC service (`proto/controller.proto`) carrying
//! JSON bodies, the openraft network over it, and a client for the controller API.

use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::controller::{ControllerApi, ControllerReply, ControllerRequest};
use super::raft::{NodeId, Raft, TypeConfig};

pub(crate) mod proto {
    #![allow(unreachable_pub, clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("fjord.controller.v1");
}

use proto::Envelope;
use proto::controller_client::ControllerClient;
use proto::controller_server::{Controller, ControllerServer};

/// Largest gRPC message accepted (snapshots of big clusters are sent in chunks below this).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

fn encode<T: Serialize>(kind: &str, value: &T) -> Result<Envelope, serde_json::Error> {
    Ok(Envelope {
        kind: kind.to_string(),
        body: serde_json::to_vec(value)?,
    })
}

fn decode<T: DeserializeOwned>(envelope: &Envelope) -> Result<T, Status> {
    serde_json::from_slice(&envelope.body)
        .map_err(|e| Status::invalid_argument(format!("bad {} body: {e}", envelope.kind)))
}

fn reply<T: Serialize>(kind: &str, value: &T) -> Result<Response<Envelope>, Status> {
    encode(kind, value)
        .map(Response::new)
        .map_err(|e| Status::internal(e.to_string()))
}

/// The gRPC service: Raft RPCs go to openraft, API calls to the controller.
pub(crate) struct Service {
    raft: Raft,
    api: Arc<ControllerApi>,
}

/// The tonic server for `raft` and `api`.
pub(crate) fn server(raft: Raft, api: Arc<ControllerApi>) -> ControllerServer<Service> {
    ControllerServer::new(Service { raft, api })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

#[tonic::async_trait]
impl Controller for Service {
    async fn raft(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        match envelope.kind.as_str() {
            "append" => {
                let rpc: AppendEntriesRequest<TypeConfig> = decode(&envelope)?;
                reply("append", &self.raft.append_entries(rpc).await)
            }
            "vote" => {
                let rpc: VoteRequest<NodeId> = decode(&envelope)?;
                reply("vote", &self.raft.vote(rpc).await)
            }
            "snapshot" => {
                let rpc: InstallSnapshotRequest<TypeConfig> = decode(&envelope)?;
                reply("snapshot", &self.raft.install_snapshot(rpc).await)
            }
            other => Err(Status::invalid_argument(format!(
                "unknown Raft RPC kind {other:?}"
            ))),
        }
    }

    async fn call(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let call: ControllerRequest = decode(&envelope)?;
        let answer = self.api.handle(call).await;
        reply("reply", &answer)
    }
}

/// A lazily connecting channel to `addr` (`host:port`).
pub(crate) fn channel(addr: &str, timeout: Duration) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad controller address {addr}: {e}"))
        .map(|e| {
            e.connect_timeout(Duration::from_secs(1))
                .timeout(timeout)
                .tcp_nodelay(true)
                .connect_lazy()
        })
}

fn client(channel: Channel) -> ControllerClient<Channel> {
    ControllerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Sends one controller API call to the controller at `channel`.
pub(crate) async fn call(
    channel: &Channel,
    request: &ControllerRequest,
) -> Result<ControllerReply, String> {
    let envelope = encode("call", request).map_err(|e| e.to_string())?;
    let response = client(channel.clone())
        .call(envelope)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
    decode(&response.into_inner()).map_err(|s| s.message().to_string())
}

/// openraft's network: one lazily connected channel per peer. Peers are reached at the
/// addresses of this node's own `controller.quorum.voters` (static, as in Kafka), so each node
/// may name the others by the route it has to them; the membership's address is the fallback.
#[derive(Debug, Clone, Default)]
pub(crate) struct Network {
    pub(crate) voters: std::collections::BTreeMap<NodeId, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        let addr = self.voters.get(&target).unwrap_or(&node.addr);
        Peer {
            target,
            channel: channel(addr, Duration::from_secs(10)),
        }
    }
}

/// A connection to one peer controller.
pub(crate) struct Peer {
    target: NodeId,
    channel: Result<Channel, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl Peer {
    async fn send<Req, Resp, E>(
        &self,
        kind: &str,
        rpc: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self
            .channel
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&TransportError(e.clone()))))?;
        let envelope = encode(kind, rpc)
            .map_err(|e| RPCError::Network(NetworkError::new(&TransportError(e.to_string()))))?;
        let mut request = Request::new(envelope);
        request.set_timeout(timeout);
        let response = client(channel.clone()).raft(request).await.map_err(|s| {
            let e = TransportError(format!("{}: {}", s.code(), s.message()));
            match s.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&response.into_inner().body).map_err(|e| {
                RPCError::Network(NetworkError::new(&TransportError(e.to_string())))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("vote", &rpc, option.hard_ttl()).await
    }
}
