//! Layered configuration: defaults -> TOML file -> `HUBDIR_` environment -> command-line
//! flags; each layer overrides the one before, key by key.
//!
//! Environment variables name a key with `__` between the section and the field:
//! `HUBDIR_SERVER__LISTEN=0.0.0.0:50051`, `HUBDIR_STORE__URL=postgres://...`. Variables
//! without `__` (such as `HUBDIR_TEST_POSTGRES_URL`) are not configuration and are ignored.
//! The loader takes the environment as a value, so tests never touch the process's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hubdir_core::connectivity::{Benchmark, Window};
use serde::{Deserialize, Serialize};

/// The whole configuration of a hubdir process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// The discovery index's snapshot file.
    pub index: IndexConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint; off by default.
    pub telemetry: hubdir_telemetry::TelemetryConfig,
    /// TLS on the gRPC listener (and mTLS), and for calls to `https://` peers; off by default.
    pub tls: TlsConfig,
    /// Token issuers and their keys; who may read and write what.
    pub auth: hubdir_auth::AuthConfig,
    /// How connectivity measurements are judged.
    pub connectivity: ConnectivityConfig,
    /// This node's place in the federation.
    pub federation: FederationConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The node's Ed25519 signing key (PKCS#8 PEM), created on first start, readable by its
    /// owner only; in Kubernetes, a Secret mounted as this file. Never in the database.
    pub key_file: PathBuf,
    /// The peers this node follows: `[[federation.peers]]`.
    pub peers: Vec<PeerConfig>,
    /// Pinned keys of origins whose events arrive through a relay rather than from the origin
    /// itself, and further keys of a peer (the new key during a rotation's overlap):
    /// `[[federation.origin_keys]]`. A peer's own key is pinned in its `[[federation.peers]]`.
    pub origin_keys: Vec<OriginKeyConfig>,
}

/// A pinned public key of an origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginKeyConfig {
    /// The origin whose events the key signs.
    pub origin: String,
    /// The Ed25519 public key (SPKI PEM, as `hubdir federation key` prints it).
    pub public_key_file: PathBuf,
    /// Events written after this instant (RFC 3339, quoted) are refused under this key: the
    /// end of a retired key's overlap. Unset: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A peer node this node follows, and how far it is trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's node id (the origin it signs for).
    pub node_id: String,
    /// Its gRPC endpoint, `http://host:port`.
    pub endpoint: String,
    /// Its Ed25519 public key, pinned (SPKI PEM, as its GetNodeInfo publishes it).
    pub public_key_file: PathBuf,
    /// The origins it may supply; empty means only its own.
    #[serde(default)]
    pub origins: Vec<String>,
    /// A file holding the bearer token (scope federation.sync) this node presents to it.
    pub token_file: PathBuf,
}

/// How connectivity measurements are accepted and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectivityConfig {
    /// A site's status reads UNKNOWN this long after its latest measurement.
    pub ttl_secs: u64,
    /// An unchanged status is announced again in the change log after this long, so that
    /// followers' copies do not expire while the site keeps reporting; keep it under the TTL.
    pub refresh_secs: u64,
    /// Measurements observed longer ago than this are refused.
    pub max_age_secs: u64,
    /// Measurements observed further ahead than this (clock skew) are refused.
    pub max_future_skew_secs: u64,
    /// Raw measurements are kept this many days, then rolled up into one row per site and
    /// day and deleted. Keep it longer than `max_age_secs`, so no late measurement arrives
    /// for a day already rolled up.
    pub retention_days: u64,
    /// How often the roll-up runs, in seconds (the quarantine is pruned then too).
    pub roll_up_interval_secs: u64,
    /// Refused measurements are kept this many days.
    pub quarantine_days: u64,
    /// At most this many refused measurements are kept; the oldest go first.
    pub quarantine_max_rows: u64,
    /// The default benchmark (download Mbit/s): good at or above `good_mbps`, moderate from
    /// `moderate_mbps`, poor below.
    pub benchmark: Benchmark,
    /// Benchmarks for particular countries, by ISO 3166-1 alpha-2 code:
    /// `[connectivity.countries.ZW] good_mbps = 10.0`, `moderate_mbps = 0.5`.
    pub countries: std::collections::BTreeMap<String, Benchmark>,
}

impl Default for ConnectivityConfig {
    fn default() -> Self {
        ConnectivityConfig {
            ttl_secs: 3600,
            refresh_secs: 900,
            max_age_secs: 7 * 24 * 3600,
            max_future_skew_secs: 300,
            retention_days: 90,
            roll_up_interval_secs: 3600,
            quarantine_days: 30,
            quarantine_max_rows: 100_000,
            benchmark: Benchmark::default(),
            countries: Default::default(),
        }
    }
}

impl ConnectivityConfig {
    fn secs(secs: u64) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
    }

    pub fn ttl(&self) -> chrono::Duration {
        Self::secs(self.ttl_secs)
    }

    pub fn refresh(&self) -> chrono::Duration {
        Self::secs(self.refresh_secs)
    }

    pub fn retention(&self) -> chrono::Duration {
        Self::secs(self.retention_days.saturating_mul(86_400))
    }

    pub fn quarantine_retention(&self) -> chrono::Duration {
        Self::secs(self.quarantine_days.saturating_mul(86_400))
    }

    pub fn window(&self) -> Window {
        Window { max_future_skew: Self::secs(self.max_future_skew_secs), max_age: Self::secs(self.max_age_secs) }
    }

    /// The benchmark in force for a country.
    pub fn benchmark_for(&self, country: &str) -> Benchmark {
        self.countries.get(country).copied().unwrap_or(self.benchmark)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id, and the origin of the sites it publishes (`zw`, `fr-laposte`); checked
    /// when the configuration loads.
    pub id: hubdir_core::Origin,
}

/// gRPC server limits; every one is explicit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Requests served at once per connection; beyond it the request is shed at once
    /// (load shedding) instead of waiting in an unbounded queue. A call counts until its
    /// response starts: a long server stream (`Subscribe`, health `Watch`) then holds no slot,
    /// and `max_concurrent_streams` bounds those. Keep it below
    /// `max_concurrent_streams`, or HTTP/2 flow control queues requests before it applies.
    pub max_concurrent_requests_per_connection: usize,
    /// Deadline of every RPC's handler, in seconds, client streams included (a
    /// `BatchUpsertSites` stream must finish within it); clients may ask for less with
    /// `grpc-timeout`.
    pub request_timeout_secs: u64,
    /// HTTP/2 keepalive ping interval, in seconds.
    pub keepalive_interval_secs: u64,
    /// How long to wait for a keepalive ping's answer, in seconds.
    pub keepalive_timeout_secs: u64,
    /// On SIGTERM, how long in-flight requests may take to finish, in seconds.
    pub drain_deadline_secs: u64,
    /// Connections open at once; past it a new connection is closed at once (and logged).
    /// Keep it well under the process's file-descriptor limit (`ulimit -n`), which the
    /// database connections and files share.
    pub max_connections: usize,
    /// A connection that has not sent its first 24 bytes (the HTTP/2 preface, or an HTTP/1.1
    /// request line: gRPC-Web and the HTTP API) this long after it opens is
    /// closed, in seconds.
    pub handshake_timeout_secs: u64,
    /// Any connection, busy or idle, is asked to go away (HTTP/2 GOAWAY; clients reconnect)
    /// after this long, and closed `drain_deadline_secs` later, in seconds.
    pub max_connection_age_secs: u64,
    /// Web origins (`https://maps.example.org`) whose pages may call this node from a
    /// browser (gRPC-Web and the HTTP API, through CORS). Empty: none, the default; `"*"`:
    /// any.
    pub cors_allowed_origins: Vec<String>,
}

/// `[tls]`: every file is PEM, read at start and again on SIGHUP or when it changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The node's certificate chain. With `key_file`, `server.listen` speaks TLS only; the
    /// same certificate is this node's client certificate towards peers that ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The CA bundle client certificates must chain to. Set: every client must present a
    /// valid certificate (mTLS) before any call, its bearer token is checked as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// The CA bundle `https://` peers' certificates must chain to. Unset: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ca_file: Option<PathBuf>,
    /// A plaintext listener serving health only, for probes that cannot speak TLS
    /// (`0.0.0.0:50052`). Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_listen: Option<SocketAddr>,
}

impl TlsConfig {
    /// How this node calls `https://` peers.
    pub fn client(&self) -> crate::client::ClientTls {
        crate::client::ClientTls {
            ca_file: self.peer_ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path.db` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// Apply pending schema migrations at start. Off: a schema older than the binary's is
    /// refused at start (a newer one is accepted with a warning: a rolling upgrade's old
    /// replicas), and `hubdir migrate` applies migrations (a deployment's hook job, before
    /// its services roll).
    pub auto_migrate: bool,
    /// How often a replica standing by tries to take a lease (the federation followers and the
    /// connectivity roll-up run in one process of a node at a time), and how often its holder
    /// checks it still holds it, in seconds.
    pub lease_retry_secs: u64,
    /// Most connections this process opens to PostgreSQL (each lease it holds takes one
    /// more). Size the server's `max_connections` for every replica's.
    pub max_connections: u32,
}

impl StoreConfig {
    /// What opening the store does about its schema.
    pub fn schema(&self) -> hubdir_store::Schema {
        if self.auto_migrate { hubdir_store::Schema::Migrate } else { hubdir_store::Schema::Require }
    }

    pub fn lease_retry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_retry_secs.max(1))
    }
}

/// `[index]`: the discovery index keeps a snapshot of itself, so that a restart reads one file
/// and replays the change log after it instead of reading every site from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Keep a snapshot at all.
    pub snapshot: bool,
    /// Where. Unset: beside a SQLite database (`<database file>.index`), and none with
    /// PostgreSQL: set it there to a path on a disk that outlives the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_file: Option<PathBuf>,
}

impl IndexConfig {
    /// The snapshot file for a store at `store_url`, if there is to be one.
    pub fn snapshot_file(&self, store_url: &str) -> Option<PathBuf> {
        if !self.snapshot {
            return None;
        }
        if let Some(file) = &self.snapshot_file {
            return Some(file.clone());
        }
        let path = store_url.strip_prefix("sqlite://")?.split('?').next()?;
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(format!("{path}.index")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `RUST_LOG`-style directives.
    pub filter: String,
    /// `text` or `json`.
    pub format: hubdir_telemetry::LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: NodeConfig { id: hubdir_core::Origin::local() },
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
                max_message_bytes: 4 * 1024 * 1024,
                max_concurrent_streams: 256,
                max_concurrent_requests_per_connection: 128,
                request_timeout_secs: 120,
                max_connections: 512,
                handshake_timeout_secs: 10,
                max_connection_age_secs: 3600,
                cors_allowed_origins: Vec::new(),
                keepalive_interval_secs: 30,
                keepalive_timeout_secs: 10,
                drain_deadline_secs: 10,
            },
            store: StoreConfig {
                url: "sqlite://hubdir.db".into(),
                auto_migrate: true,
                lease_retry_secs: 5,
                max_connections: hubdir_store::DEFAULT_MAX_CONNECTIONS,
            },
            index: IndexConfig { snapshot: true, snapshot_file: None },
            log: LogConfig {
                filter: hubdir_telemetry::DEFAULT_FILTER.into(),
                format: hubdir_telemetry::LogFormat::Text,
            },
            telemetry: hubdir_telemetry::TelemetryConfig::default(),
            tls: TlsConfig::default(),
            auth: hubdir_auth::AuthConfig::default(),
            connectivity: ConnectivityConfig::default(),
            federation: FederationConfig {
                key_file: "hubdir-node.key".into(),
                peers: Vec::new(),
                origin_keys: Vec::new(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("environment variable {var} does not name a config key: use HUBDIR_SECTION__FIELD")]
    EnvKey { var: String },
    /// A key the configuration does not have, or a value of the wrong form, named with the
    /// layer that set it.
    #[error("invalid configuration: `{key}` (set by {set_by}): {message}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Invalid { key: String, set_by: Source, message: String, suggestion: Option<String> },
}

/// The layer that set a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, by name (`--listen`).
    Flag(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("the defaults"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The keys set on the command line, each with the flag that set it.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    table: toml::Table,
    names: Vec<(String, String)>,
}

impl Flags {
    /// Sets `section.field = value`, as `flag` asks.
    pub fn set(&mut self, flag: &str, section: &str, field: &str, value: toml::Value) {
        set_key(&mut self.table, section, field, value);
        self.names.push((format!("{section}.{field}"), flag.to_owned()));
    }
}

/// Which layer set each key, by dotted path (`server.listen`; an array of tables by its
/// own path, `federation.peers`).
#[derive(Debug, Default)]
struct Provenance(std::collections::BTreeMap<String, Source>);

impl Provenance {
    fn record(&mut self, table: &toml::Table, prefix: &str, source: &Source) {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            // A table too: a misspelt section is named with the layer that wrote it.
            if let toml::Value::Table(inner) = value {
                self.record(inner, &path, source);
            }
            self.0.insert(path, source.clone());
        }
    }

    /// The layer that set `path` (`federation.peers[0].endpoint`), or the nearest enclosing
    /// key it set.
    fn of(&self, path: &str) -> Source {
        // Array indices dropped: `a.b[0].c` -> `a.b.c`, then ever shorter prefixes.
        let mut plain = String::with_capacity(path.len());
        let mut in_index = false;
        for c in path.chars() {
            match c {
                '[' => in_index = true,
                ']' => in_index = false,
                _ if !in_index => plain.push(c),
                _ => {}
            }
        }
        let mut key = plain.as_str();
        loop {
            if let Some(source) = self.0.get(key) {
                return source.clone();
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => return Source::Default,
            }
        }
    }
}

impl Config {
    /// Loads the layers in order. `env` is every environment variable (the loader keeps the
    /// `HUBDIR_` ones); `flags` holds the keys set on the command line.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Flags,
    ) -> Result<Config, ConfigError> {
        let mut merged = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        let mut provenance = Provenance::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|source| ConfigError::Parse { path: path.display().to_string(), source })?;
            provenance.record(&table, "", &Source::File(path.to_owned()));
            merge(&mut merged, table);
        }
        let env = env_layer(env, &merged, &mut provenance)?;
        merge(&mut merged, env);
        for (key, flag) in flags.names {
            provenance.0.insert(key, Source::Flag(flag));
        }
        merge(&mut merged, flags.table);
        serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|err| invalid(err, &provenance))
    }

    /// The configuration as TOML, as `--dump-config` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// A deserialisation error as the key it concerns, the layer that set it, and the nearest
/// accepted name when the key or value is a misspelling of one.
fn invalid(err: serde_path_to_error::Error<toml::de::Error>, provenance: &Provenance) -> ConfigError {
    // The path ends at the unknown key itself when a key is unknown.
    let key = err.path().to_string();
    let message = err.inner().message().trim().to_owned();
    let suggestion = message
        .starts_with("unknown")
        .then(|| {
            let mut words = quoted(&message);
            let wrong = words.next()?;
            words
                .map(|candidate| (strsim::jaro_winkler(wrong, candidate), candidate))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, candidate)| candidate.to_owned())
        })
        .flatten();
    ConfigError::Invalid { set_by: provenance.of(&key), key, message, suggestion }
}

/// The `backquoted` words of a serde message, in order: the unknown name, then the expected ones.
fn quoted(message: &str) -> impl Iterator<Item = &str> {
    message.split('`').skip(1).step_by(2)
}

fn set_key(table: &mut toml::Table, section: &str, field: &str, value: toml::Value) {
    let entry = table.entry(section.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(table) = entry {
        table.insert(field.to_owned(), value);
    }
}

/// The `HUBDIR_SECTION__FIELD` variables as a table; `known` (the layers so far) says which
/// keys hold strings, so `HUBDIR_NODE__ID=42` stays the string "42".
fn env_layer(
    env: impl IntoIterator<Item = (String, String)>,
    known: &toml::Table,
    provenance: &mut Provenance,
) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::new();
    for (var, raw) in env {
        let Some(key) = var.strip_prefix("HUBDIR_") else {
            continue;
        };
        let Some((section, field)) = key.split_once("__") else {
            continue;
        };
        if section.is_empty() || field.is_empty() || field.contains("__") {
            return Err(ConfigError::EnvKey { var });
        }
        let (section, field) = (section.to_ascii_lowercase(), field.to_ascii_lowercase());
        let is_string = known.get(&section).and_then(|s| s.get(&field)).is_some_and(toml::Value::is_str);
        let value = if is_string { toml::Value::String(raw) } else { env_value(&raw) };
        provenance.0.insert(format!("{section}.{field}"), Source::Env(var.clone()));
        provenance.0.entry(section.clone()).or_insert_with(|| Source::Env(var.clone()));
        set_key(&mut table, &section, &field, value);
    }
    Ok(table)
}

/// Reads an environment value as a TOML scalar when it is one (`8080`, `true`), and as a
/// string otherwise (`127.0.0.1:50051`, `zw`).
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => merge(existing, incoming),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's annotated config is a config file that loads: every key it shows exists,
    /// the commented-out ones (`# key = value`) included.
    #[test]
    fn the_readme_example_configuration_loads() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("### Configuration").nth(1).expect("README has a Configuration section");
        let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
        let uncommented: Vec<&str> = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) => setting,
                _ => line,
            })
            .collect();
        let example = uncommented.join("\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, example).unwrap();
        let config = Config::load(Some(&path), Vec::new(), Flags::default()).unwrap();
        assert_eq!(config.federation.peers.len(), 1);
        assert_eq!(config.telemetry.metrics_interval_secs, 60);
        assert!(config.tls.client_ca_file.is_some() && config.telemetry.prometheus_listen.is_some());
    }
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_alone_are_the_default() {
        assert_eq!(Config::load(None, vec![], Flags::default()).unwrap(), Config::default());
    }

    #[test]
    fn each_layer_overrides_the_one_before() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[node]\nid = \"from-file\"\n[server]\nlisten = \"127.0.0.1:6000\"\nmax_concurrent_streams = 7")
            .unwrap();
        let env = env(&[
            ("HUBDIR_SERVER__LISTEN", "127.0.0.1:7000"),
            ("HUBDIR_STORE__URL", "postgres://env/db"),
            ("HUBDIR_TEST_POSTGRES_URL", "ignored: no section separator"),
            ("PATH", "/usr/bin"),
        ]);
        let mut flags = Flags::default();
        flags.set("--db", "store", "url", "sqlite://flag.db".into());
        let config = Config::load(Some(file.path()), env, flags).unwrap();
        assert_eq!(config.node.id.as_str(), "from-file");
        assert_eq!(config.server.max_concurrent_streams, 7);
        assert_eq!(config.server.listen.port(), 7000);
        assert_eq!(config.store.url, "sqlite://flag.db");
        assert_eq!(config.server.drain_deadline_secs, Config::default().server.drain_deadline_secs);
    }

    #[test]
    fn strings_from_the_environment_stay_strings() {
        let config =
            Config::load(None, env(&[("HUBDIR_NODE__ID", "42"), ("HUBDIR_LOG__FORMAT", "json")]), Flags::default());
        let config = config.unwrap();
        assert_eq!((config.node.id.as_str(), config.log.format), ("42", hubdir_telemetry::LogFormat::Json));
    }

    #[test]
    fn numbers_from_the_environment_are_numbers() {
        let config = Config::load(None, env(&[("HUBDIR_SERVER__DRAIN_DEADLINE_SECS", "3")]), Flags::default()).unwrap();
        assert_eq!(config.server.drain_deadline_secs, 3);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::load(None, env(&[("HUBDIR_SERVER__LISTEN_ON", "x")]), Flags::default()).unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
        let err =
            Config::load(None, env(&[("HUBDIR_SERVER__LISTEN", "not an address")]), Flags::default()).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        let err = Config::load(Some(Path::new("/nonexistent/hubdir.toml")), vec![], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/hubdir.toml"), "{err}");
    }

    /// An error names the key, the layer that set it last (file, variable or flag), and the
    /// accepted name nearest a misspelt key or value.
    #[test]
    fn errors_name_the_key_its_source_and_the_nearest_name() {
        let message = |file: Option<&str>, vars: &[(&str, &str)], flag: Option<(&str, &str, &str, &str)>| {
            let mut config = tempfile::NamedTempFile::new().unwrap();
            if let Some(text) = file {
                config.write_all(text.as_bytes()).unwrap();
            }
            let mut flags = Flags::default();
            if let Some((name, section, field, value)) = flag {
                flags.set(name, section, field, value.into());
            }
            let path = file.map(|_| config.path());
            let err = Config::load(path, env(vars), flags).unwrap_err().to_string();
            (err, config.path().display().to_string())
        };
        let (err, path) = message(Some("[server]\nlisen = \"127.0.0.1:1\"\n"), &[], None);
        assert!(
            err.contains("`server.lisen`") && err.contains(&path) && err.contains("did you mean `listen`?"),
            "{err}"
        );
        let (err, path) = message(Some("[sever]\n"), &[], None);
        assert!(err.contains("`sever`") && err.contains(&path) && err.contains("did you mean `server`?"), "{err}");
        let (err, _) = message(None, &[("HUBDIR_SEVER__LISTEN", "x")], None);
        assert!(err.contains("`sever` (set by environment variable HUBDIR_SEVER__LISTEN)"), "{err}");
        let (err, _) = message(None, &[("HUBDIR_SERVER__LISTEN_ON", "x")], None);
        assert!(err.contains("environment variable HUBDIR_SERVER__LISTEN_ON") && err.contains("`listen`?"), "{err}");
        let (err, _) = message(None, &[("HUBDIR_LOG__FORMAT", "jsn")], None);
        assert!(err.contains("`log.format`") && err.contains("did you mean `json`?"), "{err}");
        // The last layer to set a key is the one named.
        let (err, _) = message(
            Some("[server]\nlisten = \"127.0.0.1:1\"\n"),
            &[("HUBDIR_SERVER__LISTEN", "127.0.0.1:2")],
            Some(("--listen", "server", "listen", "nowhere")),
        );
        assert!(err.contains("`server.listen` (set by flag --listen)") && !err.contains("did you mean"), "{err}");
        let keys =
            "[[federation.origin_keys]]\norigin = \"in\"\npublic_key_file = \"in.pem\"\nvalid_until = \"soon\"\n";
        let (err, path) = message(Some(keys), &[], None);
        assert!(err.contains("federation.origin_keys[0].valid_until") && err.contains(&path), "{err}");
        let (err, _) = message(None, &[("HUBDIR_SERVER__MAX_CONNECTIONS", "many")], None);
        assert!(
            err.contains("`server.max_connections` (set by environment variable HUBDIR_SERVER__MAX_CONNECTIONS)"),
            "{err}"
        );
    }

    /// Typed keys are checked when the configuration loads, naming the key, not when (or
    /// whether) the code that uses them runs.
    #[test]
    fn typed_keys_are_refused_at_load_naming_the_key() {
        let err = Config::load(None, env(&[("HUBDIR_LOG__FORMAT", "xml")]), Flags::default()).unwrap_err();
        assert!(err.to_string().contains("format"), "{err}");
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let keys = "[[federation.origin_keys]]\norigin = \"in\"\npublic_key_file = \"in.pem\"\n";
        writeln!(file, "{keys}valid_until = \"next tuesday\"").unwrap();
        let err = Config::load(Some(file.path()), vec![], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("valid_until"), "{err}");
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{keys}valid_until = \"2027-01-15T12:00:00Z\"").unwrap();
        let config = Config::load(Some(file.path()), vec![], Flags::default()).unwrap();
        assert_eq!(config.federation.origin_keys[0].valid_until.unwrap().to_rfc3339(), "2027-01-15T12:00:00+00:00");
    }

    #[test]
    fn dumped_config_loads_back_unchanged() {
        let mut config = Config::default();
        config.node.id = "zw".parse().unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config.to_toml().as_bytes()).unwrap();
        assert_eq!(Config::load(Some(file.path()), vec![], Flags::default()).unwrap(), config);
    }
}
