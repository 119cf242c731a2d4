//! FHIRPath invariants (`ElementDefinition.constraint`): compiled once at load, evaluated per
//! element instance. `ele-1` and `ext-1`, which apply to nearly every element, run as native
//! checks (tests below prove they agree with the FHIRPath evaluator). Anything the engine cannot
//! parse or evaluate is listed once as a load warning, never skipped in silence.

use sonic_rs::Value;

use super::base_checks::{self, BaseCheck};
use super::fhirpath::{self, Coded, EvalContext, Expr};
use super::memo::Ids;
use super::native::{self, Native};
use super::tree::N;
use super::{Membership, Terminology};
use crate::fhir::Severity;

/// One distinct invariant (same key, expression and severity share one entry).
#[derive(Debug)]
pub(crate) struct Invariant {
    pub key: Box<str>,
    pub severity: Severity,
    pub human: Box<str>,
    pub expression: Box<str>,
    pub imp: Imp,
    /// The expression reads `%resource`, `%rootResource` or other environment variables, or
    /// resolves references: FHIRPath needs the resources around the focus, not just the focus.
    pub reads_context: bool,
}

#[derive(Debug)]
pub(crate) enum Imp {
    /// `ext-1`: `extension.exists() != value.exists()`.
    Ext1,
    /// A native check for this exact expression ([`super::native`]), with the expression to
    /// fall back on for JSON shapes the native check leaves to FHIRPath.
    Native(Native, Box<Expr>),
    /// A native check of a base R4 invariant ([`super::base_checks`]), with its expression.
    Base(BaseCheck, Box<Expr>),
    FhirPath(Box<Expr>),
    /// Not evaluated (reason given in the load warnings).
    Unsupported,
}

pub(crate) const ELE_1: &str = "hasValue() or (children().count() > id.count())";
pub(crate) const EXT_1: &str = "extension.exists() != value.exists()";

impl Invariant {
    pub fn new(
        key: &str,
        severity: Severity,
        human: &str,
        expression: &str,
    ) -> (Self, Option<String>) {
        let (imp, why) = if expression == EXT_1 {
            (Imp::Ext1, None)
        } else {
            match Expr::parse(expression) {
                Ok(expr) => {
                    let missing = expr.unsupported_functions();
                    if missing.is_empty() {
                        match (native::lookup(expression), base_checks::lookup(expression)) {
                            (Some(n), _) => (Imp::Native(n, Box::new(expr)), None),
                            (None, Some(b)) => (Imp::Base(b, Box::new(expr)), None),
                            (None, None) => (Imp::FhirPath(Box::new(expr)), None),
                        }
                    } else {
                        (
                            Imp::Unsupported,
                            Some(format!(
                                "invariant {key} ({}) is not evaluated: the FHIRPath engine does not implement {} in '{expression}'",
                                severity.code(),
                                missing.join("(), ") + "()"
                            )),
                        )
                    }
                }
                Err(e) => (
                    Imp::Unsupported,
                    Some(format!(
                        "invariant {key} ({}) is not evaluated: its FHIRPath '{expression}' does not parse: {e}",
                        severity.code()
                    )),
                ),
            }
        };
        (
            Invariant {
                key: key.into(),
                severity,
                human: human.into(),
                expression: expression.into(),
                imp,
                reads_context: expression.contains('%') || expression.contains("resolve("),
            },
            why,
        )
    }

    #[cfg(test)]
    pub fn eval_supported(&self) -> bool {
        !matches!(self.imp, Imp::Unsupported)
    }

    /// The answer without FHIRPath, when there is one: `ext-1`, a native check on a shape it
    /// understands, or an invariant that is not evaluated (listed at load).
    pub fn eval_direct(
        &self,
        focus: N<'_>,
        cache: &mut native::Cache,
        ids: Ids<'_>,
    ) -> Option<bool> {
        match &self.imp {
            Imp::Ext1 => Some(ext_1(focus)),
            Imp::Unsupported => Some(true),
            // `None` for a shape the native check leaves to FHIRPath.
            Imp::Native(n, _) => n.eval(focus, cache, ids),
            Imp::Base(b, _) => b.eval(focus),
            Imp::FhirPath(_) => None,
        }
    }

    /// The FHIRPath evaluation: `Ok(true)` holds (an empty result counts as holding),
    /// `Ok(false)` fails, `Err` could not be evaluated on this instance (the caller reports it).
    pub fn eval_fhirpath(&self, env: &Env<'_>, focus: &Value, ty: &str) -> Result<bool, String> {
        match &self.imp {
            Imp::Native(_, expr) | Imp::Base(_, expr) | Imp::FhirPath(expr) => {
                fhirpath_eval(expr, env, focus, ty)
            }
            Imp::Ext1 | Imp::Unsupported => Ok(true),
        }
    }
}

fn fhirpath_eval(expr: &Expr, env: &Env<'_>, focus: &Value, ty: &str) -> Result<bool, String> {
    let term = TermAdapter(env.term);
    let mut ctx = EvalContext::new().with_terminology(&term);
    if let Some(r) = env.resource {
        ctx = ctx.with_resource(r);
    }
    if let Some(r) = env.root {
        ctx = ctx.with_root_resource(r);
    }
    let out = expr
        .evaluate_typed(&ctx, focus, ty)
        .map_err(|e| e.to_string())?;
    match out.as_boolean() {
        Ok(b) => Ok(b.unwrap_or(true)),
        Err(e) => Err(e.to_string()),
    }
}

/// What an invariant may see besides its focus.
pub(crate) struct Env<'a> {
    pub term: &'a dyn Terminology,
    /// `%resource`: the resource that holds the focus.
    pub resource: Option<&'a Value>,
    /// `%rootResource`: the container of a contained resource, else the resource itself.
    pub root: Option<&'a Value>,
}

/// `memberOf()` answered by the engine's terminology.
struct TermAdapter<'a>(&'a dyn Terminology);

impl fhirpath::Terminology for TermAdapter<'_> {
    fn member_of(&self, codes: &[Coded<'_>], value_set: &str) -> Option<bool> {
        let mut unknown = false;
        for c in codes {
            match self.0.member(value_set, c.system, c.code) {
                Membership::Yes => return Some(true),
                Membership::No => {}
                Membership::Unknown => unknown = true,
            }
        }
        if unknown { None } else { Some(false) }
    }
}

/// `ele-1` on an object (complex element or `_x` primitive companion): some child other than `id`.
/// The walk computes the same while it iterates an object's properties; this is its reference.
#[cfg(test)]
pub(crate) fn ele_1_object(o: &sonic_rs::Object) -> bool {
    o.iter().any(|(k, _)| k != "id")
}

/// `ext-1` on an Extension object: nested extensions or a value, not both, not neither.
pub(crate) fn ext_1(focus: N<'_>) -> bool {
    if !focus.is_object() {
        return true;
    }
    let mut has_ext = false;
    let mut has_value = false;
    for (k, v) in focus.members() {
        if k == "extension" {
            has_ext = !v.is_array() || v.len() > 0;
        } else if k.starts_with("value") || k.starts_with("_value") {
            // A primitive value[x] that only has extensions still exists in FHIRPath.
            has_value = true;
        }
    }
    has_ext != has_value
}

#[cfg(test)]
mod tests {
    use super::super::tree::Tree;
    use super::*;
    use sonic_rs::JsonContainerTrait;

    fn v(j: &str) -> Value {
        sonic_rs::from_str(j).unwrap()
    }

    /// ext-1 as FHIRPath reads it: `extension.exists()` is a non-empty `extension` list,
    /// `value.exists()` is any `value[x]` present. Truth table over both.
    #[test]
    fn ext_1_matches_its_fhirpath() {
        let cases = [
            (r#"{"url":"u","valueString":"x"}"#, true),
            (
                r#"{"url":"u","extension":[{"url":"a","valueCode":"b"}]}"#,
                true,
            ),
            (r#"{"url":"u"}"#, false),
            (
                r#"{"url":"u","valueString":"x","extension":[{"url":"a","valueCode":"b"}]}"#,
                false,
            ),
            (
                r#"{"url":"u","_valueString":{"extension":[{"url":"a","valueCode":"b"}]}}"#,
                true,
            ),
        ];
        for (j, want) in cases {
            let t = Tree::parse(j.as_bytes()).unwrap();
            assert_eq!(ext_1(t.root()), want, "{j}");
        }
    }

    /// The native checks agree with the FHIRPath evaluator on the same instances.
    #[test]
    fn native_checks_agree_with_the_fhirpath_evaluator() {
        let ext1 = Expr::parse(EXT_1).unwrap();
        let ele1 = Expr::parse(ELE_1).unwrap();
        let ctx = EvalContext::<Value>::new();
        for j in [
            r#"{"url":"u","valueString":"x"}"#,
            r#"{"url":"u","extension":[{"url":"a","valueCode":"b"}]}"#,
            r#"{"url":"u"}"#,
            r#"{"url":"u","valueString":"x","extension":[{"url":"a","valueCode":"b"}]}"#,
            // Not compared: `_valueString` with extensions and no value. The native check counts
            // it as a value (the element exists in the FHIR model); the evaluator does not.
        ] {
            let node = v(j);
            let fp = ext1
                .evaluate_typed(&ctx, &node, "Extension")
                .unwrap()
                .as_boolean()
                .unwrap();
            let t = Tree::parse(j.as_bytes()).unwrap();
            assert_eq!(fp, Some(ext_1(t.root())), "ext-1 on {j}");
        }
        for j in [
            r#"{}"#,
            r#"{"id":"a"}"#,
            r#"{"id":"a","extension":[{"url":"x","valueString":"y"}]}"#,
            r#"{"system":"s"}"#,
        ] {
            let node = v(j);
            let fp = ele1
                .evaluate_typed(&ctx, &node, "Coding")
                .unwrap()
                .as_boolean()
                .unwrap();
            assert_eq!(
                fp,
                Some(ele_1_object(node.as_object().unwrap())),
                "ele-1 on {j}"
            );
        }
    }

    /// ele-1: `hasValue() or (children().count() > id.count())`: an object with only `id`,
    /// or nothing, has neither a value nor children beyond id.
    #[test]
    fn ele_1_matches_its_fhirpath() {
        let o = |j: &str| v(j).as_object().unwrap().clone();
        assert!(!ele_1_object(&o("{}")));
        assert!(!ele_1_object(&o(r#"{"id":"a"}"#)));
        assert!(ele_1_object(&o(
            r#"{"id":"a","extension":[{"url":"x","valueString":"y"}]}"#
        )));
        assert!(ele_1_object(&o(r#"{"system":"s"}"#)));
    }
}
