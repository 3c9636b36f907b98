//! Health when the database goes away and comes back, on a real process and a real
//! PostgreSQL: the node's role is barred from logging in and its connections are terminated,
//! then let in again. Health must turn NOT_SERVING only after three failed checks in a row
//! and SERVING again only after two good ones (the hysteresis README promises).

#[allow(dead_code)]
mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use support::NodeProcess;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const POSTGRES_ENV: &str = "HUBDIR_TEST_POSTGRES_URL";
/// Between store checks (`hubdir_node::health::CHECK_INTERVAL`).
const CHECK: Duration = Duration::from_secs(5);

async fn next_status(watch: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    let update = tokio::time::timeout(Duration::from_secs(90), watch.message()).await.expect("a health update");
    let status = ServingStatus::try_from(update.unwrap().unwrap().status).unwrap();
    eprintln!("health update: {status:?}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_database_that_goes_away_and_comes_back_with_hysteresis() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true, but {POSTGRES_ENV} is unset");
        let _ = writeln!(std::io::stderr(), "SKIPPED health test: {POSTGRES_ENV} is unset (.ci/run sets it)");
        return;
    };
    let role = format!("hubdir_health_{}", std::process::id());
    let admin = sea_orm::Database::connect(&base).await.unwrap();
    admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {role} CASCADE")).await.unwrap();
    admin.execute_unprepared(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
    admin.execute_unprepared(&format!("CREATE ROLE {role} LOGIN")).await.unwrap();
    admin.execute_unprepared(&format!("CREATE SCHEMA {role} AUTHORIZATION {role}")).await.unwrap();
    // The same server and database, as the node's own role, in its own schema.
    let (scheme_user, rest) = base.split_once('@').expect("a URL with a user");
    let scheme = scheme_user.split("://").next().unwrap();
    let sep = if rest.contains('?') { '&' } else { '?' };
    let url = format!("{scheme}://{role}@{rest}{sep}options=-c%20search_path%3D{role}");

    let node = NodeProcess::start_on("hubdir", &["serve", "--node-id", "zw"], "", Some(&url));
    let channel = Channel::from_shared(format!("http://{}", node.address)).unwrap().connect().await.unwrap();
    let mut watch =
        HealthClient::new(channel).watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    while next_status(&mut watch).await != ServingStatus::Serving {}

    // The database goes away for this node: no new session, the open ones ended.
    admin.execute_unprepared(&format!("ALTER ROLE {role} NOLOGIN")).await.unwrap();
    let terminate = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'");
    admin.execute_unprepared(&terminate).await.unwrap();
    let gone = Instant::now();
    assert_eq!(next_status(&mut watch).await, ServingStatus::NotServing);
    // Three failed checks in a row, five seconds apart: never fewer.
    let stopped_after = gone.elapsed();
    assert!(stopped_after >= 2 * CHECK - Duration::from_millis(500), "NOT_SERVING after {stopped_after:?}");

    // It comes back: two good checks in a row before SERVING.
    admin.execute_unprepared(&format!("ALTER ROLE {role} LOGIN")).await.unwrap();
    let back = Instant::now();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    let resumed_after = back.elapsed();
    assert!(resumed_after >= CHECK - Duration::from_millis(500), "SERVING after {resumed_after:?}");
    eprintln!(
        "health: NOT_SERVING {stopped_after:?} after the database went, SERVING {resumed_after:?} after it came back"
    );

    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", logs.join("\n"));
    assert!(logs.iter().any(|l| l.contains("store health check failed")));
    admin.execute_unprepared(&format!("DROP SCHEMA {role} CASCADE")).await.unwrap();
    admin.execute_unprepared(&format!("DROP ROLE {role}")).await.unwrap();
}
