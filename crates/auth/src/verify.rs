use std::collections::{BTreeSet, HashMap};

use hubdir_core::{Origin, SiteName};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::{AuthConfig, Principal, Scope};

/// The longest token accepted, in bytes; longer ones are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The most clock skew that may be configured.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// A token was refused. The message says why without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token header carries {0}: keys are never taken from a token")]
    KeyInHeader(&'static str),
    #[error("token header has no kid")]
    NoKeyId,
    #[error("token kid is not a key of any trusted issuer")]
    UnknownKey,
    #[error("token typ must be JWT")]
    WrongType,
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("token claims are invalid: {0}")]
    Claims(String),
    #[error("token header marks extensions critical: none are understood")]
    Critical,
    #[error("the token's issuer may not grant origin {0}")]
    OriginNotGranted(String),
    #[error("the token expires {0} s from now; this node accepts at most {1} s (auth.max_token_lifetime_secs)")]
    LivesTooLong(i64, u64),
}

/// The auth configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("auth.issuers[{issuer}].keys[{key}]: cannot read {path}: {source}")]
    Read { issuer: usize, key: usize, path: String, source: std::io::Error },
    #[error("auth.issuers[{issuer}].keys[{key}]: {reason}")]
    Key { issuer: usize, key: usize, reason: String },
    #[error("auth: kid {0:?} is configured twice; key ids must be unique across issuers")]
    DuplicateKid(String),
    #[error("auth.leeway_secs is {0}; more than {MAX_LEEWAY_SECS} s would accept long-expired tokens")]
    Leeway(u64),
}

struct TrustedKey {
    issuer: String,
    audience: String,
    /// Origins the issuer may grant; `None` for any.
    origins: Option<Vec<String>>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens against the configured issuers' keys.
pub struct Verifier {
    keys: HashMap<String, TrustedKey>,
    leeway_secs: u64,
    max_lifetime_secs: u64,
    pub anonymous_discovery: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    sub: String,
    iss: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    sites: Vec<String>,
}

impl Verifier {
    /// Loads every configured key; refuses algorithms other than EdDSA and ES256.
    pub fn from_config(config: &AuthConfig) -> Result<Verifier, ConfigError> {
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(ConfigError::Leeway(config.leeway_secs));
        }
        let mut keys = HashMap::new();
        for (i, issuer) in config.issuers.iter().enumerate() {
            for (k, key) in issuer.keys.iter().enumerate() {
                let pem = std::fs::read(&key.public_key_file).map_err(|source| ConfigError::Read {
                    issuer: i,
                    key: k,
                    path: key.public_key_file.display().to_string(),
                    source,
                })?;
                let bad = |reason: String| ConfigError::Key { issuer: i, key: k, reason };
                let (algorithm, decoding) = match key.algorithm.as_str() {
                    "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
                    "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
                    other => {
                        return Err(bad(format!("algorithm {other:?} is not accepted; use EdDSA or ES256")));
                    }
                };
                let decoding = decoding.map_err(|e| bad(format!("not a {} public key: {e}", key.algorithm)))?;
                let trusted = TrustedKey {
                    issuer: issuer.issuer.clone(),
                    audience: issuer.audience.clone(),
                    origins: (!issuer.origins.iter().any(|o| o == "*")).then(|| issuer.origins.clone()),
                    algorithm,
                    key: decoding,
                };
                if keys.insert(key.kid.clone(), trusted).is_some() {
                    return Err(ConfigError::DuplicateKid(key.kid.clone()));
                }
            }
        }
        Ok(Verifier {
            keys,
            leeway_secs: config.leeway_secs,
            max_lifetime_secs: config.max_token_lifetime_secs,
            anonymous_discovery: config.anonymous_discovery,
        })
    }

    /// Verifies a compact JWS and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.jku.is_some() {
            return Err(AuthError::KeyInHeader("jku"));
        }
        if header.jwk.is_some() {
            return Err(AuthError::KeyInHeader("jwk"));
        }
        if header.x5u.is_some() {
            return Err(AuthError::KeyInHeader("x5u"));
        }
        if header.x5c.is_some() {
            return Err(AuthError::KeyInHeader("x5c"));
        }
        if header.crit.is_some() {
            return Err(AuthError::Critical);
        }
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(AuthError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(AuthError::NoKeyId)?;
        let trusted = self.keys.get(kid).ok_or(AuthError::UnknownKey)?;

        let mut validation = Validation::new(trusted.algorithm);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&[&trusted.audience]);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        // A token valid for centuries is a credential that can never be taken back.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let remaining = data.claims.exp.saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
        let allowed = self.max_lifetime_secs.saturating_add(self.leeway_secs);
        if remaining > i64::try_from(allowed).unwrap_or(i64::MAX) {
            return Err(AuthError::LivesTooLong(remaining, self.max_lifetime_secs));
        }
        let principal = principal_from(data.claims)?;
        // An issuer speaks only for the origins it is trusted with.
        if let Some(granted) = &trusted.origins {
            let origins = principal.origin.iter().chain(principal.sites.iter().map(SiteName::origin));
            for origin in origins {
                if !granted.iter().any(|g| g == origin.as_str()) {
                    return Err(AuthError::OriginNotGranted(origin.to_string()));
                }
            }
        }
        Ok(principal)
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    let Claims { exp: _, sub, iss, scope, origin, operator, sites } = claims;
    if sub.is_empty() {
        return Err(AuthError::Claims("sub is empty".into()));
    }
    let scopes = scope
        .split_whitespace()
        .map(str::parse::<Scope>)
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(AuthError::Claims)?;
    let origin =
        origin.map(|o| o.parse::<Origin>().map_err(|e| AuthError::Claims(format!("origin: {e}")))).transpose()?;
    let sites = sites
        .iter()
        .map(|s| s.parse::<SiteName>().map_err(|e| AuthError::Claims(format!("sites: {e}"))))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(Principal { subject: Some(sub), issuer: Some(iss), scopes, origin, operator, sites })
}
