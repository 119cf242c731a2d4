//! Coverage report for the FHIRPath engine against real invariants.
//!
//! Extracts every distinct `constraint.expression` from the FHIR R4 core StructureDefinitions
//! (profiles-resources.json, profiles-types.json, profiles-others.json of the R4 package), parses each,
//! and evaluates each on every matching element of sample resources (all `*.json` files under the
//! sample directories, nested resources included). Reports how many parse, how many evaluated on at
//! least one element, and every error.
//!
//! ```text
//! cargo run --example fhirpath_invariants -- \
//!     --definitions /path/to/package/dist/fhir/r4 \
//!     --samples tests/fixtures/fhirpath/samples [--samples more/] \
//!     [--write-fixture tests/fixtures/fhirpath/r4-invariants.json]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pqom_gateway::validate::fhirpath::{EvalContext, EvalError, Expr, Item, Node};
use serde_json::Value;

struct Invariant {
    key: String,
    contexts: Vec<String>,
}

fn load_invariants(dir: &Path) -> Result<BTreeMap<String, Invariant>, Box<dyn std::error::Error>> {
    let mut out: BTreeMap<String, Invariant> = BTreeMap::new();
    for file in [
        "profiles-resources.json",
        "profiles-types.json",
        "profiles-others.json",
    ] {
        let bundle: Value = serde_json::from_slice(&std::fs::read(dir.join(file))?)?;
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        for entry in entries {
            let sd = &entry["resource"];
            if sd["resourceType"] != "StructureDefinition" {
                continue;
            }
            for el in sd["snapshot"]["element"].as_array().into_iter().flatten() {
                let path = el["path"].as_str().unwrap_or_default();
                for c in el["constraint"].as_array().into_iter().flatten() {
                    let Some(expr) = c["expression"].as_str() else {
                        continue;
                    };
                    let inv = out.entry(expr.to_owned()).or_insert_with(|| Invariant {
                        key: c["key"].as_str().unwrap_or_default().to_owned(),
                        contexts: Vec::new(),
                    });
                    if !inv.contexts.iter().any(|p| p == path) {
                        inv.contexts.push(path.to_owned());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[derive(Default)]
struct Tally {
    nodes: usize,
    t: usize,
    f: usize,
    empty: usize,
    unsupported: Vec<String>,
    errors: Vec<String>,
    false_in: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut defs = None;
    let mut samples = Vec::new();
    let mut fixture = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--definitions" => defs = args.next().map(PathBuf::from),
            "--samples" => samples.extend(args.next().map(PathBuf::from)),
            "--write-fixture" => fixture = args.next().map(PathBuf::from),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let defs = defs.ok_or("--definitions DIR is required")?;
    let invariants = load_invariants(&defs)?;

    if let Some(path) = fixture {
        let list: Vec<Value> = invariants
            .iter()
            .map(|(expr, inv)| {
                serde_json::json!({
                    "key": inv.key,
                    "expression": expr,
                    "contexts": inv.contexts.iter().take(8).collect::<Vec<_>>(),
                })
            })
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&list)? + "\n")?;
        println!("wrote {} invariants to {}", list.len(), path.display());
    }

    // Sample resources: every object with a resourceType, with the file's root as %rootResource.
    let mut files = Vec::new();
    for s in &samples {
        json_files(s, &mut files);
    }
    let roots: Vec<(String, Value)> = files
        .iter()
        .filter_map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            v.get("resourceType")?;
            Some((p.display().to_string(), v))
        })
        .collect();
    let descendants = Expr::parse("descendants()")?;
    let mut resources: Vec<(&str, &Value, &Value)> = Vec::new();
    for (name, root) in &roots {
        resources.push((name, root, root));
        let ctx = EvalContext::new();
        for item in descendants.evaluate(&ctx, root)?.iter() {
            if let Some(n) = item.as_node()
                && n.field("resourceType").and_then(Node::as_str).is_some()
                && n.kind() == pqom_gateway::validate::fhirpath::NodeKind::Object
            {
                resources.push((name, n, root));
            }
        }
    }

    let mut parsed = 0;
    let mut parse_failures = Vec::new();
    let mut evaluated = 0;
    let mut tallies: Vec<(String, String, Tally)> = Vec::new();
    for (expr_text, inv) in &invariants {
        let expr = match Expr::parse(expr_text) {
            Ok(e) => {
                parsed += 1;
                e
            }
            Err(e) => {
                parse_failures.push(format!("{}: {e}", inv.key));
                continue;
            }
        };
        let mut tally = Tally::default();
        for context in &inv.contexts {
            let path = context.replace("[x]", "");
            let Ok(locator) = Expr::parse(&path) else {
                continue;
            };
            let resource_context = path.starts_with(|c: char| c.is_ascii_uppercase())
                && !matches!(
                    path.split('.').next(),
                    Some(
                        "Element"
                            | "BackboneElement"
                            | "Extension"
                            | "Quantity"
                            | "Period"
                            | "Range"
                            | "Ratio"
                            | "Reference"
                            | "Narrative"
                            | "Identifier"
                            | "Coding"
                            | "CodeableConcept"
                            | "HumanName"
                            | "Address"
                            | "ContactPoint"
                            | "Timing"
                            | "Attachment"
                            | "Meta"
                            | "Money"
                            | "Age"
                            | "Count"
                            | "Distance"
                            | "Duration"
                            | "SampledData"
                            | "Signature"
                            | "Annotation"
                            | "Dosage"
                            | "ElementDefinition"
                            | "Expression"
                            | "ParameterDefinition"
                            | "RelatedArtifact"
                            | "TriggerDefinition"
                            | "UsageContext"
                            | "ContactDetail"
                            | "Contributor"
                            | "DataRequirement"
                            | "MarketingStatus"
                            | "Population"
                            | "ProdCharacteristic"
                            | "ProductShelfLife"
                            | "SubstanceAmount"
                            | "MoneyQuantity"
                            | "SimpleQuantity"
                    )
                );
            for (name, res, root) in &resources {
                let ctx = EvalContext::new()
                    .with_resource(*res)
                    .with_root_resource(*root);
                let nodes = if resource_context {
                    match locator.evaluate(&ctx, *res) {
                        Ok(c) => c,
                        Err(_) => continue,
                    }
                } else {
                    // A datatype invariant: try it on every element (the right type or not), which
                    // exercises the evaluator; only unsupported functions count as failures here.
                    match descendants.evaluate(&ctx, *res) {
                        Ok(c) => c,
                        Err(_) => continue,
                    }
                };
                for item in nodes.iter().take(2000) {
                    let r = expr.evaluate_item(&ctx, Item::clone(item));
                    tally.nodes += 1;
                    match r {
                        Ok(c) => match c.as_boolean() {
                            Ok(Some(true)) => tally.t += 1,
                            Ok(Some(false)) => {
                                tally.f += 1;
                                if resource_context && tally.false_in.len() < 3 {
                                    tally.false_in.push(format!("{name} at {path}"));
                                }
                            }
                            Ok(None) => tally.empty += 1,
                            Err(e) => {
                                if resource_context && tally.errors.len() < 3 {
                                    tally.errors.push(format!("{name} at {path}: {e}"));
                                }
                            }
                        },
                        Err(EvalError::UnsupportedFunction { name }) => {
                            if !tally.unsupported.contains(&name) {
                                tally.unsupported.push(name);
                            }
                        }
                        Err(e) => {
                            if resource_context && tally.errors.len() < 3 {
                                tally.errors.push(format!("{name} at {path}: {e}"));
                            }
                        }
                    }
                }
            }
        }
        if tally.nodes > 0 {
            evaluated += 1;
        }
        tallies.push((inv.key.clone(), expr_text.clone(), tally));
    }

    println!("distinct invariant expressions: {}", invariants.len());
    println!("parsed: {parsed}");
    for p in &parse_failures {
        println!("  parse failure: {p}");
    }
    println!(
        "sample files: {}, resources (incl. nested): {}",
        roots.len(),
        resources.len()
    );
    println!("evaluated on at least one sample element: {evaluated}");
    let unsupported: Vec<_> = tallies
        .iter()
        .filter(|t| !t.2.unsupported.is_empty())
        .collect();
    println!("with an unsupported function: {}", unsupported.len());
    for (key, _, t) in unsupported {
        println!("  {key}: {}", t.unsupported.join(", "));
    }
    let mut total = (0, 0, 0, 0);
    for (key, expr, t) in &tallies {
        total.0 += t.nodes;
        total.1 += t.t;
        total.2 += t.f;
        total.3 += t.empty;
        for e in &t.errors {
            println!("  error {key} `{expr}`: {e}");
        }
        for e in &t.false_in {
            println!("  false {key}: {e}");
        }
    }
    println!(
        "evaluations: {} (true {}, false {}, empty {})",
        total.0, total.1, total.2, total.3
    );
    Ok(())
}
