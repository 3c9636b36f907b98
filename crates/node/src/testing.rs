//! One harness for the services' tests: a node on a test database (SQLite file or
//! PostgreSQL schema, `hubdir_store::testing`), serving the given mounts on a free port of
//! 127.0.0.1, trusting a fresh issuer key whose tokens [`TestNode::token`] signs.

use std::net::SocketAddr;
use std::sync::Arc;

use hubdir_auth::dev::{TokenClaims, generate_ed25519, issue};
use hubdir_auth::{AuthConfig, IssuerConfig, KeyConfig};
use hubdir_federation_core::NodeIdentity;
use hubdir_store::testing::{Backend, TestDb};
use hubdir_store::{Store, Write};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;

use crate::config::Config;
use crate::server::{Mount, NodeContext, serve};

/// The issuer every test node trusts: tokens carry `iss = ISSUER`, `aud = "hubdir"` and are
/// signed with key `KEY_ID`.
pub const ISSUER: &str = "test";
pub const KEY_ID: &str = "k1";

/// What a test node starts with besides its mounts.
#[derive(Default)]
pub struct Setup {
    /// Written before the node starts (so the discovery index loads them).
    pub seed: Vec<Write>,
    /// The node's identity: its store signs with it and GetNodeInfo publishes it.
    pub identity: Option<Arc<NodeIdentity>>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup").field("seed", &self.seed.len()).field("identity", &self.identity).finish()
    }
}

/// A running node; dropped, it stops with the test.
#[derive(Debug)]
pub struct TestNode {
    pub address: SocketAddr,
    pub store: Arc<Store>,
    private_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl TestNode {
    /// A node serving `mounts` on `backend`; `None` when PostgreSQL is not configured.
    pub async fn start(backend: Backend, mounts: &[Mount]) -> Option<TestNode> {
        TestNode::start_with(backend, mounts, Setup::default()).await
    }

    pub async fn start_with(backend: Backend, mounts: &[Mount], setup: Setup) -> Option<TestNode> {
        let db = TestDb::new(backend).await?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut store = db.store().await;
        if let Some(identity) = &setup.identity {
            store = store.with_signer(Arc::new(hubdir_federation_core::OriginSigner::new(identity.clone())));
        }
        let store = Arc::new(store);
        if !setup.seed.is_empty() {
            store.write(setup.seed).await.expect("the seed writes");
        }
        let (private_key, public_key) = generate_ed25519().expect("a key pair");
        let public_key_file = dir.path().join(format!("{KEY_ID}.pub.pem"));
        std::fs::write(&public_key_file, public_key).expect("the public key file");
        // Node `zw`; the test issuer may grant `zw`.
        let config = Config {
            auth: AuthConfig {
                issuers: vec![IssuerConfig {
                    issuer: ISSUER.into(),
                    audience: "hubdir".into(),
                    origins: vec!["zw".into()],
                    keys: vec![KeyConfig { kid: KEY_ID.into(), algorithm: "EdDSA".into(), public_key_file }],
                }],
                ..AuthConfig::default()
            },
            node: crate::config::NodeConfig { id: "zw".parse().expect("an origin") },
            ..Config::default()
        };
        let mut ctx = NodeContext::new(config, store.clone()).expect("the test issuer's key loads");
        if let Some(identity) = setup.identity {
            ctx = ctx.with_identity(identity);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("a bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mounts = mounts.to_vec();
        let server = tokio::spawn(async move {
            serve(ctx, &mounts, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Some(TestNode { address, store, private_key, stop: Some(stop), server, _dir: dir, _db: db })
    }

    /// The URL of the node's database, for a test that reaches past the node.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// `http://127.0.0.1:PORT`, for a client to connect to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A bearer token of the test issuer for `subject`, with `scope` and, for publishers,
    /// `origin` and `operator`, and for agents the `sites` they report for; valid 5 minutes.
    pub fn token(
        &self,
        subject: &str,
        scope: &str,
        origin: Option<&str>,
        operator: Option<&str>,
        sites: &[&str],
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = TokenClaims {
            iss: ISSUER.into(),
            aud: "hubdir".into(),
            sub: subject.into(),
            iat: now,
            exp: now + 300,
            scope: scope.into(),
            origin: origin.map(Into::into),
            operator: operator.map(Into::into),
            sites: sites.iter().map(|s| s.to_string()).collect(),
        };
        issue(self.private_key.as_bytes(), KEY_ID, &claims).expect("a token")
    }

    /// `message` as a request carrying `token`.
    pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("an ASCII token");
        request.metadata_mut().insert("authorization", value);
        request
    }

    /// Stops the node as SIGTERM would, and returns how serving ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop {
            let _ = stop.send(());
        }
        self.server.await?
    }
}
