//! The change-log sequencer: gapless seqs under concurrent and crossing writers, and which origins this node writes.

use super::*;

on_both_backends!(
    concurrent_writers_get_gapless_sequences,
    crossing_multi_origin_batches_neither_deadlock_nor_gap,
    a_local_write_never_takes_a_seq_of_an_origin_applied_from_peers,
);

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
