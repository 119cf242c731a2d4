//! FHIRPath (N1, the version FHIR R4 invariants are written in) over JSON trees.
//!
//! Owns: lexing and parsing expressions into a compiled tree ([`Expr`]), and evaluating that tree on any
//! JSON value implementing [`Node`] (`sonic_rs::Value`, `serde_json::Value`), with FHIR's JSON rules:
//! arrays flatten into collections, primitive extensions come from `_name` siblings, choice elements
//! (`value[x]`) are found by suffix and typed by it, `resourceType` gives a resource its type.
//!
//! Must not: do I/O, know about profiles or OperationOutcomes (the validator turns results into issues),
//! or panic on any input. Terminology, reference resolution and profile conformance are the caller's,
//! through the traits in [`EvalContext`]; type information likewise through [`Model`].
//!
//! ```
//! use pqom_gateway::validate::fhirpath::{EvalContext, Expr};
//! let ele1 = Expr::parse("hasValue() or (children().count() > id.count())").unwrap();
//! let node: serde_json::Value = serde_json::json!({"id": "a"});
//! let ctx = EvalContext::new();
//! assert_eq!(ele1.evaluate(&ctx, &node).unwrap().as_boolean().unwrap(), Some(false));
//! ```
//!
//! Deliberate choices where the spec leaves room or FHIR JSON lacks information:
//! - Without a [`Model`], a JSON string of unknown type answers `is`/`as`/`ofType` for every
//!   string-based FHIR primitive (`uri`, `canonical`, `code`, ...) and for `date`/`dateTime`/`time`
//!   when it parses as one; two such strings that both read as dates are ordered as dates.
//! - `matches()` is a partial match, as the spec says (anchor the pattern for a full match).
//! - A date-time with an offset compared with one without (below day precision) is unknown (empty)
//!   unless they are more than a day apart, as in the spec's test suite.
//! - Quantity units convert within time, mass, length and volume; other unit pairs are unequal and
//!   unordered (no UCUM engine). Calendar months/years are not UCUM `mo`/`a`.

mod ast;
mod context;
mod decimal;
mod eval;
mod html;
mod model;
mod node;
mod parser;
mod temporal;
mod value;

#[cfg(test)]
mod tests;

pub use context::{Coded, Conformance, EvalContext, Resolver, Terminology};
pub use decimal::Decimal;
pub use html::check_narrative;
pub use model::{ChildType, InferredModel, Model, r4_is_subtype};
pub use node::{Node, NodeKind};
pub use parser::ParseError;
pub use temporal::{Precision, Temporal, TemporalKind};
pub use value::{Collection, Item, NodeItem};

/// An evaluation failure. Evaluation never panics; these are the ways it can refuse.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The expression calls a function this engine does not implement.
    #[error("unsupported FHIRPath function {name}()")]
    UnsupportedFunction { name: String },
    /// An operand or argument had the wrong type.
    #[error("type error in {operation}: {message}")]
    Type {
        operation: &'static str,
        message: String,
    },
    /// A single item was required and the collection had several.
    #[error("expected {what} (a single item), found {count} items")]
    NotSingleton { what: &'static str, count: usize },
    /// A regular expression built at evaluation time did not compile.
    #[error("invalid regular expression `{pattern}`")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// `%name` that the context does not define.
    #[error("undefined environment variable %{0}")]
    UndefinedVariable(String),
    /// The evaluation grew beyond the engine's limits (runaway `repeat()`, huge intermediate results).
    #[error("evaluation limit exceeded: {0}")]
    Limit(&'static str),
}

/// A parsed, compiled FHIRPath expression. Parse once, evaluate many times; `Send + Sync`.
#[derive(Debug)]
pub struct Expr {
    source: String,
    ast: ast::Ast,
}

impl Expr {
    /// Parses and compiles an expression. Unknown function names are accepted here (so a profile with
    /// an exotic invariant still loads) and reported by [`Expr::unsupported_functions`] and at evaluation.
    pub fn parse(source: &str) -> Result<Expr, ParseError> {
        Ok(Expr {
            source: source.to_owned(),
            ast: parser::parse(source)?,
        })
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Names of functions the expression calls that this engine does not implement.
    pub fn unsupported_functions(&self) -> Vec<String> {
        let mut out = Vec::new();
        eval::unsupported(&self.ast, &mut out);
        out
    }

    /// Evaluates on `focus` (which is also `%context`). Its type comes from `resourceType`, if any; use
    /// [`Expr::evaluate_typed`] when the focus is an element whose type the caller knows.
    pub fn evaluate<'a, N: Node>(
        &'a self,
        ctx: &EvalContext<'a, N>,
        focus: &'a N,
    ) -> Result<Collection<'a, N>, EvalError> {
        let ty = focus.field("resourceType").and_then(Node::as_str);
        eval::run(&self.ast, ctx, Item::node(focus, ty))
    }

    /// Evaluates on `focus` of FHIR type `ty` (a type name or a model key such as
    /// `Observation.component`).
    pub fn evaluate_typed<'a, N: Node>(
        &'a self,
        ctx: &EvalContext<'a, N>,
        focus: &'a N,
        ty: &'a str,
    ) -> Result<Collection<'a, N>, EvalError> {
        eval::run(&self.ast, ctx, Item::node(focus, Some(ty)))
    }

    /// Evaluates on an arbitrary item (e.g. one produced by another expression).
    pub fn evaluate_item<'a, N: Node>(
        &'a self,
        ctx: &EvalContext<'a, N>,
        focus: Item<'a, N>,
    ) -> Result<Collection<'a, N>, EvalError> {
        eval::run(&self.ast, ctx, focus)
    }
}
