//! How a hubdir process calls another node (the federation follower, `hubdir import --node`,
//! `hubdir agent`): one channel set-up, TLS for `https://` endpoints (a custom CA, and a client
//! certificate for mTLS), and one interceptor that adds the bearer token and the current trace
//! context to every call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tonic::metadata::{AsciiMetadataValue, MetadataKey, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// TLS for calls to `https://` endpoints: `[tls]`'s client half, or the `--tls-*` flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientTls {
    /// CA bundle (PEM) the server's certificate must chain to. Unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Certificate chain (PEM) presented to a server that asks for one (mTLS).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} at {}", path.display()))
}

impl ClientTls {
    fn config(&self) -> anyhow::Result<ClientTlsConfig> {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_file {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca, "CA bundle")?)),
            None => config.with_native_roots(),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                config =
                    config.identity(Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?));
            }
            (None, None) => {}
            _ => anyhow::bail!("a client certificate needs both cert_file and key_file"),
        }
        Ok(config)
    }
}

/// How long connecting (TCP and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 keepalive: a peer that stops answering pings is dropped, even mid-stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to `endpoint`, connected: `https://` with `tls`, `http://` in plaintext (`tls`
/// unused: a node with `[tls]` on may still follow a plaintext peer).
pub async fn connect(endpoint: &str, tls: &ClientTls) -> anyhow::Result<Channel> {
    let mut builder = Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("{endpoint} is not a URL"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if endpoint.starts_with("https://") {
        builder = builder.tls_config(tls.config()?).with_context(|| format!("TLS set-up for {endpoint}"))?;
    }
    builder.connect().await.with_context(|| format!("cannot connect to {endpoint}"))
}

/// The client side of a call to another node, by the RPC conventions: calls made inside it
/// carry its trace context, so the node's span of the call joins this trace.
pub fn call_span(service: &'static str, method: &'static str) -> tracing::Span {
    tracing::debug_span!(
        "rpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    )
}

/// Adds the bearer token (if any) and the current span's W3C trace context to each call.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    authorization: Option<AsciiMetadataValue>,
}

impl Outgoing {
    /// Calls carrying `token` (whitespace around it is ignored: token files end in a newline).
    pub fn bearer(token: &str) -> anyhow::Result<Outgoing> {
        let value = format!("Bearer {}", token.trim()).parse().context("the token is not ASCII")?;
        Ok(Outgoing { authorization: Some(value) })
    }
}

impl tonic::service::Interceptor for Outgoing {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        inject_trace_context(metadata);
        Ok(request)
    }
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into `metadata`.
fn inject_trace_context(metadata: &mut MetadataMap) {
    let mut headers = http::HeaderMap::new();
    hubdir_telemetry::propagation::inject_current(&mut headers);
    for (name, value) in &headers {
        if let (Ok(key), Ok(value)) =
            (MetadataKey::from_bytes(name.as_str().as_bytes()), AsciiMetadataValue::try_from(value.as_bytes()))
        {
            metadata.insert(key, value);
        }
    }
}

/// The TLS flags of commands that call a node (`hubdir import --node`, `hubdir agent`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// With an `https://` node: the CA bundle (PEM) its certificate chains to [default: the
    /// system's roots].
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for a node that requires one (mTLS); with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The TLS settings for `endpoint`; flags given for an `http://` endpoint are a mistake.
    pub fn tls_for(&self, endpoint: &str) -> anyhow::Result<ClientTls> {
        let given = self.tls_ca.is_some() || self.tls_cert.is_some();
        if given && !endpoint.starts_with("https://") {
            anyhow::bail!("{endpoint} is plaintext (http://) but --tls-* flags were given: use https://");
        }
        Ok(ClientTls { ca_file: self.tls_ca.clone(), cert_file: self.tls_cert.clone(), key_file: self.tls_key.clone() })
    }
}
