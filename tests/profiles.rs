//! The PQOM profile set in `profiles/` as a FHIR package: every file parses, is named
//! `{ResourceType}-{id}.json`, lives under the one canonical base, is listed by the
//! ImplementationGuide and `.index.json`, and every example is in the manifest with the rule it
//! breaks. (The validation of the examples by the engine is in the `engine` module below.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

const BASE: &str = "https://fhir.pqom-gateway.org";

/// Conformance resources in the package that other publishers own (kept with their own canonical).
const EXTERNAL: &[&str] = &["https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !file_name(p).starts_with('.'))
        .collect();
    files.sort();
    files
}

/// The package's resources: every `*.json` in `profiles/` except package.json and the index.
fn package_resources() -> Vec<(PathBuf, Value)> {
    json_files(&root())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "package.json"))
        .map(|p| {
            let v = read_json(&p);
            (p, v)
        })
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned()
}

#[test]
fn every_resource_file_is_named_by_type_and_id() {
    let resources = package_resources();
    assert!(
        resources.len() > 20,
        "profiles/ looks empty: {}",
        resources.len()
    );
    for (path, res) in &resources {
        let expected = format!("{}-{}.json", str_of(res, "resourceType"), str_of(res, "id"));
        assert_eq!(file_name(path), expected, "{}", path.display());
    }
    for path in json_files(&root().join("examples/valid")) {
        let res = read_json(&path);
        let expected = format!(
            "{}-{}.json",
            str_of(&res, "resourceType"),
            str_of(&res, "id")
        );
        assert_eq!(file_name(&path), expected, "{}", path.display());
    }
}

#[test]
fn every_canonical_is_under_the_project_base() {
    for (path, res) in package_resources() {
        let rt = str_of(&res, "resourceType");
        if rt == "NamingSystem" {
            // NamingSystems have no url in R4; their uniqueId is what they name.
            assert!(
                res["uniqueId"].as_array().is_some_and(|u| !u.is_empty()),
                "{}",
                path.display()
            );
            continue;
        }
        let url = str_of(&res, "url");
        if EXTERNAL.contains(&url) {
            continue;
        }
        let expected = format!("{BASE}/{rt}/{}", str_of(&res, "id"));
        assert_eq!(url, expected, "{}: canonical url", path.display());
    }
}

#[test]
fn package_json_is_an_r4_fhir_package() {
    let pkg = read_json(&root().join("package.json"));
    assert_eq!(pkg["fhirVersions"], serde_json::json!(["4.0.1"]));
    assert_eq!(pkg["dependencies"]["hl7.fhir.r4.core"], "4.0.1");
    assert_eq!(pkg["canonical"], BASE);
    assert!(str_of(&pkg, "name").starts_with("pqom."), "package name");
    let ig = read_json(&root().join("ImplementationGuide-pqom.json"));
    assert_eq!(ig["packageId"], pkg["name"]);
    assert_eq!(ig["version"], pkg["version"]);
}

#[test]
fn implementation_guide_and_index_list_every_resource_and_valid_example() {
    let ig = read_json(&root().join("ImplementationGuide-pqom.json"));
    let listed: BTreeSet<String> = ig["definition"]["resource"]
        .as_array()
        .expect("definition.resource")
        .iter()
        .map(|r| str_of(&r["reference"], "reference").to_owned())
        .collect();
    let index = read_json(&root().join(".index.json"));
    let indexed: BTreeSet<String> = index["files"]
        .as_array()
        .expect(".index.json files")
        .iter()
        .map(|f| str_of(f, "filename").to_owned())
        .collect();
    let hint = "run `python3 scripts/package_index.py` after changing profiles/";
    for (path, res) in package_resources() {
        let rt = str_of(&res, "resourceType");
        if rt == "ImplementationGuide" {
            continue;
        }
        let reference = format!("{rt}/{}", str_of(&res, "id"));
        assert!(
            listed.contains(&reference),
            "IG does not list {reference}: {hint}"
        );
        assert!(
            indexed.contains(&file_name(&path)),
            ".index.json does not list {}: {hint}",
            file_name(&path)
        );
    }
    for path in json_files(&root().join("examples/valid")) {
        let res = read_json(&path);
        let reference = format!("{}/{}", str_of(&res, "resourceType"), str_of(&res, "id"));
        assert!(
            listed.contains(&reference),
            "IG does not list example {reference}: {hint}"
        );
    }
}

#[test]
fn profiles_are_r4_constraints_with_keyed_and_explained_invariants() {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for (path, res) in package_resources() {
        if str_of(&res, "resourceType") != "StructureDefinition" {
            continue;
        }
        let name = file_name(&path);
        assert_eq!(res["fhirVersion"], "4.0.1", "{name}");
        assert_eq!(res["derivation"], "constraint", "{name}");
        assert!(
            str_of(&res, "baseDefinition").starts_with("http://hl7.org/fhir/StructureDefinition/"),
            "{name}"
        );
        let elements = res["differential"]["element"]
            .as_array()
            .expect("differential");
        for el in elements {
            let id = str_of(el, "id");
            let path_from_id: Vec<&str> = id
                .split('.')
                .map(|p| p.split(':').next().unwrap_or(p))
                .collect();
            assert_eq!(
                str_of(el, "path"),
                path_from_id.join("."),
                "{name}: element {id} path"
            );
            for c in el["constraint"].as_array().into_iter().flatten() {
                let key = str_of(c, "key");
                assert!(
                    key.starts_with("pqom-"),
                    "{name}: {id}: constraint key {key} is not pqom-N"
                );
                assert!(
                    !str_of(c, "human").is_empty() && !str_of(c, "expression").is_empty(),
                    "{name}: {key}"
                );
                assert_eq!(
                    str_of(c, "source"),
                    str_of(&res, "url"),
                    "{name}: {key} source"
                );
                if let Some(other) = keys.insert(key.to_owned(), format!("{name}#{id}")) {
                    panic!("constraint key {key} defined twice: {other} and {name}#{id}");
                }
            }
        }
    }
    assert!(
        keys.len() >= 15,
        "expected the PQOM invariants, found {}",
        keys.len()
    );
}

#[test]
fn manifest_lists_every_example_with_its_profile_and_broken_rule() {
    let manifest = read_json(&root().join("examples/manifest.json"));
    let profiles: BTreeSet<String> = package_resources()
        .iter()
        .filter(|(_, r)| str_of(r, "resourceType") == "StructureDefinition")
        .map(|(_, r)| str_of(r, "url").to_owned())
        .collect();
    let mut listed = BTreeSet::new();
    let (mut valid, mut invalid) = (0, 0);
    for ex in manifest["examples"].as_array().expect("examples") {
        let file = str_of(ex, "file");
        assert!(listed.insert(file.to_owned()), "{file} listed twice");
        assert!(
            profiles.contains(str_of(ex, "profile")),
            "{file}: unknown profile {}",
            str_of(ex, "profile")
        );
        let res = read_json(&root().join("examples").join(file));
        assert!(res.get("resourceType").is_some(), "{file}");
        if ex["valid"] == true {
            valid += 1;
            assert!(file.starts_with("valid/"), "{file}");
        } else {
            invalid += 1;
            assert!(file.starts_with("invalid/"), "{file}");
            let expr = str_of(&ex["error"], "expression");
            let code = str_of(&ex["error"], "code");
            assert!(
                expr.starts_with(str_of(&res, "resourceType")),
                "{file}: expression {expr}"
            );
            assert!(
                [
                    "structure",
                    "value",
                    "code-invalid",
                    "invariant",
                    "required",
                    "invalid"
                ]
                .contains(&code),
                "{file}: issue code {code}"
            );
        }
    }
    for dir in ["valid", "invalid"] {
        for path in json_files(&root().join("examples").join(dir)) {
            let rel = format!("{dir}/{}", file_name(&path));
            assert!(
                listed.contains(&rel),
                "{rel} is not in examples/manifest.json"
            );
        }
    }
    // Every resource profile (extensions are exercised through them) has valid and invalid examples.
    for (_, sd) in package_resources() {
        if str_of(&sd, "resourceType") != "StructureDefinition" || str_of(&sd, "kind") != "resource"
        {
            continue;
        }
        let url = str_of(&sd, "url");
        let has = |valid: bool| {
            manifest["examples"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["profile"] == url && e["valid"] == valid)
        };
        assert!(
            has(true) && has(false),
            "{url}: needs valid and invalid examples"
        );
    }
    assert!(
        valid >= 6 && invalid >= 30,
        "{valid} valid, {invalid} invalid"
    );
}

/// FHIR JSON has no empty arrays, empty objects, nulls or empty strings (json.html); other tools reject them.
fn assert_no_empty(value: &Value, at: &str) {
    match value {
        Value::Null => panic!("{at}: null"),
        Value::String(s) => assert!(!s.is_empty(), "{at}: empty string"),
        Value::Array(items) => {
            assert!(!items.is_empty(), "{at}: empty array");
            for (i, v) in items.iter().enumerate() {
                assert_no_empty(v, &format!("{at}[{i}]"));
            }
        }
        Value::Object(map) => {
            assert!(!map.is_empty(), "{at}: empty object");
            for (k, v) in map {
                assert_no_empty(v, &format!("{at}.{k}"));
            }
        }
        Value::Bool(_) | Value::Number(_) => {}
    }
}

#[test]
fn no_file_has_empty_or_null_values() {
    let mut files: Vec<PathBuf> = package_resources().into_iter().map(|(p, _)| p).collect();
    for dir in ["valid", "invalid"] {
        files.extend(json_files(&root().join("examples").join(dir)));
    }
    for path in files {
        assert_no_empty(&read_json(&path), &file_name(&path));
    }
}

/// The profile set through the gateway's validation engine: every profile loads (snapshots
/// generate), every valid example passes, every invalid example fails with the manifest's
/// expression and issue code.
mod engine {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use pqom_gateway::validate::Validator;
    use pqom_gateway::validate::terminology::load_validator;
    use serde_json::Value;

    use super::{package_resources, read_json, root, str_of};

    /// R4 core: the repo's extracted subset (definitions/r4).
    fn core_sources() -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("definitions/r4");
        [
            "profiles-types.json",
            "profiles-resources.json",
            "valuesets.json",
            "v3-codesystems.json",
        ]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
    }

    /// The gateway's validator with the R4 core and `profiles/`, terminology from the same definitions.
    fn validator() -> &'static Validator {
        static V: OnceLock<Validator> = OnceLock::new();
        V.get_or_init(|| {
            let mut sources = core_sources();
            sources.push(root());
            load_validator(&sources).unwrap_or_else(|e| panic!("profiles do not compile: {e}"))
        })
    }

    fn manifest() -> Vec<Value> {
        read_json(&root().join("examples/manifest.json"))["examples"]
            .as_array()
            .expect("examples")
            .clone()
    }

    fn errors(file: &str, profile: &str) -> Vec<(String, String, String)> {
        let bytes = std::fs::read(root().join("examples").join(file)).expect("example");
        validator()
            .validate(&bytes, &[profile])
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .map(|i| {
                (
                    i.code.code().to_owned(),
                    i.expression.clone().unwrap_or_default(),
                    i.diagnostics.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn every_profile_loads_and_compiles() {
        let v = validator();
        for (path, sd) in package_resources() {
            if str_of(&sd, "resourceType") == "StructureDefinition" {
                assert!(
                    v.has_profile(str_of(&sd, "url")),
                    "{} did not load",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn every_valid_example_has_no_errors() {
        let mut failures = Vec::new();
        for ex in manifest().iter().filter(|e| e["valid"] == true) {
            let errs = errors(str_of(ex, "file"), str_of(ex, "profile"));
            if !errs.is_empty() {
                failures.push(format!("{}: {errs:#?}", str_of(ex, "file")));
            }
        }
        assert!(
            failures.is_empty(),
            "valid examples with errors:\n{}",
            failures.join("\n")
        );
    }

    /// Missing, surplus and unknown elements, fixed values, closed slicing and required bindings.
    #[test]
    fn every_structural_invalid_example_fails_at_the_manifest_expression() {
        let mut failures = Vec::new();
        for ex in manifest()
            .iter()
            .filter(|e| e["valid"] == false && e["error"]["code"] != "invariant")
        {
            check_invalid(ex, &mut failures);
        }
        assert!(
            failures.is_empty(),
            "invalid examples without their error:\n{}",
            failures.join("\n")
        );
    }

    /// Each invariant example is checked once the engine evaluates its invariant. An invariant the
    /// engine cannot evaluate is listed in its load warnings; its example is then reported here
    /// (never passed in silence) and checked as soon as the warning goes away.
    #[test]
    fn invariant_examples_fail_on_their_invariant() {
        let warnings: Vec<String> = validator()
            .load_warnings()
            .iter()
            .map(|w| w.to_string())
            .collect();
        let mut failures = Vec::new();
        let mut waiting = Vec::new();
        for ex in manifest()
            .iter()
            .filter(|e| e["valid"] == false && e["error"]["code"] == "invariant")
        {
            let key = str_of(&ex["error"], "key");
            assert!(
                !key.is_empty(),
                "{}: invariant example without its key",
                str_of(ex, "file")
            );
            let needle = format!("invariant {key} ");
            if let Some(w) = warnings.iter().find(|w| w.contains(&needle)) {
                waiting.push(format!("{} ({key}): {w}", str_of(ex, "file")));
                continue;
            }
            check_invalid(ex, &mut failures);
        }
        if !waiting.is_empty() {
            eprintln!(
                "not checked, the engine does not evaluate these invariants yet:\n{}",
                waiting.join("\n")
            );
        }
        assert!(
            failures.is_empty(),
            "invalid examples without their error:\n{}",
            failures.join("\n")
        );
    }

    fn check_invalid(ex: &Value, failures: &mut Vec<String>) {
        let file = str_of(ex, "file");
        let (code, expression) = (
            str_of(&ex["error"], "code"),
            str_of(&ex["error"], "expression"),
        );
        let errs = errors(file, str_of(ex, "profile"));
        if !errs.iter().any(|(c, e, _)| c == code && e == expression) {
            failures.push(format!(
                "{file}: expected {code} at {expression}, got {errs:#?}"
            ));
        }
    }
}

/// The PQOM invariants evaluated by the gateway's own FHIRPath engine on the examples, independently
/// of how the validator wires invariants in: each holds on every valid example, and each invariant
/// example breaks exactly its invariant, at the manifest's expression.
mod invariants {
    use pqom_gateway::validate::fhirpath::{EvalContext, Expr};
    use serde_json::Value;

    use super::{package_resources, read_json, root, str_of};

    struct Rule {
        key: String,
        /// Element path (slices excluded), e.g. `MeasureReport.group`; `Extension` for extension roots.
        path: String,
        /// The StructureDefinition the rule belongs to.
        profile: String,
        /// For extension definitions: the extension's url.
        extension: Option<String>,
        expr: Expr,
    }

    fn rules() -> Vec<Rule> {
        let mut out = Vec::new();
        for (_, sd) in package_resources() {
            if str_of(&sd, "resourceType") != "StructureDefinition" {
                continue;
            }
            let is_extension = str_of(&sd, "type") == "Extension";
            for el in sd["differential"]["element"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = str_of(el, "id");
                if id.contains(':') {
                    continue; // slice-specific rules need slice matching: left to the validator
                }
                for c in el["constraint"].as_array().into_iter().flatten() {
                    let expr = Expr::parse(str_of(c, "expression"))
                        .unwrap_or_else(|e| panic!("{}: does not parse: {e}", str_of(c, "key")));
                    assert!(
                        expr.unsupported_functions().is_empty(),
                        "{} uses functions the engine lacks: {:?}",
                        str_of(c, "key"),
                        expr.unsupported_functions()
                    );
                    out.push(Rule {
                        key: str_of(c, "key").to_owned(),
                        path: str_of(el, "path").to_owned(),
                        profile: str_of(&sd, "url").to_owned(),
                        extension: is_extension.then(|| str_of(&sd, "url").to_owned()),
                        expr,
                    });
                }
            }
        }
        out
    }

    /// Nodes at an element path below `node`, with their FHIRPath locations.
    fn at<'a>(node: &'a Value, parts: &[&str], loc: String, out: &mut Vec<(&'a Value, String)>) {
        let Some((head, rest)) = parts.split_first() else {
            out.push((node, loc));
            return;
        };
        match node.get(*head) {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    at(item, rest, format!("{loc}.{head}[{i}]"), out);
                }
            }
            Some(v) => at(v, rest, format!("{loc}.{head}"), out),
            None => {}
        }
    }

    /// Every extension object (anywhere, not inside contained or entry resources) with this url.
    fn extensions<'a>(node: &'a Value, url: &str, loc: String, out: &mut Vec<(&'a Value, String)>) {
        match node {
            Value::Object(map) => {
                if map.get("url").and_then(Value::as_str) == Some(url) {
                    out.push((node, loc.clone()));
                }
                for (k, v) in map {
                    if k != "resource" && k != "contained" {
                        extensions(v, url, format!("{loc}.{k}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    extensions(v, url, format!("{loc}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    fn profile_of(resource_type: &str) -> Option<&'static str> {
        Some(match resource_type {
            "Bundle" => "pqom-submission-bundle",
            "MessageHeader" => "pqom-messageheader",
            "MeasureReport" => "pqom-trust-measurereport",
            "Measure" => "pqom-measure",
            "Provenance" => "pqom-provenance",
            _ => return None,
        })
    }

    /// (key, location) of every PQOM invariant that does not hold on `resource` validated against `profile`.
    fn failures(
        rules: &[Rule],
        resource: &Value,
        profile: &str,
        loc: &str,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let rt = str_of(resource, "resourceType");
        let ctx = EvalContext::new().with_resource(resource);
        for rule in rules {
            let mut nodes = Vec::new();
            match &rule.extension {
                Some(url) => extensions(resource, url, loc.to_owned(), &mut nodes),
                None => {
                    let parts: Vec<&str> = rule.path.split('.').collect();
                    if parts[0] != rt || rule.profile != profile {
                        continue;
                    }
                    at(resource, &parts[1..], loc.to_owned(), &mut nodes);
                }
            }
            for (node, at_loc) in nodes {
                let ok = rule
                    .expr
                    .evaluate_typed(&ctx, node, &rule.path)
                    .ok()
                    .and_then(|c| c.as_boolean().ok().flatten());
                if ok != Some(true) {
                    out.push((rule.key.clone(), at_loc));
                }
            }
        }
        if rt == "Bundle" {
            for (i, entry) in resource["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let r = &entry["resource"];
                if let Some(p) = profile_of(str_of(r, "resourceType")) {
                    let url = format!("{}/StructureDefinition/{p}", super::BASE);
                    out.extend(failures(
                        rules,
                        r,
                        &url,
                        &format!("{loc}.entry[{i}].resource"),
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn pqom_invariants_hold_on_valid_and_fail_only_on_their_invalid_example() {
        let rules = rules();
        assert!(rules.len() >= 20, "{} rules", rules.len());
        let manifest = read_json(&root().join("examples/manifest.json"));
        let mut problems = Vec::new();
        let mut checked = 0;
        for ex in manifest["examples"].as_array().expect("examples") {
            let file = str_of(ex, "file");
            let resource = read_json(&root().join("examples").join(file));
            let found = failures(
                &rules,
                &resource,
                str_of(ex, "profile"),
                str_of(&resource, "resourceType"),
            );
            let key = str_of(&ex["error"], "key");
            let expected: Vec<(String, String)> =
                if ex["valid"] == false && key.starts_with("pqom-") {
                    if !rules.iter().any(|r| r.key == key) {
                        continue; // a slice rule: the validator checks it
                    }
                    vec![(
                        key.to_owned(),
                        str_of(&ex["error"], "expression").to_owned(),
                    )]
                } else {
                    Vec::new()
                };
            checked += 1;
            if found != expected {
                problems.push(format!("{file}: expected {expected:?}, found {found:?}"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(checked >= 50, "checked {checked} examples");
    }
}
