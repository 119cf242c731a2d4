//! Delivery over HTTP: the pull feed for consumers behind firewalls, and the operator's replay
//! and dead-letter routes. Owns request handling only; the engine (`deliver::engine`) does the
//! work.
//!
//! - `GET /fhir/$events?destination=NAME&since=N&_count=M`: a `collection` Bundle of the
//!   forwarded message Bundles of pull destination NAME numbered after N, oldest first. Each
//!   entry carries its event number (extension `{base}/StructureDefinition/pqom-event-number`)
//!   and `fullUrl` `urn:uuid:{bundle id}`; the `next` link continues after the last one. The
//!   consumer keeps the last number it processed as its cursor; reading again returns the same
//!   bytes for the same number.
//! - `GET /fhir/Subscription/{id}/$events?eventsSinceNumber=N&eventsUntilNumber=M&content=..`:
//!   the Subscriptions Backport `query-event` Bundle of that Subscription's events N..=M, so a
//!   receiver that saw a gap in `eventsSinceSubscriptionStart` can catch up.
//! - `POST /admin/replay?destination=NAME&from=N[&to=M]`: re-queue deliveries N..=M (delivered
//!   or dead) of a destination (`NAME` or `Subscription/{id}`).
//! - `GET /admin/dead-letters[?destination=NAME][&_count=M]`: dead-lettered deliveries with the
//!   reason, as JSON.
//!
//! These routes have no authentication yet (README: run the gateway on a private network).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, outcome_response};
use super::negotiate::{FHIR_JSON, query_pairs};
use super::routes;
use crate::deliver::engine::Engine;
use crate::fhir::{CANONICAL_BASE, Issue, IssueType, Outcome};

/// Extension on a feed entry: the destination's event number of that bundle.
pub const EVENT_NUMBER_EXTENSION: &str = "StructureDefinition/pqom-event-number";

const DEFAULT_COUNT: i64 = 20;
const MAX_COUNT: i64 = 100;

pub fn add_routes(router: Router<AppState>) -> Router<AppState> {
    let feed_path = routes::EVENTS_FEED.path;
    let subscription_path = routes::SUBSCRIPTION_EVENTS.path;
    router
        .route(feed_path, get(feed))
        .route(&feed_path.replace('$', "%24"), get(feed))
        .route(subscription_path, get(subscription_events))
        .route(
            &subscription_path.replace('$', "%24"),
            get(subscription_events),
        )
        .route("/admin/replay", post(replay))
        .route("/admin/dead-letters", get(dead_letters))
}

fn engine(state: &AppState) -> Result<&Engine, ApiError> {
    state.delivery.as_deref().ok_or_else(|| {
        ApiError::NotFound(Issue::error(
            IssueType::NotFound,
            "delivery is not running in this gateway",
        ))
    })
}

fn bad(param: &str, message: String) -> ApiError {
    ApiError::BadRequest(vec![
        Issue::error(IssueType::Invalid, message).at(param.to_owned()),
    ])
}

/// A non-negative integer parameter.
fn number(params: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad(
                    name,
                    format!("{name} is {v:?}; expected a non-negative whole number"),
                )
            })
        })
        .transpose()
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(name, format!("the {name} parameter is missing")))
}

fn base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.base_url {
        return b.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_pairs(raw.as_deref());
    let engine = engine(&state)?;
    let destination = required(&params, "destination")?;
    let since = number(&params, "since")?.unwrap_or(0);
    let count = number(&params, "_count")?
        .unwrap_or(DEFAULT_COUNT)
        .clamp(1, MAX_COUNT);
    let page = engine
        .feed(destination, since, count)
        .await
        .map_err(ApiError::Delivery)?;
    let base = base(&state, &headers);
    let link = |after: i64| {
        format!("{base}/$events?destination={destination}&since={after}&_count={count}")
    };
    let mut links = vec![json!({ "relation": "self", "url": link(since) })];
    if page.len() as i64 == count
        && let Some((last, _)) = page.last()
    {
        links.push(json!({ "relation": "next", "url": link(last.number) }));
    }
    let now = crate::deliver::forward::fhir_instant(time::OffsetDateTime::now_utc());
    // Built as text around the stored bundles, so that each is served byte for byte as it was
    // signed and as it is on every other read.
    let head = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now,
        "link": links,
    });
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"entry\":[");
    for (i, (record, bundle)) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let entry_head = json!({
            "extension": [{
                "url": format!("{CANONICAL_BASE}/{EVENT_NUMBER_EXTENSION}"),
                "valueUnsignedInt": record.number,
            }],
            "fullUrl": format!("urn:uuid:{}", record.bundle_id),
        });
        let mut e = serde_json::to_vec(&entry_head).unwrap_or_default();
        e.pop();
        body.extend_from_slice(&e);
        body.extend_from_slice(b",\"resource\":");
        body.extend_from_slice(bundle);
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

async fn replay(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_pairs(raw.as_deref());
    let engine = engine(&state)?;
    let destination = required(&params, "destination")?;
    let from = number(&params, "from")?
        .ok_or_else(|| bad("from", "the from parameter is missing".into()))?;
    let to = number(&params, "to")?.unwrap_or(from);
    if to < from {
        return Err(bad(
            "to",
            format!("to ({to}) is before from ({from}); expected from <= to"),
        ));
    }
    let n = engine
        .replay(destination, from, to)
        .await
        .map_err(ApiError::Delivery)?;
    Ok(outcome_response(
        StatusCode::OK,
        &Outcome::single(Issue::information(
            IssueType::Informational,
            format!("{n} delivery(ies) of {destination} numbered {from} to {to} re-queued"),
        )),
    ))
}

async fn dead_letters(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_pairs(raw.as_deref());
    let engine = engine(&state)?;
    let destination = params
        .iter()
        .find(|(k, _)| k == "destination")
        .map(|(_, v)| v.as_str());
    let count = number(&params, "_count")?
        .unwrap_or(MAX_COUNT)
        .clamp(1, 1000);
    let dead = engine
        .dead_letters(destination, count)
        .await
        .map_err(ApiError::Delivery)?;
    let items: Vec<_> = dead
        .iter()
        .map(|d| {
            json!({
                "destination": d.destination,
                "number": d.number,
                "bundleId": d.bundle_id.to_string(),
                "submissionId": d.submission_id.to_string(),
                "attempts": d.attempts,
                "lastStatus": d.last_status,
                "reason": d.last_error,
                "acceptedAt": crate::deliver::forward::fhir_instant(d.accepted_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "deadLetters": items })).into_response())
}

async fn subscription_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_pairs(raw.as_deref());
    let engine = engine(&state)?;
    let since = number(&params, "eventsSinceNumber")?.unwrap_or(1);
    let until = number(&params, "eventsUntilNumber")?;
    if let Some(until) = until
        && until < since
    {
        return Err(bad(
            "eventsUntilNumber",
            format!(
                "eventsUntilNumber ({until}) is before eventsSinceNumber ({since}); expected \
                 since <= until"
            ),
        ));
    }
    let content = params
        .iter()
        .find(|(k, _)| k == "content")
        .map(|(_, v)| {
            crate::deliver::subscription::PayloadContent::from_code(v).ok_or_else(|| {
                bad(
                    "content",
                    format!("content is {v:?}; expected empty, id-only or full-resource"),
                )
            })
        })
        .transpose()?;
    let count = number(&params, "_count")?
        .unwrap_or(MAX_COUNT)
        .clamp(1, MAX_COUNT);
    match engine
        .subscription_events(&id, since, until, count, content)
        .await
        .map_err(ApiError::Delivery)?
    {
        Some(bundle) => {
            let mut response = (
                StatusCode::OK,
                serde_json::to_vec(&bundle).unwrap_or_default(),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            Ok(response)
        }
        None => Err(ApiError::NotFound(
            Issue::error(
                IssueType::NotFound,
                format!("Subscription/{id} is not known to this server"),
            )
            .at("Subscription.id"),
        )),
    }
}
