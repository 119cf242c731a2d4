//! Indicator values expressed as PQOM indicator MeasureReports
//! (`{base}/StructureDefinition/pqom-indicator-measurereport`): one report per indicator, reporter
//! and period, for the Measure `{base}/Measure/{indicator}`, with the total as the group and the
//! breakdowns as stratifiers. Pooled reports add a completeness extension.

use std::collections::BTreeMap;

use serde_json::Value;

use super::catalogue::{
    Catalogue, Direction, IMPROVEMENT_SYSTEM, INDICATOR_SYSTEM, Indicator, Kind, POPULATION_SYSTEM,
    STRATIFIER_SYSTEM,
};
use super::engine::{EXT_NARRATIVE, IndicatorValue, Period, StratumKey};
use super::json::{J, concept};
use super::pool::PooledValue;
use crate::fhir::{CANONICAL_BASE, ODS_ORG_SYSTEM};

pub const INDICATOR_REPORT_PROFILE: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-indicator-measurereport";
/// Completeness of a pooled value: `reported` and `expected` trust counts.
pub const EXT_COMPLETENESS: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-completeness";
/// Reporting level of an indicator report: trust | icb | region | national.
pub const EXT_REPORTING_LEVEL: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-reporting-level";

/// What one report line needs, whether from a trust value or a pooled one.
struct Line<'a> {
    /// `None`: the total (the group itself).
    stratum: Option<&'a StratumKey>,
    numerator: u64,
    denominator: Option<u64>,
    value: Option<f64>,
    narrative: Option<&'a str>,
}

fn populations(ind: &Indicator, l: &Line) -> Vec<J> {
    let pop = |code: &str, count: u64| {
        J::obj()
            .set("code", concept(POPULATION_SYSTEM, code, None))
            .set("count", count)
    };
    if ind.kind.has_denominator() {
        vec![
            pop("numerator", l.numerator),
            pop("denominator", l.denominator.unwrap_or(0)),
        ]
    } else {
        vec![pop("initial-population", l.numerator)]
    }
}

fn score(ind: &Indicator, value: Option<f64>) -> Option<J> {
    let v = (value? * 10_000.0).round() / 10_000.0;
    let q = J::obj().set("value", v);
    Some(match ind.kind {
        Kind::Proportion | Kind::Ratio => q
            .set("unit", "%")
            .set("system", "http://unitsofmeasure.org")
            .set("code", "%"),
        _ => q.set("unit", &ind.unit),
    })
}

fn narrative_ext(text: Option<&str>) -> Vec<J> {
    text.map(|t| J::obj().set("url", EXT_NARRATIVE).set("valueMarkdown", t))
        .into_iter()
        .collect()
}

fn build(
    catalogue: &Catalogue,
    ind: &Indicator,
    reporter: &str,
    period: &Period,
    lines: &[Line],
    extension: Vec<J>,
    date: &str,
) -> Value {
    let total = lines.iter().find(|l| l.stratum.is_none());
    let mut stratifiers: BTreeMap<&str, Vec<J>> = BTreeMap::new();
    for l in lines {
        let Some(k) = l.stratum else { continue };
        stratifiers.entry(k.stratifier.as_str()).or_default().push(
            // The narrative extension is defined on the group only; strata carry counts.
            J::obj()
                .set("value", concept(&k.system, &k.code, None))
                .set("population", populations(ind, l))
                .set_opt("measureScore", score(ind, l.value)),
        );
    }
    let stratifier = stratifiers
        .into_iter()
        .map(|(code, strata)| {
            J::obj()
                .set("code", vec![concept(STRATIFIER_SYSTEM, code, None)])
                .set("stratum", strata)
        })
        .collect::<Vec<_>>();
    let mut group = J::obj()
        .set_arr("extension", narrative_ext(total.and_then(|t| t.narrative)))
        .set(
            "code",
            concept(INDICATOR_SYSTEM, &ind.code, Some(&ind.name)),
        );
    if let Some(t) = total {
        group = group
            .set("population", populations(ind, t))
            .set_opt("measureScore", score(ind, t.value));
    }
    let group = group.set_arr("stratifier", stratifier);
    let improvement = match ind.direction {
        Direction::Neutral => None,
        d => Some(concept(IMPROVEMENT_SYSTEM, d.code(), None)),
    };
    J::obj()
        .set("resourceType", "MeasureReport")
        .set(
            "meta",
            J::obj().set("profile", vec![J::from(INDICATOR_REPORT_PROFILE)]),
        )
        .set_arr("extension", extension)
        .set("status", "complete")
        .set("type", "summary")
        .set(
            "measure",
            format!(
                "{CANONICAL_BASE}/Measure/{}|{}",
                ind.code, catalogue.version
            ),
        )
        .set("date", date)
        .set(
            "reporter",
            J::obj().set(
                "identifier",
                J::obj()
                    .set("system", ODS_ORG_SYSTEM)
                    .set("value", reporter),
            ),
        )
        .set(
            "period",
            J::obj().set("start", &period.start).set("end", &period.end),
        )
        .set_opt("improvementNotation", improvement)
        .set("group", vec![group])
        .to_value()
}

/// One indicator MeasureReport per (indicator, trust, period) in `values`. `date` is the
/// report's `date`: when the gateway produced it (the caller's clock; this module has none).
pub fn indicator_reports(
    catalogue: &Catalogue,
    values: &[IndicatorValue],
    date: &str,
) -> Vec<Value> {
    let mut by: BTreeMap<(&str, &str, &Period), Vec<&IndicatorValue>> = BTreeMap::new();
    for v in values {
        by.entry((&v.indicator, &v.trust, &v.period))
            .or_default()
            .push(v);
    }
    by.into_iter()
        .filter_map(|((code, trust, period), vs)| {
            let ind = catalogue.indicator(code)?;
            let lines: Vec<Line> = vs
                .iter()
                .map(|v| Line {
                    stratum: v.stratum.as_ref(),
                    numerator: v.numerator,
                    denominator: v.denominator,
                    value: v.value,
                    narrative: v.narrative.as_deref(),
                })
                .collect();
            let level = J::obj()
                .set("url", EXT_REPORTING_LEVEL)
                .set("valueCode", "trust");
            Some(build(
                catalogue,
                ind,
                trust,
                period,
                &lines,
                vec![level],
                date,
            ))
        })
        .collect()
}

/// One indicator MeasureReport per (indicator, ICB or region, period) in pooled values, with
/// completeness (trusts reported of trusts expected, for the total).
pub fn pooled_reports(catalogue: &Catalogue, values: &[PooledValue], date: &str) -> Vec<Value> {
    let mut by: BTreeMap<(&str, &str, &Period), Vec<&PooledValue>> = BTreeMap::new();
    for v in values {
        by.entry((&v.indicator, &v.organisation, &v.period))
            .or_default()
            .push(v);
    }
    by.into_iter()
        .filter_map(|((code, org, period), vs)| {
            let ind = catalogue.indicator(code)?;
            let total = vs.iter().find(|v| v.stratum.is_none()).or(vs.first())?;
            let mut parts = vec![
                J::obj()
                    .set("url", "reported")
                    .set("valueUnsignedInt", total.trusts_reported),
                J::obj()
                    .set("url", "expected")
                    .set("valueUnsignedInt", total.trusts_expected),
            ];
            parts.extend(total.missing.iter().map(|ods| {
                J::obj().set("url", "missing").set(
                    "valueIdentifier",
                    J::obj().set("system", ODS_ORG_SYSTEM).set("value", ods),
                )
            }));
            let completeness = J::obj()
                .set("url", EXT_COMPLETENESS)
                .set("extension", parts);
            let level = J::obj().set("url", EXT_REPORTING_LEVEL).set(
                "valueCode",
                match total.level {
                    super::pool::Level::Icb => "icb",
                    super::pool::Level::Region => "region",
                },
            );
            let lines: Vec<Line> = vs
                .iter()
                .map(|v| Line {
                    stratum: v.stratum.as_ref(),
                    numerator: v.numerator,
                    denominator: v.denominator,
                    value: v.value,
                    narrative: None,
                })
                .collect();
            Some(build(
                catalogue,
                ind,
                org,
                period,
                &lines,
                vec![level, completeness],
                date,
            ))
        })
        .collect()
}
