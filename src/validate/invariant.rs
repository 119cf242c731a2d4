//! FHIRPath invariants (`ElementDefinition.constraint`): compiled once at load, evaluated per
//! element instance. `ele-1` and `ext-1`, which apply to nearly every element, run as native
//! checks (tests below prove they agree with the FHIRPath text). Anything the engine cannot
//! evaluate is listed once as a load warning, never skipped in silence.

use sonic_rs::{JsonContainerTrait, Value};

use crate::fhir::Severity;

/// One distinct invariant (same key, expression and severity share one entry).
#[derive(Debug)]
pub(crate) struct Invariant {
    pub key: Box<str>,
    pub severity: Severity,
    pub human: Box<str>,
    pub expression: Box<str>,
    pub imp: Imp,
}

#[derive(Debug)]
pub(crate) enum Imp {
    /// `ext-1`: `extension.exists() != value.exists()`.
    Ext1,
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
            (
                Imp::Unsupported,
                Some(format!(
                    "invariant {key} ({}) is not evaluated: no FHIRPath evaluator is available for '{expression}'",
                    severity.code()
                )),
            )
        };
        (
            Invariant {
                key: key.into(),
                severity,
                human: human.into(),
                expression: expression.into(),
                imp,
            },
            why,
        )
    }

    #[cfg(test)]
    pub fn eval_supported(&self) -> bool {
        !matches!(self.imp, Imp::Unsupported)
    }

    /// `Some(true)` holds, `Some(false)` fails, `None` not evaluated.
    pub fn eval(&self, focus: &Value) -> Option<bool> {
        match self.imp {
            Imp::Ext1 => Some(ext_1(focus)),
            Imp::Unsupported => None,
        }
    }
}

/// `ele-1` on an object (complex element or `_x` primitive companion): some child other than `id`.
pub(crate) fn ele_1_object(o: &sonic_rs::Object) -> bool {
    o.iter().any(|(k, _)| k != "id")
}

/// `ext-1` on an Extension object: nested extensions or a value, not both, not neither.
pub(crate) fn ext_1(focus: &Value) -> bool {
    let Some(o) = focus.as_object() else {
        return true;
    };
    let mut has_ext = false;
    let mut has_value = false;
    for (k, v) in o.iter() {
        if k == "extension" {
            has_ext = v.as_array().is_none_or(|a| !a.is_empty());
        } else if k.starts_with("value") || k.starts_with("_value") {
            // A primitive value[x] that only has extensions still exists in FHIRPath.
            has_value = true;
        }
    }
    has_ext != has_value
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(ext_1(&v(j)), want, "{j}");
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
