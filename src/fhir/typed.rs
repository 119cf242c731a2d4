//! The one module that uses fhir-sdk's typed models: it BUILDS the resources this gateway answers
//! with (OperationOutcome, response MessageHeader and message Bundle, CapabilityStatement, the
//! shell of searchset/history Bundles), so that their structure is checked by the compiler.
//!
//! fhir-sdk ships R4B, not R4. Every element used here has the same name, cardinality and type in
//! R4 4.0.1 and R4B 4.3.0; the round-trip tests below and in `tests/fixtures/r4/` prove it on R4
//! examples. Received JSON is never passed through these types: they drop unknown elements and
//! reshape decimals, so validation, hashing, storage and provenance use the bytes as received.
//!
//! Stored resources inside searchset/history Bundles are spliced in as JSON, not re-typed, for
//! the same reason: what a client reads back is what was stored.

use fhir_sdk::r4b::codes;
use fhir_sdk::r4b::resources::{
    Bundle, BundleLink, CapabilityStatement, CapabilityStatementImplementation,
    CapabilityStatementMessaging, CapabilityStatementMessagingEndpoint,
    CapabilityStatementMessagingSupportedMessage, CapabilityStatementRest,
    CapabilityStatementRestResource, CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceOperation, CapabilityStatementRestResourceSearchParam,
    CapabilityStatementSoftware, MessageHeader, MessageHeaderDestination, MessageHeaderEvent,
    MessageHeaderResponse, MessageHeaderSource, OperationOutcome, OperationOutcomeIssue, Resource,
};
use fhir_sdk::r4b::types::{Coding, Extension, ExtensionValue, Reference};
use fhir_sdk::{BuilderError, DateTime, Instant};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Outcome;
use super::outcome::ISSUE_SOURCE_EXTENSION;

/// Building a typed response failed: a bug in this module, never caused by input.
#[derive(Debug, thiserror::Error)]
pub enum TypedError {
    #[error("a required element was not set while building a FHIR resource")]
    Builder(#[from] BuilderError),
    #[error("a FHIR resource could not be converted to or from JSON")]
    Json(#[from] serde_json::Error),
    #[error("'{0}' is not a code of the {1} value set")]
    Code(String, &'static str),
}

pub type TypedResult<T> = Result<T, TypedError>;

fn code<T: std::str::FromStr>(value: &str, value_set: &'static str) -> TypedResult<T> {
    value
        .parse()
        .map_err(|_| TypedError::Code(value.to_owned(), value_set))
}

/// The OperationOutcome for `outcome` (an empty outcome renders one "All OK" information issue).
pub fn operation_outcome(outcome: &Outcome, id: Option<&str>) -> TypedResult<OperationOutcome> {
    let fallback;
    let issues = if outcome.issues.is_empty() {
        fallback = [super::Issue::information(
            super::IssueType::Informational,
            "All OK",
        )];
        &fallback[..]
    } else {
        &outcome.issues[..]
    };
    let mut typed = Vec::with_capacity(issues.len());
    for issue in issues {
        let mut b = OperationOutcomeIssue::builder()
            .severity(code(issue.severity.code(), "issue-severity")?)
            .code(code(issue.code.code(), "issue-type")?)
            .diagnostics(issue.diagnostics.clone());
        if let Some(expr) = &issue.expression {
            b = b.expression(vec![Some(expr.clone())]);
        }
        if let Some(profile) = &issue.profile {
            let source = match &issue.element_id {
                Some(e) => format!("{profile}#{e}"),
                None => profile.clone(),
            };
            b = b.extension(vec![
                Extension::builder()
                    .url(ISSUE_SOURCE_EXTENSION.to_owned())
                    .value(ExtensionValue::String(source))
                    .build()?,
            ]);
        }
        typed.push(Some(b.build()?));
    }
    let mut b = OperationOutcome::builder().issue(typed);
    if let Some(id) = id {
        b = b.id(id.to_owned());
    }
    Ok(b.build()?)
}

/// `MessageHeader.response.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    Ok,
    TransientError,
    FatalError,
}

impl ResponseCode {
    pub fn code(self) -> &'static str {
        match self {
            ResponseCode::Ok => "ok",
            ResponseCode::TransientError => "transient-error",
            ResponseCode::FatalError => "fatal-error",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "ok" => Some(ResponseCode::Ok),
            "transient-error" => Some(ResponseCode::TransientError),
            "fatal-error" => Some(ResponseCode::FatalError),
            _ => None,
        }
    }
}

/// Event of a message, as the request MessageHeader carried it.
#[derive(Debug, Clone)]
pub enum ResponseEvent {
    Coding(Value),
    Uri(String),
}

/// What a response message says.
#[derive(Debug, Clone)]
pub struct ResponseMessage<'a> {
    /// `MessageHeader.id` of the request (`response.identifier`).
    pub request_id: &'a str,
    /// The request's event, echoed. `None` uses the gateway's own submission event.
    pub event: Option<ResponseEvent>,
    /// Where the response goes: the request's `source.endpoint`.
    pub destination: Option<&'a str>,
    /// This gateway's endpoint (`source.endpoint`).
    pub source_endpoint: &'a str,
    pub code: ResponseCode,
    pub outcome: &'a Outcome,
    pub timestamp: OffsetDateTime,
}

/// The response message Bundle: a MessageHeader whose `response.details` points at the
/// OperationOutcome in the second entry.
pub fn response_message(msg: &ResponseMessage<'_>) -> TypedResult<Value> {
    let header_id = Uuid::new_v4().to_string();
    let outcome_id = Uuid::new_v4().to_string();
    let event = match &msg.event {
        Some(ResponseEvent::Uri(uri)) => MessageHeaderEvent::Uri(uri.clone()),
        Some(ResponseEvent::Coding(coding)) => {
            // Only system/code/display are echoed; a received coding that does not fit the
            // Coding type falls back to the gateway's own event.
            match serde_json::from_value::<Coding>(coding.clone()) {
                Ok(c) => MessageHeaderEvent::Coding(c),
                Err(_) => MessageHeaderEvent::Coding(submission_event()?),
            }
        }
        None => MessageHeaderEvent::Coding(submission_event()?),
    };
    let mut header = MessageHeader::builder()
        .id(header_id.clone())
        .event(event)
        .source(
            MessageHeaderSource::builder()
                .name("pqom-gateway".to_owned())
                .software("pqom-gateway".to_owned())
                .version(env!("CARGO_PKG_VERSION").to_owned())
                .endpoint(msg.source_endpoint.to_owned())
                .build()?,
        )
        .response(
            MessageHeaderResponse::builder()
                .identifier(msg.request_id.to_owned())
                .code(code::<codes::ResponseType>(
                    msg.code.code(),
                    "response-code",
                )?)
                .details(
                    Reference::builder()
                        .reference(format!("urn:uuid:{outcome_id}"))
                        .build()?,
                )
                .build()?,
        );
    if let Some(dest) = msg.destination {
        header = header.destination(vec![Some(
            MessageHeaderDestination::builder()
                .endpoint(dest.to_owned())
                .build()?,
        )]);
    }
    let header = header.build()?;
    let outcome = operation_outcome(msg.outcome, Some(&outcome_id))?;
    let bundle = Bundle::builder()
        .id(Uuid::new_v4().to_string())
        .r#type(codes::BundleType::Message)
        .timestamp(Instant(msg.timestamp))
        .entry(vec![
            Some(
                fhir_sdk::r4b::resources::BundleEntry::builder()
                    .full_url(format!("urn:uuid:{header_id}"))
                    .resource(Resource::from(header))
                    .build()?,
            ),
            Some(
                fhir_sdk::r4b::resources::BundleEntry::builder()
                    .full_url(format!("urn:uuid:{outcome_id}"))
                    .resource(Resource::from(outcome))
                    .build()?,
            ),
        ])
        .build()?;
    Ok(serde_json::to_value(&bundle)?)
}

fn submission_event() -> TypedResult<Coding> {
    Ok(Coding::builder()
        .system(format!(
            "{}/CodeSystem/pqom-message-event",
            super::CANONICAL_BASE
        ))
        .code("pqom-submission".to_owned())
        .build()?)
}

/// Kind of a Bundle of stored resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Searchset,
    History,
}

/// A searchset or history Bundle with `total` and `link`s, and `entries` (built by the caller
/// from stored JSON) spliced in unchanged.
pub fn bundle_of_stored(
    kind: BundleKind,
    total: Option<u32>,
    links: &[(&str, String)],
    entries: Vec<Value>,
) -> TypedResult<Value> {
    let mut b = Bundle::builder()
        .id(Uuid::new_v4().to_string())
        .r#type(match kind {
            BundleKind::Searchset => codes::BundleType::Searchset,
            BundleKind::History => codes::BundleType::History,
        })
        .timestamp(Instant(OffsetDateTime::now_utc()));
    if let Some(total) = total {
        b = b.total(total);
    }
    let mut typed_links = Vec::with_capacity(links.len());
    for (relation, url) in links {
        typed_links.push(Some(
            BundleLink::builder()
                .relation((*relation).to_owned())
                .url(url.clone())
                .build()?,
        ));
    }
    let mut value = serde_json::to_value(b.link(typed_links).build()?)?;
    if let Value::Object(map) = &mut value {
        map.insert("entry".into(), Value::Array(entries));
    }
    Ok(value)
}

/// What the CapabilityStatement says about one resource type.
#[derive(Debug, Clone)]
pub struct ResourceCapability {
    pub resource_type: &'static str,
    /// Profiles instances of this type are validated against.
    pub supported_profiles: Vec<String>,
    /// Interaction codes (`read`, `vread`, `history-instance`, `search-type`, `create`).
    pub interactions: Vec<&'static str>,
    pub conditional_create: bool,
    /// Search parameters: name, type code, documentation.
    pub search_params: Vec<(&'static str, &'static str, &'static str)>,
    /// Operations on instances of this type: name and canonical of their OperationDefinition.
    pub operations: Vec<(&'static str, &'static str)>,
}

/// What the CapabilityStatement says about the whole server.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub base_url: String,
    pub resources: Vec<ResourceCapability>,
    /// System operations: name and canonical of their OperationDefinition.
    pub operations: Vec<(&'static str, &'static str)>,
    /// Message events this gateway receives (canonical of the event definition).
    pub supported_messages: Vec<String>,
    /// Where messages are received (`[base]/$process-message`), over HTTP.
    pub messaging_endpoint: Option<String>,
}

/// The CapabilityStatement (kind `instance`, fhirVersion 4.0.1, JSON only).
pub fn capability_statement(caps: &Capabilities) -> TypedResult<Value> {
    let mut resources = Vec::with_capacity(caps.resources.len());
    for r in &caps.resources {
        let mut interactions = Vec::new();
        for i in &r.interactions {
            interactions.push(Some(
                CapabilityStatementRestResourceInteraction::builder()
                    .code((*i).to_owned())
                    .build()?,
            ));
        }
        let mut params = Vec::new();
        for (name, ty, doc) in &r.search_params {
            params.push(Some(
                CapabilityStatementRestResourceSearchParam::builder()
                    .name((*name).to_owned())
                    .r#type(code::<codes::SearchParamType>(ty, "search-param-type")?)
                    .documentation((*doc).to_owned())
                    .build()?,
            ));
        }
        let mut resource_operations = Vec::new();
        for (name, definition) in &r.operations {
            resource_operations.push(Some(
                CapabilityStatementRestResourceOperation::builder()
                    .name((*name).to_owned())
                    .definition((*definition).to_owned())
                    .build()?,
            ));
        }
        resources.push(Some(
            CapabilityStatementRestResource::builder()
                .r#type(code::<codes::ResourceType>(
                    r.resource_type,
                    "resource-types",
                )?)
                .supported_profile(r.supported_profiles.iter().cloned().map(Some).collect())
                .interaction(interactions)
                .versioning(codes::ResourceVersionPolicy::Versioned)
                .read_history(true)
                .update_create(false)
                .conditional_create(r.conditional_create)
                .search_param(params)
                .operation(resource_operations)
                .build()?,
        ));
    }
    let mut operations = Vec::new();
    for (name, definition) in &caps.operations {
        operations.push(Some(
            CapabilityStatementRestResourceOperation::builder()
                .name((*name).to_owned())
                .definition((*definition).to_owned())
                .build()?,
        ));
    }
    let mut messages = Vec::new();
    for definition in &caps.supported_messages {
        messages.push(Some(
            CapabilityStatementMessagingSupportedMessage::builder()
                .mode(codes::EventCapabilityMode::Receiver)
                .definition(definition.clone())
                .build()?,
        ));
    }
    let mut endpoints = Vec::new();
    if let Some(address) = &caps.messaging_endpoint {
        endpoints.push(Some(
            CapabilityStatementMessagingEndpoint::builder()
                .protocol(
                    Coding::builder()
                        .system(
                            "http://terminology.hl7.org/CodeSystem/message-transport".to_owned(),
                        )
                        .code("http".to_owned())
                        .build()?,
                )
                .address(address.clone())
                .build()?,
        ));
    }
    let now = OffsetDateTime::now_utc();
    let statement = CapabilityStatement::builder()
        .status(codes::PublicationStatus::Active)
        .date(DateTime::DateTime(Instant(now)))
        .publisher("pqom-gateway".to_owned())
        .kind(codes::CapabilityStatementKind::Instance)
        .software(
            CapabilityStatementSoftware::builder()
                .name("pqom-gateway".to_owned())
                .version(env!("CARGO_PKG_VERSION").to_owned())
                .build()?,
        )
        .implementation(
            CapabilityStatementImplementation::builder()
                .description("PQOM FHIR messaging gateway".to_owned())
                .url(caps.base_url.clone())
                .build()?,
        )
        .fhir_version(code::<codes::FHIRVersion>(
            super::FHIR_VERSION,
            "FHIR-version",
        )?)
        .format(vec![
            Some("application/fhir+json".to_owned()),
            Some("json".to_owned()),
        ])
        .rest(vec![Some(
            CapabilityStatementRest::builder()
                .mode(codes::RestfulCapabilityMode::Server)
                .resource(resources)
                .operation(operations)
                .build()?,
        )])
        .messaging(vec![Some(
            CapabilityStatementMessaging::builder()
                .endpoint(endpoints)
                .documentation(
                    "Synchronous messaging via $process-message; a MessageHeader id already \
                     processed gets the original response again."
                        .to_owned(),
                )
                .supported_message(messages)
                .build()?,
        )])
        .build()?;
    Ok(serde_json::to_value(&statement)?)
}

#[cfg(test)]
mod tests;
