//! `POST /fhir/$validate` and `POST /fhir/{type}/$validate`: the gateway's validator as a FHIR
//! operation, so an EPR can check a report or a message before submitting it.
//!
//! The body is either the resource itself or a `Parameters` resource with a `resource` parameter
//! (and optionally `profile`); `?profile=URL` works for both. The answer is always an
//! OperationOutcome: 200 with the validation result (errors included: the operation worked),
//! 400 when the request itself is unusable (no resource, type mismatch, unknown profile), 503 when
//! no validator is loaded. Nothing is stored. Owns only request handling; the rules are `validate`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use super::AppState;
use super::error::{ApiError, outcome_response};
use super::negotiate::{Format, JsonBody, query_pairs};
use super::routes::RESOURCES;
use crate::fhir::{Issue, IssueType, Outcome};

/// Adds `$validate` at system level and for every resource type. The served types get their own
/// static route (it must win over `/fhir/{type}/{id}`), every other type the generic one.
/// A `$` may arrive percent-encoded.
pub fn add_routes(mut router: Router<AppState>) -> Router<AppState> {
    for dollar in ["$", "%24"] {
        router = router
            .route(&format!("/fhir/{dollar}validate"), post(system))
            .route(&format!("/fhir/{{type}}/{dollar}validate"), post(any_type));
        for def in RESOURCES {
            let ty: &'static str = def.resource_type;
            router = router.route(
                &format!("/fhir/{ty}/{dollar}validate"),
                post(move |s, f, q, b| for_type(s, ty, f, q, b)),
            );
        }
    }
    router
}

/// `POST /fhir/$validate`.
async fn system(
    State(state): State<AppState>,
    format: Format,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    run(state, None, format, raw, body).await
}

/// `POST /fhir/{type}/$validate` for a served type.
async fn for_type(
    State(state): State<AppState>,
    resource_type: &'static str,
    format: Format,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    run(state, Some(resource_type.to_owned()), format, raw, body).await
}

/// `POST /fhir/{type}/$validate` for any other type.
async fn any_type(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    format: Format,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    run(state, Some(resource_type), format, raw, body).await
}

async fn run(
    state: AppState,
    resource_type: Option<String>,
    format: Format,
    raw: Option<String>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let Some(validator) = state.validator.clone() else {
        return Ok(outcome_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &Outcome::single(Issue::error(
                IssueType::Transient,
                "the validator is not loaded on this instance",
            )),
        ));
    };
    let mut profiles: Vec<String> = query_pairs(raw.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "profile")
        .map(|(_, v)| v)
        .collect();
    // Parse once, numbers kept as their exact text, and validate off the async workers.
    let outcome = tokio::task::spawn_blocking(move || -> Result<Outcome, Vec<Issue>> {
        let value: sonic_rs::Value = sonic_rs::Deserializer::from_slice(&body)
            .use_rawnumber()
            .deserialize()
            .map_err(|e| {
                vec![Issue::error(
                    IssueType::Structure,
                    format!("the body is not valid JSON: {e}"),
                )]
            })?;
        let in_parameters = value.get("resourceType").and_then(|v| v.as_str())
            == Some("Parameters")
            && resource_type.as_deref() != Some("Parameters");
        let resource = if in_parameters {
            let params = value.get("parameter").and_then(|v| v.as_array());
            let mut found = None;
            for p in params.into_iter().flat_map(|a| a.iter()) {
                match p.get("name").and_then(|v| v.as_str()) {
                    Some("resource") => found = p.get("resource"),
                    Some("profile") => {
                        let url = ["valueUri", "valueCanonical", "valueString"]
                            .iter()
                            .find_map(|k| p.get(*k).and_then(|v| v.as_str()));
                        if let Some(url) = url {
                            profiles.push(url.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            found.ok_or_else(|| {
                vec![Issue::error(
                    IssueType::Required,
                    "the Parameters body has no 'resource' parameter with the resource to validate",
                )
                .at("Parameters.parameter")]
            })?
        } else {
            &value
        };
        let found_type = resource.get("resourceType").and_then(|v| v.as_str());
        if let (Some(want), Some(found)) = (resource_type.as_deref(), found_type)
            && want != found
        {
            return Err(vec![Issue::error(
                IssueType::Invalid,
                format!("$validate was called on {want} but the resource is a {found}"),
            )]);
        }
        let unknown: Vec<Issue> = profiles
            .iter()
            .filter(|p| !validator.has_profile(p))
            .map(|p| {
                Issue::error(
                    IssueType::NotFound,
                    format!("profile {p} is not loaded on this gateway"),
                )
                .at("profile")
            })
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let refs: Vec<&str> = profiles.iter().map(String::as_str).collect();
        // The body itself is validated as received; a resource inside Parameters is written out.
        Ok(if in_parameters {
            validator.validate_value(resource, &refs)
        } else {
            validator.validate(&body, &refs)
        })
    })
    .await;
    let response = match outcome {
        Ok(Ok(outcome)) => respond(StatusCode::OK, format, &outcome),
        Ok(Err(issues)) => return Err(ApiError::BadRequest(issues)),
        Err(_) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            format,
            &Outcome::single(Issue::error(
                IssueType::Exception,
                "the validator failed on this resource",
            )),
        ),
    };
    Ok(response)
}

fn respond(status: StatusCode, format: Format, outcome: &Outcome) -> Response {
    let body = outcome.to_json();
    let bytes = if format.pretty {
        serde_json::to_vec_pretty(&body)
    } else {
        serde_json::to_vec(&body)
    }
    .unwrap_or_default();
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type),
    );
    response
}
