//! Accepting connections within bounds: at most `server.max_connections` open at once (past
//! it a new connection is closed at once, logged and counted), and a connection that has not
//! sent the whole HTTP/2 preface (24 bytes) within `server.handshake_timeout_secs` is closed. The process therefore never runs out of file descriptors to idle sockets, and the
//! connections it holds are ones that speak.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// How many connections are open, and how many were refused at the cap (for the log line;
/// exported as a metric once the node has metrics).
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    open: AtomicUsize,
    refused: AtomicU64,
}

/// The bounds on accepted connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub tcp_keepalive: Duration,
}

/// The listener's connections, within `limits`; `counts` follows them.
pub fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
) -> impl Stream<Item = io::Result<Counted>> {
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
        let deadline = Box::pin(tokio::time::sleep(limits.handshake_timeout));
        Some(Ok(Counted { inner: stream, counts: counts.clone(), first_bytes_by: Some(deadline), read: 0 }))
    })
}

/// An accepted connection, counted while it is open.
#[derive(Debug)]
pub struct Counted {
    inner: TcpStream,
    counts: Arc<ConnectionCounts>,
    /// Until the HTTP/2 preface has arrived: when the connection is closed if it has not.
    first_bytes_by: Option<Pin<Box<Sleep>>>,
    /// Bytes read so far, up to the preface's length.
    read: usize,
}

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`): a client
/// that sends one byte and stops has not started talking.
const PREFACE_BYTES: usize = 24;

impl Drop for Counted {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Counted {
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

impl AsyncWrite for Counted {
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
