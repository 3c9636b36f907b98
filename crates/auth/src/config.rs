use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[auth]` section of a node's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether DiscoveryService (and ConnectivityService.GetStatus) answer without a token.
    pub anonymous_discovery: bool,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 300).
    pub leeway_secs: u64,
    /// Tokens that expire further ahead than this are refused, in seconds: issue peers'
    /// and agents' tokens for at most this long, and renew them.
    pub max_token_lifetime_secs: u64,
    /// Token issuers this node trusts. With none, every write is refused.
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_discovery: true,
            leeway_secs: 30,
            max_token_lifetime_secs: 90 * 24 * 3600,
            issuers: Vec::new(),
        }
    }
}

/// One trusted issuer and its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry to be accepted here.
    pub audience: String,
    /// The origins this issuer may grant in `origin` and `sites` claims; `"*"` for any.
    /// Empty: its tokens may read, but may not publish or report for any origin.
    #[serde(default)]
    pub origins: Vec<String>,
    pub keys: Vec<KeyConfig>,
}

/// One public key. `kid` values are unique across all issuers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    /// `EdDSA` (Ed25519) or `ES256`.
    pub algorithm: String,
    /// PEM file with the public key (SubjectPublicKeyInfo).
    pub public_key_file: PathBuf,
}
