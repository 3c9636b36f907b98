//! A small fault-injecting TCP proxy for the federation tests: it forwards a port to another
//! and, on command, delays every chunk, resets every open connection (RST, not FIN), or
//! refuses connections altogether until told to pass again.

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

    /// No delay, no cut.
    pub fn pass(&self) {
        self.delay(Duration::ZERO);
        self.cut(false);
    }
}

/// Closes a socket with RST. (A zero linger never blocks the drop, which is what the
/// deprecation warns of.)
#[allow(deprecated)]
fn abort(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn forward(client: TcpStream, target: SocketAddr, control: Arc<Control>) {
    if control.refuse.load(Ordering::SeqCst) {
        return abort(client);
    }
    let Ok(upstream) = TcpStream::connect(target).await else { return abort(client) };
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let mut resets = control.resets.subscribe();
    let (mut client, mut upstream) = (client, upstream);
    let (mut from_client, mut to_client) = client.split();
    let (mut from_upstream, mut to_upstream) = upstream.split();
    let delay = || Duration::from_millis(control.delay_ms.load(Ordering::SeqCst));
    let up = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            tokio::time::sleep(delay()).await;
            if to_upstream.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = from_upstream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            tokio::time::sleep(delay()).await;
            if to_client.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = resets.changed() => {}
    }
    abort(client);
    abort(upstream);
}
