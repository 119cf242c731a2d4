//! The Annex 1 indicator catalogue (`mappings/catalogue/annex1.toml`) and the FHIR resources
//! generated from it.
//!
//! Owns: what an indicator is (kind, unit, frequency, direction, target, breakdowns, sources),
//! the source-measure families trusts already compute, and the vocabularies of the coded
//! breakdowns. Generates the `pqom-indicator` and `pqom-source-measure` CodeSystems, one Measure
//! per indicator, the `pqom-annex1` Measure and one Measure per family ([`Catalogue::export`]).
//! Must not: know about submissions or rules (that is [`crate::map::rules`]) or do I/O beyond
//! reading the catalogue file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::error::{MapLoadError, Problem, SourceFile};
use super::json::{J, coding, concept};
use crate::fhir::CANONICAL_BASE;

pub const MEASURE_PROFILE: &str = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure";
pub const INDICATOR_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator";
pub const SOURCE_MEASURE_SYSTEM: &str =
    "https://fhir.pqom-gateway.org/CodeSystem/pqom-source-measure";
pub const STRATIFIER_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-stratifier";
pub const THEME_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-theme";
pub const DATA_SOURCE_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-data-source";
pub const POPULATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
pub const SCORING_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
pub const IMPROVEMENT_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";
pub const ETHNIC_CATEGORY_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland";
pub const IMD_DECILE_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/imd-decile";
/// Extensions on the `pqom-measure` profile (defined under `{base}/StructureDefinition/`).
pub const EXT_FREQUENCY: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure-frequency";
pub const EXT_TARGET: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure-target";
pub const EXT_UNIT: &str = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure-unit";
pub const EXT_KIND: &str = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure-kind";
pub const EXT_DATA_SOURCE: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure-data-source";
/// FHIR R5 `Measure.group.scoring` carried back to R4 (cross-version extension): the
/// `pqom-annex1` Measure mixes proportions, rates and counts, which R4 can only say per group.
pub const EXT_GROUP_SCORING: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Measure.group.scoring";
/// The Measure trusts that compute indicators natively report against.
pub const ANNEX1_MEASURE: &str = "pqom-annex1";

/// Population codes of the FHIR measure-population CodeSystem.
pub const POPULATION_CODES: &[&str] = &[
    "initial-population",
    "numerator",
    "numerator-exclusion",
    "denominator",
    "denominator-exclusion",
    "denominator-exception",
    "measure-population",
    "measure-population-exclusion",
    "measure-observation",
];

/// NHS ethnic category codes (England), as in the UK Core CodeSystem.
pub const ETHNIC_CATEGORY_CODES: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z", "99",
];

/// IMD decile codes (`{base}/CodeSystem/imd-decile`, docs/CONVENTIONS.md).
pub const IMD_DECILE_CODES: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "10",
    "resident-elsewhere",
    "pseudo-postcode",
    "unknown",
];

// ----------------------------------------------------------------------------------------------
// Public model
// ----------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Proportion,
    #[serde(rename = "rate-per-1000")]
    RatePer1000,
    Ratio,
    Count,
    Themes,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::Proportion => "proportion",
            Kind::RatePer1000 => "rate-per-1000",
            Kind::Ratio => "ratio",
            Kind::Count => "count",
            Kind::Themes => "themes",
        }
    }

    /// Whether values are a count over a denominator (else a plain count).
    pub fn has_denominator(self) -> bool {
        !matches!(self, Kind::Count | Kind::Themes)
    }

    /// What numerator / denominator is multiplied by to give the value.
    pub fn multiplier(self) -> f64 {
        match self {
            Kind::RatePer1000 => 1000.0,
            Kind::Proportion | Kind::Ratio => 100.0,
            Kind::Count | Kind::Themes => 1.0,
        }
    }

    /// FHIR `measure-scoring` code.
    pub fn scoring(self) -> &'static str {
        match self {
            // A rate per 1,000 here always has its numerator inside its denominator.
            Kind::Proportion | Kind::RatePer1000 => "proportion",
            Kind::Ratio => "ratio",
            Kind::Count | Kind::Themes => "cohort",
        }
    }

    /// The population that carries the count of a count or themes indicator.
    pub fn count_population(self) -> &'static str {
        if self.has_denominator() {
            "numerator"
        } else {
            "initial-population"
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    Monthly,
    Quarterly,
    Annual,
}

impl Frequency {
    pub fn code(self) -> &'static str {
        match self {
            Frequency::Monthly => "monthly",
            Frequency::Quarterly => "quarterly",
            Frequency::Annual => "annual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Increase,
    Decrease,
    Neutral,
}

impl Direction {
    pub fn code(self) -> &'static str {
        match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Neutral => "neutral",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub comparator: Comparator,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Comparator {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
}

impl Comparator {
    pub fn code(self) -> &'static str {
        match self {
            Comparator::Ge => ">=",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Lt => "<",
        }
    }
}

/// One Annex 1 indicator.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub code: String,
    pub name: String,
    pub themes: Vec<String>,
    pub kind: Kind,
    pub frequency: Frequency,
    pub direction: Direction,
    pub numerator: String,
    pub denominator: Option<String>,
    pub unit: String,
    pub target: Option<Target>,
    pub breakdowns: Vec<String>,
    pub sources: Vec<String>,
}

/// A breakdown: a stratifier code and the code system of its strata.
#[derive(Debug, Clone)]
pub struct Stratifier {
    pub code: String,
    pub display: String,
    pub system: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    pub code: String,
    pub display: String,
}

/// A small CodeSystem the catalogue defines (themes, harm levels, ...).
#[derive(Debug, Clone)]
pub struct Vocabulary {
    pub id: String,
    pub url: String,
    pub title: String,
    pub description: String,
    pub concepts: Vec<Concept>,
}

/// A group of a source-measure family (a `pqom-source-measure` code).
#[derive(Debug, Clone)]
pub struct SourceGroup {
    pub code: String,
    pub name: String,
    pub numerator: String,
    pub denominator: Option<String>,
    pub unit: String,
}

/// A family of measures trusts already compute, published as `{base}/Measure/{code}`.
#[derive(Debug, Clone)]
pub struct Family {
    pub code: String,
    pub name: String,
    pub source: String,
    pub frequency: Frequency,
    pub groups: Vec<SourceGroup>,
}

/// The loaded, checked catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub version: String,
    pub publisher: String,
    pub date: String,
    pub stratifiers: Vec<Stratifier>,
    pub vocabularies: Vec<Vocabulary>,
    pub indicators: Vec<Indicator>,
    pub families: Vec<Family>,
    by_code: BTreeMap<String, usize>,
}

// ----------------------------------------------------------------------------------------------
// File shape
// ----------------------------------------------------------------------------------------------

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: String,
    publisher: String,
    date: String,
    #[serde(default)]
    stratifier: Vec<RawStratifier>,
    #[serde(default)]
    vocabulary: Vec<RawVocabulary>,
    #[serde(default)]
    indicator: Vec<RawIndicator>,
    #[serde(default)]
    family: Vec<RawFamily>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStratifier {
    code: S,
    display: String,
    system: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVocabulary {
    id: S,
    url: Option<String>,
    title: String,
    description: String,
    concept: Vec<Spanned<Concept>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    code: S,
    name: String,
    themes: Vec<S>,
    kind: Kind,
    frequency: Frequency,
    direction: Direction,
    numerator: String,
    denominator: Option<Spanned<String>>,
    unit: String,
    target: Option<Target>,
    breakdowns: Vec<S>,
    sources: Vec<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    code: S,
    name: String,
    source: S,
    frequency: Frequency,
    group: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    code: S,
    name: String,
    numerator: String,
    denominator: Option<String>,
    unit: String,
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Catalogue {
    /// Load and check `path` (normally `mappings/catalogue/annex1.toml`).
    pub fn load(path: &Path) -> Result<Catalogue, MapLoadError> {
        let file = SourceFile::read(path)?;
        Catalogue::from_source(&file).map_err(MapLoadError::Invalid)
    }

    /// Parse and check catalogue text (`name` is used in problem locations).
    pub fn parse(name: &Path, text: &str) -> Result<Catalogue, MapLoadError> {
        let file = SourceFile::new(name, text.to_owned());
        Catalogue::from_source(&file).map_err(MapLoadError::Invalid)
    }

    pub(crate) fn from_source(file: &SourceFile) -> Result<Catalogue, Vec<Problem>> {
        let raw: RawCatalogue = file.parse().map_err(|p| vec![p])?;
        let mut problems = Vec::new();

        let mut vocab_ids = BTreeSet::new();
        let mut vocabularies = Vec::new();
        for v in raw.vocabulary {
            if !valid_code(v.id.get_ref()) || !vocab_ids.insert(v.id.get_ref().clone()) {
                problems.push(file.problem(
                    &v.id.span(),
                    format!("vocabulary id `{}` is invalid or repeated", v.id.get_ref()),
                ));
            }
            let mut seen = BTreeSet::new();
            for c in &v.concept {
                if !seen.insert(c.get_ref().code.clone()) {
                    problems.push(file.problem(
                        &c.span(),
                        format!(
                            "code `{}` repeated in vocabulary `{}`",
                            c.get_ref().code,
                            v.id.get_ref()
                        ),
                    ));
                }
            }
            let id = v.id.into_inner();
            vocabularies.push(Vocabulary {
                url: v
                    .url
                    .unwrap_or_else(|| format!("{CANONICAL_BASE}/CodeSystem/pqom-{id}")),
                id,
                title: v.title,
                description: v.description,
                concepts: v.concept.into_iter().map(Spanned::into_inner).collect(),
            });
        }
        let vocab_codes = |id: &str| -> BTreeSet<String> {
            vocabularies
                .iter()
                .find(|v| v.id == id)
                .map(|v| v.concepts.iter().map(|c| c.code.clone()).collect())
                .unwrap_or_default()
        };
        let themes = vocab_codes("theme");
        let sources = vocab_codes("data-source");
        for needed in ["theme", "data-source"] {
            if !vocab_ids.contains(needed) {
                problems.push(file.problem(&(0..0), format!("vocabulary `{needed}` is missing")));
            }
        }

        let mut stratifiers = Vec::new();
        for s in raw.stratifier {
            if !valid_code(s.code.get_ref())
                || stratifiers
                    .iter()
                    .any(|x: &Stratifier| &x.code == s.code.get_ref())
            {
                problems.push(file.problem(
                    &s.code.span(),
                    format!(
                        "stratifier code `{}` is invalid or repeated",
                        s.code.get_ref()
                    ),
                ));
            }
            stratifiers.push(Stratifier {
                code: s.code.into_inner(),
                display: s.display,
                system: s.system,
            });
        }

        let mut indicators = Vec::new();
        let mut by_code = BTreeMap::new();
        for i in raw.indicator {
            let code = i.code.get_ref().clone();
            if !valid_code(&code) {
                problems.push(file.problem(
                    &i.code.span(),
                    format!(
                        "indicator code `{code}` must be lower-case letters, digits and hyphens"
                    ),
                ));
            }
            if by_code.insert(code.clone(), indicators.len()).is_some() {
                problems.push(
                    file.problem(&i.code.span(), format!("indicator `{code}` defined twice")),
                );
            }
            if i.themes.is_empty() {
                problems
                    .push(file.problem(&i.code.span(), format!("indicator `{code}` has no theme")));
            }
            for t in &i.themes {
                if !themes.contains(t.get_ref()) {
                    problems.push(file.problem(
                        &t.span(),
                        format!("unknown theme `{}` (vocabulary `theme`)", t.get_ref()),
                    ));
                }
            }
            for s in &i.sources {
                if !sources.contains(s.get_ref()) {
                    problems.push(file.problem(
                        &s.span(),
                        format!(
                            "unknown data source `{}` (vocabulary `data-source`)",
                            s.get_ref()
                        ),
                    ));
                }
            }
            for b in &i.breakdowns {
                if !stratifiers.iter().any(|s| &s.code == b.get_ref()) {
                    problems.push(file.problem(
                        &b.span(),
                        format!(
                            "unknown breakdown `{}`: not a [[stratifier]] code",
                            b.get_ref()
                        ),
                    ));
                }
            }
            match (&i.denominator, i.kind.has_denominator()) {
                (None, true) => problems.push(file.problem(
                    &i.code.span(),
                    format!(
                        "indicator `{code}` is a {} and needs a denominator",
                        i.kind.code()
                    ),
                )),
                (Some(d), false) => problems.push(file.problem(
                    &d.span(),
                    format!(
                        "indicator `{code}` is a {} and takes no denominator",
                        i.kind.code()
                    ),
                )),
                _ => {}
            }
            indicators.push(Indicator {
                code,
                name: i.name,
                themes: i.themes.into_iter().map(Spanned::into_inner).collect(),
                kind: i.kind,
                frequency: i.frequency,
                direction: i.direction,
                numerator: i.numerator,
                denominator: i.denominator.map(Spanned::into_inner),
                unit: i.unit,
                target: i.target,
                breakdowns: i.breakdowns.into_iter().map(Spanned::into_inner).collect(),
                sources: i.sources.into_iter().map(Spanned::into_inner).collect(),
            });
        }

        let mut families = Vec::new();
        let mut group_codes = BTreeSet::new();
        for f in raw.family {
            if !valid_code(f.code.get_ref())
                || by_code.contains_key(f.code.get_ref())
                || f.code.get_ref() == ANNEX1_MEASURE
            {
                problems.push(file.problem(
                    &f.code.span(),
                    format!(
                        "family code `{}` is invalid or clashes with an indicator Measure",
                        f.code.get_ref()
                    ),
                ));
            }
            if families
                .iter()
                .any(|x: &Family| &x.code == f.code.get_ref())
            {
                problems.push(file.problem(
                    &f.code.span(),
                    format!("family `{}` defined twice", f.code.get_ref()),
                ));
            }
            if !sources.contains(f.source.get_ref()) {
                problems.push(file.problem(
                    &f.source.span(),
                    format!("unknown data source `{}`", f.source.get_ref()),
                ));
            }
            let mut groups = Vec::new();
            for g in f.group {
                if !valid_code(g.code.get_ref()) || !group_codes.insert(g.code.get_ref().clone()) {
                    problems.push(file.problem(
                        &g.code.span(),
                        format!(
                            "source-measure code `{}` is invalid or repeated",
                            g.code.get_ref()
                        ),
                    ));
                }
                groups.push(SourceGroup {
                    code: g.code.into_inner(),
                    name: g.name,
                    numerator: g.numerator,
                    denominator: g.denominator,
                    unit: g.unit,
                });
            }
            families.push(Family {
                code: f.code.into_inner(),
                name: f.name,
                source: f.source.into_inner(),
                frequency: f.frequency,
                groups,
            });
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Catalogue {
            version: raw.version,
            publisher: raw.publisher,
            date: raw.date,
            stratifiers,
            vocabularies,
            indicators,
            families,
            by_code,
        })
    }

    pub fn indicator(&self, code: &str) -> Option<&Indicator> {
        self.by_code.get(code).map(|&i| &self.indicators[i])
    }

    pub fn stratifier(&self, code: &str) -> Option<&Stratifier> {
        self.stratifiers.iter().find(|s| s.code == code)
    }

    pub fn family(&self, code: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.code == code)
    }

    /// The canonical URL of the Measure for an indicator or family code.
    pub fn measure_url(code: &str) -> String {
        format!("{CANONICAL_BASE}/Measure/{code}")
    }

    /// Codes of a code system, when the catalogue knows them (its vocabularies, ethnic category,
    /// IMD decile); `None` for systems it cannot check.
    pub fn system_codes(&self, system: &str) -> Option<Vec<&str>> {
        match system {
            ETHNIC_CATEGORY_SYSTEM => Some(ETHNIC_CATEGORY_CODES.to_vec()),
            IMD_DECILE_SYSTEM => Some(IMD_DECILE_CODES.to_vec()),
            _ => self
                .vocabularies
                .iter()
                .find(|v| v.url == system)
                .map(|v| v.concepts.iter().map(|c| c.code.as_str()).collect()),
        }
    }

    fn display(&self, vocabulary: &str, code: &str) -> Option<&str> {
        self.vocabularies
            .iter()
            .find(|v| v.id == vocabulary)
            .and_then(|v| v.concepts.iter().find(|c| c.code == code))
            .map(|c| c.display.as_str())
    }

    // ------------------------------------------------------------------------------------------
    // Generation
    // ------------------------------------------------------------------------------------------

    /// Every generated resource as (file name, pretty JSON), in a stable order.
    pub fn export(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "CodeSystem-pqom-indicator.json".to_owned(),
                self.indicator_code_system().to_pretty(),
            ),
            (
                "CodeSystem-pqom-source-measure.json".to_owned(),
                self.source_measure_code_system().to_pretty(),
            ),
        ];
        for v in &self.vocabularies {
            let id = v.url.rsplit('/').next().unwrap_or(&v.id);
            out.push((
                format!("CodeSystem-{id}.json"),
                self.vocabulary_code_system(v).to_pretty(),
            ));
        }
        out.push((
            format!("Measure-{ANNEX1_MEASURE}.json"),
            self.annex1_measure().to_pretty(),
        ));
        for f in &self.families {
            out.push((
                format!("Measure-{}.json", f.code),
                self.family_measure(f).to_pretty(),
            ));
        }
        for i in &self.indicators {
            out.push((
                format!("Measure-{}.json", i.code),
                self.indicator_measure(i).to_pretty(),
            ));
        }
        out
    }

    /// The catalogue Measures as JSON values (for `GET /fhir/Measure`).
    pub fn measures(&self) -> Vec<serde_json::Value> {
        let mut v = vec![self.annex1_measure().to_value()];
        v.extend(
            self.families
                .iter()
                .map(|f| self.family_measure(f).to_value()),
        );
        v.extend(
            self.indicators
                .iter()
                .map(|i| self.indicator_measure(i).to_value()),
        );
        v
    }

    fn code_system_head(
        &self,
        id: &str,
        url: &str,
        name: &str,
        title: &str,
        description: &str,
    ) -> J {
        J::obj()
            .set("resourceType", "CodeSystem")
            .set("id", id)
            .set("url", url)
            .set("version", &self.version)
            .set("name", name)
            .set("title", title)
            .set("status", "active")
            .set("experimental", false)
            .set("date", &self.date)
            .set("publisher", &self.publisher)
            .set("description", description)
            .set("caseSensitive", true)
    }

    fn indicator_code_system(&self) -> J {
        let property = |code: &str, desc: &str, ty: &str| {
            J::obj()
                .set("code", code)
                .set("description", desc)
                .set("type", ty)
        };
        let concepts = self
            .indicators
            .iter()
            .map(|i| {
                let mut props = Vec::new();
                let p = |code: &str, v: &str| J::obj().set("code", code).set("valueCode", v);
                for t in &i.themes {
                    props.push(p("theme", t));
                }
                props.push(p("kind", i.kind.code()));
                props.push(p("frequency", i.frequency.code()));
                props.push(p("improvement-direction", i.direction.code()));
                for s in &i.sources {
                    props.push(p("data-source", s));
                }
                for b in &i.breakdowns {
                    props.push(p("breakdown", b));
                }
                J::obj()
                    .set("code", &i.code)
                    .set("display", &i.name)
                    .set("definition", indicator_definition(i))
                    .set("property", props)
            })
            .collect::<Vec<_>>();
        self.code_system_head(
            "pqom-indicator",
            INDICATOR_SYSTEM,
            "PqomIndicator",
            "PQOM Annex 1 indicators",
            "The data items of Annex 1 of NHS England's Perinatal Quality Oversight Model (PRN01692), including the board-level minimum list, as indicators. Generated from mappings/catalogue/annex1.toml; each has a Measure at https://fhir.pqom-gateway.org/Measure/{code}.",
        )
        .set("content", "complete")
        .set("count", self.indicators.len())
        .set(
            "property",
            vec![
                property("theme", "Annex 1 theme (pqom-theme); repeats", "code"),
                property("kind", "proportion | rate-per-1000 | ratio | count | themes", "code"),
                property("frequency", "Reporting frequency: monthly | quarterly | annual", "code"),
                property("improvement-direction", "increase | decrease | neutral", "code"),
                property("data-source", "Where the counts come from (pqom-data-source); repeats", "code"),
                property("breakdown", "Stratifier the indicator is reported by (pqom-stratifier); repeats", "code"),
            ],
        )
        .set("concept", concepts)
    }

    fn source_measure_code_system(&self) -> J {
        let concepts = self
            .families
            .iter()
            .flat_map(|f| {
                f.groups.iter().map(move |g| {
                    let def = match &g.denominator {
                        Some(d) => format!(
                            "{}. Numerator: {}. Denominator: {}. Unit: {}.",
                            g.name, g.numerator, d, g.unit
                        ),
                        None => format!("{}. Count: {}. Unit: {}.", g.name, g.numerator, g.unit),
                    };
                    J::obj()
                        .set("code", &g.code)
                        .set("display", &g.name)
                        .set("definition", def)
                        .set(
                            "property",
                            vec![J::obj().set("code", "family").set("valueCode", &f.code)],
                        )
                })
            })
            .collect::<Vec<_>>();
        let count = concepts.len();
        self.code_system_head(
            "pqom-source-measure",
            SOURCE_MEASURE_SYSTEM,
            "PqomSourceMeasure",
            "PQOM source measures",
            "Group codes of the measure families trusts already compute (MSDS CQIM, NNAP, MBRRACE-UK, staffing, training, FFT, MIS, surveys, patient safety events). Each family is a Measure at https://fhir.pqom-gateway.org/Measure/{family}; mappings/rules/ turn its groups into PQOM indicators.",
        )
        .set("content", "complete")
        .set("count", count)
        .set(
            "property",
            vec![J::obj()
                .set("code", "family")
                .set("description", "The source-measure family (Measure id) the group belongs to")
                .set("type", "code")],
        )
        .set("concept", concepts)
    }

    fn vocabulary_code_system(&self, v: &Vocabulary) -> J {
        let id = v.url.rsplit('/').next().unwrap_or(&v.id).to_owned();
        self.code_system_head(&id, &v.url, &pascal(&id), &v.title, &v.description)
            .set("content", "complete")
            .set("count", v.concepts.len())
            .set(
                "concept",
                v.concepts
                    .iter()
                    .map(|c| J::obj().set("code", &c.code).set("display", &c.display))
                    .collect::<Vec<_>>(),
            )
    }

    fn measure_head(&self, code: &str, title: &str, description: &str, extensions: Vec<J>) -> J {
        J::obj()
            .set("resourceType", "Measure")
            .set("id", code)
            .set(
                "meta",
                J::obj().set("profile", vec![J::from(MEASURE_PROFILE)]),
            )
            .set_arr("extension", extensions)
            .set("url", Catalogue::measure_url(code))
            .set("version", &self.version)
            .set("name", pascal(code))
            .set("title", title)
            .set("status", "active")
            .set("experimental", false)
            .set("date", &self.date)
            .set("publisher", &self.publisher)
            .set("description", description)
    }

    fn population(code: &str, display: &str, definition: &str) -> J {
        J::obj()
            .set("code", concept(POPULATION_SYSTEM, code, Some(display)))
            .set("description", definition)
            .set(
                "criteria",
                J::obj()
                    .set("language", "text/plain")
                    .set("expression", definition),
            )
    }

    fn indicator_group(&self, i: &Indicator, with_scoring: bool) -> J {
        let mut pops = Vec::new();
        if i.kind.has_denominator() {
            pops.push(Self::population("numerator", "Numerator", &i.numerator));
            if let Some(d) = &i.denominator {
                pops.push(Self::population("denominator", "Denominator", d));
            }
        } else {
            pops.push(Self::population(
                "initial-population",
                "Initial Population",
                &i.numerator,
            ));
        }
        let stratifiers = i
            .breakdowns
            .iter()
            .filter_map(|b| self.stratifier(b))
            .map(|s| {
                J::obj()
                    .set(
                        "code",
                        concept(STRATIFIER_SYSTEM, &s.code, Some(&s.display)),
                    )
                    .set("description", format!("Strata coded from {}", s.system))
            })
            .collect::<Vec<_>>();
        let scoring = with_scoring.then(|| {
            vec![J::obj().set("url", EXT_GROUP_SCORING).set(
                "valueCodeableConcept",
                concept(SCORING_SYSTEM, i.kind.scoring(), None),
            )]
        });
        J::obj()
            .set_arr("extension", scoring.unwrap_or_default())
            .set("code", concept(INDICATOR_SYSTEM, &i.code, Some(&i.name)))
            .set("description", format!("{} ({})", i.name, i.unit))
            .set("population", pops)
            .set_arr("stratifier", stratifiers)
    }

    fn indicator_measure(&self, i: &Indicator) -> J {
        let mut ext = vec![
            J::obj()
                .set("url", EXT_KIND)
                .set("valueCode", i.kind.code()),
            J::obj()
                .set("url", EXT_FREQUENCY)
                .set("valueCode", i.frequency.code()),
            J::obj().set("url", EXT_UNIT).set("valueString", &i.unit),
        ];
        if let Some(t) = &i.target {
            let q = J::obj()
                .set("value", t.value)
                .set("comparator", t.comparator.code());
            let q = if matches!(i.kind, Kind::Proportion | Kind::Ratio) {
                q.set("unit", "%")
                    .set("system", "http://unitsofmeasure.org")
                    .set("code", "%")
            } else {
                q.set("unit", &i.unit)
            };
            ext.push(J::obj().set("url", EXT_TARGET).set("valueQuantity", q));
        }
        for s in &i.sources {
            ext.push(J::obj().set("url", EXT_DATA_SOURCE).set(
                "valueCoding",
                coding(DATA_SOURCE_SYSTEM, s, self.display("data-source", s)),
            ));
        }
        let topics = i
            .themes
            .iter()
            .map(|t| concept(THEME_SYSTEM, t, self.display("theme", t)))
            .collect::<Vec<_>>();
        let improvement = match i.direction {
            Direction::Neutral => None,
            d => Some(concept(IMPROVEMENT_SYSTEM, d.code(), None)),
        };
        self.measure_head(&i.code, &i.name, &indicator_definition(i), ext)
            .set("topic", topics)
            .set("scoring", concept(SCORING_SYSTEM, i.kind.scoring(), None))
            .set(
                "rateAggregation",
                "Pooled values (ICB, region) sum trusts' numerators and denominators and recompute the rate; rates are never averaged.",
            )
            .set_opt("improvementNotation", improvement)
            .set("group", vec![self.indicator_group(i, false)])
    }

    fn annex1_measure(&self) -> J {
        self.measure_head(
            ANNEX1_MEASURE,
            "PQOM Annex 1 indicators",
            "All PQOM Annex 1 indicators in one Measure, one group per indicator (group.code from pqom-indicator). Trusts that compute the indicators natively report against this Measure; the gateway maps it by identity.",
            vec![],
        )
        .set(
            "rateAggregation",
            "Pooled values sum trusts' numerators and denominators per indicator and stratum; rates are never averaged.",
        )
        .set(
            "group",
            self.indicators
                .iter()
                .map(|i| self.indicator_group(i, true))
                .collect::<Vec<_>>(),
        )
    }

    fn family_measure(&self, f: &Family) -> J {
        let all_ratios = f.groups.iter().all(|g| g.denominator.is_some());
        let groups = f
            .groups
            .iter()
            .map(|g| {
                let mut pops = Vec::new();
                match &g.denominator {
                    Some(d) => {
                        pops.push(Self::population("numerator", "Numerator", &g.numerator));
                        pops.push(Self::population("denominator", "Denominator", d));
                    }
                    None => pops.push(Self::population(
                        "initial-population",
                        "Initial Population",
                        &g.numerator,
                    )),
                }
                J::obj()
                    .set(
                        "code",
                        concept(SOURCE_MEASURE_SYSTEM, &g.code, Some(&g.name)),
                    )
                    .set("description", format!("{} ({})", g.name, g.unit))
                    .set("population", pops)
            })
            .collect::<Vec<_>>();
        self.measure_head(
            &f.code,
            &f.name,
            &format!(
                "{}: the measures trusts already compute, as submitted to the gateway. Groups are coded from pqom-source-measure; mappings/rules/ turn them into PQOM Annex 1 indicators.",
                f.name
            ),
            vec![
                J::obj().set("url", EXT_FREQUENCY).set("valueCode", f.frequency.code()),
                J::obj().set("url", EXT_DATA_SOURCE).set(
                    "valueCoding",
                    coding(DATA_SOURCE_SYSTEM, &f.source, self.display("data-source", &f.source)),
                ),
            ],
        )
        .set(
            "scoring",
            concept(SCORING_SYSTEM, if all_ratios { "proportion" } else { "cohort" }, None),
        )
        .set("group", groups)
    }
}

fn indicator_definition(i: &Indicator) -> String {
    match &i.denominator {
        Some(d) => format!(
            "{}. Numerator: {} Denominator: {} Unit: {}.",
            i.name, i.numerator, d, i.unit
        ),
        None => format!("{}. Count: {} Unit: {}.", i.name, i.numerator, i.unit),
    }
}

/// `stillbirth-rate` -> `StillbirthRate` (a FHIR computable name).
fn pascal(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/catalogue/annex1.toml");
        Catalogue::load(&path).expect("the committed catalogue loads")
    }

    #[test]
    fn every_indicator_code_fixed_in_the_conventions_is_in_the_catalogue() {
        let c = catalogue();
        for code in [
            "stillbirth-rate",
            "neonatal-death-rate",
            "pph-1500ml",
            "oasi-tears",
            "preterm-birth",
            "smoking-at-delivery",
            "caesarean-robson-1",
            "caesarean-robson-2",
            "caesarean-robson-5",
            "apgar-low-5min",
            "vbac",
            "nnap-birth-nicu-centre",
            "nnap-antenatal-steroids",
            "nnap-magnesium-sulphate",
            "nnap-deferred-cord-clamping",
            "nnap-normal-temperature",
            "nnap-breast-milk",
            "training-compliance",
            "midwife-staffing-fill-rate",
            "obstetric-cover-delivery-suite",
            "fft-maternity-positive",
            "mis-safety-actions-met",
            "perinatal-deaths-reviewed",
            "mnsi-referrals",
            "psi-themes",
            "service-user-feedback-themes",
            "staff-feedback-themes",
            "external-concerns",
            "coroner-reg28",
            "midwife-recommend-trust",
            "og-trainee-supervision",
        ] {
            assert!(c.indicator(code).is_some(), "{code} missing");
        }
    }

    #[test]
    fn board_level_minimum_items_and_every_theme_are_covered() {
        let c = catalogue();
        for theme in [
            "listening-to-women-and-families",
            "workforce",
            "culture-of-learning-safety-and-support",
            "structures-and-standards",
            "board-level-minimum",
        ] {
            assert!(
                c.indicators
                    .iter()
                    .any(|i| i.themes.iter().any(|t| t == theme)),
                "{theme}"
            );
        }
        assert_eq!(
            c.indicator("training-compliance")
                .unwrap()
                .target
                .as_ref()
                .unwrap()
                .value,
            90.0
        );
        // Qualitative items are coded by category and harm level.
        let psi = c.indicator("psi-themes").unwrap();
        assert_eq!(psi.kind, Kind::Themes);
        assert!(psi.breakdowns.contains(&"harm-level".to_owned()));
    }

    #[test]
    fn unknown_theme_is_reported_with_its_line() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/catalogue/annex1.toml"),
        )
        .unwrap()
        .replacen(
            "themes = [\"structures-and-standards\", \"board-level-minimum\"]",
            "themes = [\"structures\"]",
            1,
        );
        let line = text
            .lines()
            .position(|l| l.contains("themes = [\"structures\"]"))
            .unwrap()
            + 1;
        let err = Catalogue::parse(Path::new("annex1.toml"), &text).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.at.line, line);
        assert!(
            p.message.contains("unknown theme `structures`"),
            "{}",
            p.message
        );
    }

    #[test]
    fn a_count_with_a_denominator_is_refused() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/catalogue/annex1.toml"),
        )
        .unwrap()
        .replacen(
            "unit = \"complaints\"",
            "unit = \"complaints\"\ndenominator = \"x\"",
            1,
        );
        let err = Catalogue::parse(Path::new("annex1.toml"), &text).unwrap_err();
        assert!(err.to_string().contains("takes no denominator"), "{err}");
    }

    #[test]
    fn indicator_measure_has_the_pqom_measure_shape() {
        let c = catalogue();
        let m = c
            .indicator_measure(c.indicator("training-compliance").unwrap())
            .to_value();
        assert_eq!(
            m["url"],
            "https://fhir.pqom-gateway.org/Measure/training-compliance"
        );
        assert_eq!(m["status"], "active");
        assert_eq!(m["scoring"]["coding"][0]["code"], "proportion");
        assert_eq!(m["improvementNotation"]["coding"][0]["code"], "increase");
        let g = &m["group"][0];
        assert_eq!(g["code"]["coding"][0]["system"], INDICATOR_SYSTEM);
        assert_eq!(g["population"][0]["code"]["coding"][0]["code"], "numerator");
        assert_eq!(
            g["population"][1]["code"]["coding"][0]["code"],
            "denominator"
        );
        assert_eq!(
            g["stratifier"][0]["code"]["coding"][0]["code"],
            "staff-group"
        );
        let target = m["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == EXT_TARGET)
            .unwrap();
        assert_eq!(target["valueQuantity"]["value"], 90);
        assert_eq!(target["valueQuantity"]["comparator"], ">=");
    }

    #[test]
    fn neutral_direction_has_no_improvement_notation() {
        let c = catalogue();
        let m = c
            .indicator_measure(c.indicator("caesarean-robson-1").unwrap())
            .to_value();
        assert!(m.get("improvementNotation").is_none());
    }
}
