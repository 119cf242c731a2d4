//! FHIR search over stored resources: the typed query ([`SearchQuery`]), its parser from HTTP
//! query parameters (client mistakes become [`Issue`]s, never store errors), the opaque paging
//! cursor, and the one SQL `WHERE` builder both backends use.
//!
//! Search matches the *current* version of each resource, through the columns that
//! [`super::index::extract`] filled in when that version was written.
//!
//! # Parameters
//!
//! | parameter | types | semantics |
//! |---|---|---|
//! | `identifier` | all | token: `code`, `system\|code`, `\|code` (no system), `system\|` |
//! | `status` | all | exact code |
//! | `_lastUpdated` | all | date with prefix, against the instant of the current version |
//! | `reporter` | MeasureReport | `code` (ODS code or bare id), `system\|code`, or a reference `Organization/id` |
//! | `period` | MeasureReport | date with prefix, against `MeasureReport.period` (below) |
//! | `measure` | MeasureReport | canonical; `url` matches every version, `url\|version` one |
//! | `url`, `version` | Measure | exact |
//! | `name` | Measure | case-insensitive starts-with; `name:exact` is exact and case-sensitive |
//! | `_count` | all | page size, default 20, at most 200 |
//! | `_sort` | all | `_lastUpdated` (default) or `-_lastUpdated` |
//! | `_cursor` | all | the opaque position returned as [`SearchPage::next`] |
//!
//! A comma inside one value means OR (`status=final,error`); repeating a parameter means AND
//! (`period=ge2025-01&period=lt2025-04`).
//!
//! # Date prefixes
//!
//! As in FHIR R4 (search.html#prefix), comparing *ranges*: the search value `2025-04` is the range
//! `[2025-04-01, 2025-05-01)`, a period is `[lower bound of start, upper bound of end)` (an
//! absent start or end is open), `_lastUpdated` is one instant. With search range `[pl, pu)` and
//! target range `[lo, hi)`:
//!
//! - `eq` (default): the search range contains the target: `pl <= lo && hi <= pu`
//! - `ne`: not `eq`
//! - `gt`: the target extends after the search range: `hi > pu`
//! - `lt`: the target extends before the search range: `lo < pl`
//! - `ge`: `gt` or `eq`; `le`: `lt` or `eq`
//! - `sa`: the target starts after the search range: `lo >= pu`
//! - `eb`: the target ends before the search range: `hi <= pl`
//!
//! So for a report covering April 2025, `period=2025-04`, `period=ge2025-04-01`,
//! `period=le2025-04-30` and `period=sa2025-03` match; `period=2025-04-01` (one day) does not.
//! A resource without a period matches no `period` criterion. Times without an offset are UTC.
//!
//! # Paging
//!
//! Results are ordered by (`_lastUpdated`, id) and paged by keyset, not offset: the cursor is the
//! position of the last row of a page, so pages stay consistent while reports arrive. In
//! ascending order (the default) a resource updated while a client pages moves to the end and
//! is seen again in its new version rather than skipped.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::StoredResource;
use super::index::DateRange;
use crate::fhir::{Issue, IssueType};

/// Page size when `_count` is not given.
pub const DEFAULT_COUNT: u32 = 20;
/// Largest page size; a larger `_count` is clamped to it (FHIR lets a server return fewer).
pub const MAX_COUNT: u32 = 200;

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// All must hold (AND).
    pub criteria: Vec<Criterion>,
    /// Page size, `1..=MAX_COUNT`.
    pub count: u32,
    pub order: Order,
    /// Continue after this position (from [`SearchPage::next`]).
    pub after: Option<Cursor>,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            criteria: Vec::new(),
            count: DEFAULT_COUNT,
            order: Order::Ascending,
            after: None,
        }
    }
}

/// One search parameter occurrence; each holds a list of alternatives (OR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Identifier(Vec<TokenValue>),
    Reporter(Vec<TokenValue>),
    Status(Vec<String>),
    /// Canonical URL and, optionally, version.
    Measure(Vec<(String, Option<String>)>),
    Period(Vec<DateFilter>),
    LastUpdated(Vec<DateFilter>),
    Url(Vec<String>),
    Version(Vec<String>),
    /// `exact`: equal, case-sensitive; otherwise case-insensitive starts-with (FHIR string
    /// search; case folding is ASCII-only on SQLite).
    Name {
        exact: bool,
        any_of: Vec<String>,
    },
}

/// A token search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenValue {
    /// `code`: any system (for `reporter`, also a reference `Type/id` or bare `id`).
    Code(String),
    /// `system|code`; `system` empty for `|code` (no system).
    SystemCode { system: String, code: String },
    /// `system|`: any code in the system.
    System(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFilter {
    pub prefix: Prefix,
    pub range: DateRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// A keyset position: the `(last_updated, id)` of the last resource of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_updated: i64,
    pub id: String,
}

impl Cursor {
    /// The opaque form put in `next` links.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("1:{}:{}", self.last_updated, self.id))
    }

    pub fn decode(token: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix("1:")?;
        let (at, id) = rest.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        Some(Cursor {
            last_updated: at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub resources: Vec<StoredResource>,
    /// Cursor for the next page (`_cursor=`), `None` on the last page.
    pub next: Option<String>,
}

impl SearchQuery {
    /// The query parameters of the `next` link: the client's own parameters with `_cursor`
    /// replaced, so that following `next` repeats the same search from the new position.
    pub fn next_params(params: &[(String, String)], next: &str) -> Vec<(String, String)> {
        params
            .iter()
            .filter(|(key, _)| key != "_cursor")
            .cloned()
            .chain(std::iter::once(("_cursor".to_owned(), next.to_owned())))
            .collect()
    }

    /// Parse HTTP query parameters for a search on `resource_type`. Unknown parameters,
    /// parameters that do not apply to the type, and malformed values are reported together
    /// (`not-supported` or `value` issues naming the parameter in their diagnostics; a search
    /// parameter is not a FHIRPath, so no expression).
    /// `_format` and `_pretty` are presentation parameters for the API and are ignored here.
    pub fn parse(
        resource_type: &str,
        params: &[(String, String)],
    ) -> Result<SearchQuery, Vec<Issue>> {
        let mut query = SearchQuery::default();
        let mut issues = Vec::new();
        for (key, raw) in params {
            let (name, modifier) = match key.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (key.as_str(), None),
            };
            let applies = match name {
                "_count" | "_sort" | "_cursor" | "_lastUpdated" | "identifier" | "status" => true,
                "_format" | "_pretty" => continue,
                "reporter" | "period" | "measure" => resource_type == "MeasureReport",
                "url" | "version" | "name" => resource_type == "Measure",
                _ => false,
            };
            if !applies {
                issues.push(Issue::error(
                    IssueType::NotSupported,
                    format!("search parameter '{name}' is not supported for {resource_type}"),
                ));
                continue;
            }
            let modifier_ok = matches!((name, modifier), (_, None) | ("name", Some("exact")));
            if !modifier_ok {
                issues.push(Issue::error(
                    IssueType::NotSupported,
                    format!("modifier '{key}' is not supported"),
                ));
                continue;
            }
            match parse_one(name, modifier, raw, &mut query) {
                Ok(()) => {}
                Err(diagnostics) => issues.push(Issue::error(
                    IssueType::Value,
                    format!("{key}={raw}: {diagnostics}"),
                )),
            }
        }
        if issues.is_empty() {
            Ok(query)
        } else {
            Err(issues)
        }
    }
}

fn parse_one(
    name: &str,
    modifier: Option<&str>,
    raw: &str,
    query: &mut SearchQuery,
) -> Result<(), String> {
    match name {
        "_count" => {
            let n: u32 = raw
                .parse()
                .map_err(|_| "expected a non-negative integer".to_owned())?;
            if n == 0 {
                return Err("expected a page size of at least 1".to_owned());
            }
            query.count = n.min(MAX_COUNT);
        }
        "_sort" => {
            query.order = match raw {
                "_lastUpdated" => Order::Ascending,
                "-_lastUpdated" => Order::Descending,
                _ => return Err("only _lastUpdated and -_lastUpdated are supported".to_owned()),
            }
        }
        "_cursor" => {
            query.after = Some(Cursor::decode(raw).ok_or("not a cursor this server issued")?);
        }
        "identifier" => query.criteria.push(Criterion::Identifier(tokens(raw)?)),
        "reporter" => query.criteria.push(Criterion::Reporter(tokens(raw)?)),
        "status" => query.criteria.push(Criterion::Status(strings(raw)?)),
        "url" => query.criteria.push(Criterion::Url(strings(raw)?)),
        "version" => query.criteria.push(Criterion::Version(strings(raw)?)),
        "name" => query.criteria.push(Criterion::Name {
            exact: modifier == Some("exact"),
            any_of: strings(raw)?,
        }),
        "measure" => {
            let mut any_of = Vec::new();
            for canonical in split_raw(raw, ',') {
                let parts: Vec<String> = split_raw(canonical, '|')
                    .into_iter()
                    .map(unescape)
                    .collect();
                match parts.as_slice() {
                    [url] if !url.is_empty() => any_of.push((url.clone(), None)),
                    [url, version] if !url.is_empty() && !version.is_empty() => {
                        any_of.push((url.clone(), Some(version.clone())))
                    }
                    _ => return Err("expected a canonical URL, optionally |version".to_owned()),
                }
            }
            query.criteria.push(Criterion::Measure(non_empty(any_of)?));
        }
        "period" => query.criteria.push(Criterion::Period(dates(raw)?)),
        "_lastUpdated" => query.criteria.push(Criterion::LastUpdated(dates(raw)?)),
        _ => return Err("unsupported".to_owned()),
    }
    Ok(())
}

fn non_empty<T>(values: Vec<T>) -> Result<Vec<T>, String> {
    if values.is_empty() {
        Err("expected a value".to_owned())
    } else {
        Ok(values)
    }
}

fn strings(raw: &str) -> Result<Vec<String>, String> {
    non_empty(
        split_raw(raw, ',')
            .into_iter()
            .map(unescape)
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn tokens(raw: &str) -> Result<Vec<TokenValue>, String> {
    let mut out = Vec::new();
    for alternative in split_raw(raw, ',') {
        let parts: Vec<String> = split_raw(alternative, '|')
            .into_iter()
            .map(unescape)
            .collect();
        out.push(match parts.as_slice() {
            [code] if !code.is_empty() => TokenValue::Code(code.clone()),
            [system, code] if code.is_empty() && !system.is_empty() => {
                TokenValue::System(system.clone())
            }
            [system, code] if !code.is_empty() => TokenValue::SystemCode {
                system: system.clone(),
                code: code.clone(),
            },
            _ => return Err("expected code, system|code, |code or system|".to_owned()),
        });
    }
    non_empty(out)
}

fn dates(raw: &str) -> Result<Vec<DateFilter>, String> {
    let mut out = Vec::new();
    for alternative in split_raw(raw, ',').into_iter().map(unescape) {
        let (prefix, rest) = match alternative.get(..2) {
            Some("eq") => (Prefix::Eq, &alternative[2..]),
            Some("ne") => (Prefix::Ne, &alternative[2..]),
            Some("gt") => (Prefix::Gt, &alternative[2..]),
            Some("lt") => (Prefix::Lt, &alternative[2..]),
            Some("ge") => (Prefix::Ge, &alternative[2..]),
            Some("le") => (Prefix::Le, &alternative[2..]),
            Some("sa") => (Prefix::Sa, &alternative[2..]),
            Some("eb") => (Prefix::Eb, &alternative[2..]),
            _ => (Prefix::Eq, alternative.as_str()),
        };
        let range = DateRange::parse(rest).ok_or_else(|| {
            format!("'{rest}' is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm:ssZ) after an optional prefix eq|ne|gt|lt|ge|le|sa|eb")
        })?;
        out.push(DateFilter { prefix, range });
    }
    non_empty(out)
}

/// Split at each `sep` not escaped by a backslash; escapes are kept for [`unescape`] (FHIR
/// search escaping: `\,` `\|` `\$` `\\`).
fn split_raw(raw: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                parts.push(&raw[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

fn unescape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut escaped = false;
    for c in part.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

/// Append ` AND ...` conditions for `query` to a statement that selects from `resource r`
/// (the current-version row with the index columns). Shared by both backends.
pub(crate) fn push_criteria<DB>(qb: &mut QueryBuilder<DB>, query: &SearchQuery)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    for criterion in &query.criteria {
        qb.push(" AND (");
        match criterion {
            Criterion::Identifier(values) => push_tokens(qb, "identifier", values),
            Criterion::Reporter(values) => push_tokens(qb, "reporter", values),
            Criterion::Status(values) => push_in(qb, "r.status", values),
            Criterion::Url(values) => push_in(qb, "r.url", values),
            Criterion::Version(values) => push_in(qb, "r.version", values),
            Criterion::Name { exact, any_of } => {
                for (i, name) in any_of.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    if *exact {
                        qb.push("r.name = ").push_bind(name.clone());
                    } else {
                        qb.push("LOWER(r.name) LIKE ")
                            .push_bind(format!("{}%", escape_like(&name.to_lowercase())))
                            .push(" ESCAPE '\\'");
                    }
                }
            }
            Criterion::Measure(values) => {
                for (i, (url, version)) in values.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("(r.measure_url = ").push_bind(url.clone());
                    if let Some(version) = version {
                        qb.push(" AND r.measure_version = ")
                            .push_bind(version.clone());
                    }
                    qb.push(")");
                }
            }
            Criterion::Period(filters) => push_dates(qb, "r.period_start", "r.period_end", filters),
            Criterion::LastUpdated(filters) => {
                push_dates(qb, "r.last_updated", "(r.last_updated + 1)", filters)
            }
        }
        qb.push(")");
    }
    if let Some(after) = &query.after {
        let op = match query.order {
            Order::Ascending => ">",
            Order::Descending => "<",
        };
        qb.push(" AND (r.last_updated ")
            .push(op)
            .push(" ")
            .push_bind(after.last_updated)
            .push(" OR (r.last_updated = ")
            .push_bind(after.last_updated)
            .push(" AND r.id ")
            .push(op)
            .push(" ")
            .push_bind(after.id.clone())
            .push("))");
    }
    qb.push(match query.order {
        Order::Ascending => " ORDER BY r.last_updated ASC, r.id ASC",
        Order::Descending => " ORDER BY r.last_updated DESC, r.id DESC",
    });
    // One extra row tells whether there is a next page.
    qb.push(" LIMIT ").push_bind(i64::from(query.count) + 1);
}

fn push_in<DB>(qb: &mut QueryBuilder<DB>, column: &str, values: &[String])
where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    qb.push(column).push(" IN (");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push_bind(value.clone());
    }
    qb.push(")");
}

fn push_tokens<DB>(qb: &mut QueryBuilder<DB>, param: &str, values: &[TokenValue])
where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    qb.push(
        "EXISTS (SELECT 1 FROM resource_token t \
         WHERE t.resource_type = r.resource_type AND t.id = r.id AND t.param = ",
    )
    .push_bind(param.to_owned())
    .push(" AND (");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        match value {
            TokenValue::Code(code) => {
                qb.push("t.value = ").push_bind(code.clone());
            }
            TokenValue::SystemCode { system, code } => {
                qb.push("(t.system = ")
                    .push_bind(system.clone())
                    .push(" AND t.value = ")
                    .push_bind(code.clone())
                    .push(")");
            }
            TokenValue::System(system) => {
                qb.push("t.system = ").push_bind(system.clone());
            }
        }
    }
    qb.push("))");
}

fn push_dates<DB>(qb: &mut QueryBuilder<DB>, lo: &str, hi: &str, filters: &[DateFilter])
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    for (i, filter) in filters.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        let (pl, pu) = (filter.range.start, filter.range.end);
        let contained = |qb: &mut QueryBuilder<DB>| {
            qb.push("(")
                .push(lo)
                .push(" >= ")
                .push_bind(pl)
                .push(" AND ")
                .push(hi)
                .push(" <= ")
                .push_bind(pu)
                .push(")");
        };
        qb.push("(");
        match filter.prefix {
            Prefix::Eq => contained(qb),
            Prefix::Ne => {
                // A resource without the value matches no criterion, `ne` included.
                qb.push(lo).push(" IS NOT NULL AND NOT ");
                contained(qb);
            }
            Prefix::Gt => {
                qb.push(hi).push(" > ").push_bind(pu);
            }
            Prefix::Lt => {
                qb.push(lo).push(" < ").push_bind(pl);
            }
            Prefix::Ge => {
                qb.push(hi).push(" > ").push_bind(pu).push(" OR ");
                contained(qb);
            }
            Prefix::Le => {
                qb.push(lo).push(" < ").push_bind(pl).push(" OR ");
                contained(qb);
            }
            Prefix::Sa => {
                qb.push(lo).push(" >= ").push_bind(pu);
            }
            Prefix::Eb => {
                qb.push(hi).push(" <= ").push_bind(pl);
            }
        }
        qb.push(")");
    }
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            last_updated: 1_700_000_000_123_456,
            id: "a:b-c".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }

    #[test]
    fn parses_tokens_dates_and_paging() {
        let q = SearchQuery::parse(
            "MeasureReport",
            &params(&[
                (
                    "reporter",
                    "https://fhir.nhs.uk/Id/ods-organization-code|RX1,Organization/RX2",
                ),
                ("identifier", "|abc"),
                ("period", "ge2025-04"),
                ("period", "lt2025-07-01T00:00:00Z"),
                ("measure", "https://x/Measure/m|1.0"),
                ("_count", "1000"),
                ("_sort", "-_lastUpdated"),
            ]),
        )
        .unwrap();
        assert_eq!(q.count, MAX_COUNT);
        assert_eq!(q.order, Order::Descending);
        assert_eq!(
            q.criteria[0],
            Criterion::Reporter(vec![
                TokenValue::SystemCode {
                    system: "https://fhir.nhs.uk/Id/ods-organization-code".into(),
                    code: "RX1".into()
                },
                TokenValue::Code("Organization/RX2".into()),
            ])
        );
        assert_eq!(
            q.criteria[1],
            Criterion::Identifier(vec![TokenValue::SystemCode {
                system: String::new(),
                code: "abc".into()
            }])
        );
        let Criterion::Period(p) = &q.criteria[2] else {
            panic!("period expected")
        };
        assert_eq!(p[0].prefix, Prefix::Ge);
        assert_eq!(
            q.criteria[4],
            Criterion::Measure(vec![("https://x/Measure/m".into(), Some("1.0".into()))])
        );
    }

    #[test]
    fn next_params_replace_the_cursor_only() {
        let next = SearchQuery::next_params(
            &params(&[("reporter", "RX1"), ("_cursor", "old"), ("_count", "5")]),
            "new",
        );
        assert_eq!(
            next,
            params(&[("reporter", "RX1"), ("_count", "5"), ("_cursor", "new")])
        );
    }

    #[test]
    fn reports_every_bad_parameter() {
        let issues = SearchQuery::parse(
            "Measure",
            &params(&[
                ("reporter", "RX1"),
                ("_count", "x"),
                ("name:contains", "a"),
                ("_lastUpdated", "gt2025-13"),
                ("_cursor", "zzz"),
            ]),
        )
        .unwrap_err();
        assert_eq!(issues.len(), 5);
    }

    #[test]
    fn escaped_separators_stay_in_values() {
        assert_eq!(split_raw(r"a\,b,c", ','), vec![r"a\,b", "c"]);
        assert_eq!(unescape(r"a\,b"), "a,b");
        assert_eq!(
            tokens(r"sys|a\|b").unwrap(),
            vec![TokenValue::SystemCode {
                system: "sys".into(),
                code: "a|b".into()
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "reporter", "period", "measure", "status", "identifier", "_lastUpdated",
                        "url", "version", "name", "name:exact", "_count", "_sort", "_cursor", "x",
                    ]),
                    "\\PC{0,30}",
                ),
                0..6,
            )
        ) {
            let params: Vec<(String, String)> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            for resource_type in ["MeasureReport", "Measure"] {
                if let Ok(query) = SearchQuery::parse(resource_type, &params) {
                    proptest::prop_assert!((1..=MAX_COUNT).contains(&query.count));
                }
            }
        }
    }
}
