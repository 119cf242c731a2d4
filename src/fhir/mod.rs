//! Shared FHIR helpers used by every stage: the issue model behind every OperationOutcome,
//! and (in one place) the typed fhir-sdk view used to build responses.

pub(crate) mod json;
pub mod outcome;
pub mod typed;

pub use outcome::{Issue, IssueType, Outcome, Severity};

/// The FHIR version this gateway speaks on the wire.
pub const FHIR_VERSION: &str = "4.0.1";

/// Canonical base URL of every conformance resource the project defines (profiles, CodeSystems,
/// ValueSets, NamingSystems, Measures). One base, used everywhere.
pub const CANONICAL_BASE: &str = "https://fhir.pqom-gateway.org";

/// ODS organisation code identifier system.
pub const ODS_ORG_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
