//! Detached JWS (RFC 7515 Appendix F) with EdDSA/Ed25519 (RFC 8037): sign bytes, verify bytes.
//!
//! Owns the JWS compact form only. What bytes are signed (the canonical form of a forwarded
//! bundle) is decided by [`super::forward`]; which keys exist by [`super::keys`].
//!
//! Signing: protected header `{"alg":"EdDSA","kid":"<kid>"}` (these two members, this order);
//! signing input `BASE64URL(header) || "." || BASE64URL(payload)`; result
//! `BASE64URL(header) || ".." || BASE64URL(signature)` (payload detached, no padding anywhere).
//!
//! Verification refuses: a non-empty payload part (the payload must come from the document, not
//! the JWS), any `alg` but `EdDSA`, a missing `kid`, a `crit` header (no extensions are
//! understood, RFC 7515 §4.1.11), and `b64: false`.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::keys::{JWS_ALG, Jwks, KeyError, SigningKey};

/// Why a signature did not verify. Each variant is one thing a receiver can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the JWS is malformed: {0}")]
    Malformed(String),
    #[error("the JWS alg is {0:?}; expected \"EdDSA\"")]
    Alg(String),
    #[error("the JWS header has no kid")]
    NoKid,
    #[error("key id {kid:?} is not in the JWKS (known: {known:?})")]
    UnknownKid { kid: String, known: Vec<String> },
    #[error("key {kid:?} in the JWKS cannot verify: {reason}")]
    UnusableKey { kid: String, reason: String },
    #[error("the signature does not match the content (key {kid:?})")]
    BadSignature { kid: String },
}

#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
}

/// Detached compact JWS over `payload`.
pub fn sign_detached(key: &SigningKey, payload: &[u8]) -> Result<String, KeyError> {
    let header = serde_json::to_vec(&Header {
        alg: JWS_ALG,
        kid: key.kid(),
    })
    .map_err(|_| KeyError::Sign)?;
    let h = URL_SAFE_NO_PAD.encode(header);
    let input = signing_input(&h, payload);
    let sig = key.sign(&input)?;
    Ok(format!("{h}..{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Verify a detached compact JWS over `payload` against a JWKS; returns the kid that verified.
pub fn verify_detached(jws: &str, payload: &[u8], jwks: &Jwks) -> Result<String, VerifyError> {
    let kid = header_kid(jws)?;
    let mut parts = jws.split('.');
    let (Some(h), Some(_), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed("expected header..signature".into()));
    };
    let jwk = jwks.find(&kid).ok_or_else(|| VerifyError::UnknownKid {
        kid: kid.clone(),
        known: jwks.kids().into_iter().map(String::from).collect(),
    })?;
    let x = jwk.ed25519().map_err(|reason| VerifyError::UnusableKey {
        kid: kid.clone(),
        reason,
    })?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| VerifyError::Malformed(format!("signature is not base64url ({e})")))?;
    UnparsedPublicKey::new(&ED25519, x)
        .verify(&signing_input(h, payload), &sig)
        .map_err(|_| VerifyError::BadSignature { kid: kid.clone() })?;
    Ok(kid)
}

/// Check the JWS shape and header and return its kid (without verifying the signature).
pub fn header_kid(jws: &str) -> Result<String, VerifyError> {
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, payload, s] = parts[..] else {
        return Err(VerifyError::Malformed(format!(
            "{} parts; expected 3 (header..signature)",
            parts.len()
        )));
    };
    if !payload.is_empty() {
        return Err(VerifyError::Malformed(
            "the payload part is not empty; expected a detached payload (header..signature)".into(),
        ));
    }
    if s.is_empty() {
        return Err(VerifyError::Malformed("the signature part is empty".into()));
    }
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|e| VerifyError::Malformed(format!("header is not base64url ({e})")))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| VerifyError::Malformed(format!("header is not a JSON object ({e})")))?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some(JWS_ALG) => {}
        Some(other) => return Err(VerifyError::Alg(other.into())),
        None => return Err(VerifyError::Alg(String::new())),
    }
    if header.contains_key("crit") {
        return Err(VerifyError::Malformed(
            "the header has \"crit\"; no JWS extensions are understood".into(),
        ));
    }
    if header.get("b64") == Some(&serde_json::Value::Bool(false)) {
        return Err(VerifyError::Malformed(
            "\"b64\": false is not supported".into(),
        ));
    }
    header
        .get("kid")
        .and_then(|k| k.as_str())
        .map(String::from)
        .ok_or(VerifyError::NoKid)
}

fn signing_input(header_b64: &str, payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 4);
    input.extend_from_slice(header_b64.as_bytes());
    input.push(b'.');
    input.extend_from_slice(URL_SAFE_NO_PAD.encode(payload).as_bytes());
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::keys::KeyRing;

    fn ring(kid: &str) -> KeyRing {
        KeyRing::new(SigningKey::generate(kid).unwrap().0, Vec::new()).unwrap()
    }

    #[test]
    fn signs_and_verifies_detached() {
        let r = ring("k1");
        let jws = sign_detached(r.signer(), b"payload bytes").unwrap();
        assert!(jws.contains(".."), "{jws}");
        let header = URL_SAFE_NO_PAD
            .decode(jws.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"EdDSA","kid":"k1"}"#);
        assert_eq!(
            verify_detached(&jws, b"payload bytes", &r.jwks()).unwrap(),
            "k1"
        );
    }

    #[test]
    fn refuses_changed_payload_signature_and_unknown_kid() {
        let r = ring("k1");
        let jws = sign_detached(r.signer(), b"payload").unwrap();
        assert_eq!(
            verify_detached(&jws, b"payloaD", &r.jwks()),
            Err(VerifyError::BadSignature { kid: "k1".into() })
        );
        let mut bad = jws.clone().into_bytes();
        let last = bad.len() - 3;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            verify_detached(std::str::from_utf8(&bad).unwrap(), b"payload", &r.jwks()),
            Err(VerifyError::BadSignature { .. }) | Err(VerifyError::Malformed(_))
        ));
        let other = ring("k2");
        assert!(matches!(
            verify_detached(&jws, b"payload", &other.jwks()),
            Err(VerifyError::UnknownKid { kid, known }) if kid == "k1" && known == ["k2"]
        ));
        // Same kid, different key: the signature fails, it is not silently accepted.
        let impostor = ring("k1");
        assert!(matches!(
            verify_detached(&jws, b"payload", &impostor.jwks()),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn refuses_wrong_alg_attached_payload_and_crit() {
        let r = ring("k1");
        let jws = sign_detached(r.signer(), b"p").unwrap();
        let sig = jws.rsplit('.').next().unwrap();
        let forge = |header: &str| format!("{}..{sig}", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(
            verify_detached(&forge(r#"{"alg":"none","kid":"k1"}"#), b"p", &r.jwks()),
            Err(VerifyError::Alg("none".into()))
        );
        assert_eq!(
            verify_detached(&forge(r#"{"alg":"EdDSA"}"#), b"p", &r.jwks()),
            Err(VerifyError::NoKid)
        );
        assert!(matches!(
            verify_detached(
                &forge(r#"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#),
                b"p",
                &r.jwks()
            ),
            Err(VerifyError::Malformed(_))
        ));
        let attached = jws.replace("..", &format!(".{}.", URL_SAFE_NO_PAD.encode("p")));
        assert!(matches!(
            verify_detached(&attached, b"p", &r.jwks()),
            Err(VerifyError::Malformed(m)) if m.contains("detached")
        ));
    }

    #[test]
    fn every_published_key_verifies_after_rotation() {
        let (old, _) = SigningKey::generate("old").unwrap();
        let old_sig = sign_detached(&old, b"x").unwrap();
        let (new, _) = SigningKey::generate("new").unwrap();
        let rotated = KeyRing::new(new, vec![old.public()]).unwrap();
        assert_eq!(
            verify_detached(&old_sig, b"x", &rotated.jwks()).unwrap(),
            "old"
        );
        let new_sig = sign_detached(rotated.signer(), b"x").unwrap();
        assert_eq!(
            verify_detached(&new_sig, b"x", &rotated.jwks()).unwrap(),
            "new"
        );
    }

    #[test]
    fn ed25519_matches_rfc8037_appendix_a4() {
        // RFC 8037 A.1 private key wrapped as PKCS#8 v1 (RFC 8410), A.4 signing input/signature.
        let seed = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let key = SigningKey::from_pkcs8_der("rfc8037", &der).unwrap();
        let input = signing_input("eyJhbGciOiJFZERTQSJ9", b"Example of Ed25519 signing");
        assert_eq!(
            input,
            b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.sign(&input).unwrap()),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }
}
