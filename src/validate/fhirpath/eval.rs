//! The tree-walking evaluator. Collections are passed down as slices (a lambda's per-item focus is a
//! one-element slice, never a new allocation); results are inline for zero or one item.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::EvalError;
use super::ast::{Ast, BinOp, Extra, Func, Lit, TypeSpec, Var};
use super::context::{Coded, EvalContext};
use super::decimal::Decimal;
use super::html;
use super::model::{ChildType, choice_suffix_type};
use super::node::{Node, NodeKind};
use super::parser::compile_regex;
use super::temporal::{Precision, Temporal, TemporalKind};
use super::value::{
    Collection, Item, NodeItem, Prim, item_cmp, item_eq, item_equiv, singleton_bool, unit_factor,
};

type R<'a, N> = Result<Collection<'a, N>, EvalError>;

/// Largest collection `descendants()` / `repeat()` may build.
const MAX_ITEMS: usize = 1_000_000;

pub(crate) fn run<'a, N: Node>(
    ast: &'a Ast,
    ctx: &EvalContext<'a, N>,
    focus: Item<'a, N>,
) -> R<'a, N> {
    let ev = Evaluator {
        ctx,
        context: focus.clone(),
    };
    let focus = [focus];
    let scope = Scope {
        this: &focus,
        index: None,
        total: None,
    };
    ev.eval(ast, &focus, &scope)
}

pub(crate) fn unsupported(ast: &Ast, out: &mut Vec<String>) {
    match ast {
        Ast::Member { base: Some(b), .. } => unsupported(b, out),
        Ast::Call {
            base, func, args, ..
        } => {
            if let Some(b) = base {
                unsupported(b, out);
            }
            if matches!(
                func,
                Func::Unknown(_) | Func::LowBoundary | Func::HighBoundary
            ) && !out.iter().any(|n| n == func.name())
            {
                out.push(func.name().to_owned());
            }
            for a in args {
                unsupported(a, out);
            }
        }
        Ast::Indexer(a, b) | Ast::Bin(_, a, b) => {
            unsupported(a, out);
            unsupported(b, out);
        }
        Ast::Neg(a) | Ast::Is(a, _) | Ast::As(a, _) => unsupported(a, out),
        _ => {}
    }
}

struct Evaluator<'e, 'a, N> {
    ctx: &'e EvalContext<'a, N>,
    context: Item<'a, N>,
}

/// The iteration variables of the innermost function that iterates.
struct Scope<'s, 'a, N> {
    this: &'s [Item<'a, N>],
    index: Option<usize>,
    total: Option<&'s [Item<'a, N>]>,
}

fn type_err<T>(operation: &'static str, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Type {
        operation,
        message: message.into(),
    })
}

fn from_items<'a, N: Node>(items: &[Item<'a, N>]) -> Collection<'a, N> {
    let mut c = Collection::empty();
    for i in items {
        c.push(i.clone());
    }
    c
}

fn is_complex<N: Node>(v: &N) -> bool {
    match v.kind() {
        NodeKind::Object => true,
        NodeKind::Array => v
            .elements()
            .find(|e| e.kind() != NodeKind::Null)
            .is_some_and(|e| e.kind() == NodeKind::Object),
        _ => false,
    }
}

/// The `_name` sibling of a primitive, without allocating for ordinary names.
fn underscore<'a, N: Node>(obj: &'a N, name: &str) -> Option<&'a N> {
    let mut buf = [0u8; 96];
    let n = name.len();
    if n + 1 > buf.len() {
        return obj.field(&format!("_{name}"));
    }
    buf[0] = b'_';
    buf[1..=n].copy_from_slice(name.as_bytes());
    let key = std::str::from_utf8(&buf[..=n]).ok()?;
    obj.field(key)
}

/// A type for a JSON key with no declared type: choice suffixes (`onsetAge`) and names that end in a
/// type name (`birthDate`) are typed by it. Keys without an upper-case letter (most) cost one scan.
fn infer_key_type(key: &str) -> Option<&'static str> {
    let bytes = key.as_bytes();
    // The leftmost capital that starts a known type name gives the longest suffix (`DateTime`, not `Time`).
    for i in 1..bytes.len() {
        if bytes[i].is_ascii_uppercase()
            && (bytes[i - 1].is_ascii_lowercase() || bytes[i - 1].is_ascii_digit())
            && let Some(t) = choice_suffix_type(&key[i..])
        {
            return Some(t);
        }
    }
    None
}

fn type_of_value<'a, N: Node>(v: &'a N, ty: Option<&'a str>) -> Option<&'a str> {
    if v.kind() == NodeKind::Object
        && let Some(rt) = v.field("resourceType").and_then(Node::as_str)
    {
        return Some(rt);
    }
    ty
}

/// Pushes the items of one JSON field (flattening arrays, pairing `_name` siblings).
fn push_values<'a, N: Node>(
    value: Option<&'a N>,
    meta: Option<&'a N>,
    ty: Option<&'a str>,
    out: &mut Collection<'a, N>,
) {
    let obj_meta = |m: Option<&'a N>| m.filter(|m| m.kind() == NodeKind::Object);
    match value {
        Some(v) if v.kind() == NodeKind::Array => {
            let mut metas = meta
                .filter(|m| m.kind() == NodeKind::Array)
                .into_iter()
                .flat_map(|m| m.elements());
            for e in v.elements() {
                let m = obj_meta(metas.next());
                if e.kind() == NodeKind::Null {
                    if m.is_some() {
                        out.push(Item::Node(NodeItem {
                            value: None,
                            meta: m,
                            ty,
                        }));
                    }
                } else {
                    out.push(Item::Node(NodeItem {
                        value: Some(e),
                        meta: m,
                        ty: type_of_value(e, ty),
                    }));
                }
            }
        }
        Some(v) if v.kind() != NodeKind::Null => out.push(Item::Node(NodeItem {
            value: Some(v),
            meta: obj_meta(meta),
            ty: type_of_value(v, ty),
        })),
        _ => match meta {
            Some(m) if m.kind() == NodeKind::Array => {
                for m in m.elements().filter(|m| m.kind() == NodeKind::Object) {
                    out.push(Item::Node(NodeItem {
                        value: None,
                        meta: Some(m),
                        ty,
                    }));
                }
            }
            Some(m) if m.kind() == NodeKind::Object => out.push(Item::Node(NodeItem {
                value: None,
                meta: Some(m),
                ty,
            })),
            _ => {}
        },
    }
}

fn is_string_family(t: &str) -> bool {
    matches!(
        t,
        "string"
            | "code"
            | "id"
            | "markdown"
            | "uri"
            | "url"
            | "canonical"
            | "oid"
            | "uuid"
            | "base64Binary"
            | "xhtml"
            | "String"
    )
}

impl<'a, N: Node> Evaluator<'_, 'a, N> {
    fn eval(&self, ast: &'a Ast, focus: &[Item<'a, N>], scope: &Scope<'_, 'a, N>) -> R<'a, N> {
        match ast {
            Ast::Empty => Ok(Collection::empty()),
            Ast::Lit(lit) => Ok(Collection::one(match lit {
                Lit::Bool(b) => Item::Bool(*b),
                Lit::Str(s) => Item::String(Cow::Borrowed(s)),
                Lit::Int(i) => Item::Integer(*i),
                Lit::Dec(d) => Item::Decimal(*d),
                Lit::Temporal(t) => Item::Temporal(*t),
                Lit::Quantity(d, u) => Item::Quantity(*d, Cow::Borrowed(u)),
            })),
            Ast::This => Ok(from_items(scope.this)),
            Ast::Index => Ok(match scope.index {
                Some(i) => Collection::one(Item::Integer(i as i64)),
                None => Collection::empty(),
            }),
            Ast::Total => Ok(from_items(scope.total.unwrap_or(&[]))),
            Ast::Var(v) => self.var(v),
            Ast::Member { base, name } => {
                let owned;
                let input = match base {
                    Some(b) => {
                        owned = self.eval(b, focus, scope)?;
                        owned.as_slice()
                    }
                    None if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                        // `Observation.value`: a leading type name selects the focus if it has that type.
                        let spec = TypeSpec {
                            namespace: None,
                            name: name.clone(),
                        };
                        let mut out = Collection::empty();
                        for item in focus {
                            if self.is_type(item, &spec) {
                                out.push(item.clone());
                            }
                        }
                        return Ok(out);
                    }
                    None => focus,
                };
                let mut out = Collection::empty();
                for item in input {
                    self.member(item, name, &mut out);
                }
                Ok(out)
            }
            Ast::Call {
                base,
                func,
                args,
                extra,
            } => {
                let owned;
                let input = match base {
                    Some(b) => {
                        owned = self.eval(b, focus, scope)?;
                        owned.as_slice()
                    }
                    None => focus,
                };
                self.call(func, input, args, extra.as_deref(), scope)
            }
            Ast::Indexer(base, idx) => {
                let input = self.eval(base, focus, scope)?;
                let idx = self.eval(idx, scope.this, scope)?;
                let Some(i) = int_of(idx.as_slice(), "indexer")? else {
                    return Ok(Collection::empty());
                };
                Ok(usize::try_from(i)
                    .ok()
                    .and_then(|i| input.as_slice().get(i))
                    .map(|it| Collection::one(it.clone()))
                    .unwrap_or_default())
            }
            Ast::Neg(inner) => {
                let v = self.eval(inner, focus, scope)?;
                match v.as_slice() {
                    [] => Ok(Collection::empty()),
                    [one] => Ok(match one.prim() {
                        Some(Prim::Integer(i)) => i
                            .checked_neg()
                            .map(|i| Collection::one(Item::Integer(i)))
                            .unwrap_or_default(),
                        Some(Prim::Decimal(d)) => Collection::one(Item::Decimal(d.neg())),
                        Some(Prim::Quantity(d, u)) => {
                            Collection::one(Item::Quantity(d.neg(), Cow::Owned(u.to_owned())))
                        }
                        _ => return type_err("unary minus", format!("cannot negate {one:?}")),
                    }),
                    many => Err(EvalError::NotSingleton {
                        what: "an operand of unary minus",
                        count: many.len(),
                    }),
                }
            }
            Ast::Bin(op, l, r) => self.binary(*op, l, r, focus, scope),
            Ast::Is(inner, spec) => {
                let v = self.eval(inner, focus, scope)?;
                match v.as_slice() {
                    [] => Ok(Collection::empty()),
                    [one] => Ok(Collection::bool(self.is_type(one, spec))),
                    many => Err(EvalError::NotSingleton {
                        what: "the operand of `is`",
                        count: many.len(),
                    }),
                }
            }
            Ast::As(inner, spec) => {
                let v = self.eval(inner, focus, scope)?;
                Ok(self.filter_type(v.as_slice(), spec))
            }
        }
    }

    fn var(&self, v: &'a Var) -> R<'a, N> {
        let node = |n: Option<&'a N>| -> Collection<'a, N> {
            n.map(|n| {
                let ty = n.field("resourceType").and_then(Node::as_str);
                Collection::one(Item::node(n, ty))
            })
            .unwrap_or_default()
        };
        let s = |s: &'static str| Ok(Collection::one(Item::String(Cow::Borrowed(s))));
        match v {
            // Without an explicit resource, a focus that is a resource stands for itself.
            Var::Resource => Ok(node(self.ctx.resource.or_else(|| self.focus_resource()))),
            Var::RootResource => Ok(node(
                self.ctx
                    .root_resource
                    .or(self.ctx.resource)
                    .or_else(|| self.focus_resource()),
            )),
            Var::Context => Ok(Collection::one(self.context.clone())),
            Var::Ucum => s("http://unitsofmeasure.org"),
            Var::Sct => s("http://snomed.info/sct"),
            Var::Loinc => s("http://loinc.org"),
            Var::Other(name) => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    Ok(Collection::one(Item::String(Cow::Owned(format!(
                        "http://hl7.org/fhir/ValueSet/{vs}"
                    )))))
                } else if let Some(ext) = name.strip_prefix("ext-") {
                    Ok(Collection::one(Item::String(Cow::Owned(format!(
                        "http://hl7.org/fhir/StructureDefinition/{ext}"
                    )))))
                } else {
                    Err(EvalError::UndefinedVariable(name.to_string()))
                }
            }
        }
    }

    fn focus_resource(&self) -> Option<&'a N> {
        self.context
            .as_node()
            .filter(|n| n.field("resourceType").and_then(Node::as_str).is_some())
    }

    // ---- navigation ----

    fn member(&self, item: &Item<'a, N>, name: &str, out: &mut Collection<'a, N>) {
        let Item::Node(n) = item else { return };
        let Some(obj) = n.value.filter(|v| v.kind() == NodeKind::Object) else {
            // A primitive's `id` and `extension` live in its `_name` sibling.
            if let (Some(meta), "extension" | "id") = (n.meta, name) {
                let ty = if name == "id" { "string" } else { "Extension" };
                push_values(meta.field(name), None, Some(ty), out);
            }
            return;
        };
        if name == "resourceType" {
            return;
        }
        match n.ty.and_then(|t| self.ctx.model.child_type(t, name)) {
            Some(ChildType::Type(t)) => {
                self.push_field(obj, name, Some(t), out);
            }
            Some(ChildType::Choice) => self.push_choice(obj, name, out),
            None => {
                if !self.push_field(obj, name, infer_key_type(name), out) {
                    self.push_choice(obj, name, out);
                }
            }
        }
    }

    fn push_field(
        &self,
        obj: &'a N,
        name: &str,
        ty: Option<&'a str>,
        out: &mut Collection<'a, N>,
    ) -> bool {
        let value = obj.field(name);
        let meta = match value {
            Some(v) if is_complex(v) => None,
            _ => underscore(obj, name),
        };
        if value.is_none() && meta.is_none() {
            return false;
        }
        push_values(value, meta, ty, out);
        true
    }

    fn push_choice(&self, obj: &'a N, name: &str, out: &mut Collection<'a, N>) {
        for (key, v) in obj.fields() {
            if key.len() > name.len()
                && key.starts_with(name)
                && let Some(t) = choice_suffix_type(&key[name.len()..])
            {
                let meta = if is_complex(v) {
                    None
                } else {
                    underscore(obj, key)
                };
                push_values(Some(v), meta, Some(t), out);
            }
        }
    }

    /// The type of a child field with no declared name-level type.
    fn child_key_type(&self, parent: Option<&'a str>, key: &str) -> Option<&'a str> {
        if let Some(p) = parent {
            match self.ctx.model.child_type(p, key) {
                Some(ChildType::Type(t)) => return Some(t),
                Some(ChildType::Choice) => return None,
                None => {}
            }
        }
        infer_key_type(key)
    }

    fn children(&self, item: &Item<'a, N>, out: &mut Collection<'a, N>) {
        let Item::Node(n) = item else { return };
        let Some(obj) = n.value.filter(|v| v.kind() == NodeKind::Object) else {
            if let Some(meta) = n.meta {
                push_values(meta.field("id"), None, Some("string"), out);
                push_values(meta.field("extension"), None, Some("Extension"), out);
            }
            return;
        };
        for (key, v) in obj.fields() {
            if key == "resourceType" || key == "fhir_comments" {
                continue;
            }
            if let Some(plain) = key.strip_prefix('_') {
                // Extension-only primitives have no plain sibling.
                if obj.field(plain).is_none() {
                    push_values(None, Some(v), self.child_key_type(n.ty, plain), out);
                }
                continue;
            }
            let meta = if is_complex(v) {
                None
            } else {
                underscore(obj, key)
            };
            push_values(Some(v), meta, self.child_key_type(n.ty, key), out);
        }
    }

    fn descendants(&self, input: &[Item<'a, N>]) -> R<'a, N> {
        let mut out = Collection::empty();
        let mut level = Collection::empty();
        for i in input {
            self.children(i, &mut level);
        }
        while !level.is_empty() {
            let mut next = Collection::empty();
            for i in level.iter() {
                self.children(i, &mut next);
            }
            out.0.extend(level.0.drain(..));
            if out.len() + next.len() > MAX_ITEMS {
                return Err(EvalError::Limit("descendants() too large"));
            }
            level = next;
        }
        Ok(out)
    }

    // ---- types ----

    fn is_type(&self, item: &Item<'a, N>, spec: &TypeSpec) -> bool {
        let name = &*spec.name;
        let ns = spec.namespace.as_deref();
        match item {
            Item::Node(n) => {
                if ns == Some("System") {
                    return item.system_type() == Some(name);
                }
                let unqualified = ns.is_none();
                match n.ty {
                    Some(t) => {
                        t == name
                            || self.ctx.model.is_subtype(t, name)
                            || (unqualified && item.system_type() == Some(name))
                    }
                    None => {
                        let Some(v) = n.value else { return false };
                        match v.kind() {
                            NodeKind::String => {
                                let s = v.as_str().unwrap_or("");
                                is_string_family(name)
                                    || match name {
                                        "date" => Temporal::parse_date_time(s, false)
                                            .is_some_and(|t| t.kind == TemporalKind::Date),
                                        "dateTime" | "instant" => {
                                            Temporal::parse_date_time(s, false).is_some()
                                        }
                                        "time" => Temporal::parse_time(s, false).is_some(),
                                        _ => false,
                                    }
                            }
                            NodeKind::Bool => matches!(name, "boolean" | "Boolean"),
                            NodeKind::Number => match item.prim() {
                                Some(Prim::Integer(i)) => match name {
                                    "integer" | "Integer" | "decimal" => true,
                                    "unsignedInt" => i >= 0,
                                    "positiveInt" => i > 0,
                                    _ => false,
                                },
                                _ => matches!(name, "decimal" | "Decimal"),
                            },
                            _ => false,
                        }
                    }
                }
            }
            _ => matches!(ns, None | Some("System")) && item.system_type() == Some(name),
        }
    }

    fn filter_type(&self, items: &[Item<'a, N>], spec: &TypeSpec) -> Collection<'a, N> {
        let mut out = Collection::empty();
        for i in items {
            if self.is_type(i, spec) {
                out.push(i.clone());
            }
        }
        out
    }

    // ---- operators ----

    fn bool_of(
        &self,
        ast: &'a Ast,
        focus: &[Item<'a, N>],
        scope: &Scope<'_, 'a, N>,
    ) -> Result<Option<bool>, EvalError> {
        let c = self.eval(ast, focus, scope)?;
        singleton_bool(c.as_slice())
    }

    fn binary(
        &self,
        op: BinOp,
        l: &'a Ast,
        r: &'a Ast,
        focus: &[Item<'a, N>],
        scope: &Scope<'_, 'a, N>,
    ) -> R<'a, N> {
        let opt = |b: Option<bool>| b.map(Collection::bool).unwrap_or_default();
        match op {
            BinOp::And => {
                let a = self.bool_of(l, focus, scope)?;
                if a == Some(false) {
                    return Ok(Collection::bool(false));
                }
                let b = self.bool_of(r, focus, scope)?;
                return Ok(opt(match (a, b) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                }));
            }
            BinOp::Or => {
                let a = self.bool_of(l, focus, scope)?;
                if a == Some(true) {
                    return Ok(Collection::bool(true));
                }
                let b = self.bool_of(r, focus, scope)?;
                return Ok(opt(match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }));
            }
            BinOp::Xor => {
                let a = self.bool_of(l, focus, scope)?;
                let b = self.bool_of(r, focus, scope)?;
                return Ok(opt(match (a, b) {
                    (Some(x), Some(y)) => Some(x != y),
                    _ => None,
                }));
            }
            BinOp::Implies => {
                let a = self.bool_of(l, focus, scope)?;
                if a == Some(false) {
                    return Ok(Collection::bool(true));
                }
                let b = self.bool_of(r, focus, scope)?;
                return Ok(opt(match (a, b) {
                    (Some(true), b) => b,
                    (None, Some(true)) => Some(true),
                    _ => None,
                }));
            }
            _ => {}
        }
        let a = self.eval(l, focus, scope)?;
        let b = self.eval(r, focus, scope)?;
        let (a, b) = (a.as_slice(), b.as_slice());
        match op {
            BinOp::Union => Ok(union(a, b)),
            BinOp::Eq => Ok(opt(coll_eq(a, b))),
            BinOp::Ne => Ok(opt(coll_eq(a, b).map(|x| !x))),
            BinOp::Equiv => Ok(Collection::bool(coll_equiv(a, b))),
            BinOp::NotEquiv => Ok(Collection::bool(!coll_equiv(a, b))),
            BinOp::In | BinOp::Contains => {
                let (needle, hay) = if op == BinOp::In { (a, b) } else { (b, a) };
                match needle {
                    [] => Ok(Collection::empty()),
                    [x] => Ok(Collection::bool(
                        hay.iter().any(|y| item_eq(x, y) == Some(true)),
                    )),
                    many => Err(EvalError::NotSingleton {
                        what: "the left operand of `in`",
                        count: many.len(),
                    }),
                }
            }
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let (x, y) = match (a, b) {
                    ([], _) | (_, []) => return Ok(Collection::empty()),
                    ([x], [y]) => (x, y),
                    _ => {
                        return Err(EvalError::NotSingleton {
                            what: "an operand of a comparison",
                            count: a.len().max(b.len()),
                        });
                    }
                };
                Ok(opt(item_cmp(x, y)?.map(|o| match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Gt => o == Ordering::Greater,
                    BinOp::Le => o != Ordering::Greater,
                    _ => o != Ordering::Less,
                })))
            }
            BinOp::Concat => {
                let s = |c: &[Item<'a, N>]| -> Result<String, EvalError> {
                    match c {
                        [] => Ok(String::new()),
                        [one] => Ok(one.to_string_value().unwrap_or_default()),
                        many => Err(EvalError::NotSingleton {
                            what: "an operand of `&`",
                            count: many.len(),
                        }),
                    }
                };
                let mut out = s(a)?;
                out.push_str(&s(b)?);
                Ok(Collection::one(Item::String(Cow::Owned(out))))
            }
            _ => {
                let (x, y) = match (a, b) {
                    ([], _) | (_, []) => return Ok(Collection::empty()),
                    ([x], [y]) => (x, y),
                    _ => {
                        return Err(EvalError::NotSingleton {
                            what: "an arithmetic operand",
                            count: a.len().max(b.len()),
                        });
                    }
                };
                Ok(arith(op, x, y)?.map(Collection::one).unwrap_or_default())
            }
        }
    }

    // ---- functions ----

    fn arg(&self, ast: &'a Ast, scope: &Scope<'_, 'a, N>) -> R<'a, N> {
        self.eval(ast, scope.this, scope)
    }

    fn str_arg(
        &self,
        ast: &'a Ast,
        scope: &Scope<'_, 'a, N>,
        f: &'static str,
    ) -> Result<Option<Cow<'a, str>>, EvalError> {
        let c = self.arg(ast, scope)?;
        match c.as_slice() {
            [] => Ok(None),
            [one] => match cow_str(one) {
                Some(s) => Ok(Some(s)),
                None => type_err(f, format!("expected a string argument, found {one:?}")),
            },
            many => Err(EvalError::NotSingleton {
                what: "a string argument",
                count: many.len(),
            }),
        }
    }

    fn int_arg(
        &self,
        ast: &'a Ast,
        scope: &Scope<'_, 'a, N>,
        f: &'static str,
    ) -> Result<Option<i64>, EvalError> {
        let c = self.arg(ast, scope)?;
        int_of(c.as_slice(), f)
    }

    fn each<'s>(
        &self,
        input: &'s [Item<'a, N>],
        arg: &'a Ast,
        scope: &Scope<'_, 'a, N>,
        mut f: impl FnMut(usize, &'s Item<'a, N>, Collection<'a, N>) -> Result<bool, EvalError>,
    ) -> Result<(), EvalError> {
        for (i, item) in input.iter().enumerate() {
            let one = std::slice::from_ref(item);
            let inner = Scope {
                this: one,
                index: Some(i),
                total: scope.total,
            };
            let r = self.eval(arg, one, &inner)?;
            if !f(i, item, r)? {
                break;
            }
        }
        Ok(())
    }

    fn call(
        &self,
        func: &'a Func,
        input: &[Item<'a, N>],
        args: &'a [Ast],
        extra: Option<&'a Extra>,
        scope: &Scope<'_, 'a, N>,
    ) -> R<'a, N> {
        let b = |v: bool| Ok(Collection::bool(v));
        let type_spec = || match extra {
            Some(Extra::Type(t)) => Ok(t),
            _ => type_err("type function", "missing type argument"),
        };
        match func {
            Func::Empty => b(input.is_empty()),
            Func::Exists => match args.first() {
                None => b(!input.is_empty()),
                Some(crit) => {
                    let mut found = false;
                    self.each(input, crit, scope, |_, _, r| {
                        found = singleton_bool(r.as_slice())? == Some(true);
                        Ok(!found)
                    })?;
                    b(found)
                }
            },
            Func::All => {
                let mut all = true;
                self.each(input, &args[0], scope, |_, _, r| {
                    all = singleton_bool(r.as_slice())? == Some(true);
                    Ok(all)
                })?;
                b(all)
            }
            Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
                let mut vals = input.iter().map(|i| match i.prim() {
                    Some(Prim::Bool(v)) => Ok(v),
                    _ => type_err(func_name(func), format!("{i:?} is not a boolean")),
                });
                let r = match func {
                    Func::AllTrue => vals.try_fold(true, |acc, v| v.map(|v| acc && v))?,
                    Func::AnyTrue => vals.try_fold(false, |acc, v| v.map(|v| acc || v))?,
                    Func::AllFalse => vals.try_fold(true, |acc, v| v.map(|v| acc && !v))?,
                    _ => vals.try_fold(false, |acc, v| v.map(|v| acc || !v))?,
                };
                b(r)
            }
            Func::SubsetOf | Func::SupersetOf => {
                let other = self.arg(&args[0], scope)?;
                let (small, big) = if *func == Func::SubsetOf {
                    (input, other.as_slice())
                } else {
                    (other.as_slice(), input)
                };
                b(small.iter().all(|x| contains(big, x)))
            }
            Func::Count => Ok(Collection::one(Item::Integer(input.len() as i64))),
            Func::Distinct => Ok(union(input, &[])),
            Func::IsDistinct => b(union(input, &[]).len() == input.len()),
            Func::Where => {
                let mut out = Collection::empty();
                self.each(input, &args[0], scope, |_, item, r| {
                    if singleton_bool(r.as_slice())? == Some(true) {
                        out.push(item.clone());
                    }
                    Ok(true)
                })?;
                Ok(out)
            }
            Func::Select => {
                let mut out = Collection::empty();
                self.each(input, &args[0], scope, |_, _, r| {
                    out.0.extend(r.0);
                    Ok(true)
                })?;
                Ok(out)
            }
            Func::Repeat => {
                let mut out: Collection<'a, N> = Collection::empty();
                let mut frontier = from_items(input);
                while !frontier.is_empty() {
                    let mut next = Collection::empty();
                    self.each(frontier.as_slice(), &args[0], scope, |_, _, r| {
                        for it in r.0 {
                            if !contains(out.as_slice(), &it) && !contains(next.as_slice(), &it) {
                                next.push(it);
                            }
                        }
                        Ok(true)
                    })?;
                    out.0.extend(next.0.iter().cloned());
                    if out.len() > MAX_ITEMS {
                        return Err(EvalError::Limit("repeat() too large"));
                    }
                    frontier = next;
                }
                Ok(out)
            }
            Func::OfType => Ok(self.filter_type(input, type_spec()?)),
            Func::As => Ok(self.filter_type(input, type_spec()?)),
            Func::Is => match input {
                [] => Ok(Collection::empty()),
                [one] => b(self.is_type(one, type_spec()?)),
                many => Err(EvalError::NotSingleton {
                    what: "the input of is()",
                    count: many.len(),
                }),
            },
            Func::Single => match input {
                [] => Ok(Collection::empty()),
                [one] => Ok(Collection::one(one.clone())),
                many => Err(EvalError::NotSingleton {
                    what: "the input of single()",
                    count: many.len(),
                }),
            },
            Func::First => Ok(from_items(&input[..input.len().min(1)])),
            Func::Last => Ok(from_items(&input[input.len().saturating_sub(1)..])),
            Func::Tail => Ok(from_items(input.get(1..).unwrap_or(&[]))),
            Func::Skip => {
                let n = self.int_arg(&args[0], scope, "skip")?.unwrap_or(0);
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(from_items(input.get(n..).unwrap_or(&[])))
            }
            Func::Take => {
                let n = self.int_arg(&args[0], scope, "take")?.unwrap_or(0);
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(from_items(&input[..input.len().min(n)]))
            }
            Func::Intersect => {
                let other = self.arg(&args[0], scope)?;
                let mut out = Collection::empty();
                for x in input {
                    if contains(other.as_slice(), x) && !contains(out.as_slice(), x) {
                        out.push(x.clone());
                    }
                }
                Ok(out)
            }
            Func::Exclude => {
                let other = self.arg(&args[0], scope)?;
                let mut out = Collection::empty();
                for x in input {
                    if !contains(other.as_slice(), x) {
                        out.push(x.clone());
                    }
                }
                Ok(out)
            }
            Func::Union => {
                let other = self.arg(&args[0], scope)?;
                Ok(union(input, other.as_slice()))
            }
            Func::Combine => {
                let other = self.arg(&args[0], scope)?;
                let mut out = from_items(input);
                out.0.extend(other.0);
                Ok(out)
            }
            Func::Iif => {
                // The criterion and branches see the input (at most one item) as their focus and `$this`.
                if input.len() > 1 {
                    return Err(EvalError::NotSingleton {
                        what: "the input of iif()",
                        count: input.len(),
                    });
                }
                let inner = Scope {
                    this: input,
                    index: scope.index,
                    total: scope.total,
                };
                let base = input;
                let c = self.eval(&args[0], base, &inner)?;
                if singleton_bool(c.as_slice())? == Some(true) {
                    self.eval(&args[1], base, &inner)
                } else if let Some(other) = args.get(2) {
                    self.eval(other, base, &inner)
                } else {
                    Ok(Collection::empty())
                }
            }
            Func::Not => match singleton_bool(input)? {
                Some(v) => b(!v),
                None => Ok(Collection::empty()),
            },
            Func::HasValue => b(matches!(input, [one] if one.has_value())),
            Func::GetValue => Ok(match input {
                [one] if one.has_value() => match one.prim() {
                    Some(p) => Collection::one(prim_item(p)),
                    None => Collection::empty(),
                },
                _ => Collection::empty(),
            }),
            Func::Children => {
                let mut out = Collection::empty();
                for i in input {
                    self.children(i, &mut out);
                }
                Ok(out)
            }
            Func::Descendants => self.descendants(input),
            Func::Join => {
                let sep = match args.first() {
                    Some(a) => self.str_arg(a, scope, "join")?.unwrap_or_default(),
                    None => Cow::Borrowed(""),
                };
                let mut out = String::new();
                for (i, item) in input.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&sep);
                    }
                    match item.as_str() {
                        Some(s) => out.push_str(s),
                        None => return type_err("join", format!("{item:?} is not a string")),
                    }
                }
                Ok(Collection::one(Item::String(Cow::Owned(out))))
            }
            Func::Trace => {
                if let Some(name) = self.str_arg(&args[0], scope, "trace")? {
                    tracing::trace!(target: "fhirpath", name = %name, items = input.len(), "trace()");
                }
                Ok(from_items(input))
            }
            Func::Extension => {
                let Some(url) = self.str_arg(&args[0], scope, "extension")? else {
                    return Ok(Collection::empty());
                };
                let mut exts = Collection::empty();
                for i in input {
                    self.member(i, "extension", &mut exts);
                }
                let mut out = Collection::empty();
                for e in exts.0 {
                    let matches = e
                        .as_node()
                        .and_then(|n| n.field("url"))
                        .and_then(Node::as_str)
                        == Some(&*url);
                    if matches {
                        out.push(e);
                    }
                }
                Ok(out)
            }
            Func::Today | Func::Now | Func::TimeOfDay => {
                let mut t = self.ctx.now;
                match func {
                    Func::Today => {
                        t.kind = TemporalKind::Date;
                        t.precision = Precision::Day;
                        t.offset = None;
                    }
                    Func::TimeOfDay => {
                        t.kind = TemporalKind::Time;
                        t.offset = None;
                    }
                    _ => {}
                }
                Ok(Collection::one(Item::Temporal(t)))
            }
            Func::Resolve => {
                let mut out = Collection::empty();
                for i in input {
                    let reference = match i {
                        Item::Node(n) if n.value.is_some_and(|v| v.kind() == NodeKind::Object) => n
                            .value
                            .and_then(|v| v.field("reference"))
                            .and_then(Node::as_str),
                        other => other.as_node().and_then(Node::as_str).or(match other {
                            Item::String(Cow::Borrowed(s)) => Some(*s),
                            _ => None,
                        }),
                    };
                    if let Some(found) = reference.and_then(|r| self.resolve(r)) {
                        out.push(found);
                    }
                }
                Ok(out)
            }
            Func::MemberOf => {
                let Some(vs) = self.str_arg(&args[0], scope, "memberOf")? else {
                    return Ok(Collection::empty());
                };
                let [one] = input else {
                    return Ok(Collection::empty());
                };
                let Some(term) = self.ctx.terminology else {
                    return Ok(Collection::empty());
                };
                let codes = codes_of(one);
                if codes.is_empty() {
                    return Ok(Collection::empty());
                }
                Ok(term
                    .member_of(&codes, &vs)
                    .map(Collection::bool)
                    .unwrap_or_default())
            }
            Func::ConformsTo => {
                let Some(url) = self.str_arg(&args[0], scope, "conformsTo")? else {
                    return Ok(Collection::empty());
                };
                let ([one], Some(conf)) = (input, self.ctx.conformance) else {
                    return Ok(Collection::empty());
                };
                Ok(one
                    .as_node()
                    .and_then(|n| conf.conforms_to(n, &url))
                    .map(Collection::bool)
                    .unwrap_or_default())
            }
            Func::HtmlChecks => match input {
                [] => Ok(Collection::empty()),
                [one] => match one.as_str() {
                    Some(s) => b(html::check_narrative(s).is_ok()),
                    None => b(false),
                },
                many => Err(EvalError::NotSingleton {
                    what: "the input of htmlChecks()",
                    count: many.len(),
                }),
            },
            Func::Aggregate => {
                let mut total = match args.get(1) {
                    Some(init) => self.arg(init, scope)?,
                    None => Collection::empty(),
                };
                for (i, item) in input.iter().enumerate() {
                    let one = std::slice::from_ref(item);
                    let inner = Scope {
                        this: one,
                        index: Some(i),
                        total: Some(total.as_slice()),
                    };
                    total = self.eval(&args[0], one, &inner)?;
                }
                Ok(total)
            }
            Func::LowBoundary | Func::HighBoundary => Err(EvalError::UnsupportedFunction {
                name: func.name().to_owned(),
            }),
            Func::Unknown(name) => Err(EvalError::UnsupportedFunction {
                name: name.to_string(),
            }),
            _ => self.scalar(func, input, args, extra, scope),
        }
    }

    /// Functions on a single input item (strings, numbers, conversions).
    fn scalar(
        &self,
        func: &'a Func,
        input: &[Item<'a, N>],
        args: &'a [Ast],
        extra: Option<&'a Extra>,
        scope: &Scope<'_, 'a, N>,
    ) -> R<'a, N> {
        let one = match input {
            [] => return Ok(Collection::empty()),
            [one] => one,
            many => {
                return Err(EvalError::NotSingleton {
                    what: "the input of a function",
                    count: many.len(),
                });
            }
        };
        let ok = |i: Item<'a, N>| Ok(Collection::one(i));
        let none = || Ok(Collection::empty());
        let b = |v: bool| Ok(Collection::bool(v));
        let owned = |s: String| Ok(Collection::one(Item::String(Cow::Owned(s))));
        match func {
            Func::ToBoolean | Func::ConvertsToBoolean => {
                let v = to_boolean(one);
                if *func == Func::ConvertsToBoolean {
                    return b(v.is_some());
                }
                v.map_or_else(none, &b)
            }
            Func::ToInteger | Func::ConvertsToInteger => {
                let v = match one.prim() {
                    Some(Prim::Integer(i)) => Some(i),
                    Some(Prim::Bool(v)) => Some(i64::from(v)),
                    Some(Prim::String(s)) => {
                        let t = s.strip_prefix('+').unwrap_or(s);
                        t.parse::<i64>().ok().filter(|_| {
                            !t.is_empty()
                                && t.trim_start_matches('-')
                                    .bytes()
                                    .all(|c| c.is_ascii_digit())
                        })
                    }
                    _ => None,
                };
                if *func == Func::ConvertsToInteger {
                    return b(v.is_some());
                }
                v.map_or_else(none, |v| ok(Item::Integer(v)))
            }
            Func::ToDecimal | Func::ConvertsToDecimal => {
                let v = match one.prim() {
                    Some(Prim::Integer(i)) => Some(Decimal::from_i64(i)),
                    Some(Prim::Decimal(d)) => Some(d),
                    Some(Prim::Bool(v)) => Some(Decimal::from_i64(i64::from(v))),
                    Some(Prim::String(s)) if !s.contains(['e', 'E']) => Decimal::parse(s),
                    _ => None,
                };
                if *func == Func::ConvertsToDecimal {
                    return b(v.is_some());
                }
                v.map_or_else(none, |v| ok(Item::Decimal(v)))
            }
            Func::ToStr | Func::ConvertsToString => {
                let v = one.to_string_value();
                if *func == Func::ConvertsToString {
                    return b(v.is_some());
                }
                v.map_or_else(none, owned)
            }
            Func::ToDate
            | Func::ConvertsToDate
            | Func::ToDateTime
            | Func::ConvertsToDateTime
            | Func::ToTime
            | Func::ConvertsToTime => {
                let want = match func {
                    Func::ToDate | Func::ConvertsToDate => TemporalKind::Date,
                    Func::ToDateTime | Func::ConvertsToDateTime => TemporalKind::DateTime,
                    _ => TemporalKind::Time,
                };
                let v = match one.prim() {
                    Some(Prim::Temporal(t)) => convert_temporal(t, want),
                    // Conversions accept every partial form a literal may take (`'2015-02-04T14'`).
                    Some(Prim::String(s)) => if want == TemporalKind::Time {
                        Temporal::parse_time(s, true)
                    } else {
                        Temporal::parse_date_time(s, true)
                    }
                    .and_then(|t| convert_temporal(t, want)),
                    _ => None,
                };
                if matches!(
                    func,
                    Func::ConvertsToDate | Func::ConvertsToDateTime | Func::ConvertsToTime
                ) {
                    return b(v.is_some());
                }
                v.map_or_else(none, |t| ok(Item::Temporal(t)))
            }
            Func::ToQuantity | Func::ConvertsToQuantity => {
                let v: Option<(Decimal, Cow<'a, str>)> = match one.prim() {
                    Some(Prim::Integer(i)) => Some((Decimal::from_i64(i), Cow::Borrowed("1"))),
                    Some(Prim::Decimal(d)) => Some((d, Cow::Borrowed("1"))),
                    Some(Prim::Quantity(d, u)) => Some((d, Cow::Owned(u.to_owned()))),
                    Some(Prim::String(s)) => parse_quantity(s),
                    _ => None,
                };
                let v = match (v, args.first()) {
                    (Some((d, u)), Some(unit)) => {
                        let target = self.str_arg(unit, scope, "toQuantity")?;
                        match target {
                            Some(t) if t == u => Some((d, u)),
                            Some(t) => convert_quantity(d, &u, &t).map(|d| (d, t)),
                            None => None,
                        }
                    }
                    (v, _) => v,
                };
                if *func == Func::ConvertsToQuantity {
                    return b(v.is_some());
                }
                v.map_or_else(none, |(d, u)| ok(Item::Quantity(d, u)))
            }
            Func::Abs
            | Func::Ceiling
            | Func::Floor
            | Func::Truncate
            | Func::Round
            | Func::Sqrt
            | Func::Ln
            | Func::Exp
            | Func::Log
            | Func::Power => self.math(func, one, args, scope),
            _ => {
                let Some(s) = cow_str(one).or_else(|| one.to_string_value().map(Cow::Owned)) else {
                    return type_err(func_name(func), format!("{one:?} is not a string"));
                };
                self.string_fn(func, s, args, extra, scope)
            }
        }
    }

    fn string_fn(
        &self,
        func: &'a Func,
        s: Cow<'a, str>,
        args: &'a [Ast],
        extra: Option<&'a Extra>,
        scope: &Scope<'_, 'a, N>,
    ) -> R<'a, N> {
        let ok = |i: Item<'a, N>| Ok(Collection::one(i));
        let b = |v: bool| Ok(Collection::bool(v));
        let owned = |s: String| Ok(Collection::one(Item::String(Cow::Owned(s))));
        let empty = || Ok(Collection::empty());
        macro_rules! arg_str {
            ($i:expr, $f:literal) => {
                match self.str_arg(&args[$i], scope, $f)? {
                    Some(a) => a,
                    None => return empty(),
                }
            };
        }
        match func {
            Func::StartsWith => b(s.starts_with(&*arg_str!(0, "startsWith"))),
            Func::EndsWith => b(s.ends_with(&*arg_str!(0, "endsWith"))),
            Func::Contains => b(s.contains(&*arg_str!(0, "contains"))),
            Func::IndexOf => {
                let needle = arg_str!(0, "indexOf");
                ok(Item::Integer(match s.find(&*needle) {
                    Some(byte) => s[..byte].chars().count() as i64,
                    None => -1,
                }))
            }
            Func::Substring => {
                let Some(start) = self.int_arg(&args[0], scope, "substring")? else {
                    return empty();
                };
                let len = match args.get(1) {
                    Some(a) => match self.int_arg(a, scope, "substring")? {
                        Some(l) => Some(l),
                        None => return empty(),
                    },
                    None => None,
                };
                let count = s.chars().count() as i64;
                if start < 0 || start >= count {
                    return empty();
                }
                let take = len.unwrap_or(count).max(0);
                owned(
                    s.chars()
                        .skip(start as usize)
                        .take(usize::try_from(take).unwrap_or(usize::MAX))
                        .collect(),
                )
            }
            Func::Upper => owned(s.to_uppercase()),
            Func::Lower => owned(s.to_lowercase()),
            Func::Replace => {
                let pat = arg_str!(0, "replace");
                let rep = arg_str!(1, "replace");
                if pat.is_empty() {
                    // Spec: an empty pattern inserts the substitution around every character.
                    let mut out = String::with_capacity(s.len() * (rep.len() + 1) + rep.len());
                    out.push_str(&rep);
                    for c in s.chars() {
                        out.push(c);
                        out.push_str(&rep);
                    }
                    return owned(out);
                }
                owned(s.replace(&*pat, &rep))
            }
            Func::Matches | Func::MatchesFull | Func::ReplaceMatches => {
                let dynamic;
                let re = match extra {
                    Some(Extra::Regex(re)) => re,
                    _ => {
                        let pattern = arg_str!(0, "matches");
                        dynamic = compile_regex(&pattern, *func == Func::MatchesFull).map_err(
                            |source| EvalError::Regex {
                                pattern: pattern.to_string(),
                                source,
                            },
                        )?;
                        &dynamic
                    }
                };
                if *func != Func::ReplaceMatches {
                    return b(re.is_match(&s));
                }
                let rep = arg_str!(1, "replaceMatches");
                // An empty pattern replaces nothing (spec example), rather than every position.
                if re.as_str().is_empty() {
                    return owned(s.into_owned());
                }
                owned(re.replace_all(&s, &*rep).into_owned())
            }
            Func::Length => ok(Item::Integer(s.chars().count() as i64)),
            Func::ToChars => {
                let mut out = Collection::empty();
                for c in s.chars() {
                    out.push(Item::String(Cow::Owned(c.to_string())));
                }
                Ok(out)
            }
            Func::Split => {
                let sep = arg_str!(0, "split");
                let mut out = Collection::empty();
                if sep.is_empty() {
                    out.push(Item::String(s));
                    return Ok(out);
                }
                for part in s.split(&*sep) {
                    out.push(Item::String(Cow::Owned(part.to_owned())));
                }
                Ok(out)
            }
            Func::Trim => owned(s.trim().to_owned()),
            other => type_err(
                "function",
                format!("{}() cannot be applied to a string", other.name()),
            ),
        }
    }

    fn math(
        &self,
        func: &'a Func,
        one: &Item<'a, N>,
        args: &'a [Ast],
        scope: &Scope<'_, 'a, N>,
    ) -> R<'a, N> {
        let ok = |i: Item<'a, N>| Ok(Collection::one(i));
        let empty = || Ok(Collection::empty());
        let int = |v: Option<i128>| match v.and_then(|v| i64::try_from(v).ok()) {
            Some(v) => Ok(Collection::one(Item::Integer(v))),
            None => Ok(Collection::empty()),
        };
        let dec = |v: Option<Decimal>| match v {
            Some(v) => Ok(Collection::one(Item::Decimal(v))),
            None => Ok(Collection::empty()),
        };
        let p = one.prim();
        let d = match &p {
            Some(Prim::Integer(i)) => Decimal::from_i64(*i),
            Some(Prim::Decimal(d)) => *d,
            Some(Prim::Quantity(d, u)) if *func == Func::Abs => {
                return ok(Item::Quantity(d.abs(), Cow::Owned((*u).to_owned())));
            }
            _ => return type_err(func_name(func), format!("{one:?} is not a number")),
        };
        let is_int = matches!(p, Some(Prim::Integer(_)));
        match func {
            Func::Abs => {
                if let Some(Prim::Integer(i)) = p {
                    return i.checked_abs().map_or_else(empty, |v| ok(Item::Integer(v)));
                }
                dec(Some(d.abs()))
            }
            Func::Ceiling => int(d.ceiling()),
            Func::Floor => int(d.floor()),
            Func::Truncate => int(d.truncate()),
            Func::Round => {
                let digits = match args.first() {
                    Some(a) => self.int_arg(a, scope, "round")?.unwrap_or(0),
                    None => 0,
                };
                if digits < 0 {
                    return type_err("round", "precision must be non-negative");
                }
                dec(d.round(u32::try_from(digits).unwrap_or(u32::MAX)))
            }
            Func::Sqrt => {
                let f = d.to_f64();
                if f < 0.0 {
                    return empty();
                }
                dec(Decimal::from_f64(f.sqrt()))
            }
            Func::Ln => dec(Decimal::from_f64(d.to_f64().ln())),
            Func::Exp => dec(Decimal::from_f64(d.to_f64().exp())),
            Func::Log | Func::Power => {
                let c = self.arg(&args[0], scope)?;
                let (y, y_int) = match c.as_slice().first().and_then(Item::prim) {
                    Some(Prim::Integer(i)) => (Decimal::from_i64(i), true),
                    Some(Prim::Decimal(d)) => (d, false),
                    _ => return empty(),
                };
                if *func == Func::Log {
                    return dec(Decimal::from_f64(d.to_f64().ln() / y.to_f64().ln()));
                }
                if is_int
                    && y_int
                    && let (Some(base), Some(exp)) = (d.to_i64(), y.to_i64())
                    && let Ok(exp) = u32::try_from(exp)
                {
                    return base
                        .checked_pow(exp)
                        .map_or_else(empty, |v| ok(Item::Integer(v)));
                }
                dec(Decimal::from_f64(d.to_f64().powf(y.to_f64())))
            }
            _ => empty(),
        }
    }

    fn resolve(&self, reference: &str) -> Option<Item<'a, N>> {
        let typed = |n: &'a N| Item::node(n, n.field("resourceType").and_then(Node::as_str));
        if let Some(id) = reference.strip_prefix('#') {
            let holder = self.ctx.resource.or(self.ctx.root_resource)?;
            if id.is_empty() {
                return Some(typed(holder));
            }
            for container in [self.ctx.resource, self.ctx.root_resource]
                .into_iter()
                .flatten()
            {
                if let Some(c) = container
                    .field("contained")
                    .into_iter()
                    .flat_map(|c| c.elements())
                    .find(|c| c.field("id").and_then(Node::as_str) == Some(id))
                {
                    return Some(typed(c));
                }
            }
            return None;
        }
        if let Some(found) = self.ctx.resolver.and_then(|r| r.resolve(reference)) {
            return Some(typed(found));
        }
        let root = self.ctx.root_resource?;
        if root.field("resourceType").and_then(Node::as_str) != Some("Bundle") {
            return None;
        }
        let entries = root.field("entry")?;
        for e in entries.elements() {
            let Some(res) = e.field("resource") else {
                continue;
            };
            if e.field("fullUrl").and_then(Node::as_str) == Some(reference) {
                return Some(typed(res));
            }
            let (Some(rt), Some(id)) = (
                res.field("resourceType").and_then(Node::as_str),
                res.field("id").and_then(Node::as_str),
            ) else {
                continue;
            };
            // `Patient/123` or an absolute URL ending in it.
            if let Some(head) = reference.strip_suffix(id)
                && let Some(head) = head.strip_suffix('/')
                && (head == rt || head.ends_with(&format!("/{rt}")))
            {
                return Some(typed(res));
            }
        }
        None
    }
}

fn func_name(f: &Func) -> &'static str {
    match f {
        Func::AllTrue => "allTrue",
        Func::AnyTrue => "anyTrue",
        Func::AllFalse => "allFalse",
        Func::AnyFalse => "anyFalse",
        _ => "function",
    }
}

fn cow_str<'a, N: Node>(item: &Item<'a, N>) -> Option<Cow<'a, str>> {
    match item {
        Item::String(s) => Some(s.clone()),
        Item::Node(n) => n.value.and_then(Node::as_str).map(Cow::Borrowed),
        _ => None,
    }
}

fn int_of<N: Node>(items: &[Item<'_, N>], f: &'static str) -> Result<Option<i64>, EvalError> {
    match items {
        [] => Ok(None),
        [one] => match one.prim() {
            Some(Prim::Integer(i)) => Ok(Some(i)),
            _ => type_err(f, format!("expected an integer, found {one:?}")),
        },
        many => Err(EvalError::NotSingleton {
            what: "an integer argument",
            count: many.len(),
        }),
    }
}

fn prim_item<'a, N: Node>(p: Prim<'_>) -> Item<'a, N> {
    match p {
        Prim::Bool(b) => Item::Bool(b),
        Prim::Integer(i) => Item::Integer(i),
        Prim::Decimal(d) => Item::Decimal(d),
        Prim::String(s) => Item::String(Cow::Owned(s.to_owned())),
        Prim::Temporal(t) => Item::Temporal(t),
        Prim::Quantity(d, u) => Item::Quantity(d, Cow::Owned(u.to_owned())),
    }
}

fn contains<N: Node>(items: &[Item<'_, N>], x: &Item<'_, N>) -> bool {
    items.iter().any(|y| item_eq(x, y) == Some(true))
}

#[derive(PartialEq, Eq, Hash)]
enum Key<'s> {
    Str(&'s str),
    Int(i64),
    Bool(bool),
}

fn key<'s, N: Node>(i: &'s Item<'_, N>) -> Option<Key<'s>> {
    match i.prim()? {
        Prim::String(s) => Some(Key::Str(s)),
        Prim::Integer(v) => Some(Key::Int(v)),
        Prim::Bool(v) => Some(Key::Bool(v)),
        _ => None,
    }
}

/// Distinct items of `a` then `b` (`|`, `union()`, `distinct()`). Collections of strings, integers and
/// booleans (what `descendants().reference | ...` yields) are deduplicated through a hash set; others
/// by pairwise equality.
fn union<'a, N: Node>(a: &[Item<'a, N>], b: &[Item<'a, N>]) -> Collection<'a, N> {
    let mut out: Collection<'a, N> = Collection::empty();
    if a.len() + b.len() > 16 && a.iter().chain(b).all(|i| key(i).is_some()) {
        let mut seen = std::collections::HashSet::with_capacity(a.len() + b.len());
        for x in a.iter().chain(b) {
            if key(x).is_some_and(|k| seen.insert(k)) {
                out.push(x.clone());
            }
        }
        return out;
    }
    for x in a.iter().chain(b) {
        if !contains(out.as_slice(), x) {
            out.push(x.clone());
        }
    }
    out
}

fn coll_eq<N: Node>(a: &[Item<'_, N>], b: &[Item<'_, N>]) -> Option<bool> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.len() != b.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (x, y) in a.iter().zip(b) {
        match item_eq(x, y) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

fn coll_equiv<N: Node>(a: &[Item<'_, N>], b: &[Item<'_, N>]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| b.iter().any(|y| item_equiv(x, y)))
        && b.iter().all(|y| a.iter().any(|x| item_equiv(x, y)))
}

fn to_boolean<N: Node>(item: &Item<'_, N>) -> Option<bool> {
    match item.prim()? {
        Prim::Bool(b) => Some(b),
        Prim::Integer(1) => Some(true),
        Prim::Integer(0) => Some(false),
        Prim::Decimal(d) if d == Decimal::from_i64(1) => Some(true),
        Prim::Decimal(d) if d.is_zero() => Some(false),
        Prim::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn convert_temporal(t: Temporal, want: TemporalKind) -> Option<Temporal> {
    match (t.kind, want) {
        (a, b) if a == b => Some(t),
        (TemporalKind::Date, TemporalKind::DateTime) => Some(Temporal {
            kind: TemporalKind::DateTime,
            ..t
        }),
        (TemporalKind::DateTime, TemporalKind::Date) => Some(Temporal {
            kind: TemporalKind::Date,
            precision: t.precision.min(Precision::Day),
            offset: None,
            ..t
        }),
        _ => None,
    }
}

/// `"5 'mg'"`, `"5 mg"`, `"4 days"`, `"5"`.
fn parse_quantity<'a>(s: &str) -> Option<(Decimal, Cow<'a, str>)> {
    let s = s.trim();
    let (num, unit) = match s.find(' ') {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let d = Decimal::parse(num)?;
    // A UCUM unit is quoted; only calendar keywords stand bare (`'1 wk'` is not a quantity).
    let unit = match unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
        Some(quoted) => quoted,
        None if unit.is_empty() || super::value::is_calendar_unit(unit) => unit,
        None => return None,
    };
    Some((
        d,
        Cow::Owned(if unit.is_empty() { "1" } else { unit }.to_owned()),
    ))
}

fn convert_quantity(d: Decimal, from: &str, to: &str) -> Option<Decimal> {
    let (dim_from, f_from) = unit_factor(from)?;
    let (dim_to, f_to) = unit_factor(to)?;
    if dim_from != dim_to {
        return None;
    }
    d.checked_mul(&f_from)?.checked_div(&f_to)
}

fn codes_of<'s, N: Node>(item: &'s Item<'_, N>) -> Vec<Coded<'s>> {
    let coding = |c: &'s N| {
        c.field("code").and_then(Node::as_str).map(|code| Coded {
            system: c.field("system").and_then(Node::as_str),
            code,
        })
    };
    match item {
        Item::String(s) => vec![Coded {
            system: None,
            code: s,
        }],
        Item::Node(n) => match n.value {
            Some(v) if v.kind() == NodeKind::String => v
                .as_str()
                .map(|code| vec![Coded { system: None, code }])
                .unwrap_or_default(),
            Some(v) if v.kind() == NodeKind::Object => match v.field("coding") {
                Some(codings) => codings.elements().filter_map(coding).collect(),
                None => coding(v).into_iter().collect(),
            },
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn num(p: &Prim<'_>) -> Option<(Decimal, bool)> {
    match p {
        Prim::Integer(i) => Some((Decimal::from_i64(*i), true)),
        Prim::Decimal(d) => Some((*d, false)),
        _ => None,
    }
}

fn arith<'a, N: Node>(
    op: BinOp,
    x: &Item<'a, N>,
    y: &Item<'a, N>,
) -> Result<Option<Item<'a, N>>, EvalError> {
    let (Some(a), Some(b)) = (x.prim(), y.prim()) else {
        return type_err("arithmetic", format!("cannot compute with {x:?} and {y:?}"));
    };
    // Strings: `+` concatenates.
    if let (Prim::String(s), Prim::String(t), BinOp::Add) = (&a, &b, op) {
        return Ok(Some(Item::String(Cow::Owned(format!("{s}{t}")))));
    }
    // Integer arithmetic stays integer for + - * div mod.
    if let (Prim::Integer(i), Prim::Integer(j)) = (&a, &b) {
        let (i, j) = (*i, *j);
        let r = match op {
            BinOp::Add => i.checked_add(j),
            BinOp::Sub => i.checked_sub(j),
            BinOp::Mul => i.checked_mul(j),
            BinOp::IntDiv => i.checked_div(j),
            BinOp::Mod => i.checked_rem(j),
            _ => None,
        };
        if op != BinOp::Div {
            return Ok(r.map(Item::Integer));
        }
    }
    if let (Some((da, _)), Some((db, _))) = (num(&a), num(&b)) {
        let r = match op {
            BinOp::Add => da.checked_add(&db),
            BinOp::Sub => da.checked_sub(&db),
            BinOp::Mul => da.checked_mul(&db),
            BinOp::Div => da.checked_div(&db),
            BinOp::IntDiv => {
                return Ok(da
                    .checked_div_trunc(&db)
                    .and_then(|d| d.to_i64())
                    .map(Item::Integer));
            }
            BinOp::Mod => da.checked_rem(&db),
            _ => None,
        };
        return Ok(r.map(Item::Decimal));
    }
    match (&a, &b) {
        (Prim::Quantity(qa, ua), Prim::Quantity(qb, ub))
            if matches!(op, BinOp::Add | BinOp::Sub) =>
        {
            if ua != ub {
                return Ok(None);
            }
            let r = if op == BinOp::Add {
                qa.checked_add(qb)
            } else {
                qa.checked_sub(qb)
            };
            Ok(r.map(|d| Item::Quantity(d, Cow::Owned((*ua).to_owned()))))
        }
        (Prim::Quantity(q, u), other) if matches!(op, BinOp::Mul | BinOp::Div) => {
            let Some((n, _)) = num(other) else {
                return Ok(None);
            };
            let r = if op == BinOp::Mul {
                q.checked_mul(&n)
            } else {
                q.checked_div(&n)
            };
            Ok(r.map(|d| Item::Quantity(d, Cow::Owned((*u).to_owned()))))
        }
        (Prim::Temporal(t), Prim::Quantity(q, u)) if matches!(op, BinOp::Add | BinOp::Sub) => {
            let Some(amount) = q.truncate().and_then(|v| i64::try_from(v).ok()) else {
                return Ok(None);
            };
            let amount = if op == BinOp::Sub { -amount } else { amount };
            match t.add(amount, u) {
                Some(r) => Ok(Some(Item::Temporal(r))),
                None => type_err("date arithmetic", format!("cannot add a quantity in '{u}'")),
            }
        }
        _ => type_err(
            "arithmetic",
            format!("operator not defined for {a:?} and {b:?}"),
        ),
    }
}
