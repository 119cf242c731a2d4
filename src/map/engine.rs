//! The mapping engine: a submitted MeasureReport (alone or in a message Bundle) in, canonical
//! indicator values out, with the rule that produced each and everything it could not map.
//!
//! Pure and infallible: a submission always maps to *something* (possibly nothing but unmapped
//! groups and issues). Rates are recomputed from counts; a submitted `measureScore` is only
//! compared with the counts. Must not: store, forward or validate structure (validation ran first).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::catalogue::{Catalogue, POPULATION_SYSTEM};
use super::error::{MapLoadError, SourceFile};
use super::rules::{self, Rule, RuleSet, Stratify};
use crate::fhir::{Issue, IssueType, ODS_ORG_SYSTEM};

/// Extension carrying the narrative of a qualitative item (themes and actions) on a group
/// (`pqom-group-narrative`, markdown).
pub const EXT_NARRATIVE: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/pqom-group-narrative";

/// A reporting period, as submitted (FHIR dateTime strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Period {
    pub start: String,
    pub end: String,
}

/// One stratum of an indicator value: the stratifier and the stratum code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StratumKey {
    pub stratifier: String,
    pub system: String,
    pub code: String,
}

/// One canonical indicator value: an indicator for a trust and period, in total or for one stratum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorValue {
    pub indicator: String,
    /// ODS code of the reporting trust.
    pub trust: String,
    pub period: Period,
    /// `None` for the total.
    pub stratum: Option<StratumKey>,
    pub numerator: u64,
    /// `None` for count and themes indicators.
    pub denominator: Option<u64>,
    /// numerator / denominator x the indicator's multiplier (100, 1,000); the count for counts;
    /// `None` when the denominator is zero.
    pub value: Option<f64>,
    /// Narrative kept with qualitative items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<String>,
    /// Index into [`MapOutcome::trace`] of the rule that produced this value.
    pub hit: usize,
}

/// A submitted group no rule maps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnmappedGroup {
    pub measure: String,
    pub group: Option<String>,
    /// FHIRPath of the group.
    pub expression: String,
    pub reason: String,
}

/// Which rule mapped which group, and what it noticed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// `file:line` of the rule.
    pub rule: String,
    pub measure: String,
    pub group: String,
    pub indicator: String,
    /// FHIRPath of the group.
    pub expression: String,
    pub notes: Vec<String>,
}

/// What mapping one submission produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MapOutcome {
    pub values: Vec<IndicatorValue>,
    pub unmapped: Vec<UnmappedGroup>,
    pub trace: Vec<RuleHit>,
    /// Warnings about the input (counts that disagree with a submitted score, strata dropped, ...).
    #[serde(skip)]
    pub issues: Vec<Issue>,
}

/// The catalogue and the checked rules, ready to map submissions.
#[derive(Debug, Clone)]
pub struct Mapper {
    catalogue: Catalogue,
    rules: RuleSet,
}

impl Mapper {
    /// Load `dir/catalogue/annex1.toml` and every `dir/rules/*.toml`, checking everything.
    pub fn load(dir: &Path) -> Result<Mapper, MapLoadError> {
        let catalogue = Catalogue::load(&dir.join("catalogue").join("annex1.toml"))?;
        let files = rules::read_dir(&dir.join("rules"))?;
        let rules = RuleSet::build(&catalogue, &files).map_err(MapLoadError::Invalid)?;
        Ok(Mapper { catalogue, rules })
    }

    /// Build from a catalogue and rule file texts `(name, text)` (tests, tools).
    pub fn from_texts(
        catalogue: Catalogue,
        files: &[(&Path, &str)],
    ) -> Result<Mapper, MapLoadError> {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(p, t)| SourceFile::new(p, (*t).to_owned()))
            .collect();
        let rules = RuleSet::build(&catalogue, &files).map_err(MapLoadError::Invalid)?;
        Ok(Mapper { catalogue, rules })
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Map a MeasureReport or a Bundle holding MeasureReports (a submission message).
    pub fn map_report(&self, input: &Value) -> MapOutcome {
        let mut out = MapOutcome::default();
        match input.get("resourceType").and_then(Value::as_str) {
            Some("MeasureReport") => {
                self.map_one(input, "MeasureReport", &HashMap::new(), &mut out)
            }
            Some("Bundle") => {
                let entries = input
                    .get("entry")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let orgs = organisations(entries);
                let mut any = false;
                for (i, e) in entries.iter().enumerate() {
                    let Some(r) = e.get("resource") else { continue };
                    if r.get("resourceType").and_then(Value::as_str) == Some("MeasureReport") {
                        any = true;
                        self.map_one(r, &format!("Bundle.entry[{i}].resource"), &orgs, &mut out);
                    }
                }
                if !any {
                    out.issues.push(
                        Issue::information(
                            IssueType::NotFound,
                            "the Bundle holds no MeasureReport: nothing to map",
                        )
                        .at("Bundle.entry"),
                    );
                }
            }
            other => out.issues.push(Issue::warning(
                IssueType::NotSupported,
                format!(
                    "cannot map a {}: expected a MeasureReport or a Bundle",
                    other.unwrap_or("resource without resourceType")
                ),
            )),
        }
        out
    }

    fn map_one(
        &self,
        mr: &Value,
        path: &str,
        orgs: &HashMap<String, String>,
        out: &mut MapOutcome,
    ) {
        let canonical = mr.get("measure").and_then(Value::as_str).unwrap_or("");
        let (url, version) = match canonical.split_once('|') {
            Some((u, v)) => (u, Some(v)),
            None => (canonical, None),
        };
        let groups = mr
            .get("group")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let unmap_all = |out: &mut MapOutcome, reason: &str| {
            for (gi, g) in groups.iter().enumerate() {
                out.unmapped.push(UnmappedGroup {
                    measure: canonical.to_owned(),
                    group: group_codes(g).first().map(|(_, c)| (*c).to_owned()),
                    expression: format!("{path}.group[{gi}]"),
                    reason: reason.to_owned(),
                });
            }
        };

        let trust = reporter_ods(mr, orgs);
        let period = mr.get("period").and_then(|p| {
            Some(Period {
                start: p.get("start")?.as_str()?.to_owned(),
                end: p.get("end")?.as_str()?.to_owned(),
            })
        });
        let (Some(trust), Some(period)) = (trust, period) else {
            let reason = "the report names no reporter ODS code or no period start and end";
            out.issues
                .push(Issue::warning(IssueType::Required, reason).at(path));
            unmap_all(out, reason);
            return;
        };

        let rules: Vec<&Rule> = self
            .rules
            .for_measure(url)
            .filter(|r| r.versions.matches(version))
            .collect();
        if rules.is_empty() {
            unmap_all(
                out,
                &format!(
                    "no mapping rule for measure {url} (version {})",
                    version.unwrap_or("not given")
                ),
            );
            return;
        }
        for (gi, g) in groups.iter().enumerate() {
            let gpath = format!("{path}.group[{gi}]");
            let codes = group_codes(g);
            let rule = rules.iter().find(|r| {
                codes
                    .iter()
                    .any(|(sys, code)| *code == r.group && sys.is_none_or(|s| s == r.group_system))
            });
            let Some(rule) = rule else {
                out.unmapped.push(UnmappedGroup {
                    measure: canonical.to_owned(),
                    group: codes.first().map(|(_, c)| c.to_string()),
                    expression: gpath,
                    reason: format!("no rule maps this group code of {url}"),
                });
                continue;
            };
            self.map_group(rule, g, canonical, version, &trust, &period, &gpath, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn map_group(
        &self,
        rule: &Rule,
        g: &Value,
        canonical: &str,
        version: Option<&str>,
        trust: &str,
        period: &Period,
        gpath: &str,
        out: &mut MapOutcome,
    ) {
        let Some(ind) = self.catalogue.indicator(&rule.indicator) else {
            return; // cannot happen: rules are checked against the catalogue at load
        };
        let mut notes = Vec::new();
        if version.is_none() && rule.versions.to_string() != "*" {
            notes.push(format!(
                "the report names no measure version; rule versions {} assumed",
                rule.versions
            ));
        }
        let total = match counts(g, rule) {
            Ok(c) => c,
            Err(reason) => {
                out.issues
                    .push(Issue::warning(IssueType::Required, reason.clone()).at(gpath));
                out.unmapped.push(UnmappedGroup {
                    measure: canonical.to_owned(),
                    group: Some(rule.group.clone()),
                    expression: gpath.to_owned(),
                    reason,
                });
                return;
            }
        };
        let mult = ind.kind.multiplier();
        let value_of = |n: u64, d: Option<u64>| match d {
            Some(0) => None,
            Some(d) => Some(n as f64 / d as f64 * mult),
            None => Some(n as f64),
        };

        // A submitted score is only checked against the counts, never used.
        if let (Some(score), Some(unit), Some(d)) = (
            g.pointer("/measureScore/value").and_then(Value::as_f64),
            rule.source_unit,
            total.1.filter(|d| *d > 0),
        ) {
            let expected = total.0 as f64 / d as f64 * unit.multiplier();
            if (score - expected).abs() > (expected.abs() * 0.01).max(0.051) {
                out.issues.push(
                    Issue::warning(
                        IssueType::BusinessRule,
                        format!(
                            "measureScore {score} disagrees with the counts ({} / {d} = {expected:.3} in the rule's source unit); the gateway uses the counts",
                            total.0
                        ),
                    )
                    .at(format!("{gpath}.measureScore")),
                );
                notes.push(format!(
                    "submitted measureScore {score} ignored: counts give {expected:.3}"
                ));
            }
        }

        let hit = out.trace.len();
        out.values.push(IndicatorValue {
            indicator: ind.code.clone(),
            trust: trust.to_owned(),
            period: period.clone(),
            stratum: None,
            numerator: total.0,
            denominator: total.1,
            value: value_of(total.0, total.1),
            narrative: narrative(g),
            hit,
        });

        let stratifiers = g
            .get("stratifier")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (si, s) in stratifiers.iter().enumerate() {
            let spath = format!("{gpath}.stratifier[{si}]");
            let Some(code) = stratifier_code(s) else {
                notes.push(format!("{spath}: stratifier without a code skipped"));
                continue;
            };
            let passthrough;
            let applicable: Vec<&Stratify> = match &rule.stratify {
                Some(list) => list.iter().filter(|x| x.from == code).collect(),
                None => {
                    passthrough = self.catalogue.stratifier(code).map(|_| Stratify {
                        from: code.to_owned(),
                        to: code.to_owned(),
                        translation: None,
                    });
                    passthrough.iter().collect()
                }
            };
            if applicable.is_empty() {
                notes.push(format!(
                    "stratifier `{code}` not carried over (no stratify entry for it)"
                ));
            }
            let strata = s
                .get("stratum")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for st in applicable {
                let Some(target) = self.catalogue.stratifier(&st.to) else {
                    continue;
                };
                let translation = st.translation.map(|i| &self.rules.translations[i]);
                // Several source strata may land on one target stratum (decile -> quintile): sum.
                let mut acc: BTreeMap<String, (u64, Option<u64>, Option<String>)> = BTreeMap::new();
                for (ki, k) in strata.iter().enumerate() {
                    // Only built when something is reported about this stratum.
                    let kpath = || format!("{spath}.stratum[{ki}]");
                    let Some((sys, c)) = stratum_code(k) else {
                        notes.push(format!(
                            "{}: stratum without a coded value skipped",
                            kpath()
                        ));
                        continue;
                    };
                    let target_code = match translation {
                        Some(t) if sys == Some(t.from_system.as_str()) => {
                            t.map.get(c).or(t.default.as_ref()).cloned()
                        }
                        _ if sys.is_none_or(|s| s == target.system) => Some(c.to_owned()),
                        _ => None,
                    };
                    let Some(target_code) = target_code else {
                        let msg = format!(
                            "stratum `{}|{c}` has no `{}` equivalent: left out of the strata (the total still counts it)",
                            sys.unwrap_or(""),
                            st.to
                        );
                        out.issues
                            .push(Issue::warning(IssueType::CodeInvalid, msg.clone()).at(kpath()));
                        notes.push(msg);
                        continue;
                    };
                    match counts(k, rule) {
                        Ok((n, d)) => {
                            let e = acc
                                .entry(target_code)
                                .or_insert((0, total.1.map(|_| 0), None));
                            e.0 = e.0.saturating_add(n);
                            e.1 = match (e.1, d) {
                                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                                _ => None,
                            };
                            if let Some(text) = narrative(k) {
                                e.2 = Some(match e.2.take() {
                                    Some(prev) => format!("{prev}\n\n{text}"),
                                    None => text,
                                });
                            }
                        }
                        Err(reason) => {
                            out.issues.push(
                                Issue::warning(IssueType::Required, reason.clone()).at(kpath()),
                            );
                            notes.push(format!("{}: {reason}", kpath()));
                        }
                    }
                }
                if let Some(t) = translation {
                    notes.push(format!(
                        "`{}` -> `{}` via translation `{}` ({} strata into {})",
                        st.from,
                        st.to,
                        t.name,
                        strata.len(),
                        acc.len()
                    ));
                }
                for (c, (n, d, text)) in acc {
                    out.values.push(IndicatorValue {
                        indicator: ind.code.clone(),
                        trust: trust.to_owned(),
                        period: period.clone(),
                        stratum: Some(StratumKey {
                            stratifier: st.to.clone(),
                            system: target.system.clone(),
                            code: c,
                        }),
                        numerator: n,
                        denominator: d,
                        value: value_of(n, d),
                        narrative: text,
                        hit,
                    });
                }
            }
        }
        out.trace.push(RuleHit {
            rule: format!("{}:{}", rule.at.file.display(), rule.at.line),
            measure: canonical.to_owned(),
            group: rule.group.clone(),
            indicator: ind.code.clone(),
            expression: gpath.to_owned(),
            notes,
        });
    }
}

/// ODS codes of the Organizations in a Bundle, by fullUrl and by `Organization/{id}`.
fn organisations(entries: &[Value]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for e in entries {
        let Some(r) = e.get("resource") else { continue };
        if r.get("resourceType").and_then(Value::as_str) != Some("Organization") {
            continue;
        }
        let Some(ods) = ods_identifier(r.get("identifier")) else {
            continue;
        };
        if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
            m.insert(u.to_owned(), ods.clone());
        }
        if let Some(id) = r.get("id").and_then(Value::as_str) {
            m.insert(format!("Organization/{id}"), ods);
        }
    }
    m
}

fn ods_identifier(identifier: Option<&Value>) -> Option<String> {
    let one = |i: &Value| {
        (i.get("system").and_then(Value::as_str) == Some(ODS_ORG_SYSTEM))
            .then(|| i.get("value").and_then(Value::as_str).map(str::to_owned))
            .flatten()
    };
    match identifier? {
        Value::Array(a) => a.iter().find_map(one),
        v => one(v),
    }
}

fn reporter_ods(mr: &Value, orgs: &HashMap<String, String>) -> Option<String> {
    let r = mr.get("reporter")?;
    ods_identifier(r.get("identifier")).or_else(|| orgs.get(r.get("reference")?.as_str()?).cloned())
}

/// `(system, code)` of every coding of `group.code`.
fn group_codes(g: &Value) -> Vec<(Option<&str>, &str)> {
    g.pointer("/code/coding")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some((
                        c.get("system").and_then(Value::as_str),
                        c.get("code")?.as_str()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `stratifier.code`: an array of CodeableConcepts in R4 MeasureReport (an object is accepted).
fn stratifier_code(s: &Value) -> Option<&str> {
    let code = s.get("code")?;
    let cc = match code {
        Value::Array(a) => a.first()?,
        v => v,
    };
    cc.pointer("/coding/0/code")?.as_str()
}

fn stratum_code(k: &Value) -> Option<(Option<&str>, &str)> {
    let c = k.pointer("/value/coding/0")?;
    Some((
        c.get("system").and_then(Value::as_str),
        c.get("code")?.as_str()?,
    ))
}

fn narrative(v: &Value) -> Option<String> {
    v.get("extension")?.as_array()?.iter().find_map(|e| {
        (e.get("url").and_then(Value::as_str) == Some(EXT_NARRATIVE))
            .then(|| {
                e.get("valueMarkdown")
                    .or_else(|| e.get("valueString"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten()
    })
}

/// The count of a population, by measure-population code.
fn population(v: &Value, code: &str) -> Result<Option<u64>, String> {
    let Some(pops) = v.get("population").and_then(Value::as_array) else {
        return Ok(None);
    };
    let found = pops.iter().find(|p| {
        p.pointer("/code/coding")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("code").and_then(Value::as_str) == Some(code)
                        && c.get("system")
                            .and_then(Value::as_str)
                            .is_none_or(|s| s == POPULATION_SYSTEM)
                })
            })
    });
    let Some(p) = found else { return Ok(None) };
    match p.get("count") {
        Some(c) => c.as_u64().map(Some).ok_or_else(|| {
            format!("population `{code}` has count {c}: expected a whole number 0 or more")
        }),
        None => Err(format!("population `{code}` has no count")),
    }
}

/// (numerator, denominator) by the rule's population codes.
fn counts(v: &Value, rule: &Rule) -> Result<(u64, Option<u64>), String> {
    let n = population(v, &rule.numerator)?
        .ok_or_else(|| format!("no `{}` population (the rule's numerator)", rule.numerator))?;
    let d = match &rule.denominator {
        Some(code) => Some(
            population(v, code)?
                .ok_or_else(|| format!("no `{code}` population (the rule's denominator)"))?,
        ),
        None => None,
    };
    Ok((n, d))
}
