//! `pqom-gateway verify` against the built binary: a valid forwarded bundle passes; a tampered
//! resource, a tampered signature, an unknown kid and a wrong target version each fail with the
//! message a receiver needs.

mod deliver_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pqom_gateway::deliver::canonical::Json;
use pqom_gateway::deliver::forward;
use pqom_gateway::deliver::keys::{Jwks, KeyRing, SigningKey};

struct Case {
    dir: tempfile::TempDir,
    key: SigningKey,
    bundle: Vec<u8>,
    submission: Vec<u8>,
}

impl Case {
    fn new() -> Case {
        let (key, _) = SigningKey::generate("pqom-test-2026-11").unwrap();
        let report = deliver_support::reference_report("RM1");
        let (bundle, submission) = deliver_support::forwarded(&key, &report, "1");
        Case {
            dir: tempfile::tempdir().unwrap(),
            key,
            bundle,
            submission,
        }
    }

    fn jwks_of(&self, keys: &[&SigningKey]) -> Vec<u8> {
        serde_json::to_vec(&Jwks {
            keys: keys.iter().map(|k| k.public().to_jwk()).collect(),
        })
        .unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn run(&self, bundle: &[u8], jwks: &[u8], extra: &[&str]) -> (Output, String) {
        let b = self.write("bundle.json", bundle);
        let j = self.write("jwks.json", jwks);
        let out = verify_cmd(&b, j.to_str().unwrap(), extra);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out, stdout)
    }
}

fn verify_cmd(bundle: &Path, jwks: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
        .arg("verify")
        .arg(bundle)
        .args(["--jwks", jwks])
        .args(extra)
        .env_remove("PQOM_DATA_DIR")
        .output()
        .unwrap()
}

fn fail_line<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with("FAIL") && l.contains(&format!(" {check} ")))
        .unwrap_or_else(|| panic!("no FAIL line for {check} in:\n{stdout}"))
}

#[test]
fn valid_bundle_passes_every_check() {
    let case = Case::new();
    let sub = case.write("submission.json", &case.submission);
    let (out, stdout) = case.run(
        &case.bundle,
        &case.jwks_of(&[&case.key]),
        &["--submission", sub.to_str().unwrap()],
    );
    assert!(out.status.success(), "{stdout}");
    for check in ["provenance", "alg", "kid", "signature", "entity", "targets"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with("PASS") && l.contains(check)),
            "{check} not passed:\n{stdout}"
        );
    }
    assert!(stdout.contains("OK: all 6 checks passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn tampered_resource_fails_the_signature() {
    let case = Case::new();
    // Change one stratum count inside the forwarded MeasureReport.
    let text = String::from_utf8(case.bundle.clone()).unwrap();
    let at = text.find("\"count\":").unwrap() + "\"count\":".len();
    let end = at + text[at..].find([',', '}']).unwrap();
    let old: u64 = text[at..end].parse().unwrap();
    let tampered = format!("{}{}{}", &text[..at], old + 1, &text[end..]);
    let (out, stdout) = case.run(tampered.as_bytes(), &case.jwks_of(&[&case.key]), &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = fail_line(&stdout, "signature");
    assert!(line.contains("does not match the bundle content"), "{line}");
    // The key itself was fine.
    assert!(stdout.contains("PASS  kid"), "{stdout}");
}

#[test]
fn tampered_signature_fails() {
    let case = Case::new();
    let mut bundle = Json::parse(&case.bundle).unwrap();
    // Flip one bit of the Ed25519 signature inside the JWS inside signature.data.
    let entries = bundle.as_object_mut().unwrap().get_mut("entry").unwrap();
    let prov = entries.as_array_mut().unwrap().last_mut().unwrap();
    let sig = prov.as_object_mut().unwrap().get_mut("resource").unwrap();
    let sig = sig.as_object_mut().unwrap().get_mut("signature").unwrap();
    let sig = sig.as_array_mut().unwrap()[0].as_object_mut().unwrap();
    let jws = String::from_utf8(
        STANDARD
            .decode(sig.get("data").unwrap().as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (head, s) = jws.rsplit_once('.').unwrap();
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap();
    raw[10] ^= 0x01;
    let forged = format!(
        "{head}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    sig.insert("data", Json::str(STANDARD.encode(forged)));
    let (out, stdout) = case.run(&bundle.to_compact(), &case.jwks_of(&[&case.key]), &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        fail_line(&stdout, "signature").contains("does not match"),
        "{stdout}"
    );
}

#[test]
fn unknown_kid_fails() {
    let case = Case::new();
    let (other, _) = SigningKey::generate("someone-else").unwrap();
    let (out, stdout) = case.run(&case.bundle, &case.jwks_of(&[&other]), &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = fail_line(&stdout, "kid");
    assert!(
        line.contains("\"pqom-test-2026-11\" is not in the JWKS") && line.contains("someone-else"),
        "{line}"
    );
}

#[test]
fn wrong_target_version_fails_even_when_correctly_signed() {
    let case = Case::new();
    // A gateway bug (not tampering): the Provenance names version 2 but the entry is version 1,
    // and the bundle is validly signed. Only the target check can catch it.
    let text = String::from_utf8(case.bundle.clone()).unwrap().replace(
        "MeasureReport/mr-1/_history/1",
        "MeasureReport/mr-1/_history/2",
    );
    let mut bundle = Json::parse(text.as_bytes()).unwrap();
    forward::sign_bundle(&mut bundle, &case.key).unwrap();
    let (out, stdout) = case.run(&bundle.to_compact(), &case.jwks_of(&[&case.key]), &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS  signature"), "{stdout}");
    let line = fail_line(&stdout, "targets");
    assert!(
        line.contains("target MeasureReport/mr-1/_history/2 does not match entry MeasureReport/mr-1 at meta.versionId \"1\""),
        "{line}"
    );
}

#[test]
fn rotated_jwks_with_old_and_new_keys_verifies() {
    let case = Case::new();
    let (newer, _) = SigningKey::generate("pqom-test-2027-05").unwrap();
    let ring = KeyRing::new(newer, vec![case.key.public()]).unwrap();
    let jwks = serde_json::to_vec(&ring.jwks()).unwrap();
    let (out, stdout) = case.run(&case.bundle, &jwks, &[]);
    assert!(out.status.success(), "{stdout}");
}

#[test]
fn wrong_submission_file_fails_the_entity_check() {
    let case = Case::new();
    let other = case.write("other.json", b"{\"resourceType\":\"Bundle\"}");
    let (out, stdout) = case.run(
        &case.bundle,
        &case.jwks_of(&[&case.key]),
        &["--submission", other.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        fail_line(&stdout, "entity").contains("hashes to"),
        "{stdout}"
    );
}

#[test]
fn unreadable_inputs_exit_2_with_a_reason() {
    let case = Case::new();
    let b = case.write("bundle.json", &case.bundle);
    let out = verify_cmd(&b, "/nonexistent/jwks.json", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/jwks.json"),
        "{stderr}"
    );
    let out = verify_cmd(&b, b.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a JWKS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_can_be_fetched_over_http() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let case = Case::new();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(case.jwks_of(&[&case.key]), "application/json"),
        )
        .mount(&server)
        .await;
    let url = format!("{}/.well-known/jwks.json", server.uri());
    let b = case.write("bundle.json", &case.bundle);
    let out = tokio::task::spawn_blocking(move || verify_cmd(&b, &url, &[]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
