//! Accepting connections within bounds: at most `server.max_connections` open at once (past
//! it a new connection is closed at once, logged and counted), each with its own budget of
//! `server.max_concurrent_requests_per_connection` calls in progress (which `calls` spends),
//! and a connection that has not finished its TLS handshake, or sent its first 24 bytes (an
//! HTTP/2 preface, or an HTTP/1.1 request's head), within `server.handshake_timeout_secs` is closed. The process
//! therefore never runs out of file descriptors to idle sockets, and the connections it holds
//! are ones that speak.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpIncoming};

use crate::tls::{self, ServerTls};

/// How many connections are open, and how many were refused at the cap (for the log line;
/// the metric is `hubdir.server.shed{limit="connections"}`).
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    open: AtomicUsize,
    refused: AtomicU64,
}

/// The bounds on accepted connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_requests_per_connection: usize,
    pub handshake_timeout: Duration,
    pub tcp_keepalive: Duration,
}

/// A connection counted among the open ones until it is dropped.
#[derive(Debug)]
struct Open(Arc<ConnectionCounts>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The listener's TCP connections within the cap, each counted while it is open.
fn admitted(
    listener: TcpListener,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
) -> impl Stream<Item = (TcpStream, Open)> {
    // No Nagle: a response larger than one segment would otherwise wait for the client's
    // delayed ACK (40 ms on Linux) before its last segment leaves.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(limits.tcp_keepalive));
    incoming.filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            // A failed accept (the peer reset first, or no descriptors left) ends nothing.
            Err(err) => {
                tracing::debug!(error = %err, "accept failed");
                return None;
            }
        };
        if counts.open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            counts.open.fetch_sub(1, Ordering::AcqRel);
            let refused = counts.refused.fetch_add(1, Ordering::Relaxed) + 1;
            crate::calls::count_shed("connections");
            // The first refusal and then every thousandth: a flood does not flood the log.
            if refused % 1000 == 1 {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused_total = refused,
                    "connection cap reached: closing new connections"
                );
            }
            return None;
        }
        Some((stream, Open(counts.clone())))
    })
}

/// The listener's connections, within `limits`, in plaintext.
pub fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
) -> impl Stream<Item = io::Result<Counted<TcpStream>>> {
    admitted(listener, limits, counts).map(move |(stream, open)| Ok(Counted::new(stream, open, &limits)))
}

/// The listener's connections, within `limits`, over TLS. Each handshake runs in a task of
/// its own, bounded by `handshake_timeout` (and, with the others, by `max_connections`): a
/// crowd of silent sockets cannot hold up anyone else's. A plaintext HTTP/2 client is told
/// to use TLS instead of being cut. Accepting stops when the stream is dropped.
pub fn accept_tls(
    listener: TcpListener,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
    tls: ServerTls,
) -> impl Stream<Item = io::Result<Counted<TlsStream<TcpStream>>>> {
    let (ready, connections) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
    let refused = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        let mut admitted = std::pin::pin!(admitted(listener, limits, counts));
        loop {
            let (stream, open) = tokio::select! {
                () = ready.closed() => return,
                next = admitted.next() => match next {
                    Some(next) => next,
                    None => return,
                },
            };
            let (acceptor, ready, refused) = (tls.acceptor(), ready.clone(), refused.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(limits.handshake_timeout, handshake(stream, acceptor)).await {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(Counted::new(stream, open, &limits))).await;
                    }
                    Ok(Err(err)) => {
                        // The first refusal and then every thousandth: scanners do not flood the log.
                        let total = refused.fetch_add(1, Ordering::Relaxed) + 1;
                        if total % 1000 == 1 {
                            tracing::info!(error = %err, refused_total = total, "TLS handshake refused");
                        }
                    }
                    Err(_) => tracing::debug!("no TLS handshake within the handshake timeout"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(connections)
}

/// Connections whose handshake is done but not yet taken by the server.
const CHANNEL_CAPACITY: usize = 64;

/// The server side of a TLS handshake, after a look at the first byte.
async fn handshake(stream: TcpStream, acceptor: tokio_rustls::TlsAcceptor) -> io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a TLS handshake"));
    }
    if !tls::is_tls_handshake(first[0]) {
        tls::refuse_plaintext(stream).await;
        return Err(tls::not_tls());
    }
    acceptor.accept(stream).await
}

/// An accepted connection, counted while it is open.
#[derive(Debug)]
pub struct Counted<IO> {
    inner: IO,
    _open: Open,
    /// Calls in progress on this connection, at most `max_requests_per_connection`.
    slots: Arc<Semaphore>,
    /// Until the HTTP/2 preface has arrived: when the connection is closed if it has not.
    first_bytes_by: Option<Pin<Box<Sleep>>>,
    /// Bytes read so far, up to the preface's length.
    read: usize,
}

impl<IO> Counted<IO> {
    fn new(inner: IO, open: Open, limits: &ConnectionLimits) -> Counted<IO> {
        Counted {
            inner,
            _open: open,
            slots: Arc::new(Semaphore::new(limits.max_requests_per_connection)),
            first_bytes_by: Some(Box::pin(tokio::time::sleep(limits.handshake_timeout))),
            read: 0,
        }
    }
}

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`), shorter than
/// any HTTP/1.1 request's head: a client that sends one byte and stops has not started talking.
const PREFACE_BYTES: usize = 24;

/// What every request on a connection carries in its extensions: the connection's call slots.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    slots: Arc<Semaphore>,
}

impl ConnectionInfo {
    /// A slot for one more call in progress on this connection, if one is free.
    pub fn take_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

impl<IO> Connected for Counted<IO> {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo { slots: self.slots.clone() }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = &mut this.first_bytes_by {
            let got = buf.filled().len() - before;
            match &read {
                Poll::Ready(Ok(())) if this.read + got >= PREFACE_BYTES => this.first_bytes_by = None,
                Poll::Ready(Ok(())) => this.read += got,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 preface within the handshake timeout",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
