//! The flags every serving binary shares, and the start-up sequence behind them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hubdir_federation_core::{NodeIdentity, OriginSigner};
use hubdir_store::Store;
use hubdir_telemetry::{ProcessInfo, Telemetry};
use tokio::net::TcpListener;

use crate::config::{Config, Flags};
use crate::prometheus;
use crate::server::{Collected, Listeners, Mount, NodeContext, serve, termination_signal};

/// The flags of every command that reads a node's configuration (`serve`, `export`,
/// `quarantine`, `federation ...`). Flags override the `HUBDIR_` environment, which
/// overrides the config file, which overrides the defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://path.db` (created if missing) or `postgres://...`
    /// [default: `store.url`, `sqlite://hubdir.db`].
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// This node's id (the origin of the sites it publishes), e.g. `zw` [default: `node.id`,
    /// `local`].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
}

impl NodeArgs {
    fn flags(&self) -> Flags {
        let mut flags = Flags::default();
        if let Some(db) = &self.db {
            flags.set("--db", "store", "url", db.clone().into());
        }
        if let Some(id) = &self.node_id {
            flags.set("--node-id", "node", "id", id.clone().into());
        }
        flags
    }

    /// The effective configuration: defaults, file, this process's environment, flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        load(self.config.as_deref(), self.flags())
    }

    /// The node's store, as the configuration names it, for a tool (`export`, `quarantine`,
    /// `federation ...`): its schema is required, never migrated, whatever
    /// `store.auto_migrate` says (a newer tool must not migrate a deployment's database behind
    /// its migration Job).
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let config = self.load_config()?.store;
        open_store(&config, hubdir_store::Schema::Require).await
    }
}

fn load(file: Option<&std::path::Path>, flags: Flags) -> anyhow::Result<Config> {
    // `vars_os`: a variable that is not UTF-8 is skipped, not a panic.
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    Ok(Config::load(file, with_rust_log(env), flags)?)
}

/// Opens the configured store, doing what `schema` says about its schema.
pub async fn open_store(config: &crate::config::StoreConfig, schema: hubdir_store::Schema) -> anyhow::Result<Store> {
    Store::open(&config.url, schema, config.max_connections)
        .await
        .with_context(|| format!("cannot open the store at {}", redact_url(&config.url)))
}

/// Flags of `hubdir serve` and of each standalone service binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Address to listen on; port 0 picks a free one (logged) [default: `server.listen`,
    /// `127.0.0.1:50051`].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log format, `text` or `json` [default: `log.format`, `text`].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
}

impl ServeArgs {
    /// The effective configuration: defaults, file, this process's environment, flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut flags = self.node.flags();
        if let Some(listen) = &self.listen {
            flags.set("--listen", "server", "listen", listen.clone().into());
        }
        if let Some(format) = &self.log_format {
            flags.set("--log-format", "log", "format", format.clone().into());
        }
        load(self.node.config.as_deref(), flags)
    }
}

/// `RUST_LOG`, the filter every Rust program reads, is `log.filter` too, unless
/// `HUBDIR_LOG__FILTER` (the more specific) is set.
fn with_rust_log(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    let specific = env.iter().any(|(k, _)| k == "HUBDIR_LOG__FILTER");
    let rust_log = env.iter().find(|(k, _)| k == "RUST_LOG").map(|(_, v)| v.clone());
    if let (false, Some(filter)) = (specific, rust_log) {
        env.push(("HUBDIR_LOG__FILTER".to_owned(), filter));
    }
    env
}

/// What a prepared node needs before it serves: config, store, bound listeners, telemetry.
#[derive(Debug)]
pub struct Prepared {
    pub ctx: NodeContext,
    pub listener: TcpListener,
    /// The plaintext health listener, when `tls.probe_listen` is set.
    pub probe_listener: Option<TcpListener>,
    /// The Prometheus endpoint's listener, when `telemetry.prometheus_listen` is set.
    pub metrics_listener: Option<TcpListener>,
    pub telemetry: Arc<Telemetry>,
}

/// Loads the config, starts logging, binds the listener, opens the store. Returns `None`
/// after `--dump-config` has printed the configuration.
pub async fn prepare(args: &ServeArgs) -> anyhow::Result<Option<Prepared>> {
    let config = args.load_config()?;
    if args.dump_config {
        use std::io::Write;
        let mut shown = config.clone();
        shown.store.url = redact_url(&shown.store.url);
        std::io::stdout().write_all(shown.to_toml().as_bytes())?;
        return Ok(None);
    }
    let process = ProcessInfo { service_name: binary_name(), node_id: config.node.id.to_string() };
    let telemetry =
        Arc::new(hubdir_telemetry::init(&config.log.filter, config.log.format, &config.telemetry, &process)?);
    // Check the token keys before touching the network or the database.
    hubdir_auth::Verifier::from_config(&config.auth)?;
    // The node key: created on first start, its public id logged, the key itself never.
    let key_file = &config.federation.key_file;
    let existed = key_file.exists();
    let identity = Arc::new(NodeIdentity::load_or_create(config.node.id.as_str(), key_file)?);
    if existed {
        tracing::info!(key_id = identity.key_id(), "node key loaded");
    } else {
        tracing::info!(key_id = identity.key_id(), file = %key_file.display(), "node key created (owner-only)");
    }
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let bind_optional = |address: Option<std::net::SocketAddr>, key: &'static str| async move {
        match address {
            Some(address) => TcpListener::bind(address)
                .await
                .map(Some)
                .with_context(|| format!("cannot listen on {address} ({key})")),
            None => Ok(None),
        }
    };
    let probe_listener = bind_optional(config.tls.probe_listen, "tls.probe_listen").await?;
    let metrics_listener = bind_optional(config.telemetry.prometheus_listen, "telemetry.prometheus_listen").await?;
    tracing::info!(node = %config.node.id, "opening store");
    let store = open_store(&config.store, config.store.schema()).await?;
    // Every event this node writes is signed with its key, in the write's transaction, and it
    // writes its own origin only: others arrive signed from peers.
    let store = store.with_signer(Arc::new(OriginSigner::new(identity.clone()))).owning([config.node.id.clone()]);
    // The index's snapshot file belongs to the store opened here (by default beside it).
    let index_snapshot = config.index.snapshot_file(&config.store.url);
    let mut ctx = NodeContext::new(config, Arc::new(store))?.with_identity(identity);
    ctx.index_snapshot = index_snapshot;
    ctx.telemetry = Collected { traces: telemetry.traces_enabled(), metrics: telemetry.metrics_enabled() };
    Ok(Some(Prepared { ctx, listener, probe_listener, metrics_listener, telemetry }))
}

/// The running binary's name (`hubdir`, `hubdir-discovery`), for the exported resource.
fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "hubdir".to_owned())
}

/// Serves until SIGTERM or SIGINT, with the Prometheus endpoint if configured; then sends
/// the last spans and metrics.
pub async fn run(prepared: Prepared, mounts: &[Mount]) -> anyhow::Result<()> {
    let Prepared { ctx, listener, probe_listener, metrics_listener, telemetry } = prepared;
    let endpoint = metrics_listener.map(|listener| tokio::spawn(prometheus::serve(listener, telemetry.clone())));
    let listeners = Listeners { grpc: listener, probes: probe_listener };
    let served = serve(ctx, mounts, listeners, termination_signal()).await;
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    // Flushing blocks on the exporters' network calls.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    served
}

/// The whole life of a standalone service binary.
pub async fn standalone_main(args: ServeArgs, mounts: &[Mount]) -> anyhow::Result<()> {
    match prepare(&args).await? {
        Some(prepared) => run(prepared, mounts).await,
        None => Ok(()),
    }
}

/// Ends a command: prints an error and its causes for people (each cause once: drivers
/// often repeat their source's text in their own) and exits 1; otherwise exits with `code`.
pub fn finish(result: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{}", report(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error: WHAT` then `  because: CAUSE` lines, skipping a cause already said.
pub fn report(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}");
    let mut said = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        out.push_str(&format!("\n  because: {text}"));
        said = text;
    }
    out
}

/// Hides a password in a database URL before it is shown.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_report_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("Connection Error: {0}")]
        struct Wrapper(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = anyhow::Error::new(Wrapper(io)).context("cannot open the store");
        assert_eq!(report(&err), "error: cannot open the store\n  because: Connection Error: connection refused");
    }

    /// Finding 8: RUST_LOG was documented by its syntax but not read.
    #[test]
    fn rust_log_is_the_log_filter_unless_the_specific_variable_is_set() {
        let filter = |env: &[(&str, &str)]| {
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::load(None, with_rust_log(env), Flags::default()).unwrap().log.filter
        };
        assert_eq!(filter(&[("RUST_LOG", "debug")]), "debug");
        assert_eq!(filter(&[("RUST_LOG", "debug"), ("HUBDIR_LOG__FILTER", "warn")]), "warn");
        assert_eq!(filter(&[]), Config::default().log.filter);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://hub:s3cret@db:5432/x"), "postgres://hub:***@db:5432/x");
        assert_eq!(redact_url("postgres://hub@db/x"), "postgres://hub@db/x");
        assert_eq!(redact_url("sqlite://hubdir.db"), "sqlite://hubdir.db");
    }
}
