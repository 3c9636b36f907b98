//! The commit a build comes from, for `--version` and `GetNodeInfo.version`
//! (`hubdir_node::VERSION`): `HUBDIR_BUILD_COMMIT` if set (a build without `.git`, as the
//! container image's), otherwise `git rev-parse --short=12 HEAD`, with `-dirty` when tracked
//! files differ from it, or `unknown` outside a git checkout.
//!
//! The script runs again when HEAD, its branch or the index moves, not on every edit (that
//! would relink every binary whenever any file is saved): a tree changed since the last
//! `git add`, commit or checkout still reads as it was then. Release builds come from a clean
//! checkout, where the two agree.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HUBDIR_BUILD_COMMIT");
    let commit = match std::env::var("HUBDIR_BUILD_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => from_git().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=HUBDIR_BUILD_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    // --no-optional-locks: `git status` must not rewrite the index, which would run this
    // script again on the next build, and again.
    let output = Command::new("git").arg("--no-optional-locks").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn from_git() -> Option<String> {
    let dir = git(&["rev-parse", "--absolute-git-dir"])?;
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    // A path that does not exist would run the script on every build.
    for file in ["HEAD", "index", "packed-refs"].into_iter().map(str::to_owned).chain(branch) {
        let path = std::path::Path::new(&dir).join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{commit}-dirty") } else { commit })
}
