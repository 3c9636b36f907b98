//! Federation's foundations: the node's identity and signing key. Signed change events, peer
//! trust and the pull/apply loop build on it.

mod identity;

pub use identity::{IdentityError, NodeIdentity, key_id};
