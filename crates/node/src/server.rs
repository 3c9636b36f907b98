//! The gRPC server every hubdir process runs: the mounted services, health, reflection,
//! explicit limits, and a graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hubdir_auth::{Authenticator, Verifier};
use hubdir_federation_core::NodeIdentity;
use hubdir_store::Store;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::background::Background;
use crate::calls::CallLayer;
use crate::config::Config;
use crate::connections::{self, ConnectionCounts, ConnectionLimits};
use crate::health::{self, Readiness};
use crate::page_token::PageTokens;
use crate::site_index::LiveIndex;
use crate::tls::ServerTls;

/// What a service needs to build itself.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    /// Verifies bearer tokens; services wrap themselves in it.
    pub authenticator: Authenticator,
    /// The node's id and signing key, once loaded (`hubdir serve` loads it at start).
    pub identity: Option<Arc<NodeIdentity>>,
    /// Signs page tokens: with a secret derived from the node key once it is loaded.
    pub page_tokens: PageTokens,
    /// Where services start their background tasks, so that shutdown stops them.
    pub background: Background,
    /// Where services that need time before they can answer say when they are ready.
    pub readiness: Readiness,
    /// What telemetry collects: calls build spans and time themselves only if it does.
    pub telemetry: Collected,
    /// Where the nearest index keeps its snapshot (`[index]`, resolved against the store the
    /// process opened); none unless set.
    pub index_snapshot: Option<std::path::PathBuf>,
    /// The live nearest index, started by the first service that asks for it.
    site_index: Arc<std::sync::OnceLock<LiveIndex>>,
    /// The services that read it: all turn ready together once it has loaded.
    site_index_readers: Arc<std::sync::Mutex<Vec<&'static str>>>,
}

impl NodeContext {
    /// Loads the configured issuers' keys; fails naming the bad key.
    pub fn new(config: Config, store: Arc<Store>) -> Result<NodeContext, hubdir_auth::ConfigError> {
        let verifier = Verifier::from_config(&config.auth)?;
        Ok(NodeContext {
            config: Arc::new(config),
            store,
            authenticator: Authenticator::new(Arc::new(verifier)),
            identity: None,
            page_tokens: PageTokens::ephemeral(),
            background: Background::default(),
            readiness: Readiness::default(),
            telemetry: Collected::default(),
            index_snapshot: None,
            site_index: Arc::default(),
            site_index_readers: Arc::default(),
        })
    }

    /// The process's live nearest index, for the service `service`: NOT_SERVING in health
    /// until the index has loaded. The first caller starts the follower; every caller shares
    /// that one index.
    pub fn site_index_for(&self, service: &'static str) -> LiveIndex {
        let index = self
            .site_index
            .get_or_init(|| {
                let index = LiveIndex::default();
                let follower = crate::site_index::run(self.store.clone(), index.clone(), self.index_snapshot.clone());
                self.background.spawn("site index follower", follower);
                index
            })
            .clone();
        self.readiness.set(service, false);
        self.site_index_readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(service);
        let (readiness, loaded, readers) = (self.readiness.clone(), index.clone(), self.site_index_readers.clone());
        self.background.spawn("site index readiness", async move {
            loaded.when_loaded().await;
            let readers = readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            readiness.set_all(&readers, true);
        });
        index
    }

    /// The same context, with the node's identity (its store should sign with it too:
    /// `Store::with_signer`).
    pub fn with_identity(self, identity: Arc<NodeIdentity>) -> NodeContext {
        let page_tokens = PageTokens::new(identity.derive_secret("hubdir page tokens v1"));
        NodeContext { identity: Some(identity), page_tokens, ..self }
    }
}

/// Whether spans are exported and metrics collected (`hubdir_telemetry::Telemetry`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Collected {
    pub traces: bool,
    pub metrics: bool,
}

/// A service a process can mount: its full gRPC name and how to add it to the routes.
/// Each service crate exports one; `hubdir serve` mounts them all, each standalone binary
/// mounts its own.
#[derive(Debug, Clone, Copy)]
pub struct Mount {
    /// e.g. `hubdir.v1.RegistryService`.
    pub service_name: &'static str,
    pub add: fn(&NodeContext, &mut Routing),
}

/// A generated gRPC server as every service mounts it: `server.max_message_bytes` both ways,
/// and gzip accepted and offered (`$ctx` is the `NodeContext`).
#[macro_export]
macro_rules! grpc_server {
    ($server:expr, $ctx:expr) => {{
        let max = $ctx.config.server.max_message_bytes;
        $server
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(::tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(::tonic::codec::CompressionEncoding::Gzip)
    }};
}

/// Where a mounted service adds its gRPC service and, if it has them, its HTTP/JSON routes
/// (`crate::http`), which call the same handlers.
#[derive(Debug, Default)]
pub struct Routing {
    pub grpc: RoutesBuilder,
    http: axum::Router,
}

impl Routing {
    /// Adds HTTP routes beside the others.
    pub fn add_http(&mut self, routes: axum::Router) {
        self.http = std::mem::take(&mut self.http).merge(routes);
    }

    /// One router: gRPC by service path, the HTTP routes (gzipped for clients that accept
    /// it, timed when `metrics`) by theirs.
    fn routes(self, metrics: bool) -> tonic::service::Routes {
        let mut routes = self.grpc.routes();
        let mut http = self.http;
        if metrics {
            http = http.route_layer(axum::middleware::from_fn(crate::http::observe));
        }
        let http = http.layer(tower_http::compression::CompressionLayer::new());
        let grpc = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = grpc.merge(http).fallback(crate::http::not_found);
        routes
    }
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Where a node listens: the gRPC listener (TLS when `[tls]` says so) and, optionally, a
/// plaintext listener serving health only, for probes that cannot speak TLS.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub probes: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Listeners {
        Listeners { grpc, probes: None }
    }
}

/// Serves `mounts` until `shutdown` resolves, then reports NOT_SERVING, stops accepting, and
/// gives in-flight requests `server.drain_deadline_secs` to finish.
pub async fn serve(
    ctx: NodeContext,
    mounts: &[Mount],
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Listeners { grpc: listener, probes } = listeners.into();
    let limits = &ctx.config.server;
    let tls = ServerTls::from_config(&ctx.config.tls)?;
    let service_names: Vec<&'static str> = mounts.iter().map(|m| m.service_name).collect();

    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::stop_all(&reporter, &service_names).await;
    reporter.set_service_status(health::LIVENESS, ServingStatus::Serving).await;

    // Reflection advertises exactly what is mounted, in both protocol versions (the Python
    // reflection client speaks only v1alpha), and knows the `google.rpc` error details, so
    // a client without .proto files (grpcurl) can decode an error's BadRequest and ErrorInfo.
    let advertised: Vec<&'static str> =
        service_names.iter().copied().chain([HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA]).collect();
    let reflection = || {
        advertised.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(hubdir_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(*name),
        )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let mut routing = Routing::default();
    for mount in mounts {
        (mount.add)(&ctx, &mut routing);
    }
    routing.grpc.add_service(health_service.clone()).add_service(reflection_v1).add_service(reflection_v1alpha);

    let router = Server::builder()
        // HTTP/1.1 too: gRPC-Web from browsers and proxies that do not speak HTTP/2.
        .accept_http1(true)
        .layer(tower::util::option_layer(cors(&limits.cors_allowed_origins)?))
        .layer(crate::grpc_web::WebLayer)
        .layer(CallLayer {
            traces: ctx.telemetry.traces,
            metrics: ctx.telemetry.metrics,
            services: advertised.clone().into(),
        })
        .layer(tower::util::MapResponseLayer::new(undecodable_is_invalid_argument::<tonic::body::Body>))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .http2_keepalive_interval(Some(Duration::from_secs(limits.keepalive_interval_secs)))
        .http2_keepalive_timeout(Some(Duration::from_secs(limits.keepalive_timeout_secs)))
        .max_connection_age(Duration::from_secs(limits.max_connection_age_secs))
        .max_connection_age_grace(Duration::from_secs(limits.drain_deadline_secs))
        .add_routes(routing.routes(ctx.telemetry.metrics));

    let address = listener.local_addr()?;
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let connection_limits = ConnectionLimits {
        max_connections: limits.max_connections,
        max_requests_per_connection: limits.max_concurrent_requests_per_connection,
        handshake_timeout: Duration::from_secs(limits.handshake_timeout_secs),
        tcp_keepalive: Duration::from_secs(limits.keepalive_interval_secs),
    };
    let counts = Arc::new(ConnectionCounts::default());
    let stop = async {
        let _ = stopped.await;
    };
    let mut server = match tls.clone() {
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(connections::accept(listener, connection_limits, counts), stop),
        ),
        Some(tls) => tokio::spawn(
            router
                .serve_with_incoming_shutdown(connections::accept_tls(listener, connection_limits, counts, tls), stop),
        ),
    };
    let _tls_watcher = tls.clone().map(|tls| AbortOnDrop(tokio::spawn(tls.watch())));
    let _probes = match probes {
        Some(probes) => {
            let address = probes.local_addr()?;
            tracing::info!(%address, "serving health probes in plaintext");
            // Probes are few: a small cap, and the same deadlines as the API's listener.
            let probe_limits = ConnectionLimits { max_connections: PROBE_CONNECTIONS, ..connection_limits };
            let incoming = connections::accept(probes, probe_limits, Arc::new(ConnectionCounts::default()));
            let probe_server = Server::builder()
                .timeout(Duration::from_secs(limits.request_timeout_secs))
                .add_service(health_service)
                .serve_with_incoming(incoming);
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(err) = probe_server.await {
                    tracing::warn!(error = %err, "the probe listener stopped");
                }
            })))
        }
        None => None,
    };
    let watcher = tokio::spawn(health::watch(
        ctx.store.clone(),
        ctx.readiness.clone(),
        reporter.clone(),
        service_names.clone(),
        ctx.telemetry.metrics,
    ));
    let (tls_on, mutual) = tls.as_ref().map_or((false, false), |t| (true, t.mutual()));
    tracing::info!(%address, services = ?service_names, store = ctx.store.backend_name(), tls = tls_on, mtls = mutual, "serving");

    let deadline = Duration::from_secs(limits.drain_deadline_secs);
    tokio::select! {
        finished = &mut server => {
            watcher.abort();
            let _ = watcher.await;
            stop_background(&ctx.background, deadline).await;
            return Ok(finished??);
        }
        () = shutdown => {}
    }

    tracing::info!("shutting down: reporting NOT_SERVING, draining in-flight requests");
    watcher.abort();
    // Awaited, so that when `serve` returns nothing it started still holds the store.
    let _ = watcher.await;
    health::stop_all(&reporter, &service_names).await;
    let _ = stop_accepting.send(());
    // The background tasks stop while the requests drain, within the same deadline.
    let (drained, ()) =
        tokio::join!(tokio::time::timeout(deadline, &mut server), stop_background(&ctx.background, deadline));
    match drained {
        Ok(finished) => finished??,
        Err(_) => {
            tracing::warn!(deadline_secs = deadline.as_secs(), "drain deadline passed; closing remaining connections");
            server.abort();
            let _ = server.await;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// CORS for browsers on other origins: none unless `server.cors_allowed_origins` names some
/// (`"*"`: any). Preflights are answered here; what gRPC-Web and the HTTP API need is allowed:
/// their methods, the request headers they send, and the gRPC status headers exposed.
fn cors(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed: Result<Vec<http::HeaderValue>, _> =
            origins.iter().map(|o| http::HeaderValue::from_str(o)).collect();
        AllowOrigin::list(
            parsed.map_err(|_| anyhow::anyhow!("server.cors_allowed_origins holds a value that is not an origin"))?,
        )
    };
    let header = http::HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::GET, http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                http::header::CONTENT_TYPE,
                http::header::AUTHORIZATION,
                http::header::ACCEPT,
                http::header::IF_NONE_MATCH,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("grpc-accept-encoding"),
                header("traceparent"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("grpc-encoding"),
                http::header::ETAG,
            ])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}

/// Connections the plaintext probe listener holds at once.
const PROBE_CONNECTIONS: usize = 16;

/// A task that ends with the scope that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops the services' background tasks, saying how it went.
async fn stop_background(background: &Background, deadline: Duration) {
    let tasks = background.running();
    if background.stop(deadline).await {
        tracing::info!(tasks, "background tasks stopped");
    } else {
        tracing::warn!(tasks = background.running(), "background tasks still running at the drain deadline");
    }
}

/// A request that does not decode (a string field that is not UTF-8, a truncated message) is
/// the client's error: INVALID_ARGUMENT, not the INTERNAL that tonic's codec answers (gRPC's
/// own convention), which says "our fault" and invites a retry that can never succeed.
fn undecodable_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let internal = headers.get("grpc-status").is_some_and(|s| s.as_bytes() == b"13");
    let undecodable = headers.get("grpc-message").is_some_and(|m| m.as_bytes().starts_with(b"failed%20to%20decode"));
    if internal && undecodable {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("received SIGTERM"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
