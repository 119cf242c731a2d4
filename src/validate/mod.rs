//! Conformance: loads base FHIR R4 and PQOM definitions, generates snapshots, compiles every
//! StructureDefinition into a validator tree, and validates raw JSON against it.
//!
//! Owns: the definition loader ([`definitions`]), snapshot generation ([`snapshot`]), the compiled
//! rule tree ([`compile`]), primitive formats ([`primitive`]), the R4 rules no StructureDefinition
//! expresses ([`rules`]) and the walk over the received JSON ([`walk`]). Must not: do I/O after load, know about HTTP or storage, or build typed FHIR models
//! (the bytes as received are what is validated).
//!
//! The received JSON is parsed once into the validator's own flat tree ([`tree`]; numbers kept as
//! their exact text, so decimal and integer checks see what the sender wrote) and walked once per
//! applicable profile.
//!
//! ```no_run
//! use std::{path::PathBuf, sync::Arc};
//! use pqom_gateway::validate::{NoTerminology, Validator};
//!
//! let v = Validator::load(&[PathBuf::from("definitions/r4"), PathBuf::from("profiles")],
//!                         Arc::new(NoTerminology)).unwrap();
//! let outcome = v.validate(br#"{"resourceType":"Patient"}"#, &[]);
//! assert!(!outcome.has_errors());
//! ```

mod base_checks;
pub mod compile;
mod context;
pub mod definitions;
pub mod fhirpath;
pub(crate) mod invariant;
pub(crate) mod jsoncmp;
mod memo;
pub(crate) mod native;
mod path;
pub mod primitive;
mod rules;
pub mod snapshot;
pub mod terminology;
#[cfg(test)]
pub(crate) mod testkit;
mod tree;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;

use crate::fhir::{Issue, IssueType, Outcome};

pub use compile::CompiledSet;
pub use definitions::{Definitions, LoadError};
pub use terminology::{Expansion, Membership, Terminology};

/// A terminology that knows nothing: every binding check answers [`Membership::Unknown`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTerminology;

impl Terminology for NoTerminology {
    fn member(&self, _valueset: &str, _system: Option<&str>, _code: &str) -> Membership {
        Membership::Unknown
    }
    fn in_code_system(&self, _system: &str, _code: &str) -> Membership {
        Membership::Unknown
    }
    fn display(&self, _system: &str, _code: &str) -> Option<&str> {
        None
    }
    fn expansion(&self, _valueset: &str) -> Option<Arc<Expansion>> {
        None
    }
}

/// A problem found in the definitions at load that does not stop the start (for example an
/// invariant the FHIRPath engine cannot evaluate). Listed once, never repeated per resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// Canonical URL of the StructureDefinition.
    pub profile: String,
    /// Element id the warning is about.
    pub element_id: String,
    pub message: String,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}: {}", self.profile, self.element_id, self.message)
    }
}

/// The compiled validator: base R4 definitions plus any extra conformance resources.
/// Cheap to share (`Arc` inside), `Send + Sync`, no I/O after construction.
#[derive(Clone)]
pub struct Validator {
    compiled: Arc<CompiledSet>,
    terminology: Arc<dyn Terminology>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("profiles", &self.compiled.profile_urls().len())
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Load conformance resources from files and directories (JSON resources, Bundles of them,
    /// FHIR package folders), generate missing snapshots and compile everything.
    pub fn load(sources: &[PathBuf], terminology: Arc<dyn Terminology>) -> Result<Self, LoadError> {
        let defs = Definitions::load(sources)?;
        Self::from_definitions(&defs, terminology)
    }

    /// Compile already loaded definitions (lets the caller build its terminology from the same
    /// [`Definitions`] first).
    pub fn from_definitions(
        defs: &Definitions,
        terminology: Arc<dyn Terminology>,
    ) -> Result<Self, LoadError> {
        let compiled = CompiledSet::compile(defs)?;
        Ok(Validator {
            compiled: Arc::new(compiled),
            terminology,
        })
    }

    /// Validate one resource as received. Always against its base type; also against every
    /// loaded profile in `meta.profile` and every profile in `profiles` (canonical URLs).
    pub fn validate(&self, json: &[u8], profiles: &[&str]) -> Outcome {
        walk::validate(&self.compiled, self.terminology.as_ref(), json, profiles)
    }

    /// Validate an already parsed value (as its JSON text: the validator reads its own parse
    /// tree). Parse with `use_rawnumber()` so that number checks see the exact text.
    pub fn validate_value(&self, value: &sonic_rs::Value, profiles: &[&str]) -> Outcome {
        match sonic_rs::to_vec(value) {
            Ok(json) => self.validate(&json, profiles),
            Err(e) => Outcome::single(Issue::error(
                IssueType::Structure,
                format!("the value cannot be written as JSON: {e}"),
            )),
        }
    }

    /// Parse `json` into the validator's tree and nothing more: the number of JSON values, or
    /// the syntax error. The baseline the validation benchmarks compare against.
    pub fn parse_only(json: &[u8]) -> Result<usize, String> {
        tree::Tree::parse(json)
            .map(|t| t.len())
            .map_err(|e| e.to_string())
    }

    /// Canonical URLs of every loaded profile (constraints, not base definitions), sorted.
    pub fn profiles(&self) -> Vec<&str> {
        self.compiled.profile_urls()
    }

    /// Canonical URLs of every loaded StructureDefinition (base and profiles), sorted.
    pub fn structure_definitions(&self) -> Vec<&str> {
        self.compiled.all_urls()
    }

    /// The FHIR type a loaded StructureDefinition constrains (`MeasureReport` for the PQOM trust
    /// report profile), for advertising profiles per resource type.
    pub fn profile_type(&self, url: &str) -> Option<&str> {
        let id = self.compiled.struct_for_url(url)?;
        self.compiled
            .structs
            .get(id as usize)
            .map(|s| &*s.type_name)
    }

    /// Whether a StructureDefinition with this canonical URL is loaded.
    pub fn has_profile(&self, url: &str) -> bool {
        self.compiled.has_url(url)
    }

    /// Problems found at load that did not stop it: each listed once.
    pub fn load_warnings(&self) -> &[LoadWarning] {
        self.compiled.warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn validator_is_send_and_sync() {
        _assert_send_sync::<Validator>();
    }
}
