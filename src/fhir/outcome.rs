//! The issue model behind every OperationOutcome this gateway returns.
//!
//! Every stage (ingest, validate, map, store, deliver) reports problems as [`Issue`]s so that the
//! API layer renders them one way: severity, a code from the FHIR issue-type value set, a FHIRPath
//! expression where one applies, and diagnostics that say what was seen and what was expected.

use serde_json::{Map, Value, json};

/// `OperationOutcome.issue.severity` (required binding, http://hl7.org/fhir/issue-severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }

    /// Fatal and error issues make a resource non-conformant.
    pub fn is_error(self) -> bool {
        matches!(self, Severity::Fatal | Severity::Error)
    }
}

/// `OperationOutcome.issue.code` (required binding, http://hl7.org/fhir/issue-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Unknown,
    Expired,
    Forbidden,
    Suppressed,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Extension,
    TooCostly,
    BusinessRule,
    Conflict,
    Transient,
    LockError,
    NoStore,
    Exception,
    Timeout,
    Incomplete,
    Throttled,
    Informational,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        use IssueType::*;
        match self {
            Invalid => "invalid",
            Structure => "structure",
            Required => "required",
            Value => "value",
            Invariant => "invariant",
            Security => "security",
            Login => "login",
            Unknown => "unknown",
            Expired => "expired",
            Forbidden => "forbidden",
            Suppressed => "suppressed",
            Processing => "processing",
            NotSupported => "not-supported",
            Duplicate => "duplicate",
            MultipleMatches => "multiple-matches",
            NotFound => "not-found",
            Deleted => "deleted",
            TooLong => "too-long",
            CodeInvalid => "code-invalid",
            Extension => "extension",
            TooCostly => "too-costly",
            BusinessRule => "business-rule",
            Conflict => "conflict",
            Transient => "transient",
            LockError => "lock-error",
            NoStore => "no-store",
            Exception => "exception",
            Timeout => "timeout",
            Incomplete => "incomplete",
            Throttled => "throttled",
            Informational => "informational",
        }
    }
}

/// One problem found in a submission or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    /// What was seen and what was expected, in words an EPR developer can act on.
    pub diagnostics: String,
    /// FHIRPath location of the element at fault, e.g.
    /// `Bundle.entry[1].resource.group[2].stratifier[0].stratum[3].value`.
    pub expression: Option<String>,
    /// Canonical URL of the profile whose rule was broken, when a profile rule was.
    pub profile: Option<String>,
    /// `ElementDefinition.id` of the rule, when one applies (e.g. `MeasureReport.group.code`).
    pub element_id: Option<String>,
}

/// Extension carrying the profile and element a validation issue came from.
pub const ISSUE_SOURCE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-source";

impl Issue {
    pub fn new(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            profile: None,
            element_id: None,
        }
    }

    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, diagnostics)
    }

    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, diagnostics)
    }

    pub fn information(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Information, code, diagnostics)
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    pub fn from_rule(mut self, profile: impl Into<String>, element_id: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self.element_id = Some(element_id.into());
        self
    }

    /// The issue as an `OperationOutcome.issue` JSON object.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let (Some(profile), element) = (&self.profile, &self.element_id) {
            let source = match element {
                Some(e) => format!("{profile}#{e}"),
                None => profile.clone(),
            };
            o.insert(
                "extension".into(),
                json!([{ "url": ISSUE_SOURCE_EXTENSION, "valueString": source }]),
            );
        }
        o.insert("severity".into(), json!(self.severity.code()));
        o.insert("code".into(), json!(self.code.code()));
        o.insert("diagnostics".into(), json!(self.diagnostics));
        if let Some(expr) = &self.expression {
            o.insert("expression".into(), json!([expr]));
        }
        Value::Object(o)
    }
}

/// A list of issues, renderable as an OperationOutcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub issues: Vec<Issue>,
}

impl Outcome {
    pub fn new(issues: Vec<Issue>) -> Self {
        Outcome { issues }
    }

    pub fn single(issue: Issue) -> Self {
        Outcome {
            issues: vec![issue],
        }
    }

    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity.is_error())
    }

    pub fn error_count(&self) -> usize {
        self.issues.iter().filter(|i| i.severity.is_error()).count()
    }

    /// The OperationOutcome resource. An empty list renders the "all OK" information issue that
    /// FHIR requires (an OperationOutcome must have at least one issue).
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![Issue::information(IssueType::Informational, "All OK").to_json()]
        } else {
            self.issues.iter().map(Issue::to_json).collect()
        };
        json!({ "resourceType": "OperationOutcome", "issue": issues })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_expression_and_source() {
        let issue = Issue::error(IssueType::Required, "group.code is missing; expected 1..1")
            .at("MeasureReport.group[0].code")
            .from_rule(
                "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport",
                "MeasureReport.group.code",
            );
        let v = issue.to_json();
        assert_eq!(v["severity"], "error");
        assert_eq!(v["code"], "required");
        assert_eq!(v["expression"][0], "MeasureReport.group[0].code");
        assert_eq!(
            v["extension"][0]["valueString"],
            "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport#MeasureReport.group.code"
        );
    }

    #[test]
    fn empty_outcome_is_still_a_valid_operation_outcome() {
        let v = Outcome::default().to_json();
        assert_eq!(v["issue"][0]["severity"], "information");
        assert!(!Outcome::default().has_errors());
    }
}
