//! Snapshot generation: turns a differential-only StructureDefinition into a full snapshot by
//! walking its base's snapshot and applying each differential element by id.
//!
//! Handles: constraints on existing elements, children of complex-typed elements (the type's
//! snapshot is expanded under the element first), slices (a slice starts as a copy of the sliced
//! element with its current children, then takes the slice's own constraints), choice-type renames
//! (`value[x]` constrained as `valueQuantity` restricts the element to that type) and type
//! profiles (an element typed with a profile expands from that profile's snapshot).
//! Refuses (as [`LoadError::Profile`], naming the element) what a profile may not do: loosen
//! cardinality, add types the base does not allow, name elements that do not exist.
//!
//! Must not: compile or validate anything; the output is plain ElementDefinition JSON.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::definitions::{Definitions, LoadError};

pub type Element = Map<String, Value>;

/// Base URL of the FHIR core StructureDefinitions.
pub const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Canonical URL of the definition of a type code (`Quantity`, or an absolute logical-model URL).
pub fn type_url(code: &str) -> String {
    if code.contains("://") {
        code.to_owned()
    } else {
        format!("{CORE}{code}")
    }
}

/// Snapshots by canonical URL, generated on first use and shared.
pub struct Snapshots<'d> {
    defs: &'d Definitions,
    done: HashMap<String, Arc<Vec<Element>>>,
    in_progress: HashSet<String>,
}

struct Ctx<'a> {
    file: &'a std::path::Path,
    url: &'a str,
}

impl Ctx<'_> {
    fn err(&self, element: Option<&str>, message: impl Into<String>) -> LoadError {
        LoadError::Profile {
            file: self.file.to_owned(),
            url: self.url.to_owned(),
            element: element.map(str::to_owned),
            message: message.into(),
        }
    }
}

pub fn elem_id(e: &Element) -> &str {
    e.get("id")
        .and_then(Value::as_str)
        .or_else(|| e.get("path").and_then(Value::as_str))
        .unwrap_or("")
}

fn elem_path(e: &Element) -> &str {
    e.get("path").and_then(Value::as_str).unwrap_or("")
}

/// Parse `max` ("*" or a number); `None` for a missing or malformed value.
pub fn parse_max(v: Option<&Value>) -> Option<u32> {
    match v?.as_str()? {
        "*" => Some(u32::MAX),
        n => n.parse().ok(),
    }
}

fn type_codes(e: &Element) -> Vec<&str> {
    e.get("type")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.get("code").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// `a.b:s.c` -> (`a.b:s`, `c`); the root has no parent.
fn split_last(id: &str) -> Option<(&str, &str)> {
    // A slice name may not contain '.', so the last '.' separates the parent.
    id.rfind('.').map(|i| (&id[..i], &id[i + 1..]))
}

/// One past the last element that belongs under `out[idx]` (children and slices).
fn subtree_end(out: &[Element], idx: usize) -> usize {
    let id = elem_id(&out[idx]).to_owned();
    let mut end = idx + 1;
    while end < out.len() {
        let other = elem_id(&out[end]);
        let under = other.len() > id.len()
            && other.starts_with(&id)
            && matches!(other.as_bytes()[id.len()], b'.' | b':');
        if !under {
            break;
        }
        end += 1;
    }
    end
}

fn find(out: &[Element], id: &str) -> Option<usize> {
    out.iter().position(|e| elem_id(e) == id)
}

fn rebase(e: &mut Element, old_id: &str, new_id: &str, old_path: &str, new_path: &str) {
    if let Some(id) = e.get("id").and_then(Value::as_str)
        && let Some(rest) = id.strip_prefix(old_id)
    {
        let v = format!("{new_id}{rest}");
        e.insert("id".into(), Value::String(v));
    }
    if let Some(p) = e.get("path").and_then(Value::as_str)
        && let Some(rest) = p.strip_prefix(old_path)
    {
        let v = format!("{new_path}{rest}");
        e.insert("path".into(), Value::String(v));
    }
}

impl<'d> Snapshots<'d> {
    pub fn new(defs: &'d Definitions) -> Self {
        Snapshots {
            defs,
            done: HashMap::new(),
            in_progress: HashSet::new(),
        }
    }

    /// The snapshot of the StructureDefinition at `url` (given, or generated from its differential).
    pub fn get(&mut self, url: &str) -> Result<Arc<Vec<Element>>, LoadError> {
        let url = url.split('|').next().unwrap_or(url);
        if let Some(s) = self.done.get(url) {
            return Ok(s.clone());
        }
        let defs = self.defs;
        let Some(loaded) = defs.structure_definition(url) else {
            return Err(LoadError::Profile {
                file: "(definitions)".into(),
                url: url.to_owned(),
                element: None,
                message: "StructureDefinition is not loaded".into(),
            });
        };
        let ctx = Ctx {
            file: &loaded.source,
            url,
        };
        let sd = &loaded.resource;
        let snap = if let Some(Value::Array(els)) = sd.pointer("/snapshot/element") {
            els.iter()
                .filter_map(|e| e.as_object().cloned())
                .collect::<Vec<_>>()
        } else {
            if !self.in_progress.insert(url.to_owned()) {
                return Err(ctx.err(None, "circular baseDefinition or type profile"));
            }
            let r = self.generate(&ctx, sd);
            self.in_progress.remove(url);
            r?
        };
        let snap = Arc::new(snap);
        self.done.insert(url.to_owned(), snap.clone());
        Ok(snap)
    }

    fn generate(&mut self, ctx: &Ctx, sd: &Value) -> Result<Vec<Element>, LoadError> {
        let base_url = sd
            .get("baseDefinition")
            .and_then(Value::as_str)
            .ok_or_else(|| ctx.err(None, "has neither a snapshot nor a baseDefinition"))?;
        if sd.get("derivation").and_then(Value::as_str) == Some("specialization") {
            return Err(ctx.err(
                None,
                "is a specialization without a snapshot (new types and logical models need a snapshot)",
            ));
        }
        let base = self.get(base_url).map_err(|e| {
            ctx.err(
                None,
                format!("its baseDefinition {base_url} cannot be used: {e}"),
            )
        })?;
        let mut out: Vec<Element> = (*base).clone();
        let Some(Value::Array(diff)) = sd.pointer("/differential/element") else {
            return Ok(out);
        };
        for d in diff {
            let Some(d) = d.as_object() else {
                return Err(ctx.err(None, "a differential element is not an object"));
            };
            let id = match d.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => {
                    let path = elem_path(d);
                    match d.get("sliceName").and_then(Value::as_str) {
                        Some(s) => format!("{path}:{s}"),
                        None => path.to_owned(),
                    }
                }
            };
            if id.is_empty() {
                return Err(ctx.err(None, "a differential element has neither id nor path"));
            }
            let idx = self
                .resolve(ctx, &mut out, &id)
                .map_err(|m| ctx.err(Some(&id), m))?;
            merge(&mut out[idx], d).map_err(|m| ctx.err(Some(&id), m))?;
        }
        Ok(out)
    }

    /// Index of the element with `id` in `out`, creating slices and expanding types as needed.
    fn resolve(&mut self, ctx: &Ctx, out: &mut Vec<Element>, id: &str) -> Result<usize, String> {
        if let Some(i) = find(out, id) {
            return Ok(i);
        }
        let Some((parent, last)) = split_last(id) else {
            let root = out.first().map(elem_id).unwrap_or("");
            return Err(format!(
                "the root element must be '{root}', found '{id}' (is the type right?)"
            ));
        };
        if let Some((name, slice)) = last.split_once(':') {
            let bi = self.resolve(ctx, out, &format!("{parent}.{name}"))?;
            let base_id = elem_id(&out[bi]).to_owned();
            let slice_id = format!("{base_id}:{slice}");
            if let Some(i) = find(out, &slice_id) {
                return Ok(i);
            }
            if !out[bi].contains_key("slicing") && !base_id.ends_with("[x]") {
                // FHIR requires a slicing on the sliced element; extensions are sliced by url in
                // the base definitions, so only other elements can miss it.
                let name_only = base_id.rsplit('.').next().unwrap_or("");
                if name_only != "extension" && name_only != "modifierExtension" {
                    return Err(format!(
                        "slice '{slice}' is defined but '{base_id}' has no slicing"
                    ));
                }
            }
            let own_end = {
                // The copy takes the sliced element and its children, not its other slices.
                let mut e = bi + 1;
                let prefix = format!("{base_id}.");
                while e < out.len() && elem_id(&out[e]).starts_with(&prefix) {
                    e += 1;
                }
                e
            };
            let insert_at = subtree_end(out, bi);
            let path = elem_path(&out[bi]).to_owned();
            let mut copy: Vec<Element> = out[bi..own_end].to_vec();
            for e in &mut copy {
                rebase(e, &base_id, &slice_id, &path, &path);
            }
            copy[0].insert("sliceName".into(), Value::String(slice.to_owned()));
            copy[0].remove("slicing");
            // The sliced element's min counts all items together; a slice starts optional
            // and takes its own min from the differential.
            copy[0].insert("min".into(), Value::from(0));
            out.splice(insert_at..insert_at, copy);
            return Ok(insert_at);
        }
        let pi = self.resolve(ctx, out, parent)?;
        let parent_id = elem_id(&out[pi]).to_owned();
        let cand = format!("{parent_id}.{last}");
        if let Some(i) = find(out, &cand) {
            return Ok(i);
        }
        let has_children = out
            .get(pi + 1)
            .is_some_and(|e| elem_id(e).starts_with(&format!("{parent_id}.")));
        if !has_children {
            self.expand(ctx, out, pi)?;
            if let Some(i) = find(out, &cand) {
                return Ok(i);
            }
        }
        // Choice rename: `valueQuantity` constrains `value[x]` to Quantity.
        let end = subtree_end(out, pi);
        let mut hit = None;
        for (ci, child) in out.iter().enumerate().take(end).skip(pi + 1) {
            let cid = elem_id(child);
            let Some(rest) = cid.strip_prefix(&parent_id) else {
                continue;
            };
            let Some(stem) = rest
                .strip_prefix('.')
                .and_then(|r| r.strip_suffix("[x]"))
                .filter(|s| !s.contains('.') && !s.contains(':'))
            else {
                continue;
            };
            let Some(suffix) = last.strip_prefix(stem) else {
                continue;
            };
            let codes = type_codes(child);
            let Some(pos) = codes.iter().position(|c| type_suffix_matches(c, suffix)) else {
                return Err(format!(
                    "'{last}' names type '{suffix}' which '{cid}' does not allow (allowed: {})",
                    codes.join(", ")
                ));
            };
            hit = Some((ci, pos));
            break;
        }
        if let Some((ci, pos)) = hit {
            if let Some(Value::Array(ts)) = out[ci].get_mut("type") {
                let t = ts.swap_remove(pos);
                *ts = vec![t];
            }
            return Ok(ci);
        }
        Err(format!("there is no element '{last}' in '{parent_id}'"))
    }

    /// Insert the children of `out[pi]` from its type's snapshot (or its content reference).
    fn expand(&mut self, _ctx: &Ctx, out: &mut Vec<Element>, pi: usize) -> Result<(), String> {
        let parent_id = elem_id(&out[pi]).to_owned();
        let parent_path = elem_path(&out[pi]).to_owned();
        if let Some(r) = out[pi].get("contentReference").and_then(Value::as_str) {
            // A content reference names an element of the *base* definition of the type
            // (`#Parameters.parameter`, or `<type url>#...`), never the profile being built: the
            // profile's own constraints on that element (its cardinality, its slices) must not be
            // copied into the recursion (`Parameters.parameter.part` sliced with min 3 would
            // otherwise give every `part.part` min 3 as well).
            let (owner, target) = r.split_once('#').unwrap_or(("", r));
            let target = target.to_owned();
            let owner = if owner.is_empty() {
                type_url(target.split('.').next().unwrap_or(""))
            } else {
                owner.to_owned()
            };
            let base = self
                .get(&owner)
                .map_err(|e| format!("contentReference {r} cannot be followed: {e}"))?;
            let ti = find(&base, &target)
                .ok_or_else(|| format!("contentReference {r} does not resolve"))?;
            let target_path = elem_path(&base[ti]).to_owned();
            let end = subtree_end(&base, ti);
            let mut copy: Vec<Element> = base[ti + 1..end].to_vec();
            for e in &mut copy {
                rebase(e, &target, &parent_id, &target_path, &parent_path);
            }
            out.splice(pi + 1..pi + 1, copy);
            return Ok(());
        }
        let types = out[pi]
            .get("type")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if types.len() != 1 {
            return Err(format!(
                "children of '{parent_id}' are constrained but it has {} types; restrict it to one type first",
                types.len()
            ));
        }
        let t = &types[0];
        let code = t.get("code").and_then(Value::as_str).unwrap_or("");
        let url = t
            .get("profile")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| type_url(code));
        let snap = self
            .get(&url)
            .map_err(|e| format!("cannot expand type {code} ({url}): {e}"))?;
        let Some(root) = snap.first() else {
            return Err(format!("type {url} has an empty snapshot"));
        };
        let root_id = elem_id(root).to_owned();
        let root_path = elem_path(root).to_owned();
        let mut copy: Vec<Element> = snap[1..].to_vec();
        for e in &mut copy {
            rebase(e, &root_id, &parent_id, &root_path, &parent_path);
        }
        out.splice(pi + 1..pi + 1, copy);
        Ok(())
    }
}

/// `Quantity` matches suffix `Quantity`; `string` matches `String`.
pub fn type_suffix_matches(code: &str, suffix: &str) -> bool {
    let mut c = code.chars();
    let mut s = suffix.chars();
    match (c.next(), s.next()) {
        (Some(a), Some(b)) => a.to_ascii_uppercase() == b && c.as_str() == s.as_str(),
        _ => false,
    }
}

/// Apply one differential element to its snapshot element.
fn merge(target: &mut Element, d: &Element) -> Result<(), String> {
    let is_slice = d.contains_key("sliceName") || target.contains_key("sliceName");
    let base_min = target.get("min").and_then(Value::as_u64).unwrap_or(0);
    let base_max = parse_max(target.get("max")).unwrap_or(u32::MAX);
    let base_types: Vec<String> = type_codes(target).into_iter().map(str::to_owned).collect();
    for (k, v) in d {
        match k.as_str() {
            "id" | "path" => {}
            "constraint" => {
                let list = target
                    .entry("constraint")
                    .or_insert_with(|| Value::Array(vec![]));
                if let (Value::Array(have), Value::Array(add)) = (list, v) {
                    for c in add {
                        let key = c.get("key");
                        if !have.iter().any(|h| h.get("key") == key) {
                            have.push(c.clone());
                        }
                    }
                }
            }
            "type" => {
                let Some(ts) = v.as_array() else {
                    return Err("type must be an array".into());
                };
                for t in ts {
                    let code = t.get("code").and_then(Value::as_str).unwrap_or("");
                    let allowed = base_types.iter().any(|b| {
                        b == code
                            || ((b == "Resource" || b == "DomainResource")
                                && code.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
                    });
                    if !allowed && !base_types.is_empty() {
                        return Err(format!(
                            "type '{code}' is not allowed by the base (allowed: {})",
                            base_types.join(", ")
                        ));
                    }
                }
                target.insert(k.clone(), v.clone());
            }
            key if key.starts_with("fixed") || key.starts_with("pattern") => {
                target.retain(|k, _| !k.starts_with("fixed") && !k.starts_with("pattern"));
                target.insert(k.clone(), v.clone());
            }
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    let min = target.get("min").and_then(Value::as_u64).unwrap_or(0);
    let max = parse_max(target.get("max")).unwrap_or(u32::MAX);
    if target.contains_key("max") && parse_max(target.get("max")).is_none() {
        return Err(format!(
            "max must be '*' or a whole number, found {}",
            target["max"]
        ));
    }
    if min > u64::from(max) {
        return Err(format!("min {min} is greater than max {}", show_max(max)));
    }
    if max > base_max {
        return Err(format!(
            "max {} is wider than the base max {}",
            show_max(max),
            show_max(base_max)
        ));
    }
    if !is_slice && min < base_min {
        return Err(format!("min {min} is lower than the base min {base_min}"));
    }
    Ok(())
}

pub fn show_max(m: u32) -> String {
    if m == u32::MAX {
        "*".into()
    } else {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testkit;

    fn generate(sd: Value) -> Result<Vec<Element>, LoadError> {
        let mut defs = testkit::core_definitions().clone();
        let url = sd["url"].as_str().unwrap().to_owned();
        defs.add_resource(std::path::Path::new("test-profile.json"), sd);
        let mut s = Snapshots::new(&defs);
        s.get(&url).map(|a| (*a).clone())
    }

    fn ids(s: &[Element]) -> Vec<&str> {
        s.iter().map(elem_id).collect()
    }

    fn el<'a>(s: &'a [Element], id: &str) -> &'a Element {
        s.iter()
            .find(|e| elem_id(e) == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    }

    #[test]
    fn pqom_shapes_fixed_type_reporter_identifier_and_stratifier_slices() {
        let snap = generate(testkit::pqom_like_profile()).unwrap();
        let ids = ids(&snap);
        assert_eq!(el(&snap, "MeasureReport.type")["fixedCode"], "summary");
        // Reference expanded to reach reporter.identifier, then Identifier expanded for system.
        assert!(ids.contains(&"MeasureReport.reporter.identifier.system"));
        assert_eq!(
            el(&snap, "MeasureReport.reporter.identifier.system")["fixedUri"],
            crate::fhir::ODS_ORG_SYSTEM
        );
        assert_eq!(el(&snap, "MeasureReport.reporter.identifier")["min"], 1);
        // Slices come after the sliced element's children and carry their own children.
        let base = ids
            .iter()
            .position(|i| *i == "MeasureReport.group.stratifier")
            .unwrap();
        let slice = ids
            .iter()
            .position(|i| *i == "MeasureReport.group.stratifier:ethnic")
            .unwrap();
        assert!(slice > base);
        assert!(ids.contains(&"MeasureReport.group.stratifier:ethnic.stratum.value"));
        assert_eq!(
            el(&snap, "MeasureReport.group.stratifier:ethnic")["sliceName"],
            "ethnic"
        );
        assert!(
            el(&snap, "MeasureReport.group.stratifier:ethnic.code")
                .contains_key("patternCodeableConcept")
        );
        assert_eq!(
            el(&snap, "MeasureReport.group.code")["binding"]["strength"],
            "required"
        );
        // Base constraints are kept and profile constraints appended.
        let cons = el(&snap, "MeasureReport")["constraint"].as_array().unwrap();
        assert!(cons.iter().any(|c| c["key"] == "mrp-1"));
    }

    #[test]
    fn choice_rename_restricts_the_type() {
        let snap = generate(serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://x/obs", "type": "Observation", "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
            "differential": {"element": [
                {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity", "min": 1},
                {"id": "Observation.valueQuantity.system", "path": "Observation.valueQuantity.system", "min": 1}
            ]}
        }))
        .unwrap();
        let v = el(&snap, "Observation.value[x]");
        assert_eq!(v["min"], 1);
        assert_eq!(v["type"].as_array().unwrap().len(), 1);
        assert_eq!(v["type"][0]["code"], "Quantity");
        assert_eq!(el(&snap, "Observation.value[x].system")["min"], 1);
    }

    /// fhir-test-cases `params-recursion`: `parameter.part` is a content reference to
    /// `Parameters.parameter`; slicing `part` (min 3) and then constraining `part:X.part` must
    /// expand `part:X.part` from base Parameters, not from the profile's sliced `part`.
    #[test]
    fn content_reference_expands_from_the_base_definition_not_the_profile() {
        let snap = generate(serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://x/params", "type": "Parameters", "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
            "differential": {"element": [
                {"id": "Parameters.parameter.part", "path": "Parameters.parameter.part",
                 "slicing": {"discriminator": [{"type": "value", "path": "name"}], "rules": "open"},
                 "min": 3, "max": "4"},
                {"id": "Parameters.parameter.part:a", "path": "Parameters.parameter.part",
                 "sliceName": "a", "min": 1, "max": "1"},
                {"id": "Parameters.parameter.part:a.name", "path": "Parameters.parameter.part.name",
                 "fixedString": "a"},
                {"id": "Parameters.parameter.part:a.part", "path": "Parameters.parameter.part.part",
                 "max": "0"}
            ]}
        }))
        .unwrap();
        let ids = ids(&snap);
        assert_eq!(el(&snap, "Parameters.parameter.part")["min"], 3);
        let inner = el(&snap, "Parameters.parameter.part:a.part");
        assert_eq!(
            inner["min"], 0,
            "base min of parameter.part, not the profile's 3"
        );
        assert_eq!(inner["max"], "0");
        assert!(
            !ids.iter()
                .any(|i| i.starts_with("Parameters.parameter.part:a.part:")),
            "the profile's slices of part are not copied into the recursion: {ids:?}"
        );
        assert_eq!(
            el(&snap, "Parameters.parameter.part:a.name")["min"],
            1,
            "children come from base Parameters.parameter"
        );
    }

    #[test]
    fn loosening_cardinality_names_the_element() {
        let err = generate(serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://x/mr", "type": "MeasureReport", "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/MeasureReport",
            "differential": {"element": [
                {"id": "MeasureReport.status", "path": "MeasureReport.status", "min": 0}
            ]}
        }))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("test-profile.json"), "{msg}");
        assert!(msg.contains("MeasureReport.status"), "{msg}");
        assert!(msg.contains("lower than the base min 1"), "{msg}");
    }

    #[test]
    fn unknown_element_and_bad_type_are_load_errors() {
        let err = generate(serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://x/mr2", "type": "MeasureReport", "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/MeasureReport",
            "differential": {"element": [
                {"id": "MeasureReport.flavour", "path": "MeasureReport.flavour", "min": 1}
            ]}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("no element 'flavour'"), "{err}");
        let err = generate(serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://x/mr3", "type": "MeasureReport", "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/MeasureReport",
            "differential": {"element": [
                {"id": "MeasureReport.date", "path": "MeasureReport.date", "type": [{"code": "string"}]}
            ]}
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("type 'string' is not allowed"),
            "{err}"
        );
    }
}
