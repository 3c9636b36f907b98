//! Who is calling, and what they may do.
//!
//! Tokens are JWTs signed with EdDSA (Ed25519) or ES256; RSA and HMAC are refused (RSA through
//! the `rsa` crate has an unfixed advisory, and a shared secret cannot be published). Keys are
//! configured per issuer and looked up by `kid` in a fixed map; the algorithm is pinned by the
//! key, never taken from the token. `iss`, `aud`, `sub` and `exp` are required.
//!
//! The [`Authenticator`] interceptor turns the `authorization: Bearer` header into a
//! [`Principal`] (anonymous without a header, UNAUTHENTICATED for a bad token); each RPC then
//! asks the principal for what it needs ([`Principal::require_any`],
//! [`Principal::require_publisher_of`]).

mod config;
pub mod dev;
mod interceptor;
mod principal;
mod scope;
mod verify;

pub use config::{AuthConfig, IssuerConfig, KeyConfig};
pub use interceptor::{Authenticator, principal};
pub use principal::{Denied, Principal};
pub use scope::Scope;
pub use verify::{AuthError, ConfigError, Verifier};
