//! Events signed as a real store writes them, verified end to end, and the attacks a peer
//! could try: a flipped byte, an unknown or expired key, another origin's events signed with
//! one's own key, a site outside the origin's namespace.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use hubdir_core::connectivity::{Class, State, StatusSummary};
use hubdir_core::{Kind, SiteInput};
use hubdir_federation_core::{NodeIdentity, OriginSigner, Rejection, TrustedKey, encode, verify};
use hubdir_proto::v1::ChangeType;
use hubdir_store::{Change, ChangeEvent, EventBody, EventSigner, EventToSign, Precondition, Store, Write};

fn site(name: &str) -> Write {
    let site = SiteInput {
        name: name.into(),
        display_name: "Post office".into(),
        kind: Some(Kind::PostOffice),
        country_code: "ZW".into(),
        location: Some((-17.8, 31.0)),
        time_zone: "Africa/Harare".into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap();
    Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }
}

fn trusted(identity: &NodeIdentity) -> (String, TrustedKey) {
    let key = TrustedKey {
        origin: identity.node_id().to_owned(),
        key: identity.public_key(),
        valid_from: Utc::now() - Duration::days(1),
        valid_until: None,
    };
    (identity.key_id().to_owned(), key)
}

fn check(event: &ChangeEvent, keys: &HashMap<String, TrustedKey>) -> Result<hubdir_proto::v1::ChangeEvent, Rejection> {
    let signed = event.signed.as_ref().expect("every event is signed");
    verify(&signed.bytes, &signed.key_id, &signed.signature, keys)
}

#[tokio::test]
async fn events_are_signed_in_the_write_and_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let zw = Arc::new(NodeIdentity::load_or_create("zw", &dir.path().join("zw.key")).unwrap());
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("zw.db").display()))
        .await
        .unwrap()
        .with_signer(Arc::new(OriginSigner::new(zw.clone())));
    store.write(vec![site("sites/zw/1"), site("sites/zw/2")]).await.unwrap();
    let delete = Write { change: Change::Delete("sites/zw/2".parse().unwrap()), precondition: Precondition::Exists };
    store.write(vec![delete]).await.unwrap();
    let events = store.changes_after(&"zw".parse().unwrap(), 0, 100).await.unwrap();
    assert_eq!(events.len(), 3);

    let keys: HashMap<_, _> = [trusted(&zw)].into_iter().collect();
    let decoded: Vec<_> = events.iter().map(|e| check(e, &keys).unwrap()).collect();
    assert_eq!(decoded.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(decoded[2].r#type, i32::from(ChangeType::Delete));
    assert_eq!(decoded[0].site.as_ref().unwrap().display_name, "Post office");
    assert!(decoded.iter().all(|e| !e.epoch.is_empty()));

    // Any single flipped byte breaks the signature.
    let signed = events[0].signed.as_ref().unwrap();
    for i in [0, signed.bytes.len() / 2, signed.bytes.len() - 1] {
        let mut altered = signed.bytes.clone();
        altered[i] ^= 1;
        assert_eq!(verify(&altered, &signed.key_id, &signed.signature, &keys), Err(Rejection::BadSignature));
    }
    // A key nobody published.
    let err = verify(&signed.bytes, "zw-ffffffffffffffff", &signed.signature, &keys).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_KEY");
    // The key expired before the event was written.
    let mut expired = keys.clone();
    expired.get_mut(zw.key_id()).unwrap().valid_until = Some(Utc::now() - Duration::hours(1));
    assert_eq!(check(&events[0], &expired).unwrap_err().code(), "KEY_NOT_VALID");
}

#[test]
fn a_peer_cannot_sign_for_another_origin_or_outside_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let zw = Arc::new(NodeIdentity::load_or_create("zw", &dir.path().join("zw.key")).unwrap());
    let fr = Arc::new(NodeIdentity::load_or_create("fr", &dir.path().join("fr.key")).unwrap());
    let keys: HashMap<_, _> = [trusted(&zw), trusted(&fr)].into_iter().collect();
    let status = StatusSummary {
        state: State::Online,
        class: Class::Good,
        download_mbps: Some(30.0),
        observed_at: Utc::now(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    let now = Utc::now();
    let event = |origin, site_name| EventToSign {
        origin,
        epoch: "e1",
        seq: 7,
        site_name,
        body: EventBody::Status(&status),
        time: now,
    };
    // fr signs an event claiming to be zw's: refused, though the signature itself is good.
    let forged = OriginSigner::new(fr.clone()).sign(&event("zw", "sites/zw/1"));
    let err = verify(&forged.bytes, &forged.key_id, &forged.signature, &keys).unwrap_err();
    assert_eq!(err.code(), "WRONG_ORIGIN", "{err}");
    // zw signs an event about a site of fr's namespace: refused.
    let outside = OriginSigner::new(zw.clone()).sign(&event("zw", "sites/fr/1"));
    let err = verify(&outside.bytes, &outside.key_id, &outside.signature, &keys).unwrap_err();
    assert_eq!(err.code(), "OUTSIDE_NAMESPACE", "{err}");
    // The honest event verifies, and its bytes are exactly what `encode` gives.
    let honest = OriginSigner::new(zw.clone()).sign(&event("zw", "sites/zw/1"));
    assert_eq!(honest.bytes, encode(&event("zw", "sites/zw/1")));
    let decoded = verify(&honest.bytes, &honest.key_id, &honest.signature, &keys).unwrap();
    assert_eq!(decoded.r#type, i32::from(ChangeType::Status));
    assert_eq!(decoded.status.unwrap().download_mbps, Some(30.0));
}
