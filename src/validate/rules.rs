//! Rules of FHIR R4 that its StructureDefinitions cannot express (they are prose in the
//! specification, or follow from a datatype's meaning), which the HL7 reference validator
//! enforces: the walk calls these on the values it is already visiting.
//!
//! - `Coding.system` is an absolute URI naming a code system: a relative one (`Location1`) or a
//!   value set's canonical URL (`http://hl7.org/fhir/ValueSet/measure-type`) is an error.
//! - `Attachment.size` is the number of bytes of the attachment: with inline `data`, it must be
//!   the decoded length of that data.
//! - `Bundle.entry.fullUrl` is an absolute URL (or a `urn:uuid:`/`urn:oid:`), never a relative
//!   reference such as `Patient/1`: relative references inside the Bundle resolve against it.
//! - A search entry with `search.mode` `outcome` carries an OperationOutcome (the meaning of the
//!   code in R4's search-entry-mode).
//!
//! Owns: these checks and their messages. Must not: walk the tree or know paths beyond the one
//! child it names (the walk places the finding).

use super::tree::N;

use super::Membership;
use super::Terminology;
use crate::fhir::{IssueType, Severity};

/// One finding, at the value the rule was called on or at one of its children.
#[derive(Debug)]
pub(crate) struct Finding {
    /// The child property the finding is about (`system`), or `None` for the value itself.
    pub child: Option<&'static str>,
    pub severity: Severity,
    pub code: IssueType,
    pub message: String,
}

/// `scheme:rest` with an RFC 3986 scheme: `http://...`, `urn:uuid:...`, `mailto:...`.
pub(crate) fn is_absolute(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut b = scheme.bytes();
    !rest.is_empty()
        && b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// A `Coding` (also inside a CodeableConcept): its `system` must name a code system.
pub(crate) fn coding(v: N<'_>, term: &dyn Terminology) -> Option<Finding> {
    let system = v.get("system").and_then(|s| s.as_str())?;
    if !is_absolute(system) {
        return Some(Finding {
            child: Some("system"),
            severity: Severity::Error,
            code: IssueType::Value,
            message: format!(
                "Coding.system must be an absolute URI naming a code system (e.g. http://snomed.info/sct), found the relative '{system}'"
            ),
        });
    }
    // Cheap gate first: only a URL that looks like a value set's can be one.
    if system.contains("/ValueSet/") {
        let code = v.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let known_value_set =
            term.expansion(system).is_some() || system.starts_with("http://hl7.org/fhir/ValueSet/");
        if known_value_set && term.in_code_system(system, code) == Membership::Unknown {
            return Some(Finding {
                child: Some("system"),
                severity: Severity::Error,
                code: IssueType::Value,
                message: format!(
                    "Coding.system '{system}' is a value set, not a code system: use the system of the code itself (the value set's compose.include.system)"
                ),
            });
        }
    }
    None
}

/// An `Attachment`: a stated `size` must match the inline `data`.
pub(crate) fn attachment(v: N<'_>) -> Option<Finding> {
    let data = v.get("data").and_then(|d| d.as_str())?;
    let size = v.get("size")?;
    // `size` is an unsignedInt; its format is the walk's concern, so a non-number is skipped.
    let stated: u64 = size.raw_number()?.parse().ok()?;
    let actual = base64_decoded_len(data)?;
    // At the Attachment: the disagreement is between two of its children.
    (stated != actual).then(|| Finding {
        child: None,
        severity: Severity::Error,
        code: IssueType::Structure,
        message: format!(
            "Attachment.size is {stated}, but the attachment's data decodes to {actual} bytes"
        ),
    })
}

/// Decoded length of base64 text (whitespace ignored), or `None` if its length is not that of
/// base64 (the base64Binary format check reports that).
fn base64_decoded_len(s: &str) -> Option<u64> {
    let chars: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let n = chars.len() as u64;
    let pad = chars.iter().rev().take_while(|&&b| b == b'=').count() as u64;
    match n % 4 {
        0 => Some(n / 4 * 3 - pad.min(2)),
        // Unpadded base64 (tolerated by some senders): 2 or 3 trailing characters.
        2 if pad == 0 => Some(n / 4 * 3 + 1),
        3 if pad == 0 => Some(n / 4 * 3 + 2),
        _ => None,
    }
}

/// A `Bundle.entry`: its `fullUrl`, when present, must be absolute.
pub(crate) fn bundle_entry(v: N<'_>) -> Option<Finding> {
    let full_url = v.get("fullUrl").and_then(|u| u.as_str())?;
    (!is_absolute(full_url)).then(|| Finding {
        child: Some("fullUrl"),
        severity: Severity::Error,
        code: IssueType::Value,
        message: format!(
            "Bundle.entry.fullUrl must be an absolute URL (e.g. https://example.net/fhir/Patient/1) or a urn:uuid:, found the relative '{full_url}'"
        ),
    })
}

/// A `Bundle.entry` of a search: mode `outcome` means the resource is an OperationOutcome.
pub(crate) fn search_outcome(v: N<'_>) -> Option<Finding> {
    let mode = v.get("search")?.get("mode")?.as_str()?;
    let rt = v.get("resource")?.get("resourceType")?.as_str()?;
    (mode == "outcome" && rt != "OperationOutcome").then(|| Finding {
        child: Some("resource"),
        severity: Severity::Error,
        code: IssueType::Invalid,
        message: format!(
            "search.mode is 'outcome', so the entry's resource must be an OperationOutcome, found {rt}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tree::Tree;
    use super::*;
    use crate::validate::NoTerminology;

    /// A parsed test value (leaked: tests only).
    fn val(s: &'static str) -> N<'static> {
        Box::leak(Box::new(Tree::parse(s.as_bytes()).unwrap())).root()
    }

    #[test]
    fn absolute_uris_have_a_scheme() {
        for ok in [
            "http://snomed.info/sct",
            "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a01",
            "urn:oid:1.2.3",
            "urn:iso:std:iso:3166",
        ] {
            assert!(is_absolute(ok), "{ok}");
        }
        for bad in ["Location1", "Patient/1", ":x", "1http://x", "http:", ""] {
            assert!(!is_absolute(bad), "{bad}");
        }
    }

    /// fhir-test-cases mr-covid-m5 / mr-covid-bnd1.
    #[test]
    fn coding_system_relative_or_a_value_set_is_an_error() {
        let t = NoTerminology;
        let f = coding(val(r#"{"system":"Location1","code":"x"}"#), &t).unwrap();
        assert_eq!(f.child, Some("system"));
        assert!(f.message.contains("'Location1'"), "{}", f.message);
        let f = coding(
            val(r#"{"system":"http://hl7.org/fhir/ValueSet/measure-type","code":"outcome"}"#),
            &t,
        )
        .unwrap();
        assert!(f.message.contains("is a value set"), "{}", f.message);
        assert!(coding(val(r#"{"system":"http://loinc.org","code":"1-8"}"#), &t).is_none());
        assert!(coding(val(r#"{"code":"1-8"}"#), &t).is_none());
    }

    /// fhir-test-cases attachment-with-wrong-size: "aGVscCBpJ20gYSBidWc=" is 14 bytes.
    #[test]
    fn attachment_size_must_match_the_data() {
        let f = attachment(val(r#"{"data":"aGVscCBpJ20gYSBidWc=","size":100}"#)).unwrap();
        assert_eq!(f.child, None);
        assert!(
            f.message.contains("100") && f.message.contains("14 bytes"),
            "{}",
            f.message
        );
        assert!(attachment(val(r#"{"data":"aGVscCBpJ20gYSBidWc=","size":14}"#)).is_none());
        assert!(attachment(val(r#"{"data":"aGVscCBpJ20gYSBidWc=","size":"x"}"#)).is_none());
        assert!(attachment(val(r#"{"size":100}"#)).is_none());
        assert_eq!(base64_decoded_len("aGk="), Some(2));
        assert_eq!(base64_decoded_len("aGk"), Some(2));
        assert_eq!(base64_decoded_len("aGVs\nbG8="), Some(5));
        assert_eq!(base64_decoded_len(""), Some(0));
        assert_eq!(base64_decoded_len("a"), None);
    }

    /// fhir-test-cases bundle-duplicate-id, mni-patientOverview-bundle-example1(b).
    #[test]
    fn bundle_full_url_must_be_absolute() {
        let f = bundle_entry(val(r#"{"fullUrl":"Patient/1"}"#)).unwrap();
        assert_eq!(f.child, Some("fullUrl"));
        assert!(f.message.contains("'Patient/1'"), "{}", f.message);
        assert!(bundle_entry(val(r#"{"fullUrl":"urn:uuid:1f0e"}"#)).is_none());
        assert!(bundle_entry(val(r#"{"fullUrl":"https://x.org/fhir/Patient/1"}"#)).is_none());
        assert!(bundle_entry(val(r#"{"request":{}}"#)).is_none());
    }

    /// fhir-test-cases bundle-id-4.
    #[test]
    fn search_outcome_entries_are_operation_outcomes() {
        let f = search_outcome(val(
            r#"{"search":{"mode":"outcome"},"resource":{"resourceType":"Immunization"}}"#,
        ))
        .unwrap();
        assert_eq!(f.child, Some("resource"));
        assert!(f.message.contains("found Immunization"), "{}", f.message);
        assert!(
            search_outcome(val(
                r#"{"search":{"mode":"outcome"},"resource":{"resourceType":"OperationOutcome"}}"#
            ))
            .is_none()
        );
        assert!(
            search_outcome(val(
                r#"{"search":{"mode":"match"},"resource":{"resourceType":"Immunization"}}"#
            ))
            .is_none()
        );
    }
}
