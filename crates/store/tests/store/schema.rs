//! The schema: entities match the migrated tables, a file keeps its data, upgrades fill in what later versions add.

use super::*;

on_both_backends!(every_entity_matches_the_schema,);

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

/// A database written before the search keys, postcodes and lookup keys existed gets them
/// filled in on upgrade.
#[tokio::test]
async fn upgrading_fills_in_search_and_lookup_keys_for_stored_sites() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("node.db").display());
    {
        let store = Store::connect(&url).await.unwrap();
        // More sites than one page of the backfill (1,000), so every page is seen to.
        let writes = (0..2_100)
            .map(|i| {
                let mut s = site(&format!("sites/zw/old-{i:04}"), "ZW", Kind::Other, -17.0, 31.0);
                s.display_name = format!("Ancienne Bibliothèque {i}");
                s.address.postal_code = format!("B{:02}", i % 7);
                upsert(s, Precondition::Absent)
            })
            .collect();
        store.write(writes).await.unwrap();
        // Back to the schema before the migration.
        for sql in [
            "DROP INDEX idx_sites_postcode",
            "DROP INDEX idx_sites_site_key",
            "DROP INDEX idx_sites_operator_key",
            "ALTER TABLE sites DROP COLUMN postcode",
            "ALTER TABLE sites DROP COLUMN site_key",
            "ALTER TABLE sites DROP COLUMN operator_key",
            "DELETE FROM seaql_migrations WHERE version = 'm0007_lookup_keys'",
            "ALTER TABLE sites DROP COLUMN search_name",
            "ALTER TABLE sites DROP COLUMN search_text",
            "DELETE FROM seaql_migrations WHERE version = 'm0002_search_keys'",
        ] {
            store.connection().execute_unprepared(sql).await.unwrap();
        }
    }
    let store = Store::connect(&url).await.unwrap();
    let words = hubdir_core::search::query_words("bibliotheque");
    let query = SiteQuery { text: Some(TextMatch::InName(words)), limit: 5_000, ..SiteQuery::default() };
    let found = store.list_sites(&query).await.unwrap();
    assert_eq!(found.len(), 2_100);
    assert_eq!(found[2_099].site.name.to_string(), "sites/zw/old-2099");
    // Every page of the backfill keyed postcodes and lookup keys too.
    let query = SiteQuery { postcode: Some("b 03".into()), limit: 5_000, ..SiteQuery::default() };
    assert_eq!(store.count_sites(&query).await.unwrap(), 300);
    let last = name("sites/zw/old-2099");
    let query = SiteQuery {
        site_key: Some(hubdir_core::lookup::key(&hubdir_core::lookup::site_subject(&last))),
        limit: 10,
        ..SiteQuery::default()
    };
    let by_key = store.list_sites(&query).await.unwrap();
    assert_eq!(by_key.iter().map(|r| r.site.name.clone()).collect::<Vec<_>>(), [last]);
    let operator = found[0].site.operator.clone();
    let operators = store
        .operators(Some(hubdir_core::lookup::key(&hubdir_core::lookup::operator_subject(&operator))), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(operators[0].sites, 2_100);
}

/// `Schema::Require` (a deployment's services) refuses a database with no schema or an older
/// one, naming what is missing, and accepts a newer one; `Store::migrate` (`hubdir migrate`)
/// applies what is missing, once.
async fn the_schema_is_required_or_migrated_once(backend: hubdir_store::testing::Backend) {
    use hubdir_store::Schema;
    let Some(db) = hubdir_store::testing::TestDb::new(backend).await else { return };
    let refusal = |err: StoreError| match err {
        StoreError::Schema(why) => why,
        other => panic!("not a schema error: {other}"),
    };
    let why = refusal(Store::open(&db.url, Schema::Require, 10).await.unwrap_err());
    assert!(why.contains("no hubdir schema") && why.contains("hubdir migrate"), "{why}");

    let store = Store::open(&db.url, Schema::AsIs, 10).await.unwrap();
    let pending = store.pending_migrations().await.unwrap();
    assert!(pending.len() >= 6, "{pending:?}");
    assert_eq!(store.migrate().await.unwrap(), pending);
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.pending_migrations().await.unwrap(), Vec::<String>::new());
    Store::open(&db.url, Schema::Require, 10).await.unwrap();

    // Older: the last migration not applied.
    let last = pending.last().unwrap();
    let conn = store.connection();
    conn.execute_unprepared(&format!("DELETE FROM seaql_migrations WHERE version = '{last}'")).await.unwrap();
    let why = refusal(Store::open(&db.url, Schema::Require, 10).await.unwrap_err());
    assert!(why.contains("older than this binary") && why.contains(last.as_str()), "{why}");
    // Newer: a migration this binary does not know.
    conn.execute_unprepared(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{last}', 0), ('m9999_from_the_future', 0)"
    ))
    .await
    .unwrap();
    // A replica of the previous release, during a rolling upgrade, runs on it (with a
    // warning); `hubdir migrate --check` of that release names the migration it lacks.
    Store::open(&db.url, Schema::Require, 10).await.unwrap();
    let why = refusal(store.pending_migrations().await.unwrap_err());
    assert!(why.contains("newer than this binary") && why.contains("m9999_from_the_future"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_required_or_migrated_once_on_sqlite() {
    the_schema_is_required_or_migrated_once(hubdir_store::testing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_required_or_migrated_once_on_postgres() {
    the_schema_is_required_or_migrated_once(hubdir_store::testing::Backend::Postgres).await;
}

/// A lease is held by one store at a time, in its schema only; when its session dies,
/// its holder learns it and another store takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_until_its_session_dies() {
    let Some(db) = hubdir_store::testing::TestDb::new(hubdir_store::testing::Backend::Postgres).await else { return };
    let Some(other_schema) = hubdir_store::testing::TestDb::new(hubdir_store::testing::Backend::Postgres).await else {
        return;
    };
    let (first, second) = (db.store().await, db.store().await);
    let mut held = first.try_lease("federation.follow.fr").await.unwrap().expect("a free lease is granted");
    assert!(second.try_lease("federation.follow.fr").await.unwrap().is_none(), "one holder at a time");
    assert!(second.try_lease("connectivity.roll_up").await.unwrap().is_some(), "leases are apart by name");
    let elsewhere = other_schema.store().await;
    assert!(elsewhere.try_lease("federation.follow.fr").await.unwrap().is_some(), "and by schema");

    // The holder's session is killed, as when its process dies.
    hubdir_store::testing::end_lease_session(&second, "federation.follow.fr").await;
    let lost =
        tokio::time::timeout(std::time::Duration::from_secs(30), held.lost(std::time::Duration::from_millis(50)));
    lost.await.expect("the holder learns it lost the lease");
    let taken = second.try_lease("federation.follow.fr").await.unwrap();
    assert!(taken.is_some(), "another store takes a lease whose holder died");
    taken.unwrap().release().await;
    assert!(first.try_lease("federation.follow.fr").await.unwrap().is_some(), "a released lease is free");
}

#[tokio::test]
async fn on_sqlite_a_lease_is_always_granted() {
    let Some(db) = hubdir_store::testing::TestDb::new(hubdir_store::testing::Backend::Sqlite).await else { return };
    let store = db.store().await;
    let _held = store.try_lease("connectivity.roll_up").await.unwrap().unwrap();
    assert!(store.try_lease("connectivity.roll_up").await.unwrap().is_some());
}
