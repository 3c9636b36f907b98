//! Two real nodes, `fr` following `zw`: the smallest federation, for the tests of what a
//! link carries (telemetry across nodes, TLS).

use std::process::Command;

use super::{NodeDir, NodeProcess, binary, free_port};

/// `zw` (the leader) and `fr` (its follower), with their directories.
pub struct Pair {
    pub leader: NodeProcess,
    pub follower: NodeProcess,
    /// A token with sites.write for `zw`, operator `zw post`.
    pub writer: String,
}

/// The public key `hubdir federation key` prints for a node's config.
fn public_key(dir: &NodeDir, id: &str) -> String {
    let output = Command::new(binary("hubdir"))
        .args(["federation", "key", "--node-id", id, "--config"])
        .arg(dir.file("hubdir.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Starts `zw` and `fr`, `fr` following `zw` at `{scheme}://localhost:{port}`. Each node's
/// config is `common_config` plus what `prepare(id, dir)` returns, once it has written its
/// files (certificates) into the node's directory. `db`: each node's database URL, or SQLite.
pub fn start(
    common_config: &str,
    scheme: &str,
    prepare: impl Fn(&str, &NodeDir) -> String,
    db: (Option<&str>, Option<&str>),
) -> Pair {
    let leader_dir = NodeDir::new("zw", "");
    let follower_dir = NodeDir::new("fr", "");
    let leader_config = format!("{common_config}\n{}", prepare("zw", &leader_dir));
    let follower_config = format!("{common_config}\n{}", prepare("fr", &follower_dir));
    leader_dir.configure(&leader_config);
    let pinned = follower_dir.file("zw.pub.pem");
    std::fs::write(&pinned, public_key(&leader_dir, "zw")).unwrap();
    let token = follower_dir.file("zw.token");
    std::fs::write(&token, leader_dir.token("federation.sync", None, None, &[])).unwrap();
    let port = free_port();
    follower_dir.configure(&format!(
        "{follower_config}\n[[federation.peers]]\nnode_id = \"zw\"\nendpoint = \"{scheme}://localhost:{port}\"\npublic_key_file = {:?}\ntoken_file = {:?}\n",
        pinned.display().to_string(),
        token.display().to_string()
    ));
    let leader =
        NodeProcess::start_in(&leader_dir, "hubdir", &["serve", "--node-id", "zw"], db.0, &format!("127.0.0.1:{port}"));
    let follower = NodeProcess::start_in(&follower_dir, "hubdir", &["serve", "--node-id", "fr"], db.1, "127.0.0.1:0");
    let writer = leader_dir.token("sites.write", Some("zw"), Some("zw post"), &[]);
    Pair { leader, follower, writer }
}
