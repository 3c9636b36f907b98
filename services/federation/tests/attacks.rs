//! A hostile peer: a real gRPC server that streams, among honest events of its origin, events
//! of another origin signed with its own key, an event altered by one byte, events signed with
//! an unknown and an expired key, a site outside its origin's namespace, an origin it may not
//! supply, and a replay of an older incarnation of its log. The real follower rejects and
//! counts each, and still applies every honest event. An event its origin did sign but whose
//! site this node refuses is quarantined in its place, and the log goes on after it.

use std::sync::Arc;

use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use hubdir_core::{Kind, SiteInput};
use hubdir_federation::follower::{FollowerStats, follow, trusted_keys};
use hubdir_federation_core::{NodeIdentity, OriginSigner, encode};
use hubdir_node::Config;
use hubdir_node::config::{FederationConfig, OriginKeyConfig, PeerConfig};
use hubdir_proto::v1::federation_service_server::{FederationService, FederationServiceServer};
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{
    GetDigestRequest, GetDigestResponse, GetNodeInfoRequest, NodeInfo, SignedEvent, SubscribeRequest, SubscribeResponse,
};
use hubdir_store::{Change, EventBody, EventToSign, Precondition, Store, Write};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Streams the same messages to every subscriber, then keeps the stream open.
struct Hostile {
    messages: Vec<SubscribeResponse>,
}

#[tonic::async_trait]
impl FederationService for Hostile {
    type SubscribeStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

    async fn get_node_info(&self, _: Request<GetNodeInfoRequest>) -> Result<Response<NodeInfo>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    async fn subscribe(&self, _: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let messages = tokio_stream::iter(self.messages.clone().into_iter().map(Ok));
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::chain(messages, tokio_stream::pending()))))
    }

    async fn get_digest(&self, _: Request<GetDigestRequest>) -> Result<Response<GetDigestResponse>, Status> {
        Err(Status::unimplemented("hostile"))
    }
}

fn site(name: &str) -> Write {
    let country = if name.starts_with("sites/zw/") { "ZW" } else { "IN" };
    let site = SiteInput {
        name: name.into(),
        display_name: format!("Site {name}"),
        kind: Some(Kind::Telecentre),
        country_code: country.into(),
        location: Some((-17.8, 31.0)),
        time_zone: "Africa/Harare".into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap();
    Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }
}

/// A database of its own signing with `identity`, holding `sites` written one per event; its
/// signed events, in order.
async fn signed_log(dir: &std::path::Path, db: &str, identity: &Arc<NodeIdentity>, sites: &[&str]) -> Vec<SignedEvent> {
    let url = format!("sqlite://{}", dir.join(db).display());
    let store = Store::connect(&url).await.unwrap().with_signer(Arc::new(OriginSigner::new(identity.clone())));
    for name in sites {
        store.write(vec![site(name)]).await.unwrap();
    }
    let origin = sites[0].split('/').nth(1).unwrap().parse().unwrap();
    let events = store.changes_after(&origin, 0, 100).await.unwrap();
    events
        .into_iter()
        .map(|e| {
            let signed = e.signed.unwrap();
            SignedEvent { event: signed.bytes, key_id: signed.key_id, signature: signed.signature }
        })
        .collect()
}

fn pem(identity: &NodeIdentity, path: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::write(&path, identity.public_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn every_attack_in_a_stream_is_rejected_and_counted_and_honest_events_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let key = |name: &str, node: &str| Arc::new(NodeIdentity::load_or_create(node, &path.join(name)).unwrap());
    let (zw, zw_retired, stranger, india) =
        (key("zw.key", "zw"), key("zw-old.key", "zw"), key("stranger.key", "zw"), key("in.key", "in"));

    // An older incarnation of zw's log, then the current one (a later epoch).
    let replayed = signed_log(path, "zw-old.db", &zw, &["sites/zw/old-1", "sites/zw/old-2"]).await;
    let honest =
        signed_log(path, "zw.db", &zw, &["sites/zw/1", "sites/zw/2", "sites/zw/3", "sites/zw/4", "sites/zw/5"]).await;
    // zw itself signs a site this node's checks refuse (a NUL in its name, which an older or
    // laxer node stored): the event takes its place in the log and is quarantined, and the
    // next one still applies instead of the origin stalling at a gap forever.
    let unappliable = {
        use prost::Message as _;
        let mut event = hubdir_proto::v1::ChangeEvent::decode(honest[3].event.as_slice()).unwrap();
        event.site.as_mut().unwrap().display_name = "nul \0 name".into();
        let bytes = event.encode_to_vec();
        SignedEvent { signature: zw.sign(&bytes).to_vec(), event: bytes, key_id: zw.key_id().to_owned() }
    };
    // zw's key signing an event of origin `in`.
    let other_origin = signed_log(path, "forged.db", &zw, &["sites/in/forged"]).await;
    let mut altered = honest[1].clone();
    let middle = altered.event.len() / 2;
    altered.event[middle] ^= 0x01;
    let unknown = signed_log(path, "stranger.db", &stranger, &["sites/zw/unknown"]).await;
    let expired = signed_log(path, "retired.db", &zw_retired, &["sites/zw/expired"]).await;
    let untrusted = signed_log(path, "in.db", &india, &["sites/in/1"]).await;
    // zw's key, zw's origin, a site of `in`.
    let outside = {
        let event = EventToSign {
            origin: "zw",
            epoch: "1",
            seq: 99,
            site_name: "sites/in/outside",
            body: EventBody::Delete,
            time: Utc::now(),
        };
        let bytes = encode(&event);
        SignedEvent { signature: zw.sign(&bytes).to_vec(), event: bytes, key_id: zw.key_id().to_owned() }
    };
    let stream = [
        honest[0].clone(),
        other_origin[0].clone(),
        altered,
        honest[1].clone(),
        unknown[0].clone(),
        expired[0].clone(),
        outside,
        untrusted[0].clone(),
        replayed[0].clone(),
        replayed[1].clone(),
        honest[0].clone(),
        honest[2].clone(),
        unappliable,
        honest[4].clone(),
    ];
    let messages = stream.into_iter().map(|e| SubscribeResponse { message: Some(Message::Event(e)) }).collect();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FederationServiceServer::new(Hostile { messages }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let token_file = path.join("token");
    std::fs::write(&token_file, "unused").unwrap();
    let peer = PeerConfig {
        node_id: "zw".into(),
        endpoint: format!("http://{address}"),
        public_key_file: pem(&zw, path.join("zw.pub")),
        origins: vec![],
        token_file,
    };
    let yesterday = Utc::now() - chrono::Duration::days(1);
    let config = FederationConfig {
        peers: vec![peer.clone()],
        origin_keys: vec![
            OriginKeyConfig {
                origin: "zw".into(),
                public_key_file: pem(&zw_retired, path.join("zw-old.pub")),
                valid_until: Some(yesterday),
            },
            OriginKeyConfig {
                origin: "in".into(),
                public_key_file: pem(&india, path.join("in.pub")),
                valid_until: None,
            },
        ],
        ..Config::default().federation
    };
    let keys = Arc::new(trusted_keys(&config).unwrap());
    let follower = Arc::new(Store::connect(&format!("sqlite://{}", path.join("follower.db").display())).await.unwrap());
    let stats = FollowerStats::default();
    tokio::spawn(follow(follower.clone(), peer, Default::default(), keys, stats.clone()));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats.get("applied") < 4 {
        assert!(std::time::Instant::now() < deadline, "honest events not applied: {stats:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let counted = |what| stats.get(what);
    assert_eq!(counted("WRONG_ORIGIN"), 1, "{stats:?}");
    assert_eq!(counted("BAD_SIGNATURE"), 1);
    assert_eq!(counted("UNKNOWN_KEY"), 1);
    assert_eq!(counted("KEY_NOT_VALID"), 1, "{stats:?}");
    assert_eq!(counted("OUTSIDE_NAMESPACE"), 1);
    assert_eq!(counted("UNTRUSTED_ORIGIN"), 1);
    assert_eq!(counted("STALE_EPOCH"), 2);
    assert_eq!(counted("duplicate"), 1);
    assert_eq!(counted("UNAPPLIABLE"), 1, "{stats:?}");
    let quarantined = follower.list_federation_quarantine(10).await.unwrap();
    assert_eq!(quarantined.iter().map(|q| (q.origin.as_str(), q.seq)).collect::<Vec<_>>(), [("zw", 4)]);
    assert!(quarantined[0].reason.contains("display_name"), "{}", quarantined[0].reason);
    // Exactly the current log's sites, at its seqs; nothing of the forgeries or the replay.
    let held = follower.site_versions("zw").await.unwrap();
    let names: Vec<_> = held.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    assert_eq!(names, [("sites/zw/1", 1), ("sites/zw/2", 2), ("sites/zw/3", 3), ("sites/zw/5", 5)]);
    assert_eq!(follower.last_seq(&"zw".parse().unwrap()).await.unwrap(), 5);
    assert!(follower.site_versions("in").await.unwrap().is_empty());
}
