//! One store test suite, run against SQLite (always) and PostgreSQL (when
//! `HUBDIR_TEST_POSTGRES_URL` is set; `.ci/run` sets it). Each PostgreSQL test runs in a
//! schema of its own.

use std::sync::Arc;

use hubdir_core::connectivity::{Benchmark, Measurement, Source, State, StatusSummary, Technology};
use hubdir_core::{Kind, ServiceType, Site, SiteInput, SiteName, SiteStatus};
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

on_both_backends!(
    create_then_get_round_trips,
    replaying_a_write_changes_nothing,
    etag_mismatch_writes_nothing,
    create_of_existing_site_is_refused,
    delete_leaves_a_tombstone,
    a_failed_batch_writes_nothing_and_gives_its_numbers_back,
    list_filters_and_pages_in_name_order,
    concurrent_writers_get_gapless_sequences,
    crossing_multi_origin_batches_neither_deadlock_nor_gap,
    one_batch_may_touch_a_site_several_times,
    every_entity_matches_the_schema,
    text_and_cell_queries_match_words_and_ranges,
    measurements_keep_the_newest_as_latest_and_log_only_changes,
    old_measurements_roll_up_into_days_at_the_clock_given,
    a_published_key_keeps_its_start_and_its_id_names_one_key,
    remote_events_apply_once_in_order_with_the_cursor,
    a_newer_epoch_replaces_the_origin_and_an_older_one_is_ignored,
    snapshots_hold_the_latest_events_of_each_site_and_compaction_keeps_only_them,
    a_snapshot_applies_with_holes_and_the_stream_continues_after_it,
    a_local_write_never_takes_a_seq_of_an_origin_applied_from_peers,
    the_quarantine_is_truncated_chunked_and_bounded,
    both_databases_store_exactly_what_validation_accepts,
    an_event_that_could_not_be_applied_supersedes_nothing,
    a_peers_status_is_kept_as_the_sites_latest_and_goes_with_a_resynced_origin,
    change_bodies_decode_to_what_the_store_holds,
);

/// A reader of the log (the discovery index) gets each event's content decoded by the store,
/// with the cell and etag the store computed when it wrote the site, not its own.
async fn change_bodies_decode_to_what_the_store_holds(store: Arc<Store>) {
    let harare = site("sites/zw/1", "ZW", Kind::PublicLibrary, -17.8, 31.0);
    store.write(vec![upsert(harare, Precondition::None)]).await.unwrap();
    let report = vec![measured("sites/zw/1", "k1", 0, true, Some(50.0))];
    store.record_measurements(report, chrono::Duration::minutes(15)).await.unwrap();
    store
        .write(vec![Write { change: Change::Delete(name("sites/zw/1")), precondition: Precondition::None }])
        .await
        .unwrap();
    let events = store.changes_after(&"zw".parse().unwrap(), 0, 10).await.unwrap();
    let bodies: Vec<ChangeBody> = events.iter().map(|e| e.body().unwrap()).collect();
    let ChangeBody::Upsert(record) = &bodies[0] else { panic!("{bodies:?}") };
    assert_eq!(record.site.name, name("sites/zw/1"));
    assert_eq!(record.h3_cell, hubdir_geo::site_cell(record.site.location).unwrap());
    assert_eq!(record.etag, record.site.content_etag());
    assert_eq!(record.origin_seq, 1);
    assert!(
        matches!(&bodies[1], ChangeBody::Status(n, s) if *n == name("sites/zw/1") && s.download_mbps == Some(50.0))
    );
    assert_eq!(bodies[2], ChangeBody::Delete(name("sites/zw/1")));
    // An event whose content this version cannot read is Corrupt, naming it.
    let mut unreadable = events[0].clone();
    unreadable.payload = Some(b"{not json".to_vec());
    let err = unreadable.body().unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(what) if what.contains("event 1 of zw")), "{err}");
}

/// A loose end of #12: a follower logged peers' STATUS events but did not keep them as the
/// sites' latest status, so its discovery index (which loads statuses from there) lost them
/// at a restart until the peer's next refresh.
async fn a_peers_status_is_kept_as_the_sites_latest_and_goes_with_a_resynced_origin(store: Arc<Store>) {
    let events = vec![
        (remote("1f", 1, "x", fr_upsert("x")), Delivery::Stream),
        (remote("1f", 2, "x", fr_status(10.0)), Delivery::Stream),
        (remote("1f", 3, "x", fr_status(42.0)), Delivery::Stream),
    ];
    assert!(store.apply_remote("fr", events).await.unwrap().iter().all(|o| *o == RemoteApplied::Applied));
    let summaries = store.latest_summaries().await.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!((summaries[0].0.as_str(), summaries[0].1.download_mbps), ("sites/fr/x", Some(42.0)));
    let latest = store.latest_status(&name("sites/fr/x")).await.unwrap().unwrap();
    assert_eq!((latest.summary.state, latest.measurement), (State::Online, None));
    // The origin's database was recreated: what was held of it goes, its statuses too.
    assert_eq!(apply_one(&store, remote("20", 1, "y", fr_upsert("y")), Delivery::Stream).await, RemoteApplied::Applied);
    assert!(store.latest_summaries().await.unwrap().is_empty());
}

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

async fn create_then_get_round_trips(store: Arc<Store>) {
    let s = site("sites/zw/harare-1", "ZW", Kind::PublicLibrary, -17.83, 31.05);
    let applied = store.write(vec![upsert(s.clone(), Precondition::Absent)]).await.unwrap();
    let Applied::Created(created) = &applied[0] else { panic!("{applied:?}") };
    assert_eq!(created.origin_seq, 1);
    let got = store.get_site(&s.name).await.unwrap().unwrap();
    assert_eq!(&got, created);
    assert_eq!(got.site, s);
    assert_eq!(got.etag, s.content_etag());
    assert_eq!(got.h3_cell, hubdir_geo::site_cell(s.location).unwrap());
    assert_eq!(log_of(&store, "zw").await, vec![(1, s.name.to_string(), ChangeOp::Upsert)]);
    let services = site_services::Entity::find()
        .filter(site_services::Column::SiteName.eq(s.name.to_string()))
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(services.len(), 2);
    assert!(store.get_site(&name("sites/zw/missing")).await.unwrap().is_none());
}

async fn replaying_a_write_changes_nothing(store: Arc<Store>) {
    let s = site("sites/zw/bulawayo-1", "ZW", Kind::PostOffice, -20.15, 28.58);
    store.write(vec![upsert(s.clone(), Precondition::None)]).await.unwrap();
    let before = store.get_site(&s.name).await.unwrap().unwrap();
    let again = store.write(vec![upsert(s.clone(), Precondition::None)]).await.unwrap();
    assert_eq!(again, vec![Applied::Unchanged(before.clone())]);
    assert_eq!(store.get_site(&s.name).await.unwrap().unwrap(), before);
    assert_eq!(log_of(&store, "zw").await.len(), 1);
    assert_eq!(store.last_seq(&"zw".parse().unwrap()).await.unwrap(), 1);
}

async fn etag_mismatch_writes_nothing(store: Arc<Store>) {
    let s = site("sites/zw/mutare-1", "ZW", Kind::Telecentre, -18.97, 32.67);
    store.write(vec![upsert(s.clone(), Precondition::Absent)]).await.unwrap();
    let mut changed = s.clone();
    changed.display_name = "Renamed".into();
    let err = store.write(vec![upsert(changed.clone(), Precondition::Etag("stale".into()))]).await.unwrap_err();
    assert!(matches!(err, StoreError::EtagMismatch { .. }), "{err:?}");
    assert_eq!(store.get_site(&s.name).await.unwrap().unwrap().site, s);
    assert_eq!(log_of(&store, "zw").await.len(), 1);

    let current = s.content_etag();
    let applied = store.write(vec![upsert(changed.clone(), Precondition::Etag(current))]).await.unwrap();
    let Applied::Updated(updated) = &applied[0] else { panic!("{applied:?}") };
    assert_eq!(updated.origin_seq, 2);
    assert_eq!(updated.site.display_name, "Renamed");
    let err = store
        .write(vec![upsert(site("sites/zw/nowhere", "ZW", Kind::Other, 1.0, 1.0), Precondition::Exists)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn create_of_existing_site_is_refused(store: Arc<Store>) {
    let s = site("sites/fr/paris-1", "FR", Kind::PostOffice, 48.85, 2.35);
    store.write(vec![upsert(s.clone(), Precondition::Absent)]).await.unwrap();
    let err = store.write(vec![upsert(s, Precondition::Absent)]).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(ref n) if n == "sites/fr/paris-1"), "{err:?}");
    assert_eq!(log_of(&store, "fr").await.len(), 1);
}

async fn delete_leaves_a_tombstone(store: Arc<Store>) {
    let s = site("sites/in/delhi-gpo", "IN", Kind::PostOffice, 28.63, 77.22);
    store.write(vec![upsert(s.clone(), Precondition::Absent)]).await.unwrap();
    let applied = store
        .write(vec![Write { change: Change::Delete(s.name.clone()), precondition: Precondition::Exists }])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Deleted { name: s.name.clone(), seq: 2 }]);
    assert!(store.get_site(&s.name).await.unwrap().is_none());
    let events = store.changes_after(&"in".parse().unwrap(), 0, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].op, ChangeOp::Delete);
    assert_eq!(events[1].payload, None);
    assert!(events[0].payload.is_some());
    let services = site_services::Entity::find().all(store.connection()).await.unwrap();
    assert!(services.is_empty(), "services of a deleted site linger: {services:?}");

    // Deleting it again: a no-op without precondition, NOT_FOUND with one.
    let again = store
        .write(vec![Write { change: Change::Delete(s.name.clone()), precondition: Precondition::None }])
        .await
        .unwrap();
    assert_eq!(again, vec![Applied::AlreadyAbsent(s.name.clone())]);
    let err = store
        .write(vec![Write { change: Change::Delete(s.name.clone()), precondition: Precondition::Exists }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(events.len(), store.changes_after(&"in".parse().unwrap(), 0, 10).await.unwrap().len());
}

async fn a_failed_batch_writes_nothing_and_gives_its_numbers_back(store: Arc<Store>) {
    let taken = site("sites/zw/taken", "ZW", Kind::School, -17.5, 31.0);
    store.write(vec![upsert(taken.clone(), Precondition::Absent)]).await.unwrap();
    let fresh = site("sites/zw/fresh", "ZW", Kind::School, -17.6, 31.1);
    let err = store
        .write(vec![upsert(fresh.clone(), Precondition::Absent), upsert(taken, Precondition::Absent)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)));
    assert!(store.get_site(&fresh.name).await.unwrap().is_none(), "half a batch was written");
    assert_eq!(store.last_seq(&"zw".parse().unwrap()).await.unwrap(), 1);
    let applied = store.write(vec![upsert(fresh, Precondition::Absent)]).await.unwrap();
    let Applied::Created(created) = &applied[0] else { panic!() };
    assert_eq!(created.origin_seq, 2, "the failed batch left a gap");
}

async fn list_filters_and_pages_in_name_order(store: Arc<Store>) {
    let mut writes = Vec::new();
    for i in 0..30 {
        let (country, kind) = if i % 3 == 0 { ("KE", Kind::PostOffice) } else { ("ZW", Kind::PublicLibrary) };
        let mut s = site(&format!("sites/demo/site-{i:03}"), country, kind, -10.0 - f64::from(i) / 10.0, 30.0);
        if i == 7 {
            s.status = SiteStatus::Closed;
        }
        writes.push(upsert(s, Precondition::Absent));
    }
    store.write(writes).await.unwrap();

    let mut query = SiteQuery { limit: 7, ..SiteQuery::default() };
    let mut seen = Vec::new();
    loop {
        let page = store.list_sites(&query).await.unwrap();
        if page.is_empty() {
            break;
        }
        query.after_name = Some(page.last().unwrap().site.name.to_string());
        seen.extend(page.into_iter().map(|r| r.site.name.to_string()));
    }
    let expected: Vec<String> = (0..30).map(|i| format!("sites/demo/site-{i:03}")).collect();
    assert_eq!(seen, expected);

    let kenya = store
        .list_sites(&SiteQuery { country_code: Some("KE".into()), limit: 100, ..SiteQuery::default() })
        .await
        .unwrap();
    assert_eq!(kenya.len(), 10);
    assert!(kenya.iter().all(|r| r.site.kind == Kind::PostOffice));
    let closed = store
        .list_sites(&SiteQuery { statuses: vec![SiteStatus::Closed], limit: 100, ..SiteQuery::default() })
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    let libraries = store
        .list_sites(&SiteQuery {
            kinds: vec![Kind::PublicLibrary],
            operator: Some("ZW Post".into()),
            limit: 100,
            ..SiteQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(libraries.len(), 20);
    let later = store
        .list_sites(&SiteQuery { modified_after: Some(chrono::Utc::now()), limit: 100, ..SiteQuery::default() })
        .await
        .unwrap();
    assert!(later.is_empty());
}

async fn concurrent_writers_get_gapless_sequences(store: Arc<Store>) {
    const WRITERS: usize = 16;
    const WRITES_EACH: usize = 25;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..WRITES_EACH {
                    // Two origins interleaved, and every third write touches a shared site.
                    let origin = if w % 2 == 0 { "zw" } else { "ke" };
                    let id = if i % 3 == 0 { "shared".to_string() } else { format!("w{w}-{i}") };
                    let mut s =
                        site(&format!("sites/{origin}/{id}"), "ZW", Kind::Other, -17.0, 31.0 + w as f64 / 100.0);
                    s.display_name = format!("writer {w} write {i}");
                    store.write(vec![upsert(s, Precondition::None)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    for origin in ["zw", "ke"] {
        let seqs: Vec<u64> = log_of(&store, origin).await.into_iter().map(|(seq, _, _)| seq).collect();
        let expected: Vec<u64> = (1..=(WRITERS / 2 * WRITES_EACH) as u64).collect();
        assert_eq!(seqs, expected, "origin {origin} has gaps or duplicates");
        assert_eq!(store.last_seq(&origin.parse().unwrap()).await.unwrap(), *expected.last().unwrap());
    }
}

async fn crossing_multi_origin_batches_neither_deadlock_nor_gap(store: Arc<Store>) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 10;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    // Half the writers name zw first, half ke first: locks must still be
                    // taken in one order.
                    let mut origins = ["zw", "ke"];
                    if w % 2 == 1 {
                        origins.reverse();
                    }
                    let writes = origins
                        .iter()
                        .map(|o| {
                            upsert(
                                site(&format!("sites/{o}/w{w}-b{b}"), "ZW", Kind::Other, -17.0, 31.0),
                                Precondition::None,
                            )
                        })
                        .collect();
                    store.write(writes).await.unwrap();
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    for origin in ["zw", "ke"] {
        let seqs: Vec<u64> = log_of(&store, origin).await.into_iter().map(|(seq, _, _)| seq).collect();
        assert_eq!(seqs, (1..=(WRITERS * BATCHES) as u64).collect::<Vec<_>>(), "origin {origin}");
    }
}

async fn one_batch_may_touch_a_site_several_times(store: Arc<Store>) {
    let first = site("sites/zw/twice", "ZW", Kind::School, -17.5, 31.0);
    let mut second = first.clone();
    second.display_name = "Second".into();
    let applied = store
        .write(vec![
            upsert(first.clone(), Precondition::Absent),
            upsert(second.clone(), Precondition::Etag(first.content_etag())),
            upsert(second.clone(), Precondition::None),
        ])
        .await
        .unwrap();
    assert!(matches!(applied[0], Applied::Created(_)));
    assert!(matches!(applied[1], Applied::Updated(ref r) if r.origin_seq == 2));
    assert!(matches!(applied[2], Applied::Unchanged(ref r) if r.origin_seq == 2));
    assert_eq!(store.get_site(&second.name).await.unwrap().unwrap().site, second);

    let gone = site("sites/zw/brief", "ZW", Kind::School, -17.6, 31.0);
    store
        .write(vec![
            upsert(gone.clone(), Precondition::Absent),
            Write { change: Change::Delete(gone.name.clone()), precondition: Precondition::Exists },
            upsert(first.clone(), Precondition::Exists),
        ])
        .await
        .unwrap();
    assert!(store.get_site(&gone.name).await.unwrap().is_none());
    assert_eq!(store.get_site(&first.name).await.unwrap().unwrap().site, first);
    let ops: Vec<(u64, String, ChangeOp)> = log_of(&store, "zw").await;
    assert_eq!(ops.len(), 5);
    assert_eq!(ops[3], (4, "sites/zw/brief".into(), ChangeOp::Delete));
    let services = site_services::Entity::find().all(store.connection()).await.unwrap();
    assert_eq!(services.len(), 2, "services of replaced or deleted sites linger: {services:?}");
}

async fn every_entity_matches_the_schema(store: Arc<Store>) {
    let db = store.connection();
    connectivity_latest::Entity::insert(connectivity_latest::ActiveModel {
        site_name: Set("sites/zw/1".into()),
        online: Set(true),
        download_mbps: Set(Some(25.5)),
        upload_mbps: Set(None),
        latency_ms: Set(Some(40.0)),
        technology: Set("FIBRE".into()),
        public_wifi_access_points: Set(Some(2)),
        public_computers: Set(None),
        power_backup: Set(Some(false)),
        source: Set("AGENT".into()),
        observed_at_us: Set(1),
        received_at_us: Set(2),
        measurement: Set(None),
        summary: Set(None),
        logged_summary: Set(None),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    let latest = connectivity_latest::Entity::find_by_id("sites/zw/1".to_string()).one(db).await.unwrap().unwrap();
    assert_eq!(latest.download_mbps, Some(25.5));

    let row = connectivity_history::ActiveModel {
        site_name: Set("sites/zw/1".into()),
        idempotency_key: Set("k1".into()),
        online: Set(false),
        download_mbps: Set(None),
        upload_mbps: Set(None),
        latency_ms: Set(None),
        jitter_ms: Set(Some(3.0)),
        packet_loss_ratio: Set(Some(0.01)),
        technology: Set("DSL".into()),
        source: Set("MANUAL".into()),
        observed_at_us: Set(5),
        received_at_us: Set(6),
        ..Default::default()
    };
    connectivity_history::Entity::insert(row.clone()).exec_without_returning(db).await.unwrap();
    // (site, idempotency key) is unique: a replayed measurement cannot be stored twice.
    assert!(connectivity_history::Entity::insert(row).exec_without_returning(db).await.is_err());

    peers::Entity::insert(peers::ActiveModel {
        node_id: Set("fr".into()),
        endpoint: Set("http://127.0.0.1:50052".into()),
        public_key: Set(vec![7; 32]),
        allowed_origins: Set(r#"["fr"]"#.into()),
        created_at_us: Set(1),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    peer_cursors::Entity::insert(peer_cursors::ActiveModel {
        peer_id: Set("fr".into()),
        origin: Set("fr".into()),
        seq: Set(42),
        epoch: Set("e1".into()),
        updated_at_us: Set(1),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    node_keys::Entity::insert(node_keys::ActiveModel {
        key_id: Set("k-2026-11".into()),
        public_key: Set(vec![1; 32]),
        valid_from_us: Set(1),
        valid_until_us: Set(None),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    assert_eq!(peers::Entity::find().all(db).await.unwrap()[0].public_key, vec![7; 32]);
    assert_eq!(peer_cursors::Entity::find().all(db).await.unwrap()[0].seq, 42);
    assert_eq!(node_keys::Entity::find().all(db).await.unwrap()[0].valid_until_us, None);
}

async fn text_and_cell_queries_match_words_and_ranges(store: Arc<Store>) {
    let named = |n: &str, display: &str, locality: &str, lat: f64, lng: f64| {
        let mut s = site(n, "ZW", Kind::PostOffice, lat, lng);
        s.display_name = display.into();
        s.address.locality = locality.into();
        upsert(s, Precondition::None)
    };
    store
        .write(vec![
            named("sites/zw/1", "Bibliothèque Évora", "Harare", -17.8292, 31.0522),
            named("sites/zw/2", "Harare Main Post Office", "Harare", -17.8300, 31.0500),
            named("sites/zw/3", "Mutare Post", "Mutare", -18.9707, 32.6709),
            named("sites/zw/4", "100%_free Wifi Hall", "Gweru", -19.4500, 29.8167),
        ])
        .await
        .unwrap();
    let found = |text: TextMatch, h3_range: Option<(u64, u64)>| {
        let store = store.clone();
        async move {
            let query = SiteQuery { text: Some(text), h3_range, limit: 100, ..SiteQuery::default() };
            store.list_sites(&query).await.unwrap().into_iter().map(|r| r.site.name.to_string()).collect::<Vec<_>>()
        }
    };
    let words = |q: &str| hubdir_core::search::query_words(q);
    assert_eq!(found(TextMatch::InName(words("BIBLIOTHEQUE ev")), None).await, ["sites/zw/1"]);
    assert_eq!(found(TextMatch::InName(words("post")), None).await, ["sites/zw/2", "sites/zw/3"]);
    // Word prefixes only: "ost" starts no word.
    assert!(found(TextMatch::InName(words("ost")), None).await.is_empty());
    // Harare in the name, or only in the address.
    assert_eq!(found(TextMatch::InName(words("harare")), None).await, ["sites/zw/2"]);
    assert_eq!(found(TextMatch::InAddressNotName(words("harare")), None).await, ["sites/zw/1"]);
    // LIKE's wildcards in a query are plain characters (folded away as punctuation here, and
    // escaped if they ever reach the pattern).
    assert_eq!(found(TextMatch::InName(vec!["100".into()]), None).await, ["sites/zw/4"]);
    assert!(found(TextMatch::InName(vec!["1%".into()]), None).await.is_empty());
    assert!(found(TextMatch::InName(vec!["_".into()]), None).await.is_empty());
    // The resolution-5 cell of central Harare holds the two Harare sites, not Mutare or Gweru.
    let stored = store.get_site(&name("sites/zw/2")).await.unwrap().unwrap().h3_cell;
    let cell = hubdir_geo::CellIndex::try_from(stored.get()).unwrap().parent(hubdir_geo::Resolution::Five).unwrap();
    let range = Some(hubdir_geo::descendant_range(cell));
    let all = words("");
    assert_eq!(found(TextMatch::InName(all), range).await, ["sites/zw/1", "sites/zw/2"]);
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

async fn measurements_keep_the_newest_as_latest_and_log_only_changes(store: Arc<Store>) {
    store
        .write(vec![upsert(site("sites/zw/1", "ZW", Kind::PostOffice, -17.0, 31.0), Precondition::None)])
        .await
        .unwrap();
    let refresh = chrono::Duration::minutes(15);
    let record = |items| {
        let store = store.clone();
        async move { store.record_measurements(items, refresh).await.unwrap() }
    };
    let fresh = |latest, logged| Recorded::Accepted { latest, logged };
    // The first status is announced; its replay is a no-op; an unknown site stores nothing.
    assert_eq!(
        record(vec![
            measured("sites/zw/1", "a", 30, true, Some(30.0)),
            measured("sites/zw/1", "a", 30, true, Some(30.0)),
            measured("sites/zw/404", "x", 30, true, Some(30.0)),
        ])
        .await,
        [fresh(true, true), Recorded::Duplicate, Recorded::UnknownSite]
    );
    // Older than the latest: kept in the history, but the latest stays.
    assert_eq!(record(vec![measured("sites/zw/1", "b", 50, false, None)]).await, [fresh(false, false)]);
    // Newer, same state and class, ten minutes on: the latest, not announced again.
    assert_eq!(record(vec![measured("sites/zw/1", "c", 20, true, Some(35.0))]).await, [fresh(true, false)]);
    let latest = store.latest_status(&name("sites/zw/1")).await.unwrap().unwrap();
    assert_eq!(latest.measurement.unwrap().idempotency_key, "c");
    // The line goes down: announced.
    assert_eq!(record(vec![measured("sites/zw/1", "d", 10, false, None)]).await, [fresh(true, true)]);
    let log = log_of(&store, "zw").await;
    let ops: Vec<ChangeOp> = log.iter().map(|(_, _, op)| *op).collect();
    assert_eq!(ops, [ChangeOp::Upsert, ChangeOp::Status, ChangeOp::Status]);
    let summaries = store.latest_summaries().await.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].1.state, State::Offline);
    let history = connectivity_history::Entity::find().all(store.connection()).await.unwrap();
    assert_eq!(history.len(), 4, "a, b, c and d; the replay and the unknown site are not stored");

    store
        .quarantine(vec![Quarantined {
            principal: "agent-1".into(),
            site: "sites/zw/1".into(),
            idempotency_key: "z".into(),
            reason: "TOO_OLD: observed more than 604800 s ago".into(),
            body: "{}".into(),
            received_at: chrono::Utc::now(),
        }])
        .await
        .unwrap();
    let kept = store.list_quarantine(Some("sites/zw/1"), None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].reason.starts_with("TOO_OLD"));
    assert_eq!(store.list_quarantine(None, Some("agent-1"), 10).await.unwrap().len(), 1);
    assert!(store.list_quarantine(None, Some("agent-2"), 10).await.unwrap().is_empty());
}

/// Findings 5 and 6: refusals were stored whole (a 1 MB site and key made a 4 MB row) and in
/// one statement (past 6,553 rows SQLite refused it: too many SQL variables; PostgreSQL past
/// about 11,000), and the quarantine grew without bound.
async fn the_quarantine_is_truncated_chunked_and_bounded(store: Arc<Store>) {
    let now = chrono::Utc::now();
    let refused = |i: usize, age_days: i64| Quarantined {
        principal: "agent-1".into(),
        site: format!("sites/zw/{i}"),
        idempotency_key: format!("k{i}"),
        reason: "TOO_OLD: observed more than 604800 s ago".into(),
        body: "{}".into(),
        received_at: now - chrono::Duration::days(age_days),
    };
    // Past both databases' bound-parameter limits in one call.
    store.quarantine((0..11_000).map(|i| refused(i, i64::from(i < 10))).collect()).await.unwrap();
    let huge = Quarantined {
        site: "s".repeat(1 << 20),
        idempotency_key: "k".repeat(1 << 20),
        body: "b".repeat(1 << 20),
        ..refused(11_000, 0)
    };
    store.quarantine(vec![huge]).await.unwrap();
    let newest = &store.list_quarantine(None, None, 1).await.unwrap()[0];
    assert!(newest.site.len() <= hubdir_store::QUARANTINE_FIELD_BYTES, "{}", newest.site.len());
    assert!(newest.idempotency_key.len() <= hubdir_store::QUARANTINE_FIELD_BYTES);
    assert!(newest.body.len() <= hubdir_store::QUARANTINE_BODY_BYTES);
    assert!(newest.site.ends_with("..."));
    // Ten rows are a day old; then at most 5,000 are kept, the newest.
    let removed = store.prune_quarantine(now - chrono::Duration::hours(12), 5_000).await.unwrap();
    assert_eq!(removed, 10 + (11_001 - 10 - 5_000));
    let kept = store.list_quarantine(None, None, 10_000).await.unwrap();
    assert_eq!(kept.len(), 5_000);
    assert_eq!(kept.last().unwrap().idempotency_key, "k6001");
}

/// The roll-up takes its clock as an argument: here, a fixed instant in January 2026.
async fn old_measurements_roll_up_into_days_at_the_clock_given(store: Arc<Store>) {
    store
        .write(vec![upsert(site("sites/zw/1", "ZW", Kind::PostOffice, -17.0, 31.0), Precondition::None)])
        .await
        .unwrap();
    let day =
        |d: u32, h: u32| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap().and_hms_opt(h, 0, 0).unwrap().and_utc();
    let at = |key: &str, when, online, download| {
        let (mut m, _) = measured("sites/zw/1", key, 0, online, download);
        m.observed_at = when;
        let summary = StatusSummary::of(&m, &Benchmark::default(), chrono::Duration::hours(1));
        (m, summary)
    };
    store
        .record_measurements(
            vec![
                at("a", day(10, 1), true, Some(30.0)),
                at("b", day(10, 9), true, Some(10.0)),
                at("c", day(10, 17), false, None),
                at("d", day(10, 23), true, Some(20.0)),
                at("e", day(11, 2), true, Some(40.0)),
            ],
            chrono::Duration::minutes(15),
        )
        .await
        .unwrap();
    // At noon on the 11th only the whole day of the 10th is past: it rolls up.
    let done = store.roll_up(day(11, 12)).await.unwrap();
    assert_eq!(done, RollUp { days: 1, measurements: 4 });
    let daily = store.daily_rollups(&["sites/zw/1".into()], day(1, 0), day(20, 0)).await.unwrap();
    assert_eq!(daily.len(), 1);
    let d = &daily[0];
    assert_eq!((d.measurements, d.online_count, d.download_count), (4, 3, 3));
    assert_eq!((d.download_median, d.download_p10), (Some(20.0), Some(10.0)));
    assert_eq!(d.day, day(10, 0).timestamp() / 86_400);
    // The raw rows of the 10th are gone, the 11th's stays; running again changes nothing.
    let raw = store.samples(&["sites/zw/1".into()], day(1, 0), day(20, 0)).await.unwrap();
    assert_eq!(raw.iter().map(|s| s.download_mbps).collect::<Vec<_>>(), [Some(40.0)]);
    assert_eq!(store.roll_up(day(11, 12)).await.unwrap(), RollUp::default());
    // A window that only partly covers the 10th does not count its roll-up.
    assert!(store.daily_rollups(&["sites/zw/1".into()], day(10, 6), day(20, 0)).await.unwrap().is_empty());
}

async fn a_published_key_keeps_its_start_and_its_id_names_one_key(store: Arc<Store>) {
    let first = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    store.publish_key("zw-0011223344556677", &[7; 32], first).await.unwrap();
    store.publish_key("zw-0011223344556677", &[7; 32], first + chrono::Duration::days(3)).await.unwrap();
    let keys = store.published_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].valid_from, keys[0].valid_until), (first, None));
    let reused = store.publish_key("zw-0011223344556677", &[8; 32], first).await.unwrap_err();
    assert!(matches!(reused, StoreError::Corrupt(_)), "{reused}");
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

async fn remote_events_apply_once_in_order_with_the_cursor(store: Arc<Store>) {
    let stream = |seq, change| (remote("e1", seq, "1", change), Delivery::Stream);
    // One transaction: the first applies, its replay is a no-op, a skipped seq is a gap.
    let outcomes = store
        .apply_remote("fr", vec![stream(1, fr_upsert("1")), stream(1, fr_upsert("1")), stream(3, RemoteChange::Delete)])
        .await
        .unwrap();
    assert_eq!(outcomes, [RemoteApplied::Applied, RemoteApplied::Duplicate, RemoteApplied::Gap { held: 1 }]);
    assert!(store.get_site(&name("sites/fr/1")).await.unwrap().is_some());
    assert_eq!(store.peer_cursors("fr").await.unwrap(), [("fr".to_string(), 1, "e1".to_string())]);
    assert_eq!(
        store.apply_remote("fr", vec![stream(2, RemoteChange::Delete)]).await.unwrap(),
        [RemoteApplied::Applied]
    );
    assert!(store.get_site(&name("sites/fr/1")).await.unwrap().is_none());
    assert_eq!(store.peer_cursors("fr").await.unwrap(), [("fr".to_string(), 2, "e1".to_string())]);
    // The events keep the bytes they came with, for relaying.
    let log = store.changes_after(&"fr".parse().unwrap(), 0, 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.signed.as_ref().unwrap().bytes.clone()).collect::<Vec<_>>(), [vec![1], vec![2]]);
    // Another peer delivering what is held moves its own cursor to everything held.
    assert_eq!(
        apply_one(&store, remote("e1", 1, "1", fr_upsert("1")), Delivery::Stream).await,
        RemoteApplied::Duplicate
    );
    assert_eq!(store.peer_cursors("peer").await.unwrap(), [("fr".to_string(), 2, "e1".to_string())]);
}

async fn a_newer_epoch_replaces_the_origin_and_an_older_one_is_ignored(store: Arc<Store>) {
    // Epochs are hex microsecond times: "20" is newer than "1f".
    let (old, new) = ("1f", "20");
    for (seq, site_id) in [(1, "a"), (2, "b")] {
        assert_eq!(
            apply_one(&store, remote(old, seq, site_id, fr_upsert(site_id)), Delivery::Stream).await,
            RemoteApplied::Applied
        );
    }
    // The origin's database was recreated: its first event of the new epoch drops the old
    // sites and log, and starts the new one.
    assert_eq!(apply_one(&store, remote(new, 1, "c", fr_upsert("c")), Delivery::Stream).await, RemoteApplied::Applied);
    let fr: hubdir_core::Origin = "fr".parse().unwrap();
    assert_eq!(store.site_versions("fr").await.unwrap(), [("sites/fr/c".to_string(), 1)]);
    let logs = store.origin_logs().await.unwrap();
    assert_eq!((logs[0].last_seq, logs[0].epoch.as_str()), (1, new));
    assert_eq!(store.changes_after(&fr, 0, 10).await.unwrap().len(), 1);
    // A replay of the old incarnation is ignored, whatever its seq.
    for seq in [2, 3] {
        let stale = remote(old, seq, "a", fr_upsert("a"));
        assert_eq!(apply_one(&store, stale, Delivery::Stream).await, RemoteApplied::StaleEpoch);
    }
    assert_eq!(store.site_versions("fr").await.unwrap(), [("sites/fr/c".to_string(), 1)]);
    assert_eq!(store.peer_cursors("peer").await.unwrap(), [("fr".to_string(), 1, new.to_string())]);
}

async fn snapshots_hold_the_latest_events_of_each_site_and_compaction_keeps_only_them(store: Arc<Store>) {
    let fr: hubdir_core::Origin = "fr".parse().unwrap();
    let log = [
        ("a", fr_upsert("a")),
        ("b", fr_upsert("b")),
        ("a", fr_status(10.0)),
        ("a", fr_upsert("a")), // supersedes 1 and 3
        ("b", fr_status(20.0)),
        ("b", fr_status(30.0)), // supersedes 5, not 2
        ("c", fr_upsert("c")),
        ("c", RemoteChange::Delete), // a tombstone supersedes 7 and stays
    ];
    let events = log
        .into_iter()
        .enumerate()
        .map(|(i, (site_id, change))| (remote("e1", i as u64 + 1, site_id, change), Delivery::Stream))
        .collect();
    assert!(store.apply_remote("fr", events).await.unwrap().iter().all(|o| *o == RemoteApplied::Applied));
    let seqs = |events: Vec<ChangeEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.snapshot_after(&fr, 0, 8, 100).await.unwrap()), [2, 4, 6, 8]);
    // As of seq 5; from a reader's position; in pages.
    assert_eq!(seqs(store.snapshot_after(&fr, 0, 5, 100).await.unwrap()), [2, 4, 5]);
    assert_eq!(seqs(store.snapshot_after(&fr, 4, 8, 100).await.unwrap()), [6, 8]);
    assert_eq!(seqs(store.snapshot_after(&fr, 0, 8, 2).await.unwrap()), [2, 4]);

    assert_eq!(store.compact(&fr).await.unwrap(), 4);
    assert_eq!(seqs(store.changes_after(&fr, 0, 100).await.unwrap()), [2, 4, 6, 8]);
    assert_eq!(store.origin_logs().await.unwrap()[0].compacted_through, 8);
    assert_eq!(store.compact(&fr).await.unwrap(), 0);
    assert_eq!(
        store.site_versions("fr").await.unwrap(),
        [("sites/fr/a".to_string(), 4), ("sites/fr/b".to_string(), 2)]
    );
}

async fn a_snapshot_applies_with_holes_and_the_stream_continues_after_it(store: Arc<Store>) {
    // Seqs 2, 4 and 6 of a log: the rest was superseded.
    let snapshot = [(2, "a"), (4, "b"), (6, "a")]
        .map(|(seq, site_id)| (remote("e1", seq, site_id, fr_upsert(site_id)), Delivery::Snapshot));
    let outcomes = store.apply_remote("peer", snapshot.to_vec()).await.unwrap();
    assert_eq!(outcomes, [RemoteApplied::Applied; 3]);
    let logs = store.origin_logs().await.unwrap();
    assert_eq!((logs[0].last_seq, logs[0].compacted_through), (6, 6));
    // A snapshot event already held is a replay; the stream must go on from 7.
    assert_eq!(apply_one(&store, snapshot[1].0.clone(), Delivery::Snapshot).await, RemoteApplied::Duplicate);
    assert_eq!(
        apply_one(&store, remote("e1", 8, "c", fr_upsert("c")), Delivery::Stream).await,
        RemoteApplied::Gap { held: 6 }
    );
    assert_eq!(apply_one(&store, remote("e1", 7, "c", fr_upsert("c")), Delivery::Stream).await, RemoteApplied::Applied);
    let versions = store.site_versions("fr").await.unwrap();
    assert_eq!(versions, [("sites/fr/a".into(), 6), ("sites/fr/b".into(), 4), ("sites/fr/c".into(), 7)]);
}

#[tokio::test]
async fn a_sqlite_file_keeps_its_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("node.db").display());
    let s = site("sites/zw/kept", "ZW", Kind::Other, -17.0, 31.0);
    {
        let store = Store::connect(&url).await.unwrap();
        store.write(vec![upsert(s.clone(), Precondition::Absent)]).await.unwrap();
    }
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.get_site(&s.name).await.unwrap().unwrap().site, s);
    // Pragmas are per connection: ask through the store's own pool.
    let store = &store;
    let pragma = |name: &'static str| async move {
        let statement = sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, format!("PRAGMA {name}"));
        store.connection().query_one_raw(statement).await.unwrap().unwrap()
    };
    assert_eq!(pragma("journal_mode").await.try_get_by_index::<String>(0).unwrap(), "wal");
    // synchronous=FULL is 2: an acknowledged write survives a power cut.
    assert_eq!(pragma("synchronous").await.try_get_by_index::<i32>(0).unwrap(), 2);
}

/// A database written before the search keys existed gets them filled in on upgrade.
#[tokio::test]
async fn upgrading_fills_in_search_keys_for_stored_sites() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("node.db").display());
    {
        let store = Store::connect(&url).await.unwrap();
        let mut s = site("sites/zw/old", "ZW", Kind::Other, -17.0, 31.0);
        s.display_name = "Ancienne Bibliothèque".into();
        store.write(vec![upsert(s, Precondition::Absent)]).await.unwrap();
        // Back to the schema before the migration.
        for sql in [
            "ALTER TABLE sites DROP COLUMN search_name",
            "ALTER TABLE sites DROP COLUMN search_text",
            "DELETE FROM seaql_migrations WHERE version = 'm0002_search_keys'",
        ] {
            store.connection().execute_unprepared(sql).await.unwrap();
        }
    }
    let store = Store::connect(&url).await.unwrap();
    let words = hubdir_core::search::query_words("bibliotheque");
    let query = SiteQuery { text: Some(TextMatch::InName(words)), limit: 10, ..SiteQuery::default() };
    let found = store.list_sites(&query).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].site.name.to_string(), "sites/zw/old");
}

/// Finding 1 of the adversarial test: a forged local write into a followed origin took the
/// seq of the leader's next event, which was then dropped as a replay.
async fn a_local_write_never_takes_a_seq_of_an_origin_applied_from_peers(store: Arc<Store>) {
    let fr = "fr".parse().unwrap();
    assert_eq!(apply_one(&store, remote("e1", 1, "1", fr_upsert("1")), Delivery::Stream).await, RemoteApplied::Applied);
    let forged = site("sites/fr/forged", "FR", Kind::PostOffice, 48.0, 2.0);
    let err = store.write(vec![upsert(forged, Precondition::None)]).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotOwned { origin, why: NotOwned::AppliedFromPeers } if origin == "fr"),
        "{err}"
    );
    // A report about one of fr's sites is fr's to publish, not this node's.
    let report = vec![measured("sites/fr/1", "k1", 0, true, Some(50.0))];
    assert_eq!(store.record_measurements(report, chrono::Duration::minutes(15)).await.unwrap(), [Recorded::NotOwned]);
    assert!(store.latest_status(&name("sites/fr/1")).await.unwrap().is_none());
    // So the leader's next event is the next seq here, and applies.
    assert_eq!(store.last_seq(&fr).await.unwrap(), 1);
    assert_eq!(apply_one(&store, remote("e1", 2, "2", fr_upsert("2")), Delivery::Stream).await, RemoteApplied::Applied);
    assert_eq!(log_of(&store, "fr").await.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
    assert!(store.get_site(&name("sites/fr/forged")).await.unwrap().is_none());

    // The other way round: a peer's event never enters the log of an origin written here.
    store
        .write(vec![upsert(site("sites/zw/1", "ZW", Kind::PublicLibrary, -17.8, 31.0), Precondition::None)])
        .await
        .unwrap();
    let zw_site = site("sites/zw/2", "ZW", Kind::PublicLibrary, -17.9, 31.1);
    let from_peer = RemoteEvent {
        origin: "zw".parse().unwrap(),
        site_name: "sites/zw/2".into(),
        change: RemoteChange::Upsert(Box::new(zw_site)),
        ..remote("e1", 2, "2", RemoteChange::Delete)
    };
    assert_eq!(apply_one(&store, from_peer, Delivery::Stream).await, RemoteApplied::OwnOrigin);
    assert_eq!(log_of(&store, "zw").await.len(), 1);
    assert!(store.get_site(&name("sites/zw/2")).await.unwrap().is_none());
}

/// A node's store writes its own origin only, and never takes its own origin from a peer, not
/// even before it wrote anything (a wiped node hearing its old events through a relay).
#[tokio::test]
async fn a_node_writes_its_own_origin_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("zw.db").display());
    let store = Store::connect(&url).await.unwrap().owning(["zw".parse().unwrap()]);
    let other = site("sites/ke/1", "KE", Kind::PublicLibrary, -1.3, 36.8);
    let err = store.write(vec![upsert(other, Precondition::None)]).await.unwrap_err();
    assert!(matches!(&err, StoreError::NotOwned { origin, why: NotOwned::OtherNode } if origin == "ke"), "{err}");
    let echoed = RemoteEvent {
        origin: "zw".parse().unwrap(),
        site_name: "sites/zw/old".into(),
        change: RemoteChange::Upsert(Box::new(site("sites/zw/old", "ZW", Kind::PublicLibrary, -17.8, 31.0))),
        ..remote("0001", 1, "old", RemoteChange::Delete)
    };
    assert_eq!(apply_one(&store, echoed, Delivery::Snapshot).await, RemoteApplied::OwnOrigin);
    store
        .write(vec![upsert(site("sites/zw/1", "ZW", Kind::PublicLibrary, -17.8, 31.0), Precondition::None)])
        .await
        .unwrap();
    assert_eq!(log_of(&store, "zw").await.len(), 1);
    assert!(store.get_site(&name("sites/zw/old")).await.unwrap().is_none());
}

/// Finding 2: SQLite stored text that PostgreSQL refuses (NUL), so PostgreSQL followers of a
/// SQLite node failed every batch; and PostgreSQL's refusal read as "retry later". One table
/// of inputs for both databases: validation decides, and both store whatever it accepts.
async fn both_databases_store_exactly_what_validation_accepts(store: Arc<Store>) {
    let cases: &[(&str, bool)] = &[
        ("plain", true),
        ("nul \0 byte", false),
        ("bell \u{7}", false),
        ("escape \u{1b}[31m", false),
        ("delete \u{7f}", false),
        ("c1 next line \u{85}", false),
        ("line\nbreak", false),
        ("books 📚, Zürich, 北京, مكتبة", true),
        ("zero width \u{200b} joiner", true),
        ("quotes ' ; -- %_ \\", true),
    ];
    type Set = fn(&mut SiteInput, &str);
    let fields: [(&str, Set); 5] = [
        ("display_name", |s, t| s.display_name = format!("x {t}")),
        ("operator", |s, t| s.operator = t.into()),
        ("address.locality", |s, t| s.address.locality = t.into()),
        ("contact.phone", |s, t| s.contact.phone = t.into()),
        ("opening_hours", |s, t| s.opening_hours = format!("Mo-Fr 08:00-17:00 \"{t}\"")),
    ];
    for (i, (text, valid)) in cases.iter().enumerate() {
        for (j, (field, set)) in fields.iter().enumerate() {
            let base = site(&format!("sites/zw/t{i}-{j}"), "ZW", Kind::Telecentre, -17.8, 31.0);
            let mut input = SiteInput {
                name: base.name.to_string(),
                display_name: base.display_name.clone(),
                kind: Some(base.kind),
                operator: base.operator.clone(),
                country_code: "ZW".into(),
                location: Some((-17.8, 31.0)),
                time_zone: "Africa/Harare".into(),
                ..SiteInput::default()
            };
            set(&mut input, text);
            match input.validate() {
                Ok(checked) => {
                    assert!(*valid, "{field} = {text:?} was accepted");
                    store.write(vec![upsert(checked.clone(), Precondition::None)]).await.unwrap();
                    let stored = store.get_site(&checked.name).await.unwrap().unwrap();
                    assert_eq!(stored.site, checked, "{field} = {text:?} changed on the way");
                }
                Err(v) => {
                    assert!(!valid, "{field} = {text:?} was refused: {v}");
                    assert!(v.0.iter().any(|v| v.field == *field), "{field} not named: {v}");
                }
            }
        }
    }
    // Past validation (a bug, or an old row), PostgreSQL's refusal is not "retry later".
    if store.backend_name() == "postgres" {
        let mut bad = site("sites/zw/nul", "ZW", Kind::Telecentre, -17.8, 31.0);
        bad.display_name.push('\0');
        let err = store.write(vec![upsert(bad, Precondition::None)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    }
}

/// A peer's event kept without its content (it failed this node's checks) must not hide the
/// event before it from snapshots or compaction: the site still holds that one, and a
/// follower served a snapshot must get it too.
async fn an_event_that_could_not_be_applied_supersedes_nothing(store: Arc<Store>) {
    let fr = "fr".parse().unwrap();
    apply_one(&store, remote("e1", 1, "1", fr_upsert("1")), Delivery::Stream).await;
    let unappliable = RemoteChange::Unappliable { op: ChangeOp::Upsert, reason: "display_name: a NUL".into() };
    assert_eq!(
        apply_one(&store, remote("e1", 2, "1", unappliable), Delivery::Stream).await,
        RemoteApplied::Quarantined
    );
    let seqs = |events: Vec<ChangeEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.snapshot_after(&fr, 0, 2, 100).await.unwrap()), [1, 2]);
    assert_eq!(store.compact(&fr).await.unwrap(), 0);
    assert_eq!(log_of(&store, "fr").await.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
    // A later real change still supersedes both.
    apply_one(&store, remote("e1", 3, "1", RemoteChange::Delete), Delivery::Stream).await;
    assert_eq!(seqs(store.snapshot_after(&fr, 0, 3, 100).await.unwrap()), [3]);
}
