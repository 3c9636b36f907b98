//! The deployment: `hubdir migrate` is the one schema path (idempotent, with a `--check`
//! that exits 3 while migrations are pending), and services with `store.auto_migrate = false`
//! refuse a database it has not migrated, saying what to run. The Helm chart is linted,
//! rendered and validated by tools hubdir did not write (`python/chart.py`), and what it
//! renders runs: the migration Job, then the four Deployments as real processes with exactly
//! their command, args, environment and mounted files, on this machine's PostgreSQL, through a
//! publish, discover, report and follow scenario, with every probe asked as the kubelet would.

#[allow(dead_code)]
mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{NodeDir, NodeProcess, binary, free_port, python_script, workspace_root};

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    command.args(args).envs(env.iter().copied());
    for (key, _) in std::env::vars() {
        if key.starts_with("HUBDIR_") && key.contains("__") {
            command.env_remove(key);
        }
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn migrate_is_the_schema_path_and_services_refuse_an_unmigrated_database() {
    let Some(db) = support::postgres_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key").display().to_string();
    let no_auto = [("HUBDIR_STORE__AUTO_MIGRATE", "false"), ("HUBDIR_FEDERATION__KEY_FILE", key.as_str())];

    let refused = run("hubdir-registry", &["--db", &db.url, "--listen", "127.0.0.1:0"], &no_auto);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("no hubdir schema yet: run `hubdir migrate`"), "{}", text(&refused));

    let check = run("hubdir", &["migrate", "--check", "--db", &db.url], &[]);
    assert_eq!(check.status.code(), Some(3), "{}", text(&check));
    assert!(text(&check).contains("pending\tm0006_origin_sides"), "{}", text(&check));

    let first = run("hubdir", &["migrate", "--db", &db.url], &[]);
    assert!(first.status.success(), "{}", text(&first));
    let applied = text(&first).lines().filter(|l| l.starts_with("applied\t")).count();
    assert!(applied >= 6, "{}", text(&first));
    let again = run("hubdir", &["migrate", "--db", &db.url], &[]);
    assert!(again.status.success() && text(&again).contains("0 migrations applied"), "{}", text(&again));
    let check = run("hubdir", &["migrate", "--check", "--db", &db.url], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    let started = run("hubdir-registry", &["--db", &db.url, "--listen", "127.0.0.1:0", "--dump-config"], &no_auto);
    assert!(text(&started).contains("auto_migrate = false"), "{}", text(&started));
}

/// One process the chart runs, as `chart.py render` describes it.
#[derive(serde::Deserialize)]
struct Workload {
    name: String,
    kind: String,
    binary: String,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    cwd: String,
    ports: std::collections::BTreeMap<String, u16>,
    probes: std::collections::BTreeMap<String, Probe>,
}

#[derive(serde::Deserialize)]
struct Probe {
    port: u16,
    service: String,
}

/// The command a container would run: its binary, args, environment (and nothing of the
/// test's own `HUBDIR_` configuration) and working directory.
fn container(workload: &Workload) -> Command {
    let mut command = Command::new(binary(&workload.binary));
    command.args(&workload.args).envs(&workload.env).current_dir(&workload.cwd);
    for (key, _) in std::env::vars() {
        if key.starts_with("HUBDIR_") && key.contains("__") && !workload.env.contains_key(&key) {
            command.env_remove(key);
        }
    }
    command
}

fn public_key(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run("hubdir", &[&["federation", "key"], args].concat(), env);
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_chart_renders_valid_and_its_processes_publish_discover_report_and_follow() {
    let Some(db) = support::postgres_schema() else { return };
    let work = tempfile::tempdir().unwrap();
    // The node key, made as docs/DEPLOY.md says, and the issuer of this node's tokens.
    let key_file = work.path().join("node.key");
    let zw_key = public_key(&["--node-id", "zw"], &[("HUBDIR_FEDERATION__KEY_FILE", &key_file.display().to_string())]);
    let issuer = NodeDir::new("zw", "");
    let federation_port = free_port();

    // The peer `fr`, a node of its own (all-in-one, SQLite), following this node's federation
    // service; this node follows it back.
    let fr_dir = NodeDir::new("fr", "");
    let fr_config = fr_dir.file("hubdir.toml");
    let fr_key = public_key(&["--node-id", "fr", "--config", &fr_config.display().to_string()], &[]);
    std::fs::write(fr_dir.file("zw.pub.pem"), &zw_key).unwrap();
    std::fs::write(fr_dir.file("zw.token"), issuer.token("federation.sync", None, None, &[])).unwrap();
    fr_dir.configure(&format!(
        "[[federation.peers]]\nnode_id = \"zw\"\nendpoint = \"http://127.0.0.1:{federation_port}\"\n\
         public_key_file = {:?}\ntoken_file = {:?}\n",
        fr_dir.file("zw.pub.pem").display().to_string(),
        fr_dir.file("zw.token").display().to_string()
    ));
    let fr = NodeProcess::start_in(&fr_dir, "hubdir", &["serve", "--node-id", "fr"], None, "127.0.0.1:0");

    let values = serde_json::json!({
        "nodeId": "zw",
        "postgres": {"existingSecret": "hubdir-postgres", "secretKey": "url"},
        "nodeKey": {"existingSecret": "hubdir-node-key", "secretKey": "node.key"},
        "issuers": [{
            "issuer": "hubdir-dev", "audience": "hubdir", "origins": ["zw"],
            "keys": [{"kid": "test-key", "algorithm": "EdDSA",
                      "publicKey": std::fs::read_to_string(issuer.file("test-key.pub.pem")).unwrap()}],
        }],
        "peers": [{
            "nodeId": "fr", "endpoint": format!("http://{}", fr.address), "publicKey": fr_key,
            "tokenSecret": {"name": "hubdir-peer-fr", "key": "token"},
        }],
        "config": {"store": {"lease_retry_secs": 1}, "log": {"filter": "info"}},
        "gateway": {"enabled": true, "parentRefs": [{"name": "public"}]},
        "discovery": {"ingress": {"enabled": true, "host": "find.example.zw", "tlsSecret": "find-tls"}},
        "networkPolicy": {"postgres": {"cidrs": ["127.0.0.1/32"]}},
    });
    let secrets = serde_json::json!({
        "hubdir-postgres": {"url": db.url},
        "hubdir-node-key": {"node.key": std::fs::read_to_string(&key_file).unwrap()},
        "hubdir-peer-fr": {"token": fr_dir.token("federation.sync", None, None, &[])},
    });
    let out = work.path().join("rendered");
    std::fs::create_dir(&out).unwrap();
    let chart = workspace_root().join("helm/hubdir");
    let report = python_script(
        "chart.py",
        &[
            "render",
            &chart.display().to_string(),
            &values.to_string(),
            &secrets.to_string(),
            &out.display().to_string(),
        ],
    );
    eprintln!("{report}");
    // Every config key the values schema allows is a key hubdir loads.
    let every_key = out.join("every-key.toml").display().to_string();
    let loaded = run("hubdir-registry", &["--config", &every_key, "--dump-config"], &[]);
    assert!(loaded.status.success(), "a key the chart's schema allows does not load:\n{}", text(&loaded));
    assert!(text(&loaded).contains("[connectivity.countries.ZW]"), "{}", text(&loaded));
    let workloads: Vec<Workload> =
        serde_json::from_str(&std::fs::read_to_string(out.join("workloads.json")).unwrap()).unwrap();

    // The pre-install hook: the schema, once.
    let job = workloads.iter().find(|w| w.kind == "Job").expect("the migration Job");
    let migrated = container(job).output().unwrap();
    assert!(migrated.status.success() && text(&migrated).contains("migrations applied"), "{}", text(&migrated));

    // The Deployments. Each pod has a network of its own; here each process gets a port of
    // its own, the one change made to what the chart renders.
    let mut running = Vec::new();
    let mut probes = Vec::new();
    let mut addresses = std::collections::BTreeMap::new();
    for workload in workloads.iter().filter(|w| w.kind == "Deployment") {
        let component = workload.binary.trim_start_matches("hubdir-").to_owned();
        let port = if component == "federation" { federation_port } else { free_port() };
        let mut command = container(workload);
        command.env("HUBDIR_SERVER__LISTEN", format!("127.0.0.1:{port}"));
        let process = NodeProcess::spawn(command, &issuer);
        for (kind, probe) in &workload.probes {
            assert_eq!(probe.port, workload.ports["grpc"], "{}: the {kind} probe's port", workload.name);
            probes.push(serde_json::json!([process.address, probe.service]));
        }
        addresses.insert(component, process.address.clone());
        running.push(process);
    }
    assert_eq!(running.len(), 4, "one Deployment per service");
    let scenario = serde_json::json!({
        "registry": addresses["registry"], "discovery": addresses["discovery"],
        "connectivity": addresses["connectivity"], "peer": fr.address,
        "writer": issuer.token("sites.write", Some("zw"), Some("zw post"), &[]),
        "agent": issuer.token("connectivity.report", None, None, &["sites/zw/chart-1"]),
        "peer_reader": fr_dir.token("sites.read", None, None, &[]),
        "peer_writer": fr_dir.token("sites.write", Some("fr"), Some("fr post"), &[]),
        "probes": probes,
    });
    let proto = workspace_root().join("proto");
    eprintln!("{}", python_script("chart.py", &["scenario", &proto.display().to_string(), &scenario.to_string()]));

    for process in running.into_iter().chain([fr]) {
        let (status, logs) = process.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", logs.join("\n"));
    }
}

/// The Dockerfile passes hadolint, and its runtime stage, built by podman (no daemon, no
/// image pulled: the file system comes from `.ci/image-rootfs` over the binaries this test
/// run built), runs `hubdir --version` and a service binary as the non-root user.
#[test]
fn the_image_lints_builds_without_pulling_and_runs_as_non_root() {
    let root = workspace_root();
    let python = std::path::PathBuf::from(support::python_bin());
    let hadolint = python.parent().unwrap().join("hadolint");
    let linted = Command::new(&hadolint).arg(root.join("Dockerfile")).output().expect("hadolint (requirements.txt)");
    assert!(linted.status.success(), "hadolint:\n{}", text(&linted));

    if Command::new("podman").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true, but podman is missing (.ci/test installs it)");
        eprintln!("SKIPPED image build: podman is not installed (.ci/test installs it)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("context");
    let bin_dir = binary("hubdir").parent().unwrap().to_owned();
    let gathered =
        Command::new(root.join(".ci/image-rootfs")).arg(&bin_dir).arg(context.join("rootfs")).output().unwrap();
    assert!(gathered.status.success(), "{}", text(&gathered));
    std::fs::write(context.join("Rootfs.Containerfile"), "FROM scratch\nCOPY rootfs /rootfs\n").unwrap();
    // No daemon, storage in the test's directory; runc, since crun refuses this machine's
    // hybrid cgroups, and limits the sandbox lets a container set.
    let podman = |args: &[&str]| {
        let output = Command::new("podman")
            .arg("--root")
            .arg(work.path().join("storage"))
            .arg("--runroot")
            .arg(work.path().join("run"))
            .args(["--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "podman {args:?}:\n{}", text(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let context = context.display().to_string();
    let rootfs_file = format!("{context}/Rootfs.Containerfile");
    podman(&["build", "-q", "-f", &rootfs_file, "-t", "localhost/hubdir-rootfs:test", &context]);
    let dockerfile = root.join("Dockerfile").display().to_string();
    podman(&[
        "build",
        "-q",
        "--pull=never",
        "--target",
        "runtime",
        "--build-arg",
        "ROOTFS=localhost/hubdir-rootfs:test",
        "-f",
        &dockerfile,
        "-t",
        "localhost/hubdir:test",
        &context,
    ]);
    let user = podman(&["image", "inspect", "--format", "{{.Config.User}}", "localhost/hubdir:test"]);
    assert_eq!(user.trim(), "65532:65532");
    let run = ["run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
    let version = podman(&[&run[..], &["localhost/hubdir:test", "--version"]].concat());
    assert!(version.starts_with(&format!("hubdir {} (", env!("CARGO_PKG_VERSION"))), "{version}");
    let entrypoint = ["--entrypoint", "/usr/local/bin/hubdir-discovery", "localhost/hubdir:test", "--version"];
    let version = podman(&[&run[..], &entrypoint].concat());
    assert!(version.starts_with("hubdir-discovery "), "{version}");
}
