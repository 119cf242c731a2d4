//! What an evaluation may consult besides its focus: the resource being validated, type information and
//! the caller's callbacks for terminology, reference resolution and profile conformance. Built once per
//! resource (or per report) and shared by every invariant evaluated on it.

use super::model::{InferredModel, Model};
use super::node::Node;
use super::temporal::{Temporal, TemporalKind};

/// A code as `memberOf()` hands it to the terminology callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coded<'a> {
    /// The code system, absent for a bare `code`.
    pub system: Option<&'a str>,
    pub code: &'a str,
}

/// Value-set membership for `memberOf()`.
pub trait Terminology {
    /// Whether any of `codes` (the codings of one CodeableConcept, or a single code) is in the value set
    /// `value_set`; `None` when the value set is unknown (the expression then yields empty).
    fn member_of(&self, codes: &[Coded<'_>], value_set: &str) -> Option<bool>;
}

/// Reference resolution for `resolve()`, beyond what the evaluator does itself (contained resources by
/// `#id`, and entries of a `%rootResource` Bundle by `fullUrl` or `Type/id`).
pub trait Resolver<N> {
    /// The resource `reference` points to, if the caller can find it (e.g. elsewhere in the submission).
    fn resolve(&self, reference: &str) -> Option<&N>;
}

/// Profile conformance for `conformsTo()`.
pub trait Conformance<N> {
    /// Whether `resource` conforms to the profile `url`; `None` when the profile is unknown.
    fn conforms_to(&self, resource: &N, url: &str) -> Option<bool>;
}

static INFERRED: InferredModel = InferredModel;

/// Environment of an evaluation. Cheap to build; build it once per resource.
pub struct EvalContext<'a, N> {
    pub(crate) resource: Option<&'a N>,
    pub(crate) root_resource: Option<&'a N>,
    pub(crate) model: &'a dyn Model,
    pub(crate) terminology: Option<&'a dyn Terminology>,
    pub(crate) resolver: Option<&'a dyn Resolver<N>>,
    pub(crate) conformance: Option<&'a dyn Conformance<N>>,
    pub(crate) now: Temporal,
}

impl<'a, N: Node> Default for EvalContext<'a, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, N: Node> EvalContext<'a, N> {
    /// A context with no resource, the inferred model and no callbacks. `now()`/`today()` are fixed here,
    /// so every invariant on one resource sees the same instant.
    pub fn new() -> Self {
        EvalContext {
            resource: None,
            root_resource: None,
            model: &INFERRED,
            terminology: None,
            resolver: None,
            conformance: None,
            now: Temporal::now(TemporalKind::DateTime),
        }
    }

    /// `%resource`: the resource that contains the focus (also `%rootResource` unless set apart).
    /// Unset, both default to the focus when the focus is a resource.
    pub fn with_resource(mut self, resource: &'a N) -> Self {
        self.resource = Some(resource);
        self
    }

    /// `%rootResource`: the outermost resource (the Bundle, or the container of a contained resource).
    pub fn with_root_resource(mut self, root: &'a N) -> Self {
        self.root_resource = Some(root);
        self
    }

    /// Type information from StructureDefinitions.
    pub fn with_model(mut self, model: &'a dyn Model) -> Self {
        self.model = model;
        self
    }

    pub fn with_terminology(mut self, terminology: &'a dyn Terminology) -> Self {
        self.terminology = Some(terminology);
        self
    }

    pub fn with_resolver(mut self, resolver: &'a dyn Resolver<N>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn with_conformance(mut self, conformance: &'a dyn Conformance<N>) -> Self {
        self.conformance = Some(conformance);
        self
    }

    /// Fixes the instant `now()`/`today()` return (tests, reproducible validation).
    pub fn with_now(mut self, now: Temporal) -> Self {
        self.now = now;
        self
    }
}
