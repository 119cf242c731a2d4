//! The ONE place that maps every stage's error to an OperationOutcome and an HTTP status.
//!
//! | what | status |
//! |---|---|
//! | envelope not usable (not JSON, not a resource, wrong type, bad message structure) | 400 |
//! | validation errors (profiles); a Subscription the gateway cannot serve (topic, filter, channel) | 422 |
//! | message rejected with a readable MessageHeader | 422 + response message (fatal-error) |
//! | unsupported `If-None-Exist`, bad search parameters, bad version id | 400 |
//! | unknown resource / version / route, unknown region or indicator | 404; wrong method 405 |
//! | deleted Subscription | 410 |
//! | `If-None-Exist` matched several | 412 |
//! | XML asked for in Accept or `_format` | 406; XML (or other) Content-Type 415 |
//! | body over the limit | 413 |
//! | delivery: unknown destination 404; feed of a push destination 400 | 404 / 400 |
//! | store unavailable (connection, pool, busy) | 503 + Retry-After |
//! | anything else on the server side | 500, logged; never for a client mistake |
//!
//! Messages: the FHIR messaging spec answers a processed message with 200 and its response
//! message, whatever `response.code` says; this gateway instead uses the HTTP status to say the
//! message was refused (`fatal-error` -> 422, `transient-error` -> 503), so that plain HTTP
//! clients and proxies see a failure, and still sends the response message in the body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fhir::typed::{ResponseCode, TypedError};
use crate::fhir::{Issue, IssueType, Outcome};
use crate::pipeline::{PipelineError, Rejection};
use crate::store::StoreError;

use super::negotiate::FHIR_JSON;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Typed(#[from] TypedError),
    #[error("the submission was rejected")]
    Rejected(Rejection),
    #[error("the request is not valid")]
    BadRequest(Vec<Issue>),
    /// Well-formed, but not something this server can accept (e.g. a Subscription to an unknown
    /// topic or a plain-http endpoint).
    #[error("the request cannot be processed")]
    Unprocessable(Vec<Issue>),
    #[error("gone")]
    Gone(Issue),
    #[error("not found")]
    NotFound(Issue),
    #[error("method not allowed")]
    MethodNotAllowed(Issue),
    #[error("not acceptable")]
    NotAcceptable(Issue),
    #[error("unsupported media type")]
    UnsupportedMediaType(Issue),
    #[error("payload too large")]
    PayloadTooLarge(Issue),
    #[error(transparent)]
    Delivery(crate::deliver::engine::EngineError),
}

/// HTTP status of a rejected submission.
pub fn rejection_status(rejection: &Rejection) -> StatusCode {
    match rejection {
        Rejection::Envelope(_) => StatusCode::BAD_REQUEST,
        Rejection::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// HTTP status of a response message.
pub fn message_status(code: ResponseCode) -> StatusCode {
    match code {
        ResponseCode::Ok => StatusCode::OK,
        ResponseCode::FatalError => StatusCode::UNPROCESSABLE_ENTITY,
        ResponseCode::TransientError => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn internal(what: &str) -> Outcome {
    Outcome::single(Issue::error(
        IssueType::Exception,
        format!("{what}; the error was logged (quote the X-Request-Id of this response)"),
    ))
}

impl ApiError {
    pub fn status_and_outcome(&self) -> (StatusCode, Outcome) {
        match self {
            ApiError::Pipeline(PipelineError::Store(e)) | ApiError::Store(e) => store_error(e),
            ApiError::Pipeline(PipelineError::BadCondition(i)) => {
                (StatusCode::BAD_REQUEST, Outcome::single(i.clone()))
            }
            ApiError::Pipeline(PipelineError::MultipleMatches(i)) => {
                (StatusCode::PRECONDITION_FAILED, Outcome::single(i.clone()))
            }
            ApiError::Pipeline(PipelineError::Response(_)) | ApiError::Typed(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                internal("building the response failed"),
            ),
            ApiError::Pipeline(PipelineError::Task(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                internal("processing the submission failed"),
            ),
            ApiError::Pipeline(PipelineError::Deliver(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                internal("building or signing the bundle failed"),
            ),
            ApiError::Pipeline(PipelineError::NotConfigured(what)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                internal(&format!(
                    "this gateway is not configured for this request: {what}"
                )),
            ),
            ApiError::Rejected(r) => (rejection_status(r), r.outcome()),
            ApiError::BadRequest(issues) => (StatusCode::BAD_REQUEST, Outcome::new(issues.clone())),
            ApiError::Unprocessable(issues) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Outcome::new(issues.clone()),
            ),
            ApiError::Gone(i) => (StatusCode::GONE, Outcome::single(i.clone())),
            ApiError::NotFound(i) => (StatusCode::NOT_FOUND, Outcome::single(i.clone())),
            ApiError::MethodNotAllowed(i) => {
                (StatusCode::METHOD_NOT_ALLOWED, Outcome::single(i.clone()))
            }
            ApiError::NotAcceptable(i) => (StatusCode::NOT_ACCEPTABLE, Outcome::single(i.clone())),
            ApiError::UnsupportedMediaType(i) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Outcome::single(i.clone()),
            ),
            ApiError::PayloadTooLarge(i) => {
                (StatusCode::PAYLOAD_TOO_LARGE, Outcome::single(i.clone()))
            }
            ApiError::Delivery(e) => delivery_error(e),
        }
    }
}

fn delivery_error(e: &crate::deliver::engine::EngineError) -> (StatusCode, Outcome) {
    use crate::deliver::engine::EngineError;
    match e {
        EngineError::UnknownDestination(name) => (
            StatusCode::NOT_FOUND,
            Outcome::single(
                Issue::error(
                    IssueType::NotFound,
                    format!(
                        "no destination {name:?} is configured; expected the name of a \
                         [[deliver.destination]] or Subscription/{{id}}"
                    ),
                )
                .at("destination"),
            ),
        ),
        EngineError::NotPull(name) => (
            StatusCode::BAD_REQUEST,
            Outcome::single(
                Issue::error(
                    IssueType::NotSupported,
                    format!(
                        "destination {name:?} is a push destination (the gateway sends to it); \
                         expected a destination of kind \"pull\""
                    ),
                )
                .at("destination"),
            ),
        ),
        EngineError::Store(e) => store_error(e),
        EngineError::NoOutbox | EngineError::Forward(_) | EngineError::Missing(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            internal("delivery failed"),
        ),
    }
}

fn store_error(e: &StoreError) -> (StatusCode, Outcome) {
    match e {
        StoreError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Outcome::single(Issue::error(
                IssueType::Transient,
                "the database is unavailable; nothing was stored, retry later",
            )),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            internal("the database reported an error; nothing was stored"),
        ),
    }
}

/// An OperationOutcome response with `status`.
pub fn outcome_response(status: StatusCode, outcome: &Outcome) -> Response {
    let body = serde_json::to_vec(&outcome.to_json()).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, outcome) = self.status_and_outcome();
        if status.is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(&self), "request failed");
        }
        outcome_response(status, &outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestError;

    #[test]
    fn client_mistakes_are_never_5xx() {
        let i = Issue::error(IssueType::Invalid, "x");
        for e in [
            ApiError::Rejected(Rejection::Envelope(IngestError::NotJson(i.clone()))),
            ApiError::Rejected(Rejection::Invalid(Outcome::single(i.clone()))),
            ApiError::BadRequest(vec![i.clone()]),
            ApiError::Unprocessable(vec![i.clone()]),
            ApiError::Gone(i.clone()),
            ApiError::NotFound(i.clone()),
            ApiError::NotAcceptable(i.clone()),
            ApiError::UnsupportedMediaType(i.clone()),
            ApiError::PayloadTooLarge(i.clone()),
            ApiError::Pipeline(PipelineError::BadCondition(i.clone())),
            ApiError::Pipeline(PipelineError::MultipleMatches(i.clone())),
        ] {
            assert!(e.status_and_outcome().0.is_client_error(), "{e:?}");
        }
    }

    #[test]
    fn an_unavailable_store_is_503_transient() {
        let (status, outcome) = ApiError::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
            .status_and_outcome();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outcome.issues[0].code, IssueType::Transient);
    }
}
