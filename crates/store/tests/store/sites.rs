//! Writing and reading sites: round trips, preconditions, tombstones, batches, listing and search, and what both databases accept.

use super::*;

on_both_backends!(
    create_then_get_round_trips,
    replaying_a_write_changes_nothing,
    etag_mismatch_writes_nothing,
    create_of_existing_site_is_refused,
    delete_leaves_a_tombstone,
    a_failed_batch_writes_nothing_and_gives_its_numbers_back,
    list_filters_and_pages_in_name_order,
    one_batch_may_touch_a_site_several_times,
    text_and_cell_queries_match_words_and_ranges,
    both_databases_store_exactly_what_validation_accepts,
    change_bodies_decode_to_what_the_store_holds,
    hsds_conditions_counts_and_operators_agree_with_admits,
);

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

/// The conditions the HSDS API adds (services, postcode, lookup keys, offset), counts and the
/// operators' listing; and `SiteQuery::admits` keeps to what the database returns, query by
/// query, as the API's proximity path relies on.
async fn hsds_conditions_counts_and_operators_agree_with_admits(store: Arc<Store>) {
    let placed = |n: &str, operator: &str, postcode: &str, services: &[ServiceType]| {
        let mut s = site(n, "FR", Kind::PostOffice, 48.86, 2.35);
        s.display_name = format!("Bureau {n}");
        s.operator = operator.into();
        s.address.postal_code = postcode.into();
        s.services = services.iter().copied().collect();
        s
    };
    let sites = [
        placed("sites/fr/1", "La Poste", "75001", &[ServiceType::PostalBanking]),
        placed("sites/fr/2", "La Poste", "75 002", &[ServiceType::FreeWifi, ServiceType::PostalBanking]),
        placed("sites/fr/3", "Ville de Paris", "75001", &[ServiceType::FreeWifi]),
        placed("sites/fr/4", "", "75001", &[]),
        placed("sites/fr/5", "Relais poste 100%", "69001", &[ServiceType::PublicInternet]),
    ];
    store.write(sites.iter().cloned().map(|s| upsert(s, Precondition::Absent)).collect()).await.unwrap();
    let everything = store.list_sites(&SiteQuery { limit: 100, ..SiteQuery::default() }).await.unwrap();
    let key = |subject: String| Some(hubdir_core::lookup::key(&subject));
    let queries = [
        SiteQuery { services: vec![ServiceType::FreeWifi, ServiceType::PublicInternet], ..SiteQuery::default() },
        SiteQuery { postcode: Some("75-001".into()), ..SiteQuery::default() },
        SiteQuery { postcode: Some("75002".into()), ..SiteQuery::default() },
        SiteQuery { site_key: key(hubdir_core::lookup::site_subject(&name("sites/fr/3"))), ..SiteQuery::default() },
        SiteQuery { operator_key: key(hubdir_core::lookup::operator_subject("La Poste")), ..SiteQuery::default() },
        SiteQuery { operator: Some("".into()), ..SiteQuery::default() },
        SiteQuery {
            text: Some(TextMatch::InNameOrAddress(hubdir_core::search::query_words("bureau 2"))),
            ..SiteQuery::default()
        },
        SiteQuery { after_name: Some("sites/fr/2".into()), kinds: vec![Kind::PostOffice], ..SiteQuery::default() },
    ];
    let names = |records: &[SiteRecord]| records.iter().map(|r| r.site.name.to_string()).collect::<Vec<_>>();
    let mut matched = Vec::new();
    for query in queries {
        let query = SiteQuery { limit: 100, ..query };
        let listed = store.list_sites(&query).await.unwrap();
        let admitted: Vec<SiteRecord> = everything.iter().filter(|r| query.admits(r)).cloned().collect();
        assert_eq!(names(&listed), names(&admitted), "{query:?}");
        let counted = store.count_sites(&SiteQuery { after_name: None, ..query.clone() }).await.unwrap();
        let all = everything.iter().filter(|r| SiteQuery { after_name: None, ..query.clone() }.admits(r)).count();
        assert_eq!(counted, all as u64, "{query:?}");
        matched.push(listed.len());
    }
    // Each condition is selective: none matched everything or nothing.
    assert_eq!(matched, [3, 3, 1, 1, 2, 1, 1, 3]);

    // Offsets page in name order.
    let page = store.list_sites(&SiteQuery { offset: 3, limit: 10, ..SiteQuery::default() }).await.unwrap();
    assert_eq!(names(&page), ["sites/fr/4", "sites/fr/5"]);

    // Operators: in name order, with their sites; the empty operator is nobody's.
    let operators = store.operators(None, None, 0, 10).await.unwrap();
    let total = store.count_operators(None, None).await.unwrap();
    let listed: Vec<(&str, i64)> = operators.iter().map(|o| (o.operator.as_str(), o.sites)).collect();
    assert_eq!((listed, total), (vec![("La Poste", 2), ("Relais poste 100%", 1), ("Ville de Paris", 1)], 3));
    let page = store.operators(None, None, 1, 1).await.unwrap();
    assert_eq!((page[0].operator.as_str(), total), ("Relais poste 100%", 3));
    // Any case; LIKE's wildcards are plain characters.
    let found = store.operators(None, Some("POSTE"), 0, 10).await.unwrap();
    let total = store.count_operators(None, Some("POSTE")).await.unwrap();
    assert_eq!((found.len(), total), (2, 2));
    let found = store.operators(None, Some("100%"), 0, 10).await.unwrap();
    assert_eq!(found.iter().map(|o| o.operator.as_str()).collect::<Vec<_>>(), ["Relais poste 100%"]);
    // Unescaped, `_` would match the space of "ville de paris".
    assert!(store.operators(None, Some("e_p"), 0, 10).await.unwrap().is_empty());
    let by_key =
        store.operators(key(hubdir_core::lookup::operator_subject("Ville de Paris")), None, 0, 10).await.unwrap();
    assert_eq!(by_key.iter().map(|o| o.operator.as_str()).collect::<Vec<_>>(), ["Ville de Paris"]);
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
