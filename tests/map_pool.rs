//! Pooling: ICB and region values are the sums of trusts' counts (never averages of rates), and
//! completeness counts the trusts that reported out of those expected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::LazyLock;

use pqom_gateway::map::{IndicatorValue, Level, Mapper, Period, StaticDirectory, StratumKey};
use proptest::prelude::*;

static MAPPER: LazyLock<Mapper> = LazyLock::new(|| {
    Mapper::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap()
});

fn mapper() -> &'static Mapper {
    &MAPPER
}

/// Norfolk and Waveney (QMM) and a second ICB in the East of England (Y61).
fn directory() -> StaticDirectory {
    StaticDirectory::new()
        .with("RM1", "QMM", "Y61")
        .with("RGP", "QMM", "Y61")
        .with("RCX", "QMM", "Y61")
        .with("RGN", "QHG", "Y61")
        .with("RC9", "QHG", "Y61")
}

const TRUSTS: [&str; 6] = ["RM1", "RGP", "RCX", "RGN", "RC9", "ZZZ"];
const INDICATORS: [&str; 3] = ["pph-1500ml", "training-compliance", "psi-themes"];

fn value(
    trust: usize,
    indicator: usize,
    stratum: Option<usize>,
    month: u8,
    num: u64,
    den: u64,
) -> IndicatorValue {
    let has_den = indicator != 2;
    IndicatorValue {
        indicator: INDICATORS[indicator].to_owned(),
        trust: TRUSTS[trust].to_owned(),
        period: Period {
            start: format!("2026-{month:02}-01"),
            end: format!("2026-{month:02}-28"),
        },
        stratum: stratum.map(|s| StratumKey {
            stratifier: "imd-quintile".into(),
            system: "https://fhir.pqom-gateway.org/CodeSystem/imd-quintile".into(),
            code: s.to_string(),
        }),
        numerator: num.min(den),
        denominator: has_den.then_some(den),
        value: None,
        narrative: None,
        hit: 0,
    }
}

#[test]
fn pooled_rate_is_from_summed_counts_not_the_mean_of_rates() {
    let m = mapper();
    // RM1: 2 / 100 = 20 per 1,000; RGP: 30 / 6,000 = 5 per 1,000. Mean of rates 12.5; pooled 5.2.
    let vs = vec![
        value(0, 0, None, 10, 2, 100),
        value(1, 0, None, 10, 30, 6_000),
    ];
    let pooled = m.pool(&vs, Level::Icb, &directory());
    let p = &pooled.values[0];
    assert_eq!(
        (p.organisation.as_str(), p.numerator, p.denominator),
        ("QMM", 32, Some(6_100))
    );
    assert!((p.value.unwrap() - 32.0 / 6_100.0 * 1000.0).abs() < 1e-9);
    assert_eq!((p.trusts_reported, p.trusts_expected), (2, 3));
    let reports = m.pooled_reports(&pooled.values, "2026-11-08T02:00:00Z");
    assert_eq!(reports[0]["extension"][0]["valueCode"], "icb");
    let ext = &reports[0]["extension"][1];
    assert_eq!(
        ext["url"],
        "https://fhir.pqom-gateway.org/StructureDefinition/pqom-completeness"
    );
    assert_eq!(ext["extension"][0]["valueUnsignedInt"], 2);
    assert_eq!(ext["extension"][1]["valueUnsignedInt"], 3);
    assert_eq!(ext["extension"][2]["valueIdentifier"]["value"], "RCX");
    assert_eq!(reports[0]["reporter"]["identifier"]["value"], "QMM");
}

proptest! {
    #[test]
    fn pooled_values_equal_the_sums_of_counts_and_completeness_counts_trusts(
        rows in proptest::collection::vec(
            (0usize..6, 0usize..3, proptest::option::of(1usize..6), 1u8..4, 0u64..5_000, 0u64..10_000),
            0..80,
        ),
        level in prop_oneof![Just(Level::Icb), Just(Level::Region)],
    ) {
        let m = mapper();
        let dir = directory();
        // One current value per trust, indicator, period and stratum (as the store keeps them).
        let mut seen = BTreeSet::new();
        let values: Vec<IndicatorValue> = rows
            .into_iter()
            .filter(|(t, i, s, mo, _, _)| seen.insert((*t, *i, *s, *mo)))
            .map(|(t, i, s, mo, n, d)| value(t, i, s, mo, n, d))
            .collect();
        let pooled = m.pool(&values, level, &dir);

        // Expected: straightforward sums by key.
        type Key = (String, String, String, Option<String>);
        let mut want: BTreeMap<Key, (u64, Option<u64>, BTreeSet<String>)> = BTreeMap::new();
        let mut unplaced = BTreeSet::new();
        for v in &values {
            let org = match (v.trust.as_str(), level) {
                ("ZZZ", _) => { unplaced.insert(v.trust.clone()); continue; }
                ("RM1" | "RGP" | "RCX", Level::Icb) => "QMM",
                (_, Level::Icb) => "QHG",
                (_, Level::Region) => "Y61",
            };
            let e = want
                .entry((v.indicator.clone(), org.to_owned(), v.period.start.clone(), v.stratum.as_ref().map(|k| k.code.clone())))
                .or_insert((0, v.denominator.map(|_| 0), BTreeSet::new()));
            e.0 += v.numerator;
            e.1 = e.1.zip(v.denominator).map(|(a, b)| a + b);
            e.2.insert(v.trust.clone());
        }
        prop_assert_eq!(pooled.values.len(), want.len());
        prop_assert_eq!(pooled.unplaced_trusts.iter().cloned().collect::<BTreeSet<_>>(), unplaced);
        for p in &pooled.values {
            let key = (p.indicator.clone(), p.organisation.clone(), p.period.start.clone(), p.stratum.as_ref().map(|k| k.code.clone()));
            let (n, d, trusts) = want.get(&key).expect("pooled key exists in the sums");
            prop_assert_eq!(p.numerator, *n);
            prop_assert_eq!(p.denominator, *d);
            prop_assert_eq!(p.trusts_reported, trusts.len());
            prop_assert_eq!(&p.trusts.iter().cloned().collect::<BTreeSet<_>>(), trusts);
            let expected = match (level, p.organisation.as_str()) {
                (Level::Icb, "QMM") => 3,
                (Level::Icb, _) => 2,
                (Level::Region, _) => 5,
            };
            prop_assert_eq!(p.trusts_expected, expected);
            prop_assert_eq!(p.missing.len() + p.trusts_reported, expected);
            let mult = m.catalogue().indicator(&p.indicator).unwrap().kind.multiplier();
            match *d {
                Some(0) => prop_assert!(p.value.is_none()),
                Some(d) => prop_assert!((p.value.unwrap() - *n as f64 / d as f64 * mult).abs() < 1e-9),
                None => prop_assert_eq!(p.value, Some(*n as f64)),
            }
        }
    }
}
