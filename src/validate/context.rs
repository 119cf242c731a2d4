//! Extension contexts: where an extension may be used (`StructureDefinition.context`), compiled at
//! load and checked when the walk meets a known extension.
//!
//! R4 context types: `element` (an element path such as `Patient.birthDate`, a type such as
//! `HumanName`, or `Element`/`Resource`/`DomainResource`/`BackboneElement`), `extension` (inside
//! another extension, by URL) and `fhirpath`. The walk knows the host element's path relative to
//! its resource (`MeasureReport.group.stratifier`), the type of the struct that holds the
//! `extension` element, and whether that struct is an extension. A context the walk cannot decide
//! (a path inside a datatype such as `Address.line`, a FHIRPath expression, or a bare type on a
//! primitive's `_name`) makes the extension count as allowed: an error is raised only when every
//! context is decided and none matches.
//!
//! Must not: walk JSON or raise issues (the walk does).

/// One `StructureDefinition.context` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Context {
    Element(Box<str>),
    Extension(Box<str>),
    /// A `fhirpath` context, or an unknown type: never decided.
    Other,
}

impl Context {
    /// Read the `context` array of an extension's StructureDefinition.
    pub fn from_sd(sd: &serde_json::Value) -> Vec<Context> {
        sd.get("context")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let expr = c
                    .get("expression")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                match c.get("type").and_then(serde_json::Value::as_str) {
                    Some("element") => Context::Element(expr.into()),
                    Some("extension") => Context::Extension(expr.into()),
                    _ => Context::Other,
                }
            })
            .collect()
    }
}

/// Where an extension was found.
pub(crate) struct Host<'a> {
    /// The host element's path from its resource, without indices or choice types
    /// (`Patient.birthDate`, `MeasureReport.group.stratifier`; `Patient` on the resource itself).
    pub path: &'a str,
    /// The FHIR type of the struct holding the `extension` element (`HumanName`, `MeasureReport`,
    /// `BackboneElement`), or `Element` for a primitive's `_name` (its primitive type is unknown).
    pub type_name: &'a str,
    /// The URL of the extension that holds this one, when the host is an extension.
    pub extension_url: Option<&'a str>,
    pub is_resource_root: bool,
}

/// `Some(true)` allowed, `Some(false)` not, `None` undecided.
fn decide(c: &Context, host: &Host<'_>, is_resource_type: &dyn Fn(&str) -> bool) -> Option<bool> {
    match c {
        Context::Other => None,
        Context::Extension(url) => Some(host.extension_url == Some(url.split('|').next()?)),
        Context::Element(expr) => {
            let expr = expr.as_ref();
            match expr {
                "Element" => return Some(true),
                "Resource" | "DomainResource" => return Some(host.is_resource_root),
                "Extension" => return Some(host.extension_url.is_some()),
                _ => {}
            }
            let head = expr.split('.').next().unwrap_or(expr);
            if is_resource_type(head) {
                // `Observation.value[x]` names the element whatever its type.
                let want = expr.strip_suffix("[x]").unwrap_or(expr);
                return Some(want == host.path);
            }
            if expr.contains('.') {
                // A path inside a datatype (`Address.line`): the walk does not track the
                // datatype of every ancestor.
                return None;
            }
            if host.type_name == "Element" {
                return None;
            }
            Some(expr == host.type_name)
        }
    }
}

/// Whether an extension with these contexts may be used at `host`: `false` only when every
/// context was decided and none allows it.
pub(crate) fn allowed(
    contexts: &[Context],
    host: &Host<'_>,
    is_resource_type: &dyn Fn(&str) -> bool,
) -> bool {
    if contexts.is_empty() {
        return true;
    }
    let mut undecided = false;
    for c in contexts {
        match decide(c, host, is_resource_type) {
            Some(true) => return true,
            Some(false) => {}
            None => undecided = true,
        }
    }
    undecided
}

/// The contexts for a message: `Patient, Patient.birthDate`.
pub(crate) fn describe(contexts: &[Context]) -> String {
    contexts
        .iter()
        .map(|c| match c {
            Context::Element(e) => e.to_string(),
            Context::Extension(u) => format!("extension {u}"),
            Context::Other => "(a FHIRPath context)".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> bool {
        matches!(s, "Patient" | "MeasureReport" | "Observation")
    }

    fn host<'a>(path: &'a str, type_name: &'a str) -> Host<'a> {
        Host {
            path,
            type_name,
            extension_url: None,
            is_resource_root: !path.contains('.'),
        }
    }

    fn el(e: &str) -> Context {
        Context::Element(e.into())
    }

    #[test]
    fn resource_paths_types_and_roots() {
        let birth = [el("Patient.birthDate")];
        assert!(allowed(&birth, &host("Patient.birthDate", "Element"), &rt));
        assert!(!allowed(&birth, &host("Patient", "Patient"), &rt));
        assert!(!allowed(
            &birth,
            &host("MeasureReport.group", "BackboneElement"),
            &rt
        ));
        let patient = [el("Patient")];
        assert!(allowed(&patient, &host("Patient", "Patient"), &rt));
        assert!(!allowed(&patient, &host("Patient.name", "HumanName"), &rt));
        assert!(allowed(
            &[el("Resource")],
            &host("MeasureReport", "MeasureReport"),
            &rt
        ));
        assert!(!allowed(
            &[el("DomainResource")],
            &host("Patient.name", "HumanName"),
            &rt
        ));
        assert!(allowed(
            &[el("Element")],
            &host("Patient.name", "HumanName"),
            &rt
        ));
        let value = [el("Observation.value[x]")];
        assert!(allowed(&value, &host("Observation.value", "Quantity"), &rt));
    }

    #[test]
    fn datatypes_decided_only_when_the_type_is_known() {
        let hn = [el("HumanName")];
        assert!(allowed(&hn, &host("Patient.name", "HumanName"), &rt));
        assert!(!allowed(&hn, &host("Patient.address", "Address"), &rt));
        // A primitive's `_name`: its type is not known to the walk, so the context is undecided.
        assert!(allowed(
            &[el("string")],
            &host("Patient.gender", "Element"),
            &rt
        ));
        // A path inside a datatype is undecided; with a decided non-match beside it, still allowed.
        assert!(allowed(
            &[el("Address.line"), el("Patient")],
            &host("Patient.address.line", "Element"),
            &rt
        ));
        assert!(allowed(&[Context::Other], &host("Patient", "Patient"), &rt));
    }

    #[test]
    fn extension_contexts_need_the_parent_extension() {
        let ctx = [Context::Extension("http://x/parent".into())];
        let mut h = host("Patient.extension", "Extension");
        assert!(!allowed(&ctx, &h, &rt));
        h.extension_url = Some("http://x/parent");
        assert!(allowed(&ctx, &h, &rt));
        assert_eq!(describe(&ctx), "extension http://x/parent");
    }
}
