//! Scaling out: a registry and two discovery replicas, each its own process, started together
//! on one fresh PostgreSQL schema; every replica follows the shared change log on its own.

// Shared with the node tests; this file starts processes on a given database only.
#[allow(dead_code)]
mod support;

use std::io::Write as _;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use support::{NodeProcess, python};

const POSTGRES_ENV: &str = "HUBDIR_TEST_POSTGRES_URL";

fn admin(base: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = sea_orm::Database::connect(base).await.unwrap();
        db.execute_unprepared(sql).await.unwrap();
    });
}

#[test]
fn discovery_replicas_on_one_postgresql_each_see_every_write_within_a_second() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        let _ = writeln!(std::io::stderr(), "SKIPPED replica test: {POSTGRES_ENV} is unset (.ci/run sets it)");
        return;
    };
    let schema =
        format!("hubdir_replicas_{}_{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_micros());
    admin(&base, &format!("CREATE SCHEMA {schema}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    // All three start at once against the empty schema: migrations must not race.
    let started: Vec<NodeProcess> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["hubdir-registry", "hubdir-discovery", "hubdir-discovery"]
            .into_iter()
            .map(|binary| {
                let url = url.clone();
                scope.spawn(move || NodeProcess::start_on(binary, &["--node-id", "zw"], "", Some(&url)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let [registry, first, second]: [NodeProcess; 3] = started.try_into().ok().unwrap();
    let token = registry.token("sites.write", Some("zw"), Some("ZW Post"), &[]);
    let out =
        python("replicas_fresh.py", &registry.address, &[&first.address, &second.address], &[("HUBDIR_TOKEN", &token)]);
    eprintln!("{out}");
    for node in [registry, first, second] {
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "exit status {status}; logs:\n{}", logs.join("\n"));
    }
    admin(&base, &format!("DROP SCHEMA {schema} CASCADE"));
}
