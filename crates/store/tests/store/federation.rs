//! Peers' events: applying in order with cursors, epochs, snapshots and compaction, quarantined events, published keys.

use super::*;

on_both_backends!(
    a_published_key_keeps_its_start_and_its_id_names_one_key,
    remote_events_apply_once_in_order_with_the_cursor,
    a_newer_epoch_replaces_the_origin_and_an_older_one_is_ignored,
    snapshots_hold_the_latest_events_of_each_site_and_compaction_keeps_only_them,
    a_snapshot_applies_with_holes_and_the_stream_continues_after_it,
    an_event_that_could_not_be_applied_supersedes_nothing,
    a_peers_status_is_kept_as_the_sites_latest_and_goes_with_a_resynced_origin,
);

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
    let summaries = store.logged_summaries().await.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!((summaries[0].0.as_str(), summaries[0].1.download_mbps), ("sites/fr/x", Some(42.0)));
    let latest = store.latest_status(&name("sites/fr/x")).await.unwrap().unwrap();
    assert_eq!((latest.summary.state, latest.measurement), (State::Online, None));
    // A deleted site's status goes with it, even announced in the same batch.
    let events = vec![
        (remote("1f", 4, "z", fr_upsert("z")), Delivery::Stream),
        (remote("1f", 5, "z", fr_status(7.0)), Delivery::Stream),
        (remote("1f", 6, "z", RemoteChange::Delete), Delivery::Stream),
    ];
    assert!(store.apply_remote("fr", events).await.unwrap().iter().all(|o| *o == RemoteApplied::Applied));
    assert_eq!(store.logged_summaries().await.unwrap().len(), 1, "only x's status is left");
    // The origin's database was recreated: what was held of it goes, its statuses too.
    assert_eq!(apply_one(&store, remote("20", 1, "y", fr_upsert("y")), Delivery::Stream).await, RemoteApplied::Applied);
    assert!(store.logged_summaries().await.unwrap().is_empty());
}
