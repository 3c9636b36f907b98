//! A small fault-injecting TCP proxy for the federation tests: it forwards a port to another
//! and, on command, delays every chunk, resets every open connection (RST, not FIN), refuses
//! connections altogether, or stalls (holds every byte, connections left open) until told to
//! pass again. It counts what it did, so a test can check that a fault really hit live
//! traffic: a proxy that did nothing fails the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
struct Control {
    delay_ms: AtomicU64,
    refuse: AtomicBool,
    resets: tokio::sync::watch::Sender<u64>,
    stalled: tokio::sync::watch::Sender<bool>,
    counts: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
    delayed_chunks: AtomicU64,
    reset_open: AtomicU64,
    refused: AtomicU64,
}

/// What a proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Bytes carried, both directions.
    pub bytes: u64,
    /// Chunks held back by a delay.
    pub delayed_chunks: u64,
    /// Open connections closed with RST by `reset` or `cut`.
    pub reset_open: u64,
    /// Connections refused while cut.
    pub refused: u64,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub address: SocketAddr,
    control: Arc<Control>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Forwards a fresh loopback port to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let control = Arc::new(Control {
            delay_ms: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            resets: tokio::sync::watch::Sender::new(0),
            stalled: tokio::sync::watch::Sender::new(false),
            counts: Counters::default(),
        });
        let shared = control.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, shared.clone()));
            }
        });
        Proxy { address, control, _runtime: runtime }
    }

    /// Delays every chunk in both directions by `delay`.
    pub fn delay(&self, delay: Duration) {
        self.control.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Resets every open connection.
    pub fn reset(&self) {
        self.control.resets.send_modify(|n| *n += 1);
    }

    /// Resets every open connection and refuses new ones (`true`), or lets them through.
    pub fn cut(&self, cut: bool) {
        self.control.refuse.store(cut, Ordering::SeqCst);
        if cut {
            self.reset();
        }
    }

    /// Holds every byte in both directions (`true`), connections left open, as a peer that
    /// has gone silent; or lets them flow again.
    pub fn stall(&self, stall: bool) {
        self.control.stalled.send_replace(stall);
    }

    /// No delay, no cut, no stall.
    pub fn pass(&self) {
        self.delay(Duration::ZERO);
        self.cut(false);
        self.stall(false);
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.control.counts;
        ProxyStats {
            connections: c.connections.load(Ordering::SeqCst),
            bytes: c.bytes.load(Ordering::SeqCst),
            delayed_chunks: c.delayed_chunks.load(Ordering::SeqCst),
            reset_open: c.reset_open.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
        }
    }
}

/// Closes a socket with RST. (A zero linger never blocks the drop, which is what the
/// deprecation warns of.)
#[allow(deprecated)]
fn abort(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Copies one direction, chunk by chunk, delayed or held as the control says.
async fn copy(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    control: &Control,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut stalled = control.stalled.subscribe();
    loop {
        let n = from.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        let delay = Duration::from_millis(control.delay_ms.load(Ordering::SeqCst));
        if !delay.is_zero() {
            control.counts.delayed_chunks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
        }
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        control.counts.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
}

async fn forward(client: TcpStream, target: SocketAddr, control: Arc<Control>) {
    if control.refuse.load(Ordering::SeqCst) {
        control.counts.refused.fetch_add(1, Ordering::SeqCst);
        return abort(client);
    }
    let Ok(upstream) = TcpStream::connect(target).await else { return abort(client) };
    control.counts.connections.fetch_add(1, Ordering::SeqCst);
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let mut resets = control.resets.subscribe();
    let (mut client, mut upstream) = (client, upstream);
    let (from_client, to_client) = client.split();
    let (from_upstream, to_upstream) = upstream.split();
    tokio::select! {
        _ = copy(from_client, to_upstream, &control) => {}
        _ = copy(from_upstream, to_client, &control) => {}
        _ = resets.changed() => {
            control.counts.reset_open.fetch_add(1, Ordering::SeqCst);
        }
    }
    abort(client);
    abort(upstream);
}
