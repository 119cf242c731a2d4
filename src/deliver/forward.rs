//! The forwarded message Bundle: assembly, signing and verification.
//!
//! Owns [`build`] (gateway -> subscriber message with a signed Provenance), the signing rule
//! below, and [`verify`] (what `pqom-gateway verify` and any receiver check). Pure: takes bytes and
//! values, returns bytes and values; no I/O, no clock (the caller passes `now`), no store.
//!
//! # Bundle shape
//!
//! ```text
//! Bundle (type message, id = event bundle id, identifier urn:uuid:{id}, timestamp)
//!   entry[0]   MessageHeader  eventCoding {base}/CodeSystem/pqom-message-event#pqom-forward
//!                             destination = the subscriber; source = this gateway;
//!                             responsible = the submitting trust (ODS); focus = the forwarded entries
//!   entry[1..] the forwarded resources (stored trust resources, then indicator MeasureReports),
//!              each with id and meta.versionId as stored; fullUrl {fhir_base}/{type}/{id}
//!   entry[n]   Provenance     (see [`super::provenance`]) targeting every forwarded resource version
//! ```
//!
//! Resources are carried as the exact JSON the store holds (parsed losslessly, see
//! [`super::canonical`]): the gateway never round-trips them through typed models or f64.
//!
//! # Signing rule (for receivers that re-implement verification)
//!
//! 1. Parse the received bundle JSON. Find the single `Bundle.entry.resource` with
//!    `resourceType` `Provenance`, and in it the `signature` whose `sigFormat` is
//!    `application/jose`.
//! 2. Decode that signature's `data` (standard base64, as FHIR `base64Binary`): it is a compact
//!    JWS `BASE64URL(header) ".." BASE64URL(sig)` with a detached payload (RFC 7515 Appendix F).
//!    The header is `{"alg":"EdDSA","kid":...}`.
//! 3. Remove the `data` member from that signature object (only that member; nothing else
//!    changes; the rest of the signature, including `when` and `who`, is signed).
//! 4. Canonicalise the whole bundle: RFC 8785 (JCS) with numbers kept exactly as written
//!    (see [`super::canonical`] for the one difference from RFC 8785 and why). The result is the
//!    JWS payload P.
//! 5. Verify Ed25519 over `ASCII(BASE64URL(header)) "." BASE64URL(P)` with the JWKS key whose
//!    `kid` matches, published by the gateway at `/.well-known/jwks.json`.
//!
//! Then check that every `Provenance.target` (`Type/id/_history/vid`) names an entry whose
//! resource has that type, `id` and `meta.versionId`; and that every entry other than the
//! MessageHeader and the Provenance is a target.
//!
//! A consolidated regional bundle (event `pqom-regional-bundle`, [`super::regional`]) is signed
//! and checked the same way, except that its Provenance records any number of source
//! submissions (each hash must be well-formed) rather than exactly one.
//!
//! Build a forwarded bundle once per (event, subscriber) and keep the bytes: retries resend the
//! same bytes, so a receiver deduplicates on `Bundle.id`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::canonical::{CanonicalError, Json};
use super::directory::Route;
use super::keys::{Jwks, KeyError, SigningKey};
use super::provenance::{self, Gateway, Source, Target};
use super::signing::{self, VerifyError};
use crate::fhir::CANONICAL_BASE;

/// `MessageHeader.eventCoding` of a forwarded bundle.
pub const FORWARD_EVENT: &str = "pqom-forward";

/// The original submission, as received.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The request body exactly as received.
    pub body: &'a [u8],
    /// Its `MessageHeader.id`.
    pub message_id: &'a str,
}

/// One stored resource version to forward, as raw JSON.
#[derive(Debug, Clone)]
pub struct ForwardResource {
    pub resource_type: String,
    pub id: String,
    pub version_id: String,
    /// `meta.lastUpdated` as stored (FHIR instant), if known.
    pub last_updated: Option<String>,
    /// The resource JSON as stored. Decimals are forwarded exactly as they appear here.
    pub json: Vec<u8>,
}

impl ForwardResource {
    /// From a stored resource. serde_json is built with `arbitrary_precision`, so the numbers of
    /// `StoredResource::resource` keep their written text (`0.750` stays `0.750`) and the
    /// signature covers the decimals as the trust sent them.
    pub fn from_stored(r: &crate::store::StoredResource) -> ForwardResource {
        ForwardResource {
            resource_type: r.resource_type.clone(),
            id: r.id.clone(),
            version_id: r.version_id.to_string(),
            last_updated: Some(fhir_instant(r.last_updated)),
            json: serde_json::to_vec(&r.resource).unwrap_or_default(),
        }
    }
}

/// Who receives the bundle.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Human name of the receiver (e.g. "Norfolk and Waveney ICB quality dashboard").
    pub name: String,
    /// Its endpoint URL.
    pub endpoint: String,
    /// ODS code of the receiving organisation, if known (MessageHeader.destination.receiver).
    pub receiver_ods: Option<String>,
}

/// Everything [`build`] needs.
#[derive(Debug, Clone)]
pub struct ForwardInput<'a> {
    /// Stable id of this forwarded bundle (the event id receivers deduplicate on).
    pub bundle_id: Uuid,
    pub submission: Submission<'a>,
    pub resources: &'a [ForwardResource],
    pub indicators: &'a [ForwardResource],
    pub route: &'a Route,
    pub destination: &'a Destination,
    pub gateway: &'a Gateway,
    pub now: OffsetDateTime,
}

/// A built, signed forwarded bundle.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub bundle_id: Uuid,
    /// Compact JSON, ready to send (`application/fhir+json`).
    pub body: Vec<u8>,
    /// The kid that signed it.
    pub kid: String,
}

/// Why a bundle could not be built or signed. All are gateway-side faults (the inputs come from
/// the store), never a client mistake.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("stored {resource_type}/{id} is not valid JSON")]
    ResourceJson {
        resource_type: String,
        id: String,
        #[source]
        source: CanonicalError,
    },
    #[error("stored {resource_type}/{id} is not a {resource_type} resource object")]
    ResourceShape { resource_type: String, id: String },
    #[error("the bundle has no Provenance with a JOSE signature to sign")]
    NoSignature,
    #[error("signing failed")]
    Sign(#[from] KeyError),
}

/// FHIR `instant` in UTC with millisecond precision.
pub fn fhir_instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Build and sign the forwarded message bundle.
pub fn build(input: &ForwardInput<'_>, signer: &SigningKey) -> Result<Forwarded, ForwardError> {
    let now = fhir_instant(input.now);
    let base = &input.gateway.fhir_base;
    let mut entries = Vec::new();
    let mut targets = Vec::new();
    let mut focus = Vec::new();
    for r in input.resources.iter().chain(input.indicators) {
        let resource = versioned_resource(r)?;
        let full_url = format!("{base}/{}/{}", r.resource_type, r.id);
        focus.push(serde_json::json!({ "reference": full_url }));
        targets.push(Target {
            resource_type: r.resource_type.clone(),
            id: r.id.clone(),
            version_id: r.version_id.clone(),
        });
        entries.push(entry(&full_url, resource));
    }

    let mut destination = serde_json::json!({
        "name": input.destination.name,
        "endpoint": input.destination.endpoint,
    });
    if let Some(ods) = &input.destination.receiver_ods {
        destination["receiver"] = serde_json::json!({
            "type": "Organization",
            "identifier": { "system": crate::fhir::ODS_ORG_SYSTEM, "value": ods },
        });
    }
    let header_id = Uuid::new_v4();
    let header = serde_json::json!({
        "resourceType": "MessageHeader",
        "id": header_id.to_string(),
        "eventCoding": {
            "system": format!("{CANONICAL_BASE}/CodeSystem/pqom-message-event"),
            "code": FORWARD_EVENT,
            "display": "PQOM forward",
        },
        "destination": [destination],
        "source": {
            "name": "pqom-gateway",
            "software": "pqom-gateway",
            "version": input.gateway.version,
            "endpoint": base,
        },
        "responsible": {
            "type": "Organization",
            "identifier": input.route.trust.identifier_json(),
            "display": input.route.trust.name,
        },
        "focus": focus,
    });

    let sha = sha256_hex(input.submission.body);
    let provenance_id = Uuid::new_v4();
    let prov = provenance::build(
        &provenance_id.to_string(),
        &now,
        &targets,
        input.route,
        &Source {
            message_id: input.submission.message_id,
            sha256: &sha,
        },
        input.gateway,
    );

    signed_message(
        input.bundle_id,
        &now,
        entry(
            &format!("urn:uuid:{header_id}"),
            Json::from_fhir_value(&header),
        ),
        entries,
        entry(&format!("urn:uuid:{provenance_id}"), prov),
        signer,
    )
}

/// A message Bundle as the gateway sends it (forwarded submissions and regional bundles alike):
/// the MessageHeader entry first, then `entries`, then the Provenance entry, signed.
pub(super) fn signed_message(
    bundle_id: Uuid,
    now: &str,
    header: Json,
    entries: Vec<Json>,
    provenance: Json,
    signer: &SigningKey,
) -> Result<Forwarded, ForwardError> {
    let mut all = Vec::with_capacity(entries.len() + 2);
    all.push(header);
    all.extend(entries);
    all.push(provenance);
    let bundle_head = serde_json::json!({
        "resourceType": "Bundle",
        "id": bundle_id.to_string(),
        "meta": { "lastUpdated": now },
        "identifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{bundle_id}") },
        "type": "message",
        "timestamp": now,
    });
    let mut bundle = Json::from_fhir_value(&bundle_head);
    if let Some(o) = bundle.as_object_mut() {
        o.insert("entry", Json::Array(all));
    }
    let kid = sign_bundle(&mut bundle, signer)?;
    Ok(Forwarded {
        bundle_id,
        body: bundle.to_compact(),
        kid,
    })
}

/// A Bundle entry: `fullUrl` and `resource`.
pub(super) fn entry(full_url: &str, resource: Json) -> Json {
    let mut o = super::canonical::Object::new();
    o.insert("fullUrl", Json::str(full_url));
    o.insert("resource", resource);
    Json::Object(o)
}

/// The stored JSON with `id` and `meta.versionId` (and `meta.lastUpdated`) set to the stored
/// version, so that the Provenance target resolves inside the bundle.
fn versioned_resource(r: &ForwardResource) -> Result<Json, ForwardError> {
    let mut json = Json::parse(&r.json).map_err(|source| ForwardError::ResourceJson {
        resource_type: r.resource_type.clone(),
        id: r.id.clone(),
        source,
    })?;
    let shape_err = || ForwardError::ResourceShape {
        resource_type: r.resource_type.clone(),
        id: r.id.clone(),
    };
    if json.get("resourceType").and_then(Json::as_str) != Some(r.resource_type.as_str()) {
        return Err(shape_err());
    }
    let o = json.as_object_mut().ok_or_else(shape_err)?;
    o.insert_after("resourceType", "id", Json::str(&r.id));
    let mut meta = match o.remove("meta") {
        Some(Json::Object(m)) => m,
        _ => super::canonical::Object::new(),
    };
    meta.insert_after("", "versionId", Json::str(&r.version_id));
    if let Some(lu) = &r.last_updated {
        meta.insert_after("versionId", "lastUpdated", Json::str(lu));
    }
    o.insert_after("id", "meta", Json::Object(meta));
    Ok(json)
}

/// The payload the signature covers: the canonical bundle with the JOSE signature's `data`
/// removed. `bundle` is left as it was (the member is taken out for the duration and put back,
/// which avoids copying a large bundle).
pub fn signing_payload(bundle: &mut Json) -> Result<Vec<u8>, ForwardError> {
    let sig = provenance_signature_mut(bundle).ok_or(ForwardError::NoSignature)?;
    let data = sig.remove("data");
    let payload = bundle.to_canonical();
    if let (Some(data), Some(sig)) = (data, provenance_signature_mut(bundle)) {
        sig.insert("data", data);
    }
    Ok(payload)
}

/// Sign (or re-sign) a bundle in place: sets the JOSE signature's `data`. Returns the kid.
pub fn sign_bundle(bundle: &mut Json, signer: &SigningKey) -> Result<String, ForwardError> {
    let payload = signing_payload(bundle)?;
    let jws = signing::sign_detached(signer, &payload)?;
    let sig = provenance_signature_mut(bundle).ok_or(ForwardError::NoSignature)?;
    sig.insert("data", Json::str(STANDARD.encode(jws.as_bytes())));
    Ok(signer.kid().to_string())
}

fn provenance_entries(bundle: &Json) -> Vec<&Json> {
    entries(bundle)
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Json::as_str) == Some("Provenance"))
        .collect()
}

fn entries(bundle: &Json) -> impl Iterator<Item = &Json> {
    bundle
        .get("entry")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
}

fn provenance_signature_mut(bundle: &mut Json) -> Option<&mut super::canonical::Object> {
    let entries = bundle.as_object_mut()?.get_mut("entry")?.as_array_mut()?;
    let mut provs = entries.iter_mut().filter_map(|e| {
        let r = e.as_object_mut()?.get_mut("resource")?;
        (r.get("resourceType").and_then(Json::as_str) == Some("Provenance")).then_some(r)
    });
    let first = provs.next()?;
    if provs.next().is_some() {
        return None;
    }
    provenance::signature_mut(first)
}

/// One verification check and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// The result of [`verify`]: one line per check, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            passed: true,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            passed: false,
            detail: detail.into(),
        });
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Check a received forwarded bundle: structure, signature (kid, alg, value), the source entity
/// hash, and that every Provenance target resolves. `submission`, when given, is the original
/// submission and its SHA-256 must equal the recorded one.
pub fn verify(bytes: &[u8], jwks: &Jwks, submission: Option<&[u8]>) -> Report {
    let mut report = Report::default();
    let bundle = match Json::parse(bytes) {
        Ok(b) => b,
        Err(e) => {
            report.fail("json", e.to_string());
            return report;
        }
    };
    let is_message = bundle.get("resourceType").and_then(Json::as_str) == Some("Bundle")
        && bundle.get("type").and_then(Json::as_str) == Some("message");
    if !is_message {
        report.fail("bundle", "not a FHIR Bundle of type message");
        return report;
    }
    let provs = provenance_entries(&bundle).len();
    if provs != 1 {
        report.fail(
            "provenance",
            format!("the bundle has {provs} Provenance entries; expected 1"),
        );
        return report;
    }
    // Take the signature value out of the (only) tree: what remains is what was signed.
    let mut bundle = bundle;
    let Some(sig) = provenance_signature_mut(&mut bundle) else {
        report.fail(
            "provenance",
            "the Provenance has no signature with sigFormat application/jose",
        );
        return report;
    };
    let target_format = sig
        .get("targetFormat")
        .and_then(Json::as_str)
        .map(str::to_string);
    let data = sig.remove("data");
    if target_format.as_deref() != Some(provenance::TARGET_FORMAT) {
        report.fail(
            "provenance",
            format!(
                "signature.targetFormat is {target_format:?}; expected \"{}\"",
                provenance::TARGET_FORMAT
            ),
        );
    } else {
        report.pass(
            "provenance",
            "one Provenance with a JOSE signature over application/fhir+json",
        );
    }

    signature_checks(&mut report, data.as_ref(), &bundle.to_canonical(), jwks);
    let Some(&prov) = provenance_entries(&bundle).first() else {
        return report;
    };
    if event_code(&bundle) == Some(super::regional::REGIONAL_EVENT) {
        regional_entity_check(&mut report, prov, submission);
    } else {
        entity_check(&mut report, prov, submission);
    }
    target_check(&mut report, &bundle, prov);
    report
}

fn signature_checks(report: &mut Report, data: Option<&Json>, payload: &[u8], jwks: &Jwks) {
    let jws = match data.and_then(Json::as_str).map(|d| STANDARD.decode(d)) {
        None => return report.fail("signature", "signature.data is missing"),
        Some(Err(e)) => {
            return report.fail("signature", format!("signature.data is not base64 ({e})"));
        }
        Some(Ok(raw)) => match String::from_utf8(raw) {
            Ok(s) => s,
            Err(_) => return report.fail("signature", "signature.data is not a compact JWS"),
        },
    };
    let kid = match signing::header_kid(&jws) {
        Ok(kid) => {
            report.pass("alg", "EdDSA");
            kid
        }
        Err(e @ VerifyError::Alg(_)) => return report.fail("alg", e.to_string()),
        Err(e) => return report.fail("signature", e.to_string()),
    };
    if jwks.find(&kid).is_none() {
        return report.fail(
            "kid",
            format!(
                "key id {kid:?} is not in the JWKS (known: {})",
                jwks.kids().join(", ")
            ),
        );
    }
    report.pass("kid", format!("{kid:?} found in the JWKS"));
    match signing::verify_detached(&jws, payload, jwks) {
        Ok(_) => report.pass(
            "signature",
            format!("valid Ed25519 signature by {kid:?} over the canonical bundle"),
        ),
        Err(VerifyError::BadSignature { .. }) => report.fail(
            "signature",
            format!(
                "signature by {kid:?} does not match the bundle content: the bundle or the \
                 signature was changed after signing"
            ),
        ),
        Err(e) => report.fail("signature", e.to_string()),
    }
}

fn entity_check(report: &mut Report, prov: &Json, submission: Option<&[u8]>) {
    let hash = match provenance::entity_hash(prov) {
        Ok(h) => h,
        Err(e) => return report.fail("entity", e),
    };
    if !provenance::is_sha256_hex(hash) {
        return report.fail(
            "entity",
            format!("submission hash {hash:?} is not 64 lower-case hex characters"),
        );
    }
    let message_ids = provenance::entity_identifiers(prov, provenance::MESSAGE_ID_SYSTEM);
    let [message_id] = message_ids[..] else {
        return report.fail(
            "entity",
            format!(
                "expected one entity.what.identifier with system {}",
                provenance::MESSAGE_ID_SYSTEM
            ),
        );
    };
    match submission {
        Some(body) => {
            let actual = sha256_hex(body);
            if actual == hash {
                report.pass(
                    "entity",
                    format!("message {message_id}: SHA-256 {hash} matches the submission file"),
                );
            } else {
                report.fail(
                    "entity",
                    format!(
                        "message {message_id}: recorded SHA-256 {hash} but the submission file \
                         hashes to {actual}"
                    ),
                );
            }
        }
        None => report.pass(
            "entity",
            format!("message {message_id}, SHA-256 {hash} (well-formed)"),
        ),
    }
}

/// `MessageHeader.eventCoding.code` of the first entry.
fn event_code(bundle: &Json) -> Option<&str> {
    entries(bundle)
        .next()?
        .get("resource")?
        .get("eventCoding")?
        .get("code")?
        .as_str()
}

/// A consolidated regional bundle (`super::regional`) derives from many submissions, or none:
/// every recorded submission hash must be well-formed, and a `submission` file given must be
/// one of them.
fn regional_entity_check(report: &mut Report, prov: &Json, submission: Option<&[u8]>) {
    let hashes = provenance::entity_identifiers(prov, provenance::SHA256_SYSTEM);
    if let Some(bad) = hashes.iter().find(|h| !provenance::is_sha256_hex(h)) {
        return report.fail(
            "entity",
            format!("submission hash {bad:?} is not 64 lower-case hex characters"),
        );
    }
    match submission {
        Some(body) => {
            let actual = sha256_hex(body);
            if hashes.contains(&actual.as_str()) {
                report.pass(
                    "entity",
                    format!(
                        "the submission file (SHA-256 {actual}) is one of the {} sources",
                        hashes.len()
                    ),
                );
            } else {
                report.fail(
                    "entity",
                    format!(
                        "the submission file hashes to {actual}, which is not one of the {} \
                         sources this regional bundle records",
                        hashes.len()
                    ),
                );
            }
        }
        None => report.pass(
            "entity",
            format!(
                "regional bundle derived from {} source submission(s)",
                hashes.len()
            ),
        ),
    }
}

fn target_check(report: &mut Report, bundle: &Json, prov: &Json) {
    let mut problems = Vec::new();
    let mut covered = Vec::new();
    let refs = provenance::targets(prov);
    if refs.is_empty() {
        problems.push("the Provenance has no targets".to_string());
    }
    for (i, r) in refs.iter().enumerate() {
        let Some(target) = r.and_then(Target::parse) else {
            problems.push(format!(
                "target[{i}] {r:?} is not a versioned reference Type/id/_history/vid"
            ));
            continue;
        };
        let found = entries(bundle)
            .filter_map(|e| e.get("resource"))
            .find(|res| {
                res.get("resourceType").and_then(Json::as_str) == Some(&target.resource_type)
                    && res.get("id").and_then(Json::as_str) == Some(&target.id)
            });
        match found {
            None => problems.push(format!(
                "target {} has no entry {}/{}",
                target.reference(),
                target.resource_type,
                target.id
            )),
            Some(res) => {
                let version = res
                    .get("meta")
                    .and_then(|m| m.get("versionId"))
                    .and_then(Json::as_str);
                if version == Some(target.version_id.as_str()) {
                    covered.push((target.resource_type.clone(), target.id.clone()));
                } else {
                    problems.push(format!(
                        "target {} does not match entry {}/{} at meta.versionId {}",
                        target.reference(),
                        target.resource_type,
                        target.id,
                        version.map_or("(none)".into(), |v| format!("{v:?}"))
                    ));
                }
            }
        }
    }
    for res in entries(bundle).filter_map(|e| e.get("resource")) {
        let ty = res.get("resourceType").and_then(Json::as_str).unwrap_or("");
        if ty == "MessageHeader" || ty == "Provenance" {
            continue;
        }
        let id = res.get("id").and_then(Json::as_str).unwrap_or("");
        if !covered.iter().any(|(t, i)| t == ty && i == id)
            && !problems.iter().any(|p| p.contains(&format!("{ty}/{id}")))
        {
            problems.push(format!("entry {ty}/{id} is not a Provenance target"));
        }
    }
    if problems.is_empty() {
        report.pass(
            "targets",
            format!(
                "{} target(s) resolve to entries at the stated versions",
                covered.len()
            ),
        );
    } else {
        report.fail("targets", problems.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::directory::Directory;
    use crate::deliver::keys::KeyRing;

    const REPORT: &str = r#"{"resourceType":"MeasureReport","status":"complete","type":"summary",
        "measure":"https://fhir.pqom-gateway.org/Measure/pqom-annex1",
        "group":[{"code":{"text":"x"},"measureScore":{"value":0.750}}]}"#;

    fn fixture() -> (KeyRing, Route, Gateway, Destination) {
        let dir = Directory::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/organisations.toml"),
        )
        .unwrap();
        let ring = KeyRing::new(SigningKey::generate("test-1").unwrap().0, Vec::new()).unwrap();
        (
            ring,
            dir.route("RM1").unwrap(),
            Gateway::new("https://gw.example/fhir", "gw-test"),
            Destination {
                name: "QMM dashboard".into(),
                endpoint: "https://icb.example/fhir/$process-message".into(),
                receiver_ods: Some("QMM".into()),
            },
        )
    }

    fn built(ring: &KeyRing) -> (Vec<u8>, Vec<u8>) {
        let (_, route, gw, dest) = fixture();
        let submission = b"{\"resourceType\":\"Bundle\"}  ".to_vec();
        let resources = [ForwardResource {
            resource_type: "MeasureReport".into(),
            id: "mr-1".into(),
            version_id: "2".into(),
            last_updated: Some("2026-11-23T10:00:00.000Z".into()),
            json: REPORT.as_bytes().to_vec(),
        }];
        let input = ForwardInput {
            bundle_id: Uuid::new_v4(),
            submission: Submission {
                body: &submission,
                message_id: "msg-1",
            },
            resources: &resources,
            indicators: &[],
            route: &route,
            destination: &dest,
            gateway: &gw,
            now: OffsetDateTime::now_utc(),
        };
        (build(&input, ring.signer()).unwrap().body, submission)
    }

    #[test]
    fn built_bundle_verifies_and_keeps_decimals() {
        let (ring, ..) = fixture();
        let (body, submission) = built(&ring);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(r#""value":0.750"#), "decimal precision lost");
        assert!(text.starts_with(r#"{"resourceType":"Bundle","id":"#));
        let report = verify(&body, &ring.jwks(), Some(&submission));
        assert!(report.passed(), "{report:#?}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "message");
        let header = &v["entry"][0]["resource"];
        assert_eq!(header["eventCoding"]["code"], "pqom-forward");
        assert_eq!(header["eventCoding"]["display"], "PQOM forward");
        assert_eq!(
            header["eventCoding"]["system"],
            "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event"
        );
        assert_eq!(
            header["destination"][0]["receiver"]["identifier"]["value"],
            "QMM"
        );
        assert_eq!(header["responsible"]["identifier"]["value"], "RM1");
        let mr = &v["entry"][1]["resource"];
        assert_eq!(mr["id"], "mr-1");
        assert_eq!(mr["meta"]["versionId"], "2");
        assert_eq!(
            v["entry"][1]["fullUrl"],
            "https://gw.example/fhir/MeasureReport/mr-1"
        );
        let prov = &v["entry"][2]["resource"];
        assert_eq!(
            prov["target"][0]["reference"],
            "MeasureReport/mr-1/_history/2"
        );
        assert_eq!(
            prov["entity"][1]["what"]["identifier"]["value"],
            sha256_hex(&submission)
        );
    }

    #[test]
    fn re_serialisation_does_not_break_the_signature_but_edits_do() {
        let (ring, ..) = fixture();
        let (body, _) = built(&ring);
        // Pretty-printing with re-ordered members (an intermediary) still verifies...
        let parsed = Json::parse(&body).unwrap();
        let pretty = String::from_utf8(parsed.to_canonical())
            .unwrap()
            .replace(",\"", ",\n  \"");
        assert!(verify(pretty.as_bytes(), &ring.jwks(), None).passed());
        // ...changing decimal precision does not.
        let text = String::from_utf8(body).unwrap().replace("0.750", "0.75");
        let report = verify(text.as_bytes(), &ring.jwks(), None);
        assert!(!report.check("signature").unwrap().passed);
    }

    #[test]
    fn wrong_submission_file_fails_the_entity_check() {
        let (ring, ..) = fixture();
        let (body, _) = built(&ring);
        let report = verify(&body, &ring.jwks(), Some(b"other bytes"));
        let c = report.check("entity").unwrap();
        assert!(!c.passed && c.detail.contains("hashes to"), "{c:?}");
    }

    #[test]
    fn resource_type_mismatch_is_refused() {
        let (ring, route, gw, dest) = fixture();
        let resources = [ForwardResource {
            resource_type: "Measure".into(),
            id: "m".into(),
            version_id: "1".into(),
            last_updated: None,
            json: REPORT.as_bytes().to_vec(),
        }];
        let input = ForwardInput {
            bundle_id: Uuid::new_v4(),
            submission: Submission {
                body: b"x",
                message_id: "m",
            },
            resources: &resources,
            indicators: &[],
            route: &route,
            destination: &dest,
            gateway: &gw,
            now: OffsetDateTime::now_utc(),
        };
        assert!(matches!(
            build(&input, ring.signer()),
            Err(ForwardError::ResourceShape { .. })
        ));
    }

    #[test]
    fn structural_problems_are_reported_not_panics() {
        let (ring, ..) = fixture();
        let (body, _) = built(&ring);
        let text = String::from_utf8(body).unwrap();
        let jwks = ring.jwks();
        let failed = |bytes: &[u8], check: &str| {
            let r = verify(bytes, &jwks, None);
            let c = r
                .check(check)
                .unwrap_or_else(|| panic!("no {check} in {r:#?}"));
            assert!(!c.passed, "{r:#?}");
            c.detail.clone()
        };
        assert!(failed(b"{", "json").contains("invalid JSON"));
        assert!(failed(br#"{"resourceType":"Parameters"}"#, "bundle").contains("message"));
        let no_data = text.replacen(r#""data":"#, r#""data_":"#, 1);
        assert!(failed(no_data.as_bytes(), "signature").contains("missing"));
        let no_target = text.replacen(
            r#""target":[{"reference":"MeasureReport/mr-1/_history/2"}]"#,
            r#""target":[]"#,
            1,
        );
        assert!(failed(no_target.as_bytes(), "targets").contains("no targets"));
        let two = text.replacen(
            r#""resourceType":"MessageHeader""#,
            r#""resourceType":"Provenance""#,
            1,
        );
        assert!(failed(two.as_bytes(), "provenance").contains("2 Provenance"));
        let bad_hash = text.replacen(&sha256_hex(b"{\"resourceType\":\"Bundle\"}  "), "abc", 1);
        assert!(failed(bad_hash.as_bytes(), "entity").contains("not 64"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any single-byte change to a signed bundle is either unparseable or fails a check:
        /// nothing in the bundle is outside the signature.
        #[test]
        fn any_byte_change_is_detected(at in 0usize..100_000, byte in 0x20u8..0x7f) {
            let (ring, ..) = fixture();
            let (mut body, _) = built(&ring);
            let at = at % body.len();
            proptest::prop_assume!(body[at] != byte);
            body[at] = byte;
            let report = verify(&body, &ring.jwks(), None);
            proptest::prop_assert!(!report.passed(), "undetected change at {} to {:?}", at, byte as char);
        }
    }

    #[test]
    fn instants_are_utc_millis() {
        let t = time::macros::datetime!(2026-11-23 10:00:00.123456789 +01:00);
        assert_eq!(fhir_instant(t), "2026-11-23T09:00:00.123Z");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
