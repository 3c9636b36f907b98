//! A peer's signed event: any bytes, with a signature that does not match, must be refused
//! before they are decoded; any bytes signed by the trusted key are decoded and turned into a
//! store change, or refused with a reason, never a panic.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use ed25519_dalek::{Signer, SigningKey};
use hubdir_federation_core::{Rejection, TrustedKey, to_remote, verify};
use hubdir_store::SignedBytes;
use libfuzzer_sys::fuzz_target;

const KEY_ID: &str = "zw-0011223344556677";

fn key() -> &'static (SigningKey, HashMap<String, TrustedKey>) {
    static KEY: OnceLock<(SigningKey, HashMap<String, TrustedKey>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let trusted = TrustedKey {
            origin: "zw".into(),
            key: signing.verifying_key(),
            valid_from: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            valid_until: None,
        };
        (signing, HashMap::from([(KEY_ID.to_owned(), trusted)]))
    })
}

fuzz_target!(|data: &[u8]| {
    let (signing, keys) = key();
    let Some((&mode, bytes)) = data.split_first() else { return };
    if mode % 2 == 0 {
        // Unsigned garbage: refused by the signature check, whatever it holds.
        let forged = [mode; 64];
        assert_eq!(verify(bytes, KEY_ID, &forged, keys).unwrap_err(), Rejection::BadSignature);
        return;
    }
    let signature = signing.sign(bytes).to_bytes().to_vec();
    if let Ok(event) = verify(bytes, KEY_ID, &signature, keys) {
        assert_eq!(event.origin, "zw");
        let signed = SignedBytes { bytes: bytes.to_vec(), key_id: KEY_ID.into(), signature };
        if let Ok(remote) = to_remote(event, signed) {
            assert!(remote.site_name.starts_with("sites/zw/"));
        }
    }
});
