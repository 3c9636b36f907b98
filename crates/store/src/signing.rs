//! Signing change-log events as they are written. The store knows no wire format and no key:
//! an [`EventSigner`] (the node's, from the federation crate) turns each event into the exact
//! bytes its origin vouches for, and the store keeps those bytes with the key id and the
//! signature, in the same transaction as the write.

use chrono::{DateTime, Utc};
use hubdir_core::Site;
use hubdir_core::connectivity::StatusSummary;

/// What an event says.
#[derive(Debug, Clone, Copy)]
pub enum EventBody<'a> {
    Upsert(&'a Site),
    Delete,
    Status(&'a StatusSummary),
}

/// One change-log event about to be written.
#[derive(Debug, Clone, Copy)]
pub struct EventToSign<'a> {
    pub origin: &'a str,
    /// The origin log's epoch.
    pub epoch: &'a str,
    pub seq: u64,
    pub site_name: &'a str,
    pub body: EventBody<'a>,
    pub time: DateTime<Utc>,
}

/// An event as its origin serialised and signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBytes {
    pub bytes: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// Signs events for the origins this node owns.
pub trait EventSigner: Send + Sync + std::fmt::Debug {
    fn sign(&self, event: &EventToSign<'_>) -> SignedBytes;
}

/// The change-log row of an event, signed if the store has a signer.
pub(crate) fn event_row(
    signer: Option<&dyn EventSigner>,
    event: EventToSign<'_>,
    payload: Option<Vec<u8>>,
) -> crate::entity::change_log::ActiveModel {
    use sea_orm::ActiveValue::Set;
    let op = match event.body {
        EventBody::Upsert(_) => "UPSERT",
        EventBody::Delete => "DELETE",
        EventBody::Status(_) => "STATUS",
    };
    let signed = signer.map(|s| s.sign(&event));
    crate::entity::change_log::ActiveModel {
        origin: Set(event.origin.to_owned()),
        seq: Set(event.seq as i64),
        site_name: Set(event.site_name.to_owned()),
        op: Set(op.to_owned()),
        payload: Set(payload),
        event_time_us: Set(crate::to_micros(event.time)),
        key_id: Set(signed.as_ref().map(|s| s.key_id.clone())),
        signature: Set(signed.as_ref().map(|s| s.signature.clone())),
        event_bytes: Set(signed.map(|s| s.bytes)),
    }
}
