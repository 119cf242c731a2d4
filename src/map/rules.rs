//! The declarative mapping rules in `mappings/rules/*.toml`: parsing and the start-up checks.
//!
//! A rule file names one submitted measure (canonical URL and version range) and says which of
//! its groups become which indicator, which populations are numerator and denominator, the unit
//! of the submitted `measureScore`, and how strata are carried over or translated. Files may
//! also define named stratum translations (`[translation.<name>]`), used by any file.
//!
//! Everything is checked when loading: unknown indicators, measures, groups, population codes,
//! stratifiers, translations and target codes, and rules that overlap (the same group twice for
//! overlapping versions) or contradict each other (two groups feeding one indicator). Each problem
//! names its file and line. Must not: look at submissions (that is [`crate::map::engine`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::catalogue::{
    ANNEX1_MEASURE, Catalogue, INDICATOR_SYSTEM, POPULATION_CODES, SOURCE_MEASURE_SYSTEM,
};
use super::error::{Location, Problem, SourceFile};
use crate::fhir::CANONICAL_BASE;

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: Option<RawSource>,
    #[serde(default)]
    stratify: Option<Vec<Spanned<RawStratify>>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    translation: BTreeMap<String, Spanned<RawTranslation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    measure: S,
    versions: Option<S>,
    #[serde(default)]
    identity: bool,
    group_system: Option<String>,
    source_unit: Option<Spanned<SourceUnit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStratify {
    from: S,
    to: Option<S>,
    translate: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    group: S,
    indicator: S,
    numerator: Option<S>,
    denominator: Option<S>,
    source_unit: Option<Spanned<SourceUnit>>,
    stratify: Option<Vec<Spanned<RawStratify>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTranslation {
    from_system: String,
    to_system: String,
    map: BTreeMap<String, S>,
    default: Option<S>,
}

/// Unit of a submitted `measureScore`: what numerator / denominator was multiplied by.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceUnit {
    Fraction,
    Percent,
    #[serde(rename = "per-1000")]
    Per1000,
    #[serde(rename = "per-10000")]
    Per10000,
}

impl SourceUnit {
    pub fn multiplier(self) -> f64 {
        match self {
            SourceUnit::Fraction => 1.0,
            SourceUnit::Percent => 100.0,
            SourceUnit::Per1000 => 1000.0,
            SourceUnit::Per10000 => 10000.0,
        }
    }
}

/// A version range: `*`, or comparators joined by commas (`>=1.0.0, <2.0.0`, `=1.2`).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRange {
    text: String,
    low: Option<(Vec<u64>, bool)>,
    high: Option<(Vec<u64>, bool)>,
}

fn parse_version(v: &str) -> Option<Vec<u64>> {
    v.trim()
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<Vec<_>>>()
}

fn cmp_version(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

impl VersionRange {
    pub fn any() -> VersionRange {
        VersionRange {
            text: "*".into(),
            low: None,
            high: None,
        }
    }

    pub fn parse(text: &str) -> Result<VersionRange, String> {
        let mut r = VersionRange {
            text: text.trim().to_owned(),
            low: None,
            high: None,
        };
        if r.text.is_empty() || r.text == "*" {
            return Ok(r);
        }
        for part in text.split(',').map(str::trim) {
            let (op, v) = [">=", "<=", ">", "<", "="]
                .iter()
                .find_map(|op| part.strip_prefix(op).map(|v| (*op, v)))
                .ok_or_else(|| {
                    format!("`{part}`: expected a comparator (>=, >, <=, <, =) and a version")
                })?;
            let v = parse_version(v).ok_or_else(|| {
                format!("`{part}`: versions are dot-separated numbers, like 1.0.0")
            })?;
            match op {
                ">=" => r.low = Some((v, true)),
                ">" => r.low = Some((v, false)),
                "<=" => r.high = Some((v, true)),
                "<" => r.high = Some((v, false)),
                _ => {
                    r.low = Some((v.clone(), true));
                    r.high = Some((v, true));
                }
            }
        }
        if !r.overlaps(&VersionRange::any()) {
            return Err(format!("`{text}` matches no version"));
        }
        Ok(r)
    }

    /// Whether a submitted version is in the range. A submission that names no version matches
    /// (the engine notes it in the trace); a non-numeric version matches only `*`.
    pub fn matches(&self, version: Option<&str>) -> bool {
        let Some(v) = version else { return true };
        let Some(v) = parse_version(v) else {
            return self.low.is_none() && self.high.is_none();
        };
        let above = self
            .low
            .as_ref()
            .is_none_or(|(l, inc)| match cmp_version(&v, l) {
                Ordering::Greater => true,
                Ordering::Equal => *inc,
                Ordering::Less => false,
            });
        let below = self
            .high
            .as_ref()
            .is_none_or(|(h, inc)| match cmp_version(&v, h) {
                Ordering::Less => true,
                Ordering::Equal => *inc,
                Ordering::Greater => false,
            });
        above && below
    }

    /// Whether some version is in both ranges.
    pub fn overlaps(&self, other: &VersionRange) -> bool {
        let low = match (&self.low, &other.low) {
            (Some(a), Some(b)) => match cmp_version(&a.0, &b.0) {
                Ordering::Greater => Some(a.clone()),
                Ordering::Less => Some(b.clone()),
                Ordering::Equal => Some((a.0.clone(), a.1 && b.1)),
            },
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let high = match (&self.high, &other.high) {
            (Some(a), Some(b)) => match cmp_version(&a.0, &b.0) {
                Ordering::Less => Some(a.clone()),
                Ordering::Greater => Some(b.clone()),
                Ordering::Equal => Some((a.0.clone(), a.1 && b.1)),
            },
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        match (low, high) {
            (Some((l, li)), Some((h, hi))) => match cmp_version(&l, &h) {
                Ordering::Less => true,
                Ordering::Equal => li && hi,
                Ordering::Greater => false,
            },
            _ => true,
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How one submitted stratifier is carried into the indicator value.
#[derive(Debug, Clone, PartialEq)]
pub struct Stratify {
    /// Stratifier code in the submission.
    pub from: String,
    /// Stratifier code of the indicator value.
    pub to: String,
    /// Index into [`RuleSet::translations`].
    pub translation: Option<usize>,
}

/// A named stratum-code translation.
#[derive(Debug, Clone)]
pub struct Translation {
    pub name: String,
    pub at: Location,
    pub from_system: String,
    pub to_system: String,
    pub map: HashMap<String, String>,
    /// Code for source codes the map does not list; without it such strata are dropped (and
    /// reported), the totals are unaffected.
    pub default: Option<String>,
}

/// One compiled rule: a (measure, version range, group) becomes an indicator.
#[derive(Debug, Clone)]
pub struct Rule {
    pub at: Location,
    pub measure: String,
    pub versions: VersionRange,
    /// The code system group codes must carry (when a coding names one).
    pub group_system: String,
    pub group: String,
    pub indicator: String,
    pub numerator: String,
    pub denominator: Option<String>,
    pub source_unit: Option<SourceUnit>,
    /// `None`: every submitted stratifier the catalogue knows is carried over unchanged.
    pub stratify: Option<Vec<Stratify>>,
}

/// Every rule and translation, checked.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub translations: Vec<Translation>,
    by_measure: HashMap<String, Vec<usize>>,
}

impl RuleSet {
    /// Rules for a measure canonical URL (without version).
    pub fn for_measure(&self, url: &str) -> impl Iterator<Item = &Rule> {
        self.by_measure
            .get(url)
            .into_iter()
            .flatten()
            .map(|&i| &self.rules[i])
    }

    /// Parse and check rule files (path, text) against the catalogue.
    pub(crate) fn build(
        catalogue: &Catalogue,
        files: &[SourceFile],
    ) -> Result<RuleSet, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut parsed = Vec::new();
        for f in files {
            match f.parse::<RawFile>() {
                Ok(raw) => parsed.push((f, raw)),
                Err(p) => problems.push(p),
            }
        }

        // Translations first: any file may use any translation.
        let mut translations: Vec<Translation> = Vec::new();
        for (file, raw) in &parsed {
            for (name, t) in &raw.translation {
                let at = file.location(t.span().start);
                if let Some(prev) = translations.iter().find(|x| &x.name == name) {
                    problems.push(Problem {
                        at: at.clone(),
                        message: format!("translation `{name}` is already defined at {}", prev.at),
                    });
                    continue;
                }
                let tr = t.get_ref();
                let from_codes = catalogue.system_codes(&tr.from_system);
                let to_codes = catalogue.system_codes(&tr.to_system);
                let mut map = HashMap::new();
                for (k, v) in &tr.map {
                    if let Some(codes) = &from_codes
                        && !codes.contains(&k.as_str())
                    {
                        problems.push(file.problem(
                            &v.span(),
                            format!(
                                "translation `{name}`: `{k}` is not a code of {}",
                                tr.from_system
                            ),
                        ));
                    }
                    if let Some(codes) = &to_codes
                        && !codes.contains(&v.get_ref().as_str())
                    {
                        problems.push(file.problem(
                            &v.span(),
                            format!(
                                "translation `{name}`: unknown target code `{}` in {}",
                                v.get_ref(),
                                tr.to_system
                            ),
                        ));
                    }
                    map.insert(k.clone(), v.get_ref().clone());
                }
                if let (Some(d), Some(codes)) = (&tr.default, &to_codes)
                    && !codes.contains(&d.get_ref().as_str())
                {
                    problems.push(file.problem(
                        &d.span(),
                        format!(
                            "translation `{name}`: unknown default code `{}` in {}",
                            d.get_ref(),
                            tr.to_system
                        ),
                    ));
                }
                translations.push(Translation {
                    name: name.clone(),
                    at,
                    from_system: tr.from_system.clone(),
                    to_system: tr.to_system.clone(),
                    map,
                    default: tr.default.as_ref().map(|d| d.get_ref().clone()),
                });
            }
        }

        let mut rules: Vec<Rule> = Vec::new();
        for (file, raw) in &parsed {
            let Some(source) = &raw.source else {
                if !raw.rule.is_empty() || raw.stratify.is_some() {
                    problems.push(
                        file.problem(&(0..0), "rules need a [source] table naming the measure"),
                    );
                }
                continue;
            };
            let measure = source.measure.get_ref().trim_end_matches('/').to_owned();
            let versions = match &source.versions {
                None => VersionRange::any(),
                Some(v) => match VersionRange::parse(v.get_ref()) {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(file.problem(&v.span(), format!("versions {e}")));
                        VersionRange::any()
                    }
                },
            };
            // Our own measures are checked group by group; other canonicals (a trust's local
            // Measure) cannot be, but their indicators, populations and strata still are.
            let own = measure
                .strip_prefix(&format!("{CANONICAL_BASE}/Measure/"))
                .map(str::to_owned);
            let family = own.as_deref().and_then(|c| catalogue.family(c));
            let is_annex1 = own.as_deref() == Some(ANNEX1_MEASURE);
            if !measure.starts_with("http://")
                && !measure.starts_with("https://")
                && !measure.starts_with("urn:")
            {
                problems.push(file.problem(
                    &source.measure.span(),
                    format!("measure `{measure}` is not a canonical URL"),
                ));
            }
            if own.is_some() && family.is_none() && !is_annex1 {
                problems.push(file.problem(
                    &source.measure.span(),
                    format!(
                        "unknown measure `{measure}`: not pqom-annex1 nor a family in the catalogue"
                    ),
                ));
            }
            let group_system = source.group_system.clone().unwrap_or_else(|| {
                if is_annex1 {
                    INDICATOR_SYSTEM
                } else {
                    SOURCE_MEASURE_SYSTEM
                }
                .to_owned()
            });
            let file_stratify = raw
                .stratify
                .as_ref()
                .map(|s| compile_stratify(catalogue, &translations, file, s, &mut problems));

            let mut push = |r: Rule| rules.push(r);
            if source.identity {
                if !is_annex1 {
                    problems.push(file.problem(
                        &source.measure.span(),
                        "identity mapping is only for the pqom-annex1 Measure",
                    ));
                }
                if !raw.rule.is_empty() {
                    problems.push(file.problem(
                        &raw.rule[0].span(),
                        "an identity mapping takes no [[rule]]s",
                    ));
                }
                for i in &catalogue.indicators {
                    push(Rule {
                        at: file.location(source.measure.span().start),
                        measure: measure.clone(),
                        versions: versions.clone(),
                        group_system: group_system.clone(),
                        group: i.code.clone(),
                        indicator: i.code.clone(),
                        numerator: i.kind.count_population().to_owned(),
                        denominator: i.kind.has_denominator().then(|| "denominator".to_owned()),
                        source_unit: source_unit_for(i.kind),
                        stratify: file_stratify.clone(),
                    });
                }
                continue;
            }
            for r in &raw.rule {
                let at = file.location(r.span().start);
                let r = r.get_ref();
                let Some(ind) = catalogue.indicator(r.indicator.get_ref()) else {
                    problems.push(file.problem(
                        &r.indicator.span(),
                        format!("unknown indicator `{}`", r.indicator.get_ref()),
                    ));
                    continue;
                };
                if let Some(f) = family
                    && !f.groups.iter().any(|g| &g.code == r.group.get_ref())
                {
                    problems.push(file.problem(
                        &r.group.span(),
                        format!(
                            "unknown group code `{}`: not in the `{}` family (pqom-source-measure)",
                            r.group.get_ref(),
                            f.code
                        ),
                    ));
                }
                if is_annex1 && catalogue.indicator(r.group.get_ref()).is_none() {
                    problems.push(file.problem(
                        &r.group.span(),
                        format!(
                            "unknown group code `{}`: not a pqom-indicator code",
                            r.group.get_ref()
                        ),
                    ));
                }
                let numerator = r.numerator.as_ref().map_or_else(
                    || ind.kind.count_population().to_owned(),
                    |n| n.get_ref().clone(),
                );
                for p in r.numerator.iter().chain(r.denominator.iter()) {
                    if !POPULATION_CODES.contains(&p.get_ref().as_str()) {
                        problems.push(file.problem(
                            &p.span(),
                            format!(
                                "unknown population code `{}` (measure-population)",
                                p.get_ref()
                            ),
                        ));
                    }
                }
                let denominator = match (&r.denominator, ind.kind.has_denominator()) {
                    (Some(d), true) => Some(d.get_ref().clone()),
                    (None, true) => Some("denominator".to_owned()),
                    (Some(d), false) => {
                        problems.push(file.problem(
                            &d.span(),
                            format!(
                                "indicator `{}` is a {}; a rule for it takes no denominator",
                                ind.code,
                                ind.kind.code()
                            ),
                        ));
                        None
                    }
                    (None, false) => None,
                };
                if denominator.as_deref() == Some(numerator.as_str()) {
                    problems.push(file.problem(
                        &r.group.span(),
                        "numerator and denominator are the same population",
                    ));
                }
                let stratify = match &r.stratify {
                    Some(s) => Some(compile_stratify(
                        catalogue,
                        &translations,
                        file,
                        s,
                        &mut problems,
                    )),
                    None => file_stratify.clone(),
                };
                let source_unit = r
                    .source_unit
                    .as_ref()
                    .or(source.source_unit.as_ref())
                    .map(|u| *u.get_ref())
                    .or_else(|| source_unit_for(ind.kind));
                push(Rule {
                    at,
                    measure: measure.clone(),
                    versions: versions.clone(),
                    group_system: group_system.clone(),
                    group: r.group.get_ref().clone(),
                    indicator: ind.code.clone(),
                    numerator,
                    denominator,
                    source_unit,
                    stratify,
                });
            }
        }

        // Overlapping and contradictory rules.
        for (i, a) in rules.iter().enumerate() {
            for b in &rules[..i] {
                if a.measure != b.measure || !a.versions.overlaps(&b.versions) {
                    continue;
                }
                if a.group == b.group {
                    problems.push(Problem {
                        at: a.at.clone(),
                        message: format!(
                            "rule for group `{}` of {} (versions {}) overlaps the rule at {} (versions {})",
                            a.group, a.measure, a.versions, b.at, b.versions
                        ),
                    });
                } else if a.indicator == b.indicator {
                    problems.push(Problem {
                        at: a.at.clone(),
                        message: format!(
                            "contradictory rules: groups `{}` and `{}` of {} both give indicator `{}` (other rule at {})",
                            a.group, b.group, a.measure, a.indicator, b.at
                        ),
                    });
                }
            }
        }

        if !problems.is_empty() {
            problems.sort_by(|a, b| a.at.cmp(&b.at));
            return Err(problems);
        }
        let mut by_measure: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            by_measure.entry(r.measure.clone()).or_default().push(i);
        }
        Ok(RuleSet {
            rules,
            translations,
            by_measure,
        })
    }
}

/// The unit a submitted `measureScore` is assumed to have when a rule does not say.
fn source_unit_for(kind: super::catalogue::Kind) -> Option<SourceUnit> {
    use super::catalogue::Kind;
    match kind {
        Kind::Proportion | Kind::Ratio => Some(SourceUnit::Percent),
        Kind::RatePer1000 => Some(SourceUnit::Per1000),
        Kind::Count | Kind::Themes => None,
    }
}

fn compile_stratify(
    catalogue: &Catalogue,
    translations: &[Translation],
    file: &SourceFile,
    raw: &[Spanned<RawStratify>],
    problems: &mut Vec<Problem>,
) -> Vec<Stratify> {
    let mut out: Vec<Stratify> = Vec::new();
    for s in raw {
        let span = s.span();
        let s = s.get_ref();
        let from = s.from.get_ref().clone();
        let to =
            s.to.as_ref()
                .map_or_else(|| from.clone(), |t| t.get_ref().clone());
        if catalogue.stratifier(&from).is_none() {
            problems.push(file.problem(
                &s.from.span(),
                format!("unknown stratifier `{from}` (pqom-stratifier)"),
            ));
            continue;
        }
        let Some(target) = catalogue.stratifier(&to) else {
            let sp = s.to.as_ref().map_or(span.clone(), |t| t.span());
            problems
                .push(file.problem(&sp, format!("unknown stratifier `{to}` (pqom-stratifier)")));
            continue;
        };
        let translation = match &s.translate {
            Some(name) => match translations.iter().position(|t| &t.name == name.get_ref()) {
                Some(i) => {
                    if translations[i].to_system != target.system {
                        problems.push(file.problem(
                            &name.span(),
                            format!(
                                "translation `{}` produces {} but stratifier `{to}` is coded from {}",
                                name.get_ref(), translations[i].to_system, target.system
                            ),
                        ));
                    }
                    Some(i)
                }
                None => {
                    problems.push(file.problem(
                        &name.span(),
                        format!("unknown translation `{}`", name.get_ref()),
                    ));
                    None
                }
            },
            None => {
                if from != to {
                    problems.push(file.problem(
                        &span,
                        format!("stratifier `{from}` becomes `{to}`: that needs a `translate`"),
                    ));
                }
                None
            }
        };
        if out.iter().any(|o| o.to == to) {
            problems.push(file.problem(
                &span,
                format!("contradictory: stratifier `{to}` is produced twice"),
            ));
            continue;
        }
        out.push(Stratify {
            from,
            to,
            translation,
        });
    }
    out
}

/// Read every `*.toml` under `dir`, sorted by name (so problems come in a stable order).
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, super::MapLoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| super::MapLoadError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| SourceFile::read(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges_match_and_overlap() {
        let r = VersionRange::parse(">=1.0.0, <2.0.0").unwrap();
        assert!(r.matches(Some("1.0.0")));
        assert!(r.matches(Some("1.9")));
        assert!(!r.matches(Some("2.0.0")));
        assert!(!r.matches(Some("0.9")));
        assert!(r.matches(None));
        assert!(!r.matches(Some("2024-25")));
        let next = VersionRange::parse(">=2.0").unwrap();
        assert!(!r.overlaps(&next));
        assert!(VersionRange::parse("<=2.0").unwrap().overlaps(&next));
        assert!(VersionRange::any().overlaps(&r));
        assert!(VersionRange::parse(">2, <1").is_err());
        assert!(VersionRange::parse("~1").is_err());
    }
}
