//! Signing keys: Ed25519 key pairs from configuration, rotation, the development key, and the
//! JWKS that publishes the public halves.
//!
//! Owns loading keys (PKCS#8 PEM or DER private keys, SPKI PEM or DER public keys, each with a
//! `kid`), choosing the one key that signs, generating a development key on first run, and the
//! JWKS document served at `/.well-known/jwks.json`. It must not sign or verify documents (that is
//! [`super::signing`]) and does no I/O after [`KeyRing::load`].
//!
//! Rotation: every configured key is published and accepted for verification; exactly one (the
//! `active` kid, or the first private key) signs. To rotate, add the new key, make it active,
//! keep the old one listed (its private half may be replaced by `public_key`) until every bundle it
//! signed has been verified by its receivers, then remove it: a key removed from the
//! configuration is retired and no longer verifies.
//!
//! ```toml
//! [signing]
//! active = "pqom-2026-11"
//! [[signing.keys]]
//! kid = "pqom-2026-11"
//! private_key = "/etc/pqom/keys/2026-11.pem"   # openssl genpkey -algorithm ed25519
//! [[signing.keys]]
//! kid = "pqom-2026-05"
//! public_key = "/etc/pqom/keys/2026-05.pub.pem" # openssl pkey -pubout
//! ```
//!
//! With no keys configured, a development key is generated into `{data_dir}/keys/` (mode 0600)
//! on first run and reused afterwards; its kid is `dev-` plus the start of its RFC 7638 JWK
//! thumbprint, so it is stable across restarts.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// JOSE algorithm name for Ed25519 signatures (RFC 8037).
pub const JWS_ALG: &str = "EdDSA";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Development key file name inside `{data_dir}/keys/`.
pub const DEV_KEY_FILE: &str = "dev-ed25519.pem";

/// The `[signing]` configuration section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// kid of the key that signs. Default: the first key with a private key file.
    #[serde(default)]
    pub active: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// One configured key: a private key (can sign) or a public key only (verifies, for rotation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the development key {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("key {kid:?}: {reason}")]
    Config { kid: String, reason: String },
    #[error("signing configuration: {0}")]
    Invalid(String),
    #[error("cannot generate a key pair")]
    Generate,
    #[error("Ed25519 signing failed")]
    Sign,
}

/// A key pair that signs, with its kid.
pub struct SigningKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// From an unencrypted PKCS#8 (v1 or v2) Ed25519 private key in DER.
    pub fn from_pkcs8_der(kid: impl Into<String>, der: &[u8]) -> Result<SigningKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an unencrypted PKCS#8 Ed25519 private key ({e})"))?;
        Ok(SigningKey {
            kid: kid.into(),
            pair,
        })
    }

    /// A fresh random key (development key, tests) and its PKCS#8 v2 DER.
    pub fn generate(kid: impl Into<String>) -> Result<(SigningKey, Vec<u8>), KeyError> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let der = doc.as_ref().to_vec();
        let key = SigningKey::from_pkcs8_der(kid, &der).map_err(|_| KeyError::Generate)?;
        Ok((key, der))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            x: self.public_key(),
        }
    }

    /// Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<[u8; 64], KeyError> {
        let sig = self.pair.try_sign(msg).map_err(|_| KeyError::Sign)?;
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        Ok(out)
    }

    /// PKCS#8 v1 DER of the private key (for writing key files in tests and tools).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
            self.pair.as_der().map_err(|_| KeyError::Generate)?;
        Ok(der.as_ref().to_vec())
    }
}

/// A public key that verifies, with its kid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Raw 32-byte Ed25519 public key.
    pub x: [u8; 32],
}

impl PublicKey {
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(self.x)),
            kid: Some(self.kid.clone()),
            alg: Some(JWS_ALG.into()),
            key_use: Some("sig".into()),
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): members `crv`, `kty`, `x` in that order.
    pub fn thumbprint(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.x);
        let input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
    }
}

/// One JSON Web Key (RFC 7517). Only OKP/Ed25519 keys are produced; others may be read (and are
/// reported as unusable when their kid is asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

impl Jwk {
    /// The Ed25519 public key this JWK holds, or why it cannot verify an EdDSA signature.
    pub fn ed25519(&self) -> Result<[u8; 32], String> {
        if self.kty != "OKP" || self.crv.as_deref() != Some("Ed25519") {
            return Err(format!(
                "key type is kty={:?} crv={:?}; expected kty=\"OKP\" crv=\"Ed25519\"",
                self.kty, self.crv
            ));
        }
        if let Some(alg) = &self.alg
            && alg != JWS_ALG
        {
            return Err(format!("key is for alg {alg:?}; expected {JWS_ALG:?}"));
        }
        if let Some(u) = &self.key_use
            && u != "sig"
        {
            return Err(format!("key use is {u:?}; expected \"sig\""));
        }
        let x = self.x.as_deref().ok_or("key has no \"x\"")?;
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|e| format!("\"x\" is not base64url ({e})"))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("\"x\" is {} bytes; expected 32", bytes.len()))
    }
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }
}

/// The gateway's keys: one signs, all verify.
#[derive(Debug)]
pub struct KeyRing {
    signer: SigningKey,
    verifiers: Vec<PublicKey>,
    development: bool,
}

impl KeyRing {
    /// Load the configured keys, or the development key from `data_dir` (generating it on first
    /// run) when none are configured.
    pub fn load(config: &SigningConfig, data_dir: &Path) -> Result<KeyRing, KeyError> {
        if config.keys.is_empty() {
            if let Some(kid) = &config.active {
                return Err(KeyError::Invalid(format!(
                    "active = {kid:?} but no [[signing.keys]] are configured"
                )));
            }
            let signer = load_or_create_dev_key(&data_dir.join("keys"))?;
            tracing::warn!(
                kid = signer.kid(),
                "no signing keys configured: signing with a development key from the data directory; \
                 configure [[signing.keys]] before production"
            );
            let mut ring = KeyRing::new(signer, Vec::new())?;
            ring.development = true;
            return Ok(ring);
        }
        let mut signers = Vec::new();
        let mut publics = Vec::new();
        for k in &config.keys {
            check_kid(&k.kid)?;
            match (&k.private_key, &k.public_key) {
                (Some(path), None) => {
                    let der = read_pem_or_der(path, "PRIVATE KEY")?;
                    let key = SigningKey::from_pkcs8_der(&k.kid, &der).map_err(|reason| {
                        KeyError::Format {
                            path: path.clone(),
                            reason,
                        }
                    })?;
                    signers.push(key);
                }
                (None, Some(path)) => {
                    let der = read_pem_or_der(path, "PUBLIC KEY")?;
                    let x = parse_spki(&der).map_err(|reason| KeyError::Format {
                        path: path.clone(),
                        reason,
                    })?;
                    publics.push(PublicKey {
                        kid: k.kid.clone(),
                        x,
                    });
                }
                _ => {
                    return Err(KeyError::Config {
                        kid: k.kid.clone(),
                        reason: "give exactly one of private_key or public_key".into(),
                    });
                }
            }
        }
        let active = match &config.active {
            Some(kid) => signers.iter().position(|s| &s.kid == kid).ok_or_else(|| {
                KeyError::Invalid(format!(
                    "active = {kid:?} is not a configured key with a private_key"
                ))
            })?,
            None if signers.is_empty() => {
                return Err(KeyError::Invalid(
                    "no key with a private_key is configured; one is needed to sign".into(),
                ));
            }
            None => 0,
        };
        let signer = signers.remove(active);
        let mut verifiers: Vec<PublicKey> = signers.iter().map(SigningKey::public).collect();
        verifiers.extend(publics);
        KeyRing::new(signer, verifiers)
    }

    /// A ring from keys in memory: `signer` signs; it and `others` verify. Kids must be unique.
    pub fn new(signer: SigningKey, others: Vec<PublicKey>) -> Result<KeyRing, KeyError> {
        let mut verifiers = vec![signer.public()];
        for k in others {
            if verifiers.iter().any(|v| v.kid == k.kid) {
                return Err(KeyError::Invalid(format!(
                    "kid {:?} is configured twice",
                    k.kid
                )));
            }
            verifiers.push(k);
        }
        Ok(KeyRing {
            signer,
            verifiers,
            development: false,
        })
    }

    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Every key that verifies, the signing key first.
    pub fn verifiers(&self) -> &[PublicKey] {
        &self.verifiers
    }

    /// True when signing with the generated development key.
    pub fn is_development(&self) -> bool {
        self.development
    }

    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.verifiers.iter().map(PublicKey::to_jwk).collect(),
        }
    }
}

/// The body of `GET /.well-known/jwks.json` (`application/jwk-set+json` or `application/json`).
pub fn jwks_document(ring: &KeyRing) -> serde_json::Value {
    // Serialising these plain string structs cannot fail.
    serde_json::to_value(ring.jwks()).unwrap_or_else(|_| serde_json::json!({ "keys": [] }))
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::Config {
            kid: kid.into(),
            reason: "kid must be 1 to 128 characters from A-Z a-z 0-9 - _ . :".into(),
        })
    }
}

fn read_pem_or_der(path: &Path, label: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    decode_pem(&bytes, label).map_err(|reason| KeyError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// The DER inside the first `-----BEGIN {label}-----` block.
pub fn decode_pem(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "neither DER nor PEM text".to_string())?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no \"{begin}\" block (encrypted keys are not supported)"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| format!("no \"{end}\" line"))?
        + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("PEM body is not base64 ({e})"))
}

/// PEM text for DER bytes.
pub fn encode_pem(der: &[u8], label: &str) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn parse_spki(der: &[u8]) -> Result<[u8; 32], String> {
    der.strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|x| <[u8; 32]>::try_from(x).ok())
        .ok_or_else(|| "not an Ed25519 SubjectPublicKeyInfo (RFC 8410)".to_string())
}

/// SPKI DER of a raw Ed25519 public key.
pub fn spki_der(x: &[u8; 32]) -> Vec<u8> {
    let mut out = ED25519_SPKI_PREFIX.to_vec();
    out.extend_from_slice(x);
    out
}

fn dev_kid(key: &SigningKey) -> String {
    let tp = key.public().thumbprint();
    format!("dev-{}", &tp[..16.min(tp.len())])
}

fn load_or_create_dev_key(dir: &Path) -> Result<SigningKey, KeyError> {
    let path = dir.join(DEV_KEY_FILE);
    let from_file = |path: &Path| -> Result<SigningKey, KeyError> {
        let der = read_pem_or_der(path, "PRIVATE KEY")?;
        let key = SigningKey::from_pkcs8_der("dev", &der).map_err(|reason| KeyError::Format {
            path: path.to_path_buf(),
            reason,
        })?;
        let kid = dev_kid(&key);
        Ok(SigningKey { kid, ..key })
    };
    if path.exists() {
        return from_file(&path);
    }
    let write_err = |source| KeyError::Write {
        path: path.clone(),
        source,
    };
    create_private_dir(dir).map_err(write_err)?;
    let (key, der) = SigningKey::generate("dev")?;
    let pem = encode_pem(&der, "PRIVATE KEY");
    // Write a private temporary file, then hard-link it into place: the link fails if another
    // instance got there first, so two instances starting together end up sharing one key.
    let tmp = dir.join(format!(".{DEV_KEY_FILE}.{}", uuid::Uuid::new_v4()));
    write_private_file(&tmp, pem.as_bytes()).map_err(write_err)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a development signing key");
            let kid = dev_kid(&key);
            Ok(SigningKey { kid, ..key })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => from_file(&path),
        Err(e) => Err(write_err(e)),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn dev_key_is_generated_once_with_mode_0600_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = KeyRing::load(&SigningConfig::default(), tmp.path()).unwrap();
        assert!(a.is_development());
        assert!(a.signer().kid().starts_with("dev-"));
        let path = tmp.path().join("keys").join(DEV_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = KeyRing::load(&SigningConfig::default(), tmp.path()).unwrap();
        assert_eq!(a.signer().kid(), b.signer().kid());
        assert_eq!(a.signer().public_key(), b.signer().public_key());
        // Only the key file is left behind (no temporary files).
        assert_eq!(
            std::fs::read_dir(tmp.path().join("keys")).unwrap().count(),
            1
        );
    }

    #[test]
    fn configured_keys_rotate_one_signs_all_publish() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, _) = SigningKey::generate("k-old").unwrap();
        let (new, _) = SigningKey::generate("k-new").unwrap();
        let (retiring, _) = SigningKey::generate("k-retiring").unwrap();
        // PEM private key, DER private key, PEM public-only key.
        let p_old = write(
            tmp.path(),
            "old.pem",
            encode_pem(&old.to_pkcs8_der().unwrap(), "PRIVATE KEY").as_bytes(),
        );
        let p_new = write(tmp.path(), "new.der", &new.to_pkcs8_der().unwrap());
        let p_pub = write(
            tmp.path(),
            "retiring.pub.pem",
            encode_pem(&spki_der(&retiring.public_key()), "PUBLIC KEY").as_bytes(),
        );
        let cfg: SigningConfig = toml::from_str(&format!(
            r#"
active = "k-new"
[[keys]]
kid = "k-old"
private_key = "{}"
[[keys]]
kid = "k-new"
private_key = "{}"
[[keys]]
kid = "k-retiring"
public_key = "{}"
"#,
            p_old.display(),
            p_new.display(),
            p_pub.display()
        ))
        .unwrap();
        let ring = KeyRing::load(&cfg, tmp.path()).unwrap();
        assert_eq!(ring.signer().kid(), "k-new");
        assert_eq!(ring.signer().public_key(), new.public_key());
        assert!(!ring.is_development());
        let jwks = ring.jwks();
        assert_eq!(jwks.kids(), ["k-new", "k-old", "k-retiring"]);
        assert_eq!(
            jwks.find("k-retiring").unwrap().ed25519().unwrap(),
            retiring.public_key()
        );
        // No development key was generated.
        assert!(!tmp.path().join("keys").exists());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, _) = SigningKey::generate("a").unwrap();
        let p = write(tmp.path(), "a.der", &k.to_pkcs8_der().unwrap());
        let cfg = |toml_text: String| toml::from_str::<SigningConfig>(&toml_text).unwrap();
        let one = |kid: &str| {
            format!(
                "[[keys]]\nkid = \"{kid}\"\nprivate_key = \"{}\"\n",
                p.display()
            )
        };

        let err = KeyRing::load(&cfg(format!("{}{}", one("a"), one("a"))), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("configured twice"), "{err}");
        let err =
            KeyRing::load(&cfg(format!("active = \"b\"\n{}", one("a"))), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
        let err = KeyRing::load(&cfg(one("bad kid")), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("kid must be"), "{err}");
        let garbage = write(tmp.path(), "g.pem", b"hello");
        let err = KeyRing::load(
            &cfg(format!(
                "[[keys]]\nkid = \"g\"\nprivate_key = \"{}\"\n",
                garbage.display()
            )),
            tmp.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("g.pem"), "{err}");
        assert!(
            toml::from_str::<SigningConfig>("[[keys]]\nkid = \"a\"\nprivte_key = \"x\"").is_err()
        );
    }

    #[test]
    fn jwk_is_okp_ed25519_with_kid_alg_use() {
        let (k, _) = SigningKey::generate("kid-1").unwrap();
        let ring = KeyRing::new(k, Vec::new()).unwrap();
        let doc = jwks_document(&ring);
        let jwk = &doc["keys"][0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["kid"], "kid-1");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert!(
            jwk.get("d").is_none(),
            "private key must never be published"
        );
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.3.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let pk = PublicKey {
            kid: "k".into(),
            x: x.try_into().unwrap(),
        };
        assert_eq!(
            pk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
