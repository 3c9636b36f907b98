//! Connectivity measurements: the latest per site, STATUS events, the quarantine and the daily roll-up.

use super::*;
use hubdir_store::entity::connectivity_daily;

on_both_backends!(
    measurements_keep_the_newest_as_latest_and_log_only_changes,
    the_quarantine_is_truncated_chunked_and_bounded,
    old_measurements_roll_up_into_days_at_the_clock_given,
    a_window_is_read_whole_across_pages_and_ties,
);

/// A summary reads its window a page at a time: every row comes once, across page ends and
/// across rows observed at the same instant, for several sites, raw and rolled up.
async fn a_window_is_read_whole_across_pages_and_ties(store: Arc<Store>) {
    let db = store.connection();
    let hour = 3_600_000_000i64;
    let mut expected = Vec::new();
    for site in ["sites/zw/a", "sites/zw/b"] {
        // Seven reports, three of them at the same instant.
        for (i, at) in [0, 1, 1, 1, 2, 5, 9].iter().enumerate() {
            let key = format!("{site}-{i}");
            let row = connectivity_history::ActiveModel {
                site_name: Set(site.into()),
                idempotency_key: Set(key.clone()),
                online: Set(true),
                download_mbps: Set(Some(i as f64)),
                upload_mbps: Set(None),
                latency_ms: Set(None),
                jitter_ms: Set(None),
                packet_loss_ratio: Set(None),
                technology: Set("DSL".into()),
                source: Set("AGENT".into()),
                observed_at_us: Set(86_400_000_000 * 30 + at * hour),
                received_at_us: Set(0),
                ..Default::default()
            };
            connectivity_history::Entity::insert(row).exec_without_returning(db).await.unwrap();
            expected.push((site.to_string(), i as f64));
        }
        for day in 10..15 {
            let row = connectivity_daily::ActiveModel {
                site_name: Set(site.into()),
                day: Set(day),
                measurements: Set(1),
                online_count: Set(1),
                download_count: Set(0),
                download_median: Set(None),
                download_p10: Set(None),
                upload_count: Set(0),
                upload_median: Set(None),
                upload_p10: Set(None),
                latency_count: Set(0),
                latency_median: Set(None),
            };
            connectivity_daily::Entity::insert(row).exec_without_returning(db).await.unwrap();
        }
    }
    let window =
        (chrono::DateTime::from_timestamp(0, 0).unwrap(), chrono::DateTime::from_timestamp(86_400 * 40, 0).unwrap());
    let sites = ["sites/zw/a".to_string(), "sites/zw/b".to_string()];
    for page in [1, 2, 3, 100] {
        let (mut raw, mut days) = (Vec::new(), Vec::new());
        let counts = store
            .for_each_in_window(
                &sites,
                window,
                page,
                |s| raw.push((s.site, s.download_mbps.unwrap())),
                |d| days.push((d.site_name, d.day)),
            )
            .await
            .unwrap();
        raw.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(raw, expected, "page of {page}");
        assert_eq!(counts, (14, 10), "page of {page}");
        days.sort();
        days.dedup();
        assert_eq!(days.len(), 10, "page of {page}");
    }
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
    // What the log announced is still a's: what the discovery index loads, as a reader of
    // the log holds it.
    let logged = store.logged_summaries().await.unwrap();
    assert_eq!(logged[0].1.download_mbps, Some(30.0));
    // The line goes down: announced.
    assert_eq!(record(vec![measured("sites/zw/1", "d", 10, false, None)]).await, [fresh(true, true)]);
    let log = log_of(&store, "zw").await;
    let ops: Vec<ChangeOp> = log.iter().map(|(_, _, op)| *op).collect();
    assert_eq!(ops, [ChangeOp::Upsert, ChangeOp::Status, ChangeOp::Status]);
    let summaries = store.logged_summaries().await.unwrap();
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
    let (mut raw, mut daily) = (Vec::new(), Vec::new());
    let window = (day(1, 0), day(20, 0));
    let site = ["sites/zw/1".to_string()];
    store.for_each_in_window(&site, window, 100, |s| raw.push(s.download_mbps), |d| daily.push(d)).await.unwrap();
    assert_eq!(daily.len(), 1);
    let d = &daily[0];
    assert_eq!((d.measurements, d.online_count, d.download_count), (4, 3, 3));
    assert_eq!((d.download_median, d.download_p10), (Some(20.0), Some(10.0)));
    assert_eq!(d.day, day(10, 0).timestamp() / 86_400);
    // The raw rows of the 10th are gone, the 11th's stays; running again changes nothing.
    assert_eq!(raw, [Some(40.0)]);
    assert_eq!(store.roll_up(day(11, 12)).await.unwrap(), RollUp::default());
    // A window that only partly covers the 10th does not count its roll-up.
    let partly = store.for_each_in_window(&site, (day(10, 6), day(20, 0)), 100, |_| {}, |_| {}).await.unwrap();
    assert_eq!(partly, (1, 0));
}
