//! The Provenance in a forwarded bundle conforms to the project's own profile
//! (`profiles/StructureDefinition-pqom-provenance.json`): its fixed values, patterns,
//! cardinalities and FHIRPath invariants are read from the profile, so a change on either side
//! that breaks conformance fails here.

mod deliver_support;

use std::path::Path;

use pqom_gateway::deliver::keys::SigningKey;
use pqom_gateway::validate::fhirpath::{EvalContext, Expr};
use serde_json::Value;

fn profile() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiles/StructureDefinition-pqom-provenance.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn provenance() -> Value {
    let (key, _) = SigningKey::generate("k").unwrap();
    let report = deliver_support::reference_report("RM1");
    let (bundle, _) = deliver_support::forwarded(&key, &report, "1");
    let bundle: Value = serde_json::from_slice(&bundle).unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .find(|r| r["resourceType"] == "Provenance")
        .unwrap()
}

/// Differential elements by path and slice name.
fn element<'a>(sd: &'a Value, path: &str, slice: Option<&str>) -> &'a Value {
    sd["differential"]["element"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path && e["sliceName"].as_str() == slice)
        .unwrap_or_else(|| panic!("profile has no element {path} slice {slice:?}"))
}

/// Values at a simple dotted path below the resource (arrays flattened).
fn at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for step in path.split('.').skip(1) {
        cur = cur
            .into_iter()
            .filter_map(|n| n.get(step))
            .flat_map(|n| match n {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
    }
    cur
}

fn pattern_matches(pattern: &Value, v: &Value) -> bool {
    match (pattern, v) {
        (Value::Object(p), Value::Object(o)) => p
            .iter()
            .all(|(k, pv)| o.get(k).is_some_and(|ov| pattern_matches(pv, ov))),
        (Value::Array(p), Value::Array(a)) => p
            .iter()
            .all(|pv| a.iter().any(|av| pattern_matches(pv, av))),
        _ => pattern == v,
    }
}

#[test]
fn provenance_meets_the_profile() {
    let sd = profile();
    let p = provenance();
    assert_eq!(p["meta"]["profile"][0], sd["url"]);

    // activity pattern
    let activity = element(&sd, "Provenance.activity", None);
    assert!(pattern_matches(
        &activity["patternCodeableConcept"],
        &p["activity"]
    ));

    // agent slices author and assembler: exactly one each, with their fixed parts
    for slice in ["author", "assembler"] {
        let ty = &sd["differential"]["element"]
            .as_array()
            .unwrap()
            .iter()
            .skip_while(|e| e["sliceName"] != slice)
            .find(|e| e["path"] == "Provenance.agent.type")
            .unwrap()["patternCodeableConcept"];
        let matching: Vec<&Value> = p["agent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| pattern_matches(ty, &a["type"]))
            .collect();
        assert_eq!(matching.len(), 1, "agent slice {slice}");
        if slice == "author" {
            let system = sd["differential"]["element"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["path"] == "Provenance.agent.who.identifier.system")
                .unwrap()["fixedUri"]
                .clone();
            assert_eq!(matching[0]["who"]["identifier"]["system"], system);
            assert_eq!(matching[0]["who"]["identifier"]["value"], "RM1");
        } else {
            assert!(matching[0]["who"]["display"].is_string());
        }
    }

    // entity slices: message (MessageHeader id) and sha256, one each, role source
    let entities = p["entity"].as_array().unwrap();
    let min = element(&sd, "Provenance.entity", None)["min"]
        .as_u64()
        .unwrap() as usize;
    assert!(entities.len() >= min);
    let role = element(&sd, "Provenance.entity.role", None);
    let elements = sd["differential"]["element"].as_array().unwrap();
    for slice in ["message", "sha256"] {
        let system = &elements
            .iter()
            .skip_while(|e| e["sliceName"] != slice)
            .find(|e| e["path"] == "Provenance.entity.what.identifier.system")
            .unwrap()["fixedUri"];
        let matching: Vec<&Value> = entities
            .iter()
            .filter(|e| &e["what"]["identifier"]["system"] == system)
            .collect();
        assert_eq!(matching.len(), 1, "entity slice {slice}");
        assert_eq!(matching[0]["role"], role["fixedCode"]);
        let value = matching[0]["what"]["identifier"]["value"].as_str().unwrap();
        if slice == "message" {
            assert_eq!(value, "msg-0001");
        } else {
            assert!(
                value.len() == 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }

    // signature: one, JOSE, with data
    let sig = element(&sd, "Provenance.signature", None);
    let sigs = p["signature"].as_array().unwrap();
    assert_eq!(sigs.len().to_string(), sig["max"].as_str().unwrap());
    let fmt = element(&sd, "Provenance.signature.sigFormat", None);
    assert_eq!(sigs[0]["sigFormat"], fmt["fixedCode"]);
    assert!(sigs[0]["data"].is_string());

    // every FHIRPath invariant in the profile holds on its elements
    let mut checked = 0;
    // Constraints after an entity slice header apply only to that slice's entities.
    let mut slice_system: Option<Value> = None;
    for (i, e) in elements.iter().enumerate() {
        if e["path"] == "Provenance.entity" {
            slice_system = e["sliceName"].as_str().map(|_| {
                elements[i + 1..]
                    .iter()
                    .find(|x| x["path"] == "Provenance.entity.what.identifier.system")
                    .unwrap()["fixedUri"]
                    .clone()
            });
        }
        let path = e["path"].as_str().unwrap();
        for c in e["constraint"].as_array().into_iter().flatten() {
            let expr = Expr::parse(c["expression"].as_str().unwrap()).unwrap();
            let ctx = EvalContext::new();
            let scoped;
            let root = match (&slice_system, path.starts_with("Provenance.entity.")) {
                (Some(system), true) => {
                    let only: Vec<&Value> = entities
                        .iter()
                        .filter(|x| &x["what"]["identifier"]["system"] == system)
                        .collect();
                    scoped = serde_json::json!({ "entity": only });
                    &scoped
                }
                _ => &p,
            };
            for node in at(root, path) {
                let result = expr.evaluate(&ctx, node).unwrap();
                assert_eq!(
                    result.as_boolean().unwrap(),
                    Some(true),
                    "{} fails on {node}",
                    c["key"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no invariant was evaluated");
}
