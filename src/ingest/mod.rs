//! What a submission is: a FHIR message Bundle (MessageHeader first, focus resolved inside the
//! bundle) or a single REST resource. Envelope checks on the bytes as received; keeps those bytes.
//!
//! The body is parsed exactly once, after a cheap byte scan has bounded its nesting depth (a
//! deeply nested document is refused before the parser recurses into it). Everything found wrong
//! is an [`IngestError`] carrying [`Issue`]s with a FHIRPath expression.
//!
//! Must not: validate against profiles (that is `validate`), touch storage, or know about HTTP.

mod references;

use serde_json::Value;

use crate::fhir::{Issue, IssueType};

pub use references::{EntryRef, resolve};

/// Resource types a message may have as its focus, and that the REST endpoints accept.
pub const FOCUS_TYPES: &[&str] = &["MeasureReport", "Measure"];

/// serde_json refuses documents nested deeper than 128; a configured limit above this would be
/// reported as "not JSON" instead of "too deep", so it is capped here.
pub const MAX_DEPTH_CAP: usize = 120;

/// Bounds applied to every submission before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, in bytes (enforced by the HTTP layer before the body is read).
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting (objects and arrays), root object = 1.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// The envelope checks that failed. Each variant carries the issues to give the submitter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the body is not JSON")]
    NotJson(Issue),
    #[error("the JSON is nested too deeply")]
    TooDeep(Issue),
    #[error("the body is not a FHIR resource")]
    NotAResource(Issue),
    #[error("the resource type does not match the endpoint")]
    WrongResourceType(Issue),
    /// The Bundle is not a usable FHIR message. `header` is set when the MessageHeader could be
    /// read, so that a response message can still be sent.
    #[error("the message envelope is invalid")]
    InvalidMessage {
        header: Option<Box<HeaderInfo>>,
        issues: Vec<Issue>,
    },
}

impl IngestError {
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            IngestError::NotJson(i)
            | IngestError::TooDeep(i)
            | IngestError::NotAResource(i)
            | IngestError::WrongResourceType(i) => vec![i.clone()],
            IngestError::InvalidMessage { issues, .. } => issues.clone(),
        }
    }

    /// Short, stable label for metrics (`reason` of a rejected submission).
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::NotJson(_) => "not-json",
            IngestError::TooDeep(_) => "too-deep",
            IngestError::NotAResource(_) => "not-a-resource",
            IngestError::WrongResourceType(_) => "wrong-resource-type",
            IngestError::InvalidMessage { .. } => "invalid-message",
        }
    }

    /// The MessageHeader, when the envelope got far enough to read it.
    pub fn header(&self) -> Option<&HeaderInfo> {
        match self {
            IngestError::InvalidMessage { header, .. } => header.as_deref(),
            _ => None,
        }
    }
}

/// What the gateway needs from a request MessageHeader to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderInfo {
    /// `MessageHeader.id`: the reliable-messaging key.
    pub id: String,
    /// `MessageHeader.eventCoding` or `eventUri`, as received (echoed in the response).
    pub event: Option<Event>,
    /// `MessageHeader.source.endpoint`: where the response goes.
    pub source_endpoint: Option<String>,
    /// ODS code from `MessageHeader.sender.identifier`, when it names one.
    pub sender_ods: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Coding(Value),
    Uri(String),
}

/// A message Bundle that passed the envelope checks.
#[derive(Debug, Clone)]
pub struct Message {
    pub bundle: Value,
    pub header: HeaderInfo,
    /// The entries the focus references resolve to, in focus order, without repeats.
    pub focus: Vec<Focus>,
}

/// One focus entry of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Focus {
    /// Index into `Bundle.entry`.
    pub entry: usize,
    pub resource_type: String,
}

impl Message {
    /// The focus resources, as received.
    pub fn focus_resources(&self) -> impl Iterator<Item = (&Focus, &Value)> {
        self.focus.iter().filter_map(|f| {
            self.bundle
                .get("entry")
                .and_then(|e| e.get(f.entry))
                .and_then(|e| e.get("resource"))
                .map(|r| (f, r))
        })
    }
}

/// A single resource POSTed to a type endpoint, as received.
#[derive(Debug, Clone)]
pub struct Resource {
    pub resource_type: String,
    pub json: Value,
}

/// Parse a message Bundle (`$process-message`) and check its envelope.
pub fn message(body: &[u8], limits: &Limits) -> Result<Message, IngestError> {
    let json = parse(body, limits)?;
    let resource_type = resource_type(&json)?;
    if resource_type != "Bundle" {
        return Err(IngestError::WrongResourceType(
            Issue::error(
                IssueType::Invalid,
                format!(
                    "resourceType is '{resource_type}'; $process-message expects a Bundle of type 'message'"
                ),
            )
            .at("resourceType"),
        ));
    }
    check_message(json)
}

/// Parse a single resource POSTed to `/fhir/{expected}`.
pub fn resource(body: &[u8], expected: &str, limits: &Limits) -> Result<Resource, IngestError> {
    let json = parse(body, limits)?;
    let resource_type = resource_type(&json)?;
    if resource_type != expected {
        return Err(IngestError::WrongResourceType(
            Issue::error(
                IssueType::Invalid,
                format!(
                    "resourceType is '{resource_type}'; this endpoint (/fhir/{expected}) accepts only {expected}"
                ),
            )
            .at("resourceType"),
        ));
    }
    Ok(Resource {
        resource_type: resource_type.to_owned(),
        json,
    })
}

/// Bound the nesting, then parse once.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Value, IngestError> {
    let max_depth = limits.max_depth.min(MAX_DEPTH_CAP);
    check_depth(body, max_depth)?;
    serde_json::from_slice(body).map_err(|e| {
        let diagnostics = if body.iter().all(u8::is_ascii_whitespace) {
            "the body is empty; expected a FHIR resource in JSON".to_owned()
        } else {
            format!(
                "the body is not valid JSON ({e}); expected a FHIR resource in JSON (application/fhir+json)"
            )
        };
        IngestError::NotJson(Issue::error(IssueType::Structure, diagnostics))
    })
}

/// One pass over the bytes counting `{`/`[` outside strings. Much cheaper than parsing, and
/// stops at the first byte past the limit, so a hostile document costs at most one scan.
fn check_depth(body: &[u8], max_depth: usize) -> Result<(), IngestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(IngestError::TooDeep(Issue::error(
                        IssueType::TooLong,
                        format!(
                            "JSON nesting exceeds {max_depth} levels at byte offset {offset}; \
                             this gateway accepts at most {max_depth} nested objects/arrays"
                        ),
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn resource_type(json: &Value) -> Result<&str, IngestError> {
    let Some(object) = json.as_object() else {
        return Err(IngestError::NotAResource(Issue::error(
            IssueType::Structure,
            format!(
                "the body is a JSON {}; expected a JSON object with a resourceType",
                json_kind(json)
            ),
        )));
    };
    match object.get("resourceType") {
        Some(Value::String(t)) if !t.is_empty() => Ok(t),
        Some(other) => Err(IngestError::NotAResource(
            Issue::error(
                IssueType::Structure,
                format!(
                    "resourceType is a JSON {}; expected the name of a FHIR resource type",
                    json_kind(other)
                ),
            )
            .at("resourceType"),
        )),
        None => Err(IngestError::NotAResource(
            Issue::error(
                IssueType::Required,
                "the JSON object has no resourceType; expected a FHIR resource (e.g. \"resourceType\": \"Bundle\")",
            )
            .at("resourceType"),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn invalid(header: Option<HeaderInfo>, issues: Vec<Issue>) -> IngestError {
    IngestError::InvalidMessage {
        header: header.map(Box::new),
        issues,
    }
}

const HEADER: &str = "Bundle.entry[0].resource";

fn check_message(bundle: Value) -> Result<Message, IngestError> {
    match bundle.get("type") {
        Some(Value::String(t)) if t == "message" => {}
        seen => {
            let seen = match seen {
                Some(Value::String(t)) => format!("'{t}'"),
                Some(_) => "not a code".to_owned(),
                None => "missing".to_owned(),
            };
            return Err(invalid(
                None,
                vec![
                    Issue::error(
                        IssueType::Value,
                        format!(
                            "Bundle.type is {seen}; $process-message expects a Bundle of type 'message'"
                        ),
                    )
                    .at("Bundle.type"),
                ],
            ));
        }
    }
    let entries: &[Value] = match bundle.get("entry") {
        Some(Value::Array(e)) if !e.is_empty() => e,
        _ => {
            return Err(invalid(
                None,
                vec![
                    Issue::error(
                        IssueType::Required,
                        "the message Bundle has no entries; expected a MessageHeader as the first entry",
                    )
                    .at("Bundle.entry"),
                ],
            ));
        }
    };
    let header_json = entries[0].get("resource");
    let header_type = header_json
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str);
    if header_type != Some("MessageHeader") {
        let seen = header_type.map_or("no resource".to_owned(), |t| format!("a {t}"));
        return Err(invalid(
            None,
            vec![
                Issue::error(
                    IssueType::Structure,
                    format!(
                        "the first entry of the message Bundle is {seen}; expected a MessageHeader"
                    ),
                )
                .at(format!("{HEADER}.resourceType")),
            ],
        ));
    }
    let header_json = header_json.unwrap_or(&Value::Null);
    let Some(id) = header_json
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(invalid(
            None,
            vec![
                Issue::error(
                    IssueType::Required,
                    "the MessageHeader has no id; the id identifies the message for reliable \
                     messaging and for the response (response.identifier)",
                )
                .at(format!("{HEADER}.id")),
            ],
        ));
    };
    let header = header_info(id, header_json);

    let mut issues = Vec::new();
    let refs: Vec<EntryRef> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let resource = entry.get("resource");
            if resource.is_none() {
                issues.push(
                    Issue::error(
                        IssueType::Required,
                        format!("Bundle.entry[{i}] has no resource; every entry of a message carries one"),
                    )
                    .at(format!("Bundle.entry[{i}].resource")),
                );
            }
            EntryRef::from_entry(entry)
        })
        .collect();
    duplicate_full_urls(&refs, &mut issues);

    let mut focus: Vec<Focus> = Vec::new();
    match header_json.get("focus") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (k, reference) in list.iter().enumerate() {
                let at = format!("{HEADER}.focus[{k}]");
                let Some(literal) = reference.get("reference").and_then(Value::as_str) else {
                    issues.push(
                        Issue::error(
                            IssueType::Required,
                            "the focus has no literal reference; expected a reference to a \
                             MeasureReport or Measure entry of this Bundle (its fullUrl)",
                        )
                        .at(at),
                    );
                    continue;
                };
                match resolve(literal, refs[0].full_url.as_deref(), &refs) {
                    None => issues
                        .push(Issue::error(IssueType::NotFound, unresolved(literal, &refs)).at(at)),
                    Some(index) => {
                        let ty = refs[index].resource_type.as_deref().unwrap_or("");
                        if !FOCUS_TYPES.contains(&ty) {
                            issues.push(
                                Issue::error(
                                    IssueType::NotSupported,
                                    format!(
                                        "focus '{literal}' is Bundle.entry[{index}], a {}; this gateway accepts \
                                         only MeasureReport or Measure as the focus of a message",
                                        if ty.is_empty() { "resource without resourceType" } else { ty }
                                    ),
                                )
                                .at(at),
                            );
                        } else if !focus.iter().any(|f| f.entry == index) {
                            focus.push(Focus {
                                entry: index,
                                resource_type: ty.to_owned(),
                            });
                        }
                    }
                }
            }
        }
        _ => issues.push(
            Issue::error(
                IssueType::Required,
                "the MessageHeader has no focus; expected at least one reference to a \
                 MeasureReport or Measure entry of this Bundle",
            )
            .at(format!("{HEADER}.focus")),
        ),
    }

    if issues.is_empty() {
        Ok(Message {
            bundle,
            header,
            focus,
        })
    } else {
        Err(invalid(Some(header), issues))
    }
}

fn header_info(id: &str, header: &Value) -> HeaderInfo {
    let event = if let Some(coding) = header.get("eventCoding").filter(|c| c.is_object()) {
        Some(Event::Coding(coding.clone()))
    } else {
        header
            .get("eventUri")
            .and_then(Value::as_str)
            .map(|u| Event::Uri(u.to_owned()))
    };
    let sender_ods = header
        .get("sender")
        .and_then(|s| s.get("identifier"))
        .filter(|i| i.get("system").and_then(Value::as_str) == Some(crate::fhir::ODS_ORG_SYSTEM))
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    HeaderInfo {
        id: id.to_owned(),
        event,
        source_endpoint: header
            .get("source")
            .and_then(|s| s.get("endpoint"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        sender_ods,
    }
}

/// bdl-7: fullUrl must be unique in a bundle, unless the entries carry different
/// `meta.versionId`s.
fn duplicate_full_urls(refs: &[EntryRef], issues: &mut Vec<Issue>) {
    for (j, later) in refs.iter().enumerate() {
        let Some(url) = later.full_url.as_deref() else {
            continue;
        };
        if let Some(i) = refs[..j]
            .iter()
            .position(|e| e.full_url.as_deref() == Some(url) && e.version_id == later.version_id)
        {
            issues.push(
                Issue::error(
                    IssueType::Invariant,
                    format!(
                        "fullUrl '{url}' is also the fullUrl of Bundle.entry[{i}]; fullUrls must be \
                         unique within a Bundle (bdl-7)"
                    ),
                )
                .at(format!("Bundle.entry[{j}].fullUrl")),
            );
        }
    }
}

fn unresolved(literal: &str, refs: &[EntryRef]) -> String {
    let mut text = format!(
        "focus reference '{literal}' does not resolve to any entry of this Bundle; expected the \
         fullUrl of an entry (absolute or urn:uuid), or Type/id relative to a RESTful fullUrl of the \
         MessageHeader entry (FHIR Bundle reference resolution)"
    );
    // Point at the entry the sender most likely meant.
    let bare = literal.split("/_history/").next().unwrap_or(literal);
    if let Some((i, e)) = refs.iter().enumerate().find(|(_, e)| {
        matches!((&e.resource_type, &e.id), (Some(t), Some(id)) if bare.ends_with(&format!("{t}/{id}")))
    }) {
        match &e.full_url {
            Some(full) => text.push_str(&format!(
                "; Bundle.entry[{i}] has that type and id: reference it by its fullUrl '{full}'"
            )),
            None => text.push_str(&format!(
                "; Bundle.entry[{i}] has that type and id but no fullUrl: give it one"
            )),
        }
    }
    text
}

#[cfg(test)]
mod tests;
