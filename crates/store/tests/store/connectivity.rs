//! Connectivity measurements: the latest per site, STATUS events, the quarantine and the daily roll-up.

use super::*;

on_both_backends!(
    measurements_keep_the_newest_as_latest_and_log_only_changes,
    the_quarantine_is_truncated_chunked_and_bounded,
    old_measurements_roll_up_into_days_at_the_clock_given,
);

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
    let mut daily = Vec::new();
    store.for_each_daily_rollup(&["sites/zw/1".into()], day(1, 0), day(20, 0), |d| daily.push(d)).await.unwrap();
    assert_eq!(daily.len(), 1);
    let d = &daily[0];
    assert_eq!((d.measurements, d.online_count, d.download_count), (4, 3, 3));
    assert_eq!((d.download_median, d.download_p10), (Some(20.0), Some(10.0)));
    assert_eq!(d.day, day(10, 0).timestamp() / 86_400);
    // The raw rows of the 10th are gone, the 11th's stays; running again changes nothing.
    let mut raw = Vec::new();
    store.for_each_sample(&["sites/zw/1".into()], day(1, 0), day(20, 0), |s| raw.push(s.download_mbps)).await.unwrap();
    assert_eq!(raw, [Some(40.0)]);
    assert_eq!(store.roll_up(day(11, 12)).await.unwrap(), RollUp::default());
    // A window that only partly covers the 10th does not count its roll-up.
    let partly = store.for_each_daily_rollup(&["sites/zw/1".into()], day(10, 6), day(20, 0), |_| {}).await.unwrap();
    assert_eq!(partly, 0);
}
