//! The search index of a resource: the values that search parameters match, extracted from the
//! resource JSON by one pure function, [`extract`], when a version is written. Both backends
//! store exactly what this returns, so the two cannot disagree about what a resource is indexed
//! under.
//!
//! Owns the FHIR date-range arithmetic shared by indexing and searching ([`DateRange`]).
//! Must not do I/O or know about SQL.

use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Lower bound stored for a period with no `start`: open towards the past.
pub const OPEN_START: i64 = i64::MIN;
/// Upper bound stored for a period with no `end`: open towards the future.
pub const OPEN_END: i64 = i64::MAX;

/// What a resource version is searchable by. Instants are microseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchIndex {
    /// `status` (any resource type that has one).
    pub status: Option<String>,
    /// `MeasureReport.measure`, split at `|` into canonical URL and version.
    pub measure_url: Option<String>,
    pub measure_version: Option<String>,
    /// `MeasureReport.period` as a half-open range `[start, end)`: the lower bound of `start` and
    /// the upper bound of `end` at their precision ([`OPEN_START`]/[`OPEN_END`] when a side is
    /// missing). `None` when the resource has no period.
    pub period: Option<(i64, i64)>,
    /// `Measure.url`, `Measure.version`, `Measure.name`.
    pub url: Option<String>,
    pub version: Option<String>,
    pub name: Option<String>,
    /// Token and reference values (`identifier`, `reporter`).
    pub tokens: Vec<Token>,
}

/// One token or reference value a resource can be found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// Search parameter name: `identifier` or `reporter`.
    pub param: &'static str,
    /// `Some(system)` for an identifier (`Some("")` when it has no system); `None` for a
    /// reference, whose `value` is then `Type/id` or the bare `id`.
    pub system: Option<String>,
    pub value: String,
}

/// Extract the search index of `resource` (of type `resource_type`). Never fails: a value that
/// does not parse (validation rejects those before they reach the store) is not indexed.
pub fn extract(resource_type: &str, resource: &Value) -> SearchIndex {
    let mut index = SearchIndex {
        status: str_at(resource, "status"),
        ..SearchIndex::default()
    };
    // `identifier` is 0..* on MeasureReport and Measure, 0..1 on some other types.
    match resource.get("identifier") {
        Some(Value::Array(ids)) => ids
            .iter()
            .for_each(|id| push_identifier(&mut index.tokens, "identifier", id)),
        Some(id @ Value::Object(_)) => push_identifier(&mut index.tokens, "identifier", id),
        _ => {}
    }
    match resource_type {
        "MeasureReport" => {
            if let Some(measure) = str_at(resource, "measure") {
                let (url, version) = split_canonical(&measure);
                index.measure_url = Some(url.to_owned());
                index.measure_version = version.map(str::to_owned);
            }
            if let Some(period) = resource.get("period") {
                index.period = period_range(period);
            }
            if let Some(reporter) = resource.get("reporter") {
                push_reference(&mut index.tokens, "reporter", reporter);
            }
        }
        "Measure" => {
            index.url = str_at(resource, "url");
            index.version = str_at(resource, "version");
            index.name = str_at(resource, "name");
        }
        _ => {}
    }
    index.tokens.sort();
    index.tokens.dedup();
    index
}

/// Split a canonical reference `url|version` into its parts.
pub fn split_canonical(canonical: &str) -> (&str, Option<&str>) {
    match canonical.split_once('|') {
        Some((url, version)) => (url, Some(version)),
        None => (canonical, None),
    }
}

fn str_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn push_identifier(tokens: &mut Vec<Token>, param: &'static str, identifier: &Value) {
    if let Some(value) = identifier.get("value").and_then(Value::as_str) {
        tokens.push(Token {
            param,
            system: Some(str_at(identifier, "system").unwrap_or_default()),
            value: value.to_owned(),
        });
    }
}

/// A Reference is found by its logical identifier and by its literal reference, both as written
/// (`Organization/RX1`, or an absolute URL) and reduced to `Type/id` and `id`, so that
/// `reporter=RX1` and `reporter=Organization/RX1` both match.
fn push_reference(tokens: &mut Vec<Token>, param: &'static str, reference: &Value) {
    if let Some(identifier) = reference.get("identifier") {
        push_identifier(tokens, param, identifier);
    }
    let Some(literal) = reference.get("reference").and_then(Value::as_str) else {
        return;
    };
    let mut push = |value: &str| {
        tokens.push(Token {
            param,
            system: None,
            value: value.to_owned(),
        })
    };
    push(literal);
    let path = literal.split(['#', '?']).next().unwrap_or(literal);
    let mut segments = path.rsplit('/');
    // `.../Type/id/_history/n` refers to the same resource.
    let (mut id, mut ty) = (segments.next(), segments.next());
    if ty == Some("_history") {
        (id, ty) = (segments.next(), segments.next());
    }
    if let (Some(ty), Some(id)) = (ty, id)
        && !ty.is_empty()
        && !id.is_empty()
    {
        push(&format!("{ty}/{id}"));
        push(id);
    }
}

fn period_range(period: &Value) -> Option<(i64, i64)> {
    let start = period.get("start").and_then(Value::as_str);
    let end = period.get("end").and_then(Value::as_str);
    if start.is_none() && end.is_none() {
        return None;
    }
    let lo = match start {
        Some(s) => DateRange::parse(s)?.start,
        None => OPEN_START,
    };
    let hi = match end {
        Some(e) => DateRange::parse(e)?.end,
        None => OPEN_END,
    };
    Some((lo, hi))
}

/// The instants a FHIR `date`, `dateTime` or `instant` denotes at its precision, as a half-open
/// range `[start, end)` of microseconds since the Unix epoch: `2025-04` is all of April 2025.
/// A time without an offset is taken as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
}

impl DateRange {
    /// Parse `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDThh:mm[:ss[.f+]][Z|(+|-)hh:mm]`.
    pub fn parse(text: &str) -> Option<DateRange> {
        let (date_part, time_part) = match text.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        let mut fields = date_part.split('-');
        let year: i32 = parse_digits(fields.next()?, 4)?;
        let month: Option<u8> = match fields.next() {
            Some(m) => Some(parse_digits(m, 2)?),
            None => None,
        };
        let day: Option<u8> = match fields.next() {
            Some(d) => Some(parse_digits(d, 2)?),
            None => None,
        };
        if fields.next().is_some() || (time_part.is_some() && day.is_none()) {
            return None;
        }
        let month_start = Month::try_from(month.unwrap_or(1)).ok()?;
        let first = Date::from_calendar_date(year, month_start, day.unwrap_or(1)).ok()?;
        let Some(time_text) = time_part else {
            let next = match (month, day) {
                (None, _) => Date::from_calendar_date(year.checked_add(1)?, Month::January, 1).ok(),
                (Some(_), None) => {
                    let (y, m) = if month_start == Month::December {
                        (year.checked_add(1)?, Month::January)
                    } else {
                        (year, month_start.next())
                    };
                    Date::from_calendar_date(y, m, 1).ok()
                }
                (Some(_), Some(_)) => first.next_day(),
            }?;
            return Some(DateRange {
                start: micros(first.midnight().assume_utc()),
                end: micros(next.midnight().assume_utc()),
            });
        };
        let (clock, offset) = split_offset(time_text)?;
        let mut clock_fields = clock.split(':');
        let hour: u8 = parse_digits(clock_fields.next()?, 2)?;
        let minute: u8 = parse_digits(clock_fields.next()?, 2)?;
        let (second, fraction, step) = match clock_fields.next() {
            None => (0u8, 0u32, 60_000_000i64),
            Some(sec) => match sec.split_once('.') {
                None => (parse_digits(sec, 2)?, 0, 1_000_000),
                Some((s, frac)) => {
                    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    // Precision beyond microseconds is not kept; it then denotes one microsecond.
                    let digits = frac.len().min(6);
                    let value: u32 = frac[..digits].parse().ok()?;
                    let scale = 10u32.pow(6 - digits as u32);
                    (parse_digits(s, 2)?, value * scale, i64::from(scale))
                }
            },
        };
        if clock_fields.next().is_some() {
            return None;
        }
        let time = Time::from_hms_micro(hour, minute, second, fraction).ok()?;
        let start = micros(PrimitiveDateTime::new(first, time).assume_offset(offset));
        Some(DateRange {
            start,
            end: start.checked_add(step)?,
        })
    }
}

fn split_offset(time_text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = time_text.strip_suffix('Z') {
        return Some((clock, UtcOffset::UTC));
    }
    if let Some(pos) = time_text.rfind(['+', '-']) {
        let (clock, off) = time_text.split_at(pos);
        let sign: i8 = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        let h: i8 = parse_digits(h, 2)?;
        let m: i8 = parse_digits(m, 2)?;
        let offset = UtcOffset::from_hms(sign * h, sign * m, 0).ok()?;
        return Some((clock, offset));
    }
    Some((time_text, UtcOffset::UTC))
}

fn parse_digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    if text.len() == len && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Microseconds since the Unix epoch (the unit of every instant the store keeps).
pub fn micros(at: OffsetDateTime) -> i64 {
    // In range for years 1..=9999, which is all `time` represents by default.
    (at.unix_timestamp_nanos() / 1_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> i64 {
        micros(OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap())
    }

    #[test]
    fn date_ranges_follow_precision() {
        let r = DateRange::parse("2025").unwrap();
        assert_eq!(
            (r.start, r.end),
            (at("2025-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))
        );
        let r = DateRange::parse("2025-12").unwrap();
        assert_eq!(
            (r.start, r.end),
            (at("2025-12-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))
        );
        let r = DateRange::parse("2024-02-29").unwrap();
        assert_eq!(
            (r.start, r.end),
            (at("2024-02-29T00:00:00Z"), at("2024-03-01T00:00:00Z"))
        );
        let r = DateRange::parse("2025-04-01T10:30+01:00").unwrap();
        assert_eq!(
            (r.start, r.end),
            (at("2025-04-01T09:30:00Z"), at("2025-04-01T09:31:00Z"))
        );
        let r = DateRange::parse("2025-04-01T10:30:15.25Z").unwrap();
        assert_eq!(r.end - r.start, 10_000);
        for bad in [
            "",
            "25",
            "2025-13",
            "2025-02-30",
            "2025-04-01T",
            "2025-04T10:00",
            "2025-04-01T25:00Z",
            "2025-04-01T10:00:00.Z",
            "abcd",
        ] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn extracts_measure_report_index() {
        let report = json!({
            "resourceType": "MeasureReport",
            "status": "complete",
            "identifier": [{"system": "s", "value": "v"}, {"value": "bare"}],
            "measure": "https://x/Measure/m|2.0",
            "reporter": {"reference": "https://h/fhir/Organization/RX1/_history/3", "identifier": {"system": "ods", "value": "RX1"}},
            "period": {"start": "2025-04-01", "end": "2025-04-30"}
        });
        let index = extract("MeasureReport", &report);
        assert_eq!(index.status.as_deref(), Some("complete"));
        assert_eq!(index.measure_url.as_deref(), Some("https://x/Measure/m"));
        assert_eq!(index.measure_version.as_deref(), Some("2.0"));
        assert_eq!(
            index.period,
            Some((at("2025-04-01T00:00:00Z"), at("2025-05-01T00:00:00Z")))
        );
        let tokens: Vec<(&str, Option<&str>, &str)> = index
            .tokens
            .iter()
            .map(|t| (t.param, t.system.as_deref(), t.value.as_str()))
            .collect();
        for expected in [
            ("identifier", Some("s"), "v"),
            ("identifier", Some(""), "bare"),
            ("reporter", Some("ods"), "RX1"),
            (
                "reporter",
                None,
                "https://h/fhir/Organization/RX1/_history/3",
            ),
            ("reporter", None, "Organization/RX1"),
            ("reporter", None, "RX1"),
        ] {
            assert!(tokens.contains(&expected), "{expected:?} in {tokens:?}");
        }
        assert_eq!(
            index.url, None,
            "Measure fields are not indexed on a MeasureReport"
        );
    }

    #[test]
    fn open_and_unparseable_periods() {
        let open = extract("MeasureReport", &json!({"period": {"start": "2025-06-01"}}));
        assert_eq!(open.period, Some((at("2025-06-01T00:00:00Z"), OPEN_END)));
        let bad = extract("MeasureReport", &json!({"period": {"start": "June"}}));
        assert_eq!(bad.period, None);
        let none = extract("MeasureReport", &json!({"status": 3}));
        assert_eq!(none, SearchIndex::default());
    }

    #[test]
    fn extracts_measure_index() {
        let index = extract(
            "Measure",
            &json!({"url": "https://x/Measure/m", "version": "1", "name": "StillbirthRate", "status": "active"}),
        );
        assert_eq!(
            (
                index.url.as_deref(),
                index.version.as_deref(),
                index.name.as_deref(),
                index.status.as_deref()
            ),
            (
                Some("https://x/Measure/m"),
                Some("1"),
                Some("StillbirthRate"),
                Some("active")
            )
        );
        assert_eq!(index.period, None);
    }

    proptest::proptest! {
        #[test]
        fn date_parsing_never_panics(text in "\\PC{0,40}") {
            if let Some(range) = DateRange::parse(&text) {
                proptest::prop_assert!(range.start < range.end);
            }
        }

        #[test]
        fn valid_dates_denote_nonempty_ranges_in_order(
            y in 1i32..9998, m in 1u8..=12, d in 1u8..=28, h in 0u8..24, mi in 0u8..60, s in 0u8..60
        ) {
            let day = DateRange::parse(&format!("{y:04}-{m:02}-{d:02}")).unwrap();
            let month = DateRange::parse(&format!("{y:04}-{m:02}")).unwrap();
            let year = DateRange::parse(&format!("{y:04}")).unwrap();
            let second = DateRange::parse(&format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")).unwrap();
            // Each finer value lies inside the coarser ones.
            for (inner, outer) in [(second, day), (day, month), (month, year)] {
                proptest::prop_assert!(outer.start <= inner.start && inner.end <= outer.end);
            }
            proptest::prop_assert_eq!(second.end - second.start, 1_000_000);
        }
    }
}
