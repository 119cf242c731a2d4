//! Native versions of the FHIR R4 base invariants that run on every resource (`dom-2` to `dom-6`),
//! on every MeasureReport and Reference the PQOM reports carry (`mrp-1`, `ref-1`) and on every
//! Bundle entry (`bdl-5`, `bdl-8`), for the instances where the answer is plain from the JSON: a
//! resource without `contained` passes the four `contained` rules, a Reference that does not start
//! with `#` passes `ref-1`. Each answers `None` for anything else and the FHIRPath expression
//! decides, as it does for every other invariant. Why: through FHIRPath these rules need their
//! focus as a `sonic_rs` value, a second parse of the document (for a Bundle entry, of the whole
//! report inside it; see [`super::tree`]).
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
    /// `bdl-5`: a Bundle entry has a resource, a request or a response.
    EntryContent,
    /// `bdl-8`: a Bundle entry's fullUrl is not a version-specific reference.
    FullUrlVersion,
    /// `bdl-1`: `total` only in a searchset or history.
    Total,
    /// `bdl-2`: `entry.search` only in a searchset.
    EntrySearch,
    /// `bdl-3` (`request`), `bdl-4` (`response`): present exactly in the Bundle types listed.
    EntryRequired(&'static str, &'static [&'static str]),
    /// `bdl-7`: fullUrl (with the resource's versionId) unique, except in a history.
    UniqueFullUrl,
    /// `bdl-9`, `bdl-10`, `bdl-11`: rules for documents (left to FHIRPath for a document).
    Document,
    /// `bdl-12`: a message starts with a MessageHeader.
    MessageFirst,
}

const TABLE: [(&str, BaseCheck); 18] = [
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
    (
        "resource.exists() or request.exists() or response.exists()",
        BaseCheck::EntryContent,
    ),
    (
        "fullUrl.exists() implies fullUrl.contains('/_history/').not()",
        BaseCheck::FullUrlVersion,
    ),
    (
        "total.empty() or (type = 'searchset') or (type = 'history')",
        BaseCheck::Total,
    ),
    (
        "entry.search.empty() or (type = 'searchset')",
        BaseCheck::EntrySearch,
    ),
    (
        "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or %resource.type = 'history'))",
        BaseCheck::EntryRequired("request", &["batch", "transaction", "history"]),
    ),
    (
        "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = 'transaction-response' or %resource.type = 'history'))",
        BaseCheck::EntryRequired(
            "response",
            &["batch-response", "transaction-response", "history"],
        ),
    ),
    (
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        BaseCheck::UniqueFullUrl,
    ),
    (
        "type = 'document' implies (identifier.system.exists() and identifier.value.exists())",
        BaseCheck::Document,
    ),
    (
        "type = 'document' implies (timestamp.hasValue())",
        BaseCheck::Document,
    ),
    (
        "type = 'document' implies entry.first().resource.is(Composition)",
        BaseCheck::Document,
    ),
    (
        "type = 'message' implies entry.first().resource.is(MessageHeader)",
        BaseCheck::MessageFirst,
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

/// A string member: `Some(None)` when absent, `None` (left to FHIRPath) when not a plain string.
fn text<'t>(o: N<'t>, name: &str) -> Option<Option<&'t str>> {
    match member(o, name)? {
        None => Some(None),
        Some(v) => v.as_str().map(Some),
    }
}

/// A Bundle's entries: `None` (left to FHIRPath) unless `entry` is absent or an array of objects.
fn entries(bundle: N<'_>) -> Option<impl Iterator<Item = N<'_>>> {
    let entry = member(bundle, "entry")?;
    if let Some(e) = entry
        && !(e.is_array() && e.items().all(|x| x.is_object()))
    {
        return None;
    }
    Some(entry.into_iter().flat_map(|e| e.items()))
}

/// The Bundle rules read the Bundle's `type`; with no `type`, a `type = '...'` comparison is empty
/// and each of these rules holds (an empty `or`/`implies` result counts as holding). `None`: not a
/// plain string, left to FHIRPath.
fn bundle_type(bundle: N<'_>) -> Option<Option<&str>> {
    text(bundle, "type")
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
            BaseCheck::EntryContent => {
                let [resource, request, response] =
                    native::fields(focus, ["resource", "request", "response"]);
                Some(exists(resource?) || exists(request?) || exists(response?))
            }
            BaseCheck::FullUrlVersion => match member(focus, "fullUrl")? {
                None => Some(true),
                Some(u) => Some(!u.as_str()?.contains("/_history/")),
            },
            BaseCheck::Total => {
                let ty = bundle_type(focus)?;
                let total = exists(member(focus, "total")?);
                Some(!total || ty.is_none_or(|t| t == "searchset" || t == "history"))
            }
            BaseCheck::EntrySearch => {
                let ty = bundle_type(focus)?;
                let mut search = false;
                for e in entries(focus)? {
                    search |= exists(member(e, "search")?);
                }
                Some(!search || ty.is_none_or(|t| t == "searchset"))
            }
            BaseCheck::EntryRequired(name, types) => {
                // `%resource` is the Bundle itself: the rule sits on the Bundle's root.
                if text(focus, "resourceType")? != Some("Bundle") {
                    return None;
                }
                let mut items = entries(focus)?.peekable();
                if items.peek().is_none() {
                    return Some(true);
                }
                // Without a type, each comparison is empty: left to FHIRPath.
                let want = types.contains(&bundle_type(focus)??);
                let mut all = true;
                for e in items {
                    all &= exists(member(e, name)?) == want;
                }
                Some(all)
            }
            BaseCheck::UniqueFullUrl => {
                let ty = bundle_type(focus)?;
                match ty {
                    None | Some("history") => return Some(true),
                    Some(_) => {}
                }
                let mut keys: Vec<String> = Vec::new();
                for e in entries(focus)? {
                    let Some(url) = text(e, "fullUrl")? else {
                        continue;
                    };
                    // `fullUrl & resource.meta.versionId`: an absent version adds nothing.
                    let version = match member(e, "resource")? {
                        None => None,
                        Some(r) if r.is_object() => match member(r, "meta")? {
                            None => None,
                            Some(m) if m.is_object() => text(m, "versionId")?,
                            Some(_) => return None,
                        },
                        Some(_) => return None,
                    };
                    keys.push(format!("{url}{}", version.unwrap_or("")));
                }
                let n = keys.len();
                keys.sort_unstable();
                keys.dedup();
                Some(keys.len() == n)
            }
            BaseCheck::Document => match bundle_type(focus)? {
                Some("document") => None,
                _ => Some(true),
            },
            BaseCheck::MessageFirst => {
                if bundle_type(focus)? != Some("message") {
                    return Some(true);
                }
                let Some(first) = entries(focus)?.next() else {
                    return Some(true);
                };
                match member(first, "resource")? {
                    None => Some(true),
                    Some(r) if r.is_object() => Some(text(r, "resourceType")?? == "MessageHeader"),
                    Some(_) => None,
                }
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
        let cases: [(&str, &[&str]); 6] = [
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
            (
                "EntryContent",
                &[
                    r#"{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic"}}"#,
                    r#"{"fullUrl":"urn:uuid:1"}"#,
                    r#"{"request":{"method":"POST","url":"Basic"}}"#,
                    r#"{"response":{"status":"201"}}"#,
                    r#"{"resource":null}"#,
                    r#"{"resource":[]}"#,
                    r#"{"_resource":{"id":"x"}}"#,
                ],
            ),
            (
                "FullUrlVersion",
                &[
                    r#"{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic"}}"#,
                    r#"{"fullUrl":"http://x/fhir/Basic/1/_history/2"}"#,
                    r#"{"resource":{"resourceType":"Basic"}}"#,
                    r#"{"fullUrl":5}"#,
                    r#"{"fullUrl":"x","_fullUrl":{"id":"i"}}"#,
                ],
            ),
        ];
        let bundles: &[&str] = &[
            r#"{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"MessageHeader"}},{"fullUrl":"urn:uuid:2","resource":{"resourceType":"MeasureReport"}}]}"#,
            r#"{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"fullUrl":"http://x/Basic/1","search":{"mode":"match"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","total":2}"#,
            r#"{"resourceType":"Bundle","total":2,"entry":[{"search":{"mode":"match"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"search":{"mode":"match"}}]}"#,
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Basic"},"request":{"method":"POST","url":"Basic"}},{"resource":{"resourceType":"Basic"}}]}"#,
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Basic"},"request":{"method":"POST","url":"Basic"}}]}"#,
            r#"{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"response":{"status":"200"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic"}},{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic","meta":{"versionId":"1"}}},{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic","meta":{"versionId":"2"}}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"ab","resource":{"resourceType":"Basic","meta":{"versionId":"c"}}},{"fullUrl":"a","resource":{"resourceType":"Basic","meta":{"versionId":"bc"}}}]}"#,
            r#"{"resourceType":"Bundle","type":"history","entry":[{"fullUrl":"urn:uuid:1","request":{"method":"PUT","url":"Basic/1"},"response":{"status":"200"}},{"fullUrl":"urn:uuid:1","request":{"method":"PUT","url":"Basic/1"},"response":{"status":"200"}}]}"#,
            r#"{"resourceType":"Bundle","entry":[{"fullUrl":"a"},{"fullUrl":"a"}]}"#,
            r#"{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"urn:uuid:2","resource":{"resourceType":"MeasureReport"}}]}"#,
            r#"{"resourceType":"Bundle","type":"message","entry":[{"request":{"method":"POST","url":"x"}}]}"#,
            r#"{"resourceType":"Bundle","type":"message"}"#,
            r#"{"resourceType":"Bundle","type":"document","entry":[{"resource":{"resourceType":"Composition"}}]}"#,
            r#"{"resourceType":"Bundle","type":"message","_type":{"id":"x"},"entry":[{"resource":{"resourceType":"MessageHeader"}}]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":7}]}"#,
        ];
        let mut compared = 0;
        for (text, check) in TABLE {
            let expr = Expr::parse(text).unwrap();
            let name = format!("{check:?}");
            let name = name.split('(').next().unwrap();
            let bundle_check = matches!(
                check,
                BaseCheck::Total
                    | BaseCheck::EntrySearch
                    | BaseCheck::EntryRequired(..)
                    | BaseCheck::UniqueFullUrl
                    | BaseCheck::Document
                    | BaseCheck::MessageFirst
            );
            let instances = match bundle_check {
                true => bundles,
                false => cases.iter().find(|(n, _)| *n == name).unwrap().1,
            };
            for j in instances.iter() {
                let tree = Tree::parse(j.as_bytes()).unwrap();
                let Some(native) = check.eval(tree.root()) else {
                    continue;
                };
                let value: sonic_rs::Value = sonic_rs::from_str(j).unwrap();
                let ctx = EvalContext::new()
                    .with_resource(&value)
                    .with_root_resource(&value);
                let ty = match check {
                    _ if bundle_check => "Bundle",
                    BaseCheck::EntryContent | BaseCheck::FullUrlVersion => "Bundle.entry",
                    _ if j.contains("resourceType") => "MeasureReport",
                    _ => "Reference",
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
        assert!(compared >= 26 + 150, "only {compared} comparisons");
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
        assert_eq!(
            BaseCheck::EntryContent.eval(t(r#"{"_resource":{"id":"x"}}"#).root()),
            None
        );
        assert_eq!(
            BaseCheck::FullUrlVersion.eval(t(r#"{"fullUrl":5}"#).root()),
            None
        );
        let typeless = t(r#"{"resourceType":"Bundle","entry":[{"fullUrl":"a"}]}"#);
        let request = BaseCheck::EntryRequired("request", &["batch"]);
        assert_eq!(request.eval(typeless.root()), None);
        let document = t(r#"{"resourceType":"Bundle","type":"document"}"#);
        assert_eq!(BaseCheck::Document.eval(document.root()), None);
        let companion = t(r#"{"resourceType":"Bundle","type":"message","_type":{"id":"x"}}"#);
        assert_eq!(BaseCheck::MessageFirst.eval(companion.root()), None);
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
