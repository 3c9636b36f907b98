//! Opaque AIP-158 page tokens. A token carries the last key of its page and a fingerprint of
//! the request fields it was issued for, so reusing it with other filters is refused instead
//! of silently returning the wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hubdir_core::{ViolationReason, Violations};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// Encodes a token for the page after `after`.
pub fn encode(after: &str, filters: &str) -> String {
    let json = serde_json::to_vec(&Token { after: after.to_owned(), filters: filters.to_owned() }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a token; empty means the first page. Errors name the `page_token` field.
pub fn decode(token: &str, filters: &str) -> Result<Option<String>, Violations> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut out = Violations::default();
    let parsed = URL_SAFE_NO_PAD.decode(token).ok().and_then(|bytes| serde_json::from_slice::<Token>(&bytes).ok());
    match parsed {
        None => {
            out.push("page_token", ViolationReason::InvalidFormat, "not a page token this server issued");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_only_with_the_same_filters() {
        let filters = fingerprint(&["ZW", "", "PUBLIC_LIBRARY"]);
        let token = encode("sites/zw/17", &filters);
        assert_eq!(decode(&token, &filters).unwrap().as_deref(), Some("sites/zw/17"));
        let other = fingerprint(&["KE", "", "PUBLIC_LIBRARY"]);
        assert_eq!(decode(&token, &other).unwrap_err().0[0].field, "page_token");
        assert!(decode("garbage!", &filters).is_err());
        assert_eq!(decode("", &filters).unwrap(), None);
    }

    #[test]
    fn fingerprints_do_not_confuse_field_boundaries() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
