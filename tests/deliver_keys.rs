//! Keys as operators make them: OpenSSL-generated Ed25519 files (PKCS#8 PEM and DER private
//! keys, SPKI PEM public key) load through the `[signing]` configuration, sign, and verify
//! against the published JWKS, including the public-only key kept for rotation.

use std::path::PathBuf;

use pqom_gateway::deliver::keys::{KeyRing, SigningConfig};
use pqom_gateway::deliver::signing::{sign_detached, verify_detached};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/deliver_fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn openssl_keys_load_sign_and_verify() {
    let data = tempfile::tempdir().unwrap();
    let cfg: SigningConfig = toml::from_str(&format!(
        r#"
active = "pem"
[[keys]]
kid = "pem"
private_key = "{}"
[[keys]]
kid = "der"
private_key = "{}"
[[keys]]
kid = "pub"
public_key = "{}"
"#,
        fixture("openssl-ed25519.pem"),
        fixture("openssl-ed25519.der"),
        fixture("openssl-ed25519.pub.pem"),
    ))
    .unwrap();
    let ring = KeyRing::load(&cfg, data.path()).unwrap();
    let jwks = ring.jwks();
    assert_eq!(jwks.kids(), ["pem", "der", "pub"]);
    // The three files hold one key pair: the same public key under three kids.
    let x: Vec<[u8; 32]> = jwks.keys.iter().map(|k| k.ed25519().unwrap()).collect();
    assert!(x.iter().all(|k| *k == x[0]));
    let jws = sign_detached(ring.signer(), b"forwarded bundle").unwrap();
    assert_eq!(
        verify_detached(&jws, b"forwarded bundle", &jwks).unwrap(),
        "pem"
    );
    // After rotation the old kid is kept as a public key only; what it signed still verifies.
    let rotated: SigningConfig = toml::from_str(&format!(
        r#"
[[keys]]
kid = "next"
private_key = "{}"
[[keys]]
kid = "pem"
public_key = "{}"
"#,
        fixture("openssl-ed25519.der"),
        fixture("openssl-ed25519.pub.pem"),
    ))
    .unwrap();
    let rotated = KeyRing::load(&rotated, data.path()).unwrap();
    assert_eq!(rotated.signer().kid(), "next");
    assert_eq!(
        verify_detached(&jws, b"forwarded bundle", &rotated.jwks()).unwrap(),
        "pem"
    );
}
