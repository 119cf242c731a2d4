//! Pooling trusts' indicator values to ICB or region level.
//!
//! Pooled values sum numerators and denominators and recompute the value; rates are never
//! averaged (an average of trust rates weights a trust with 50 births like one with 8,000).
//! Each pooled value says how many trusts reported it out of how many the directory expects, so a
//! reader can tell a low count from missing returns. Must not: look up organisations itself; the
//! caller passes a [`Directory`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::catalogue::Catalogue;
use super::engine::{IndicatorValue, Period, StratumKey};

/// The level values are pooled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Icb,
    Region,
}

/// Which ICB and region a trust belongs to, and which trusts each is expected to hear from.
pub trait Directory {
    /// ODS code of the trust's ICB or region.
    fn parent(&self, trust: &str, level: Level) -> Option<String>;
    /// ODS codes of the trusts that report to `organisation` at `level`.
    fn members(&self, organisation: &str, level: Level) -> Vec<String>;
}

/// The gateway's organisation directory (`mappings/organisations.toml`).
impl Directory for crate::deliver::directory::Directory {
    fn parent(&self, trust: &str, level: Level) -> Option<String> {
        let route = self.route(trust).ok()?;
        Some(match level {
            Level::Icb => route.icb.ods,
            Level::Region => route.region.ods,
        })
    }

    fn members(&self, organisation: &str, level: Level) -> Vec<String> {
        match level {
            Level::Icb => self
                .trusts_of_icb(organisation)
                .map(|o| o.ods.clone())
                .collect(),
            Level::Region => self
                .icbs_of_region(organisation)
                .flat_map(|icb| {
                    self.trusts_of_icb(&icb.ods)
                        .map(|o| o.ods.clone())
                        .collect::<Vec<_>>()
                })
                .collect(),
        }
    }
}

/// A directory held in memory: trust -> (ICB, region).
#[derive(Debug, Clone, Default)]
pub struct StaticDirectory {
    trusts: BTreeMap<String, (String, String)>,
}

impl StaticDirectory {
    pub fn new() -> StaticDirectory {
        StaticDirectory::default()
    }

    pub fn with(mut self, trust: &str, icb: &str, region: &str) -> StaticDirectory {
        self.trusts
            .insert(trust.to_owned(), (icb.to_owned(), region.to_owned()));
        self
    }
}

impl Directory for StaticDirectory {
    fn parent(&self, trust: &str, level: Level) -> Option<String> {
        self.trusts.get(trust).map(|(icb, region)| match level {
            Level::Icb => icb.clone(),
            Level::Region => region.clone(),
        })
    }

    fn members(&self, organisation: &str, level: Level) -> Vec<String> {
        self.trusts
            .iter()
            .filter(|(_, (icb, region))| match level {
                Level::Icb => icb == organisation,
                Level::Region => region == organisation,
            })
            .map(|(trust, _)| trust.clone())
            .collect()
    }
}

/// An indicator value pooled over the trusts of an ICB or region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PooledValue {
    pub indicator: String,
    pub level: Level,
    /// ODS code of the ICB or region.
    pub organisation: String,
    pub period: Period,
    pub stratum: Option<StratumKey>,
    pub numerator: u64,
    pub denominator: Option<u64>,
    pub value: Option<f64>,
    /// Distinct trusts that contributed to this value.
    pub trusts_reported: usize,
    /// Trusts the directory places in the organisation.
    pub trusts_expected: usize,
    /// The trusts that reported.
    pub trusts: Vec<String>,
    /// Expected trusts that did not report this value.
    pub missing: Vec<String>,
}

/// Pooled values, and the trusts the directory could not place (their values are left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pooled {
    pub values: Vec<PooledValue>,
    pub unplaced_trusts: Vec<String>,
}

type Key<'a> = (&'a str, &'a str, &'a Period, Option<&'a StratumKey>);

/// Pool `values` (one current value per trust, indicator, period and stratum) to `level`.
pub fn pool(
    catalogue: &Catalogue,
    values: &[IndicatorValue],
    level: Level,
    directory: &dyn Directory,
) -> Pooled {
    // Directory answers are cached: thousands of values share a handful of trusts.
    let mut parents: HashMap<&str, Option<String>> = HashMap::new();
    for v in values {
        parents
            .entry(v.trust.as_str())
            .or_insert_with(|| directory.parent(&v.trust, level));
    }
    let mut acc: BTreeMap<Key, (u64, Option<u64>, BTreeSet<&str>)> = BTreeMap::new();
    let mut unplaced = BTreeSet::new();
    for v in values {
        let Some(Some(org)) = parents.get(v.trust.as_str()) else {
            unplaced.insert(v.trust.clone());
            continue;
        };
        let key = (
            v.indicator.as_str(),
            org.as_str(),
            &v.period,
            v.stratum.as_ref(),
        );
        let e = acc
            .entry(key)
            .or_insert((0, v.denominator.map(|_| 0), BTreeSet::new()));
        e.0 = e.0.saturating_add(v.numerator);
        e.1 = match (e.1, v.denominator) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
        e.2.insert(v.trust.as_str());
    }
    let mut members: HashMap<&str, Vec<String>> = HashMap::new();
    let values = acc
        .into_iter()
        .map(
            |((indicator, organisation, period, stratum), (n, d, trusts))| {
                let mult = catalogue
                    .indicator(indicator)
                    .map_or(1.0, |i| i.kind.multiplier());
                let value = match d {
                    Some(0) => None,
                    Some(d) => Some(n as f64 / d as f64 * mult),
                    None => Some(n as f64),
                };
                let expected = members
                    .entry(organisation)
                    .or_insert_with(|| directory.members(organisation, level));
                PooledValue {
                    trusts_expected: expected.len(),
                    missing: expected
                        .iter()
                        .filter(|m| !trusts.contains(m.as_str()))
                        .cloned()
                        .collect(),
                    trusts_reported: trusts.len(),
                    trusts: trusts.into_iter().map(str::to_owned).collect(),
                    indicator: indicator.to_owned(),
                    level,
                    organisation: organisation.to_owned(),
                    period: period.clone(),
                    stratum: stratum.cloned(),
                    numerator: n,
                    denominator: d,
                    value,
                }
            },
        )
        .collect();
    Pooled {
        values,
        unplaced_trusts: unplaced.into_iter().collect(),
    }
}
