//! Native versions of the FHIR R4 base invariants that run on every resource (`dom-2` to `dom-6`)
//! or on every MeasureReport and Reference the PQOM reports carry (`mrp-1`, `ref-1`), for the
//! instances where the answer is plain from the JSON: a resource without `contained` passes the
//! four `contained` rules, a Reference that does not start with `#` passes `ref-1`. Each answers
//! `None` for anything else and the FHIRPath expression decides, as it does for every other
//! invariant. Why: through FHIRPath these rules need the whole resource as a `sonic_rs` value,
//! a second parse of the document (see [`super::tree`]).
//!
//! A check is used only for its exact expression text ([`lookup`]); the tests check that each
//! agrees with the FHIRPath evaluator on instances of every shape.

use super::native::{self, Field};
use super::tree::{Kind, N};

/// Which base invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseCheck {
    /// `dom-2`, `dom-3`, `dom-4`, `dom-5`: rules about contained resources.
    Contained,
    /// `dom-6`: the resource has a narrative.
    Narrative,
    /// `mrp-1`: a data-collection report has no groups.
    DataCollection,
    /// `ref-1`: a local reference (`#id`) points to a contained resource.
    LocalReference,
}

const TABLE: [(&str, BaseCheck); 7] = [
    ("contained.contained.empty()", BaseCheck::Contained),
    (
        "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()",
        BaseCheck::Contained,
    ),
    (
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        BaseCheck::Contained,
    ),
    ("contained.meta.security.empty()", BaseCheck::Contained),
    ("text.`div`.exists()", BaseCheck::Narrative),
    (
        "(type != 'data-collection') or group.exists().not()",
        BaseCheck::DataCollection,
    ),
    (
        "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))",
        BaseCheck::LocalReference,
    ),
];

/// The native check for this exact expression text, if there is one.
pub(crate) fn lookup(expression: &str) -> Option<BaseCheck> {
    TABLE
        .iter()
        .find(|(text, _)| *text == expression)
        .map(|&(_, c)| c)
}

/// How FHIRPath sees `o.name` ([`native::fields`]): `None` when a `_name` companion, a
/// choice-like key or a duplicate is there, which the evaluator would read too; left to it.
fn member<'t>(o: N<'t>, name: &str) -> Field<'t> {
    let [f] = native::fields(o, [name]);
    f
}

/// Whether a member value has at least one item (FHIRPath `exists()` on it).
fn exists(v: Option<N<'_>>) -> bool {
    match v {
        None => false,
        Some(v) => match v.kind() {
            Kind::Null => false,
            Kind::Array => v.items().any(|x| !x.is_null()),
            _ => true,
        },
    }
}

impl BaseCheck {
    /// The invariant on `focus`, or `None` to leave it to FHIRPath.
    pub(crate) fn eval(self, focus: N<'_>) -> Option<bool> {
        if !focus.is_object() {
            return None;
        }
        match self {
            BaseCheck::Contained => (!exists(member(focus, "contained")?)).then_some(true),
            BaseCheck::Narrative => {
                let Some(text) = member(focus, "text")? else {
                    return Some(false);
                };
                if !text.is_object() {
                    return None;
                }
                let div = member(text, "div")?;
                match div {
                    None => Some(false),
                    Some(d) if d.as_str().is_some() => Some(true),
                    Some(_) => None,
                }
            }
            BaseCheck::DataCollection => {
                let ty = match member(focus, "type")? {
                    None => None,
                    Some(t) => Some(t.as_str()?),
                };
                Some(ty != Some("data-collection") || !exists(member(focus, "group")?))
            }
            BaseCheck::LocalReference => match member(focus, "reference")? {
                None => Some(true),
                Some(r) => {
                    let r = r.as_str()?;
                    (!r.starts_with('#')).then_some(true)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fhirpath::{EvalContext, Expr};
    use super::super::tree::Tree;
    use super::*;

    /// Each check against the FHIRPath evaluator, with the focus as both the resource and the
    /// root resource (as for a resource validated on its own).
    #[test]
    fn native_base_checks_agree_with_fhirpath() {
        let cases: [(&str, &[&str]); 4] = [
            (
                "Contained",
                &[
                    r#"{"resourceType":"MeasureReport","status":"complete"}"#,
                    r#"{"resourceType":"MeasureReport","contained":[{"resourceType":"Organization","id":"o"}]}"#,
                    r#"{"resourceType":"MeasureReport","contained":[]}"#,
                    r#"{"resourceType":"MeasureReport","_contained":[{"id":"x"}]}"#,
                ],
            ),
            (
                "Narrative",
                &[
                    r#"{"resourceType":"MeasureReport"}"#,
                    r#"{"resourceType":"MeasureReport","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}"#,
                    r#"{"resourceType":"MeasureReport","text":{"status":"empty"}}"#,
                    r#"{"resourceType":"MeasureReport","text":"x"}"#,
                ],
            ),
            (
                "DataCollection",
                &[
                    r#"{"resourceType":"MeasureReport","type":"summary","group":[{"id":"g"}]}"#,
                    r#"{"resourceType":"MeasureReport","type":"data-collection","group":[{"id":"g"}]}"#,
                    r#"{"resourceType":"MeasureReport","type":"data-collection"}"#,
                    r#"{"resourceType":"MeasureReport","group":[{"id":"g"}]}"#,
                    r#"{"resourceType":"MeasureReport","type":"summary"}"#,
                    r#"{"resourceType":"MeasureReport","type":7,"group":[{"id":"g"}]}"#,
                ],
            ),
            (
                "LocalReference",
                &[
                    r#"{"reference":"Organization/1"}"#,
                    r#"{"identifier":{"value":"x"}}"#,
                    r##"{"reference":"#o"}"##,
                    r#"{"reference":5}"#,
                ],
            ),
        ];
        let mut compared = 0;
        for (text, check) in TABLE {
            let expr = Expr::parse(text).unwrap();
            let name = format!("{check:?}");
            let (_, instances) = cases.iter().find(|(n, _)| *n == name).unwrap();
            for j in *instances {
                let tree = Tree::parse(j.as_bytes()).unwrap();
                let Some(native) = check.eval(tree.root()) else {
                    continue;
                };
                let value: sonic_rs::Value = sonic_rs::from_str(j).unwrap();
                let ctx = EvalContext::new()
                    .with_resource(&value)
                    .with_root_resource(&value);
                let ty = if j.contains("resourceType") {
                    "MeasureReport"
                } else {
                    "Reference"
                };
                let fp = expr
                    .evaluate_typed(&ctx, &value, ty)
                    .unwrap()
                    .as_boolean()
                    .unwrap()
                    .unwrap_or(true);
                assert_eq!(native, fp, "{check:?} on {j}: {text}");
                compared += 1;
            }
        }
        assert!(compared >= 18, "only {compared} comparisons");
    }

    #[test]
    fn shapes_left_to_fhirpath() {
        fn t(j: &str) -> Tree<'_> {
            Tree::parse(j.as_bytes()).unwrap()
        }
        assert_eq!(
            BaseCheck::Contained.eval(t(r#"{"contained":[{"id":"a"}]}"#).root()),
            None
        );
        assert_eq!(
            BaseCheck::LocalReference.eval(t(r##"{"reference":"#a"}"##).root()),
            None
        );
        assert_eq!(BaseCheck::Narrative.eval(t(r#"{"text":"x"}"#).root()), None);
        assert_eq!(
            BaseCheck::Contained.eval(t(r#"{"_contained":[]}"#).root()),
            None
        );
    }

    #[test]
    fn the_texts_are_the_r4_definitions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("definitions/r4");
        let mut all = String::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
        for (text, _) in TABLE {
            let quoted = serde_json::to_string(text).unwrap();
            assert!(all.contains(&quoted), "not in definitions/r4: {text}");
        }
    }
}
