//! Subscribe and GetDigest over real gRPC: a leader on 127.0.0.1:0 whose store signs its
//! events, a follower with a federation.sync token that verifies every event it receives.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use hubdir_core::{Kind, SiteInput};
use hubdir_federation_core::{NodeIdentity, TrustedKey, sites_hash, verify};
use hubdir_node::Config;
use hubdir_node::testing::{Setup, TestNode};
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{Cursor, GetDigestRequest, SubscribeRequest};
use hubdir_store::testing::Backend;
use hubdir_store::{Change, Precondition, Store, Write};
use tonic::transport::Channel;

fn site(id: &str) -> Write {
    let site = SiteInput {
        name: format!("sites/zw/{id}"),
        display_name: format!("Site {id}"),
        kind: Some(Kind::Telecentre),
        country_code: "ZW".into(),
        location: Some((-17.8, 31.0)),
        time_zone: "Africa/Harare".into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap();
    Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }
}

struct Leader {
    client: FederationServiceClient<Channel>,
    address: std::net::SocketAddr,
    store: Arc<Store>,
    identity: Arc<NodeIdentity>,
    token: String,
    _node: TestNode,
    _dir: tempfile::TempDir,
}

/// Node `zw` with a signing key, two sites, and a federation.sync token for follower `fr`.
async fn leader() -> Leader {
    let dir = tempfile::tempdir().unwrap();
    let identity = Arc::new(NodeIdentity::load_or_create("zw", &dir.path().join("node.key")).unwrap());
    let setup = Setup { seed: vec![site("1"), site("2")], identity: Some(identity.clone()) };
    let node = TestNode::start_with(Backend::Sqlite, &[hubdir_federation::MOUNT], setup).await.unwrap();
    let token = node.token("fr", "federation.sync", None, None, &[]);
    let client = FederationServiceClient::connect(node.endpoint()).await.unwrap();
    Leader { client, address: node.address, store: node.store.clone(), identity, token, _node: node, _dir: dir }
}

impl Leader {
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        TestNode::with_token(&self.token, message)
    }

    fn keys(&self) -> HashMap<String, TrustedKey> {
        let key = TrustedKey {
            origin: "zw".into(),
            key: self.identity.public_key(),
            valid_from: Utc::now() - Duration::days(1),
            valid_until: None,
        };
        [(self.identity.key_id().to_owned(), key)].into_iter().collect()
    }
}

#[tokio::test]
async fn a_follower_gets_what_it_lacks_then_a_marker_then_live_events() {
    let mut leader = leader().await;
    let epoch = leader.store.origin_logs().await.unwrap()[0].epoch.clone();
    let keys = leader.keys();
    let from = SubscribeRequest {
        cursors: vec![Cursor { origin: "zw".into(), seq: 1, epoch: epoch.clone() }],
        origins: vec![],
    };
    let mut stream = leader.client.subscribe(leader.req(from)).await.unwrap().into_inner();
    let mut next = async || stream.message().await.unwrap().unwrap().message.unwrap();
    let Message::Event(event) = next().await else { panic!("an event first") };
    let decoded = verify(&event.event, &event.key_id, &event.signature, &keys).unwrap();
    assert_eq!((decoded.seq, decoded.site_name.as_str()), (2, "sites/zw/2"));
    let Message::CaughtUp(marker) = next().await else { panic!("then the caught-up marker") };
    assert_eq!((marker.cursors[0].seq, &marker.cursors[0].epoch), (2, &epoch));

    leader.store.write(vec![site("3")]).await.unwrap();
    let Message::Event(live) = next().await else { panic!("a live event") };
    assert_eq!(verify(&live.event, &live.key_id, &live.signature, &keys).unwrap().seq, 3);

    let digests = leader.client.get_digest(leader.req(GetDigestRequest::default())).await.unwrap().into_inner();
    let zw = &digests.digests[0];
    assert_eq!((zw.origin.as_str(), zw.max_seq, zw.live_site_count), ("zw", 3, 3));
    assert_eq!(zw.hash, sites_hash(&leader.store.site_versions("zw").await.unwrap()));
}

/// Subscribes from `cursors` and returns what came before the caught-up marker: events as
/// their seqs, snapshot bounds as `S<seq>` and `E<seq>`.
async fn until_caught_up(leader: &mut Leader, cursors: Vec<Cursor>) -> Vec<String> {
    let keys = leader.keys();
    let request = leader.req(SubscribeRequest { cursors, origins: vec![] });
    let mut stream = leader.client.subscribe(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    loop {
        match stream.message().await.unwrap().unwrap().message.unwrap() {
            Message::Event(e) => seen.push(verify(&e.event, &e.key_id, &e.signature, &keys).unwrap().seq.to_string()),
            Message::SnapshotStart(s) => seen.push(format!("S{}", s.seq)),
            Message::SnapshotEnd(e) => seen.push(format!("E{}", e.seq)),
            Message::CaughtUp(_) => return seen,
            Message::Heartbeat(_) => {}
        }
    }
}

#[tokio::test]
async fn a_new_follower_or_one_from_another_epoch_gets_a_snapshot() {
    let mut leader = leader().await;
    assert_eq!(until_caught_up(&mut leader, vec![]).await, ["S2", "1", "2", "E2"]);
    let other = Cursor { origin: "zw".into(), seq: 2, epoch: "an-old-incarnation".into() };
    assert_eq!(until_caught_up(&mut leader, vec![other]).await, ["S2", "1", "2", "E2"]);
}

#[tokio::test]
async fn a_follower_behind_a_compacted_log_gets_only_the_latest_events_after_its_cursor() {
    let mut leader = leader().await;
    let epoch = leader.store.origin_logs().await.unwrap()[0].epoch.clone();
    // Site 1 changes twice more (seqs 3 and 4), site 3 appears (5); compaction drops 1 and 3.
    let mut renamed = site("1");
    for name in ["Renamed", "Renamed again"] {
        if let Change::Upsert(s) = &mut renamed.change {
            s.display_name = name.into();
        }
        leader.store.write(vec![renamed.clone()]).await.unwrap();
    }
    leader.store.write(vec![site("3")]).await.unwrap();
    assert_eq!(leader.store.compact(&"zw".parse().unwrap()).await.unwrap(), 2);
    let at = |seq| vec![Cursor { origin: "zw".into(), seq, epoch: epoch.clone() }];
    // Behind the holes: a snapshot of what came after the cursor.
    assert_eq!(until_caught_up(&mut leader, at(1)).await, ["S5", "2", "4", "5", "E5"]);
    // Past them: the events themselves.
    assert_eq!(until_caught_up(&mut leader, at(5)).await, Vec::<String>::new());
}

#[tokio::test]
async fn without_the_federation_scope_nothing_is_served() {
    let mut leader = leader().await;
    let status = leader.client.subscribe(SubscribeRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

/// A follower of `leader` trusting `pinned` as zw's key, with its own store.
async fn follower(
    leader: &Leader,
    pinned: &NodeIdentity,
    dir: &std::path::Path,
) -> (Arc<Store>, hubdir_federation::follower::FollowerStats, hubdir_node::config::PeerConfig) {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let key_file = dir.join("zw.pub.pem");
    std::fs::write(&key_file, pinned.public_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    let token_file = dir.join("zw.token");
    std::fs::write(&token_file, &leader.token).unwrap();
    let peer = hubdir_node::config::PeerConfig {
        node_id: "zw".into(),
        endpoint: format!("http://{}", leader.address),
        public_key_file: key_file,
        origins: vec![],
        token_file,
    };
    let store = Arc::new(Store::connect(&format!("sqlite://{}", dir.join("fr.db").display())).await.unwrap());
    let stats = hubdir_federation::follower::FollowerStats::default();
    let config = hubdir_node::config::FederationConfig { peers: vec![peer.clone()], ..Config::default().federation };
    let keys = Arc::new(hubdir_federation::follower::trusted_keys(&config).unwrap());
    tokio::spawn(hubdir_federation::follower::follow(
        store.clone(),
        peer.clone(),
        Default::default(),
        keys,
        stats.clone(),
    ));
    (store, stats, peer)
}

/// Polls until the follower holds exactly the leader's live sites of zw at the same seqs.
async fn converged(leader: &Store, follower: &Store) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let want = leader.site_versions("zw").await.unwrap();
        if follower.site_versions("zw").await.unwrap() == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the follower did not converge");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The count of `outcome` once it reaches `want`, or whatever it is after 10 s: the follower
/// counts a batch once its transaction has committed, just after the store shows it.
async fn counted(stats: &hubdir_federation::follower::FollowerStats, outcome: &str, want: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats.get(outcome) < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stats.get(outcome)
}

#[tokio::test]
async fn a_follower_applies_verified_events_and_converges_deletes_included() {
    let leader = leader().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, stats, peer) = follower(&leader, &leader.identity, dir.path()).await;
    converged(&leader.store, &store).await;
    leader.store.write(vec![site("3")]).await.unwrap();
    let delete = Write { change: Change::Delete("sites/zw/1".parse().unwrap()), precondition: Precondition::Exists };
    leader.store.write(vec![delete]).await.unwrap();
    converged(&leader.store, &store).await;
    // Same digest inputs, same log length; each event applied once, none rejected.
    assert_eq!(store.last_seq(&"zw".parse().unwrap()).await.unwrap(), 4);
    assert_eq!(counted(&stats, "applied", 4).await, 4);
    assert_eq!(stats.get("UNKNOWN_KEY") + stats.get("BAD_SIGNATURE"), 0);
    // The follower keeps the origin's signed bytes, so it can relay them as they are.
    let theirs = leader.store.changes_after(&"zw".parse().unwrap(), 0, 10).await.unwrap();
    let ours = store.changes_after(&"zw".parse().unwrap(), 0, 10).await.unwrap();
    assert_eq!(
        theirs.iter().map(|e| e.signed.clone()).collect::<Vec<_>>(),
        ours.iter().map(|e| e.signed.clone()).collect::<Vec<_>>()
    );
    // What `hubdir federation status` shows: caught up, digests equal.
    let status = hubdir_federation::peer_status::peer_status(&store, &peer).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!((status[0].origin.as_str(), status[0].cursor, status[0].lag()), ("zw", 4, 0));
    assert!(status[0].digests_match);
}

#[tokio::test]
async fn a_follower_pinned_to_another_key_applies_nothing_and_counts_why() {
    let leader = leader().await;
    let dir = tempfile::tempdir().unwrap();
    let impostor = NodeIdentity::load_or_create("zw", &dir.path().join("impostor.key")).unwrap();
    let (store, stats, peer) = follower(&leader, &impostor, dir.path()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats.get("UNKNOWN_KEY") < 2 {
        assert!(std::time::Instant::now() < deadline, "the follower never rejected the events");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stats.get("applied"), 0);
    assert!(store.site_versions("zw").await.unwrap().is_empty());
    let status = hubdir_federation::peer_status::peer_status(&store, &peer).await.unwrap();
    assert_eq!((status[0].cursor, status[0].lag()), (0, 2));
    assert!(!status[0].digests_match);
}

#[tokio::test]
async fn a_follower_takes_a_large_origin_whole_and_in_order() {
    let leader = leader().await;
    // One write of 1,000 sites: the snapshot arrives faster than it applies, so the follower
    // checks batches of it in parallel; any reordering would show as a gap or a wrong version.
    leader.store.write((3..1003).map(|i| site(&i.to_string())).collect()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, stats, _) = follower(&leader, &leader.identity, dir.path()).await;
    converged(&leader.store, &store).await;
    assert_eq!(store.last_seq(&"zw".parse().unwrap()).await.unwrap(), 1002);
    assert_eq!((counted(&stats, "applied", 1002).await, stats.get("gap"), stats.get("duplicate")), (1002, 0, 0));
}
