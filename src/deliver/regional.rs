//! The consolidated regional bundle: for one NHS England region and one period, every PQOM
//! indicator at region level, at each of its ICBs' level, and each trust's latest values, in one
//! signed FHIR message Bundle for regional teams.
//!
//! Owns the bundle's shape ([`build`]). Pure like [`super::forward`]: the caller gathers the
//! reports (pooled from counts by [`crate::map::pool`], never averaged), the completeness and the
//! source submissions, and passes `now` and the signing key; nothing here reads the store or the
//! clock. The same function serves `GET /fhir/Bundle/$regional` and can publish the bundle on a
//! subscription topic.
//!
//! ```text
//! Bundle (type message, id = bundle_id, identifier urn:uuid:{id}, timestamp)
//!   entry[0]   MessageHeader  eventCoding {base}/CodeSystem/pqom-message-event#pqom-regional-bundle
//!                             extension pqom-reporting-level = region; pqom-completeness =
//!                             trusts of the region that reported anything for the period, of
//!                             those the directory expects, and which are missing;
//!                             source = this gateway; destination = the receiver if known;
//!                             focus = every report; meta.versionId "1" (it is a Provenance target)
//!   entry[..]  indicator MeasureReports: the region's, then each ICB's, then each trust's
//!              (in that order, each sorted by reporter, indicator and period); fullUrl urn:uuid,
//!              id derived from (measure, reporter, period) so a receiver can upsert, meta.versionId
//!              derived from the content (same counts, same version)
//!   entry[n]   Provenance     targets the MessageHeader and every report (see
//!                             [`super::provenance::build_regional`]), signed as in [`super::forward`]
//! ```
//!
//! With no data for the period the bundle holds the MessageHeader (completeness 0 of N) and the
//! Provenance only: still valid, still signed, still verifiable.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::canonical::Json;
use super::directory::Organisation;
use super::forward::{
    Destination, ForwardError, Forwarded, entry, fhir_instant, sha256_hex, signed_message,
};
use super::keys::SigningKey;
use super::provenance::{self, Gateway, Source, Target};
use crate::fhir::{CANONICAL_BASE, ODS_ORG_SYSTEM};
use crate::map::report::{EXT_COMPLETENESS, EXT_REPORTING_LEVEL};

/// `MessageHeader.eventCoding` of a consolidated regional bundle (docs/CONVENTIONS.md).
pub const REGIONAL_EVENT: &str = "pqom-regional-bundle";

/// A submission whose values the bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSubmission {
    /// ODS code of the trust that sent it.
    pub trust: String,
    /// Its `MessageHeader.id`; `None` for a REST submission.
    pub message_id: Option<String>,
    /// Lower-case hex SHA-256 of its bytes as received.
    pub sha256: String,
}

/// Everything [`build`] needs.
#[derive(Debug, Clone)]
pub struct RegionalInput<'a> {
    /// Stable id of this bundle (receivers deduplicate on it).
    pub bundle_id: Uuid,
    pub region: &'a Organisation,
    /// Pooled region reports ([`crate::map::Mapper::pooled_reports`]).
    pub region_reports: &'a [Value],
    /// Pooled ICB reports, for every ICB of the region.
    pub icb_reports: &'a [Value],
    /// The trusts' latest indicator reports ([`crate::map::Mapper::indicator_reports`]).
    pub trust_reports: &'a [Value],
    /// Trusts of the region that reported any value for the period.
    pub trusts_reported: &'a [Organisation],
    /// Trusts the directory places in the region.
    pub trusts_expected: &'a [Organisation],
    /// The submissions the trust values come from.
    pub sources: &'a [SourceSubmission],
    /// The receiver, when the bundle is sent somewhere (not for an API read).
    pub destination: Option<&'a Destination>,
    pub gateway: &'a Gateway,
    pub now: OffsetDateTime,
}

/// Build and sign the regional bundle.
pub fn build(input: &RegionalInput<'_>, signer: &SigningKey) -> Result<Forwarded, ForwardError> {
    let now = fhir_instant(input.now);
    let mut entries = Vec::new();
    let mut targets = Vec::new();
    let mut focus = Vec::new();

    let header_id = Uuid::new_v4().to_string();
    targets.push(Target {
        resource_type: "MessageHeader".into(),
        id: header_id.clone(),
        version_id: "1".into(),
    });
    let reports = input
        .region_reports
        .iter()
        .chain(input.icb_reports)
        .chain(input.trust_reports);
    for report in reports {
        let (id, version, resource) = identified(report);
        let full_url = format!("urn:uuid:{id}");
        focus.push(json!({ "reference": full_url }));
        targets.push(Target {
            resource_type: "MeasureReport".into(),
            id,
            version_id: version,
        });
        entries.push(entry(&full_url, Json::from_fhir_value(&resource)));
    }

    let missing: Vec<&Organisation> = input
        .trusts_expected
        .iter()
        .filter(|e| !input.trusts_reported.iter().any(|r| r.ods == e.ods))
        .collect();
    let mut completeness = vec![
        json!({ "url": "reported", "valueUnsignedInt": input.trusts_reported.len() }),
        json!({ "url": "expected", "valueUnsignedInt": input.trusts_expected.len() }),
    ];
    completeness.extend(missing.iter().map(|o| {
        json!({ "url": "missing", "valueIdentifier": { "system": ODS_ORG_SYSTEM, "value": o.ods } })
    }));
    let mut header = json!({
        "resourceType": "MessageHeader",
        "id": header_id,
        "meta": { "versionId": "1", "lastUpdated": now },
        "extension": [
            { "url": EXT_REPORTING_LEVEL, "valueCode": "region" },
            { "url": EXT_COMPLETENESS, "extension": completeness },
        ],
        "eventCoding": {
            "system": format!("{CANONICAL_BASE}/CodeSystem/pqom-message-event"),
            "code": REGIONAL_EVENT,
            "display": "PQOM consolidated regional bundle",
        },
        "source": {
            "name": "pqom-gateway",
            "software": "pqom-gateway",
            "version": input.gateway.version,
            "endpoint": input.gateway.fhir_base,
        },
        "responsible": {
            "type": "Organization",
            "identifier": input.region.identifier_json(),
            "display": input.region.name,
        },
        "focus": focus,
    });
    if let Some(d) = input.destination {
        let mut destination = json!({ "name": d.name, "endpoint": d.endpoint });
        if let Some(ods) = &d.receiver_ods {
            destination["receiver"] = json!({
                "type": "Organization",
                "identifier": { "system": ODS_ORG_SYSTEM, "value": ods },
            });
        }
        header["destination"] = json!([destination]);
    }

    let sources: Vec<(Source<'_>, &str)> = input
        .sources
        .iter()
        .map(|s| {
            (
                Source {
                    message_id: s.message_id.as_deref().unwrap_or(""),
                    sha256: &s.sha256,
                },
                s.trust.as_str(),
            )
        })
        .collect();
    let provenance_id = Uuid::new_v4();
    let prov = provenance::build_regional(
        &provenance_id.to_string(),
        &now,
        &targets,
        input.trusts_reported,
        &sources,
        input.gateway,
    );

    signed_message(
        input.bundle_id,
        &now,
        entry(
            &format!("urn:uuid:{}", targets[0].id),
            Json::from_fhir_value(&header),
        ),
        entries,
        entry(&format!("urn:uuid:{provenance_id}"), prov),
        signer,
    )
}

/// The report with `id` and `meta.versionId` set. The id is a UUID derived from the measure,
/// reporter and period (the same report of a later bundle has the same id); the version is
/// derived from the content without `date` (the same counts give the same version).
fn identified(report: &Value) -> (String, String, Value) {
    let key = format!(
        "{}\n{}\n{}\n{}",
        report["measure"].as_str().unwrap_or_default(),
        report["reporter"]["identifier"]["value"]
            .as_str()
            .unwrap_or_default(),
        report["period"]["start"].as_str().unwrap_or_default(),
        report["period"]["end"].as_str().unwrap_or_default(),
    );
    let id = uuid_from_hash(&sha256_hex(key.as_bytes()));
    let mut content = report.clone();
    if let Some(o) = content.as_object_mut() {
        o.remove("date");
    }
    let version = sha256_hex(&Json::from_value(&content).to_canonical())[..16].to_owned();
    let mut resource = report.clone();
    if let Some(o) = resource.as_object_mut() {
        o.insert("id".into(), Value::String(id.clone()));
        let meta = o.entry("meta").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert("versionId".into(), Value::String(version.clone()));
        }
    }
    (id, version, resource)
}

/// A name-based UUID (RFC 9562 version 8 layout) from the first 128 bits of a hex SHA-256.
fn uuid_from_hash(hex: &str) -> String {
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::forward::verify;
    use crate::deliver::keys::KeyRing;

    fn org(ods: &str) -> Organisation {
        Organisation {
            ods: ods.into(),
            name: format!("{ods} name"),
        }
    }

    fn report(reporter: &str, n: u64) -> Value {
        json!({
            "resourceType": "MeasureReport",
            "status": "complete",
            "type": "summary",
            "measure": "https://fhir.pqom-gateway.org/Measure/stillbirth-rate|1.0.0",
            "date": "2026-11-01T00:00:00Z",
            "reporter": { "identifier": { "system": ODS_ORG_SYSTEM, "value": reporter } },
            "period": { "start": "2026-10-01", "end": "2026-10-31" },
            "group": [{ "population": [{ "count": n }] }]
        })
    }

    fn ring() -> KeyRing {
        KeyRing::new(SigningKey::generate("test-1").unwrap().0, Vec::new()).unwrap()
    }

    #[test]
    fn a_bundle_with_reports_verifies_and_carries_completeness() {
        let ring = ring();
        let gateway = Gateway::new("https://gw.example/fhir", "gw-test");
        let region = org("Y61");
        let expected = [org("RCX"), org("RGP"), org("RM1")];
        let reported = [org("RGP"), org("RM1")];
        let sources = [SourceSubmission {
            trust: "RM1".into(),
            message_id: Some("m-1".into()),
            sha256: "a".repeat(64),
        }];
        let input = RegionalInput {
            bundle_id: Uuid::new_v4(),
            region: &region,
            region_reports: &[report("Y61", 7)],
            icb_reports: &[report("QMM", 7)],
            trust_reports: &[report("RM1", 3), report("RGP", 4)],
            trusts_reported: &reported,
            trusts_expected: &expected,
            sources: &sources,
            destination: None,
            gateway: &gateway,
            now: OffsetDateTime::now_utc(),
        };
        let built = build(&input, ring.signer()).unwrap();
        let result = verify(&built.body, &ring.jwks(), None);
        assert!(result.passed(), "{:?}", result.checks);
        let v: Value = serde_json::from_slice(&built.body).unwrap();
        let header = &v["entry"][0]["resource"];
        assert_eq!(header["eventCoding"]["code"], REGIONAL_EVENT);
        let completeness = &header["extension"][1]["extension"];
        assert_eq!(completeness[0]["valueUnsignedInt"], 2);
        assert_eq!(completeness[1]["valueUnsignedInt"], 3);
        assert_eq!(completeness[2]["valueIdentifier"]["value"], "RCX");
        assert_eq!(v["entry"].as_array().unwrap().len(), 1 + 4 + 1);
        // Same measure, reporter and period: same id in the next bundle; same counts: same
        // version; other counts: another version.
        let again = build(&input, ring.signer()).unwrap();
        let w: Value = serde_json::from_slice(&again.body).unwrap();
        assert_eq!(
            v["entry"][1]["resource"]["id"],
            w["entry"][1]["resource"]["id"]
        );
        assert_eq!(
            v["entry"][1]["resource"]["meta"]["versionId"],
            w["entry"][1]["resource"]["meta"]["versionId"]
        );
        let (_, other, _) = identified(&report("Y61", 8));
        assert_ne!(
            v["entry"][1]["resource"]["meta"]["versionId"].as_str(),
            Some(other.as_str())
        );

        // Any change after signing breaks the signature.
        let tampered = String::from_utf8(built.body)
            .unwrap()
            .replace("\"count\":3", "\"count\":30");
        assert!(!verify(tampered.as_bytes(), &ring.jwks(), None).passed());
    }

    #[test]
    fn a_bundle_without_data_is_valid_and_says_none_of_n_reported() {
        let ring = ring();
        let gateway = Gateway::new("https://gw.example/fhir", "gw-test");
        let region = org("Y60");
        let expected = [org("RQ3"), org("RRK")];
        let input = RegionalInput {
            bundle_id: Uuid::new_v4(),
            region: &region,
            region_reports: &[],
            icb_reports: &[],
            trust_reports: &[],
            trusts_reported: &[],
            trusts_expected: &expected,
            sources: &[],
            destination: None,
            gateway: &gateway,
            now: OffsetDateTime::now_utc(),
        };
        let built = build(&input, ring.signer()).unwrap();
        let result = verify(&built.body, &ring.jwks(), None);
        assert!(result.passed(), "{:?}", result.checks);
        let v: Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(v["entry"].as_array().unwrap().len(), 2);
        let completeness = &v["entry"][0]["resource"]["extension"][1]["extension"];
        assert_eq!(completeness[0]["valueUnsignedInt"], 0);
        assert_eq!(completeness[1]["valueUnsignedInt"], 2);
    }
}
