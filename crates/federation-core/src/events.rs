//! Signed change events: the origin serialises each event as a `hubdir.v1.ChangeEvent` once,
//! signs exactly those bytes, and everyone after (relays included) forwards the same bytes, so
//! any node verifies any event end to end against the origin's published key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use hubdir_core::SiteName;
use hubdir_proto::convert;
use hubdir_proto::v1::{self as pb, ChangeType};
use hubdir_store::{ChangeOp, EventBody, EventSigner, EventToSign, RemoteChange, RemoteEvent, SignedBytes};
use prost::Message;
use std::sync::Arc;

use crate::NodeIdentity;

/// Signs the events of this node's own origin with its key.
#[derive(Debug, Clone)]
pub struct OriginSigner {
    identity: Arc<NodeIdentity>,
}

impl OriginSigner {
    pub fn new(identity: Arc<NodeIdentity>) -> OriginSigner {
        OriginSigner { identity }
    }
}

/// The wire form of an event, as its origin serialises it.
pub fn encode(event: &EventToSign<'_>) -> Vec<u8> {
    let (change_type, site, status) = match event.body {
        EventBody::Upsert(site) => (ChangeType::Upsert, Some(convert::site_to_proto(site.clone())), None),
        EventBody::Delete => (ChangeType::Delete, None, None),
        EventBody::Status(s) => (ChangeType::Status, None, Some(convert::status_change_to_proto(s))),
    };
    pb::ChangeEvent {
        origin: event.origin.to_owned(),
        seq: event.seq,
        site_name: event.site_name.to_owned(),
        r#type: change_type.into(),
        site,
        time: Some(convert::timestamp(event.time)),
        epoch: event.epoch.to_owned(),
        status,
    }
    .encode_to_vec()
}

impl EventSigner for OriginSigner {
    fn sign(&self, event: &EventToSign<'_>) -> SignedBytes {
        let bytes = encode(event);
        let signature = self.identity.sign(&bytes).to_vec();
        SignedBytes { bytes, key_id: self.identity.key_id().to_owned(), signature }
    }
}

/// A public key an origin signs with, and when it is valid.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The origin whose events this key may sign.
    pub origin: String,
    pub key: VerifyingKey,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// Why an event was not accepted. Each is counted by its code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("signed with unknown key {0}")]
    UnknownKey(String),
    #[error("the signature does not match the event's bytes")]
    BadSignature,
    #[error("the event's bytes are not a ChangeEvent")]
    Undecodable,
    #[error("key {key_id} signs for origin {key_origin}, not {event_origin}")]
    WrongOrigin { key_id: String, key_origin: String, event_origin: String },
    #[error("site {site} is outside origin {origin}'s namespace")]
    OutsideNamespace { site: String, origin: String },
    #[error("key {0} was not valid when the event was written")]
    KeyNotValid(String),
    #[error("the event's content is invalid: {0}")]
    InvalidContent(String),
    #[error("peer {peer} may not supply origin {origin}")]
    UntrustedOrigin { peer: String, origin: String },
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownKey(_) => "UNKNOWN_KEY",
            Rejection::BadSignature => "BAD_SIGNATURE",
            Rejection::Undecodable => "UNDECODABLE",
            Rejection::WrongOrigin { .. } => "WRONG_ORIGIN",
            Rejection::OutsideNamespace { .. } => "OUTSIDE_NAMESPACE",
            Rejection::KeyNotValid(_) => "KEY_NOT_VALID",
            Rejection::InvalidContent(_) => "INVALID_CONTENT",
            Rejection::UntrustedOrigin { .. } => "UNTRUSTED_ORIGIN",
        }
    }
}

/// Checks a signed event against the keys a node trusts: the key is known and belongs to the
/// event's origin, the signature covers exactly these bytes, the site is in the origin's
/// namespace, and the key was valid at the event's time. Returns the decoded event.
pub fn verify(
    bytes: &[u8],
    key_id: &str,
    signature: &[u8],
    keys: &HashMap<String, TrustedKey>,
) -> Result<pb::ChangeEvent, Rejection> {
    let trusted = keys.get(key_id).ok_or_else(|| Rejection::UnknownKey(key_id.to_owned()))?;
    let signature = Signature::from_slice(signature).map_err(|_| Rejection::BadSignature)?;
    trusted.key.verify(bytes, &signature).map_err(|_| Rejection::BadSignature)?;
    let event = pb::ChangeEvent::decode(bytes).map_err(|_| Rejection::Undecodable)?;
    if event.origin != trusted.origin {
        return Err(Rejection::WrongOrigin {
            key_id: key_id.to_owned(),
            key_origin: trusted.origin.clone(),
            event_origin: event.origin,
        });
    }
    let in_namespace = event.site_name.parse::<SiteName>().is_ok_and(|n| n.origin().as_str() == event.origin);
    if !in_namespace {
        return Err(Rejection::OutsideNamespace { site: event.site_name, origin: event.origin });
    }
    let time = event.time.as_ref().and_then(convert::from_timestamp).ok_or(Rejection::Undecodable)?;
    if time < trusted.valid_from || trusted.valid_until.is_some_and(|until| time > until) {
        return Err(Rejection::KeyNotValid(key_id.to_owned()));
    }
    Ok(event)
}

/// A verified event in the store's terms, keeping the signed bytes for relaying. An event
/// whose place in the log is readable (origin, time, type) but whose body fails this node's
/// checks becomes [`RemoteChange::Unappliable`]: the origin vouched for it, so it takes its
/// place in the log here and is quarantined, rather than stall the origin's log forever.
pub fn to_remote(event: pb::ChangeEvent, signed: SignedBytes) -> Result<RemoteEvent, Rejection> {
    let invalid = |what: &str| Rejection::InvalidContent(what.to_owned());
    let origin = event.origin.parse().map_err(|_| invalid("origin"))?;
    let time = event.time.as_ref().and_then(convert::from_timestamp).ok_or_else(|| invalid("time"))?;
    let unappliable = |op: ChangeOp, reason: String| RemoteChange::Unappliable { op, reason };
    let change = match ChangeType::try_from(event.r#type).map_err(|_| invalid("type"))? {
        ChangeType::Upsert => match event.site.map(convert::site_from_proto) {
            None => unappliable(ChangeOp::Upsert, "no site".into()),
            Some(Err(violations)) => unappliable(ChangeOp::Upsert, violations.to_string()),
            Some(Ok((site, _))) if site.name.to_string() != event.site_name => {
                unappliable(ChangeOp::Upsert, "site.name differs from site_name".into())
            }
            Some(Ok((site, _))) => RemoteChange::Upsert(Box::new(site)),
        },
        ChangeType::Delete => RemoteChange::Delete,
        ChangeType::Status => match event.status.as_ref().map(convert::status_change_from_proto) {
            None => unappliable(ChangeOp::Status, "no status".into()),
            Some(Err(why)) => unappliable(ChangeOp::Status, why.to_owned()),
            Some(Ok(status)) => RemoteChange::Status(status),
        },
        ChangeType::Unspecified => return Err(invalid("type")),
    };
    Ok(RemoteEvent { origin, seq: event.seq, epoch: event.epoch, site_name: event.site_name, change, time, signed })
}
