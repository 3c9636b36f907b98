//! What a deployment relies on: `hubdir migrate` is the one schema path (idempotent, with a
//! `--check` that exits 3 while migrations are pending), and services with
//! `store.auto_migrate = false` refuse a database it has not migrated, saying what to run.

#[allow(dead_code)]
mod support;

use std::process::{Command, Output};

use support::binary;

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
