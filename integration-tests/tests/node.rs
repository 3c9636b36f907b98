//! The real `hubdir` binaries on real ports, checked with Python grpcio.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{NodeProcess, binary, python_checks};

const ALL: &str = "RegistryService,DiscoveryService,ConnectivityService,FederationService";

#[test]
fn hubdir_serve_answers_a_python_client_and_stops_cleanly_on_sigterm() {
    let node = NodeProcess::start(
        "hubdir",
        &["serve", "--demo", "--demo-sites", "300", "--node-id", "zw"],
    );
    let report = python_checks(&node.address, ALL, &["--demo"]);
    assert!(report.contains("health: SERVING"), "{report}");
    assert!(report.contains("ListSites/GetSite"), "{report}");

    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}; logs:\n{}",
        logs.join("\n")
    );
    let stopped = logs.iter().any(|l| l.contains("\"message\":\"stopped\""));
    assert!(stopped, "no 'stopped' log line:\n{}", logs.join("\n"));
}

#[test]
fn each_service_binary_serves_only_its_service() {
    for (binary_name, service) in [
        ("hubdir-registry", "RegistryService"),
        ("hubdir-discovery", "DiscoveryService"),
        ("hubdir-connectivity", "ConnectivityService"),
        ("hubdir-federation", "FederationService"),
    ] {
        let node = NodeProcess::start(binary_name, &[]);
        python_checks(&node.address, service, &[]);
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "{binary_name} exit status {status}; logs:\n{}",
            logs.join("\n")
        );
    }
}

#[test]
fn dump_config_shows_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hubdir.toml");
    std::fs::write(
        &file,
        "[node]\nid = \"from-file\"\n[server]\ndrain_deadline_secs = 4\n",
    )
    .unwrap();
    let output = Command::new(binary("hubdir"))
        .args(["serve", "--dump-config", "--config"])
        .arg(&file)
        .args(["--db", "sqlite://flag.db"])
        .env("HUBDIR_SERVER__LISTEN", "127.0.0.1:6001")
        .env("HUBDIR_STORE__URL", "sqlite://env.db")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let toml = String::from_utf8(output.stdout).unwrap();
    assert!(toml.contains("id = \"from-file\""), "{toml}");
    assert!(toml.contains("drain_deadline_secs = 4"), "{toml}");
    assert!(toml.contains("listen = \"127.0.0.1:6001\""), "{toml}");
    assert!(toml.contains("url = \"sqlite://flag.db\""), "{toml}");
}

#[test]
fn a_bad_config_is_refused_with_the_key_named() {
    let output = Command::new(binary("hubdir"))
        .args(["serve", "--dump-config"])
        .env("HUBDIR_SERVER__LISTEN_ADDRESS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_address"), "{stderr}");

    let output = Command::new(binary("hubdir"))
        .args(["serve", "--dump-config", "--node-id", "Not An Id"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("node.id"));
}
