//! A broker connection with several requests in flight.
//!
//! [`Connection`] answers one request at a time. A [`Pipeline`] takes a connected
//! [`Connection`] (versions already negotiated) and splits it into a writer task and a reader
//! task, so that up to `max.in.flight.requests.per.connection` requests can be on the wire at
//! once, as the producer needs.
//!
//! Order is decided synchronously: [`Pipeline::reserve`] takes the next place in the write
//! order before the request is even encoded (encoding compresses batches, and happens on
//! another task), so requests for one partition reach the broker in the order their batches
//! were drained. Responses are matched to requests by correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::io::IoSlice;

use bytes::Bytes;
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, VersionRange};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::connection::{Connection, api_name, encode_frame, read_frame, version_of};
use crate::error::{Error, Result};

/// Answers waiting for their responses, by correlation id.
type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<std::io::Result<Bytes>>>>>;

/// A frame to write, and how to tell the caller it was written.
struct Outgoing {
    /// The frame in pieces, written with vectored writes (a Produce frame's batches are not
    /// copied into one buffer).
    frame: Vec<Bytes>,
    written: oneshot::Sender<std::io::Result<()>>,
}

/// A pipelined connection; cheap to clone. The tasks stop when the last clone is dropped or
/// the connection fails (then every request in flight fails with [`Error::Io`]).
#[derive(Clone)]
pub(crate) struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    client_id: String,
    versions: HashMap<i16, VersionRange>,
    correlation_id: AtomicI32,
    order: mpsc::UnboundedSender<oneshot::Receiver<Outgoing>>,
    pending: Pending,
    _stop: DropGuard,
}

/// A reserved place in the write order; [`Slot::send`] fills it. Dropping a slot unused
/// gives its place up.
pub(crate) struct Slot {
    inner: Arc<Inner>,
    place: oneshot::Sender<Outgoing>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Takes over a connection (its negotiated versions and correlation ids carry on).
    pub(crate) fn new(connection: Connection) -> Self {
        let parts = connection.into_parts();
        let (read, write) = parts.stream.into_split();
        let pending: Pending = Arc::default();
        let (order, order_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(write_loop(write, order_rx, pending.clone(), stop.clone()));
        tokio::spawn(read_loop(read, pending.clone(), stop.clone()));
        Pipeline {
            inner: Arc::new(Inner {
                addr: parts.addr,
                client_id: parts.client_id,
                versions: parts.versions,
                correlation_id: AtomicI32::new(parts.correlation_id),
                order,
                pending,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Takes the next place in the write order.
    pub(crate) fn reserve(&self) -> Slot {
        let (place, taken) = oneshot::channel();
        // If the writer is gone, `send` finds out (the place is never taken).
        let _ = self.inner.order.send(taken);
        Slot {
            inner: self.inner.clone(),
            place,
        }
    }
}

impl Slot {
    /// The highest version of `R` both sides serve.
    pub(crate) fn version_of<R: Request>(&self) -> Result<i16> {
        version_of::<R>(&self.inner.versions, &self.inner.addr)
    }

    /// Writes `request` in this slot's place. With `expect_response`, waits (at most
    /// `timeout`) for the answer and decodes it; without, returns `None` once written.
    pub(crate) async fn send<R: Request>(
        self,
        request: &R,
        version: i16,
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<R::Response>> {
        let client_id = self.inner.client_id.clone();
        let addr = self.inner.addr.clone();
        let mut failure = None;
        let response =
            self.send_frame::<R>(version, expect_response, timeout, |correlation_id| {
                match encode_frame(request, version, correlation_id, &client_id) {
                    Ok(frame) => vec![frame.freeze()],
                    Err(reason) => {
                        failure = Some(reason);
                        Vec::new()
                    }
                }
            })
            .await;
        match failure {
            Some(reason) => Err(Error::Protocol { addr, reason }),
            None => response,
        }
    }

    /// Writes the frame `build` makes for this slot's correlation id (an `R` request at
    /// `version`, already encoded, in pieces). An empty frame is not written and fails.
    pub(crate) async fn send_frame<R: Request>(
        self,
        version: i16,
        expect_response: bool,
        timeout: Duration,
        build: impl FnOnce(i32) -> Vec<Bytes>,
    ) -> Result<Option<R::Response>> {
        let inner = &self.inner;
        let api = api_name(R::KEY);
        let protocol = |reason: String| Error::Protocol {
            addr: inner.addr.clone(),
            reason,
        };
        let io = |source: std::io::Error| Error::Io {
            addr: inner.addr.clone(),
            source,
        };
        let correlation_id = inner
            .correlation_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let frame = build(correlation_id);
        if frame.is_empty() {
            return Err(protocol(format!("could not encode {api} v{version}")));
        }
        let answer = if expect_response {
            let (tx, rx) = oneshot::channel();
            lock(&inner.pending).insert(correlation_id, tx);
            Some(rx)
        } else {
            None
        };
        let (written_tx, written) = oneshot::channel();
        let closed = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        if self
            .place
            .send(Outgoing {
                frame,
                written: written_tx,
            })
            .is_err()
        {
            lock(&inner.pending).remove(&correlation_id);
            return Err(io(closed()));
        }
        let exchange = async {
            written
                .await
                .unwrap_or_else(|_| Err(closed()))
                .map_err(io)?;
            match answer {
                None => Ok(None),
                Some(rx) => rx
                    .await
                    .unwrap_or_else(|_| Err(closed()))
                    .map(Some)
                    .map_err(io),
            }
        };
        let body = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                lock(&inner.pending).remove(&correlation_id);
                return Err(Error::Timeout {
                    api,
                    addr: inner.addr.clone(),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        };
        let Some(mut body) = body else {
            return Ok(None);
        };
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| protocol(format!("decoding the {api} response header: {e}")))?;
        R::Response::decode(&mut body, version)
            .map(Some)
            .map_err(|e| protocol(format!("decoding {api} v{version}: {e}")))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails every request still waiting for an answer.
fn fail_pending(pending: &Pending, error: &std::io::Error) {
    for (_, tx) in lock(pending).drain() {
        let _ = tx.send(Err(std::io::Error::new(error.kind(), error.to_string())));
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut order: mpsc::UnboundedReceiver<oneshot::Receiver<Outgoing>>,
    pending: Pending,
    stop: CancellationToken,
) {
    loop {
        let place = tokio::select! {
            place = order.recv() => place,
            _ = stop.cancelled() => None,
        };
        let Some(place) = place else {
            break;
        };
        // A slot dropped unused gives its place up.
        let Ok(outgoing) = place.await else {
            continue;
        };
        let result = write_all_vectored(&mut write, &outgoing.frame).await;
        let failed = result
            .as_ref()
            .err()
            .map(|e| std::io::Error::new(e.kind(), e.to_string()));
        let _ = outgoing.written.send(result);
        if let Some(error) = failed {
            stop.cancel();
            fail_pending(&pending, &error);
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// Writes every piece, in order, with as few system calls as the socket allows.
async fn write_all_vectored(write: &mut OwnedWriteHalf, pieces: &[Bytes]) -> std::io::Result<()> {
    let (mut index, mut offset) = (0, 0);
    while index < pieces.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&pieces[index][offset..]))
            .chain(pieces[index + 1..].iter().map(|p| IoSlice::new(p)))
            .take(64)
            .collect();
        let mut written = write.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while index < pieces.len() && written >= pieces[index].len() - offset {
            written -= pieces[index].len() - offset;
            index += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}

async fn read_loop(mut read: OwnedReadHalf, pending: Pending, stop: CancellationToken) {
    let error = loop {
        let body = tokio::select! {
            body = read_frame(&mut read) => body,
            _ = stop.cancelled() => return,
        };
        match body {
            Ok(body) => {
                let correlation_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                match lock(&pending).remove(&correlation_id) {
                    Some(tx) => {
                        let _ = tx.send(Ok(body));
                    }
                    // Its caller timed out and left.
                    None => tracing::debug!(correlation_id, "response nobody waits for"),
                }
            }
            Err(e) => break e,
        }
    };
    stop.cancel();
    fail_pending(&pending, &error);
}
