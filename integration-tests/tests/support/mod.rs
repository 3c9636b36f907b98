//! Starting real hubdir processes and talking to them with real clients.

pub mod pair;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A free loopback port, for a process that must be told its port before it starts (and
/// that restarts on it). Taken below Linux's ephemeral range (32768-60999): a port the
/// kernel picked would be free now, but an outgoing connection of any test may take it as
/// its local port before the node binds it again ("address already in use").
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 12_000;
    // Each test process starts somewhere else in the range, then walks through it.
    let start = std::process::id().wrapping_mul(2_654_435_761) % PORTS;
    loop {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed) * 7) % PORTS) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A binary of this workspace, built next to the test executable (`target/<profile>/`).
/// `.ci/test` builds them first; `HUBDIR_BIN_DIR` points elsewhere.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("HUBDIR_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, as .ci/test does)",
        path.display()
    );
    path
}

/// The Python with grpcio installed: `HUBDIR_PYTHON` (set by .ci/test), else `python3`.
pub fn python_bin() -> String {
    std::env::var("HUBDIR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The checkout the tests run from. Read at run time (cargo sets it for every test run):
/// a test binary reused from a build cache may have been compiled in another checkout.
pub fn workspace_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("..")
}

/// A node's directory, kept across restarts: its config (`hubdir.toml`, trusting a fresh dev
/// key), its database (`node.db`) and its node key (`node.key`).
pub struct NodeDir {
    dir: tempfile::TempDir,
    issuers: String,
}

impl NodeDir {
    /// A directory for node `node_id`, whose dev issuer may grant that origin only (what
    /// `hubdir token keygen --node-id` prints).
    pub fn new(node_id: &str, extra_config: &str) -> Arc<NodeDir> {
        NodeDir::granting(node_id, &[], extra_config)
    }

    /// As [`NodeDir::new`], with an issuer that may grant `origins` (`--origin`) instead.
    pub fn granting(node_id: &str, origins: &[&str], extra_config: &str) -> Arc<NodeDir> {
        let dir = tempfile::tempdir().unwrap();
        let mut keygen = Command::new(binary("hubdir"));
        keygen.args(["token", "keygen", "--node-id", node_id, "--kid", KID]);
        for origin in origins {
            keygen.args(["--origin", origin]);
        }
        let keygen = keygen.arg("--dir").arg(dir.path()).output().expect("run hubdir token keygen");
        assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
        let node = NodeDir { dir, issuers: String::from_utf8(keygen.stdout).unwrap() };
        node.configure(extra_config);
        Arc::new(node)
    }

    /// Rewrites the config: `extra_config` first, then the trusted dev key and the node key.
    pub fn configure(&self, extra_config: &str) {
        let key_file = self.file("node.key");
        let text = format!(
            "{extra_config}\n{}\n[federation]\nkey_file = {:?}\n",
            self.issuers,
            key_file.display().to_string()
        );
        std::fs::write(self.file("hubdir.toml"), text).unwrap();
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A token signed by the key this node trusts, via `hubdir token issue`.
    pub fn token(&self, scope: &str, origin: Option<&str>, operator: Option<&str>, sites: &[&str]) -> String {
        let mut command = Command::new(binary("hubdir"));
        command
            .args(["token", "issue", "--kid", KID, "--subject", "integration-test", "--scope", scope, "--key"])
            .arg(self.file(&format!("{KID}.key.pem")));
        if let Some(origin) = origin {
            command.args(["--origin", origin]);
        }
        if let Some(operator) = operator {
            command.args(["--operator", operator]);
        }
        for site in sites {
            command.args(["--site", site]);
        }
        let output = command.output().expect("run hubdir token issue");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

/// A running node process whose stderr (JSON logs) is collected line by line.
pub struct NodeProcess {
    child: Child,
    pub address: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// Reads stderr until the process exits; taken when joined.
    reader: Option<std::thread::JoinHandle<()>>,
    pub dir: Arc<NodeDir>,
}

/// A test that fails midway must not leave its nodes running (holding ports, and the pipes a
/// caller of `cargo test` waits on): whatever has not exited is killed.
impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The dev key every test node trusts (issuer `hubdir-dev`, audience `hubdir`).
const KID: &str = "test-key";

/// The node id `args` give with `--node-id`, or the default.
fn node_id<'a>(args: &[&'a str]) -> &'a str {
    args.iter().position(|a| *a == "--node-id").and_then(|i| args.get(i + 1)).copied().unwrap_or("local")
}

impl NodeProcess {
    /// Starts `binary args...` on `127.0.0.1:0` with a fresh SQLite file, and waits for the
    /// "serving" log line that carries the bound address.
    /// `extra_config` goes first in a config file that also trusts a fresh dev key.
    pub fn start(binary_name: &str, args: &[&str], extra_config: &str) -> NodeProcess {
        NodeProcess::start_on(binary_name, args, extra_config, None)
    }

    /// As [`NodeProcess::start`], on the database at `db` if given.
    pub fn start_on(binary_name: &str, args: &[&str], extra_config: &str, db: Option<&str>) -> NodeProcess {
        NodeProcess::start_in(&NodeDir::new(node_id(args), extra_config), binary_name, args, db, "127.0.0.1:0")
    }

    /// As [`NodeProcess::start`], trusting an issuer that may grant `origins`.
    pub fn start_granting(binary_name: &str, args: &[&str], extra_config: &str, origins: &[&str]) -> NodeProcess {
        let dir = NodeDir::granting(node_id(args), origins, extra_config);
        NodeProcess::start_in(&dir, binary_name, args, None, "127.0.0.1:0")
    }

    /// Starts `binary args...` in `dir` (its config, and its SQLite file unless `db` is
    /// given), listening on `listen`; waits for the "serving" log line.
    pub fn start_in(
        dir: &Arc<NodeDir>,
        binary_name: &str,
        args: &[&str],
        db: Option<&str>,
        listen: &str,
    ) -> NodeProcess {
        let db = db.map_or_else(|| format!("sqlite://{}", dir.file("node.db").display()), str::to_owned);
        let mut command = Command::new(binary(binary_name));
        command
            .args(args)
            .args(["--db", &db, "--listen", listen, "--log-format", "json", "--config"])
            .arg(dir.file("hubdir.toml"))
            .env("RUST_LOG", "info");
        // Configuration must come from the flags above, not from the caller's environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("HUBDIR_") && key.contains("__") {
                command.env_remove(key);
            }
        }
        NodeProcess::spawn(command, dir)
    }

    /// Starts `command`, its stderr piped and collected, and waits for its "serving" line
    /// (JSON logs).
    pub fn spawn(mut command: Command, dir: &Arc<NodeDir>) -> NodeProcess {
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the node");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && event["message"] == "serving"
                {
                    let _ = address_tx.send(event["address"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("the node never logged 'serving'; its logs:\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        NodeProcess { child, address, logs, reader: Some(reader), dir: dir.clone() }
    }

    /// A file in the node's own directory (its config, database and node key live there).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.file(name)
    }

    /// The log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and waits for it.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("kill -9 the node");
        self.child.wait().expect("wait for the node");
        self.join_reader();
        self.logs.lock().unwrap().clone()
    }

    /// Once the process has exited its stderr is closed: the reader ends after the last line.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader");
        }
    }

    /// A token signed by the key this node trusts, via `hubdir token issue`.
    pub fn token(&self, scope: &str, origin: Option<&str>, operator: Option<&str>, sites: &[&str]) -> String {
        self.dir.token(scope, origin, operator, sites)
    }

    /// Sends SIGTERM and waits (at most `deadline`) for the process to exit.
    pub fn terminate(self, deadline: Duration) -> (ExitStatus, Vec<String>) {
        self.send_term();
        self.wait(deadline)
    }

    /// Sends SIGTERM, and returns at once.
    pub fn send_term(&self) {
        self.signal("TERM");
    }

    /// Sends a signal (`TERM`, `HUP`), and returns at once.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -{name} {pid} failed");
    }

    /// Waits (at most `deadline`) for a log line containing `text`; returns it.
    pub fn wait_for_log(&self, text: &str, deadline: Duration) -> String {
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            assert!(std::time::Instant::now() < until, "no log line with {text:?}:\n{}", self.logs().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `deadline`) for the process to exit; returns its status and logs.
    pub fn wait(mut self, deadline: Duration) -> (ExitStatus, Vec<String>) {
        let until = std::time::Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the node") {
                break status;
            }
            assert!(std::time::Instant::now() < until, "the node did not exit within {deadline:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_reader();
        let logs = self.logs.lock().unwrap().clone();
        (status, logs)
    }
}

/// Runs a Python grpcio script from `integration-tests/python/` with the node's address and
/// the proto root as its first arguments; panics with its output on failure.
pub fn python(script: &str, address: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let script = workspace_root().join("integration-tests/python").join(script);
    let proto = workspace_root().join("proto");
    let output = Command::new(python_bin())
        .arg(script)
        .arg(address)
        .arg(proto)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "Python lacks the gRPC packages: run .ci/test, or `pip install -r integration-tests/requirements.txt`\n{stderr}"
    );
    assert!(output.status.success(), "Python checks failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs a Python script from `integration-tests/python/` with `args`; panics with its output
/// on failure; returns its standard output.
pub fn python_script(script: &str, args: &[&str]) -> String {
    let output = Command::new(python_bin())
        .arg(workspace_root().join("integration-tests/python").join(script))
        .args(args)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// A fresh schema on the PostgreSQL of `HUBDIR_TEST_POSTGRES_URL` (its URL in `.url`),
/// dropped with the value. Without the variable: `None` after a SKIPPED line, or a panic
/// when `CI=true` (CI must not pass for want of PostgreSQL).
pub fn postgres_schema() -> Option<hubdir_store::testing::TestDb> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(hubdir_store::testing::TestDb::new(hubdir_store::testing::Backend::Postgres))
}

/// A library of origin `zw` (operator `zw post`), as a test writes it.
pub fn library(id: &str) -> hubdir_proto::v1::Site {
    use hubdir_proto::v1 as pb;
    pb::Site {
        name: format!("sites/zw/{id}"),
        display_name: "Library".into(),
        kind: pb::Kind::PublicLibrary.into(),
        operator: "zw post".into(),
        country_code: "ZW".into(),
        location: Some(pb::LatLng { latitude: -17.8, longitude: 31.0 }),
        time_zone: "Africa/Harare".into(),
        ..pb::Site::default()
    }
}

/// `message` with `Authorization: Bearer token`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
