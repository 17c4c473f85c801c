//! One client connection: read a frame, answer it, in order. A frame that cannot be parsed
//! closes the connection (as Kafka does); nothing a client sends can take down the broker.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fjord_protocol::frame::{PREFIX_LEN, frame_len};
use fjord_protocol::request::{
    EncodeError, RequestError, decode_request, encode_response, unsupported_api_versions,
};
use kafka_protocol::messages::{ApiKey, RequestKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::router;
use crate::broker::Broker;

tokio::task_local! {
    /// The peer of the connection whose request is being handled.
    static PEER: SocketAddr;
}

/// The client's host as Kafka shows it (`/127.0.0.1`), for the request being handled.
pub(crate) fn client_host() -> String {
    PEER.try_with(|peer| format!("/{}", peer.ip()))
        .unwrap_or_default()
}

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error(transparent)]
    Frame(#[from] fjord_protocol::FrameError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

pub(super) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
    }
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let max = broker.config().socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = read_frame(&mut reader, max) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameRead::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(FrameRead::Bad(reason)) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        match PEER.scope(peer, answer(&broker, frame)).await {
            Ok(Some(response)) => {
                if let Err(e) = writer.write_all(&response).await {
                    tracing::debug!(%peer, error = %e, "connection write failed");
                    break;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
        // Pipelined requests already buffered are answered before flushing.
        if reader.buffer().is_empty()
            && let Err(e) = writer.flush().await
        {
            tracing::debug!(%peer, error = %e, "connection flush failed");
            break;
        }
    }
    let _ = writer.flush().await;
}

enum FrameRead {
    Io(std::io::Error),
    Bad(Close),
}

async fn read_frame(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    max: usize,
) -> Result<Option<Bytes>, FrameRead> {
    let mut prefix = [0u8; PREFIX_LEN];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameRead::Io(e)),
    }
    let len = frame_len(prefix, max).map_err(|e| FrameRead::Bad(e.into()))?;
    let mut frame = BytesMut::zeroed(len);
    reader.read_exact(&mut frame).await.map_err(FrameRead::Io)?;
    Ok(Some(frame.freeze()))
}

/// Decodes, dispatches and encodes one request. `Ok(None)`: no response (acks=0 produce).
async fn answer(broker: &Broker, frame: Bytes) -> Result<Option<BytesMut>, Close> {
    let request = match decode_request(frame, router::versions) {
        Ok(request) => request,
        Err(RequestError::UnsupportedVersion {
            key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            return Ok(Some(unsupported_api_versions(
                correlation_id,
                router::supported_api_versions(),
            )?));
        }
        Err(e) => return Err(e.into()),
    };
    let (key, version, correlation_id) = (
        request.api_key,
        request.header.request_api_version,
        request.header.correlation_id,
    );
    let no_response = matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
    let span = tracing::debug_span!("request", api = ?key, version, correlation_id);
    let _enter = span.enter();
    let response = router::dispatch(broker, &request.header, request.body).await;
    if no_response {
        return Ok(None);
    }
    Ok(Some(encode_response(
        key,
        version,
        correlation_id,
        &response,
    )?))
}
