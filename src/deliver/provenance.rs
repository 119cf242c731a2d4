//! The Provenance resource carried by every forwarded bundle (profile
//! `{base}/StructureDefinition/pqom-provenance`).
//!
//! Owns the shape: what each element holds and which code systems and identifier systems it uses,
//! both for building ([`build`]) and for reading it back in the verifier ([`entity_hash`],
//! [`targets`], [`signature_mut`]). It does not sign (see [`super::forward`] for the signing rule)
//! and does no I/O.
//!
//! ```text
//! Provenance
//!   meta.profile     {base}/StructureDefinition/pqom-provenance
//!   contained        Device "gateway": the pqom-gateway instance (name, version, url)
//!   target           one versioned reference per forwarded resource: "MeasureReport/{id}/_history/{vid}"
//!   recorded         when the gateway built the forwarded bundle
//!   activity         iso-21089-lifecycle#transmit
//!   agent[0]         type provenance-participant-type#author;  who.identifier = trust ODS code
//!   agent[1]         type provenance-participant-type#assembler; who = #gateway
//!   agent[2]         type {base}/CodeSystem/pqom-provenance-agent-type#transmitter; who = #gateway
//!   entity[0]        role source; what.identifier {base}/Id/message-header-id = MessageHeader.id
//!   entity[1]        role source; what.identifier {base}/Id/submission-sha256 = lower-case hex
//!                    SHA-256 of the submission bytes exactly as received (64 characters)
//!   signature[0]     type urn:iso-astm:E1762-95:2013#1.2.840.10065.1.12.1.14 (Source Signature);
//!                    when = recorded; who = #gateway; targetFormat application/fhir+json;
//!                    sigFormat application/jose; data = base64 of the detached compact JWS
//! ```
//!
//! This follows `profiles/StructureDefinition-pqom-provenance.json` (slices author and assembler,
//! entity slices message and sha256; agent slicing is open). FHIR R4's
//! provenance-participant-type has no "transmitter" code, so the transmitting agent uses the
//! project's own code system `pqom-provenance-agent-type` (the binding is extensible).

use crate::deliver::canonical::{Json, Object};

use super::directory::{Organisation, Route};

pub const PROFILE: &str = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-provenance";
/// Identifier system: `MessageHeader.id` of the submission the forwarded data came from.
pub const MESSAGE_ID_SYSTEM: &str = "https://fhir.pqom-gateway.org/Id/message-header-id";
/// Identifier system: lower-case hex SHA-256 of the submission bytes as received.
pub const SHA256_SYSTEM: &str = "https://fhir.pqom-gateway.org/Id/submission-sha256";
/// Identifier system: the gateway instance (Device.identifier).
pub const GATEWAY_INSTANCE_SYSTEM: &str = "https://fhir.pqom-gateway.org/Id/gateway-instance";
pub const AGENT_TYPE_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
pub const PQOM_AGENT_TYPE_SYSTEM: &str =
    "https://fhir.pqom-gateway.org/CodeSystem/pqom-provenance-agent-type";
pub const LIFECYCLE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle";
pub const SIGNATURE_TYPE_SYSTEM: &str = "urn:iso-astm:E1762-95:2013";
pub const SOURCE_SIGNATURE_CODE: &str = "1.2.840.10065.1.12.1.14";
pub const SIG_FORMAT: &str = "application/jose";
pub const TARGET_FORMAT: &str = "application/fhir+json";
/// Local id of the contained gateway Device.
pub const GATEWAY_DEVICE_ID: &str = "gateway";

/// The gateway as a Provenance agent and signer.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Base URL of the gateway's FHIR endpoint, e.g. `https://pqom.example.nhs.uk/fhir`.
    pub fhir_base: String,
    /// Name of this gateway instance (host name or deployment name).
    pub instance: String,
    /// Software version (`CARGO_PKG_VERSION`).
    pub version: String,
}

impl Gateway {
    pub fn new(fhir_base: impl Into<String>, instance: impl Into<String>) -> Self {
        Gateway {
            fhir_base: fhir_base.into().trim_end_matches('/').to_string(),
            instance: instance.into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A forwarded resource version, as a Provenance target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource_type: String,
    pub id: String,
    pub version_id: String,
}

impl Target {
    /// `Type/id/_history/vid`, relative to the gateway's FHIR base (the entries' fullUrl base).
    pub fn reference(&self) -> String {
        format!(
            "{}/{}/_history/{}",
            self.resource_type, self.id, self.version_id
        )
    }

    /// Parse a versioned reference, relative or absolute (`.../Type/id/_history/vid`).
    pub fn parse(reference: &str) -> Option<Target> {
        let parts: Vec<&str> = reference.rsplitn(5, '/').collect();
        // rsplitn yields from the end: vid, "_history", id, Type, rest?
        match parts[..] {
            [vid, "_history", id, ty] | [vid, "_history", id, ty, _] => {
                if vid.is_empty() || id.is_empty() || ty.is_empty() {
                    return None;
                }
                Some(Target {
                    resource_type: ty.to_string(),
                    id: id.to_string(),
                    version_id: vid.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// What the Provenance records about the submission the data came from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// `MessageHeader.id` of the submission.
    pub message_id: &'a str,
    /// Lower-case hex SHA-256 of the submission bytes as received.
    pub sha256: &'a str,
}

fn coding(system: &str, code: &str, display: &str) -> serde_json::Value {
    serde_json::json!({ "system": system, "code": code, "display": display })
}

/// The contained Device that stands for this gateway instance.
fn device(gateway: &Gateway) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "Device",
        "id": GATEWAY_DEVICE_ID,
        "identifier": [{ "system": GATEWAY_INSTANCE_SYSTEM, "value": gateway.instance }],
        "deviceName": [{ "name": "pqom-gateway", "type": "manufacturer-name" }],
        "version": [{ "value": gateway.version }],
        "url": gateway.fhir_base,
    })
}

/// The gateway's assembler and transmitter agents (both the contained Device).
fn gateway_agents(gateway: &Gateway) -> [serde_json::Value; 2] {
    let who = serde_json::json!({
        "reference": format!("#{GATEWAY_DEVICE_ID}"),
        "type": "Device",
        "display": format!("pqom-gateway {} ({})", gateway.version, gateway.instance),
    });
    [
        serde_json::json!({
            "type": { "coding": [coding(AGENT_TYPE_SYSTEM, "assembler", "Assembler")] },
            "who": who,
        }),
        serde_json::json!({
            "type": { "coding": [coding(PQOM_AGENT_TYPE_SYSTEM, "transmitter", "Transmitter")] },
            "who": who,
        }),
    ]
}

/// An `author` agent: an organisation by ODS code.
fn author(org: &Organisation) -> serde_json::Value {
    serde_json::json!({
        "type": { "coding": [coding(AGENT_TYPE_SYSTEM, "author", "Author")] },
        "who": {
            "type": "Organization",
            "identifier": org.identifier_json(),
            "display": org.name,
        }
    })
}

/// The source entities of one submission: its MessageHeader id (when it was a message) and
/// the SHA-256 of its bytes as received.
fn source_entities(source: &Source<'_>, from: &str) -> Vec<serde_json::Value> {
    let mut entities = Vec::with_capacity(2);
    if !source.message_id.is_empty() {
        entities.push(serde_json::json!({
            "role": "source",
            "what": {
                "type": "MessageHeader",
                "identifier": { "system": MESSAGE_ID_SYSTEM, "value": source.message_id },
                "display": format!("PQOM submission from {from}"),
            }
        }));
    }
    entities.push(serde_json::json!({
        "role": "source",
        "what": {
            "type": "Bundle",
            "identifier": { "system": SHA256_SYSTEM, "value": source.sha256 },
            "display": "SHA-256 of the submission as received",
        }
    }));
    entities
}

/// The unsigned JOSE signature (`data` is added by signing).
fn unsigned_signature(recorded: &str) -> serde_json::Value {
    serde_json::json!({
        "type": [coding(SIGNATURE_TYPE_SYSTEM, SOURCE_SIGNATURE_CODE, "Source Signature")],
        "when": recorded,
        "who": { "reference": format!("#{GATEWAY_DEVICE_ID}"), "type": "Device" },
        "targetFormat": TARGET_FORMAT,
        "sigFormat": SIG_FORMAT,
    })
}

/// The Provenance without `signature[0].data` (added by signing).
pub fn build(
    id: &str,
    recorded: &str,
    targets: &[Target],
    route: &Route,
    source: &Source<'_>,
    gateway: &Gateway,
) -> Json {
    let [assembler, transmitter] = gateway_agents(gateway);
    let v = serde_json::json!({
        "resourceType": "Provenance",
        "id": id,
        "meta": { "profile": [PROFILE] },
        "contained": [device(gateway)],
        "target": targets.iter().map(|t| serde_json::json!({ "reference": t.reference() })).collect::<Vec<_>>(),
        "recorded": recorded,
        "activity": {
            "coding": [coding(LIFECYCLE_SYSTEM, "transmit", "Transmit Record Lifecycle Event")]
        },
        "agent": [author(&route.trust), assembler, transmitter],
        "entity": source_entities(source, &route.trust.ods),
        "signature": [unsigned_signature(recorded)],
    });
    Json::from_fhir_value(&v)
}

/// The Provenance of a consolidated regional bundle (`super::regional`), without
/// `signature[0].data`. Unlike a forwarded bundle's, its content is derived from many
/// submissions of many trusts: one `author` agent per trust that contributed, and the source
/// entities (MessageHeader id, SHA-256) of every submission whose values it holds, with role
/// `derivation`. So it does not claim the `pqom-provenance` profile (one author, one source);
/// everything else (contained Device, assembler and transmitter agents, activity, signature)
/// is the same. `targets` are the bundle's MessageHeader and every report.
pub fn build_regional(
    id: &str,
    recorded: &str,
    targets: &[Target],
    authors: &[Organisation],
    sources: &[(Source<'_>, &str)],
    gateway: &Gateway,
) -> Json {
    let [assembler, transmitter] = gateway_agents(gateway);
    let mut agents: Vec<serde_json::Value> = authors.iter().map(author).collect();
    agents.push(assembler);
    agents.push(transmitter);
    let entities: Vec<serde_json::Value> = sources
        .iter()
        .flat_map(|(source, from)| source_entities(source, from))
        .map(|mut e| {
            e["role"] = serde_json::Value::from("derivation");
            e
        })
        .collect();
    let mut v = serde_json::json!({
        "resourceType": "Provenance",
        "id": id,
        "contained": [device(gateway)],
        "target": targets.iter().map(|t| serde_json::json!({ "reference": t.reference() })).collect::<Vec<_>>(),
        "recorded": recorded,
        "activity": {
            "coding": [coding(LIFECYCLE_SYSTEM, "transmit", "Transmit Record Lifecycle Event")]
        },
        "agent": agents,
        "signature": [unsigned_signature(recorded)],
    });
    if !entities.is_empty() {
        v["entity"] = serde_json::Value::Array(entities);
    }
    Json::from_fhir_value(&v)
}

/// The JOSE signature object of a Provenance (the one `signature` with `sigFormat`
/// application/jose), for signing or verifying.
pub fn signature_mut(provenance: &mut Json) -> Option<&mut Object> {
    provenance
        .as_object_mut()?
        .get_mut("signature")?
        .as_array_mut()?
        .iter_mut()
        .find(|s| s.get("sigFormat").and_then(Json::as_str) == Some(SIG_FORMAT))?
        .as_object_mut()
}

/// Values of `entity[].what.identifier` with `system`.
pub fn entity_identifiers<'a>(provenance: &'a Json, system: &'a str) -> Vec<&'a str> {
    provenance
        .get("entity")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("what")?.get("identifier"))
        .filter(|i| i.get("system").and_then(Json::as_str) == Some(system))
        .filter_map(|i| i.get("value").and_then(Json::as_str))
        .collect()
}

/// The submission hash recorded in the entities, if exactly one.
pub fn entity_hash(provenance: &Json) -> Result<&str, String> {
    match entity_identifiers(provenance, SHA256_SYSTEM)[..] {
        [one] => Ok(one),
        [] => Err(format!(
            "no entity.what.identifier with system {SHA256_SYSTEM}"
        )),
        _ => Err(format!(
            "more than one entity.what.identifier with system {SHA256_SYSTEM}"
        )),
    }
}

/// True for a lower-case hex SHA-256 (64 characters `0-9a-f`).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `target[].reference` values.
pub fn targets(provenance: &Json) -> Vec<Option<&str>> {
    provenance
        .get("target")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|t| t.get("reference").and_then(Json::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        let org = |ods: &str, name: &str| Organisation {
            ods: ods.into(),
            name: name.into(),
        };
        Route {
            trust: org("RM1", "Norfolk and Norwich"),
            icb: org("QMM", "Norfolk and Waveney ICB"),
            region: org("Y61", "East of England"),
        }
    }

    #[test]
    fn canonical_urls_follow_the_project_base() {
        for url in [
            PROFILE,
            MESSAGE_ID_SYSTEM,
            SHA256_SYSTEM,
            GATEWAY_INSTANCE_SYSTEM,
            PQOM_AGENT_TYPE_SYSTEM,
        ] {
            assert!(url.starts_with(crate::fhir::CANONICAL_BASE), "{url}");
        }
    }

    #[test]
    fn parses_versioned_references() {
        let t = Target::parse("MeasureReport/abc/_history/3").unwrap();
        assert_eq!(t.reference(), "MeasureReport/abc/_history/3");
        let abs = Target::parse("https://gw.example/fhir/MeasureReport/abc/_history/3").unwrap();
        assert_eq!(abs, t);
        assert!(Target::parse("MeasureReport/abc").is_none());
        assert!(Target::parse("MeasureReport/abc/_history/").is_none());
        assert!(Target::parse("abc/_history/1").is_none());
    }

    #[test]
    fn shape_has_agents_entities_and_unsigned_signature() {
        let hash = "a".repeat(64);
        let p = build(
            "p1",
            "2026-11-23T10:00:00.000Z",
            &[Target {
                resource_type: "MeasureReport".into(),
                id: "mr1".into(),
                version_id: "2".into(),
            }],
            &route(),
            &Source {
                message_id: "msg-1",
                sha256: &hash,
            },
            &Gateway::new("https://gw.example/fhir/", "gw-1"),
        );
        let v: serde_json::Value = serde_json::from_slice(&p.to_compact()).unwrap();
        assert_eq!(v["target"][0]["reference"], "MeasureReport/mr1/_history/2");
        assert_eq!(v["agent"][0]["type"]["coding"][0]["code"], "author");
        assert_eq!(
            v["agent"][0]["who"]["identifier"]["system"],
            crate::fhir::ODS_ORG_SYSTEM
        );
        assert_eq!(v["agent"][0]["who"]["identifier"]["value"], "RM1");
        assert_eq!(v["agent"][1]["type"]["coding"][0]["code"], "assembler");
        assert_eq!(v["agent"][2]["type"]["coding"][0]["code"], "transmitter");
        assert_eq!(v["agent"][1]["who"]["reference"], "#gateway");
        assert_eq!(v["contained"][0]["url"], "https://gw.example/fhir");
        assert_eq!(v["signature"][0]["sigFormat"], "application/jose");
        assert!(v["signature"][0].get("data").is_none());
        assert_eq!(entity_hash(&p).unwrap(), hash);
        assert_eq!(entity_identifiers(&p, MESSAGE_ID_SYSTEM), ["msg-1"]);
        assert!(is_sha256_hex(&hash));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex("abc"));
    }
}
