//! The one place that strings the stages together:
//!
//! ```text
//! bytes ──> ingest (envelope) ──> validate (plug point) ──> map ──> store (one commit) ──> response
//! ```
//!
//! Every submission that reaches the pipeline is recorded: accepted ones with their resources,
//! rejected ones with the OperationOutcome the submitter was given. A success is only reported
//! after the store's commit returned `Ok`. Reliable messaging: a MessageHeader id already
//! committed gets the original response again and nothing is processed twice.
//!
//! Must not: know about HTTP (statuses are chosen in `api::error`), parse the body twice, or pass
//! received JSON through typed models.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::fhir::typed::{self, ResponseCode, ResponseEvent, ResponseMessage, TypedError};
use crate::fhir::{Issue, IssueType, ODS_ORG_SYSTEM, Outcome};
use crate::ingest::{self, HeaderInfo, IngestError};
use crate::store::outbox::{OutboxEvent, TOPIC_SUBMISSION};
use crate::store::search::{Criterion, SearchQuery, TokenValue};
use crate::store::{
    Channel, CommitOutcome, NewSubmission, ResourceWrite, Store, StoreError, StoredResource,
    StoredSubmission, SubmissionStatus,
};

pub use crate::ingest::Limits;

mod indicators;
mod reports;
pub use indicators::CATALOGUE_ID_SYSTEM;
pub use reports::{IndicatorPage, PeriodRange, Series, SeriesPoint, SeriesRefusal};

/// The validation plug point. The validator (profiles, FHIRPath invariants, terminology)
/// implements it; errors in the outcome reject the submission, warnings are kept with it.
pub trait Validate: Send + Sync {
    /// Validate `body` (exactly as received), a resource of type `resource_type`.
    fn validate(&self, body: &[u8], resource_type: &str) -> Outcome;
}

/// The profile every submission is checked against, by resource type: what a trust sends must
/// conform to the PQOM profile for it, whether or not it names the profile in `meta.profile`
/// (the engine also checks any profiles the resource names).
pub fn submission_profile(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "Bundle" => {
            Some("https://fhir.pqom-gateway.org/StructureDefinition/pqom-submission-bundle")
        }
        "MeasureReport" => {
            Some("https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport")
        }
        "Measure" => Some("https://fhir.pqom-gateway.org/StructureDefinition/pqom-measure"),
        _ => None,
    }
}

impl Validate for crate::validate::Validator {
    fn validate(&self, body: &[u8], resource_type: &str) -> Outcome {
        let profiles: Vec<&str> = submission_profile(resource_type).into_iter().collect();
        crate::validate::Validator::validate(self, body, &profiles)
    }
}

/// Why a submission was rejected.
#[derive(Debug, Clone)]
pub enum Rejection {
    /// The envelope checks failed (not JSON, wrong type, bad message structure...).
    Envelope(IngestError),
    /// The validator found errors.
    Invalid(Outcome),
}

impl Rejection {
    pub fn outcome(&self) -> Outcome {
        match self {
            Rejection::Envelope(e) => Outcome::new(e.issues()),
            Rejection::Invalid(o) => o.clone(),
        }
    }

    /// Metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Envelope(e) => e.reason(),
            Rejection::Invalid(_) => "invalid",
        }
    }
}

/// What `$process-message` answers.
#[derive(Debug, Clone)]
pub enum MessageResult {
    /// A response message: `ok` for an accepted message, `fatal-error` for a rejected one whose
    /// MessageHeader could be read, or the original response to a message id seen before.
    Responded {
        response: Value,
        code: ResponseCode,
        submission_id: Uuid,
        /// The message id was processed before: this is the original response.
        replayed: bool,
        /// Why it was rejected, for a fresh rejection.
        rejection: Option<Rejection>,
    },
    /// Rejected before a MessageHeader id could be read: no response message is possible, the
    /// submitter gets the OperationOutcome.
    Rejected {
        rejection: Rejection,
        submission_id: Uuid,
    },
}

/// What `POST /fhir/{type}` answers.
#[derive(Debug, Clone)]
pub enum CreateResult {
    /// Created (the first version, or a new version of the resource with the same identifier).
    Created {
        resource: StoredResource,
        outcome: Outcome,
    },
    /// `If-None-Exist` matched exactly one resource: nothing was created.
    Exists(StoredResource),
    Rejected {
        rejection: Rejection,
        submission_id: Uuid,
    },
}

/// Failures that are not the submitter's fault, or a malformed condition.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("building the response failed")]
    Response(#[from] TypedError),
    /// `If-None-Exist` could not be understood.
    #[error("the If-None-Exist header is not supported")]
    BadCondition(Issue),
    /// `If-None-Exist` matched more than one resource.
    #[error("If-None-Exist matched several resources")]
    MultipleMatches(Issue),
    #[error("the processing task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("building or signing a bundle failed")]
    Deliver(#[from] crate::deliver::forward::ForwardError),
    /// A stage this request needs is not plugged in (a deployment fault, not the client's).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
}

/// The submission pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn Store>,
    limits: Limits,
    validator: Option<Arc<dyn Validate>>,
    endpoint: String,
    /// The map stage (Annex 1 indicators); `None`: submissions are stored unmapped.
    mapper: Option<Arc<crate::map::Mapper>>,
    /// The organisation directory: the ICB and region an outbox event is routed by.
    directory: Option<Arc<crate::deliver::directory::Directory>>,
    /// Woken after every commit that wrote an outbox event (the dispatcher also polls).
    outbox_wake: Option<Arc<tokio::sync::Notify>>,
}

impl Pipeline {
    pub fn new(store: Arc<dyn Store>, limits: Limits) -> Self {
        Pipeline {
            store,
            limits,
            validator: None,
            endpoint: "urn:pqom-gateway".to_owned(),
            mapper: None,
            directory: None,
            outbox_wake: None,
        }
    }

    /// Wake the delivery dispatcher after each accepted submission.
    pub fn with_outbox_wake(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.outbox_wake = Some(wake);
        self
    }

    /// The outbox event of an accepted submission: its reporter, the reporter's ICB and region
    /// (when the directory knows the trust) and the indicators it mapped to.
    fn outbox_event(
        &self,
        reporter: Option<&str>,
        mapped: Option<&crate::map::MapOutcome>,
    ) -> OutboxEvent {
        let route = reporter
            .zip(self.directory.as_deref())
            .and_then(|(ods, dir)| dir.route(ods).ok());
        let mut indicators: Vec<String> = mapped
            .map(|m| m.values.iter().map(|v| v.indicator.clone()).collect())
            .unwrap_or_default();
        indicators.sort();
        indicators.dedup();
        OutboxEvent {
            topic: TOPIC_SUBMISSION.to_owned(),
            reporter: route
                .as_ref()
                .map(|r| r.trust.ods.clone())
                .or_else(|| reporter.map(str::to_ascii_uppercase)),
            icb: route.as_ref().map(|r| r.icb.ods.clone()),
            region: route.as_ref().map(|r| r.region.ods.clone()),
            indicators,
        }
    }

    fn wake_outbox(&self) {
        if let Some(wake) = &self.outbox_wake {
            wake.notify_one();
        }
    }

    /// Plug in the validator.
    pub fn with_validator(mut self, validator: Arc<dyn Validate>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// This gateway's messaging endpoint (`source.endpoint` of response messages).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `$process-message`.
    pub async fn process_message(&self, body: Vec<u8>) -> Result<MessageResult, PipelineError> {
        let limits = self.limits;
        // Parsing a large body is CPU work; keep it off the async workers.
        let (body, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = ingest::message(&body, &limits);
            (body, parsed)
        })
        .await?;
        let message = match parsed {
            Ok(m) => m,
            Err(error) => {
                let header = error.header().cloned();
                return self
                    .reject_message(body, header, Rejection::Envelope(error))
                    .await;
            }
        };
        // A duplicate costs one lookup, not a validation; the commit below still decides races.
        if let Some(previous) = self
            .store
            .submission_by_message_id(&message.header.id)
            .await?
        {
            return Ok(replay(previous));
        }
        let (body, validation) = self.validate(body, "Bundle").await?;
        if validation.has_errors() {
            return self
                .reject_message(body, Some(message.header), Rejection::Invalid(validation))
                .await;
        }

        let resources: Vec<ResourceWrite> = message
            .focus_resources()
            .map(|(focus, resource)| ResourceWrite {
                resource_type: focus.resource_type.clone(),
                identifier: business_identifier(resource),
                resource: resource.clone(),
            })
            .collect();
        let mapped = self.map_submission(&message.bundle);
        let mut issues = validation.issues;
        if let Some((_, map_issues)) = &mapped {
            issues.extend(map_issues.iter().cloned());
        }
        issues.extend(message.focus.iter().map(|f| {
            Issue::information(
                IssueType::Informational,
                format!("{} accepted and stored", f.resource_type),
            )
            .at(format!("Bundle.entry[{}].resource", f.entry))
        }));
        let outcome = Outcome::new(issues);
        let response = self.response(&message.header, ResponseCode::Ok, &outcome)?;
        let event = self.outbox_event(
            message.header.sender_ods.as_deref(),
            mapped.as_ref().map(|(o, _)| o),
        );
        let submission = NewSubmission {
            id: Uuid::new_v4(),
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Message,
            message_id: Some(message.header.id.clone()),
            sender: message.header.sender_ods.clone(),
            sha256: sha256_hex(&body),
            body,
            status: SubmissionStatus::Accepted,
            outcome: outcome.to_json(),
            response: Some(response.clone()),
            resources,
            event: Some(event),
            indicator_values: mapped.map(|(o, _)| o.values).unwrap_or_default(),
        };
        let submission_id = submission.id;
        match self.store.commit_submission(submission).await? {
            CommitOutcome::Committed(_) => {
                self.wake_outbox();
                count("message", "accepted", "none");
                Ok(MessageResult::Responded {
                    response,
                    code: ResponseCode::Ok,
                    submission_id,
                    replayed: false,
                    rejection: None,
                })
            }
            CommitOutcome::DuplicateMessage(previous) => Ok(replay(previous)),
        }
    }

    async fn reject_message(
        &self,
        body: Vec<u8>,
        header: Option<HeaderInfo>,
        rejection: Rejection,
    ) -> Result<MessageResult, PipelineError> {
        let outcome = rejection.outcome();
        let response = match &header {
            Some(h) => Some(self.response(h, ResponseCode::FatalError, &outcome)?),
            None => None,
        };
        let submission = NewSubmission {
            id: Uuid::new_v4(),
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Message,
            message_id: header.as_ref().map(|h| h.id.clone()),
            sender: header.as_ref().and_then(|h| h.sender_ods.clone()),
            sha256: sha256_hex(&body),
            body,
            status: SubmissionStatus::Rejected,
            outcome: outcome.to_json(),
            response: response.clone(),
            resources: Vec::new(),
            event: None,
            indicator_values: Vec::new(),
        };
        let submission_id = submission.id;
        match record_rejection(&*self.store, submission).await {
            Some(CommitOutcome::DuplicateMessage(previous)) => Ok(replay(previous)),
            _ => {
                count("message", "rejected", rejection.reason());
                Ok(match response {
                    Some(response) => MessageResult::Responded {
                        response,
                        code: ResponseCode::FatalError,
                        submission_id,
                        replayed: false,
                        rejection: Some(rejection),
                    },
                    None => MessageResult::Rejected {
                        rejection,
                        submission_id,
                    },
                })
            }
        }
    }

    fn response(
        &self,
        header: &HeaderInfo,
        code: ResponseCode,
        outcome: &Outcome,
    ) -> Result<Value, TypedError> {
        typed::response_message(&ResponseMessage {
            request_id: &header.id,
            event: header.event.as_ref().map(|e| match e {
                ingest::Event::Coding(c) => ResponseEvent::Coding(c.clone()),
                ingest::Event::Uri(u) => ResponseEvent::Uri(u.clone()),
            }),
            destination: header.source_endpoint.as_deref(),
            source_endpoint: &self.endpoint,
            code,
            outcome,
            timestamp: OffsetDateTime::now_utc(),
        })
    }

    /// `POST /fhir/{resource_type}`, honouring `If-None-Exist` (`identifier=system|value`).
    pub async fn create(
        &self,
        resource_type: &str,
        body: Vec<u8>,
        if_none_exist: Option<&str>,
    ) -> Result<CreateResult, PipelineError> {
        let condition = if_none_exist.map(parse_if_none_exist).transpose()?;
        let limits = self.limits;
        let expected = resource_type.to_owned();
        let (body, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = ingest::resource(&body, &expected, &limits);
            (body, parsed)
        })
        .await?;
        let resource = match parsed {
            Ok(r) => r,
            Err(error) => {
                return self
                    .reject_rest(body, None, Rejection::Envelope(error))
                    .await;
            }
        };
        let sender = reporter_ods(&resource.json);
        if let Some(condition) = condition {
            let query = SearchQuery {
                criteria: vec![Criterion::Identifier(vec![condition.clone()])],
                count: 2,
                ..SearchQuery::default()
            };
            let page = self.store.search(resource_type, &query).await?;
            match page.resources.len() {
                0 => {}
                1 => {
                    let existing = page.resources.into_iter().next();
                    if let Some(existing) = existing {
                        return Ok(CreateResult::Exists(existing));
                    }
                }
                _ => {
                    return Err(PipelineError::MultipleMatches(Issue::error(
                        IssueType::MultipleMatches,
                        format!(
                            "If-None-Exist matched more than one {resource_type}; expected at most one"
                        ),
                    )));
                }
            }
        }
        let (body, mut validation) = self.validate(body, resource_type).await?;
        if validation.has_errors() {
            return self
                .reject_rest(body, sender, Rejection::Invalid(validation))
                .await;
        }
        let mapped = (resource_type == "MeasureReport")
            .then(|| self.map_submission(&resource.json))
            .flatten();
        if let Some((_, map_issues)) = &mapped {
            validation.issues.extend(map_issues.iter().cloned());
        }
        // A Measure (catalogue content) is stored but not delivered: subscribers follow reports.
        let event = (resource_type == "MeasureReport")
            .then(|| self.outbox_event(sender.as_deref(), mapped.as_ref().map(|(o, _)| o)));
        let submission = NewSubmission {
            id: Uuid::new_v4(),
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Rest,
            message_id: None,
            sender,
            sha256: sha256_hex(&body),
            body,
            status: SubmissionStatus::Accepted,
            outcome: validation.to_json(),
            response: None,
            resources: vec![ResourceWrite {
                resource_type: resource_type.to_owned(),
                identifier: business_identifier(&resource.json),
                resource: resource.json,
            }],
            event,
            indicator_values: mapped.map(|(o, _)| o.values).unwrap_or_default(),
        };
        match self.store.commit_submission(submission).await? {
            CommitOutcome::Committed(mut written) if !written.is_empty() => {
                self.wake_outbox();
                count("rest", "accepted", "none");
                Ok(CreateResult::Created {
                    resource: written.swap_remove(0),
                    outcome: validation,
                })
            }
            CommitOutcome::Committed(_) => Err(PipelineError::Store(StoreError::Corrupt(
                "the store committed a create but returned no resource version".to_owned(),
            ))),
            CommitOutcome::DuplicateMessage(_) => Err(PipelineError::Store(StoreError::Corrupt(
                "a REST create was reported as a duplicate message".to_owned(),
            ))),
        }
    }

    async fn reject_rest(
        &self,
        body: Vec<u8>,
        sender: Option<String>,
        rejection: Rejection,
    ) -> Result<CreateResult, PipelineError> {
        let submission = NewSubmission {
            id: Uuid::new_v4(),
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Rest,
            message_id: None,
            sender,
            sha256: sha256_hex(&body),
            body,
            status: SubmissionStatus::Rejected,
            outcome: rejection.outcome().to_json(),
            response: None,
            resources: Vec::new(),
            event: None,
            indicator_values: Vec::new(),
        };
        let submission_id = submission.id;
        record_rejection(&*self.store, submission).await;
        count("rest", "rejected", rejection.reason());
        Ok(CreateResult::Rejected {
            rejection,
            submission_id,
        })
    }

    /// Run the validator (if plugged in) off the async workers. Returns the body for storing.
    async fn validate(
        &self,
        body: Vec<u8>,
        resource_type: &str,
    ) -> Result<(Vec<u8>, Outcome), PipelineError> {
        let Some(validator) = self.validator.clone() else {
            return Ok((body, Outcome::default()));
        };
        let resource_type = resource_type.to_owned();
        Ok(tokio::task::spawn_blocking(move || {
            let outcome = validator.validate(&body, &resource_type);
            (body, outcome)
        })
        .await?)
    }
}

/// Record a rejected submission. The submitter's mistake is answered (4xx) even when it cannot
/// be recorded: retrying would not help them, fixing the input will. The failure is logged.
async fn record_rejection(store: &dyn Store, submission: NewSubmission) -> Option<CommitOutcome> {
    let id = submission.id;
    match store.commit_submission(submission).await {
        Ok(outcome) => Some(outcome),
        Err(error) => {
            tracing::warn!(submission = %id, error = %error, "a rejected submission could not be recorded");
            None
        }
    }
}

/// The original response to a message id seen before.
fn replay(previous: StoredSubmission) -> MessageResult {
    count("message", "duplicate", "none");
    match previous.response {
        Some(response) => {
            let code = response
                .pointer("/entry/0/resource/response/code")
                .and_then(Value::as_str)
                .and_then(ResponseCode::from_code)
                .unwrap_or(ResponseCode::FatalError);
            MessageResult::Responded {
                response,
                code,
                submission_id: previous.id,
                replayed: true,
                rejection: None,
            }
        }
        // Only rejections without a readable header are stored without a response, and those
        // have no message id; answer with the stored outcome all the same.
        None => MessageResult::Rejected {
            rejection: Rejection::Invalid(outcome_from_json(&previous.outcome)),
            submission_id: previous.id,
        },
    }
}

fn outcome_from_json(outcome: &Value) -> Outcome {
    let issues = outcome
        .get("issue")
        .and_then(Value::as_array)
        .map(|issues| {
            issues
                .iter()
                .map(|i| {
                    Issue::error(
                        IssueType::Processing,
                        i.get("diagnostics")
                            .and_then(Value::as_str)
                            .unwrap_or("rejected"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Outcome::new(issues)
}

fn count(channel: &'static str, outcome: &'static str, reason: &'static str) {
    metrics::counter!(
        "pqom_submissions_total",
        "channel" => channel,
        "outcome" => outcome,
        "reason" => reason
    )
    .increment(1);
}

/// `identifier=system|value` (URL-encoded as in a query string).
fn parse_if_none_exist(header: &str) -> Result<TokenValue, PipelineError> {
    let bad = |why: &str| {
        PipelineError::BadCondition(
            Issue::error(
                IssueType::NotSupported,
                format!(
                    "If-None-Exist '{header}' {why}; this server supports exactly \
                     'identifier=system|value'"
                ),
            )
            .at("If-None-Exist"),
        )
    };
    let header = header.trim().trim_start_matches('?');
    let mut pairs = form_urlencoded_pairs(header);
    let (Some((name, value)), None) = (pairs.next(), pairs.next()) else {
        return Err(bad("is not a single search parameter"));
    };
    if name != "identifier" {
        return Err(bad(&format!("uses the parameter '{name}'")));
    }
    match value.split_once('|') {
        Some((system, code)) if !system.is_empty() && !code.is_empty() => {
            Ok(TokenValue::SystemCode {
                system: system.to_owned(),
                code: code.to_owned(),
            })
        }
        _ => Err(bad("does not give both a system and a value")),
    }
}

/// Decode `a=b&c=d` with percent-escapes and `+` as space.
fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The identifier a resubmission is matched by: the first `identifier` with a system and value.
fn business_identifier(resource: &Value) -> Option<(String, String)> {
    let ids = match resource.get("identifier") {
        Some(Value::Array(ids)) => ids.iter().collect::<Vec<_>>(),
        Some(id @ Value::Object(_)) => vec![id],
        _ => return None,
    };
    ids.into_iter().find_map(|id| {
        let system = id.get("system").and_then(Value::as_str)?;
        let value = id.get("value").and_then(Value::as_str)?;
        Some((system.to_owned(), value.to_owned()))
    })
}

/// ODS code of `MeasureReport.reporter`, when given as an identifier.
fn reporter_ods(resource: &Value) -> Option<String> {
    let identifier = resource.get("reporter")?.get("identifier")?;
    (identifier.get("system").and_then(Value::as_str) == Some(ODS_ORG_SYSTEM))
        .then(|| identifier.get("value").and_then(Value::as_str))
        .flatten()
        .map(str::to_owned)
}

fn sha256_hex(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_exist_accepts_identifier_system_value_only() {
        assert_eq!(
            parse_if_none_exist("identifier=https%3A%2F%2Ftrust.example%2Fids%7CR-1").unwrap(),
            TokenValue::SystemCode {
                system: "https://trust.example/ids".into(),
                code: "R-1".into()
            }
        );
        assert_eq!(
            parse_if_none_exist("identifier=http://x|1").unwrap(),
            TokenValue::SystemCode {
                system: "http://x".into(),
                code: "1".into()
            }
        );
        for bad in [
            "status=final",
            "identifier=1",
            "identifier=a|1&status=x",
            "",
        ] {
            assert!(
                matches!(
                    parse_if_none_exist(bad),
                    Err(PipelineError::BadCondition(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn percent_decoding_never_panics_on_truncated_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41+b"), "A b");
    }

    #[test]
    fn business_identifier_is_the_first_complete_one() {
        let r = serde_json::json!({"identifier": [{"value": "x"}, {"system": "s", "value": "v"}]});
        assert_eq!(business_identifier(&r), Some(("s".into(), "v".into())));
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
