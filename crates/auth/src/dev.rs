//! Development key tooling behind `hubdir token`: make an Ed25519 key pair, issue tokens.
//! Production issuers use their own identity provider; hubdir only needs their public keys.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// A new Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_ed25519() -> Result<(String, String), String> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let public = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}

/// A new ECDSA P-256 key pair (ES256) as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_es256() -> Result<(String, String), String> {
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let public = key.public_key().to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}

/// What a dev token says.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
}

/// Signs `claims` with a private key (PKCS#8 PEM) under `kid`: EdDSA for an Ed25519 key,
/// ES256 for a P-256 key.
pub fn issue(private_pem: &[u8], kid: &str, claims: &TokenClaims) -> Result<String, String> {
    let is_ed25519 = SigningKey::from_pkcs8_pem(&String::from_utf8_lossy(private_pem)).is_ok();
    let (key, algorithm) = if is_ed25519 {
        (EncodingKey::from_ed_pem(private_pem).map_err(|e| e.to_string())?, Algorithm::EdDSA)
    } else {
        let key = EncodingKey::from_ec_pem(private_pem)
            .map_err(|e| format!("not an Ed25519 or P-256 private key (PKCS#8 PEM): {e}"))?;
        (key, Algorithm::ES256)
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
}
