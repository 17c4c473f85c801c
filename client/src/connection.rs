//! One connection to one broker: ApiVersions negotiation, then typed requests answered in order.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The request timeout (Kafka's `request.timeout.ms` default is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response frame accepted (a broker caps fetches at `fetch.max.bytes`, 50 MiB by
/// default); a larger size prefix means a broken or hostile peer.
const MAX_RESPONSE_SIZE: usize = 1 << 30;

/// What a [`Connection`] is made of, for [`crate::pipeline::Pipeline`] to take over.
pub(crate) struct Parts {
    pub(crate) addr: String,
    pub(crate) stream: TcpStream,
    pub(crate) client_id: String,
    pub(crate) correlation_id: i32,
    pub(crate) versions: HashMap<i16, VersionRange>,
}

/// A connection to one broker.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: String,
    correlation_id: i32,
    versions: HashMap<i16, VersionRange>,
}

impl Connection {
    /// Connects and learns which API versions the broker serves.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Self> {
        let connect = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Timeout {
                    api: "connect".into(),
                    addr: addr.to_string(),
                    timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            addr: addr.to_string(),
            stream,
            client_id: client_id.to_string(),
            correlation_id: 0,
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fjord-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 is served by every broker since Kafka 2.4; a broker that does not know it answers v0.
        let response = connection.send_at(&request, 3).await?;
        if response.error_code != 0 {
            return Err(Error::broker("ApiVersions", response.error_code, None));
        }
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Ok(connection)
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` that both sides serve.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        version_of::<R>(&self.versions, &self.addr)
    }

    pub(crate) fn into_parts(self) -> Parts {
        Parts {
            addr: self.addr,
            stream: self.stream,
            client_id: self.client_id,
            correlation_id: self.correlation_id,
            versions: self.versions,
        }
    }

    /// Sends `request` at the highest common version and returns the response and the version.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<(R::Response, i16)> {
        let version = self.version_of::<R>()?;
        Ok((self.send_at(request, version).await?, version))
    }

    /// Sends `request` at `version` without reading an answer: for requests the broker does
    /// not answer (Produce with `acks=0`).
    pub async fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<()> {
        let (frame, _) = self.frame(request, version)?;
        let write = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Io {
                addr: self.addr.clone(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                api: api_name(R::KEY),
                addr: self.addr.clone(),
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            }),
        }
    }

    /// Sends `request` at `version`.
    pub async fn send_at<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let api = api_name(R::KEY);
        let (frame, correlation_id) = self.frame(request, version)?;
        let protocol = |reason: String| Error::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let exchange = async {
            self.stream.write_all(&frame).await?;
            read_frame(&mut self.stream).await
        };
        let mut body = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(body)) => body,
            Ok(Err(source)) => {
                return Err(Error::Io {
                    addr: self.addr.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Timeout {
                    api: api.clone(),
                    addr: self.addr.clone(),
                    timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
                });
            }
        };
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| protocol(format!("decoding the {api} response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol(format!(
                "expected correlation id {correlation_id}, got {}",
                header.correlation_id
            )));
        }
        if R::KEY == ApiKey::ApiVersions as i16
            && body.remaining() >= 2
            && i16::from_be_bytes([body[0], body[1]]) == 35
            && version > 0
        {
            // KIP-511: the broker answered in v0 because it does not know our version.
            return Box::pin(self.send_at(request, 0)).await;
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| protocol(format!("decoding {api} v{version}: {e}")))
    }

    /// The size-prefixed frame of `request` with the next correlation id.
    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Result<(BytesMut, i32)> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame =
            encode_frame(request, version, correlation_id, &self.client_id).map_err(|reason| {
                Error::Protocol {
                    addr: self.addr.clone(),
                    reason,
                }
            })?;
        Ok((frame, correlation_id))
    }
}

/// Reads one size-prefixed response frame (correlation id first).
pub(crate) async fn read_frame(
    read: &mut (impl tokio::io::AsyncRead + Unpin),
) -> std::io::Result<Bytes> {
    let size = read.read_i32().await?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| (4..=MAX_RESPONSE_SIZE).contains(s))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("response size {size} out of range"),
            )
        })?;
    // Read into spare capacity: no zero-filling of a buffer that is about to be overwritten.
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let remaining = size - body.len();
        if read.read_buf(&mut (&mut body).limit(remaining)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(body.freeze())
}

/// The highest version of `R` in both the broker's `versions` and this client.
pub(crate) fn version_of<R: Request>(
    versions: &HashMap<i16, VersionRange>,
    addr: &str,
) -> Result<i16> {
    let unsupported = || Error::Unsupported {
        api: api_name(R::KEY),
        addr: addr.to_string(),
    };
    let served = versions.get(&R::KEY).ok_or_else(unsupported)?;
    let common = served.intersect(&R::VERSIONS);
    if common.is_empty() {
        return Err(unsupported());
    }
    Ok(common.max)
}

/// `request` as a size-prefixed frame with its header.
pub(crate) fn encode_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> std::result::Result<BytesMut, String> {
    let api = api_name(R::KEY);
    // Sized up front: a Produce frame carries whole batches, and growing it would copy them.
    let body = request.compute_size(version).unwrap_or(0);
    let mut frame = BytesMut::with_capacity(4 + 64 + client_id.len() + body);
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut frame, R::header_version(version))
        .map_err(|e| format!("encoding the {api} header: {e}"))?;
    request
        .encode(&mut frame, version)
        .map_err(|e| format!("encoding {api} v{version}: {e}"))?;
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}
