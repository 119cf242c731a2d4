//! Terminology: CodeSystems and ValueSets loaded once, each ValueSet expanded at load time into a
//! membership set that answers "is this (system, code) in the value set?" with hash lookups.
//!
//! Owns: reading CodeSystem/ValueSet JSON, the concept hierarchy (nesting and `parent`/`child`/
//! `subsumedBy` properties), `compose` expansion (include by whole system, by concept list, by
//! filters `is-a`, `descendent-of`, `is-not-a`, `generalizes`, `=`, `in`, `not-in`, `exists`; by
//! `valueSet` import; `exclude`), and the implementation of the engine's [`Terminology`] trait.
//!
//! Must not: report a code as wrong when it cannot know. A code system that is not loaded (SNOMED CT,
//! LOINC, UCUM, BCP-47...) or a filter it cannot evaluate makes the answer [`Membership::Unknown`],
//! which the engine must not turn into an error. What could not be expanded is said once, at load,
//! as information issues (see [`TermStore::load_notes`]). No I/O: callers hand in parsed resources.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a. Membership is looked up for every coded element validated (value-set URL, system,
/// code), and SipHash was a visible share of that. The tables are built from the loaded
/// definitions only; received data only probes them, so flooding resistance buys nothing here.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use super::{Definitions, LoadError, Validator};
use crate::fhir::{Issue, IssueType};

/// Loads the validator the gateway runs: definitions from `sources` (base first, then profiles,
/// then IGs; later ones override), terminology built from the same ValueSets and CodeSystems.
pub fn load_validator(sources: &[PathBuf]) -> Result<Validator, LoadError> {
    let defs = Definitions::load(sources)?;
    let terminology = TermStore::from_definitions(&defs);
    Validator::from_definitions(&defs, Arc::new(terminology))
}

/// Answer to "is this code in that value set / code system?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Yes,
    No,
    /// The terminology needed to answer is not loaded or not computable: never an error.
    Unknown,
}

/// What the validation engine asks of terminology. Implemented by [`TermStore`]; the engine takes
/// `&dyn Terminology` (or a generic) so tests can stub it.
pub trait Terminology: Send + Sync {
    /// Is `code` (in `system`, when the element has one: Coding, CodeableConcept, Quantity) a member
    /// of the value set `valueset` (canonical, `|version` ignored)? For `code` elements, which
    /// carry no system, pass `None`: any system of the value set matches.
    fn member(&self, valueset: &str, system: Option<&str>, code: &str) -> Membership;

    /// Is `code` defined in the code system `system`? Unknown when the system is not loaded or
    /// is published as a fragment/example.
    fn in_code_system(&self, system: &str, code: &str) -> Membership;

    /// The display of `code` in `system`, when the code system is loaded and gives one.
    fn display(&self, system: &str, code: &str) -> Option<&str>;

    /// The pre-expanded value set, so a compiled validator resolves the URL once at compile time
    /// and pays one or two hash lookups per coding at validation time.
    fn expansion(&self, valueset: &str) -> Option<Arc<Expansion>>;
}

/// A resource handed to [`TermStore::add`] that cannot be used.
#[derive(Debug, Error)]
pub enum TerminologyError {
    #[error("{resource_type} without a url cannot be referenced (id {id:?})")]
    MissingUrl {
        resource_type: String,
        id: Option<String>,
    },
    #[error("expected a CodeSystem or ValueSet, got {0:?}")]
    NotTerminology(Option<String>),
}

/// A value set expanded into membership sets. `open` systems are those whose membership could not be
/// computed (code system not loaded, unsupported filter): codes in them answer Unknown unless they
/// were listed explicitly.
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    codes: FastMap<String, FastSet<String>>,
    open: FastSet<String>,
    /// An import could not be resolved at all: every code not found is Unknown.
    open_any: bool,
}

impl Expansion {
    /// Membership of (`system`, `code`); `system` None matches any system (FHIR `code` elements).
    pub fn member(&self, system: Option<&str>, code: &str) -> Membership {
        match system {
            Some(system) => {
                if self.codes.get(system).is_some_and(|c| c.contains(code)) {
                    Membership::Yes
                } else if self.open_any || self.open.contains(system) {
                    Membership::Unknown
                } else {
                    Membership::No
                }
            }
            None => {
                if self.codes.values().any(|c| c.contains(code)) {
                    Membership::Yes
                } else if self.open_any || !self.open.is_empty() {
                    Membership::Unknown
                } else {
                    Membership::No
                }
            }
        }
    }

    /// True when every answer is Yes or No (nothing open).
    pub fn is_closed(&self) -> bool {
        !self.open_any && self.open.is_empty()
    }

    /// Number of enumerated (system, code) pairs.
    pub fn len(&self) -> usize {
        self.codes.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `n` enumerated codes, sorted, for diagnostics ("expected one of ...").
    pub fn sample(&self, n: usize) -> Vec<String> {
        let mut all: Vec<String> = self.codes.values().flatten().cloned().collect();
        all.sort();
        all.truncate(n);
        all
    }

    fn open_system(system: &str) -> Self {
        let mut e = Expansion::default();
        e.open.insert(system.to_owned());
        e
    }

    fn insert(&mut self, system: &str, code: &str) {
        self.codes
            .entry(system.to_owned())
            .or_default()
            .insert(code.to_owned());
    }

    fn union(&mut self, other: Expansion) {
        for (system, codes) in other.codes {
            self.codes.entry(system).or_default().extend(codes);
        }
        self.open.extend(other.open);
        self.open_any |= other.open_any;
    }

    /// Intersection. Conservative: where either side is open the result is open, so an answer is
    /// Unknown rather than a wrong No.
    fn intersect(self, other: &Expansion) -> Expansion {
        let mut out = Expansion {
            open_any: self.open_any && other.open_any,
            ..Default::default()
        };
        let open_in = |e: &Expansion, s: &str| e.open_any || e.open.contains(s);
        let has = |e: &Expansion, s: &str| open_in(e, s) || e.codes.contains_key(s);
        for (system, codes) in &self.codes {
            let kept: FastSet<String> = match other.codes.get(system) {
                Some(theirs) => codes.intersection(theirs).cloned().collect(),
                None => FastSet::default(),
            };
            if open_in(other, system) {
                out.open.insert(system.clone());
            }
            if !kept.is_empty() {
                out.codes.insert(system.clone(), kept);
            }
        }
        for system in &self.open {
            if has(other, system) {
                out.open.insert(system.clone());
            }
        }
        for system in &other.open {
            if has(&self, system) {
                out.open.insert(system.clone());
            }
        }
        if self.open_any {
            out.open.extend(other.codes.keys().cloned());
        }
        out
    }

    /// Difference. Where the excluded part is open for a system, that system's answers become
    /// Unknown (its Yes answers can no longer be trusted).
    fn subtract(&mut self, other: &Expansion) {
        for (system, codes) in self.codes.iter_mut() {
            if let Some(theirs) = other.codes.get(system) {
                codes.retain(|c| !theirs.contains(c));
            }
        }
        let reopened: Vec<String> = self
            .codes
            .keys()
            .chain(self.open.iter())
            .filter(|s| other.open_any || other.open.contains(*s))
            .cloned()
            .collect();
        for system in reopened {
            self.codes.remove(&system);
            self.open.insert(system);
        }
        self.codes.retain(|_, c| !c.is_empty());
    }
}

/// One concept of a loaded code system.
#[derive(Debug, Default)]
struct Concept {
    code: String,
    display: Option<String>,
    parents: Vec<usize>,
    children: Vec<usize>,
    /// Property code -> values as strings (codes, strings, booleans, integers).
    props: Vec<(String, String)>,
}

#[derive(Debug)]
struct CodeSystemIndex {
    /// `content` is `complete` (or absent): a code not listed is not in the system.
    complete: bool,
    case_sensitive: bool,
    concepts: Vec<Concept>,
    index: HashMap<String, usize>,
    /// `CodeSystem.valueSet`: the implicit "all codes" value set.
    all_codes_vs: Option<String>,
}

impl CodeSystemIndex {
    fn from_json(cs: &Value) -> Self {
        let content = cs
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("complete");
        let mut me = CodeSystemIndex {
            complete: content == "complete",
            case_sensitive: cs
                .get("caseSensitive")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            concepts: Vec::new(),
            index: HashMap::new(),
            all_codes_vs: cs
                .get("valueSet")
                .and_then(Value::as_str)
                .map(|s| canonical(s).to_owned()),
        };
        let mut edges: Vec<(usize, String, bool)> = Vec::new(); // (concept, other code, other is parent)
        if let Some(list) = cs.get("concept").and_then(Value::as_array) {
            me.add_concepts(list, None, &mut edges);
        }
        for (i, other, other_is_parent) in edges {
            if let Some(&j) = me.index.get(&other) {
                let (parent, child) = if other_is_parent { (j, i) } else { (i, j) };
                me.link(parent, child);
            }
        }
        me
    }

    fn add_concepts(
        &mut self,
        list: &[Value],
        parent: Option<usize>,
        edges: &mut Vec<(usize, String, bool)>,
    ) {
        for c in list {
            let Some(code) = c.get("code").and_then(Value::as_str) else {
                continue;
            };
            let i = self.concepts.len();
            let mut concept = Concept {
                code: code.to_owned(),
                display: c.get("display").and_then(Value::as_str).map(str::to_owned),
                ..Default::default()
            };
            for p in c
                .get("property")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(pcode) = p.get("code").and_then(Value::as_str) else {
                    continue;
                };
                let Some(value) = property_value(p) else {
                    continue;
                };
                match pcode {
                    "parent" | "subsumedBy" => edges.push((i, value.clone(), true)),
                    "child" => edges.push((i, value.clone(), false)),
                    _ => {}
                }
                concept.props.push((pcode.to_owned(), value));
            }
            self.concepts.push(concept);
            self.index.entry(self.key(code)).or_insert(i);
            if let Some(p) = parent {
                self.link(p, i);
            }
            if let Some(children) = c.get("concept").and_then(Value::as_array) {
                self.add_concepts(children, Some(i), edges);
            }
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        if parent != child && !self.concepts[parent].children.contains(&child) {
            self.concepts[parent].children.push(child);
            self.concepts[child].parents.push(parent);
        }
    }

    fn key(&self, code: &str) -> String {
        if self.case_sensitive {
            code.to_owned()
        } else {
            code.to_lowercase()
        }
    }

    fn find(&self, code: &str) -> Option<usize> {
        if self.case_sensitive {
            self.index.get(code).copied()
        } else {
            self.index.get(&code.to_lowercase()).copied()
        }
    }

    /// `i` and everything below it (`with_self` false: strictly below).
    fn descendants(&self, i: usize, with_self: bool) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack: Vec<usize> = if with_self {
            vec![i]
        } else {
            self.concepts[i].children.clone()
        };
        while let Some(n) = stack.pop() {
            if out.insert(n) {
                stack.extend(self.concepts[n].children.iter().copied());
            }
        }
        out
    }

    fn ancestors(&self, i: usize) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            if out.insert(n) {
                stack.extend(self.concepts[n].parents.iter().copied());
            }
        }
        out
    }
}

fn property_value(p: &Value) -> Option<String> {
    let obj = p.as_object()?;
    obj.iter().find_map(|(k, v)| {
        if !k.starts_with("value") {
            return None;
        }
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o.get("code").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    })
}

fn canonical(url: &str) -> &str {
    url.split_once('|').map_or(url, |(u, _)| u)
}

/// Loaded terminology. Build with [`TermStore::add`] for every CodeSystem and ValueSet, then
/// [`TermStore::build`]; after that it is read-only and shared across threads.
#[derive(Debug, Default)]
pub struct TermStore {
    code_systems: HashMap<String, CodeSystemIndex>,
    value_set_json: HashMap<String, Value>,
    expansions: FastMap<String, Arc<Expansion>>,
    notes: Vec<Issue>,
}

impl TermStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one CodeSystem or ValueSet. A later resource with the same url replaces an earlier
    /// one (base definitions load first, so an `--ig` can override), as for StructureDefinitions.
    pub fn add(&mut self, resource: &Value) -> Result<(), TerminologyError> {
        let rt = resource.get("resourceType").and_then(Value::as_str);
        let url = resource.get("url").and_then(Value::as_str);
        let missing = |rt: &str| TerminologyError::MissingUrl {
            resource_type: rt.to_owned(),
            id: resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        match rt {
            Some("CodeSystem") => {
                let url = url.ok_or_else(|| missing("CodeSystem"))?;
                self.code_systems.insert(
                    canonical(url).to_owned(),
                    CodeSystemIndex::from_json(resource),
                );
                Ok(())
            }
            Some("ValueSet") => {
                let url = url.ok_or_else(|| missing("ValueSet"))?;
                self.value_set_json
                    .insert(canonical(url).to_owned(), resource.clone());
                Ok(())
            }
            other => Err(TerminologyError::NotTerminology(other.map(str::to_owned))),
        }
    }

    /// Adds every CodeSystem and ValueSet in `resources` (resources or Bundles of them), skipping
    /// anything else. Returns how many were added.
    pub fn add_all<'a>(&mut self, resources: impl IntoIterator<Item = &'a Value>) -> usize {
        resources
            .into_iter()
            .map(|r| self.add_one_or_bundle(r))
            .sum()
    }

    fn add_one_or_bundle(&mut self, r: &Value) -> usize {
        match r.get("resourceType").and_then(Value::as_str) {
            Some("Bundle") => array(r, "entry")
                .iter()
                .filter_map(|e| e.get("resource"))
                .map(|e| self.add_one_or_bundle(e))
                .sum(),
            Some("CodeSystem" | "ValueSet") => match self.add(r) {
                Ok(()) => 1,
                Err(e) => {
                    self.notes
                        .push(Issue::warning(IssueType::Invalid, e.to_string()));
                    0
                }
            },
            _ => 0,
        }
    }

    /// Expands every ValueSet (and every CodeSystem's implicit all-codes value set). Call once, after
    /// the last [`add`](Self::add).
    pub fn build(mut self) -> Self {
        let urls: Vec<String> = self.value_set_json.keys().cloned().collect();
        for url in urls {
            let mut stack = Vec::new();
            self.expand(&url, &mut stack);
        }
        let implicit: Vec<(String, String)> = self
            .code_systems
            .iter()
            .filter_map(|(url, cs)| cs.all_codes_vs.clone().map(|vs| (vs, url.clone())))
            .collect();
        for (vs, system) in implicit {
            if !self.expansions.contains_key(&vs) {
                let e = self.whole_system(&system);
                self.expansions.insert(vs, Arc::new(e));
            }
        }
        self.value_set_json = HashMap::new();
        self
    }

    /// What could not be expanded (information issues, one per problem): an unknown code system
    /// makes its codes Unknown, a missing import makes a value set open.
    pub fn load_notes(&self) -> &[Issue] {
        &self.notes
    }

    pub fn has_code_system(&self, system: &str) -> bool {
        self.code_systems.contains_key(canonical(system))
    }

    pub fn value_set_count(&self) -> usize {
        self.expansions.len()
    }

    fn expand(&mut self, url: &str, stack: &mut Vec<String>) -> Arc<Expansion> {
        if let Some(e) = self.expansions.get(url) {
            return e.clone();
        }
        if stack.iter().any(|u| u == url) {
            self.note(
                url,
                "",
                format!("value set imports itself (cycle {})", stack.join(" -> ")),
            );
            return Arc::new(Expansion {
                open_any: true,
                ..Default::default()
            });
        }
        let Some(vs) = self.value_set_json.get(url).cloned() else {
            return Arc::new(Expansion {
                open_any: true,
                ..Default::default()
            });
        };
        stack.push(url.to_owned());
        let mut out = Expansion::default();
        if let Some(compose) = vs.get("compose") {
            for (i, inc) in array(compose, "include").iter().enumerate() {
                let part = self.expand_include(url, &format!("include[{i}]"), inc, stack);
                out.union(part);
            }
            for (i, exc) in array(compose, "exclude").iter().enumerate() {
                let part = self.expand_include(url, &format!("exclude[{i}]"), exc, stack);
                out.subtract(&part);
            }
        } else if let Some(expansion) = vs.get("expansion") {
            add_contains(&mut out, array(expansion, "contains"));
        } else {
            self.note(
                url,
                "",
                "value set has neither compose nor expansion".into(),
            );
            out.open_any = true;
        }
        stack.pop();
        let out = Arc::new(out);
        self.expansions.insert(url.to_owned(), out.clone());
        out
    }

    fn expand_include(
        &mut self,
        vs_url: &str,
        path: &str,
        inc: &Value,
        stack: &mut Vec<String>,
    ) -> Expansion {
        let system = inc.get("system").and_then(Value::as_str).map(canonical);
        let concepts = array(inc, "concept");
        let filters = array(inc, "filter");
        let mut part: Option<Expansion> = system.map(|system| {
            if !concepts.is_empty() {
                // An enumerated list is exact whether or not the code system is loaded.
                let mut e = Expansion::default();
                for c in concepts {
                    if let Some(code) = c.get("code").and_then(Value::as_str) {
                        e.insert(system, code);
                    }
                }
                e
            } else if !filters.is_empty() {
                self.apply_filters(vs_url, path, system, filters)
            } else {
                self.whole_system(system)
            }
        });
        for imported in array(inc, "valueSet").iter().filter_map(Value::as_str) {
            let imported = canonical(imported).to_owned();
            let e = self.expand(&imported, stack);
            if !self.expansions.contains_key(&imported)
                && !self.value_set_json.contains_key(&imported)
            {
                self.note(
                    vs_url,
                    path,
                    format!("imported value set {imported} is not loaded; its codes are unknown"),
                );
            }
            part = Some(match part {
                None => (*e).clone(),
                Some(p) => p.intersect(&e),
            });
        }
        part.unwrap_or_default()
    }

    fn whole_system(&mut self, system: &str) -> Expansion {
        match self.code_systems.get(system) {
            Some(cs) => {
                let mut e = Expansion::default();
                for c in &cs.concepts {
                    e.insert(system, &c.code);
                }
                if !cs.complete {
                    e.open.insert(system.to_owned());
                }
                e
            }
            None => Expansion::open_system(system),
        }
    }

    fn apply_filters(
        &mut self,
        vs_url: &str,
        path: &str,
        system: &str,
        filters: &[Value],
    ) -> Expansion {
        let Some(cs) = self.code_systems.get(system) else {
            return Expansion::open_system(system);
        };
        let mut selected: Option<HashSet<usize>> = None;
        let mut unsupported = Vec::new();
        for (j, f) in filters.iter().enumerate() {
            let op = f.get("op").and_then(Value::as_str).unwrap_or("");
            let property = f.get("property").and_then(Value::as_str).unwrap_or("");
            let value = f.get("value").and_then(Value::as_str).unwrap_or("");
            let hit: Option<HashSet<usize>> = match (op, property) {
                ("is-a", "concept") => Some(
                    cs.find(value)
                        .map_or_else(HashSet::new, |i| cs.descendants(i, true)),
                ),
                ("descendent-of", "concept") => Some(
                    cs.find(value)
                        .map_or_else(HashSet::new, |i| cs.descendants(i, false)),
                ),
                ("is-not-a", "concept") => {
                    let below = cs
                        .find(value)
                        .map(|i| cs.descendants(i, true))
                        .unwrap_or_default();
                    Some(
                        (0..cs.concepts.len())
                            .filter(|i| !below.contains(i))
                            .collect(),
                    )
                }
                ("generalizes", "concept") => {
                    Some(cs.find(value).map(|i| cs.ancestors(i)).unwrap_or_default())
                }
                ("=", _) => Some(with_property(cs, property, |v| v == value)),
                ("in", _) => {
                    let set: HashSet<&str> = value.split(',').map(str::trim).collect();
                    Some(with_property(cs, property, |v| set.contains(v)))
                }
                ("not-in", _) => {
                    let set: HashSet<&str> = value.split(',').map(str::trim).collect();
                    let inside = with_property(cs, property, |v| set.contains(v));
                    Some(
                        (0..cs.concepts.len())
                            .filter(|i| !inside.contains(i))
                            .collect(),
                    )
                }
                ("exists", _) => {
                    let has = with_property(cs, property, |_| true);
                    let want = value != "false";
                    Some(
                        (0..cs.concepts.len())
                            .filter(|i| has.contains(i) == want)
                            .collect(),
                    )
                }
                _ => {
                    unsupported.push(format!("{path}.filter[{j}] ({property} {op} {value:?})"));
                    None
                }
            };
            if let Some(hit) = hit {
                selected = Some(match selected {
                    None => hit,
                    Some(s) => s.intersection(&hit).copied().collect(),
                });
            }
        }
        let mut e = Expansion::default();
        for i in selected.unwrap_or_else(|| (0..cs.concepts.len()).collect()) {
            e.insert(system, &cs.concepts[i].code);
        }
        if !cs.complete {
            e.open.insert(system.to_owned());
        }
        if !unsupported.is_empty() {
            // The supported filters only over-approximate: nothing selected can be a sure Yes.
            e.codes.clear();
            e.open.insert(system.to_owned());
            for u in unsupported {
                self.note(
                    vs_url,
                    "",
                    format!(
                        "filter {u} is not supported; codes of {system} it would select are unknown"
                    ),
                );
            }
        }
        e
    }

    fn note(&mut self, vs_url: &str, path: &str, what: String) {
        let at = if path.is_empty() {
            "ValueSet".to_owned()
        } else {
            format!("ValueSet.compose.{path}")
        };
        self.notes.push(
            Issue::information(IssueType::NotSupported, format!("{vs_url}: {what}"))
                .at(at)
                .from_rule(vs_url, "ValueSet.compose"),
        );
    }
}

fn with_property(
    cs: &CodeSystemIndex,
    property: &str,
    pred: impl Fn(&str) -> bool,
) -> HashSet<usize> {
    cs.concepts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.props.iter().any(|(p, v)| p == property && pred(v)))
        .map(|(i, _)| i)
        .collect()
}

fn add_contains(out: &mut Expansion, contains: &[Value]) {
    for c in contains {
        if let (Some(system), Some(code)) = (
            c.get("system").and_then(Value::as_str),
            c.get("code").and_then(Value::as_str),
        ) {
            out.insert(system, code);
        }
        add_contains(out, array(c, "contains"));
    }
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

impl Terminology for TermStore {
    fn member(&self, valueset: &str, system: Option<&str>, code: &str) -> Membership {
        match self.expansions.get(canonical(valueset)) {
            Some(e) => e.member(system, code),
            None => Membership::Unknown,
        }
    }

    fn in_code_system(&self, system: &str, code: &str) -> Membership {
        TermStore::in_code_system(self, system, code)
    }

    fn display(&self, system: &str, code: &str) -> Option<&str> {
        TermStore::display(self, system, code)
    }

    fn expansion(&self, valueset: &str) -> Option<Arc<Expansion>> {
        TermStore::expansion(self, valueset)
    }
}

impl TermStore {
    /// Terminology from the engine's loaded definitions (CodeSystems first, then ValueSets, each
    /// in load order so later sources override earlier ones).
    pub fn from_definitions(defs: &Definitions) -> TermStore {
        let mut store = TermStore::new();
        for loaded in defs.code_systems().iter().chain(defs.value_sets()) {
            if let Err(e) = store.add(&loaded.resource) {
                store.notes.push(Issue::warning(
                    IssueType::Invalid,
                    format!("{}: {e}", loaded.source.display()),
                ));
            }
        }
        store.build()
    }

    /// Is `code` defined in the code system `system`? Unknown when the system is not loaded or
    /// is published as a fragment/example.
    pub fn in_code_system(&self, system: &str, code: &str) -> Membership {
        match self.code_systems.get(canonical(system)) {
            Some(cs) if cs.find(code).is_some() => Membership::Yes,
            Some(cs) if cs.complete => Membership::No,
            _ => Membership::Unknown,
        }
    }

    /// The display of `code` in `system`, when the code system is loaded and gives one.
    pub fn display(&self, system: &str, code: &str) -> Option<&str> {
        let cs = self.code_systems.get(canonical(system))?;
        cs.concepts[cs.find(code)?].display.as_deref()
    }

    /// The pre-expanded value set, so a compiled validator can resolve the URL once at compile
    /// time and pay one or two hash lookups per coding at validation time.
    pub fn expansion(&self, valueset: &str) -> Option<Arc<Expansion>> {
        self.expansions.get(canonical(valueset)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Membership::*;
    use serde_json::json;

    const CS: &str = "http://example.org/cs";

    fn store(resources: Vec<Value>) -> TermStore {
        let mut s = TermStore::new();
        for r in &resources {
            s.add(r).unwrap();
        }
        s.build()
    }

    /// animal > mammal > (dog, cat); animal > bird; plus a `child` property link bird -> penguin.
    fn animals() -> Value {
        json!({
            "resourceType": "CodeSystem", "url": CS, "content": "complete",
            "valueSet": "http://example.org/vs/all-animals",
            "concept": [
                {"code": "animal", "display": "Animal", "concept": [
                    {"code": "mammal", "concept": [
                        {"code": "dog", "display": "Dog", "property": [{"code": "legs", "valueInteger": 4}]},
                        {"code": "cat", "property": [{"code": "legs", "valueInteger": 4}]}
                    ]},
                    {"code": "bird", "property": [{"code": "child", "valueCode": "penguin"}]}
                ]},
                {"code": "penguin", "property": [{"code": "legs", "valueInteger": 2}]}
            ]
        })
    }

    fn vs(url: &str, compose: Value) -> Value {
        json!({"resourceType": "ValueSet", "url": url, "compose": compose})
    }

    #[test]
    fn whole_system_include_and_implicit_value_set() {
        let t = store(vec![
            animals(),
            vs(
                "http://example.org/vs/a",
                json!({"include": [{"system": CS}]}),
            ),
        ]);
        assert_eq!(t.member("http://example.org/vs/a", Some(CS), "cat"), Yes);
        assert_eq!(t.member("http://example.org/vs/a", Some(CS), "cow"), No);
        assert_eq!(
            t.member("http://example.org/vs/a|1.0", Some(CS), "dog"),
            Yes,
            "version ignored"
        );
        assert_eq!(
            t.member("http://example.org/vs/a", Some("http://other"), "cat"),
            No
        );
        assert_eq!(
            t.member("http://example.org/vs/a", None, "cat"),
            Yes,
            "code without system"
        );
        assert_eq!(
            t.member("http://example.org/vs/all-animals", Some(CS), "penguin"),
            Yes
        );
        assert_eq!(t.display(CS, "dog"), Some("Dog"));
        assert_eq!(t.in_code_system(CS, "dog"), Yes);
        assert_eq!(t.in_code_system(CS, "cow"), No);
    }

    #[test]
    fn hierarchy_filters() {
        let t = store(vec![
            animals(),
            vs(
                "u:isa",
                json!({"include": [{"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": "mammal"}]}]}),
            ),
            vs(
                "u:desc",
                json!({"include": [{"system": CS, "filter": [{"property": "concept", "op": "descendent-of", "value": "mammal"}]}]}),
            ),
            vs(
                "u:bird",
                json!({"include": [{"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": "bird"}]}]}),
            ),
            vs(
                "u:notmammal",
                json!({"include": [{"system": CS, "filter": [{"property": "concept", "op": "is-not-a", "value": "mammal"}]}]}),
            ),
        ]);
        assert_eq!(t.member("u:isa", Some(CS), "mammal"), Yes);
        assert_eq!(t.member("u:isa", Some(CS), "dog"), Yes);
        assert_eq!(t.member("u:isa", Some(CS), "bird"), No);
        assert_eq!(
            t.member("u:desc", Some(CS), "mammal"),
            No,
            "descendent-of excludes the root"
        );
        assert_eq!(t.member("u:desc", Some(CS), "cat"), Yes);
        assert_eq!(
            t.member("u:bird", Some(CS), "penguin"),
            Yes,
            "`child` property is a hierarchy link"
        );
        assert_eq!(t.member("u:notmammal", Some(CS), "dog"), No);
        assert_eq!(t.member("u:notmammal", Some(CS), "bird"), Yes);
    }

    #[test]
    fn property_filters_and_and_semantics() {
        let t = store(vec![
            animals(),
            vs(
                "u:four",
                json!({"include": [{"system": CS, "filter": [{"property": "legs", "op": "=", "value": "4"}]}]}),
            ),
            vs(
                "u:in",
                json!({"include": [{"system": CS, "filter": [{"property": "legs", "op": "in", "value": "2, 3"}]}]}),
            ),
            vs(
                "u:and",
                json!({"include": [{"system": CS, "filter": [
                {"property": "legs", "op": "=", "value": "4"},
                {"property": "concept", "op": "is-a", "value": "dog"}]}]}),
            ),
        ]);
        assert_eq!(t.member("u:four", Some(CS), "cat"), Yes);
        assert_eq!(t.member("u:four", Some(CS), "penguin"), No);
        assert_eq!(t.member("u:in", Some(CS), "penguin"), Yes);
        assert_eq!(t.member("u:and", Some(CS), "dog"), Yes);
        assert_eq!(
            t.member("u:and", Some(CS), "cat"),
            No,
            "filters in one include are ANDed"
        );
    }

    #[test]
    fn imports_concept_lists_and_excludes() {
        let t = store(vec![
            animals(),
            vs(
                "u:mammals",
                json!({"include": [{"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": "mammal"}]}]}),
            ),
            vs(
                "u:import",
                json!({
                    "include": [{"valueSet": ["u:mammals"]}, {"system": "http://x", "concept": [{"code": "a"}]}],
                    "exclude": [{"system": CS, "concept": [{"code": "cat"}]}]
                }),
            ),
            vs(
                "u:intersect",
                json!({"include": [{"system": CS, "concept": [{"code": "dog"}, {"code": "bird"}], "valueSet": ["u:mammals"]}]}),
            ),
        ]);
        assert_eq!(t.member("u:import", Some(CS), "dog"), Yes);
        assert_eq!(t.member("u:import", Some(CS), "cat"), No, "excluded");
        assert_eq!(
            t.member("u:import", Some("http://x"), "a"),
            Yes,
            "concept list of an unloaded system is exact"
        );
        assert_eq!(t.member("u:import", Some("http://x"), "b"), No);
        assert_eq!(t.member("u:intersect", Some(CS), "dog"), Yes);
        assert_eq!(
            t.member("u:intersect", Some(CS), "bird"),
            No,
            "system part AND valueSet"
        );
    }

    #[test]
    fn unknown_systems_and_value_sets_are_unknown_never_no() {
        let snomed = "http://snomed.info/sct";
        let t = store(vec![
            vs(
                "u:snomed",
                json!({"include": [{"system": snomed, "filter": [{"property": "concept", "op": "is-a", "value": "404684003"}]}]}),
            ),
            vs(
                "u:missing-import",
                json!({"include": [{"valueSet": ["u:nowhere"]}]}),
            ),
            animals(),
            vs(
                "u:regex",
                json!({"include": [{"system": CS, "filter": [{"property": "code", "op": "regex", "value": "d.*"}]}]}),
            ),
        ]);
        assert_eq!(t.member("u:snomed", Some(snomed), "22298006"), Unknown);
        assert_eq!(
            t.member("u:snomed", Some(CS), "dog"),
            No,
            "other systems are still decidable"
        );
        assert_eq!(t.member("u:snomed", None, "x"), Unknown);
        assert_eq!(t.member("u:missing-import", Some(CS), "dog"), Unknown);
        assert_eq!(t.member("u:not-loaded", Some(CS), "dog"), Unknown);
        assert_eq!(
            t.member("u:regex", Some(CS), "dog"),
            Unknown,
            "unsupported filter"
        );
        assert_eq!(t.in_code_system(snomed, "22298006"), Unknown);
        let notes: Vec<&str> = t
            .load_notes()
            .iter()
            .map(|i| i.diagnostics.as_str())
            .collect();
        assert!(notes.iter().any(|n| n.contains("u:nowhere")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("regex")), "{notes:?}");
    }

    #[test]
    fn fragment_code_systems_never_say_no() {
        let t = store(vec![
            json!({"resourceType": "CodeSystem", "url": "u:frag", "content": "fragment", "concept": [{"code": "a"}]}),
            vs("u:vs", json!({"include": [{"system": "u:frag"}]})),
        ]);
        assert_eq!(t.member("u:vs", Some("u:frag"), "a"), Yes);
        assert_eq!(t.member("u:vs", Some("u:frag"), "b"), Unknown);
        assert_eq!(t.in_code_system("u:frag", "b"), Unknown);
    }

    #[test]
    fn case_insensitive_code_systems() {
        let t = store(vec![
            json!({"resourceType": "CodeSystem", "url": "u:ci", "caseSensitive": false,
            "concept": [{"code": "Abc"}]}),
        ]);
        assert_eq!(t.in_code_system("u:ci", "aBC"), Yes);
    }

    #[test]
    fn expansion_only_value_sets_and_self_imports() {
        let t = store(vec![
            json!({"resourceType": "ValueSet", "url": "u:exp", "expansion": {"contains": [
                {"system": CS, "code": "x", "contains": [{"system": CS, "code": "y"}]}]}}),
            vs("u:cycle", json!({"include": [{"valueSet": ["u:cycle"]}]})),
        ]);
        assert_eq!(t.member("u:exp", Some(CS), "y"), Yes);
        assert_eq!(t.member("u:exp", Some(CS), "z"), No);
        assert_eq!(t.member("u:cycle", Some(CS), "z"), Unknown);
    }

    #[test]
    fn rejects_non_terminology_and_missing_urls() {
        let mut s = TermStore::new();
        assert!(matches!(
            s.add(&json!({"resourceType": "Patient"})),
            Err(TerminologyError::NotTerminology(_))
        ));
        assert!(matches!(
            s.add(&json!({"resourceType": "ValueSet"})),
            Err(TerminologyError::MissingUrl { .. })
        ));
    }

    /// The committed R4 subset: the bindings the gateway relies on resolve, SNOMED/UCUM stay unknown.
    #[test]
    fn committed_r4_value_sets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |p: &str| -> Value {
            serde_json::from_slice(&std::fs::read(dir.join(p)).unwrap()).unwrap()
        };
        let vs = read("definitions/r4/valuesets.json");
        let ethnic = read("profiles/CodeSystem-UKCore-EthnicCategoryEngland.json");
        let mut s = TermStore::new();
        assert!(s.add_all([&vs, &ethnic]) > 400);
        let t = s.build();
        let gender = "http://hl7.org/fhir/ValueSet/administrative-gender";
        assert_eq!(
            t.member(
                gender,
                Some("http://hl7.org/fhir/administrative-gender"),
                "female"
            ),
            Yes
        );
        assert_eq!(t.member(gender, None, "woman"), No);
        let pop = "http://hl7.org/fhir/ValueSet/measure-population";
        let pop_cs = "http://terminology.hl7.org/CodeSystem/measure-population";
        assert_eq!(t.member(pop, Some(pop_cs), "numerator"), Yes);
        assert_eq!(t.member(pop, Some(pop_cs), "numerators"), No);
        assert_eq!(
            t.member(
                "http://hl7.org/fhir/ValueSet/measure-report-type",
                None,
                "summary"
            ),
            Yes
        );
        assert_eq!(
            t.member(
                "http://hl7.org/fhir/ValueSet/ucum-units",
                Some("http://unitsofmeasure.org"),
                "mg"
            ),
            Unknown
        );
        let ethnic_cs = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland";
        assert_eq!(t.in_code_system(ethnic_cs, "99"), Yes);
        assert_eq!(
            t.in_code_system(ethnic_cs, "I"),
            No,
            "no code I in the NHS list"
        );
    }
}
