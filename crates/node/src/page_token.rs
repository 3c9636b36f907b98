//! Opaque AIP-158 page tokens. A token carries the last key of its page and a fingerprint of
//! the request fields it was issued for, so reusing it with other filters is refused instead
//! of silently returning the wrong page; and it is signed (HMAC-SHA256 with a secret derived
//! from the node's key, so every replica of a node accepts the others' tokens), so a token
//! this node did not issue, forged or altered, is refused as INVALID_ARGUMENT.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use hubdir_core::{ViolationReason, Violations};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The bytes of the MAC a token ends with.
const MAC_BYTES: usize = 16;
/// Longer tokens are refused unread (an issued one is far shorter: its key is a site name).
const MAX_TOKEN_BYTES: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Token {
    /// The last key of the previous page.
    after: String,
    /// Fingerprint of the filters.
    filters: String,
}

/// A fingerprint of the request fields a token is bound to, in a fixed order.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Issues and checks this node's page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

impl PageTokens {
    /// Tokens signed with `secret` (a node: derived from its key).
    pub fn new(secret: [u8; 32]) -> PageTokens {
        PageTokens { key: Arc::new(secret) }
    }

    /// Tokens only this process accepts (a process without a node key: tests, tools).
    pub fn ephemeral() -> PageTokens {
        use rand_core::RngCore;
        let mut secret = [0; 32];
        rand_core::OsRng.fill_bytes(&mut secret);
        PageTokens::new(secret)
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_BYTES] {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice()).unwrap_or_else(|_| unreachable!());
        mac.update(payload);
        let mut out = [0; MAC_BYTES];
        out.copy_from_slice(&mac.finalize().into_bytes()[..MAC_BYTES]);
        out
    }

    /// A token for the page after `after`.
    pub fn encode(&self, after: &str, filters: &str) -> String {
        let mut bytes =
            serde_json::to_vec(&Token { after: after.to_owned(), filters: filters.to_owned() }).unwrap_or_default();
        let mac = self.mac(&bytes);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a token; empty means the first page. Errors name the `page_token` field.
    pub fn decode(&self, token: &str, filters: &str) -> Result<Option<String>, Violations> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut out = Violations::default();
        let bytes = (token.len() <= MAX_TOKEN_BYTES).then(|| URL_SAFE_NO_PAD.decode(token).ok()).flatten();
        let signed = bytes.filter(|b| b.len() > MAC_BYTES).and_then(|bytes| {
            let (payload, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
            let genuine = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
                .map(|mut m| {
                    m.update(payload);
                    m.verify_truncated_left(mac).is_ok()
                })
                .unwrap_or(false);
            genuine.then(|| serde_json::from_slice::<Token>(payload).ok()).flatten()
        });
        match signed {
            None => {
                out.push("page_token", ViolationReason::InvalidFormat, "not a page token this node issued");
                Err(out)
            }
            Some(t) if t.filters != filters => {
                out.push(
                    "page_token",
                    ViolationReason::InvalidFormat,
                    "this page token was issued for other filters; start again without a token",
                );
                Err(out)
            }
            Some(t) => Ok(Some(t.after)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_only_with_the_same_filters() {
        let tokens = PageTokens::new([7; 32]);
        let filters = fingerprint(&["ZW", "", "PUBLIC_LIBRARY"]);
        let token = tokens.encode("sites/zw/17", &filters);
        assert_eq!(tokens.decode(&token, &filters).unwrap().as_deref(), Some("sites/zw/17"));
        let other = fingerprint(&["KE", "", "PUBLIC_LIBRARY"]);
        assert_eq!(tokens.decode(&token, &other).unwrap_err().0[0].field, "page_token");
        assert!(tokens.decode("garbage!", &filters).is_err());
        assert!(tokens.decode(&"A".repeat(1 << 20), &filters).is_err());
        // Found by fuzzing: a key of 100 NULs made a token longer than the decoder took.
        let odd = "\0".repeat(1024);
        assert_eq!(tokens.decode(&tokens.encode(&odd, &filters), &filters).unwrap(), Some(odd));
        assert_eq!(tokens.decode("", &filters).unwrap(), None);
    }

    /// Finding 8: tokens were unsigned JSON, so a client could page from any key it liked.
    #[test]
    fn a_forged_or_altered_token_is_refused() {
        let tokens = PageTokens::new([7; 32]);
        let filters = fingerprint(&["ZW"]);
        let forged_json = serde_json::to_vec(&Token { after: "sites/zw/9".into(), filters: filters.clone() }).unwrap();
        let unsigned = URL_SAFE_NO_PAD.encode(&forged_json);
        assert!(tokens.decode(&unsigned, &filters).is_err());
        let mut padded = forged_json.clone();
        padded.extend_from_slice(&[0; MAC_BYTES]);
        assert!(tokens.decode(&URL_SAFE_NO_PAD.encode(&padded), &filters).is_err());
        let other_node = PageTokens::new([8; 32]).encode("sites/zw/9", &filters);
        assert!(tokens.decode(&other_node, &filters).is_err());
        // Another replica of the same node (same secret) accepts it.
        assert!(PageTokens::new([7; 32]).decode(&tokens.encode("sites/zw/9", &filters), &filters).is_ok());
    }

    #[test]
    fn fingerprints_do_not_confuse_field_boundaries() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
