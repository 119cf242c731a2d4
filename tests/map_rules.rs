//! The committed mapping rules: they load, every rule maps what it says it maps, the worked
//! examples give the numbers a person computes by hand, and broken rule files are refused with
//! file and line.

use std::path::{Path, PathBuf};

use pqom_gateway::map::{Catalogue, MapLoadError, Mapper, sample};
use serde_json::{Value, json};

const POP: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const BASE: &str = "https://fhir.pqom-gateway.org";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mapper() -> Mapper {
    Mapper::load(&root().join("mappings"))
        .unwrap_or_else(|e| panic!("committed mappings load: {e}"))
}

fn pops(pairs: &[(&str, u64)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(code, n)| json!({"code": {"coding": [{"system": POP, "code": code}]}, "count": n}))
            .collect(),
    )
}

fn report(measure: &str, groups: Vec<Value>) -> Value {
    json!({
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": measure,
        "reporter": {"identifier": {"system": ODS, "value": "RGP"}},
        "period": {"start": "2026-10-01", "end": "2026-10-31"},
        "group": groups
    })
}

fn group(system: &str, code: &str, populations: Value, stratifiers: Vec<Value>) -> Value {
    let mut g =
        json!({"code": {"coding": [{"system": system, "code": code}]}, "population": populations});
    if !stratifiers.is_empty() {
        g["stratifier"] = Value::Array(stratifiers);
    }
    g
}

fn stratifier(code: &str, strata: Vec<(&str, &str, Value)>) -> Value {
    json!({
        "code": [{"coding": [{"system": format!("{BASE}/CodeSystem/pqom-stratifier"), "code": code}]}],
        "stratum": strata.into_iter().map(|(system, c, p)| json!({"value": {"coding": [{"system": system, "code": c}]}, "population": p})).collect::<Vec<_>>()
    })
}

fn source_group(code: &str, populations: Value) -> Value {
    group(
        &format!("{BASE}/CodeSystem/pqom-source-measure"),
        code,
        populations,
        vec![],
    )
}

#[test]
fn every_rule_maps_its_group_to_its_indicator_from_counts() {
    let m = mapper();
    assert!(
        m.rules().rules.len() >= 40 + 30,
        "annex1 identity plus the family rules"
    );
    for rule in &m.rules().rules {
        let ind = m.catalogue().indicator(&rule.indicator).unwrap();
        let mut p = vec![(rule.numerator.as_str(), 7)];
        if let Some(d) = &rule.denominator {
            p.push((d.as_str(), 350));
        }
        let r = report(
            &format!("{}|1.0.0", rule.measure),
            vec![group(&rule.group_system, &rule.group, pops(&p), vec![])],
        );
        let out = m.map_report(&r);
        assert!(out.unmapped.is_empty(), "{}: {:?}", rule.at, out.unmapped);
        assert_eq!(out.values.len(), 1, "{}", rule.at);
        let v = &out.values[0];
        assert_eq!(v.indicator, rule.indicator, "{}", rule.at);
        assert_eq!(
            (v.trust.as_str(), v.period.start.as_str()),
            ("RGP", "2026-10-01")
        );
        assert_eq!(v.numerator, 7);
        let expected = if rule.denominator.is_some() {
            assert_eq!(v.denominator, Some(350));
            7.0 / 350.0 * ind.kind.multiplier()
        } else {
            7.0
        };
        assert!((v.value.unwrap() - expected).abs() < 1e-9, "{}", rule.at);
        assert_eq!(
            out.trace[v.hit].rule,
            format!("{}:{}", rule.at.file.display(), rule.at.line)
        );
    }
}

#[test]
fn msds_pph_is_per_1000_maternities_with_ethnicity_translated_and_deciles_rolled_into_quintiles() {
    let m = mapper();
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/map_fixtures/msds-cqim-RM1-2026-10.json"))
            .unwrap(),
    )
    .unwrap();
    let out = m.map_report(&r);
    let pph: Vec<_> = out
        .values
        .iter()
        .filter(|v| v.indicator == "pph-1500ml")
        .collect();
    let total = pph.iter().find(|v| v.stratum.is_none()).unwrap();
    assert_eq!(
        (total.numerator, total.denominator, total.value),
        (12, Some(480), Some(25.0))
    );
    let get = |s: &str, c: &str| {
        pph.iter()
            .find(|v| {
                v.stratum
                    .as_ref()
                    .is_some_and(|k| k.stratifier == s && k.code == c)
            })
            .map(|v| (v.numerator, v.denominator))
    };
    // WBRI (local) and A (NHS) are both White British: summed.
    assert_eq!(get("ethnic-category", "A"), Some((9, Some(340))));
    assert_eq!(get("ethnic-category", "N"), Some((3, Some(140))));
    assert_eq!(get("imd-decile", "2"), Some((4, Some(130))));
    assert_eq!(get("imd-quintile", "1"), Some((9, Some(280))));
    assert_eq!(get("imd-quintile", "4"), Some((3, Some(200))));
    // Robson 1: a percentage.
    let robson = out
        .values
        .iter()
        .find(|v| v.indicator == "caesarean-robson-1")
        .unwrap();
    assert_eq!(robson.value, Some(15.0));
    // The local group is accepted but reported as unmapped.
    assert_eq!(out.unmapped.len(), 1);
    assert_eq!(out.unmapped[0].group.as_deref(), Some("LOCAL-TRIAGE-30MIN"));
    assert!(out.issues.is_empty(), "{:?}", out.issues);
}

#[test]
fn annex1_identity_maps_the_reference_report_and_strata_sum_to_totals() {
    let m = mapper();
    let r = sample::reference_report("RM1", "2026-10-01", "2026-10-31");
    let out = m.map_report(&r);
    assert!(out.unmapped.is_empty());
    assert_eq!(out.trace.len(), 12);
    // Per group: total + 18 ethnic categories + 10 deciles + 5 quintiles.
    assert_eq!(out.values.len(), 12 * (1 + 18 + 10 + 5));
    for code in sample::REFERENCE_GROUPS {
        let vs: Vec<_> = out.values.iter().filter(|v| v.indicator == code).collect();
        let total = vs.iter().find(|v| v.stratum.is_none()).unwrap();
        for s in ["ethnic-category", "imd-decile", "imd-quintile"] {
            let (n, d) = vs
                .iter()
                .filter(|v| v.stratum.as_ref().is_some_and(|k| k.stratifier == s))
                .fold((0, 0), |(n, d), v| {
                    (n + v.numerator, d + v.denominator.unwrap())
                });
            assert_eq!(
                (n, Some(d)),
                (total.numerator, total.denominator),
                "{code} {s}"
            );
        }
    }
}

#[test]
fn midwife_fill_rate_is_a_ratio_that_can_exceed_100() {
    let m = mapper();
    let r = report(
        &format!("{BASE}/Measure/workforce-staffing|1.0.0"),
        vec![source_group(
            "staffing-midwife-hours",
            pops(&[("numerator", 5_250), ("denominator", 5_000)]),
        )],
    );
    let v = &m.map_report(&r).values[0];
    assert_eq!(v.indicator, "midwife-staffing-fill-rate");
    assert!((v.value.unwrap() - 105.0).abs() < 1e-9);
}

#[test]
fn training_compliance_by_local_staff_group_becomes_pqom_staff_groups() {
    let m = mapper();
    let local = "https://fhir.example-trust.nhs.uk/CodeSystem/training-staff-group";
    let g = group(
        &format!("{BASE}/CodeSystem/pqom-source-measure"),
        "training-ccf",
        pops(&[("numerator", 180), ("denominator", 200)]),
        vec![stratifier(
            "staff-group",
            vec![
                (
                    local,
                    "MW",
                    pops(&[("numerator", 140), ("denominator", 150)]),
                ),
                (
                    local,
                    "CONS-OBS",
                    pops(&[("numerator", 25), ("denominator", 30)]),
                ),
                (
                    local,
                    "PHARM",
                    pops(&[("numerator", 15), ("denominator", 20)]),
                ),
            ],
        )],
    );
    let out = m.map_report(&report(&format!("{BASE}/Measure/training|1.0.0"), vec![g]));
    let code_of = |c: &str| {
        out.values
            .iter()
            .find(|v| v.stratum.as_ref().is_some_and(|k| k.code == c))
            .map(|v| v.numerator)
    };
    assert_eq!(out.values[0].value, Some(90.0));
    assert_eq!(code_of("midwife"), Some(140));
    assert_eq!(code_of("obstetric-consultant"), Some(25));
    // Unlisted local codes take the translation's default.
    assert_eq!(code_of("other"), Some(15));
}

#[test]
fn patient_safety_incidents_count_by_insight_category_and_harm_level_with_narrative() {
    let m = mapper();
    let local = "https://fhir.example-trust.nhs.uk/CodeSystem/incident-category";
    let harm = format!("{BASE}/CodeSystem/pqom-harm-level");
    let mut g = group(
        &format!("{BASE}/CodeSystem/pqom-source-measure"),
        "psi-incidents",
        pops(&[("initial-population", 41)]),
        vec![
            stratifier(
                "insight-category",
                vec![
                    (local, "CTG", pops(&[("initial-population", 9)])),
                    (local, "PPH", pops(&[("initial-population", 12)])),
                    (local, "ESCAL", pops(&[("initial-population", 20)])),
                ],
            ),
            stratifier(
                "harm-level",
                vec![
                    (
                        harm.as_str(),
                        "no-harm",
                        pops(&[("initial-population", 30)]),
                    ),
                    (
                        harm.as_str(),
                        "moderate-harm",
                        pops(&[("initial-population", 10)]),
                    ),
                    (
                        harm.as_str(),
                        "severe-harm",
                        pops(&[("initial-population", 1)]),
                    ),
                ],
            ),
        ],
    );
    g["extension"] = json!([{"url": format!("{BASE}/StructureDefinition/pqom-group-narrative"), "valueMarkdown": "Delays escalating abnormal CTGs; action: fresh eyes audit."}]);
    let out = m.map_report(&report(
        &format!("{BASE}/Measure/patient-safety-events|1.0.0"),
        vec![g],
    ));
    let total = &out.values[0];
    assert_eq!(
        (
            total.indicator.as_str(),
            total.numerator,
            total.denominator,
            total.value
        ),
        ("psi-themes", 41, None, Some(41.0))
    );
    assert!(total.narrative.as_deref().unwrap().contains("fresh eyes"));
    let n = |s: &str, c: &str| {
        out.values
            .iter()
            .find(|v| {
                v.stratum
                    .as_ref()
                    .is_some_and(|k| k.stratifier == s && k.code == c)
            })
            .map(|v| v.numerator)
    };
    assert_eq!(n("insight-category", "fetal-monitoring"), Some(9));
    assert_eq!(n("insight-category", "obstetric-haemorrhage"), Some(12));
    assert_eq!(n("insight-category", "assessment-and-escalation"), Some(20));
    assert_eq!(n("harm-level", "severe-harm"), Some(1));
}

#[test]
fn mis_progress_counts_safety_actions_met() {
    let m = mapper();
    let sys = format!("{BASE}/CodeSystem/pqom-mis-safety-action");
    let strata: Vec<(&str, &str, Value)> = [
        "sa1", "sa2", "sa3", "sa4", "sa5", "sa6", "sa7", "sa8", "sa9", "sa10",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| {
        (
            sys.as_str(),
            *c,
            pops(&[
                ("numerator", u64::from(i != 4 && i != 7)),
                ("denominator", 1),
            ]),
        )
    })
    .collect();
    let g = group(
        &format!("{BASE}/CodeSystem/pqom-source-measure"),
        "mis-safety-actions",
        pops(&[("numerator", 8), ("denominator", 10)]),
        vec![stratifier("mis-safety-action", strata)],
    );
    let out = m.map_report(&report(
        &format!("{BASE}/Measure/mis-progress|1.0.0"),
        vec![g],
    ));
    assert_eq!(out.values[0].value, Some(80.0));
    let sa5 = out
        .values
        .iter()
        .find(|v| v.stratum.as_ref().is_some_and(|k| k.code == "sa5"))
        .unwrap();
    assert_eq!((sa5.numerator, sa5.denominator), (0, Some(1)));
}

#[test]
fn fft_nnap_mbrrace_compute_from_counts_not_submitted_scores() {
    let m = mapper();
    let mut g = source_group(
        "fft-maternity",
        pops(&[("numerator", 930), ("denominator", 1000)]),
    );
    g["measureScore"] = json!({"value": 9.3});
    let out = m.map_report(&report(&format!("{BASE}/Measure/fft|1.0.0"), vec![g]));
    assert_eq!(out.values[0].value, Some(93.0));
    // A score in the wrong unit is flagged, not used.
    assert_eq!(out.issues.len(), 1, "{:?}", out.issues);
    assert!(
        out.issues[0]
            .diagnostics
            .contains("the gateway uses the counts")
    );

    let out = m.map_report(&report(
        &format!("{BASE}/Measure/nnap|1.0.0"),
        vec![source_group(
            "nnap-place-of-birth",
            pops(&[("numerator", 17), ("denominator", 20)]),
        )],
    ));
    assert_eq!(
        (out.values[0].indicator.as_str(), out.values[0].value),
        ("nnap-birth-nicu-centre", Some(85.0))
    );

    let out = m.map_report(&report(
        &format!("{BASE}/Measure/mbrrace-mortality|1.0.0"),
        vec![source_group(
            "mbrrace-stillbirths",
            pops(&[("numerator", 3), ("denominator", 1200)]),
        )],
    ));
    assert_eq!(
        (out.values[0].indicator.as_str(), out.values[0].value),
        ("stillbirth-rate", Some(2.5))
    );
}

#[test]
fn a_measure_without_rules_or_outside_the_version_range_is_unmapped_not_an_error() {
    let m = mapper();
    let g = source_group(
        "msds-cqim-pph",
        pops(&[("numerator", 1), ("denominator", 2)]),
    );
    for measure in [
        "https://trust.example/Measure/local|1",
        &format!("{BASE}/Measure/msds-cqim|2.0.0"),
    ] {
        let out = m.map_report(&report(measure, vec![g.clone()]));
        assert!(out.values.is_empty());
        assert_eq!(out.unmapped.len(), 1);
        assert!(
            out.unmapped[0].reason.contains("no mapping rule"),
            "{}",
            out.unmapped[0].reason
        );
    }
}

#[test]
fn a_message_bundle_is_mapped_with_the_reporter_resolved_from_its_organization() {
    let m = mapper();
    let mut r = report(
        &format!("{BASE}/Measure/fft|1.0.0"),
        vec![source_group(
            "fft-maternity",
            pops(&[("numerator", 90), ("denominator", 100)]),
        )],
    );
    r["reporter"] = json!({"reference": "urn:uuid:4f6a0c2e-0000-4000-8000-000000000001"});
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            {"fullUrl": "urn:uuid:4f6a0c2e-0000-4000-8000-000000000000", "resource": {"resourceType": "MessageHeader"}},
            {"fullUrl": "urn:uuid:4f6a0c2e-0000-4000-8000-000000000001", "resource": {"resourceType": "Organization", "identifier": [{"system": ODS, "value": "RCX"}]}},
            {"fullUrl": "urn:uuid:4f6a0c2e-0000-4000-8000-000000000002", "resource": r}
        ]
    });
    let out = m.map_report(&bundle);
    assert_eq!(out.values.len(), 1);
    assert_eq!(out.values[0].trust, "RCX");
    assert_eq!(out.trace[0].expression, "Bundle.entry[2].resource.group[0]");
}

#[test]
fn indicator_measure_reports_carry_counts_scores_and_strata() {
    let m = mapper();
    let out = m.map_report(&sample::reference_report("RM1", "2026-10-01", "2026-10-31"));
    let reports = m.indicator_reports(&out.values, "2026-11-01T00:00:00Z");
    assert_eq!(reports.len(), 12);
    let sb = reports
        .iter()
        .find(|r| r["measure"] == format!("{BASE}/Measure/stillbirth-rate|1.0.0"))
        .unwrap();
    assert_eq!(
        sb["meta"]["profile"][0],
        format!("{BASE}/StructureDefinition/pqom-indicator-measurereport")
    );
    assert_eq!(sb["reporter"]["identifier"]["value"], "RM1");
    assert_eq!(sb["group"][0]["population"][0]["count"], 5);
    assert_eq!(sb["group"][0]["population"][1]["count"], 400);
    assert_eq!(sb["group"][0]["measureScore"]["value"], 12.5);
    assert_eq!(sb["group"][0]["stratifier"].as_array().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Load errors name file and line
// ---------------------------------------------------------------------------------------------

fn catalogue() -> Catalogue {
    Catalogue::load(&root().join("mappings/catalogue/annex1.toml")).unwrap()
}

fn load_err(files: &[(&str, &str)]) -> MapLoadError {
    let owned: Vec<(PathBuf, &str)> = files.iter().map(|(n, t)| (PathBuf::from(n), *t)).collect();
    let refs: Vec<(&Path, &str)> = owned.iter().map(|(p, t)| (p.as_path(), *t)).collect();
    Mapper::from_texts(catalogue(), &refs).expect_err("must be refused")
}

fn assert_problem(err: &MapLoadError, file: &str, line: usize, needle: &str) {
    assert!(
        err.problems().iter().any(|p| p.at.file == Path::new(file)
            && p.at.line == line
            && p.message.contains(needle)),
        "expected {file}:{line} `{needle}` in:\n{err}"
    );
}

const HEAD: &str = "[source]\nmeasure = \"https://fhir.pqom-gateway.org/Measure/msds-cqim\"\nversions = \">=1.0.0, <2.0.0\"\n";

#[test]
fn unknown_indicator_is_refused_with_file_and_line() {
    let text = format!("{HEAD}\n[[rule]]\ngroup = \"msds-cqim-pph\"\nindicator = \"pph-2000ml\"\n");
    assert_problem(
        &load_err(&[("r.toml", &text)]),
        "r.toml",
        7,
        "unknown indicator `pph-2000ml`",
    );
}

#[test]
fn unknown_group_population_and_translation_are_refused_with_lines() {
    let text = format!(
        "{HEAD}\n[[rule]]\ngroup = \"msds-cqim-pphh\"\nindicator = \"pph-1500ml\"\nnumerator = \"numerator\"\ndenominator = \"denominatr\"\nstratify = [{{ from = \"imd-decile\", to = \"imd-quintile\", translate = \"decile-quint\" }}]\n"
    );
    let err = load_err(&[("r.toml", &text)]);
    assert_problem(&err, "r.toml", 6, "unknown group code `msds-cqim-pphh`");
    assert_problem(&err, "r.toml", 9, "unknown population code `denominatr`");
    assert_problem(&err, "r.toml", 10, "unknown translation `decile-quint`");
}

#[test]
fn overlapping_rules_across_files_are_refused() {
    let a = format!("{HEAD}\n[[rule]]\ngroup = \"msds-cqim-pph\"\nindicator = \"pph-1500ml\"\n");
    let b = "[source]\nmeasure = \"https://fhir.pqom-gateway.org/Measure/msds-cqim\"\nversions = \">=1.5\"\n\n[[rule]]\ngroup = \"msds-cqim-pph\"\nindicator = \"pph-1500ml\"\n";
    let err = load_err(&[("a.toml", &a), ("b.toml", b)]);
    assert_problem(&err, "b.toml", 5, "overlaps the rule at a.toml:5");
}

#[test]
fn contradictory_rules_are_refused() {
    let text = format!(
        "{HEAD}\n[[rule]]\ngroup = \"msds-cqim-pph\"\nindicator = \"pph-1500ml\"\n\n[[rule]]\ngroup = \"msds-cqim-tears\"\nindicator = \"pph-1500ml\"\n"
    );
    assert_problem(
        &load_err(&[("r.toml", &text)]),
        "r.toml",
        9,
        "contradictory rules",
    );
}

#[test]
fn translation_to_an_unknown_code_is_refused() {
    let text = "[translation.bad]\nfrom_system = \"https://fhir.pqom-gateway.org/CodeSystem/imd-decile\"\nto_system = \"https://fhir.pqom-gateway.org/CodeSystem/imd-quintile\"\nmap = { \"1\" = \"1\", \"2\" = \"6\" }\n";
    assert_problem(
        &load_err(&[("t.toml", text)]),
        "t.toml",
        4,
        "unknown target code `6`",
    );
}

#[test]
fn syntax_errors_and_unknown_keys_name_file_and_line() {
    let err = load_err(&[("s.toml", "[source]\nmeasure = \"x\"\nversion = \"1\"\n")]);
    assert_problem(&err, "s.toml", 3, "unknown field `version`");
    let err = load_err(&[("s.toml", "[source\n")]);
    assert_eq!(err.problems()[0].at.line, 1);
}

#[test]
fn committed_mapping_errors_stop_load_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("catalogue")).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::copy(
        root().join("mappings/catalogue/annex1.toml"),
        dir.path().join("catalogue/annex1.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules/x.toml"),
        format!("{HEAD}\n[[rule]]\ngroup = \"msds-cqim-pph\"\nindicator = \"nope\"\n"),
    )
    .unwrap();
    let err = Mapper::load(dir.path()).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("x.toml:7:"), "{shown}");
}
