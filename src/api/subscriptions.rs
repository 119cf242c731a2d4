//! `/fhir/Subscription` (create, read, update, delete, search, `$status`) and the topic
//! definitions at `/fhir/Basic`. Parsing the Subscription is `deliver::subscription`'s, the
//! handshake `deliver::subscriber`'s; this module turns requests into those calls and answers.
//!
//! A 2xx means committed: the Subscription is stored before the handshake, and the answer shows
//! its status after the handshake (`active`, or `error` with the reason in `Subscription.error`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::handlers::{base_url, fhir, http_date};
use super::negotiate::{Format, JsonBody, query_pairs};
use crate::deliver::notification;
use crate::deliver::subscription::{Topic, parse_with};
use crate::fhir::typed::{self, BundleKind};
use crate::fhir::{Issue, IssueType};
use crate::ingest;
use crate::store::{StoredSubscription, SubscriptionStatus, SubscriptionWrite};

type ApiResult = Result<Response, ApiError>;

/// A parsed `GET /fhir/Subscription?...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSearch {
    /// Any of these (empty: any status).
    pub status: Vec<SubscriptionStatus>,
    pub url: Option<String>,
    pub topic: Option<String>,
}

impl SubscriptionSearch {
    pub fn parse(params: &[(String, String)]) -> Result<SubscriptionSearch, Vec<Issue>> {
        let mut search = SubscriptionSearch::default();
        let mut issues = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "status" => {
                    for code in value.split(',') {
                        match SubscriptionStatus::from_code(code) {
                            Some(s) => search.status.push(s),
                            None => issues.push(
                                Issue::error(
                                    IssueType::Value,
                                    format!(
                                        "status '{code}' is not a Subscription status; expected \
                                         requested, active, error or off"
                                    ),
                                )
                                .at("status"),
                            ),
                        }
                    }
                }
                "url" => search.url = Some(value.clone()),
                "topic" | "criteria" => search.topic = Some(value.clone()),
                "_format" | "_pretty" | "_count" => {}
                other => issues.push(
                    Issue::error(
                        IssueType::NotSupported,
                        format!(
                            "search parameter '{other}' is not supported on Subscription; \
                             supported: status, url, topic"
                        ),
                    )
                    .at(other),
                ),
            }
        }
        if issues.is_empty() {
            Ok(search)
        } else {
            Err(issues)
        }
    }

    fn matches(&self, s: &StoredSubscription) -> bool {
        (self.status.is_empty() || self.status.contains(&s.status))
            && self.url.as_deref().is_none_or(|u| u == s.endpoint)
            && self.topic.as_deref().is_none_or(|t| t == s.topic)
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(
        Issue::error(
            IssueType::NotFound,
            format!("Subscription/{id} is not known to this server"),
        )
        .at("Subscription"),
    )
}

fn gone(id: &str) -> ApiError {
    ApiError::Gone(
        Issue::error(
            IssueType::Deleted,
            format!("Subscription/{id} was deleted; create a new one to subscribe again"),
        )
        .at("Subscription"),
    )
}

fn with_version(mut response: Response, s: &StoredSubscription) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", s.version_id)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(s.updated_at)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    response
}

/// Parse and check the body; what to store, and the spec to handshake with.
fn read_body(
    state: &AppState,
    body: &[u8],
) -> Result<
    (
        SubscriptionWrite,
        crate::deliver::subscription::SubscriptionSpec,
    ),
    ApiError,
> {
    let resource = ingest::resource(body, "Subscription", state.pipeline.limits())
        .map_err(|e| ApiError::BadRequest(e.issues()))?;
    let spec = parse_with(&resource.json, state.subscriptions.options())
        .map_err(ApiError::Unprocessable)?;
    let write = SubscriptionWrite {
        resource: resource.json,
        topic: spec.topic.url().to_owned(),
        status: if spec.enabled {
            SubscriptionStatus::Requested
        } else {
            SubscriptionStatus::Off
        },
        endpoint: spec.endpoint.clone(),
    };
    Ok((write, spec))
}

pub async fn create(
    State(state): State<AppState>,
    format: Format,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let (write, spec) = read_body(&state, &body)?;
    let store = state.subscriptions.store().clone();
    let mut stored = store.create_subscription(write).await?;
    if stored.status == SubscriptionStatus::Requested {
        stored = state.subscriptions.handshake(stored, &spec).await?;
    }
    let base = base_url(&state, &headers);
    let mut response = with_version(fhir(StatusCode::CREATED, format, &stored.resource), &stored);
    let location = format!(
        "{base}/Subscription/{}/_history/{}",
        stored.id, stored.version_id
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    format: Format,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let (write, spec) = read_body(&state, &body)?;
    match write.resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(ApiError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!(
                        "the body's id is '{body_id}' but the URL names Subscription/{id}; they \
                         must be the same"
                    ),
                )
                .at("Subscription.id"),
            ]));
        }
        None => {
            return Err(ApiError::BadRequest(vec![
                Issue::error(
                    IssueType::Required,
                    format!("the body has no id; an update must carry id '{id}'"),
                )
                .at("Subscription.id"),
            ]));
        }
    }
    let store = state.subscriptions.store().clone();
    let Some(mut stored) = store.update_subscription(&id, write).await? else {
        return Err(match store.subscription(&id).await? {
            Some(s) if s.deleted => gone(&id),
            _ => not_found(&id),
        });
    };
    if stored.status == SubscriptionStatus::Requested {
        stored = state.subscriptions.handshake(stored, &spec).await?;
    }
    Ok(with_version(
        fhir(StatusCode::OK, format, &stored.resource),
        &stored,
    ))
}

async fn live(state: &AppState, id: &str) -> Result<StoredSubscription, ApiError> {
    match state.subscriptions.store().subscription(id).await? {
        Some(s) if s.deleted => Err(gone(id)),
        Some(s) => Ok(s),
        None => Err(not_found(id)),
    }
}

pub async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    format: Format,
) -> ApiResult {
    let s = live(&state, &id).await?;
    Ok(with_version(fhir(StatusCode::OK, format, &s.resource), &s))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let store = state.subscriptions.store();
    if store.delete_subscription(&id).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    match store.subscription(&id).await? {
        // Deleting twice is not an error (FHIR delete is idempotent).
        Some(s) if s.deleted => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(not_found(&id)),
    }
}

pub async fn search(
    State(state): State<AppState>,
    format: Format,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = query_pairs(raw.as_deref());
    let search = SubscriptionSearch::parse(&params).map_err(ApiError::BadRequest)?;
    let base = base_url(&state, &headers);
    let found: Vec<StoredSubscription> = state
        .subscriptions
        .store()
        .subscriptions(None)
        .await?
        .into_iter()
        .filter(|s| search.matches(s))
        .collect();
    let entries = found
        .iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{base}/Subscription/{}", s.id),
                "resource": s.resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    let self_link = match raw.as_deref() {
        Some(q) if !q.is_empty() => format!("{base}/Subscription?{q}"),
        _ => format!("{base}/Subscription"),
    };
    let total = u32::try_from(found.len()).ok();
    let bundle = typed::bundle_of_stored(
        BundleKind::Searchset,
        total,
        &[("self", self_link)],
        entries,
    )?;
    Ok(fhir(StatusCode::OK, format, &bundle))
}

/// `GET|POST /fhir/Subscription/{id}/$status`: the query-status Bundle.
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    format: Format,
    headers: HeaderMap,
) -> ApiResult {
    let s = live(&state, &id).await?;
    let mut status = state.subscriptions.status_of(&s);
    // The URL the client used, so the Bundle's links resolve for it.
    status.subscription_url = format!("{}/Subscription/{}", base_url(&state, &headers), s.id);
    Ok(fhir(
        StatusCode::OK,
        format,
        &notification::query_status(&status),
    ))
}

fn topic_by_id(id: &str) -> Option<Topic> {
    Topic::ALL.into_iter().find(|t| t.id() == id)
}

/// `GET /fhir/Basic/{id}`: a topic definition.
pub async fn topic(Path(id): Path<String>, format: Format) -> ApiResult {
    let topic = topic_by_id(&id).ok_or_else(|| {
        ApiError::NotFound(
            Issue::error(
                IssueType::NotFound,
                format!(
                    "Basic/{id} is not known; this server serves Basic only for its topic \
                     definitions: {}",
                    Topic::ALL.map(|t| t.id()).join(", ")
                ),
            )
            .at("Basic"),
        )
    })?;
    Ok(fhir(StatusCode::OK, format, &topic.definition()))
}

/// `GET /fhir/Basic[?code=SubscriptionTopic]`: every topic definition.
pub async fn topics(
    State(state): State<AppState>,
    format: Format,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = query_pairs(raw.as_deref());
    let mut all = true;
    for (name, value) in &params {
        match name.as_str() {
            "code" => all &= value.rsplit('|').next() == Some("SubscriptionTopic"),
            "_format" | "_pretty" | "_count" => {}
            other => {
                return Err(ApiError::BadRequest(vec![
                    Issue::error(
                        IssueType::NotSupported,
                        format!(
                            "search parameter '{other}' is not supported on Basic; supported: code"
                        ),
                    )
                    .at(other),
                ]));
            }
        }
    }
    let base = base_url(&state, &headers);
    let entries: Vec<Value> = if all {
        Topic::ALL
            .into_iter()
            .map(|t| {
                json!({
                    "fullUrl": format!("{base}/Basic/{}", t.id()),
                    "resource": t.definition(),
                    "search": { "mode": "match" },
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let total = u32::try_from(entries.len()).ok();
    let bundle = typed::bundle_of_stored(
        BundleKind::Searchset,
        total,
        &[("self", format!("{base}/Basic"))],
        entries,
    )?;
    Ok(fhir(StatusCode::OK, format, &bundle))
}
