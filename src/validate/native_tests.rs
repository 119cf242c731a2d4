//! The native checks against the FHIRPath evaluator, on the reference report and on copies broken
//! in the ways each invariant exists to catch (and in shapes the native checks leave alone).

use std::collections::HashMap;

use serde_json::{Value as J, json};

use super::*;
use crate::samples::{ReportParams, reference_report};
use crate::validate::fhirpath::{EvalContext, Expr};
use crate::validate::memo::{Ids, Memo};
use crate::validate::tree::Tree;

fn pop_code(code: &str) -> J {
    json!({ "coding": [{ "system": MP, "code": code }] })
}

type Mutation = (&'static str, fn(&mut J));

/// Broken (and oddly shaped) copies of the reference report.
fn mutations() -> Vec<Mutation> {
    vec![
        ("unchanged", |_| {}),
        ("stratum numerator above denominator", |r| {
            let p = &mut r["group"][0]["stratifier"][0]["stratum"][0]["population"];
            p[0]["count"] = json!(p[1]["count"].as_u64().unwrap() + 1);
        }),
        ("group numerator zero: strata exceed it", |r| {
            r["group"][1]["population"][0]["count"] = json!(0);
        }),
        ("group numerator above denominator", |r| {
            let p = &mut r["group"][2]["population"];
            p[0]["count"] = json!(p[1]["count"].as_u64().unwrap() + 5);
        }),
        ("ratio indicator may exceed", |r| {
            let g = &mut r["group"][3];
            g["code"]["coding"][0]["code"] = json!("midwife-staffing-fill-rate");
            let p = &mut g["population"];
            p[0]["count"] = json!(p[1]["count"].as_u64().unwrap() + 5);
            let s = &mut g["stratifier"][1]["stratum"][2]["population"];
            s[0]["count"] = json!(s[1]["count"].as_u64().unwrap() + 5);
        }),
        ("stratum without denominator", |r| {
            let p = r["group"][4]["stratifier"][0]["stratum"][0]["population"]
                .as_array_mut()
                .unwrap();
            p.pop();
        }),
        ("stratum with initial-population only", |r| {
            let p = &mut r["group"][4]["stratifier"][0]["stratum"][1]["population"];
            p[0]["code"] = pop_code("initial-population");
            p[1]["code"] = pop_code("initial-population");
        }),
        ("group with initial-population only", |r| {
            let g = &mut r["group"][4];
            g["population"][0]["code"] = pop_code("initial-population");
            g["population"].as_array_mut().unwrap().pop();
        }),
        ("complete ethnic stratifier that adds up", |r| {
            let sf = &mut r["group"][5]["stratifier"][0]["stratum"];
            sf.as_array_mut().unwrap().push(json!({
                "value": { "coding": [{ "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", "code": "99" }] },
                "population": [
                    { "code": pop_code("numerator"), "count": 0 },
                    { "code": pop_code("denominator"), "count": 0 },
                ],
            }));
        }),
        ("complete ethnic stratifier that does not add up", |r| {
            let sf = &mut r["group"][5]["stratifier"][0]["stratum"];
            sf.as_array_mut().unwrap().push(json!({
                "value": { "coding": [{ "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", "code": "99" }] },
                "population": [
                    { "code": pop_code("numerator"), "count": 0 },
                    { "code": pop_code("denominator"), "count": 3 },
                ],
            }));
        }),
        ("stratum code repeated", |r| {
            let s = &mut r["group"][6]["stratifier"][0]["stratum"];
            let c = s[0]["value"]["coding"][0]["code"].clone();
            s[1]["value"]["coding"][0]["code"] = c;
        }),
        ("stratum in another code system", |r| {
            r["group"][7]["stratifier"][1]["stratum"][3]["value"]["coding"][0]["system"] =
                json!("https://example.org/other");
        }),
        ("stratum coding without a system", |r| {
            let c = r["group"][7]["stratifier"][0]["stratum"][3]["value"]["coding"][0]
                .as_object_mut()
                .unwrap();
            c.remove("system");
        }),
        ("insight-category stratifiers are exempt from sums", |r| {
            // Both stratifiers, so that pqom-4 holds only through the exemption.
            let g = &mut r["group"][8];
            g["stratifier"][0]["code"][0]["coding"][0]["code"] = json!("insight-category");
            g["stratifier"][1]["code"][0]["coding"][0]["code"] = json!("insight-category");
            g["population"][0]["count"] = json!(0);
        }),
        ("negative count", |r| {
            r["group"][9]["stratifier"][0]["stratum"][2]["population"][0]["count"] = json!(-1);
            r["group"][9]["population"][1]["count"] = json!(-4);
        }),
        ("stratum value missing", |r| {
            let s = r["group"][10]["stratifier"][1]["stratum"][0]
                .as_object_mut()
                .unwrap();
            s.remove("value");
        }),
        ("stratum with value and component", |r| {
            r["group"][10]["stratifier"][1]["stratum"][1]["component"] =
                json!([{ "code": { "text": "x" }, "value": { "text": "y" } }]);
        }),
        ("stratum with component only", |r| {
            let s = r["group"][10]["stratifier"][1]["stratum"][2]
                .as_object_mut()
                .unwrap();
            s.remove("value");
            s.insert(
                "component".into(),
                json!([{ "code": { "text": "x" }, "value": { "text": "y" } }]),
            );
        }),
        ("stratum with empty component array", |r| {
            r["group"][10]["stratifier"][1]["stratum"][3]["component"] = json!([]);
        }),
        ("group codes repeated", |r| {
            let c = r["group"][0]["code"].clone();
            r["group"][1]["code"] = c;
        }),
        ("stratifier codes repeated", |r| {
            let c = r["group"][11]["stratifier"][0]["code"].clone();
            r["group"][11]["stratifier"][1]["code"] = c;
        }),
        ("population with two codings", |r| {
            let p = &mut r["group"][11]["stratifier"][0]["stratum"][4]["population"][0];
            p["code"]["coding"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "system": MP, "code": "denominator" }));
        }),
        ("population without a code", |r| {
            let p = r["group"][11]["stratifier"][1]["stratum"][4]["population"][1]
                .as_object_mut()
                .unwrap();
            p.remove("code");
        }),
        ("population without a count", |r| {
            let p = r["group"][0]["stratifier"][1]["stratum"][5]["population"][1]
                .as_object_mut()
                .unwrap();
            p.remove("count");
            let g = r["group"][1]["population"][1].as_object_mut().unwrap();
            g.remove("count");
        }),
        ("coding as an object, not an array", |r| {
            let c = r["group"][2]["code"]["coding"][0].clone();
            r["group"][2]["code"]["coding"] = c;
            let c = r["group"][2]["stratifier"][0]["stratum"][0]["population"][0]["code"]["coding"]
                [0]
            .clone();
            r["group"][2]["stratifier"][0]["stratum"][0]["population"][0]["code"]["coding"] = c;
        }),
        ("empty arrays", |r| {
            r["group"][3]["stratifier"][0]["stratum"][0]["population"] = json!([]);
            r["group"][3]["stratifier"][1]["stratum"][0]["value"]["coding"] = json!([]);
        }),
        ("stratum populations reordered", |r| {
            let p = r["group"][1]["stratifier"][1]["stratum"][2]["population"]
                .as_array_mut()
                .unwrap();
            p.reverse();
            let p = r["group"][1]["population"].as_array_mut().unwrap();
            p.reverse();
        }),
        ("stratum numerator duplicated", |r| {
            let p = r["group"][2]["stratifier"][1]["stratum"][3]["population"]
                .as_array_mut()
                .unwrap();
            let n = p[0].clone();
            p.push(n);
        }),
        ("group denominator duplicated with a smaller count", |r| {
            let p = r["group"][3]["population"].as_array_mut().unwrap();
            let mut d = p[1].clone();
            d["count"] = json!(0);
            p.push(d);
        }),
        ("stratifier coded in another system", |r| {
            r["group"][4]["stratifier"][0]["code"][0]["coding"][0]["system"] =
                json!("https://example.org/other");
        }),
        ("stratifier with two codes", |r| {
            let c = r["group"][5]["stratifier"][1]["code"][0]["coding"]
                .as_array_mut()
                .unwrap();
            c.push(json!({ "system": STRAT, "code": "imd-quintile" }));
        }),
        (
            "stratum value with a second coding in another system",
            |r| {
                let c = r["group"][6]["stratifier"][0]["stratum"][2]["value"]["coding"]
                    .as_array_mut()
                    .unwrap();
                c.push(json!({ "system": "https://example.org/other", "code": "x" }));
            },
        ),
        (
            "stratifier without strata, group without stratifiers",
            |r| {
                let s = r["group"][7]["stratifier"][0].as_object_mut().unwrap();
                s.remove("stratum");
                let g = r["group"][8].as_object_mut().unwrap();
                g.remove("stratifier");
            },
        ),
        ("population code coding without a system", |r| {
            let c = r["group"][1]["stratifier"][0]["stratum"][3]["population"][0]["code"]["coding"]
                [0]
            .as_object_mut()
            .unwrap();
            c.remove("system");
        }),
        ("population code with a display", |r| {
            r["group"][2]["stratifier"][1]["stratum"][4]["population"][1]["code"]["coding"][0]["display"] =
                json!("Denominator");
        }),
        (
            "population codes in more spellings than are remembered",
            |r| {
                // Each text differs, so that the table of texts fills and later texts are read anew.
                for (k, st) in r["group"][3]["stratifier"][0]["stratum"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .enumerate()
                {
                    st["population"][0]["code"]["coding"][0]["display"] = json!(format!("n{k}"));
                    if k % 3 == 0 {
                        st["population"][1]["code"]["coding"][0]["code"] = json!("numerator");
                    }
                }
            },
        ),
        ("stratum code longer than a key", |r| {
            r["group"][5]["stratifier"][1]["stratum"][2]["value"]["coding"][0]["code"] =
                json!("a-code-of-more-than-fifteen-bytes");
            let s = &mut r["group"][6]["stratifier"][1]["stratum"];
            s[0]["value"]["coding"][0]["code"] = json!("another-long-code-0123456789");
            s[1]["value"]["coding"][0]["code"] = json!("another-long-code-0123456789");
        }),
        (
            "stratum codes that differ in the last of fifteen bytes",
            |r| {
                let s = &mut r["group"][7]["stratifier"][1]["stratum"];
                s[0]["value"]["coding"][0]["code"] = json!("fifteen-bytes-a");
                s[1]["value"]["coding"][0]["code"] = json!("fifteen-bytes-b");
                s[2]["value"]["coding"][0]["code"] = json!("fifteen-bytes-");
            },
        ),
        ("stratum value with two codings in its system", |r| {
            let s = &mut r["group"][8]["stratifier"][0]["stratum"];
            let other = s[2]["value"]["coding"][0]["code"].clone();
            let c = s[1]["value"]["coding"].as_array_mut().unwrap();
            let mut second = c[0].clone();
            second["code"] = other;
            c.push(second);
        }),
        (
            "stratum value repeated in another stratum of the same stratifier",
            |r| {
                let s = &mut r["group"][9]["stratifier"][0]["stratum"];
                let v = s[0]["value"].clone();
                s[5]["value"] = v;
            },
        ),
        ("stratum value coding without a code", |r| {
            let c = r["group"][10]["stratifier"][0]["stratum"][1]["value"]["coding"][0]
                .as_object_mut()
                .unwrap();
            c.remove("code");
        }),
        // Shapes the native checks leave to FHIRPath.
        ("count with a fraction", |r| {
            r["group"][11]["stratifier"][0]["stratum"][8]["population"][1]["count"] = json!(1.0);
            r["group"][11]["population"][0]["count"] = json!(2.0);
        }),
        ("value companion on a stratum", |r| {
            r["group"][0]["stratifier"][1]["stratum"][2]["_value"] = json!({ "id": "v" });
        }),
        ("count companions", |r| {
            r["group"][9]["population"][0]["_count"] = json!({ "id": "c" });
            r["group"][9]["stratifier"][1]["stratum"][1]["population"][1]["_count"] =
                json!({ "id": "c" });
        }),
        ("code companion on a stratum coding", |r| {
            r["group"][10]["stratifier"][0]["stratum"][4]["value"]["coding"][0]["_code"] =
                json!({ "id": "k" });
        }),
        ("population companion on a stratum", |r| {
            r["group"][11]["stratifier"][1]["stratum"][6]["_population"] = json!([{ "id": "p" }]);
        }),
        ("decimal count", |r| {
            r["group"][0]["stratifier"][0]["stratum"][6]["population"][0]["count"] = json!(1.5);
        }),
        ("string count", |r| {
            r["group"][1]["stratifier"][0]["stratum"][6]["population"][0]["count"] = json!("3");
        }),
        ("primitive companion", |r| {
            r["group"][2]["stratifier"][0]["stratum"][6]["population"][0]["_count"] =
                json!({ "extension": [{ "url": "u", "valueString": "x" }] });
            r["group"][2]["stratifier"][0]["stratum"][7]["value"]["coding"][0]["_system"] =
                json!({ "id": "s" });
        }),
        ("choice-like key", |r| {
            let s = r["group"][3]["stratifier"][0]["stratum"][7]
                .as_object_mut()
                .unwrap();
            let v = s.remove("value").unwrap();
            s.insert("valueCodeableConcept".into(), v);
        }),
        ("counts that overflow", |r| {
            let s = &mut r["group"][4]["stratifier"][1]["stratum"];
            s[0]["population"][0]["count"] = json!(i64::MAX);
            s[1]["population"][0]["count"] = json!(i64::MAX);
        }),
        ("null in an array", |r| {
            r["group"][5]["population"]
                .as_array_mut()
                .unwrap()
                .push(J::Null);
        }),
        ("strings where objects belong", |r| {
            r["group"][6]["stratifier"][1]["stratum"][8]["value"] = json!("x");
            r["group"][6]["stratifier"][1]["code"] = json!(["y"]);
        }),
        ("code as a number", |r| {
            r["group"][8]["code"]["coding"][0]["code"] = json!(5);
        }),
        ("system as a number", |r| {
            r["group"][7]["stratifier"][0]["stratum"][9]["value"]["coding"][0]["system"] = json!(1);
        }),
    ]
}

/// Every node an invariant of the trust report profile is evaluated on, with its FHIRPath type.
fn nodes(doc: N<'_>) -> Vec<(N<'_>, &'static str)> {
    fn arr<'t>(v: N<'t>, k: &str) -> Vec<N<'t>> {
        v.get(k).map(|a| a.items().collect()).unwrap_or_default()
    }
    let mut out = vec![(doc, "MeasureReport")];
    for g in arr(doc, "group") {
        out.push((g, "MeasureReport.group"));
        for p in arr(g, "population") {
            if let Some(c) = p.get("count") {
                out.push((c, "integer"));
            }
        }
        for sf in arr(g, "stratifier") {
            out.push((sf, "MeasureReport.group.stratifier"));
            for st in arr(sf, "stratum") {
                out.push((st, "MeasureReport.group.stratifier.stratum"));
                for p in arr(st, "population") {
                    if let Some(c) = p.get("count") {
                        out.push((c, "integer"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn native_checks_agree_with_fhirpath_on_valid_and_broken_reports() {
    // `pqom-60` is about the submission Bundle: its own test below.
    let exprs: Vec<(String, Native, Expr)> = table()
        .iter()
        .filter(|(_, n)| *n != Native::MessageEvent)
        .map(|(t, n)| (t.clone(), *n, Expr::parse(t).unwrap()))
        .collect();
    // (true, false, left to FHIRPath) per expression.
    let mut seen: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    for (what, mutate) in mutations() {
        let mut j = reference_report(&ReportParams::default());
        mutate(&mut j);
        let bytes = serde_json::to_vec(&j).unwrap();
        let tree = Tree::parse(&bytes).unwrap();
        // FHIRPath reads sonic_rs values parsed from the same text, as in the walk.
        let doc = tree.root().to_value();
        // One cache per document, shared by every check on every node, as in a validation run;
        // a second one visits the nodes bottom-up, as the walk does (strata before their
        // stratifier, group and report), and a fresh cache per check shares nothing.
        let mut cache = Cache::default();
        let mut bottom_up = Cache::default();
        let nodes = nodes(tree.root());
        // The bottom-up pass also keys its tables on text identities, as the walk's checks do
        // (the walk gives every node it memoises one); the others key on the text itself.
        fn give_ids<'t>(n: N<'t>, memo: &mut Memo<'t>) {
            memo.canon(n);
            for (_, c) in n.members() {
                give_ids(c, memo);
            }
        }
        let mut ids = Memo::default();
        give_ids(tree.root(), &mut ids);
        let bottom_up_answers: Vec<Option<bool>> = nodes
            .iter()
            .rev()
            .flat_map(|(node, _)| {
                exprs
                    .iter()
                    .map(|(_, native, _)| native.eval(*node, &mut bottom_up, ids.ids()))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
            })
            .collect();
        let mut bottom_up_answers = bottom_up_answers.into_iter().rev();
        for (node, ty) in nodes {
            let value = node.to_value();
            for (text, native, expr) in &exprs {
                let ctx = EvalContext::new().with_resource(&doc);
                let fp = expr
                    .evaluate_typed(&ctx, &value, ty)
                    .map_err(|e| e.to_string())
                    .and_then(|c| c.as_boolean().map_err(|e| e.to_string()))
                    .map(|b| b.unwrap_or(true));
                let got = native.eval(node, &mut cache, Ids::default());
                assert_eq!(
                    got,
                    native.eval(node, &mut Cache::default(), Ids::default()),
                    "{what}: {native:?} on {ty} depends on what the cache saw before"
                );
                assert_eq!(
                    Some(got),
                    bottom_up_answers.next(),
                    "{what}: {native:?} on {ty} depends on the order of the checks"
                );
                let s = seen.entry(text.as_str()).or_default();
                match got {
                    Some(b) => {
                        assert_eq!(
                            fp.as_ref().ok(),
                            Some(&b),
                            "{what}: native {native:?} says {b} on {ty}, FHIRPath says {fp:?}: {text}"
                        );
                        if b { s.0 += 1 } else { s.1 += 1 }
                    }
                    None => {
                        s.2 += 1;
                        // The unchanged report never needs the fallback where FHIRPath succeeds.
                        assert!(
                            what != "unchanged" || fp.is_err(),
                            "native {native:?} left the valid report's {ty} to FHIRPath"
                        );
                    }
                }
            }
        }
    }
    for (text, (t, f, fallback)) in &seen {
        assert!(
            *t > 0 && *f > 0,
            "{text}: true {t}, false {f}: a case is not covered"
        );
        assert!(*fallback > 0, "{text}: no shape was left to FHIRPath");
    }
}

/// The hot invariants of the trust report profile (and mrp-2 from R4) are the texts the native
/// table lists; if the profile generator changes one, this fails (the invariant would still be
/// checked, through FHIRPath, only slower).
#[test]
fn profile_invariants_have_native_checks() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let read =
        |p: &str| -> J { serde_json::from_slice(&std::fs::read(root.join(p)).unwrap()).unwrap() };
    let mut found = HashMap::new();
    let sd = read("profiles/StructureDefinition-pqom-trust-measurereport.json");
    let mut elements: Vec<J> = sd["snapshot"]["element"]
        .as_array()
        .or(sd["differential"]["element"].as_array())
        .unwrap()
        .clone();
    let core = read("definitions/r4/profiles-resources.json");
    for e in core["entry"].as_array().unwrap() {
        if e["resource"]["id"] == "MeasureReport" {
            elements.extend(
                e["resource"]["snapshot"]["element"]
                    .as_array()
                    .unwrap()
                    .clone(),
            );
        }
    }
    for e in &elements {
        for c in e["constraint"].as_array().into_iter().flatten() {
            let key = c["key"].as_str().unwrap();
            let expr = c["expression"].as_str().unwrap_or("");
            found.insert(key.to_owned(), lookup(expr).is_some());
        }
    }
    for key in [
        "pqom-1", "pqom-2", "pqom-3", "pqom-4", "pqom-5", "pqom-6", "pqom-8", "pqom-9", "pqom-10",
        "pqom-11", "pqom-12", "pqom-13", "mrp-2",
    ] {
        assert_eq!(found.get(key), Some(&true), "{key} has no native check");
    }
}

/// `pqom-60` on submission Bundles of every shape: the native answer is FHIRPath's, and the shapes
/// it leaves alone are left to FHIRPath.
#[test]
fn message_event_agrees_with_fhirpath() {
    let (text, _) = table()
        .iter()
        .find(|(_, n)| *n == Native::MessageEvent)
        .unwrap();
    let expr = Expr::parse(text).unwrap();
    let header = |event: &str| {
        format!(
            r#"{{"resourceType":"Bundle","type":"message","entry":[{{"fullUrl":"urn:uuid:1","resource":{{"resourceType":"MessageHeader",{event}"source":{{"endpoint":"x"}}}}}}]}}"#
        )
    };
    let cases = [
        header(&format!(r#""eventCoding":{{"system":"{EVENT}","code":"pqom-submission"}},"#)),
        header(&format!(r#""eventCoding":{{"system":"{EVENT}","code":"other"}},"#)),
        header(&format!(
            r#""eventCoding":{{"system":"{EVENT}","code":"pqom-heartbeat","display":"d"}},"#
        )),
        header(&format!(r#""eventCoding":{{"system":"{EVENT}"}},"#)),
        header(r#""eventCoding":{"system":"http://other","code":"other"},"#),
        header(r#""eventCoding":{"code":"other"},"#),
        header(""),
        header(r#""eventUri":"http://x","#),
        header(&format!(r#""eventCoding":{{"system":"{EVENT}","code":7}},"#)),
        header(&format!(r#""eventCoding":{{"system":"{EVENT}","code":"other","_code":{{"id":"c"}}}},"#)),
        r#"{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MeasureReport"}}]}"#.into(),
        r#"{"resourceType":"Bundle","type":"message","entry":[{"request":{"method":"POST","url":"x"}}]}"#.into(),
        r#"{"resourceType":"Bundle","type":"message"}"#.into(),
        r#"{"resourceType":"Bundle","type":"message","entry":[]}"#.into(),
        r#"{"resourceType":"Bundle","type":"message","entry":[7]}"#.into(),
    ];
    let (mut yes, mut no, mut left) = (0, 0, 0);
    for j in &cases {
        let tree = Tree::parse(j.as_bytes()).unwrap();
        let value = tree.root().to_value();
        let ctx = EvalContext::new().with_resource(&value);
        let fp = expr
            .evaluate_typed(&ctx, &value, "Bundle")
            .map_err(|e| e.to_string())
            .and_then(|c| c.as_boolean().map_err(|e| e.to_string()))
            .map(|b| b.unwrap_or(true));
        match Native::MessageEvent.eval(tree.root(), &mut Cache::default(), Ids::default()) {
            Some(b) => {
                assert_eq!(
                    fp.as_ref().ok(),
                    Some(&b),
                    "native says {b}, FHIRPath {fp:?} on {j}"
                );
                if b { yes += 1 } else { no += 1 }
            }
            None => left += 1,
        }
    }
    assert!(
        yes >= 6 && no >= 2 && left >= 3,
        "true {yes}, false {no}, left {left}"
    );
}
