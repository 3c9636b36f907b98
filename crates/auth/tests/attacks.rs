//! The token attack matrix: every forged, tampered, confused or malformed token is refused,
//! and the honest ones (including one expired within the leeway) pass.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use hubdir_auth::{AuthConfig, IssuerConfig, KeyConfig, Scope, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISS: &str = "https://id.zimpost.example";
const AUD: &str = "hubdir:zw";

struct Fixture {
    verifier: Verifier,
    trusted: SigningKey,
    attacker: SigningKey,
    trusted_public_pem: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = hubdir_auth::dev::generate_ed25519().unwrap();
    let (attacker_private, _) = hubdir_auth::dev::generate_ed25519().unwrap();
    let public_file = dir.path().join("k1.pub.pem");
    std::fs::write(&public_file, &public).unwrap();
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            issuer: ISS.into(),
            audience: AUD.into(),
            origins: vec!["zw".into()],
            keys: vec![KeyConfig { kid: "k1".into(), algorithm: "EdDSA".into(), public_key_file: public_file }],
        }],
        ..AuthConfig::default()
    };
    Fixture {
        verifier: Verifier::from_config(&config).unwrap(),
        trusted: SigningKey::from_pkcs8_pem(&private).unwrap(),
        attacker: SigningKey::from_pkcs8_pem(&attacker_private).unwrap(),
        trusted_public_pem: public,
        _dir: dir,
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "zimpost-publisher", "iat": now(), "exp": now() + 600,
        "scope": "sites.write", "origin": "zw", "operator": "ZimPost",
    })
}

fn header() -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
}

/// Signs `header.payload` with Ed25519 exactly as given.
fn signed(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn with(base: Value, key: &str, value: Value) -> Value {
    let mut v = base;
    v[key] = value;
    v
}

fn without(base: Value, key: &str) -> Value {
    let mut v = base;
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn honest_tokens_pass() {
    let f = fixture();
    let principal = f.verifier.verify(&signed(&f.trusted, &header(), &claims())).unwrap();
    assert_eq!(principal.subject.as_deref(), Some("zimpost-publisher"));
    assert!(principal.scopes.contains(&Scope::SitesWrite));
    assert_eq!(principal.origin.unwrap().as_str(), "zw");
    // Expired 10 s ago: within the 30 s leeway for clock skew.
    let skewed = with(claims(), "exp", json!(now() - 10));
    assert!(f.verifier.verify(&signed(&f.trusted, &header(), &skewed)).is_ok());
    // Without typ is fine too; the dev issuer's own tokens verify.
    assert!(f.verifier.verify(&signed(&f.trusted, &without(header(), "typ"), &claims())).is_ok());
}

#[test]
fn every_attack_is_refused() {
    let f = fixture();
    let good = signed(&f.trusted, &header(), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let other = signed(&f.trusted, &header(), &with(claims(), "sub", json!("someone-else")));
    let hmac = |secret: &[u8], kid: &str| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(secret)).unwrap()
    };
    let unsigned = |h: Value| format!("{}.{}.", b64(&h), b64(&claims()));

    // Each attack with the refusal it must meet: a case refused for another reason (say, a
    // wrong-audience token refused only because its signature broke) proves nothing.
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "Malformed"),
        ("not a jwt", "not-a-jwt".into(), "Malformed"),
        ("two segments", format!("{}.{}", parts[0], parts[1]), "Malformed"),
        ("four segments", format!("{good}.extra"), "Invalid"),
        ("header not base64", format!("!!!.{}.{}", parts[1], parts[2]), "Malformed"),
        ("header not json", format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("{not json"), parts[1], parts[2]), "Malformed"),
        (
            "payload not json",
            format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode("[1,2"), parts[2]),
            "InvalidSignature",
        ),
        ("signature not base64", format!("{}.{}.***", parts[0], parts[1]), "Invalid"),
        ("alg none", unsigned(json!({"alg": "none", "typ": "JWT"})), "Malformed"),
        ("alg none with kid", unsigned(json!({"alg": "none", "typ": "JWT", "kid": "k1"})), "Malformed"),
        (
            "HS256 keyed with the public key (confusion)",
            hmac(f.trusted_public_pem.as_bytes(), "k1"),
            "InvalidAlgorithm",
        ),
        ("HS256 with a guessed secret", hmac(b"secret", "k1"), "InvalidAlgorithm"),
        (
            "RS256 header on an EdDSA key",
            signed(&f.trusted, &with(header(), "alg", json!("RS256")), &claims()),
            "InvalidAlgorithm",
        ),
        (
            "ES256 header on an EdDSA key",
            signed(&f.trusted, &with(header(), "alg", json!("ES256")), &claims()),
            "InvalidAlgorithm",
        ),
        ("unknown kid", signed(&f.trusted, &with(header(), "kid", json!("k2")), &claims()), "UnknownKey"),
        (
            "path traversal kid",
            signed(&f.trusted, &with(header(), "kid", json!("../../../../dev/null")), &claims()),
            "UnknownKey",
        ),
        ("sql kid", signed(&f.trusted, &with(header(), "kid", json!("' OR 1=1 --")), &claims()), "UnknownKey"),
        ("no kid", signed(&f.trusted, &without(header(), "kid"), &claims()), "NoKeyId"),
        (
            "jku header",
            signed(&f.trusted, &with(header(), "jku", json!("https://evil.example/jwks")), &claims()),
            "KeyInHeader(\"jku\")",
        ),
        (
            "x5u header",
            signed(&f.trusted, &with(header(), "x5u", json!("https://evil.example/cert")), &claims()),
            "KeyInHeader(\"x5u\")",
        ),
        (
            "jwk header with the attacker's key",
            signed(
                &f.attacker,
                &with(
                    header(),
                    "jwk",
                    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(f.attacker.verifying_key().to_bytes())}),
                ),
                &claims(),
            ),
            "KeyInHeader(\"jwk\")",
        ),
        ("x5c header", signed(&f.trusted, &with(header(), "x5c", json!(["MIIB"])), &claims()), "KeyInHeader(\"x5c\")"),
        ("typ not JWT", signed(&f.trusted, &with(header(), "typ", json!("evil+jwt")), &claims()), "WrongType"),
        (
            "signed by an untrusted key under a trusted kid",
            signed(&f.attacker, &header(), &claims()),
            "InvalidSignature",
        ),
        (
            "payload altered after signing",
            format!("{}.{}.{}", parts[0], b64(&with(claims(), "sub", json!("admin"))), parts[2]),
            "InvalidSignature",
        ),
        (
            // One character off: 85 characters can never be base64url. (Four off left a
            // length that decodes whenever the new last character's spare bits happen to be
            // zero, one token in sixteen: a flake CI found.)
            "signature truncated",
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 1]),
            "Base64 error",
        ),
        (
            "signature spliced from another token",
            format!("{}.{}.{}", parts[0], parts[1], other.split('.').nth(2).unwrap()),
            "InvalidSignature",
        ),
        ("missing iss", signed(&f.trusted, &header(), &without(claims(), "iss")), "missing field `iss`"),
        (
            "wrong iss",
            signed(&f.trusted, &header(), &with(claims(), "iss", json!("https://evil.example"))),
            "InvalidIssuer",
        ),
        ("missing aud", signed(&f.trusted, &header(), &without(claims(), "aud")), "Missing required claim: aud"),
        ("wrong aud", signed(&f.trusted, &header(), &with(claims(), "aud", json!("hubdir:ke"))), "InvalidAudience"),
        ("missing exp", signed(&f.trusted, &header(), &without(claims(), "exp")), "missing field `exp`"),
        (
            "expired beyond leeway",
            signed(&f.trusted, &header(), &with(claims(), "exp", json!(now() - 120))),
            "ExpiredSignature",
        ),
        (
            "exp as a string",
            signed(&f.trusted, &header(), &with(claims(), "exp", json!((now() + 600).to_string()))),
            "Invalid",
        ),
        (
            "nbf in the future",
            signed(&f.trusted, &header(), &with(claims(), "nbf", json!(now() + 600))),
            "ImmatureSignature",
        ),
        ("nbf as a string", signed(&f.trusted, &header(), &with(claims(), "nbf", json!(now().to_string()))), "Invalid"),
        ("missing sub", signed(&f.trusted, &header(), &without(claims(), "sub")), "missing field `sub`"),
        ("empty sub", signed(&f.trusted, &header(), &with(claims(), "sub", json!(""))), "Claims(\"sub is empty\")"),
        (
            "unknown scope",
            signed(&f.trusted, &header(), &with(claims(), "scope", json!("sites.write admin"))),
            "Claims",
        ),
        (
            "malformed origin claim",
            signed(&f.trusted, &header(), &with(claims(), "origin", json!("ZW/../x"))),
            "Claims(\"origin",
        ),
        (
            "critical header extension",
            signed(&f.trusted, &with(header(), "crit", json!(["exp"])), &claims()),
            "Critical",
        ),
        (
            "origin the issuer may not grant",
            signed(&f.trusted, &header(), &with(claims(), "origin", json!("ke"))),
            "OriginNotGranted(\"ke\")",
        ),
        (
            "agent sites of an origin the issuer may not grant",
            signed(
                &f.trusted,
                &header(),
                &with(with(claims(), "scope", json!("connectivity.report")), "sites", json!(["sites/ke/1"])),
            ),
            "OriginNotGranted(\"ke\")",
        ),
        (
            "oversized header",
            signed(&f.trusted, &with(header(), "pad", json!("x".repeat(9000))), &claims()),
            "TooLarge",
        ),
        // Finding 8 of the adversarial test: a token valid until the year 5000 was accepted.
        (
            "exp in the year 5000",
            signed(&f.trusted, &header(), &with(claims(), "exp", json!(95_617_584_000i64))),
            "LivesTooLong",
        ),
        (
            "exp a day past the maximum lifetime",
            signed(&f.trusted, &header(), &with(claims(), "exp", json!(now() + 91 * 24 * 3600))),
            "LivesTooLong",
        ),
    ];
    assert!(cases.len() >= 30, "the matrix shrank to {}", cases.len());
    let mut wrong = Vec::new();
    for (name, token, expected) in &cases {
        match f.verifier.verify(token) {
            Ok(principal) => wrong.push(format!("{name}: ACCEPTED {principal:?}")),
            Err(err) if !format!("{err:?}").contains(expected) => {
                wrong.push(format!("{name}: refused as {err:?}, expected {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "attacks not refused for their own reason:\n{}", wrong.join("\n"));
}

#[test]
fn a_huge_leeway_cannot_be_configured() {
    let config = AuthConfig { leeway_secs: 864_000, ..AuthConfig::default() };
    assert!(Verifier::from_config(&config).unwrap_err().to_string().contains("leeway_secs"));
}

#[test]
fn rsa_and_hmac_keys_cannot_be_configured() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.pem");
    std::fs::write(&file, "irrelevant").unwrap();
    for algorithm in ["RS256", "HS256", "none", "PS256"] {
        let config = AuthConfig {
            issuers: vec![IssuerConfig {
                issuer: ISS.into(),
                audience: AUD.into(),
                origins: vec![],
                keys: vec![KeyConfig { kid: "k".into(), algorithm: algorithm.into(), public_key_file: file.clone() }],
            }],
            ..AuthConfig::default()
        };
        let err = Verifier::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("auth.issuers[0].keys[0]"), "{algorithm}: {err}");
    }
}

#[test]
fn dev_tokens_verify_and_carry_their_grants() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = hubdir_auth::dev::generate_ed25519().unwrap();
    let public_file = dir.path().join("dev.pub.pem");
    std::fs::write(&public_file, &public).unwrap();
    let verifier = Verifier::from_config(&AuthConfig {
        issuers: vec![IssuerConfig {
            issuer: "dev".into(),
            audience: "hubdir".into(),
            origins: vec!["zw".into()],
            keys: vec![KeyConfig { kid: "dev-1".into(), algorithm: "EdDSA".into(), public_key_file: public_file }],
        }],
        ..AuthConfig::default()
    })
    .unwrap();
    let claims = hubdir_auth::dev::TokenClaims {
        iss: "dev".into(),
        aud: "hubdir".into(),
        sub: "agent-7".into(),
        iat: now(),
        exp: now() + 60,
        scope: "connectivity.report".into(),
        origin: None,
        operator: None,
        sites: vec!["sites/zw/a".into()],
    };
    let token = hubdir_auth::dev::issue(private.as_bytes(), "dev-1", &claims).unwrap();
    let principal = verifier.verify(&token).unwrap();
    assert!(principal.require_agent_for(&"sites/zw/a".parse().unwrap()).is_ok());
    assert!(principal.require_agent_for(&"sites/zw/b".parse().unwrap()).is_err());
    // The first fixture's verifier does not know this issuer's key.
    assert!(f.verifier.verify(&token).is_err());
}

/// Finding 8: a token whose operator claim is empty matched every site without an operator.
#[test]
fn an_empty_operator_claim_publishes_nothing() {
    let f = fixture();
    let token = signed(&f.trusted, &header(), &with(claims(), "operator", json!("")));
    let principal = f.verifier.verify(&token).unwrap();
    let site = "sites/zw/1".parse().unwrap();
    let denied = principal.require_publisher_of(&site, "").unwrap_err();
    assert!(denied.to_string().contains("operator claim is empty"), "{denied}");
    // A lifetime within the maximum still passes.
    let long = signed(&f.trusted, &header(), &with(claims(), "exp", json!(now() + 89 * 24 * 3600)));
    assert!(f.verifier.verify(&long).is_ok());
}
