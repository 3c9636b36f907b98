//! TLS on the gRPC listener: the certificate and key from `[tls]`, optionally client
//! certificates verified against a CA bundle (mTLS). The files are read again on SIGHUP and
//! when they change (checked every few seconds), so a renewed certificate (a Kubernetes
//! Secret updated in place, cert-manager) is served to new connections without a restart;
//! open connections keep the session they have. A reload that fails keeps the old
//! certificate and says why.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// How often the files' modification times are compared.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The server side of `[tls]`, when it is on.
#[derive(Debug, Clone)]
pub struct ServerTls {
    files: Files,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(self.cert.as_path()), Some(self.key.as_path()), self.client_ca.as_deref()].into_iter().flatten()
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.paths().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert_file and tls.key_file go together: set both, or neither")]
    Half,
    #[error("tls.client_ca_file needs tls.cert_file and tls.key_file: mTLS runs over TLS")]
    ClientCaWithoutTls,
    #[error("cannot read {what} {path}: {cause}")]
    Read { what: &'static str, path: String, cause: String },
    #[error("{what} {path} holds no certificate")]
    Empty { what: &'static str, path: String },
    #[error("the certificate and key are unusable: {0}")]
    Config(String),
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |cause: String| TlsError::Read { what, path: path.display().to_string(), cause };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what, path: path.display().to_string() });
    }
    Ok(certs)
}

fn server_config(files: &Files) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("tls.cert_file", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Read {
        what: "tls.key_file",
        path: files.key.display().to_string(),
        cause: e.to_string(),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls.client_ca_file", ca)? {
                roots.add(cert).map_err(|e| TlsError::Config(format!("tls.client_ca_file: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(format!("tls.client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(e.to_string()))?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

impl ServerTls {
    /// The server's TLS from `[tls]`, or `None` when TLS is off; fails naming the bad file.
    pub fn from_config(config: &TlsConfig) -> Result<Option<ServerTls>, TlsError> {
        let (cert, key) = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) if config.client_ca_file.is_some() => return Err(TlsError::ClientCaWithoutTls),
            (None, None) => return Ok(None),
            _ => return Err(TlsError::Half),
        };
        let files = Files { cert, key, client_ca: config.client_ca_file.clone() };
        let current = Arc::new(RwLock::new(server_config(&files)?));
        Ok(Some(ServerTls { files, current }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Reads the files again; on failure keeps the current certificate.
    pub fn reload(&self, why: &str) {
        match server_config(&self.files) {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                tracing::info!(why, "TLS certificate reloaded");
            }
            Err(err) => tracing::warn!(why, error = %err, "TLS reload failed; serving the previous certificate"),
        }
    }

    /// Reloads on SIGHUP and when a file's modification time changes, until aborted.
    pub async fn watch(self) {
        let mut seen = self.files.modified();
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut every = tokio::time::interval(WATCH_INTERVAL);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = signalled => {
                    seen = self.files.modified();
                    self.reload("SIGHUP");
                }
                _ = every.tick() => {
                    let now = self.files.modified();
                    if now != seen {
                        seen = now;
                        self.reload("a certificate file changed");
                    }
                }
            }
        }
    }
}

/// Whether a connection's first byte opens a TLS handshake (a record of type 22); a
/// plaintext HTTP/2 client starts with `P` (`PRI * HTTP/2.0`), an HTTP/1 one with a method.
pub fn is_tls_handshake(first: u8) -> bool {
    first == 0x16
}

/// The HTTP/2 client preface (`PRI * HTTP/2.0...`), before a plaintext client's frames.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// What a plaintext client is told, in the GOAWAY's debug data.
const PLAINTEXT_REFUSAL: &[u8] = b"hubdir: this port speaks TLS only; connect with https:// (grpcurl: drop -plaintext)";
/// How long a plaintext client is given to send its first request, and then to close.
const PLAINTEXT_WAIT: Duration = Duration::from_secs(2);
/// The most a plaintext client may send before it is refused anyway.
const PLAINTEXT_MAX_BYTES: usize = 64 * 1024;

/// Answers a plaintext HTTP/2 client on the TLS port so that its error says what to do: an
/// empty SETTINGS frame, then, once its first request (a HEADERS frame) has arrived, a GOAWAY
/// (PROTOCOL_ERROR) refusing it with a debug text that clients show. Without waiting for the
/// request, the client could find the connection closed before it reads why.
pub async fn refuse_plaintext(mut stream: TcpStream) {
    // SETTINGS: length 0, type 4, flags 0, stream 0.
    if stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.is_err() {
        return;
    }
    let mut received = Vec::new();
    let first_request = async {
        let mut chunk = [0u8; 4096];
        while !holds_headers(&received) && received.len() < PLAINTEXT_MAX_BYTES {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(PLAINTEXT_WAIT, first_request).await;
    // GOAWAY: length 8 + debug, type 7, flags 0, stream 0; last stream 0; PROTOCOL_ERROR (1).
    let mut goaway = Vec::with_capacity(17 + PLAINTEXT_REFUSAL.len());
    goaway.extend_from_slice(&((8 + PLAINTEXT_REFUSAL.len()) as u32).to_be_bytes()[1..]);
    goaway.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    goaway.extend_from_slice(PLAINTEXT_REFUSAL);
    let _ = stream.write_all(&goaway).await;
    let _ = stream.shutdown().await;
    // Read what the client still sends until it closes: closing with bytes unread would reset
    // the connection, and the client might lose the GOAWAY.
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(PLAINTEXT_WAIT, drain).await;
}

/// Whether the bytes a plaintext client sent (the preface, then frames) hold a HEADERS frame.
fn holds_headers(received: &[u8]) -> bool {
    let mut frames = received.strip_prefix(PREFACE).unwrap_or(received);
    while frames.len() >= 9 {
        if frames[3] == 1 {
            return true;
        }
        let length = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
        frames = frames.get(9 + length..).unwrap_or_default();
    }
    false
}

/// An I/O error for a connection refused before TLS.
pub fn not_tls() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a plaintext client on the TLS listener")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_found_after_the_preface_and_settings() {
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        let headers = [0, 0, 1, 1, 4, 0, 0, 0, 1, 0x82];
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(&settings);
        assert!(!holds_headers(&sent));
        sent.extend_from_slice(&headers[..9]);
        assert!(holds_headers(&sent), "a frame's header is enough");
        assert!(!holds_headers(&PREFACE[..10]));
    }
}
