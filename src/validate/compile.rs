//! Compiling snapshots into the validator tree the walk runs on.
//!
//! Every StructureDefinition (base resource, data type, profile, extension) becomes a [`Struct`]:
//! its child elements as [`ElemRule`]s, a sorted JSON-key index (choice types expanded to
//! `valueQuantity`, primitives also as `_name`), and the invariants of its root. Elements whose
//! children are constrained in the snapshot get an inline struct; others point at the shared
//! struct of their type, so each base type is compiled once. Slices carry matchers precomputed
//! from their discriminators. All strings the walk compares are prepared here, so validation
//! formats nothing unless it reports an issue.
//!
//! Must not: read files (see [`super::definitions`]) or touch instance JSON.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::LoadWarning;
use super::context::Context;
use super::definitions::{Definitions, LoadError};
use super::invariant::{ELE_1, Invariant};
use super::primitive::Prim;
use super::snapshot::{CORE, Element, Snapshots, elem_id, parse_max, type_url};
use super::tree::bytes_eq;
use crate::fhir::Severity;

pub(crate) type StructId = u32;

/// Everything compiled at load: shared, immutable, `Send + Sync`.
pub struct CompiledSet {
    pub(crate) structs: Vec<Struct>,
    by_url: HashMap<String, StructId>,
    pub(crate) resource_types: HashMap<String, StructId>,
    pub(crate) extensions: HashMap<String, StructId>,
    /// Where each extension (by its struct) may be used: `StructureDefinition.context`.
    pub(crate) ext_contexts: HashMap<StructId, Vec<Context>>,
    profile_urls: Vec<String>,
    all_urls: Vec<String>,
    warnings: Vec<LoadWarning>,
    pub(crate) invariants: Vec<Invariant>,
    /// `_name` companions of primitives: `id` and `extension`.
    pub(crate) element_struct: StructId,
    /// The base Extension, for extensions whose definition is not loaded.
    pub(crate) extension_struct: StructId,
}

pub(crate) struct Struct {
    /// Canonical URL of the StructureDefinition the rules come from.
    pub url: Arc<str>,
    /// FHIR type of the instance (`MeasureReport`, `Coding`, `BackboneElement`, ...).
    pub type_name: Box<str>,
    pub is_resource: bool,
    pub elements: Vec<ElemRule>,
    /// JSON keys, sorted by [`key_order`].
    pub keys: Vec<KeyEntry>,
    /// For each key length, the range of [`Struct::keys`] of that length (see [`Struct::lookup`]).
    by_len: Vec<(u32, u32)>,
    /// Invariants of the root element (or, for an inline struct, of its data type).
    pub invariants: Vec<u32>,
    /// Element id of the root, for issues about the whole object.
    pub root_id: Box<str>,
    /// Bit `i` is set when `elements[i]` is required (`min > 0`); structs of more than 64
    /// elements have every bit set. An absent element that is not required has nothing to check,
    /// so the walk visits only the present and the required ones.
    pub required: u64,
}

pub(crate) struct KeyEntry {
    pub key: Box<str>,
    pub elem: u16,
    pub ty: u16,
    pub under: bool,
}

impl Struct {
    /// The key's entry. The length picks a handful of candidates, each compared with two word
    /// loads ([`bytes_eq`]) for keys of up to 16 bytes.
    #[inline(always)]
    pub fn lookup(&self, key: &str) -> Option<&KeyEntry> {
        let k = key.as_bytes();
        let &(lo, hi) = self.by_len.get(k.len())?;
        self.keys[lo as usize..hi as usize]
            .iter()
            .find(|e| bytes_eq(e.key.as_bytes(), k))
    }
}

/// For each length, the range of `keys` (sorted by [`key_order`]) of that length.
fn ranges_by_len(keys: &[KeyEntry]) -> Vec<(u32, u32)> {
    let longest = keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
    let mut out = vec![(0u32, 0u32); longest + 1];
    for (i, k) in keys.iter().enumerate() {
        let r = &mut out[k.key.len()];
        if r.0 == r.1 {
            r.0 = i as u32;
        }
        r.1 = i as u32 + 1;
    }
    out
}

/// The order of [`Struct::keys`]: by length, then bytes, so that keys of one length are adjacent.
#[inline]
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtKind {
    No,
    Extension,
    Modifier,
}

pub(crate) struct ElemRule {
    pub id: Box<str>,
    /// Element path, e.g. `MeasureReport.group.stratifier` (the FHIRPath type of backbone elements).
    pub path: Box<str>,
    /// JSON name without `[x]`.
    pub name: Box<str>,
    pub min: u32,
    pub max: u32,
    /// Represented as a JSON array (the base max is not 1).
    pub array: bool,
    pub choice: bool,
    pub types: Vec<TypeRule>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    pub binding: Option<Binding>,
    pub invariants: Vec<u32>,
    pub slicing: Option<Box<Slicing>>,
    pub max_length: Option<u32>,
    pub ext: ExtKind,
}

pub(crate) struct TypeRule {
    pub code: Box<str>,
    pub kind: Kind,
    /// Resource types a Reference/canonical may point to (empty: any).
    pub targets: Vec<Box<str>>,
    /// A value of this type at this element validates the same wherever it appears (see
    /// [`CompiledSet::mark_context_free`]), so the walk may reuse a clean result for an identical
    /// value ([`super::walk`]'s memo).
    pub context_free: bool,
    /// Elements of the type (bit per element index) that a value must lack to be remembered:
    /// a type that is context-free but for optional elements that are not (a stratum
    /// population's `subjectResults` Reference) is, for a value without them. 0: none. The
    /// memo checks this when it remembers a value; an identical text lacks them too.
    pub memo_absent: u64,
}

pub(crate) enum Kind {
    Primitive(Prim),
    Xhtml,
    Complex(StructId),
    /// A contained/entry resource, dispatched on `resourceType`.
    Resource {
        types: Vec<Box<str>>,
        profiles: Vec<StructId>,
    },
    /// An Extension without a profile: dispatched on `url`.
    Extension,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    Required,
    Extensible,
}

pub(crate) struct Binding {
    pub strength: Strength,
    pub value_set: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    Open,
    Closed,
    OpenAtEnd,
}

pub(crate) struct Slicing {
    pub rules: Rules,
    pub ordered: bool,
    pub slices: Vec<SliceRule>,
    /// Human description of the discriminators, for messages.
    pub discriminators: Box<str>,
    /// The child every discriminator compares by value, if there is one: an item's slice is then a
    /// function of that child's text (the walk remembers it per text).
    pub by_value: Option<Box<str>>,
}

pub(crate) struct SliceRule {
    pub name: Box<str>,
    pub elem: ElemRule,
    pub matchers: Vec<Matcher>,
}

pub(crate) struct Matcher {
    /// JSON keys to follow from the item, one set per path segment (choice types: several).
    pub path: Vec<Vec<Box<str>>>,
    pub test: Test,
}

pub(crate) enum Test {
    Equals(Value),
    Contains(Value),
    Exists(bool),
    ResourceType(Box<str>),
    Profile(StructId),
}

/// The one child every discriminator of the slices compares by value (`Equals`/`Contains` on a path of
/// one element), if there is one: then an item's slice is a function of that child's text.
fn value_discriminator(slices: &[SliceRule]) -> Option<Box<str>> {
    let mut key: Option<&str> = None;
    for m in slices.iter().flat_map(|s| &s.matchers) {
        if !matches!(m.test, Test::Equals(_) | Test::Contains(_)) {
            return None;
        }
        let [names] = m.path.as_slice() else {
            return None;
        };
        let [name] = names.as_slice() else {
            return None;
        };
        match key {
            None => key = Some(name),
            Some(k) if k == name.as_ref() => {}
            Some(_) => return None,
        }
    }
    key.map(Into::into)
}

/// Marks the complex types whose validation depends only on the value itself: no Reference
/// (resolved against the enclosing Bundle or contained resources) or resource anywhere inside, and
/// no invariant that reads beyond its focus (`%resource`, `%rootResource`, `resolve()`). Extensions
/// and `_name` companions (extension contexts depend on the path) are excluded at run time, by
/// the walk refusing to memoise a value that has them. This is a greatest fixed point: recursion
/// between types does not by itself make a type depend on context. A type that is free but for
/// optional elements is marked too, with those elements in [`TypeRule::memo_absent`].
fn mark_context_free(structs: &mut [Struct], invariants: &[Invariant]) {
    let local = |inv: &u32| {
        let x = &invariants[*inv as usize].expression;
        !x.contains('%') && !x.contains("resolve(")
    };
    let mut free: Vec<bool> = structs
        .iter()
        .map(|s| !s.is_resource && s.invariants.iter().all(local))
        .collect();
    loop {
        let mut changed = false;
        for (i, s) in structs.iter().enumerate() {
            if !free[i] {
                continue;
            }
            if !s
                .elements
                .iter()
                .all(|e| elem_and_slices_free(e, &local, &free))
            {
                free[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Per struct, the elements a value must lack for the struct to be free (`Some(0)`: none,
    // the struct is free). Beyond the free ones, a struct qualifies whose only non-free elements
    // are optional (among the first 64): it is free for a value without them. One level only.
    let must_lack: Vec<Option<u64>> = structs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if free[i] {
                return Some(0);
            }
            if s.is_resource || !s.invariants.iter().all(local) {
                return None;
            }
            let mut mask = 0u64;
            for (k, e) in s.elements.iter().enumerate() {
                if !elem_and_slices_free(e, &local, &free) {
                    if e.min > 0 || k >= 64 {
                        return None;
                    }
                    mask |= 1 << k;
                }
            }
            Some(mask)
        })
        .collect();
    fn mark(e: &mut ElemRule, local: &dyn Fn(&u32) -> bool, must_lack: &[Option<u64>]) {
        let elem_local = e.invariants.iter().all(local);
        for t in e.types.iter_mut() {
            if let Kind::Complex(sid) = t.kind {
                let lack = must_lack[sid as usize]
                    .filter(|_| elem_local && t.code.as_ref() != "Reference");
                t.context_free = lack.is_some();
                t.memo_absent = lack.unwrap_or(0);
            }
        }
        if let Some(sl) = e.slicing.as_mut() {
            for sr in sl.slices.iter_mut() {
                mark(&mut sr.elem, local, must_lack);
            }
        }
    }
    for s in structs.iter_mut() {
        for e in s.elements.iter_mut() {
            mark(e, &local, &must_lack);
        }
    }
}

/// [`elem_free`] for the element and every slice of it.
fn elem_and_slices_free(e: &ElemRule, local: &dyn Fn(&u32) -> bool, free: &[bool]) -> bool {
    elem_free(e, local, free)
        && e.slicing
            .iter()
            .flat_map(|sl| &sl.slices)
            .all(|sr| elem_free(&sr.elem, local, free))
}

fn elem_free(e: &ElemRule, local: &dyn Fn(&u32) -> bool, free: &[bool]) -> bool {
    e.invariants.iter().all(local)
        && e.types.iter().all(|t| match &t.kind {
            Kind::Primitive(_) | Kind::Xhtml | Kind::Extension => true,
            Kind::Complex(sid) => t.code.as_ref() != "Reference" && free[*sid as usize],
            Kind::Resource { .. } => false,
        })
}

impl CompiledSet {
    /// Compile every StructureDefinition in `defs` (snapshots generated where missing).
    pub fn compile(defs: &Definitions) -> Result<Self, LoadError> {
        let mut b = Builder {
            defs,
            snaps: Snapshots::new(defs),
            structs: Vec::new(),
            memo: HashMap::new(),
            inv_memo: HashMap::new(),
            invariants: Vec::new(),
            warnings: Vec::new(),
            warned: HashSet::new(),
            inline_by_elem: HashMap::new(),
        };
        let element_struct = b.compile_sd(&format!("{CORE}Element"))?;
        let extension_struct = b.compile_sd(&format!("{CORE}Extension"))?;
        let mut resource_types = HashMap::new();
        let mut extensions = HashMap::new();
        let mut ext_contexts = HashMap::new();
        let mut profile_urls = Vec::new();
        let mut all_urls = Vec::new();
        for loaded in defs.structure_definitions() {
            let sd = &loaded.resource;
            let s = |k: &str| sd.get(k).and_then(Value::as_str).unwrap_or("");
            let (url, kind, derivation, ty) = (s("url"), s("kind"), s("derivation"), s("type"));
            if kind == "logical" || kind == "primitive-type" {
                continue;
            }
            let sid = b.compile_sd(url)?;
            all_urls.push(url.to_owned());
            if derivation == "constraint" {
                profile_urls.push(url.to_owned());
                if ty == "Extension" {
                    extensions.insert(url.to_owned(), sid);
                    ext_contexts.insert(sid, Context::from_sd(sd));
                }
            } else if kind == "resource" {
                resource_types.insert(ty.to_owned(), sid);
            }
        }
        profile_urls.sort();
        all_urls.sort();
        mark_context_free(&mut b.structs, &b.invariants);
        for st in &mut b.structs {
            st.required = match st.elements.len() {
                0..=64 => (st.elements.iter().enumerate())
                    .filter(|(_, e)| e.min > 0)
                    .fold(0, |m, (i, _)| m | 1 << i),
                _ => u64::MAX,
            };
        }
        Ok(CompiledSet {
            structs: b.structs,
            by_url: b.memo,
            resource_types,
            extensions,
            ext_contexts,
            profile_urls,
            all_urls,
            warnings: b.warnings,
            invariants: b.invariants,
            element_struct,
            extension_struct,
        })
    }

    pub fn profile_urls(&self) -> Vec<&str> {
        self.profile_urls.iter().map(String::as_str).collect()
    }

    pub fn all_urls(&self) -> Vec<&str> {
        self.all_urls.iter().map(String::as_str).collect()
    }

    pub fn has_url(&self, url: &str) -> bool {
        self.by_url
            .contains_key(url.split('|').next().unwrap_or(url))
    }

    pub(crate) fn struct_for_url(&self, url: &str) -> Option<StructId> {
        self.by_url
            .get(url.split('|').next().unwrap_or(url))
            .copied()
    }

    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }
}

struct Builder<'d> {
    defs: &'d Definitions,
    snaps: Snapshots<'d>,
    structs: Vec<Struct>,
    memo: HashMap<String, StructId>,
    inv_memo: HashMap<(String, String, Severity), u32>,
    invariants: Vec<Invariant>,
    warnings: Vec<LoadWarning>,
    warned: HashSet<String>,
    /// Inline structs by `url#element id`, so that a profile's content reference can use the
    /// struct of the element in its type's base definition.
    inline_by_elem: HashMap<String, StructId>,
}

/// One StructureDefinition being compiled.
struct Sd {
    url: Arc<str>,
    file: PathBuf,
    snap: Arc<Vec<Element>>,
    children: Vec<Vec<usize>>,
    slices: Vec<Vec<usize>>,
    index: HashMap<String, usize>,
}

impl Sd {
    fn err(&self, element: &str, message: impl Into<String>) -> LoadError {
        LoadError::Profile {
            file: self.file.clone(),
            url: self.url.to_string(),
            element: Some(element.to_owned()),
            message: message.into(),
        }
    }
}

fn str_of<'a>(e: &'a Element, k: &str) -> Option<&'a str> {
    e.get(k).and_then(Value::as_str)
}

fn upper_first(code: &str) -> String {
    let mut c = code.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// The FHIR type of an element type entry; FHIRPath system types (`Element.id`, `Extension.url`)
/// carry their FHIR type in the `structuredefinition-fhir-type` extension.
fn fhir_code(t: &Value) -> String {
    let code = t.get("code").and_then(Value::as_str).unwrap_or("");
    if let Some(sys) = code.strip_prefix("http://hl7.org/fhirpath/System.") {
        if let Some(exts) = t.get("extension").and_then(Value::as_array) {
            for x in exts {
                if x.get("url").and_then(Value::as_str)
                    == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
                    && let Some(v) = x
                        .get("valueUrl")
                        .or_else(|| x.get("valueUri"))
                        .and_then(Value::as_str)
                {
                    return v.to_owned();
                }
            }
        }
        return match sys {
            "Boolean" => "boolean",
            "Integer" => "integer",
            "Decimal" => "decimal",
            "Date" => "date",
            "DateTime" => "dateTime",
            "Time" => "time",
            _ => "string",
        }
        .to_owned();
    }
    code.to_owned()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.split('|').next().unwrap_or(s).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Builder<'_> {
    fn warn(&mut self, profile: &str, element_id: &str, message: String) {
        if self.warned.insert(message.clone()) {
            self.warnings.push(LoadWarning {
                profile: profile.to_owned(),
                element_id: element_id.to_owned(),
                message,
            });
        }
    }

    fn alloc(
        &mut self,
        url: &Arc<str>,
        type_name: &str,
        is_resource: bool,
        root_id: &str,
    ) -> StructId {
        self.structs.push(Struct {
            url: url.clone(),
            type_name: type_name.into(),
            is_resource,
            elements: Vec::new(),
            keys: Vec::new(),
            by_len: Vec::new(),
            invariants: Vec::new(),
            root_id: root_id.into(),
            required: 0,
        });
        (self.structs.len() - 1) as StructId
    }

    fn is_resource_type(&self, code: &str) -> bool {
        code == "Resource"
            || code == "DomainResource"
            || self
                .defs
                .structure_definition(&type_url(code))
                .is_some_and(|l| l.resource.get("kind").and_then(Value::as_str) == Some("resource"))
    }

    fn compile_sd(&mut self, url: &str) -> Result<StructId, LoadError> {
        let url = url.split('|').next().unwrap_or(url);
        if let Some(&sid) = self.memo.get(url) {
            return Ok(sid);
        }
        let defs = self.defs;
        let loaded = defs
            .structure_definition(url)
            .ok_or_else(|| LoadError::Profile {
                file: "(definitions)".into(),
                url: url.to_owned(),
                element: None,
                message: "StructureDefinition is not loaded".into(),
            })?;
        let snap = self.snaps.get(url)?;
        let sd = &loaded.resource;
        let ty = sd.get("type").and_then(Value::as_str).unwrap_or("");
        let is_resource = sd.get("kind").and_then(Value::as_str) == Some("resource");
        let mut cx = Sd {
            url: Arc::from(url),
            file: loaded.source.clone(),
            snap: snap.clone(),
            children: vec![Vec::new(); snap.len()],
            slices: vec![Vec::new(); snap.len()],
            index: HashMap::new(),
        };
        if snap.is_empty() {
            return Err(cx.err(ty, "the snapshot is empty"));
        }
        for (i, e) in snap.iter().enumerate() {
            cx.index.insert(elem_id(e).to_owned(), i);
        }
        for (i, e) in snap.iter().enumerate().skip(1) {
            let id = elem_id(e);
            let Some((parent, last)) = id.rsplit_once('.') else {
                return Err(cx.err(id, "is not under the root element"));
            };
            if let Some((name, _)) = last.split_once(':') {
                let base = format!("{parent}.{name}");
                let Some(&bi) = cx.index.get(&base) else {
                    return Err(cx.err(
                        id,
                        format!("slice of '{base}', which is not in the snapshot"),
                    ));
                };
                cx.slices[bi].push(i);
            } else {
                let Some(&pi) = cx.index.get(parent) else {
                    return Err(cx.err(id, format!("parent '{parent}' is not in the snapshot")));
                };
                cx.children[pi].push(i);
            }
        }
        let root_id = elem_id(&snap[0]).to_owned();
        let sid = self.alloc(&cx.url, ty, is_resource, &root_id);
        self.memo.insert(url.to_owned(), sid);
        let mut local = HashMap::new();
        local.insert(root_id, sid);
        let invariants = self.constraints(&cx, &snap[0]);
        self.fill(&cx, sid, 0, &mut local, invariants)?;
        Ok(sid)
    }

    fn constraints(&mut self, cx: &Sd, e: &Element) -> Vec<u32> {
        let mut out = Vec::new();
        let Some(list) = e.get("constraint").and_then(Value::as_array) else {
            return out;
        };
        for c in list {
            let key = c.get("key").and_then(Value::as_str).unwrap_or("");
            let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
            if key == "ele-1" || expr == ELE_1 {
                continue; // checked natively on every element by the walk
            }
            let severity = match c.get("severity").and_then(Value::as_str) {
                Some("warning") => Severity::Warning,
                _ => Severity::Error,
            };
            if expr.is_empty() {
                let msg =
                    format!("invariant {key} has no FHIRPath expression and is not evaluated");
                self.warn(&cx.url, elem_id(e), msg);
                continue;
            }
            let mk = (key.to_owned(), expr.to_owned(), severity);
            let idx = if let Some(&i) = self.inv_memo.get(&mk) {
                i
            } else {
                let human = c.get("human").and_then(Value::as_str).unwrap_or("");
                let (inv, why) = Invariant::new(key, severity, human, expr);
                if let Some(why) = why {
                    self.warn(&cx.url, elem_id(e), why);
                }
                self.invariants.push(inv);
                let i = (self.invariants.len() - 1) as u32;
                self.inv_memo.insert(mk, i);
                i
            };
            out.push(idx);
        }
        out
    }

    /// Fill struct `sid` with the children of element `idx`.
    fn fill(
        &mut self,
        cx: &Sd,
        sid: StructId,
        idx: usize,
        local: &mut HashMap<String, StructId>,
        invariants: Vec<u32>,
    ) -> Result<(), LoadError> {
        let mut elements = Vec::with_capacity(cx.children[idx].len());
        for &ci in &cx.children[idx] {
            elements.push(self.elem_rule(cx, ci, local)?);
        }
        let mut keys = Vec::new();
        for (i, e) in elements.iter().enumerate() {
            let ei = u16::try_from(i).map_err(|_| cx.err(&e.id, "too many children"))?;
            for (j, t) in e.types.iter().enumerate() {
                if !e.choice && j > 0 {
                    break;
                }
                let key = if e.choice {
                    format!("{}{}", e.name, upper_first(&t.code))
                } else {
                    e.name.to_string()
                };
                let prim = matches!(t.kind, Kind::Primitive(_));
                let any_prim = e.types.iter().any(|t| matches!(t.kind, Kind::Primitive(_)));
                if prim || (!e.choice && any_prim) {
                    keys.push(KeyEntry {
                        key: format!("_{key}").into(),
                        elem: ei,
                        ty: j as u16,
                        under: true,
                    });
                }
                keys.push(KeyEntry {
                    key: key.into(),
                    elem: ei,
                    ty: j as u16,
                    under: false,
                });
            }
        }
        keys.sort_by(|a, b| key_order(&a.key, &b.key));
        keys.dedup_by(|a, b| a.key == b.key);
        let s = &mut self.structs[sid as usize];
        s.elements = elements;
        s.by_len = ranges_by_len(&keys);
        s.keys = keys;
        s.invariants = invariants;
        Ok(())
    }

    fn inline(
        &mut self,
        cx: &Sd,
        ci: usize,
        local: &mut HashMap<String, StructId>,
        type_code: &str,
    ) -> Result<StructId, LoadError> {
        let id = elem_id(&cx.snap[ci]).to_owned();
        if let Some(&sid) = local.get(&id) {
            return Ok(sid);
        }
        let sid = self.alloc(&cx.url, type_code, false, &id);
        self.inline_by_elem.insert(format!("{}#{id}", cx.url), sid);
        local.insert(id, sid);
        // An inline struct for a data type keeps that type's own invariants (e.g. ref-1, per-1).
        let invariants = if matches!(type_code, "BackboneElement" | "Element" | "") {
            Vec::new()
        } else {
            match self.snaps.get(&type_url(type_code)) {
                Ok(ts) => match ts.first() {
                    Some(root) => {
                        let root = root.clone();
                        self.constraints(cx, &root)
                    }
                    None => Vec::new(),
                },
                Err(_) => Vec::new(),
            }
        };
        self.fill(cx, sid, ci, local, invariants)?;
        Ok(sid)
    }

    /// The struct a content reference (`#Parameters.parameter`) stands for. Children the snapshot
    /// expanded under the element (a profile constraining `part.part`) are its own; otherwise the
    /// rules are those of the referenced element in the type's *base* definition: a profile's
    /// constraints on `Parameters.parameter` (its name pattern, its slices) do not apply to
    /// every `parameter.part` as well.
    fn content_reference(
        &mut self,
        cx: &Sd,
        ci: usize,
        r: &str,
        local: &mut HashMap<String, StructId>,
    ) -> Result<StructId, LoadError> {
        let id = elem_id(&cx.snap[ci]).to_owned();
        if !cx.children[ci].is_empty() {
            return self.inline(cx, ci, local, "BackboneElement");
        }
        let (owner, target) = r.split_once('#').unwrap_or(("", r));
        let owner = if owner.is_empty() {
            type_url(target.split('.').next().unwrap_or(""))
        } else {
            owner.to_owned()
        };
        if owner.as_str() != cx.url.as_ref() && self.defs.structure_definition(&owner).is_some() {
            self.compile_sd(&owner)
                .map_err(|err| cx.err(&id, format!("contentReference {r}: {err}")))?;
            if let Some(&sid) = self.inline_by_elem.get(&format!("{owner}#{target}")) {
                return Ok(sid);
            }
        }
        let ti = *cx
            .index
            .get(target)
            .ok_or_else(|| cx.err(&id, format!("contentReference {r} does not resolve")))?;
        self.inline(cx, ti, local, "BackboneElement")
    }

    fn elem_rule(
        &mut self,
        cx: &Sd,
        ci: usize,
        local: &mut HashMap<String, StructId>,
    ) -> Result<ElemRule, LoadError> {
        let e = &cx.snap[ci];
        let id = elem_id(e).to_owned();
        let path = str_of(e, "path").unwrap_or("").to_owned();
        let last = path.rsplit('.').next().unwrap_or("");
        let (name, choice) = match last.strip_suffix("[x]") {
            Some(n) => (n.to_owned(), true),
            None => (last.to_owned(), false),
        };
        let min = e.get("min").and_then(Value::as_u64).unwrap_or(0) as u32;
        let max = parse_max(e.get("max")).unwrap_or(u32::MAX);
        let base_max = parse_max(e.get("base").and_then(|b| b.get("max"))).unwrap_or(max);
        let has_children = !cx.children[ci].is_empty();
        let mut types = Vec::new();
        if let Some(r) = str_of(e, "contentReference") {
            let sid = self.content_reference(cx, ci, r, local)?;
            types.push(TypeRule {
                code: "BackboneElement".into(),
                kind: Kind::Complex(sid),
                targets: Vec::new(),
                context_free: false,
                memo_absent: 0,
            });
        }
        let raw_types = e
            .get("type")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in &raw_types {
            let code = fhir_code(t);
            let profiles = strings(t.get("profile"));
            let mut targets = Vec::new();
            for tp in strings(t.get("targetProfile")) {
                let ty = if let Some(tail) = tp.strip_prefix(CORE) {
                    tail.to_owned()
                } else if let Some(l) = self.defs.structure_definition(&tp) {
                    l.resource
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                } else {
                    // Not fatal: an unknown target only narrows nothing (the reference type is
                    // then checked against the known targets alone).
                    self.warn(
                        &cx.url,
                        &id,
                        format!(
                            "targetProfile {tp} is not loaded; references to it are not allowed"
                        ),
                    );
                    continue;
                };
                targets.push(ty.into());
            }
            // R4 types Resource.id as a FHIRPath string; its definition (and every validator)
            // holds it to the id format.
            let resource_id = code == "string"
                && path.ends_with(".id")
                && path.matches('.').count() == 1
                && self.is_resource_type(path.split('.').next().unwrap_or(""));
            let kind = if resource_id {
                Kind::Primitive(Prim::Id)
            } else if let Some(p) = Prim::from_code(&code) {
                Kind::Primitive(p)
            } else if code == "xhtml" {
                Kind::Xhtml
            } else if self.is_resource_type(&code) {
                let mut ps = Vec::new();
                for p in &profiles {
                    ps.push(self.compile_sd(p).map_err(|err| {
                        cx.err(&id, format!("type profile {p} cannot be used: {err}"))
                    })?);
                }
                let types = if code == "Resource" || code == "DomainResource" {
                    Vec::new()
                } else {
                    vec![code.as_str().into()]
                };
                Kind::Resource {
                    types,
                    profiles: ps,
                }
            } else if has_children {
                Kind::Complex(self.inline(cx, ci, local, &code)?)
            } else if let Some(p) = profiles.first() {
                Kind::Complex(self.compile_sd(p).map_err(|err| {
                    cx.err(&id, format!("type profile {p} cannot be used: {err}"))
                })?)
            } else if code == "Extension" {
                Kind::Extension
            } else if code.is_empty() {
                return Err(cx.err(&id, "a type has no code"));
            } else {
                Kind::Complex(
                    self.compile_sd(&type_url(&code))
                        .map_err(|err| cx.err(&id, format!("type {code} cannot be used: {err}")))?,
                )
            };
            types.push(TypeRule {
                code: code.into(),
                kind,
                targets,
                context_free: false,
                memo_absent: 0,
            });
        }
        let mut fixed = None;
        let mut pattern = None;
        for (k, v) in e {
            if k.starts_with("fixed") {
                fixed = Some(v.clone());
            } else if k.starts_with("pattern") {
                pattern = Some(v.clone());
            }
        }
        let binding = e.get("binding").and_then(|b| {
            let strength = match b.get("strength").and_then(Value::as_str)? {
                "required" => Strength::Required,
                "extensible" => Strength::Extensible,
                _ => return None,
            };
            let vs = b.get("valueSet").and_then(Value::as_str)?;
            Some(Binding {
                strength,
                value_set: vs.split('|').next().unwrap_or(vs).into(),
            })
        });
        let invariants = self.constraints(cx, e);
        let ext = match name.as_str() {
            "extension" => ExtKind::Extension,
            "modifierExtension" => ExtKind::Modifier,
            _ => ExtKind::No,
        };
        let mut rule = ElemRule {
            id: id.clone().into(),
            path: path.clone().into(),
            name: name.into(),
            min,
            max,
            array: base_max != 1,
            choice,
            types,
            fixed,
            pattern,
            binding,
            invariants,
            slicing: None,
            max_length: e.get("maxLength").and_then(Value::as_u64).map(|n| n as u32),
            ext,
        };
        if !cx.slices[ci].is_empty() {
            if choice {
                self.type_slices(cx, ci, &mut rule, local)?;
            } else {
                rule.slicing = self.slicing(cx, ci, local)?.map(Box::new);
            }
        }
        Ok(rule)
    }

    /// `value[x]:valueQuantity` slices: the slice's constraints apply when that type is used.
    fn type_slices(
        &mut self,
        cx: &Sd,
        ci: usize,
        rule: &mut ElemRule,
        local: &mut HashMap<String, StructId>,
    ) -> Result<(), LoadError> {
        for &si in &cx.slices[ci] {
            let s = self.elem_rule(cx, si, local)?;
            for st in s.types {
                if let Some(t) = rule.types.iter_mut().find(|t| t.code == st.code) {
                    *t = st;
                }
            }
            if s.fixed.is_some() {
                rule.fixed = s.fixed;
            }
            if s.pattern.is_some() {
                rule.pattern = s.pattern;
            }
            if s.binding.is_some() {
                rule.binding = s.binding;
            }
            rule.invariants.extend(s.invariants);
        }
        Ok(())
    }

    fn slicing(
        &mut self,
        cx: &Sd,
        ci: usize,
        local: &mut HashMap<String, StructId>,
    ) -> Result<Option<Slicing>, LoadError> {
        let e = &cx.snap[ci];
        let id = elem_id(e).to_owned();
        let sl = e.get("slicing");
        let mut discs: Vec<(String, String)> = sl
            .and_then(|s| s.get("discriminator"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|d| {
                        (
                            d.get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            d.get("path")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = str_of(e, "path")
            .unwrap_or("")
            .rsplit('.')
            .next()
            .unwrap_or("");
        if discs.is_empty() && (name == "extension" || name == "modifierExtension") {
            discs.push(("value".into(), "url".into()));
        }
        if discs.is_empty() {
            self.warn(
                &cx.url,
                &id,
                format!("slicing on {id} has no discriminator; its slices are not checked"),
            );
            return Ok(None);
        }
        let rules = match sl.and_then(|s| s.get("rules")).and_then(Value::as_str) {
            Some("closed") => Rules::Closed,
            Some("openAtEnd") => Rules::OpenAtEnd,
            _ => Rules::Open,
        };
        let ordered = sl
            .and_then(|s| s.get("ordered"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut slices = Vec::new();
        for &si in &cx.slices[ci] {
            let sname = str_of(&cx.snap[si], "sliceName").unwrap_or("").to_owned();
            let mut matchers = Vec::new();
            for (dt, dp) in &discs {
                match self.matcher(cx, si, dt, dp) {
                    Ok(m) => matchers.push(m),
                    Err(msg) => {
                        let sid = elem_id(&cx.snap[si]).to_owned();
                        self.warn(
                            &cx.url,
                            &sid,
                            format!("slicing on {id} is not checked: slice '{sname}': {msg}"),
                        );
                        return Ok(None);
                    }
                }
            }
            let elem = self.elem_rule(cx, si, local)?;
            slices.push(SliceRule {
                name: sname.into(),
                elem,
                matchers,
            });
        }
        let discriminators = discs
            .iter()
            .map(|(t, p)| format!("{t}:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Some(Slicing {
            rules,
            ordered,
            by_value: value_discriminator(&slices),
            slices,
            discriminators: discriminators.into(),
        }))
    }

    fn matcher(&mut self, cx: &Sd, si: usize, dtype: &str, dpath: &str) -> Result<Matcher, String> {
        let mut cur = si;
        let mut path: Vec<Vec<Box<str>>> = Vec::new();
        let segs: Vec<&str> = if dpath == "$this" || dpath.is_empty() {
            Vec::new()
        } else {
            dpath.split('.').collect()
        };
        for (n, seg) in segs.iter().enumerate() {
            if seg.contains('(') {
                return Err(format!("discriminator path '{dpath}' uses a function"));
            }
            let found = cx.children[cur].iter().copied().find(|&c| {
                let p = str_of(&cx.snap[c], "path").unwrap_or("");
                let last = p.rsplit('.').next().unwrap_or("");
                last == *seg || last.strip_suffix("[x]") == Some(seg)
            });
            match found {
                Some(c) => {
                    let p = str_of(&cx.snap[c], "path").unwrap_or("");
                    let last = p.rsplit('.').next().unwrap_or("");
                    let keys = match last.strip_suffix("[x]") {
                        Some(stem) => cx.snap[c]
                            .get("type")
                            .and_then(Value::as_array)
                            .map(|ts| {
                                ts.iter()
                                    .map(|t| format!("{stem}{}", upper_first(&fhir_code(t))).into())
                                    .collect()
                            })
                            .unwrap_or_default(),
                        None => vec![(*seg).into()],
                    };
                    path.push(keys);
                    cur = c;
                }
                None => {
                    let e = &cx.snap[cur];
                    // `url` on an extension slice typed by its profile.
                    if *seg == "url" && n + 1 == segs.len() {
                        let prof = e
                            .get("type")
                            .and_then(Value::as_array)
                            .and_then(|ts| ts.first())
                            .and_then(|t| t.get("profile"))
                            .and_then(Value::as_array)
                            .and_then(|p| p.first())
                            .and_then(Value::as_str);
                        if let Some(p) = prof {
                            path.push(vec!["url".into()]);
                            return Ok(Matcher {
                                path,
                                test: Test::Equals(Value::String(p.to_owned())),
                            });
                        }
                    }
                    // The value lies inside a fixed/pattern set on an ancestor.
                    for (k, v) in e {
                        let is_fixed = k.starts_with("fixed");
                        if !is_fixed && !k.starts_with("pattern") {
                            continue;
                        }
                        let Some(sub) = descend(v, &segs[n..]) else {
                            return Err(format!("'{dpath}' is not in the slice's {k}"));
                        };
                        for s in &segs[n..] {
                            path.push(vec![(*s).into()]);
                        }
                        return Ok(Matcher {
                            path,
                            test: if is_fixed && !matches!(sub, Value::Array(_)) {
                                Test::Equals(sub)
                            } else {
                                Test::Contains(sub)
                            },
                        });
                    }
                    return Err(format!(
                        "discriminator path '{dpath}' is not constrained in the slice"
                    ));
                }
            }
        }
        let e = &cx.snap[cur];
        let test = match dtype {
            "value" | "pattern" => {
                let mut t = None;
                for (k, v) in e {
                    if k.starts_with("fixed") {
                        t = Some(Test::Equals(v.clone()));
                    } else if k.starts_with("pattern") {
                        t = Some(Test::Contains(v.clone()));
                    }
                }
                t.ok_or_else(|| format!("'{dpath}' has no fixed or pattern value in the slice"))?
            }
            "exists" => {
                if e.get("min").and_then(Value::as_u64).unwrap_or(0) >= 1 {
                    Test::Exists(true)
                } else if parse_max(e.get("max")) == Some(0) {
                    Test::Exists(false)
                } else {
                    return Err(format!(
                        "'{dpath}' is neither required nor prohibited in the slice"
                    ));
                }
            }
            "type" => {
                let ts = e
                    .get("type")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if ts.len() != 1 {
                    return Err(format!(
                        "'{dpath}' does not have exactly one type in the slice"
                    ));
                }
                let code = fhir_code(&ts[0]);
                if self.is_resource_type(&code) {
                    Test::ResourceType(code.into())
                } else if let Some(last) = path.last_mut()
                    && last.len() > 1
                {
                    let stem_keep: Vec<Box<str>> = last
                        .iter()
                        .filter(|k| k.ends_with(&upper_first(&code)))
                        .cloned()
                        .collect();
                    *last = stem_keep;
                    Test::Exists(true)
                } else {
                    return Err(format!(
                        "type discriminator '{dpath}' is on a non-choice data type"
                    ));
                }
            }
            "profile" => {
                let p = e
                    .get("type")
                    .and_then(Value::as_array)
                    .and_then(|ts| ts.first())
                    .and_then(|t| t.get("profile"))
                    .and_then(Value::as_array)
                    .and_then(|p| p.first())
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("'{dpath}' has no type profile in the slice"))?
                    .to_owned();
                let sid = self.compile_sd(&p).map_err(|e| e.to_string())?;
                Test::Profile(sid)
            }
            other => return Err(format!("unknown discriminator type '{other}'")),
        };
        Ok(Matcher { path, test })
    }
}

/// The part of a fixed/pattern value at `segs` (arrays: the first item that has it).
fn descend(v: &Value, segs: &[&str]) -> Option<Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(v.clone());
    };
    match v {
        Value::Array(items) => items.iter().find_map(|i| descend(i, segs)),
        Value::Object(o) => descend(o.get(*first)?, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testkit;

    #[test]
    fn base_r4_compiles_with_keys_for_choices_and_primitives() {
        let set = testkit::core_set();
        let obs = &set.structs[set.resource_types["Observation"] as usize];
        assert!(obs.lookup("valueQuantity").is_some());
        assert!(obs.lookup("_valueString").is_some());
        assert!(obs.lookup("_valueQuantity").is_none());
        assert!(obs.lookup("value").is_none());
        let mr = &set.structs[set.resource_types["MeasureReport"] as usize];
        let status = &mr.elements[mr.lookup("status").unwrap().elem as usize];
        assert_eq!(status.min, 1);
        assert!(!status.array);
        assert!(matches!(
            status.binding.as_ref().map(|b| b.strength),
            Some(Strength::Required)
        ));
        assert!(mr.lookup("_status").is_some());
    }

    /// fhir-test-cases `params-recursion`: a profile's pattern on `Parameters.parameter.name`
    /// does not reach `parameter.part.name` (a content reference to base `Parameters.parameter`),
    /// while what the profile says about a slice of `part` does apply there.
    #[test]
    fn content_reference_uses_the_base_element_not_the_profiles_constraints() {
        let mut defs = testkit::core_definitions().clone();
        defs.add_resource(
            std::path::Path::new("params-profile.json"),
            serde_json::json!({
                "resourceType": "StructureDefinition",
                "url": "http://x/params", "type": "Parameters", "kind": "resource",
                "derivation": "constraint",
                "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
                "differential": {"element": [
                    {"id": "Parameters.parameter.name", "path": "Parameters.parameter.name",
                     "patternString": "outer"},
                    {"id": "Parameters.parameter.part", "path": "Parameters.parameter.part",
                     "slicing": {"discriminator": [{"type": "value", "path": "name"}], "rules": "open"},
                     "min": 1},
                    {"id": "Parameters.parameter.part:a", "path": "Parameters.parameter.part",
                     "sliceName": "a", "min": 1, "max": "1"},
                    {"id": "Parameters.parameter.part:a.name", "path": "Parameters.parameter.part.name",
                     "fixedString": "a"},
                    {"id": "Parameters.parameter.part:a.value[x]", "path": "Parameters.parameter.part.value[x]",
                     "min": 1}
                ]}
            }),
        );
        let v = crate::validate::Validator::from_definitions(
            &defs,
            std::sync::Arc::new(crate::validate::NoTerminology),
        )
        .expect("profile compiles");
        let run = |part: serde_json::Value| {
            let p = serde_json::json!({"resourceType": "Parameters",
                "parameter": [{"name": "outer", "part": part}]});
            v.validate(p.to_string().as_bytes(), &["http://x/params"])
        };
        let ok = run(serde_json::json!([{"name": "a", "valueString": "x"}, {"name": "b"}]));
        assert!(!ok.has_errors(), "{:#?}", ok.issues);
        let bad = run(serde_json::json!([{"name": "a"}]));
        let errs: Vec<_> = bad
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .collect();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            errs[0].expression.as_deref(),
            Some("Parameters.parameter[0].part[0].value")
        );
    }

    #[test]
    fn unevaluable_invariants_are_listed_once() {
        let set = testkit::core_set();
        let w = set.warnings();
        let distinct: HashSet<&str> = w.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(distinct.len(), w.len(), "a warning is repeated");
        // Every invariant of the base definitions is either evaluated or listed.
        for inv in &set.invariants {
            let listed = w.iter().any(|w| w.message.contains(&*inv.expression));
            assert_eq!(
                inv.eval_supported(),
                !listed,
                "{}: {}",
                inv.key,
                inv.expression
            );
        }
    }
}
