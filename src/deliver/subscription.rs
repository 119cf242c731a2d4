//! What a Subscription asks for: the gateway's two topics, and [`parse`], which reads an R4
//! Subscription following the FHIR Subscriptions R5 Backport IG (1.1.0, profile
//! `backport-subscription`) into a [`SubscriptionSpec`], and [`SubscriptionSpec::matches`], which
//! decides whether an event reaches it.
//!
//! Pure: no I/O, no clock, no store. Problems are [`Issue`]s with the FHIRPath of the element and
//! what was seen and expected; the API answers them as a 422 OperationOutcome.
//!
//! # The R4 shape accepted
//!
//! ```text
//! Subscription
//!   meta.profile        (optional) .../StructureDefinition/backport-subscription
//!   status              requested | active (both start with a handshake) | off
//!   reason              required (R4 1..1)
//!   end                 optional instant: no notifications after it
//!   criteria            a topic canonical (Topic::url)
//!     extension         backport-filter-criteria, valueString, 0..*:
//!                       "MeasureReport?reporter=RM1" (or "reporter=RM1"); `&` joins filters,
//!                       a comma separates alternatives; values may be `system|code`
//!   channel
//!     type              rest-hook
//!     endpoint          https://... (http only to localhost / 127.0.0.1 / [::1], when allowed)
//!     payload           application/fhir+json (absent: content empty)
//!       extension       backport-payload-content: empty | id-only | full-resource (absent: id-only)
//!     header            "Name: value", 0..*, sent with every notification
//!     extension         backport-heartbeat-period (unsignedInt s), backport-timeout
//!                       (unsignedInt s), backport-max-count (positiveInt)
//! ```
//!
//! # Filters
//!
//! `reporter` (the submitting trust's ODS code), `icb`, `region` (ODS codes) and `indicator` (a
//! `pqom-indicator` code). The same name repeated (or comma-separated values) is OR; different
//! names are AND (the IG: "when multiple filters are applied, evaluates to true if all the
//! conditions are met").

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fhir::{Issue, IssueType, ODS_ORG_SYSTEM};

/// Structure definitions of the Subscriptions R5 Backport IG.
pub const BACKPORT_BASE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";
/// Profile of an R4 topic-based Subscription.
pub const BACKPORT_SUBSCRIPTION: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription";
pub const FILTER_CRITERIA: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
pub const PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
pub const HEARTBEAT_PERIOD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
pub const TIMEOUT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout";
pub const MAX_COUNT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count";

/// The PQOM indicator CodeSystem (filter values may name it).
pub const INDICATOR_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator";

/// The resource type filters are written against (`MeasureReport?reporter=...`): the trust's
/// report is what each event is about.
pub const FILTER_RESOURCE: &str = "MeasureReport";

/// Longest `backport-timeout` accepted: a notification waits at most this long for the endpoint.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Shortest `backport-heartbeat-period` accepted.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);

/// A topic a Subscription can name in `criteria`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every validated trust submission, forwarded as a signed message Bundle.
    Submission,
    /// The consolidated bundle of a region's indicator values.
    RegionalBundle,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Submission, Topic::RegionalBundle];

    /// The canonical URL.
    pub fn url(self) -> &'static str {
        match self {
            Topic::Submission => {
                "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission"
            }
            Topic::RegionalBundle => {
                "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-regional-bundle"
            }
        }
    }

    /// The topic with this canonical (a `|version` suffix is ignored).
    pub fn from_url(url: &str) -> Option<Topic> {
        let url = url.split('|').next().unwrap_or(url);
        Topic::ALL.into_iter().find(|t| t.url() == url)
    }

    /// The id of its published definition (`Basic/{id}`).
    pub fn id(self) -> &'static str {
        match self {
            Topic::Submission => "pqom-validated-submission",
            Topic::RegionalBundle => "pqom-regional-bundle",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Topic::Submission => "PQOM validated submission",
            Topic::RegionalBundle => "PQOM regional bundle",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Topic::Submission => {
                "A trust's PQOM submission passed validation and was stored; the notification's \
                 focus is the signed forwarded message Bundle (MessageHeader event pqom-forward)."
            }
            Topic::RegionalBundle => {
                "A consolidated bundle of indicator values for an ICB or region was assembled; the \
                 notification's focus is the signed message Bundle (event pqom-regional-bundle)."
            }
        }
    }

    /// The topic as an R4 `Basic` resource, the backport IG's representation of a
    /// SubscriptionTopic in R4 (cross-version extensions of R5 `SubscriptionTopic`), so receivers
    /// and tools can discover what they may subscribe to and filter by.
    pub fn definition(self) -> Value {
        const EXT: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic";
        let can_filter = |name: &str, doc: &str| {
            json!({
                "url": format!("{EXT}.canFilterBy"),
                "extension": [
                    { "url": "description", "valueMarkdown": doc },
                    { "url": "resource", "valueUri": FILTER_RESOURCE },
                    { "url": "filterParameter", "valueString": name },
                ]
            })
        };
        json!({
            "resourceType": "Basic",
            "id": self.id(),
            "extension": [
                { "url": format!("{EXT}.url"), "valueUri": self.url() },
                { "url": format!("{EXT}.version"), "valueString": env!("CARGO_PKG_VERSION") },
                { "url": format!("{EXT}.title"), "valueString": self.title() },
                { "url": format!("{EXT}.status"), "valueCode": "active" },
                { "url": format!("{EXT}.description"), "valueMarkdown": self.description() },
                {
                    "url": format!("{EXT}.resourceTrigger"),
                    "extension": [
                        { "url": "description", "valueMarkdown": self.description() },
                        { "url": "resource", "valueUri": "Bundle" },
                        { "url": "supportedInteraction", "valueCode": "create" },
                    ]
                },
                can_filter("reporter", "ODS code of the submitting trust"),
                can_filter("icb", "ODS code of the trust's integrated care board"),
                can_filter("region", "ODS code of the NHS England region"),
                can_filter(
                    "indicator",
                    "A pqom-indicator code the submission reports (mapped Annex 1 indicators)",
                ),
                {
                    "url": format!("{EXT}.notificationShape"),
                    "extension": [ { "url": "resource", "valueUri": "Bundle" } ]
                },
            ],
            "code": {
                "coding": [ {
                    "system": "http://hl7.org/fhir/fhir-types",
                    "code": "SubscriptionTopic"
                } ]
            },
        })
    }
}

/// `backport-payload-content`: how much of the focus a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadContent {
    /// No focus at all: the receiver queries `$events`.
    Empty,
    /// The focus reference only.
    IdOnly,
    /// The focus resource (the signed forwarded Bundle) as an entry.
    FullResource,
}

impl PayloadContent {
    pub fn code(self) -> &'static str {
        match self {
            PayloadContent::Empty => "empty",
            PayloadContent::IdOnly => "id-only",
            PayloadContent::FullResource => "full-resource",
        }
    }

    pub fn from_code(code: &str) -> Option<PayloadContent> {
        match code {
            "empty" => Some(PayloadContent::Empty),
            "id-only" => Some(PayloadContent::IdOnly),
            "full-resource" => Some(PayloadContent::FullResource),
            _ => None,
        }
    }
}

/// A filter parameter of the gateway's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterParam {
    Reporter,
    Icb,
    Region,
    Indicator,
}

impl FilterParam {
    pub const ALL: [FilterParam; 4] = [
        FilterParam::Reporter,
        FilterParam::Icb,
        FilterParam::Region,
        FilterParam::Indicator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FilterParam::Reporter => "reporter",
            FilterParam::Icb => "icb",
            FilterParam::Region => "region",
            FilterParam::Indicator => "indicator",
        }
    }

    pub fn from_name(name: &str) -> Option<FilterParam> {
        FilterParam::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The code system a `system|code` value of this parameter must name.
    fn system(self) -> &'static str {
        match self {
            FilterParam::Indicator => INDICATOR_SYSTEM,
            _ => ODS_ORG_SYSTEM,
        }
    }
}

/// One filter: `param = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub param: FilterParam,
    /// The code (ODS code or indicator code), without a system.
    pub value: String,
}

/// What the parsed Subscription asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub topic: Topic,
    pub filters: Vec<Filter>,
    pub endpoint: String,
    /// `channel.header`, split at the first colon, trimmed.
    pub headers: Vec<(String, String)>,
    pub content: PayloadContent,
    pub heartbeat_period: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_count: Option<u32>,
    pub end: Option<OffsetDateTime>,
    /// `status` was `requested` or `active` (run it, after a handshake); `false` for `off`.
    pub enabled: bool,
}

/// What [`parse_with`] allows beyond the IG.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept `http://` endpoints on the loopback interface (development and tests only).
    pub allow_http_loopback: bool,
}

/// The facts of one event that filters test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// ODS code of the submitting trust.
    pub reporter: String,
    pub icb: Option<String>,
    pub region: Option<String>,
    /// `pqom-indicator` codes the event carries.
    pub indicators: Vec<String>,
}

impl SubscriptionSpec {
    /// Whether an event of `topic` with `facts` reaches this Subscription: same topic, and for
    /// every filter name used, at least one of its values matches (ODS codes compared without
    /// regard to case).
    pub fn matches(&self, topic: Topic, facts: &EventFacts) -> bool {
        if topic != self.topic {
            return false;
        }
        FilterParam::ALL.into_iter().all(|param| {
            let mut values = self
                .filters
                .iter()
                .filter(|f| f.param == param)
                .map(|f| f.value.as_str())
                .peekable();
            if values.peek().is_none() {
                return true;
            }
            let ods =
                |have: Option<&str>, want: &str| have.is_some_and(|h| h.eq_ignore_ascii_case(want));
            values.any(|v| match param {
                FilterParam::Reporter => ods(Some(&facts.reporter), v),
                FilterParam::Icb => ods(facts.icb.as_deref(), v),
                FilterParam::Region => ods(facts.region.as_deref(), v),
                FilterParam::Indicator => facts.indicators.iter().any(|i| i == v),
            })
        })
    }

    /// The filters in backport criteria form, one `backport-filter-criteria` string each
    /// (`MeasureReport?reporter=RM1`), for display and round trips.
    pub fn criteria_strings(&self) -> Vec<String> {
        self.filters
            .iter()
            .map(|f| format!("{FILTER_RESOURCE}?{}={}", f.param.name(), f.value))
            .collect()
    }
}

/// [`parse_with`] with the IG's rules only (https endpoints).
pub fn parse(resource: &Value) -> Result<SubscriptionSpec, Vec<Issue>> {
    parse_with(resource, &ParseOptions::default())
}

fn invalid(code: IssueType, at: &str, message: String) -> Issue {
    Issue::error(code, message).at(at)
}

/// Read an R4 Subscription (see the module docs); every problem found, not just the first.
pub fn parse_with(
    resource: &Value,
    options: &ParseOptions,
) -> Result<SubscriptionSpec, Vec<Issue>> {
    let mut issues = Vec::new();
    let Some(obj) = resource.as_object() else {
        return Err(vec![invalid(
            IssueType::Structure,
            "Subscription",
            "the body is not a JSON object; expected an R4 Subscription resource".into(),
        )]);
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("Subscription") => {}
        other => {
            return Err(vec![invalid(
                IssueType::Invalid,
                "resourceType",
                format!("resourceType is {other:?}; expected \"Subscription\""),
            )]);
        }
    }

    let enabled = match obj.get("status") {
        Some(Value::String(s)) if s == "requested" || s == "active" => true,
        Some(Value::String(s)) if s == "off" => false,
        Some(Value::String(s)) if s == "error" => {
            issues.push(invalid(
                IssueType::Value,
                "Subscription.status",
                "status is 'error', which only the gateway sets; send 'requested' (or 'active') \
                 to start the Subscription, 'off' to pause it"
                    .into(),
            ));
            false
        }
        None => {
            issues.push(invalid(
                IssueType::Required,
                "Subscription.status",
                "status is missing; expected 'requested' (or 'active') to start, 'off' to pause"
                    .into(),
            ));
            false
        }
        Some(other) => {
            issues.push(invalid(
                IssueType::CodeInvalid,
                "Subscription.status",
                format!(
                    "status is {other}; expected one of 'requested', 'active', 'off' \
                     (subscription-status)"
                ),
            ));
            false
        }
    };

    if obj
        .get("reason")
        .and_then(Value::as_str)
        .is_none_or(|r| r.trim().is_empty())
    {
        issues.push(invalid(
            IssueType::Required,
            "Subscription.reason",
            "reason is missing or empty; FHIR R4 requires it (1..1): say why this system \
             subscribes"
                .into(),
        ));
    }

    let end = match obj.get("end") {
        None => None,
        Some(Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                issues.push(invalid(
                    IssueType::Value,
                    "Subscription.end",
                    format!(
                        "end is '{s}'; expected an instant with time zone, e.g. \
                         2027-03-31T23:59:59Z"
                    ),
                ));
                None
            }
        },
        Some(other) => {
            issues.push(invalid(
                IssueType::Value,
                "Subscription.end",
                format!("end is {other}; expected an instant string"),
            ));
            None
        }
    };

    let topic = match obj.get("criteria") {
        Some(Value::String(c)) => match Topic::from_url(c) {
            Some(t) => Some(t),
            None => {
                let hint = if c.contains('?') && !c.starts_with("http") {
                    " (an R4 query-based criteria string; this gateway supports topic-based \
                     subscriptions only, per the Subscriptions R5 Backport IG: put the topic \
                     canonical in criteria and filters in its backport-filter-criteria extension)"
                } else {
                    ""
                };
                issues.push(invalid(
                    IssueType::Value,
                    "Subscription.criteria",
                    format!(
                        "criteria is '{c}', which is not a topic of this gateway{hint}; expected \
                         one of {}",
                        Topic::ALL.map(|t| t.url()).join(", ")
                    ),
                ));
                None
            }
        },
        _ => {
            issues.push(invalid(
                IssueType::Required,
                "Subscription.criteria",
                format!(
                    "criteria is missing or not a string; expected a topic canonical: one of {}",
                    Topic::ALL.map(|t| t.url()).join(", ")
                ),
            ));
            None
        }
    };

    let filters = parse_filters(obj.get("_criteria"), &mut issues);
    let channel = parse_channel(obj.get("channel"), options, &mut issues);

    match (topic, channel) {
        (Some(topic), Some(channel)) if issues.is_empty() => Ok(SubscriptionSpec {
            topic,
            filters,
            endpoint: channel.endpoint,
            headers: channel.headers,
            content: channel.content,
            heartbeat_period: channel.heartbeat_period,
            timeout: channel.timeout,
            max_count: channel.max_count,
            end,
            enabled,
        }),
        _ => Err(issues),
    }
}

/// The `backport-filter-criteria` extensions on `_criteria`.
fn parse_filters(criteria_ext: Option<&Value>, issues: &mut Vec<Issue>) -> Vec<Filter> {
    let mut filters = Vec::new();
    let Some(extensions) = criteria_ext
        .and_then(|c| c.get("extension"))
        .and_then(Value::as_array)
    else {
        return filters;
    };
    for (i, ext) in extensions.iter().enumerate() {
        if ext.get("url").and_then(Value::as_str) != Some(FILTER_CRITERIA) {
            continue;
        }
        let at = format!("Subscription.criteria.extension[{i}].value");
        let Some(text) = ext.get("valueString").and_then(Value::as_str) else {
            issues.push(invalid(
                IssueType::Value,
                &at,
                "backport-filter-criteria has no valueString; expected e.g. \
                 'MeasureReport?reporter=RM1'"
                    .into(),
            ));
            continue;
        };
        let query = match text.split_once('?') {
            Some((ty, q)) if ty == FILTER_RESOURCE => q,
            Some((ty, _)) => {
                issues.push(invalid(
                    IssueType::Value,
                    &at,
                    format!(
                        "filter '{text}' is written against '{ty}'; this gateway's topics filter \
                         on {FILTER_RESOURCE} (e.g. '{FILTER_RESOURCE}?reporter=RM1')"
                    ),
                ));
                continue;
            }
            None => text,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some((name, values)) = pair.split_once('=') else {
                issues.push(invalid(
                    IssueType::Value,
                    &at,
                    format!("filter '{pair}' has no '='; expected name=value, e.g. reporter=RM1"),
                ));
                continue;
            };
            let Some(param) = FilterParam::from_name(name) else {
                issues.push(invalid(
                    IssueType::NotSupported,
                    &at,
                    format!(
                        "filter parameter '{name}' is not supported; the topics can filter by {}",
                        FilterParam::ALL.map(|p| p.name()).join(", ")
                    ),
                ));
                continue;
            };
            for value in values.split(',') {
                match filter_value(param, value) {
                    Ok(v) => filters.push(Filter { param, value: v }),
                    Err(message) => issues.push(invalid(IssueType::Value, &at, message)),
                }
            }
        }
    }
    filters
}

fn filter_value(param: FilterParam, value: &str) -> Result<String, String> {
    let code = match value.split_once('|') {
        Some((system, code)) if system == param.system() || system.is_empty() => code,
        Some((system, _)) => {
            return Err(format!(
                "{} value '{value}' names system '{system}'; expected {} (or a bare code)",
                param.name(),
                param.system()
            ));
        }
        None => value,
    };
    let ok = match param {
        FilterParam::Indicator => {
            !code.is_empty()
                && code.len() <= 64
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        _ => {
            (3..=12).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
    };
    if ok {
        Ok(code.to_owned())
    } else if param == FilterParam::Indicator {
        Err(format!(
            "indicator value '{value}' is not a pqom-indicator code; expected lower-case letters, \
             digits and hyphens, e.g. stillbirth-rate"
        ))
    } else {
        Err(format!(
            "{} value '{value}' is not an ODS code; expected 3 to 12 upper-case letters and \
             digits, e.g. {}",
            param.name(),
            match param {
                FilterParam::Reporter => "RM1",
                FilterParam::Icb => "QMM",
                _ => "Y61",
            }
        ))
    }
}

struct Channel {
    endpoint: String,
    headers: Vec<(String, String)>,
    content: PayloadContent,
    heartbeat_period: Option<Duration>,
    timeout: Option<Duration>,
    max_count: Option<u32>,
}

fn parse_channel(
    channel: Option<&Value>,
    options: &ParseOptions,
    issues: &mut Vec<Issue>,
) -> Option<Channel> {
    let Some(channel) = channel.and_then(Value::as_object) else {
        issues.push(invalid(
            IssueType::Required,
            "Subscription.channel",
            "channel is missing; expected { type: rest-hook, endpoint: https://..., payload: \
             application/fhir+json }"
                .into(),
        ));
        return None;
    };
    let before = issues.len();
    match channel.get("type").and_then(Value::as_str) {
        Some("rest-hook") => {}
        Some(other) => issues.push(invalid(
            IssueType::NotSupported,
            "Subscription.channel.type",
            format!("channel type is '{other}'; this gateway delivers by 'rest-hook' only"),
        )),
        None => issues.push(invalid(
            IssueType::Required,
            "Subscription.channel.type",
            "channel type is missing; expected 'rest-hook'".into(),
        )),
    }
    let endpoint = match channel.get("endpoint").and_then(Value::as_str) {
        Some(e) => {
            if let Err(message) = check_endpoint(e, options) {
                issues.push(invalid(
                    IssueType::Value,
                    "Subscription.channel.endpoint",
                    message,
                ));
            }
            e.to_owned()
        }
        None => {
            issues.push(invalid(
                IssueType::Required,
                "Subscription.channel.endpoint",
                "endpoint is missing; a rest-hook needs the https URL notifications are POSTed \
                 to"
                .into(),
            ));
            String::new()
        }
    };
    let content = match channel.get("payload") {
        None => PayloadContent::Empty,
        Some(Value::String(p)) if p == "application/fhir+json" || p == "application/json" => {
            payload_content(channel.get("_payload"), issues)
        }
        Some(other) => {
            issues.push(invalid(
                IssueType::NotSupported,
                "Subscription.channel.payload",
                format!(
                    "payload is {other}; this gateway sends 'application/fhir+json' (or omit it \
                     for empty notifications)"
                ),
            ));
            PayloadContent::Empty
        }
    };
    let mut headers = Vec::new();
    match channel.get("header") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, h) in list.iter().enumerate() {
                match h.as_str().map(parse_header) {
                    Some(Ok(pair)) => headers.push(pair),
                    Some(Err(message)) => issues.push(invalid(
                        IssueType::Value,
                        &format!("Subscription.channel.header[{i}]"),
                        message,
                    )),
                    None => issues.push(invalid(
                        IssueType::Value,
                        &format!("Subscription.channel.header[{i}]"),
                        format!("header is {h}; expected a string 'Name: value'"),
                    )),
                }
            }
        }
        Some(other) => issues.push(invalid(
            IssueType::Structure,
            "Subscription.channel.header",
            format!("header is {other}; expected an array of 'Name: value' strings"),
        )),
    }
    let mut heartbeat_period = None;
    let mut timeout = None;
    let mut max_count = None;
    if let Some(extensions) = channel.get("extension").and_then(Value::as_array) {
        for (i, ext) in extensions.iter().enumerate() {
            let at = format!("Subscription.channel.extension[{i}].value");
            match ext.get("url").and_then(Value::as_str) {
                Some(HEARTBEAT_PERIOD) => {
                    match ext.get("valueUnsignedInt").and_then(Value::as_u64) {
                        Some(s) if Duration::from_secs(s) >= MIN_HEARTBEAT => {
                            heartbeat_period = Some(Duration::from_secs(s));
                        }
                        Some(0) => {} // 0: no heartbeats
                        _ => issues.push(invalid(
                            IssueType::Value,
                            &at,
                            format!(
                                "backport-heartbeat-period is {}; expected valueUnsignedInt, \
                                 seconds between heartbeats (at least {} s)",
                                ext.get("valueUnsignedInt").unwrap_or(&Value::Null),
                                MIN_HEARTBEAT.as_secs()
                            ),
                        )),
                    }
                }
                Some(TIMEOUT) => match ext.get("valueUnsignedInt").and_then(Value::as_u64) {
                    Some(s) if s >= 1 && Duration::from_secs(s) <= MAX_TIMEOUT => {
                        timeout = Some(Duration::from_secs(s));
                    }
                    _ => issues.push(invalid(
                        IssueType::Value,
                        &at,
                        format!(
                            "backport-timeout is {}; expected valueUnsignedInt, seconds, from 1 \
                             to {}",
                            ext.get("valueUnsignedInt").unwrap_or(&Value::Null),
                            MAX_TIMEOUT.as_secs()
                        ),
                    )),
                },
                Some(MAX_COUNT) => match ext
                    .get("valuePositiveInt")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                {
                    Some(n) if n >= 1 => max_count = Some(n),
                    _ => issues.push(invalid(
                        IssueType::Value,
                        &at,
                        format!(
                            "backport-max-count is {}; expected valuePositiveInt (1 or more)",
                            ext.get("valuePositiveInt").unwrap_or(&Value::Null)
                        ),
                    )),
                },
                _ => {}
            }
        }
    }
    (issues.len() == before).then_some(Channel {
        endpoint,
        headers,
        content,
        heartbeat_period,
        timeout,
        max_count,
    })
}

fn payload_content(payload_ext: Option<&Value>, issues: &mut Vec<Issue>) -> PayloadContent {
    let Some(extensions) = payload_ext
        .and_then(|p| p.get("extension"))
        .and_then(Value::as_array)
    else {
        return PayloadContent::IdOnly;
    };
    for (i, ext) in extensions.iter().enumerate() {
        if ext.get("url").and_then(Value::as_str) != Some(PAYLOAD_CONTENT) {
            continue;
        }
        let code = ext.get("valueCode").and_then(Value::as_str);
        match code.and_then(PayloadContent::from_code) {
            Some(c) => return c,
            None => {
                issues.push(invalid(
                    IssueType::CodeInvalid,
                    &format!("Subscription.channel.payload.extension[{i}].value"),
                    format!(
                        "backport-payload-content is {}; expected valueCode empty, id-only or \
                         full-resource",
                        ext.get("valueCode").unwrap_or(&Value::Null)
                    ),
                ));
                return PayloadContent::IdOnly;
            }
        }
    }
    PayloadContent::IdOnly
}

fn check_endpoint(endpoint: &str, options: &ParseOptions) -> Result<(), String> {
    let Ok(url) = reqwest::Url::parse(endpoint) else {
        return Err(format!(
            "endpoint '{endpoint}' is not an absolute URL; expected https://host/path"
        ));
    };
    let loopback = url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback && options.allow_http_loopback => Ok(()),
        "http" if loopback => Err(format!(
            "endpoint '{endpoint}' is plain http; expected https (http to localhost is allowed \
             only when the gateway runs with --subscription-http-loopback)"
        )),
        scheme => Err(format!(
            "endpoint '{endpoint}' uses '{scheme}'; expected an https URL (notifications carry \
             headers such as bearer tokens, and the trusts' quality data)"
        )),
    }
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(format!("header '{h}' has no ':'; expected 'Name: value'"));
    };
    let (name, value) = (name.trim(), value.trim());
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "header name '{name}' is not a valid HTTP header name; expected e.g. 'Authorization'"
        ));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header '{name}' has characters HTTP does not allow in a header"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "content-type" | "content-length" | "host" | "transfer-encoding" | "connection"
    ) {
        return Err(format!(
            "header '{name}' is set by the gateway itself; only other headers (e.g. \
             Authorization) may be given"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests;
