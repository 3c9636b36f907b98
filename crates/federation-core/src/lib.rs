//! Federation's foundations: the node's identity and signing key, and signed change events
//! (signing as the store writes them, verifying against trusted keys). Peer trust
//! configuration and the pull/apply loop build on these.

mod digest;
mod events;
mod identity;

pub use digest::sites_hash;
pub use events::{OriginSigner, Rejection, TrustedKey, encode, to_remote, verify};
pub use identity::{IdentityError, NodeIdentity, key_id};
