//! Indicator values read back for ICBs, regions and trusts: the indicator MeasureReport search
//! (`GET /fhir/MeasureReport?measure={indicator Measure}&reporter=...`), the JSON time series for
//! charts, and the data of the consolidated regional bundle.
//!
//! A reporter that the organisation directory knows as an ICB or a region gets pooled reports:
//! the current values of its trusts, numerators and denominators summed and the rate recomputed
//! ([`crate::map::pool`]; never an average of rates), with completeness (trusts reported of trusts
//! expected). A trust gets its own current values. Reports are computed on read, so they always
//! reflect the latest resubmissions; paging is keyset on (reporter, measure, period), as stable as
//! the store's own search paging.
//!
//! Must not: know about HTTP (issues are returned, `api::error` picks the status).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{Pipeline, PipelineError};
use crate::deliver::directory::{Directory, Kind, Organisation};
use crate::deliver::forward::{Destination, Forwarded};
use crate::deliver::keys::SigningKey;
use crate::deliver::provenance::Gateway;
use crate::deliver::regional::{self, RegionalInput, SourceSubmission};
use crate::fhir::{CANONICAL_BASE, Issue, IssueType, ODS_ORG_SYSTEM};
use crate::map::pool::Directory as _;
use crate::map::{IndicatorValue, Level, Mapper};
use crate::store::IndicatorQuery;
use crate::store::search::{DEFAULT_COUNT, MAX_COUNT};

/// Whose values a report is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Reporter {
    Trust(String),
    /// An ICB or region: the pooled values of its trusts.
    Pooled {
        ods: String,
        level: Level,
        members: Vec<String>,
    },
}

impl Reporter {
    fn trusts(&self) -> Vec<String> {
        match self {
            Reporter::Trust(t) => vec![t.clone()],
            Reporter::Pooled { members, .. } => members.clone(),
        }
    }
}

/// A period criterion: periods starting within `[from, to]`, compared as ISO 8601 text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl PeriodRange {
    /// `2026-10` (eq), `eq2026-10`, `ge2026-07`, `le2026-10-31`: a year, month or day. Several
    /// criteria narrow the range. `~` sorts after every character a date or dateTime uses, so
    /// `le2026-10` includes all of October.
    pub fn add(&mut self, raw: &str) -> Result<(), String> {
        let (prefix, date) = match raw.get(..2) {
            Some(p @ ("ge" | "le" | "eq")) => (p, &raw[2..]),
            _ => ("eq", raw),
        };
        if !is_partial_date(date) {
            return Err(format!(
                "'{raw}' is not a period this search understands; expected a date (2026, \
                 2026-10 or 2026-10-01), optionally prefixed with ge, le or eq"
            ));
        }
        if prefix != "le" {
            self.from = Some(
                self.from
                    .take()
                    .map_or(date.to_owned(), |f| f.max(date.into())),
            );
        }
        if prefix != "ge" {
            let to = format!("{date}~");
            self.to = Some(self.to.take().map_or(to.clone(), |t| t.min(to)));
        }
        Ok(())
    }
}

fn is_partial_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7),
        10 => digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
        _ => false,
    }
}

/// One page of indicator reports.
#[derive(Debug, Clone, Default)]
pub struct IndicatorPage {
    pub reports: Vec<Value>,
    /// Cursor of the next page (`_cursor=`), `None` on the last page.
    pub next: Option<String>,
    /// Whether this is the first page (the total is only known then, and only without `next`).
    pub first: bool,
}

/// Position of a report in the search order: (reporter, measure, period start, period end).
type ReportKey = (String, String, String, String);

fn report_key(report: &Value) -> ReportKey {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&report["reporter"]["identifier"]["value"]),
        s(&report["measure"]),
        s(&report["period"]["start"]),
        s(&report["period"]["end"]),
    )
}

fn encode_cursor(k: &ReportKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("r1\n{}\n{}\n{}\n{}", k.0, k.1, k.2, k.3))
}

fn decode_cursor(token: &str) -> Option<ReportKey> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = text.strip_prefix("r1\n")?.split('\n');
    let key = (
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
    );
    parts.next().is_none().then_some(key)
}

/// An ODS code from a `reporter` or `subject` value: `RM1`, `{ODS system}|RM1`, `|RM1` or
/// `Organization/RM1`.
fn ods_token(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let code = match raw.split_once('|') {
        Some(("", code)) => code,
        Some((system, code)) if system == ODS_ORG_SYSTEM => code,
        Some((system, _)) => {
            return Err(format!(
                "'{raw}' names the identifier system '{system}'; indicator reports are found by \
                 ODS code ({ODS_ORG_SYSTEM}|CODE, or the bare code)"
            ));
        }
        None => raw.strip_prefix("Organization/").unwrap_or(raw),
    };
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "'{raw}' is not an ODS organisation code; expected e.g. RM1 (trust), QMM (ICB) or \
             Y61 (region)"
        ));
    }
    Ok(code.to_ascii_uppercase())
}

/// The date stamped on reports built now.
fn today() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// One point of a time series (the total, no strata).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub period_start: String,
    pub period_end: String,
    pub numerator: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denominator: Option<u64>,
    /// Recomputed from the (pooled) counts; `null` when the denominator is zero.
    pub value: Option<f64>,
    /// For an ICB or region: trusts that reported this period, and trusts expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusts_reported: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusts_expected: Option<usize>,
}

/// An indicator's time series for one organisation (`GET /api/indicators/{code}/series`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub indicator: String,
    pub name: String,
    pub unit: String,
    pub organisation: String,
    /// trust | icb | region
    pub level: &'static str,
    pub points: Vec<SeriesPoint>,
}

/// What can be wrong with a series request.
#[derive(Debug, Clone)]
pub enum SeriesRefusal {
    UnknownIndicator(Issue),
    BadRequest(Vec<Issue>),
}

impl Pipeline {
    /// Plug in the organisation directory: ICB and region reporters get pooled reports.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    fn reporter(&self, ods: &str) -> Reporter {
        let Some(dir) = self.directory.as_deref() else {
            return Reporter::Trust(ods.to_owned());
        };
        let level = match dir.kind(ods) {
            Some(Kind::Region) => Level::Region,
            Some(Kind::Icb) => Level::Icb,
            // Trusts, and codes the directory does not know (a trust's own values are kept
            // whether or not the directory places it).
            _ => return Reporter::Trust(ods.to_owned()),
        };
        Reporter::Pooled {
            ods: ods.to_owned(),
            level,
            members: dir.members(ods, level),
        }
    }

    /// Current values of `indicator` (or all) for the reporters' trusts in `period`, as reports
    /// for those reporters (every trust when `reporters` is empty), sorted by [`ReportKey`].
    async fn reports_for(
        &self,
        mapper: &Mapper,
        indicator: Option<&str>,
        reporters: &[Reporter],
        period: &PeriodRange,
        totals_only: bool,
    ) -> Result<Vec<(ReportKey, Value)>, PipelineError> {
        let trusts: BTreeSet<String> = reporters.iter().flat_map(Reporter::trusts).collect();
        if !reporters.is_empty() && trusts.is_empty() {
            return Ok(Vec::new());
        }
        let query = IndicatorQuery {
            indicator: indicator.map(str::to_owned),
            trusts: trusts.into_iter().collect(),
            period_from: period.from.clone(),
            period_to: period.to.clone(),
            totals_only,
            include_history: false,
            submission: None,
        };
        let values: Vec<IndicatorValue> = self
            .store
            .indicator_values(&query)
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect();
        let date = today();
        let mut reports = Vec::new();
        if reporters.is_empty() {
            reports = mapper.indicator_reports(&values, &date);
        }
        for r in reporters {
            match r {
                Reporter::Trust(t) => {
                    let own: Vec<IndicatorValue> =
                        values.iter().filter(|v| &v.trust == t).cloned().collect();
                    reports.extend(mapper.indicator_reports(&own, &date));
                }
                Reporter::Pooled {
                    ods,
                    level,
                    members,
                } => reports.extend(self.pooled(mapper, &values, ods, *level, members, &date)),
            }
        }
        let mut keyed: Vec<(ReportKey, Value)> =
            reports.into_iter().map(|r| (report_key(&r), r)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed)
    }

    /// Pooled reports of one ICB or region from the values of its `members`.
    fn pooled(
        &self,
        mapper: &Mapper,
        values: &[IndicatorValue],
        ods: &str,
        level: Level,
        members: &[String],
        date: &str,
    ) -> Vec<Value> {
        let Some(dir) = self.directory.as_deref() else {
            return Vec::new();
        };
        let mine: Vec<IndicatorValue> = values
            .iter()
            .filter(|v| members.contains(&v.trust))
            .cloned()
            .collect();
        let pooled: Vec<_> = mapper
            .pool(&mine, level, dir)
            .values
            .into_iter()
            .filter(|p| p.organisation == ods)
            .collect();
        mapper.pooled_reports(&pooled, date)
    }

    /// `GET /fhir/MeasureReport?measure={base}/Measure/{indicator}[&reporter=..][&subject=..]
    /// [&period=..][&_count=..][&_cursor=..]`: indicator MeasureReports from the stored current
    /// values, pooled for ICB and region reporters. `Ok(None)`: the search is not for an
    /// indicator Measure (the store answers it). `subject` is accepted as a synonym of
    /// `reporter`: an indicator report is about the organisation that reports it.
    pub async fn indicator_reports(
        &self,
        params: &[(String, String)],
    ) -> Result<Option<Result<IndicatorPage, Vec<Issue>>>, PipelineError> {
        let Some(mapper) = self.mapper.as_ref() else {
            return Ok(None);
        };
        let prefix = format!("{CANONICAL_BASE}/Measure/");
        let Some(indicator) = params
            .iter()
            .find(|(k, _)| k == "measure")
            .and_then(|(_, v)| {
                let code = v.strip_prefix(&prefix)?.split('|').next()?;
                mapper.catalogue().indicator(code).map(|i| i.code.clone())
            })
        else {
            return Ok(None);
        };
        let mut period = PeriodRange::default();
        let mut codes = BTreeSet::new();
        let mut count = DEFAULT_COUNT;
        let mut after = None;
        let mut problems = Vec::new();
        let mut problem = |name: &str, code: IssueType, text: String| {
            problems.push(Issue::error(code, format!("{name}: {text}")));
        };
        for (k, v) in params {
            match k.as_str() {
                "measure" | "_format" | "_pretty" => {}
                "reporter" | "subject" => {
                    for r in v.split(',') {
                        match ods_token(r) {
                            Ok(code) => {
                                codes.insert(code);
                            }
                            Err(e) => problem(k, IssueType::Value, e),
                        }
                    }
                }
                "period" => {
                    if let Err(e) = period.add(v) {
                        problem(k, IssueType::Value, e);
                    }
                }
                "_count" => match v.parse::<u32>() {
                    Ok(n) if n >= 1 => count = n.min(MAX_COUNT),
                    _ => problem(
                        k,
                        IssueType::Value,
                        format!("'{v}' is not a page size; expected an integer of at least 1"),
                    ),
                },
                "_cursor" => match decode_cursor(v) {
                    Some(key) => after = Some(key),
                    None => problem(
                        k,
                        IssueType::Value,
                        format!("'{v}' is not a cursor this server issued"),
                    ),
                },
                other => problem(
                    other,
                    IssueType::NotSupported,
                    "this search parameter is not supported for indicator reports; use \
                     measure, reporter (or subject), period (ge, le, eq), _count and _cursor"
                        .to_owned(),
                ),
            }
        }
        if !problems.is_empty() {
            return Ok(Some(Err(problems)));
        }
        let reporters: Vec<Reporter> = codes.iter().map(|c| self.reporter(c)).collect();
        let all = self
            .reports_for(mapper, Some(&indicator), &reporters, &period, false)
            .await?;
        let first = after.is_none();
        let mut rest = all
            .into_iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a));
        let mut reports = Vec::with_capacity(count as usize);
        let mut last = None;
        for (k, r) in rest.by_ref().take(count as usize) {
            last = Some(k);
            reports.push(r);
        }
        let next = rest.next().and(last.as_ref()).map(encode_cursor);
        Ok(Some(Ok(IndicatorPage {
            reports,
            next,
            first,
        })))
    }

    /// The total of one indicator for one organisation, period by period (oldest first).
    pub async fn indicator_series(
        &self,
        code: &str,
        params: &[(String, String)],
    ) -> Result<Result<Series, SeriesRefusal>, PipelineError> {
        let Some(mapper) = self.mapper.as_ref() else {
            return Ok(Err(SeriesRefusal::UnknownIndicator(Issue::error(
                IssueType::NotFound,
                "this gateway has no indicator catalogue loaded",
            ))));
        };
        let Some(ind) = mapper.catalogue().indicator(code) else {
            return Ok(Err(SeriesRefusal::UnknownIndicator(Issue::error(
                IssueType::NotFound,
                format!(
                    "indicator '{code}' is not in the PQOM catalogue; GET /fhir/Measure lists \
                     the indicators"
                ),
            ))));
        };
        let mut org = None;
        let mut period = PeriodRange::default();
        let mut problems = Vec::new();
        for (k, v) in params {
            let result = match k.as_str() {
                "org" => ods_token(v).map(|c| org = Some(c)),
                "from" => period.add(&format!("ge{v}")),
                "to" => period.add(&format!("le{v}")),
                _ => Err("not a parameter of this endpoint; use org, from and to".to_owned()),
            };
            if let Err(e) = result {
                problems.push(Issue::error(IssueType::Value, format!("{k}: {e}")));
            }
        }
        let Some(org) = org.filter(|_| problems.is_empty()) else {
            if problems.is_empty() {
                problems.push(Issue::error(
                    IssueType::Required,
                    "org is required: the ODS code of a trust, ICB or region (e.g. org=QMM)",
                ));
            }
            return Ok(Err(SeriesRefusal::BadRequest(problems)));
        };
        let reporter = self.reporter(&org);
        let level = match &reporter {
            Reporter::Trust(_) => "trust",
            Reporter::Pooled {
                level: Level::Icb, ..
            } => "icb",
            Reporter::Pooled {
                level: Level::Region,
                ..
            } => "region",
        };
        let reports = self
            .reports_for(mapper, Some(code), &[reporter], &period, true)
            .await?;
        let mut points: Vec<SeriesPoint> = reports.iter().map(|(_, r)| point(r)).collect();
        points.sort_by(|a, b| {
            (&a.period_start, &a.period_end).cmp(&(&b.period_start, &b.period_end))
        });
        Ok(Ok(Series {
            indicator: ind.code.clone(),
            name: ind.name.clone(),
            unit: ind.unit.clone(),
            organisation: org,
            level,
            points,
        }))
    }

    /// Build and sign the consolidated regional bundle of `region` for `period`
    /// ([`crate::deliver::regional`]). The caller checked that `region` is a region of the
    /// directory.
    pub async fn regional_bundle(
        &self,
        region: &Organisation,
        period: &PeriodRange,
        gateway: &Gateway,
        signer: &SigningKey,
        destination: Option<&Destination>,
    ) -> Result<Forwarded, PipelineError> {
        let (Some(mapper), Some(dir)) = (self.mapper.as_deref(), self.directory.as_deref()) else {
            return Err(PipelineError::NotConfigured(
                "the regional bundle needs the indicator mappings and the organisation directory",
            ));
        };
        let members = dir.members(&region.ods, Level::Region);
        let stored = if members.is_empty() {
            Vec::new()
        } else {
            self.store
                .indicator_values(&IndicatorQuery {
                    trusts: members.clone(),
                    period_from: period.from.clone(),
                    period_to: period.to.clone(),
                    ..IndicatorQuery::default()
                })
                .await?
        };
        // The submissions behind the values, once each, with the trust they came from.
        let mut by_submission: BTreeMap<Uuid, String> = BTreeMap::new();
        for s in &stored {
            by_submission
                .entry(s.submission_id)
                .or_insert_with(|| s.value.trust.clone());
        }
        let mut sources = Vec::with_capacity(by_submission.len());
        for (id, trust) in by_submission {
            if let Some(sub) = self.store.submission(id).await? {
                sources.push(SourceSubmission {
                    trust,
                    message_id: sub.message_id,
                    sha256: sub.sha256,
                });
            }
        }
        let values: Vec<IndicatorValue> = stored.into_iter().map(|s| s.value).collect();
        let date = today();
        let sorted = |reports: Vec<Value>| {
            let mut keyed: Vec<(ReportKey, Value)> =
                reports.into_iter().map(|r| (report_key(&r), r)).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.into_iter().map(|(_, r)| r).collect::<Vec<_>>()
        };
        let region_reports =
            sorted(mapper.pooled_reports(&mapper.pool(&values, Level::Region, dir).values, &date));
        let icb_reports =
            sorted(mapper.pooled_reports(&mapper.pool(&values, Level::Icb, dir).values, &date));
        let trust_reports = sorted(mapper.indicator_reports(&values, &date));
        let reported: BTreeSet<&str> = values.iter().map(|v| v.trust.as_str()).collect();
        let org = |ods: &str| {
            dir.organisation(ods).cloned().unwrap_or(Organisation {
                ods: ods.to_owned(),
                name: ods.to_owned(),
            })
        };
        let trusts_reported: Vec<Organisation> = reported.into_iter().map(org).collect();
        let trusts_expected: Vec<Organisation> = members.iter().map(|m| org(m)).collect();
        let input = RegionalInput {
            bundle_id: Uuid::new_v4(),
            region,
            region_reports: &region_reports,
            icb_reports: &icb_reports,
            trust_reports: &trust_reports,
            trusts_reported: &trusts_reported,
            trusts_expected: &trusts_expected,
            sources: &sources,
            destination,
            gateway,
            now: OffsetDateTime::now_utc(),
        };
        Ok(regional::build(&input, signer)?)
    }
}

/// The total of a (trust or pooled) indicator report as a series point.
fn point(report: &Value) -> SeriesPoint {
    let group = &report["group"][0];
    let count = |code: &str| {
        group["population"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["code"]["coding"][0]["code"] == code)
            .and_then(|p| p["count"].as_u64())
    };
    let completeness = report["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == crate::map::report::EXT_COMPLETENESS);
    let part = |name: &str| {
        completeness.and_then(|c| {
            c["extension"]
                .as_array()?
                .iter()
                .find(|e| e["url"] == name)?["valueUnsignedInt"]
                .as_u64()
                .map(|n| n as usize)
        })
    };
    let denominator = count("denominator");
    SeriesPoint {
        period_start: report["period"]["start"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        period_end: report["period"]["end"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        numerator: count("numerator")
            .or_else(|| count("initial-population"))
            .unwrap_or(0),
        denominator,
        value: group["measureScore"]["value"].as_f64(),
        trusts_reported: part("reported"),
        trusts_expected: part("expected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_years_months_or_days_with_prefixes() {
        let mut p = PeriodRange::default();
        p.add("2026-10").unwrap();
        assert_eq!(p.from.as_deref(), Some("2026-10"));
        assert_eq!(p.to.as_deref(), Some("2026-10~"));
        let mut p = PeriodRange::default();
        p.add("ge2026-07").unwrap();
        p.add("le2026-09").unwrap();
        assert_eq!(
            (p.from.as_deref(), p.to.as_deref()),
            (Some("2026-07"), Some("2026-09~"))
        );
        for bad in ["", "26-10", "2026/10", "gt2026", "2026-10-1", "x"] {
            assert!(PeriodRange::default().add(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ods_tokens_in_every_form() {
        assert_eq!(ods_token("qmm").unwrap(), "QMM");
        assert_eq!(ods_token(&format!("{ODS_ORG_SYSTEM}|Y61")).unwrap(), "Y61");
        assert_eq!(ods_token("|RM1").unwrap(), "RM1");
        assert_eq!(ods_token("Organization/RGP").unwrap(), "RGP");
        assert!(ods_token("https://other.example|RM1").is_err());
        assert!(ods_token("").is_err());
        assert!(ods_token("R M1").is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        let k = (
            "QMM".to_owned(),
            "https://fhir.pqom-gateway.org/Measure/x|1".to_owned(),
            "2026-10-01".to_owned(),
            "2026-10-31".to_owned(),
        );
        assert_eq!(decode_cursor(&encode_cursor(&k)), Some(k));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("r1\na\nb")), None);
    }
}
