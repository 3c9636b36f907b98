//! What a release says about itself: every binary's `--version`, and the version a node
//! publishes in `GetNodeInfo`, name the crate version and the commit built from.

#[allow(dead_code)]
mod support;

use std::process::Command;

use hubdir_proto::v1::GetNodeInfoRequest;
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use support::{NodeProcess, bearer, binary, workspace_root};

/// `0.1.0 (1a2b3c4d5e6f)` for this checkout's HEAD; a tree with uncommitted changes may read
/// either way (the build script runs again on a commit or `git add`, not on every edit).
fn accepted_versions() -> Vec<String> {
    let git = |args: &[&str]| {
        let output = Command::new("git").arg("-C").arg(workspace_root()).args(args).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let version = env!("CARGO_PKG_VERSION");
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        None => vec![format!("{version} (unknown)")],
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            let exact = format!("{version} ({commit})");
            if dirty { vec![exact, format!("{version} ({commit}-dirty)")] } else { vec![exact] }
        }
    }
}

#[test]
fn every_binary_reports_its_version_and_commit() {
    let accepted = accepted_versions();
    for name in ["hubdir", "hubdir-registry", "hubdir-discovery", "hubdir-connectivity", "hubdir-federation"] {
        let output = Command::new(binary(name)).arg("--version").output().unwrap();
        assert!(output.status.success());
        let line = String::from_utf8(output.stdout).unwrap();
        let reported = line.trim().strip_prefix(&format!("{name} ")).unwrap_or_default().to_owned();
        assert!(accepted.contains(&reported), "{name} --version said {line:?}; expected one of {accepted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publishes_its_version_and_commit() {
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], "");
    let token = node.token("federation.sync", None, None, &[]);
    let mut federation = FederationServiceClient::connect(format!("http://{}", node.address)).await.unwrap();
    let info = federation.get_node_info(bearer(&token, GetNodeInfoRequest {})).await.unwrap().into_inner();
    assert!(accepted_versions().contains(&info.version), "GetNodeInfo.version {:?}", info.version);
}
