//! One store test suite, run against SQLite (always) and PostgreSQL (when
//! `HUBDIR_TEST_POSTGRES_URL` is set; `.ci/run` sets it). Each PostgreSQL test runs in a
//! schema of its own.

use std::sync::Arc;

use hubdir_core::connectivity::{Benchmark, Measurement, Source, State, StatusSummary, Technology};
use hubdir_core::{Kind, ServiceType, Site, SiteInput, SiteName, SiteRecord, SiteStatus};
use hubdir_store::entity::{connectivity_history, connectivity_latest, node_keys, peer_cursors, peers, site_services};
use hubdir_store::{
    Applied, Change, ChangeBody, ChangeEvent, ChangeOp, Delivery, NotOwned, Precondition, Quarantined, Recorded,
    RemoteApplied, RemoteChange, RemoteEvent, RollUp, SignedBytes, SiteQuery, Store, StoreError, TextMatch, Write,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

/// Runs each named `async fn name(store: Arc<Store>)` on a fresh SQLite database and on a
/// fresh PostgreSQL schema (`hubdir_store::testing`), removed afterwards.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run(hubdir_store::testing::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run(hubdir_store::testing::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

async fn run<F: Future<Output = ()>>(backend: hubdir_store::testing::Backend, test: fn(Arc<Store>) -> F) {
    let Some(db) = hubdir_store::testing::TestDb::new(backend).await else { return };
    test(Arc::new(db.store().await)).await;
}

mod connectivity;
mod federation;
mod group_commit;
mod population;
mod schema;
mod sequencing;
mod sites;

fn site(name: &str, country: &str, kind: Kind, lat: f64, lng: f64) -> Site {
    SiteInput {
        name: name.into(),
        display_name: format!("Help point {name}"),
        kind: Some(kind),
        operator: format!("{country} Post"),
        country_code: country.into(),
        location: Some((lat, lng)),
        services: vec![ServiceType::FreeWifi, ServiceType::EGovernmentHelp],
        languages: vec!["en".into()],
        opening_hours: "Mo-Fr 08:00-17:00".into(),
        time_zone: "Africa/Harare".into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap()
}

fn upsert(site: Site, precondition: Precondition) -> Write {
    Write { change: Change::Upsert(Box::new(site)), precondition }
}

fn name(text: &str) -> SiteName {
    text.parse().unwrap()
}

async fn log_of(store: &Store, origin: &str) -> Vec<(u64, String, ChangeOp)> {
    store
        .changes_after(&origin.parse().unwrap(), 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.site_name, e.op))
        .collect()
}

fn measured(
    site: &str,
    key: &str,
    minutes_ago: i64,
    online: bool,
    download: Option<f64>,
) -> (Measurement, StatusSummary) {
    let m = Measurement {
        site: name(site),
        observed_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        online,
        download_mbps: download,
        upload_mbps: None,
        latency_ms: None,
        jitter_ms: None,
        packet_loss_ratio: None,
        technology: Technology::Dsl,
        public_wifi_access_points: Some(1),
        public_computers: None,
        power_backup: None,
        source: Source::Agent,
        idempotency_key: key.into(),
    };
    let summary = StatusSummary::of(&m, &Benchmark::default(), chrono::Duration::hours(1));
    (m, summary)
}

/// A remote event of origin `fr` about site `sites/fr/{site}`.
fn remote(epoch: &str, seq: u64, site: &str, change: RemoteChange) -> RemoteEvent {
    RemoteEvent {
        origin: "fr".parse().unwrap(),
        seq,
        epoch: epoch.into(),
        site_name: format!("sites/fr/{site}"),
        change,
        time: chrono::Utc::now(),
        signed: SignedBytes { bytes: vec![seq as u8], key_id: "fr-00".into(), signature: vec![0; 64] },
    }
}

fn fr_upsert(site_id: &str) -> RemoteChange {
    RemoteChange::Upsert(Box::new(site(&format!("sites/fr/{site_id}"), "FR", Kind::PostOffice, 48.85, 2.35)))
}

fn fr_status(download: f64) -> RemoteChange {
    RemoteChange::Status(measured("sites/fr/x", "k", 0, true, Some(download)).1)
}

async fn apply_one(store: &Store, event: RemoteEvent, delivery: Delivery) -> RemoteApplied {
    let outcomes = store.apply_remote("peer", vec![(event, delivery)]).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes[0]
}
