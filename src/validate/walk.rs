//! The walk: one pass over the parse tree ([`super::tree`]) per applicable struct, checking shape,
//! names, cardinality, types, formats, fixed/pattern values, bindings, slices, extensions,
//! references and invariants. Nothing is allocated or formatted on the happy path beyond reusable
//! scratch stacks and the memo ([`super::memo`]); issue text is built only when an issue is raised.
//!
//! Must not: parse definitions or do I/O. Every issue carries the FHIRPath of the element at
//! fault and the profile/element id of the rule that was broken.

use std::collections::{HashMap, HashSet};

use smallvec::SmallVec;
use sonic_rs::Value;

use super::Membership;
use super::Terminology;
use super::compile::{
    CompiledSet, ElemRule, ExtKind, Kind, Matcher, Rules, Slicing, Strength, Struct, StructId,
    Test, TypeRule,
};
use super::context;
use super::invariant::{Env, ext_1};
use super::jsoncmp;
use super::memo;
use super::native;
use super::path::PathStack;
use super::primitive::{JsonKind, Prim};
use super::rules;
use super::tree::{Kind as J, N, Tree};
use crate::fhir::{Issue, IssueType, Outcome, Severity};

/// Validate a JSON document as received.
pub(crate) fn validate(
    set: &CompiledSet,
    term: &dyn Terminology,
    json: &[u8],
    profiles: &[&str],
) -> Outcome {
    let tree = match Tree::parse(json) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::single(Issue::error(
                IssueType::Structure,
                format!("the body is not valid JSON: {e}"),
            ));
        }
    };
    let value = tree.root();
    // Sized once: grown by doubling, the per-node tables were reallocated and copied about
    // fifteen times per report.
    let mut run = Run::new(
        set,
        term,
        native::Cache::for_nodes(tree.len()),
        memo::Memo::for_nodes(tree.len()),
    );
    if !value.is_object() {
        return Outcome::single(Issue::error(
            IssueType::Structure,
            format!(
                "expected a FHIR resource (a JSON object with resourceType), found {}",
                kind_of(value)
            ),
        ));
    }
    let Some(rt) = value.get("resourceType").and_then(|v| v.as_str()) else {
        return Outcome::single(Issue::error(
            IssueType::Structure,
            "the resource has no resourceType property (expected e.g. \"resourceType\": \"Bundle\")",
        ));
    };
    let mut required = Vec::new();
    for p in profiles {
        match set.struct_for_url(p) {
            Some(sid) => required.push(sid),
            None => run.issues.push(
                Issue::error(
                    IssueType::NotSupported,
                    format!("profile {p} was requested but is not loaded"),
                )
                .at(rt),
            ),
        }
    }
    run.path.push(rt, None, None);
    run.resource(value, &required, false);
    run.finish()
}

#[derive(Clone, Copy, Default)]
struct Slot<'j> {
    val: Option<N<'j>>,
    under: Option<N<'j>>,
    ty: u16,
}

struct ResCtx<'j> {
    value: N<'j>,
    contained: bool,
    /// Path length at the resource (its elements' names follow), for extension contexts.
    depth: usize,
}

struct BundleIndex<'j> {
    by_full_url: HashMap<&'j str, &'j str>,
    by_type_id: HashSet<(&'j str, &'j str)>,
}

struct Run<'a, 'j> {
    set: &'a CompiledSet,
    term: &'a dyn Terminology,
    issues: Vec<Issue>,
    path: PathStack<'a>,
    slots: Vec<Slot<'j>>,
    assign: Vec<u32>,
    resources: Vec<ResCtx<'j>>,
    bundles: Vec<BundleIndex<'j>>,
    /// Shared work of the native invariant checks: per-node summaries for the whole run.
    native: native::Cache,
    /// Clean results of context-free values, for identical values later in the document.
    memo: memo::Memo<'j>,
    /// Nodes parsed for the FHIRPath evaluator (by node id), each once per run.
    fhirpath_values: HashMap<u32, Value>,
    /// Slice assignments by (slicing, the discriminating child's text identity).
    slice_memo: memo::FastMap<(usize, u32), u32>,
    /// The same by the whole item's text identity.
    slice_items: memo::FastMap<(usize, u32), u32>,
}

impl<'a, 'j> Run<'a, 'j> {
    fn new(
        set: &'a CompiledSet,
        term: &'a dyn Terminology,
        native: native::Cache,
        memo: memo::Memo<'j>,
    ) -> Self {
        Run {
            set,
            term,
            issues: Vec::new(),
            path: PathStack::default(),
            slots: Vec::new(),
            assign: Vec::new(),
            resources: Vec::new(),
            bundles: Vec::new(),
            native,
            memo,
            fhirpath_values: HashMap::new(),
            slice_memo: HashMap::default(),
            slice_items: HashMap::default(),
        }
    }
}

fn kind_of(v: N<'_>) -> &'static str {
    match v.kind() {
        J::Null => "null",
        J::True | J::False => "a boolean",
        J::Number => "a number",
        J::String => "a string",
        J::Array => "an array",
        J::Object => "an object",
    }
}

const NO_SLICE: u32 = u32::MAX;

impl<'a, 'j> Run<'a, 'j>
where
    'j: 'a,
{
    fn finish(mut self) -> Outcome {
        if self.issues.len() > 1 {
            // Several profiles walk the same base rules: report each finding once.
            let mut seen = HashSet::new();
            self.issues.retain(|i| {
                seen.insert((
                    i.severity,
                    i.code.code(),
                    i.expression.clone(),
                    i.diagnostics.clone(),
                ))
            });
        }
        Outcome::new(self.issues)
    }

    fn issue(&mut self, sev: Severity, code: IssueType, st: &Struct, elem_id: &str, msg: String) {
        self.issues.push(
            Issue::new(sev, code, msg)
                .at(self.path.render())
                .from_rule(st.url.as_ref(), elem_id),
        );
    }

    // ---- resources ----------------------------------------------------------------------

    /// Validate a resource at the current path: its base type (or the profiles that constrain
    /// it), plus every loaded profile in `meta.profile`.
    fn resource(&mut self, value: N<'j>, required: &[StructId], contained: bool) {
        let set = self.set;
        if !value.is_object() {
            self.issues.push(
                Issue::error(
                    IssueType::Structure,
                    format!(
                        "expected a resource (JSON object), found {}",
                        kind_of(value)
                    ),
                )
                .at(self.path.render()),
            );
            return;
        }
        let Some(rt) = value.get("resourceType").and_then(|v| v.as_str()) else {
            self.issues.push(
                Issue::error(
                    IssueType::Structure,
                    "the resource has no resourceType property",
                )
                .at(self.path.render()),
            );
            return;
        };
        let Some(&base) = set.resource_types.get(rt) else {
            self.issues.push(
                Issue::error(
                    IssueType::Structure,
                    format!("unknown resource type '{rt}' (expected an R4 resource type)"),
                )
                .at(self.path.render()),
            );
            return;
        };
        let mut targets: smallvec_like::Targets = smallvec_like::Targets::default();
        for &sid in required {
            targets.push(sid);
        }
        if let Some(ps) = value
            .get("meta")
            .and_then(|m| m.get("profile"))
            .filter(|p| p.is_array())
        {
            for (i, p) in ps.items().enumerate() {
                let Some(url) = p.as_str() else { continue };
                match set.struct_for_url(url) {
                    Some(sid) => targets.push(sid),
                    None => {
                        self.path.push("meta", None, None);
                        self.path.push("profile", Some(i), None);
                        self.issues.push(
                            Issue::warning(
                                IssueType::NotSupported,
                                format!(
                                    "profile {url} is not loaded; the resource is validated against the profiles the gateway knows"
                                ),
                            )
                            .at(self.path.render()),
                        );
                        self.path.pop();
                        self.path.pop();
                    }
                }
            }
        }
        self.resources.push(ResCtx {
            value,
            contained,
            depth: self.path.len(),
        });
        let bundle = rt == "Bundle";
        if bundle {
            self.index_bundle(value);
        }
        if targets.is_empty() {
            targets.push(base);
        }
        for sid in targets.iter() {
            let st = &set.structs[sid as usize];
            if st.type_name.as_ref() != rt {
                self.issues.push(
                    Issue::error(
                        IssueType::Structure,
                        format!(
                            "profile {} is for {}, but the resource is a {rt}",
                            st.url, st.type_name
                        ),
                    )
                    .at(self.path.render())
                    .from_rule(st.url.as_ref(), st.root_id.as_ref()),
                );
                continue;
            }
            self.structure(sid, value);
        }
        if bundle {
            self.bundles.pop();
        }
        self.resources.pop();
    }

    fn index_bundle(&mut self, obj: N<'j>) {
        let mut idx = BundleIndex {
            by_full_url: HashMap::new(),
            by_type_id: HashSet::new(),
        };
        if let Some(entries) = obj.get("entry") {
            for e in entries.items() {
                let Some(r) = e.get("resource") else { continue };
                let Some(rt) = r.get("resourceType").and_then(|v| v.as_str()) else {
                    continue;
                };
                if let Some(fu) = e.get("fullUrl").and_then(|v| v.as_str()) {
                    idx.by_full_url.insert(fu, rt);
                }
                if let Some(id) = r.get("id").and_then(|v| v.as_str()) {
                    idx.by_type_id.insert((rt, id));
                }
            }
        }
        self.bundles.push(idx);
    }

    // ---- objects ------------------------------------------------------------------------

    /// Check an object against a struct: names, then each element, then the root invariants.
    /// Returns whether the object has a property other than `id` (for ele-1, so that objects
    /// are iterated once).
    fn structure(&mut self, sid: StructId, value: N<'j>) -> bool {
        let set = self.set;
        let st = &set.structs[sid as usize];
        if !value.is_object() {
            return true;
        }
        let mut content = false;
        let base = self.slots.len();
        self.slots.resize(base + st.elements.len(), Slot::default());
        // Elements present (bit per element; all bits for structs of more than 64 elements).
        let mut present = if st.elements.len() > 64 { u64::MAX } else { 0 };
        for (k, v) in value.members() {
            content |= k != "id";
            match st.lookup(k) {
                Some(ke) => {
                    present |= 1u64.wrapping_shl(u32::from(ke.elem));
                    let slot = &mut self.slots[base + ke.elem as usize];
                    let e = &st.elements[ke.elem as usize];
                    let clash = if ke.under {
                        slot.under.is_some() || (slot.val.is_some() && slot.ty != ke.ty)
                    } else {
                        slot.val.is_some() || (slot.under.is_some() && slot.ty != ke.ty)
                    };
                    if clash {
                        let msg = if e.choice {
                            format!(
                                "'{k}' is a second value for {}[x]; only one type may be used",
                                e.name
                            )
                        } else {
                            format!("property '{k}' appears more than once")
                        };
                        self.path.push(k, None, None);
                        self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                        self.path.pop();
                        continue;
                    }
                    if ke.under {
                        slot.under = Some(v);
                    } else {
                        slot.val = Some(v);
                    }
                    slot.ty = ke.ty;
                }
                None => {
                    if st.is_resource && k == "resourceType" {
                        continue;
                    }
                    self.path.push(k, None, None);
                    // A choice type the profile removed reads better as such than as unknown.
                    let narrowed = st.elements.iter().find(|e| {
                        e.choice
                            && k.strip_prefix(e.name.as_ref()).is_some_and(|rest| {
                                rest.starts_with(|c: char| c.is_ascii_uppercase())
                            })
                    });
                    let msg = match narrowed {
                        Some(e) => format!(
                            "'{k}' uses a type that {} does not allow for {}[x] (allowed: {})",
                            st.url,
                            e.name,
                            e.types
                                .iter()
                                .map(|t| t.code.as_ref())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None => format!(
                            "unknown element '{k}' in {} (not defined by {})",
                            st.type_name, st.url
                        ),
                    };
                    let root = st.root_id.clone();
                    self.issue(Severity::Error, IssueType::Structure, st, &root, msg);
                    self.path.pop();
                }
            }
        }
        // In element order, as the issues are reported; an absent optional element has nothing
        // to check.
        if st.elements.len() > 64 {
            for i in 0..st.elements.len() {
                let slot = self.slots[base + i];
                self.element(st, &st.elements[i], slot);
            }
        } else {
            let mut todo = present | st.required;
            while todo != 0 {
                let i = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                let slot = self.slots[base + i];
                self.element(st, &st.elements[i], slot);
            }
        }
        self.slots.truncate(base);
        for &inv in &st.invariants {
            self.invariant(st, &st.root_id, inv, value, &st.type_name);
        }
        content
    }

    fn invariant(&mut self, st: &Struct, elem_id: &str, inv: u32, focus: N<'j>, ty: &str) {
        let i = &self.set.invariants[inv as usize];
        let result = match i.eval_direct(focus, &mut self.native, self.memo.ids()) {
            Some(holds) => Ok(holds),
            None => {
                // FHIRPath reads `sonic_rs` values: parse the focus (and, when the expression
                // needs them, the resources around it) from the text received, once per run.
                let resource = self.resources.last().map(|r| r.value);
                let root = self
                    .resources
                    .iter()
                    .rev()
                    .find(|r| !r.contained)
                    .map(|r| r.value);
                let context = if i.reads_context {
                    [resource, root]
                } else {
                    [None, None]
                };
                for n in std::iter::once(Some(focus)).chain(context).flatten() {
                    self.fhirpath_values
                        .entry(n.id())
                        .or_insert_with(|| n.to_value());
                }
                let values = &self.fhirpath_values;
                let env = Env {
                    term: self.term,
                    resource: context[0].map(|n| &values[&n.id()]),
                    root: context[1].map(|n| &values[&n.id()]),
                };
                i.eval_fhirpath(&env, &values[&focus.id()], ty)
            }
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                let msg = format!(
                    "constraint {} failed: {} (expression: {})",
                    i.key, i.human, i.expression
                );
                self.issue(i.severity, IssueType::Invariant, st, elem_id, msg);
            }
            Err(e) => {
                let msg = format!(
                    "constraint {} could not be evaluated here ({e}); expression: {}",
                    i.key, i.expression
                );
                self.issue(Severity::Warning, IssueType::Processing, st, elem_id, msg);
            }
        }
    }

    // ---- elements -----------------------------------------------------------------------

    fn element(&mut self, st: &'a Struct, e: &'a ElemRule, slot: Slot<'j>) {
        let ty = e.types.get(slot.ty as usize);
        let of_type = if e.choice {
            ty.map(|t| t.code.as_ref())
        } else {
            None
        };
        if slot.val.is_none() && slot.under.is_none() {
            if e.min > 0 {
                let name = if e.choice {
                    format!("{}[x]", e.name)
                } else {
                    e.name.to_string()
                };
                let msg = format!(
                    "missing required element '{name}': {} requires at least {} (min {}), found none",
                    e.id, e.min, e.min
                );
                self.issues.push(
                    Issue::error(IssueType::Required, msg)
                        .at(self.path.render_child(&e.name))
                        .from_rule(st.url.as_ref(), e.id.as_ref()),
                );
            }
            return;
        }
        if e.array {
            let vals = match slot.val {
                Some(v) => match v.is_array() {
                    true => Some(v),
                    false => {
                        self.path.push(&e.name, None, of_type);
                        let msg = format!(
                            "'{}' must be a JSON array (it repeats: max {}), found {}",
                            e.name,
                            super::snapshot::show_max(e.max),
                            kind_of(v)
                        );
                        self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                        self.path.pop();
                        return;
                    }
                },
                None => None,
            };
            let unders = match slot.under {
                Some(v) => match v.is_array() {
                    true => Some(v),
                    false => {
                        self.path.push(&e.name, None, of_type);
                        let msg = format!(
                            "'_{}' must be a JSON array matching '{}', found {}",
                            e.name,
                            e.name,
                            kind_of(v)
                        );
                        self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                        self.path.pop();
                        return;
                    }
                },
                None => None,
            };
            let nv = vals.map_or(0, |a| a.len());
            let nu = unders.map_or(0, |a| a.len());
            let n = nv.max(nu);
            if vals.is_some() && unders.is_some() && nv != nu {
                self.path.push(&e.name, None, of_type);
                let msg = format!(
                    "'{}' has {nv} items but '_{}' has {nu}; they must line up",
                    e.name, e.name
                );
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                self.path.pop();
            }
            if n == 0 {
                self.path.push(&e.name, None, of_type);
                let msg = format!("'{}' is an empty array; omit the element instead", e.name);
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                self.path.pop();
                return;
            }
            if (n as u64) < u64::from(e.min) || n as u64 > u64::from(e.max) {
                self.path.push(&e.name, None, of_type);
                let msg = format!(
                    "'{}' has {n} items; {} allows {}..{}",
                    e.name,
                    e.id,
                    e.min,
                    super::snapshot::show_max(e.max)
                );
                let code = if (n as u64) < u64::from(e.min) {
                    IssueType::Required
                } else {
                    IssueType::Structure
                };
                self.issue(Severity::Error, code, st, &e.id, msg);
                self.path.pop();
            }
            let abase = self.assign.len();
            if let Some(sl) = &e.slicing {
                self.slice(st, e, sl, vals, n);
            }
            self.path.push(&e.name, Some(0), of_type);
            let mut val_items = vals.map(|a| a.items());
            let mut under_items = unders.map(|a| a.items());
            for i in 0..n {
                self.path.set_index(i);
                let v = val_items
                    .as_mut()
                    .and_then(|it| it.next())
                    .filter(|v| !v.is_null());
                let u = under_items
                    .as_mut()
                    .and_then(|it| it.next())
                    .filter(|v| !v.is_null());
                if v.is_none() && u.is_none() {
                    let msg = format!(
                        "null in '{}' without a matching '_{}' entry",
                        e.name, e.name
                    );
                    self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                    continue;
                }
                let rule = match (&e.slicing, self.assign.get(abase + i)) {
                    (Some(sl), Some(&k)) if k != NO_SLICE => &sl.slices[k as usize].elem,
                    _ => e,
                };
                self.item(st, rule, slot.ty, v, u);
            }
            self.path.pop();
            self.assign.truncate(abase);
        } else {
            self.path.push(&e.name, None, of_type);
            if slot.val.is_some_and(|v| v.is_array()) || slot.under.is_some_and(|v| v.is_array()) {
                let msg = format!(
                    "'{}' must be a single value (max 1), found an array",
                    e.name
                );
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                self.path.pop();
                return;
            }
            if e.max == 0 {
                let msg = format!(
                    "'{}' is present but {} does not allow it (max 0)",
                    e.name, e.id
                );
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
            }
            if slot.val.is_some_and(|v| v.is_null()) || slot.under.is_some_and(|v| v.is_null()) {
                let msg = format!("'{}' is null; omit the element instead", e.name);
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                self.path.pop();
                return;
            }
            self.item(st, e, slot.ty, slot.val, slot.under);
            self.path.pop();
        }
    }

    /// One value of an element (the path already points at it). A value of a context-free type
    /// equal to one already validated clean under the same rule is not walked again ([`memo`]).
    fn item(
        &mut self,
        st: &'a Struct,
        e: &'a ElemRule,
        ty: u16,
        val: Option<N<'j>>,
        under: Option<N<'j>>,
    ) {
        let Some(t) = e.types.get(ty as usize) else {
            return;
        };
        let memo_key = match (val, under) {
            (Some(v), None) if t.context_free => {
                match self.memo.hit(e as *const ElemRule as usize, ty, v) {
                    Ok(()) => return,
                    Err(k) => Some((k, v)),
                }
            }
            _ => None,
        };
        let before = self.issues.len();
        self.item_checks(st, e, t, val, under);
        if let Some((k, v)) = memo_key
            && self.issues.len() == before
            && self.lacks(t, v)
        {
            self.memo.insert(k, v);
        }
    }

    /// Whether `v` has none of the elements its type must lack to be remembered
    /// ([`TypeRule::memo_absent`]).
    fn lacks(&self, t: &TypeRule, v: N<'j>) -> bool {
        let Kind::Complex(sid) = t.kind else {
            return true;
        };
        if t.memo_absent == 0 {
            return true;
        }
        let st = &self.set.structs[sid as usize];
        v.members().all(|(k, _)| {
            st.lookup(k)
                .is_none_or(|ke| t.memo_absent & 1u64.wrapping_shl(u32::from(ke.elem)) == 0)
        })
    }

    fn item_checks(
        &mut self,
        st: &'a Struct,
        e: &'a ElemRule,
        t: &'a TypeRule,
        val: Option<N<'j>>,
        under: Option<N<'j>>,
    ) {
        match &t.kind {
            Kind::Primitive(p) => {
                if let Some(v) = val {
                    self.primitive(st, e, *p, v);
                }
                if let Some(u) = under {
                    match u.is_object() {
                        true => {
                            let content = self.structure(self.set.element_struct, u);
                            if val.is_none() && !content {
                                self.ele_1(st, e);
                            }
                        }
                        false => {
                            let msg = format!(
                                "'_{}' must be an object with id/extension, found {}",
                                e.name,
                                kind_of(u)
                            );
                            self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                        }
                    }
                }
            }
            Kind::Xhtml => {
                if let Some(v) = val {
                    match v.as_str() {
                        Some(s)
                            if s.trim_start().starts_with("<div")
                                && s.trim_end().ends_with("</div>") => {}
                        _ => {
                            let msg = "narrative must be an XHTML <div> element in a JSON string"
                                .to_string();
                            self.issue(Severity::Error, IssueType::Value, st, &e.id, msg);
                        }
                    }
                }
            }
            Kind::Complex(sid) => {
                let Some(v) = val else { return };
                if !self.object_or_issue(st, e, t, v) {
                    return;
                }
                if !self.structure(*sid, v) {
                    self.ele_1(st, e);
                }
                match t.code.as_ref() {
                    "Reference" => self.reference(st, e, t, v),
                    "Coding" => self.rule(st, e, rules::coding(v, self.term)),
                    "Attachment" => self.rule(st, e, rules::attachment(v)),
                    _ if e.path.as_ref() == "Bundle.entry" => {
                        self.rule(st, e, rules::bundle_entry(v));
                        self.rule(st, e, rules::search_outcome(v));
                    }
                    _ => {}
                }
            }
            Kind::Extension => {
                let Some(v) = val else { return };
                if !self.object_or_issue(st, e, t, v) {
                    return;
                }
                self.extension(st, e, v);
            }
            Kind::Resource { types, profiles } => {
                let Some(v) = val else { return };
                if !types.is_empty()
                    && let Some(rt) = v.get("resourceType").and_then(|r| r.as_str())
                    && !types.iter().any(|t| t.as_ref() == rt)
                {
                    let msg = format!("a {rt} is not allowed here; expected {}", join(types));
                    self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                    return;
                }
                let contained = e.name.as_ref() == "contained";
                self.resource(v, profiles, contained);
            }
        }
        if let Some(v) = val {
            if let Some(f) = &e.fixed
                && !jsoncmp::equals(&v, f)
            {
                let msg = format!(
                    "value {} does not equal the fixed value {} required by {}",
                    short(v),
                    f,
                    e.id
                );
                self.issue(Severity::Error, IssueType::Value, st, &e.id, msg);
            }
            if let Some(p) = &e.pattern
                && !jsoncmp::contains(&v, p)
            {
                let msg = format!(
                    "value {} does not match the pattern {} required by {}",
                    short(v),
                    p,
                    e.id
                );
                self.issue(Severity::Error, IssueType::Value, st, &e.id, msg);
            }
            if e.binding.is_some() {
                self.binding(st, e, t, v);
            }
        }
        let focus = val.or(under);
        if let Some(f) = focus
            && !e.invariants.is_empty()
        {
            let ty = if matches!(t.code.as_ref(), "BackboneElement" | "Element") {
                e.path.as_ref()
            } else {
                t.code.as_ref()
            };
            for &inv in &e.invariants {
                self.invariant(st, &e.id, inv, f, ty);
            }
        }
    }

    /// Report a finding of [`rules`] at the current path (or its named child).
    fn rule(&mut self, st: &Struct, e: &ElemRule, f: Option<rules::Finding>) {
        let Some(f) = f else { return };
        if let Some(child) = f.child {
            self.path.push(child, None, None);
        }
        self.issue(f.severity, f.code, st, &e.id, f.message);
        if f.child.is_some() {
            self.path.pop();
        }
    }

    fn object_or_issue(&mut self, st: &Struct, e: &ElemRule, t: &TypeRule, v: N<'j>) -> bool {
        match v.is_object() {
            true => true,
            false => {
                let msg = format!(
                    "'{}' must be a JSON object ({}), found {}",
                    e.name,
                    t.code,
                    kind_of(v)
                );
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                false
            }
        }
    }

    fn ele_1(&mut self, st: &Struct, e: &ElemRule) {
        let msg = "constraint ele-1 failed: All FHIR elements must have a @value or children (found an element with no value and no children other than id)".to_string();
        self.issue(Severity::Error, IssueType::Invariant, st, &e.id, msg);
    }

    fn primitive(&mut self, st: &Struct, e: &ElemRule, p: Prim, v: N<'j>) {
        let res = match p.json_kind() {
            JsonKind::Bool => {
                if v.is_boolean() {
                    Ok(())
                } else {
                    Err(None)
                }
            }
            JsonKind::Number => {
                if let Some(raw) = v.raw_number() {
                    p.check_number(raw).map_err(Some)
                } else {
                    Err(None)
                }
            }
            JsonKind::String => match v.as_str() {
                Some(s) => {
                    let r = p.check_str(s).map_err(Some);
                    if r.is_ok()
                        && let Some(ml) = e.max_length
                        && s.chars().count() > ml as usize
                    {
                        let msg = format!(
                            "'{}' is {} characters long; {} allows at most {ml}",
                            e.name,
                            s.chars().count(),
                            e.id
                        );
                        self.issue(Severity::Error, IssueType::TooLong, st, &e.id, msg);
                    }
                    r
                }
                None => Err(None),
            },
        };
        match res {
            Ok(()) => {}
            Err(None) => {
                let want = match p.json_kind() {
                    JsonKind::Bool => "a JSON boolean",
                    JsonKind::Number => "a JSON number",
                    JsonKind::String => "a JSON string",
                };
                let msg = format!(
                    "'{}' is a {}, which must be {want}; found {} {}",
                    e.name,
                    p.name(),
                    kind_of(v),
                    short(v)
                );
                self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
            }
            Err(Some(inv)) => {
                let msg = format!("{} is not a valid {}: {}", short(v), p.name(), inv.0);
                self.issue(Severity::Error, IssueType::Value, st, &e.id, msg);
            }
        }
    }

    // ---- bindings -----------------------------------------------------------------------

    fn binding(&mut self, st: &Struct, e: &ElemRule, t: &TypeRule, v: N<'j>) {
        let Some(b) = &e.binding else { return };
        let vs = b.value_set.as_ref();
        let mut found_no: Option<(Option<&str>, &str)> = None;
        let mut any_yes = false;
        let mut any_code = false;
        let mut check = |term: &dyn Terminology, sys: Option<&'j str>, code: &'j str| {
            any_code = true;
            match term.member(vs, sys, code) {
                Membership::Yes => any_yes = true,
                Membership::No => {
                    if found_no.is_none() {
                        found_no = Some((sys, code));
                    }
                }
                Membership::Unknown => any_yes = true,
            }
        };
        match t.code.as_ref() {
            "code" | "string" | "uri" => {
                if let Some(c) = v.as_str() {
                    check(self.term, None, c);
                }
            }
            "Coding" | "Quantity" => {
                if let Some(c) = v.get("code").and_then(|c| c.as_str()) {
                    let sys = v.get("system").and_then(|s| s.as_str());
                    check(self.term, sys, c);
                }
            }
            "CodeableConcept" => {
                if let Some(cs) = v.get("coding") {
                    for c in cs.items() {
                        if let Some(code) = c.get("code").and_then(|c| c.as_str()) {
                            let sys = c.get("system").and_then(|s| s.as_str());
                            check(self.term, sys, code);
                        }
                    }
                }
            }
            _ => return,
        }
        let (sev, strength) = match b.strength {
            Strength::Required => (Severity::Error, "required"),
            Strength::Extensible => (Severity::Warning, "extensible"),
        };
        if !any_code {
            if b.strength == Strength::Required && t.code.as_ref() == "CodeableConcept" {
                let msg =
                    format!("no code given; a code from the required value set {vs} is expected");
                self.issue(sev, IssueType::CodeInvalid, st, &e.id, msg);
            }
            return;
        }
        if any_yes {
            return;
        }
        if let Some((sys, code)) = found_no {
            let msg = match sys {
                Some(s) => format!("code '{s}#{code}' is not in the {strength} value set {vs}"),
                None => format!("code '{code}' is not in the {strength} value set {vs}"),
            };
            self.issue(sev, IssueType::CodeInvalid, st, &e.id, msg);
        }
    }

    // ---- extensions ---------------------------------------------------------------------

    /// An extension without a profile on its element: validated against its definition by URL.
    fn extension(&mut self, st: &Struct, e: &ElemRule, v: N<'j>) {
        let set = self.set;
        let url = v.get("url").and_then(|u| u.as_str());
        let known = url.and_then(|u| set.extensions.get(u).copied());
        let content = match known {
            Some(sid) => {
                self.extension_context(st, e, sid, url.unwrap_or_default());
                self.structure(sid, v)
            }
            None => {
                if let Some(u) = url {
                    let (sev, what) = if e.ext == ExtKind::Modifier {
                        (
                            Severity::Error,
                            "a modifier extension that is not understood changes the meaning of the resource, so it cannot be accepted",
                        )
                    } else if tolerated_unknown_extension(u) {
                        (
                            Severity::Warning,
                            "its content is checked only as a generic Extension",
                        )
                    } else {
                        (
                            Severity::Error,
                            "an extension whose definition cannot be found is not allowed (load its StructureDefinition with the conformance resources)",
                        )
                    };
                    let msg = format!("extension {u} is not known to the gateway; {what}");
                    self.issue(sev, IssueType::Extension, st, &e.id, msg);
                }
                let content = self.structure(set.extension_struct, v);
                if !ext_1(v) {
                    let ext = &set.structs[set.extension_struct as usize];
                    let msg = "constraint ext-1 failed: Must have either extensions or value[x], not both".to_string();
                    self.issue(Severity::Error, IssueType::Invariant, ext, "Extension", msg);
                }
                content
            }
        };
        if !content {
            self.ele_1(st, e);
        }
    }

    /// Is the extension allowed where it is (`StructureDefinition.context`)? See [`context`].
    fn extension_context(&mut self, st: &Struct, e: &ElemRule, sid: StructId, url: &str) {
        let set = self.set;
        let Some(contexts) = set.ext_contexts.get(&sid) else {
            return;
        };
        let Some(res) = self.resources.last() else {
            return;
        };
        let rt = res
            .value
            .get("resourceType")
            .and_then(|r| r.as_str())
            .unwrap_or("");
        let mut path = String::from(rt);
        for name in self.path.names_from(res.depth) {
            path.push('.');
            path.push_str(name);
        }
        let host = context::Host {
            path: &path,
            type_name: &st.type_name,
            extension_url: set
                .extensions
                .contains_key(st.url.as_ref())
                .then_some(st.url.as_ref()),
            is_resource_root: !path.contains('.'),
        };
        let is_rt = |t: &str| set.resource_types.contains_key(t);
        if !context::allowed(contexts, &host, &is_rt) {
            let msg = format!(
                "extension {url} is not allowed on {path}: its definition allows it on {}",
                context::describe(contexts)
            );
            self.issue(Severity::Error, IssueType::Extension, st, &e.id, msg);
        }
    }

    // ---- slicing ------------------------------------------------------------------------

    /// Assign each item to a slice (pushed onto `self.assign`) and check the slicing rules.
    fn slice(
        &mut self,
        st: &Struct,
        e: &'a ElemRule,
        sl: &'a Slicing,
        vals: Option<N<'j>>,
        n: usize,
    ) {
        let abase = self.assign.len();
        let mut last_slice = 0u32;
        let mut seen_unmatched = false;
        let mut items = vals.map(|a| a.items());
        for i in 0..n {
            let item = items
                .as_mut()
                .and_then(|it| it.next())
                .filter(|v| !v.is_null());
            let k = match item {
                Some(item) => self.slice_of(sl, item),
                None => NO_SLICE,
            };
            self.assign.push(k);
            if k == NO_SLICE {
                seen_unmatched = true;
                if sl.rules == Rules::Closed {
                    self.path.push(&e.name, Some(i), None);
                    let msg = format!(
                        "this item matches none of the slices of {} ({}), and the slicing is closed",
                        e.id, sl.discriminators
                    );
                    self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                    self.path.pop();
                }
            } else {
                if sl.rules == Rules::OpenAtEnd && seen_unmatched {
                    self.path.push(&e.name, Some(i), None);
                    let msg = format!(
                        "slice '{}' item comes after an unsliced item; {} only allows extra items at the end",
                        sl.slices[k as usize].name, e.id
                    );
                    self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                    self.path.pop();
                }
                if sl.ordered && k < last_slice {
                    self.path.push(&e.name, Some(i), None);
                    let msg = format!(
                        "slice '{}' item is out of order; {} requires slices in the order they are defined",
                        sl.slices[k as usize].name, e.id
                    );
                    self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
                    self.path.pop();
                }
                last_slice = k;
            }
        }
        // Items per slice in one pass over the assignments (not one pass per slice).
        let mut counts: SmallVec<[u64; 8]> = SmallVec::from_elem(0, sl.slices.len());
        for &a in &self.assign[abase..] {
            if let Some(c) = counts.get_mut(a as usize) {
                *c += 1;
            }
        }
        for (s, &count) in sl.slices.iter().zip(&counts) {
            if count < u64::from(s.elem.min) || count > u64::from(s.elem.max) {
                self.path.push(&e.name, None, None);
                let msg = format!(
                    "slice '{}' ({}) has {count} items; it allows {}..{}",
                    s.name,
                    s.elem.id,
                    s.elem.min,
                    super::snapshot::show_max(s.elem.max)
                );
                let code = if count < u64::from(s.elem.min) {
                    IssueType::Required
                } else {
                    IssueType::Structure
                };
                self.issue(Severity::Error, code, st, &s.elem.id, msg);
                self.path.pop();
            }
        }
    }

    /// The slice an item belongs to. When every discriminator compares the value of one child
    /// (`code` for the populations of a report), the answer depends only on that child's text, so
    /// it is remembered per slicing and reused for the same text.
    fn slice_of(&mut self, sl: &Slicing, item: N<'j>) -> u32 {
        let find = |run: &Self| {
            sl.slices
                .iter()
                .position(|s| s.matchers.iter().all(|m| run.matches(m, &item)))
                .map_or(NO_SLICE, |k| k as u32)
        };
        let Some(d) = sl.by_value.as_deref().and_then(|k| item.get(k)) else {
            return find(self);
        };
        // The same item text has the same child text: asked by the item's identity first, which
        // the memo then reuses for the item itself (a repeated population is one lookup).
        let sl_addr = sl as *const Slicing as usize;
        let item_key = (sl_addr, self.memo.canon(item));
        if let Some(&k) = self.slice_items.get(&item_key) {
            return k;
        }
        let key = (sl_addr, self.memo.canon(d));
        let k = match self.slice_memo.get(&key) {
            Some(&k) => k,
            None => {
                let k = find(self);
                self.slice_memo.insert(key, k);
                k
            }
        };
        self.slice_items.insert(item_key, k);
        k
    }

    fn matches(&self, m: &Matcher, item: &N<'j>) -> bool {
        fn walk<'j>(v: N<'j>, path: &[Vec<Box<str>>], test: &dyn Fn(N<'j>) -> bool) -> bool {
            match path.split_first() {
                None => test(v),
                Some((keys, rest)) => {
                    if !v.is_object() {
                        return false;
                    }
                    keys.iter().any(|k| match v.get(k) {
                        Some(x) if x.is_array() => x.items().any(|i| walk(i, rest, test)),
                        Some(x) => walk(x, rest, test),
                        None => false,
                    })
                }
            }
        }
        let item = *item;
        match &m.test {
            Test::Equals(d) => walk(item, &m.path, &|v| jsoncmp::equals(&v, d)),
            Test::Contains(d) => walk(item, &m.path, &|v| jsoncmp::contains(&v, d)),
            Test::Exists(want) => walk(item, &m.path, &|_| true) == *want,
            Test::ResourceType(rt) => walk(item, &m.path, &|v| {
                v.get("resourceType").and_then(|r| r.as_str()) == Some(rt.as_ref())
            }),
            Test::Profile(sid) => {
                let set = self.set;
                let term = self.term;
                walk(item, &m.path, &|v| {
                    let mut sub = Run::new(set, term, Default::default(), Default::default());
                    if set.structs[*sid as usize].is_resource {
                        sub.resource(v, &[*sid], false);
                    } else {
                        sub.structure(*sid, v);
                    }
                    !sub.issues.iter().any(|i| i.severity.is_error())
                })
            }
        }
    }

    // ---- references ---------------------------------------------------------------------

    fn reference(&mut self, st: &Struct, e: &ElemRule, t: &TypeRule, v: N<'j>) {
        let Some(r) = v.get("reference").and_then(|r| r.as_str()) else {
            return;
        };
        let mut resolved: Option<&str> = None;
        let mut found = false;
        if let Some(id) = r.strip_prefix('#') {
            let container = self.resources.iter().rev().find(|c| !c.contained);
            if let Some(c) = container {
                let hit = c.value.get("contained").and_then(|cs| {
                    cs.items()
                        .find(|x| x.get("id").and_then(|i| i.as_str()) == Some(id))
                });
                match hit {
                    Some(x) => {
                        found = true;
                        resolved = x.get("resourceType").and_then(|r| r.as_str());
                    }
                    None if !id.is_empty() => {
                        self.path.push("reference", None, None);
                        let msg = format!(
                            "reference '{r}' points to a contained resource that does not exist"
                        );
                        self.issue(Severity::Error, IssueType::NotFound, st, &e.id, msg);
                        self.path.pop();
                        return;
                    }
                    None => {}
                }
            }
        } else if let Some(b) = self.bundles.last() {
            if let Some(&rt) = b.by_full_url.get(r) {
                found = true;
                resolved = Some(rt);
            } else if let Some((ty, id)) = relative_parts(r)
                && b.by_type_id.contains(&(ty, id))
            {
                found = true;
                resolved = Some(ty);
            }
            if !found && (r.starts_with("urn:uuid:") || r.starts_with("urn:oid:")) {
                // A warning, as the HL7 reference validator has it ("URN reference is not locally
                // contained within the bundle"): R4 does not require a Bundle to be closed. What
                // a PQOM submission must resolve (the MessageHeader focus) ingest checks itself.
                self.path.push("reference", None, None);
                let msg = format!(
                    "reference '{r}' does not resolve to an entry in the Bundle (no entry has that fullUrl)"
                );
                self.issue(Severity::Warning, IssueType::NotFound, st, &e.id, msg);
                self.path.pop();
                return;
            }
        }
        let ty = resolved.or_else(|| relative_parts(r).map(|(t, _)| t));
        if let Some(ty) = ty
            && !t.targets.is_empty()
            && !t
                .targets
                .iter()
                .any(|x| x.as_ref() == ty || x.as_ref() == "Resource")
        {
            self.path.push("reference", None, None);
            let msg = format!(
                "reference '{r}' points to a {ty}{}; {} allows {}",
                if found { "" } else { " (by its URL)" },
                e.id,
                join(&t.targets)
            );
            self.issue(Severity::Error, IssueType::Structure, st, &e.id, msg);
            self.path.pop();
        }
    }
}

/// Unknown extensions that are a warning, not an error: example domains (no one publishes
/// definitions there), relative sub-extension URLs (their parent checks them), and FHIR
/// cross-version extensions (`http://hl7.org/fhir/5.0/StructureDefinition/extension-Measure.group.scoring`,
/// which the HL7 validator derives from the other version's definitions rather than loading; the
/// PQOM annex Measure uses one). Every other unknown extension is an error, as in the HL7
/// validator without `-allow-any-extensions` ("could not be found so is not allowed here"): the
/// gateway cannot check what it does not know, and must not forward it.
fn tolerated_unknown_extension(url: &str) -> bool {
    // A relative URL names a sub-extension of a complex extension, checked by its parent.
    !url.contains(':')
        || cross_version_extension(url)
        || url.contains("example.org")
        || url.contains("acme.com")
        || url.contains("nema.org")
        || url.starts_with("http://hl7.org/fhir/tools/StructureDefinition/")
}

fn cross_version_extension(url: &str) -> bool {
    url.strip_prefix("http://hl7.org/fhir/")
        .and_then(|r| r.split_once("/StructureDefinition/extension-"))
        .is_some_and(|(version, _)| {
            matches!(version, "1.0" | "3.0" | "4.0" | "4.3" | "5.0" | "6.0")
        })
}

/// `Patient/123`, `http://x/fhir/Patient/123/_history/2` -> (`Patient`, `123`).
fn relative_parts(r: &str) -> Option<(&str, &str)> {
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let mut it = r.rsplitn(3, '/');
    let id = it.next()?;
    let ty = it.next()?;
    if ty.is_empty() || !ty.as_bytes()[0].is_ascii_uppercase() || id.is_empty() {
        return None;
    }
    if !ty.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((ty, id))
}

fn join(v: &[Box<str>]) -> String {
    v.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(" | ")
}

/// The instance value for a message, truncated.
fn short(v: N<'_>) -> String {
    // As received, but on one line (a pretty-printed value is re-printed compactly).
    let src = v.source();
    let s = if src.contains(['\n', '\r', '\t']) {
        sonic_rs::to_string(&v.to_value()).unwrap_or_default()
    } else {
        src.to_owned()
    };
    if s.len() > 120 {
        let mut cut = 117;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// A tiny inline list of struct ids (a resource is usually validated against one or two).
mod smallvec_like {
    use super::StructId;

    #[derive(Default)]
    pub struct Targets {
        inline: [StructId; 4],
        len: usize,
        more: Vec<StructId>,
    }

    impl Targets {
        pub fn push(&mut self, s: StructId) {
            if self.iter().any(|x| x == s) {
                return;
            }
            if self.len < 4 {
                self.inline[self.len] = s;
                self.len += 1;
            } else {
                self.more.push(s);
            }
        }
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
        pub fn iter(&self) -> impl Iterator<Item = StructId> + '_ {
            self.inline[..self.len]
                .iter()
                .copied()
                .chain(self.more.iter().copied())
        }
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
