//! The generated FHIR resources in `profiles/` cannot drift from the catalogue: this fails when a
//! committed file differs from what `pqom-gateway catalogue export` would write, or is missing.

use std::path::Path;

use pqom_gateway::map::Catalogue;

#[test]
fn committed_profiles_match_the_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue =
        Catalogue::load(&root.join("mappings/catalogue/annex1.toml")).expect("catalogue loads");
    let mut stale = Vec::new();
    for (name, text) in catalogue.export() {
        let committed =
            std::fs::read_to_string(root.join("profiles").join(&name)).unwrap_or_default();
        if committed != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "regenerate with `cargo run -- catalogue export --out profiles/`; stale: {stale:?}"
    );
}

#[test]
fn every_indicator_has_a_measure_file_and_a_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue = Catalogue::load(&root.join("mappings/catalogue/annex1.toml")).unwrap();
    let cs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("profiles/CodeSystem-pqom-indicator.json")).unwrap(),
    )
    .unwrap();
    let codes: Vec<&str> = cs["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    for i in &catalogue.indicators {
        assert!(codes.contains(&i.code.as_str()));
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!("profiles/Measure-{}.json", i.code)))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m["resourceType"], "Measure");
        assert_eq!(
            m["url"],
            format!("https://fhir.pqom-gateway.org/Measure/{}", i.code)
        );
    }
    let annex1: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("profiles/Measure-pqom-annex1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        annex1["group"].as_array().unwrap().len(),
        catalogue.indicators.len()
    );
}
