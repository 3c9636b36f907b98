//! Bearer tokens, header and claims, before and after the signature check: nothing but a
//! token signed by the trusted key is accepted, and nothing panics.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use hubdir_auth::{AuthConfig, IssuerConfig, KeyConfig, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let (_, public) = hubdir_auth::dev::generate_ed25519().expect("a key");
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(public.as_bytes()).expect("write key");
        let (_, path) = file.keep().expect("keep key file");
        let config = AuthConfig {
            issuers: vec![IssuerConfig {
                issuer: "iss".into(),
                audience: "aud".into(),
                origins: vec!["zw".into()],
                keys: vec![KeyConfig { kid: "k1".into(), algorithm: "EdDSA".into(), public_key_file: path }],
            }],
            ..AuthConfig::default()
        };
        Verifier::from_config(&config).expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    // The private key was thrown away: no input can carry a valid signature.
    assert!(verifier().verify(token).is_err(), "{token:?} was accepted");
});
