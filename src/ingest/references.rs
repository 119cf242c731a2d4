//! Resolving a literal reference to an entry of the same Bundle, by the FHIR R4 rules
//! (<https://hl7.org/fhir/R4/bundle.html#references>):
//!
//! 1. A version-specific reference (`.../_history/{vid}`) loses its version for the match and then
//!    must match the entry's `meta.versionId`.
//! 2. An absolute reference (`http(s)://...`, `urn:uuid:...`, `urn:oid:...`) matches an entry's
//!    `fullUrl`.
//! 3. A relative reference `Type/id` is made absolute against the root of the referring entry's
//!    fullUrl, when that is a RESTful URL (`[root]/Type/id`); otherwise it has no meaning within the
//!    Bundle and does not resolve.
//!
//! Fragment references (`#id`) point at contained resources, never at entries.

use serde_json::Value;

/// What resolution needs from one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryRef {
    pub full_url: Option<String>,
    pub resource_type: Option<String>,
    pub id: Option<String>,
    pub version_id: Option<String>,
}

impl EntryRef {
    pub fn from_entry(entry: &Value) -> Self {
        let resource = entry.get("resource");
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        EntryRef {
            full_url: s(entry.get("fullUrl")),
            resource_type: s(resource.and_then(|r| r.get("resourceType"))),
            id: s(resource.and_then(|r| r.get("id"))),
            version_id: s(resource
                .and_then(|r| r.get("meta"))
                .and_then(|m| m.get("versionId"))),
        }
    }
}

/// The index of the entry `reference`, written in the entry whose fullUrl is `referrer`,
/// resolves to.
pub fn resolve(reference: &str, referrer: Option<&str>, entries: &[EntryRef]) -> Option<usize> {
    if reference.is_empty() || reference.starts_with('#') {
        return None;
    }
    let (target, version) = match reference.split_once("/_history/") {
        Some((t, v)) => (t, Some(v)),
        None => (reference, None),
    };
    let absolute = if is_absolute(target) {
        target.to_owned()
    } else {
        let root = referrer.and_then(restful_root)?;
        format!("{root}{target}")
    };
    entries.iter().position(|e| {
        e.full_url.as_deref() == Some(absolute.as_str())
            && version.is_none_or(|v| e.version_id.as_deref() == Some(v))
    })
}

fn is_absolute(reference: &str) -> bool {
    // A scheme is letters followed by ':' before any '/'; `Type/id` has no ':' at all.
    match reference.find(':') {
        Some(colon) => {
            let scheme = &reference[..colon];
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// `http://example.org/fhir/` for `http://example.org/fhir/Patient/23`: the fullUrl must be
/// `http(s)://.../Type/id` with `Type` a resource type name (starts upper-case) to be RESTful.
fn restful_root(full_url: &str) -> Option<&str> {
    if !(full_url.starts_with("http://") || full_url.starts_with("https://")) {
        return None;
    }
    let path = full_url.split("/_history/").next().unwrap_or(full_url);
    let mut parts = path.rsplitn(3, '/');
    let id = parts.next()?;
    let ty = parts.next()?;
    let rest = parts.next()?;
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let valid_type = ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric());
    (valid_id && valid_type && rest.contains("://")).then(|| &full_url[..rest.len() + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(full_url: Option<&str>, ty: &str, id: &str, vid: Option<&str>) -> EntryRef {
        EntryRef {
            full_url: full_url.map(str::to_owned),
            resource_type: Some(ty.to_owned()),
            id: Some(id.to_owned()),
            version_id: vid.map(str::to_owned),
        }
    }

    #[test]
    fn urn_uuid_matches_full_url() {
        let entries = [
            entry(Some("urn:uuid:aa"), "MessageHeader", "h", None),
            entry(Some("urn:uuid:bb"), "MeasureReport", "r", None),
        ];
        assert_eq!(
            resolve("urn:uuid:bb", Some("urn:uuid:aa"), &entries),
            Some(1)
        );
        assert_eq!(resolve("urn:uuid:cc", Some("urn:uuid:aa"), &entries), None);
    }

    #[test]
    fn relative_reference_resolves_against_restful_full_url() {
        let entries = [
            entry(
                Some("https://trust.example/fhir/MessageHeader/h"),
                "MessageHeader",
                "h",
                None,
            ),
            entry(
                Some("https://trust.example/fhir/MeasureReport/r1"),
                "MeasureReport",
                "r1",
                None,
            ),
        ];
        let referrer = entries[0].full_url.as_deref();
        assert_eq!(resolve("MeasureReport/r1", referrer, &entries), Some(1));
        assert_eq!(
            resolve(
                "https://trust.example/fhir/MeasureReport/r1",
                referrer,
                &entries
            ),
            Some(1)
        );
        assert_eq!(resolve("MeasureReport/r2", referrer, &entries), None);
    }

    #[test]
    fn relative_reference_from_urn_full_url_does_not_resolve() {
        let entries = [
            entry(Some("urn:uuid:aa"), "MessageHeader", "h", None),
            entry(Some("urn:uuid:bb"), "MeasureReport", "r1", None),
        ];
        assert_eq!(
            resolve("MeasureReport/r1", Some("urn:uuid:aa"), &entries),
            None
        );
        assert_eq!(resolve("MeasureReport/r1", None, &entries), None);
    }

    #[test]
    fn version_specific_reference_matches_version_id() {
        let entries = [
            entry(
                Some("http://x.org/fhir/MessageHeader/h"),
                "MessageHeader",
                "h",
                None,
            ),
            entry(
                Some("http://x.org/fhir/MeasureReport/r"),
                "MeasureReport",
                "r",
                Some("2"),
            ),
        ];
        let referrer = entries[0].full_url.as_deref();
        assert_eq!(
            resolve("MeasureReport/r/_history/2", referrer, &entries),
            Some(1)
        );
        assert_eq!(
            resolve("MeasureReport/r/_history/1", referrer, &entries),
            None
        );
    }

    #[test]
    fn fragments_never_resolve_to_entries() {
        let entries = [entry(Some("urn:uuid:aa"), "MeasureReport", "a", None)];
        assert_eq!(resolve("#aa", Some("urn:uuid:aa"), &entries), None);
    }

    #[test]
    fn restful_root_requires_type_and_id() {
        assert_eq!(
            restful_root("http://example.org/fhir/Patient/23"),
            Some("http://example.org/fhir/")
        );
        assert_eq!(restful_root("http://example.org/fhir/patient/23"), None);
        assert_eq!(restful_root("urn:uuid:1234"), None);
        assert_eq!(restful_root("http://Patient/23"), None);
    }
}
