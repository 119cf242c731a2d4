//! Route handlers: parse the request, call the pipeline or the store, render FHIR JSON.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::AppState;
use super::error::{ApiError, message_status, outcome_response, rejection_status};
use super::negotiate::{Format, JsonBody, query_pairs};
use super::routes::{self, OPERATIONS, RESOURCES};
use crate::deliver::directory::Kind;
use crate::deliver::provenance::Gateway;
use crate::fhir::typed::{self, BundleKind, Capabilities, ResourceCapability};
use crate::fhir::{Issue, IssueType, Outcome};
use crate::pipeline::{CreateResult, MessageResult, PeriodRange, SeriesRefusal};
use crate::store::StoredResource;
use crate::store::search::SearchQuery;

type ApiResult = Result<Response, ApiError>;

/// A FHIR JSON response.
pub(super) fn fhir(status: StatusCode, format: Format, body: &Value) -> Response {
    let bytes = if format.pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    }
    .unwrap_or_default();
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type),
    );
    response
}

pub(super) fn http_date(at: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

fn version_headers(response: &mut Response, stored: &StoredResource) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(stored.version_id)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(stored.last_updated)) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// The FHIR base URL of this server as the client sees it.
pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.base_url {
        return base.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

fn not_found(resource_type: &str, id: &str) -> ApiError {
    ApiError::NotFound(
        Issue::error(
            IssueType::NotFound,
            format!("{resource_type}/{id} is not known to this server"),
        )
        .at(resource_type),
    )
}

pub async fn read(
    State(state): State<AppState>,
    resource_type: &'static str,
    Path(id): Path<String>,
    format: Format,
) -> ApiResult {
    let stored = state
        .pipeline
        .store()
        .read(resource_type, &id)
        .await?
        .ok_or_else(|| not_found(resource_type, &id))?;
    let mut response = fhir(StatusCode::OK, format, &stored.resource);
    version_headers(&mut response, &stored);
    Ok(response)
}

pub async fn vread(
    State(state): State<AppState>,
    resource_type: &'static str,
    Path((id, vid)): Path<(String, String)>,
    format: Format,
) -> ApiResult {
    let Ok(version_id) = vid.parse::<i64>() else {
        return Err(ApiError::NotFound(Issue::error(
            IssueType::NotFound,
            format!(
                "'{vid}' is not a version of {resource_type}/{id}; versions are numbered 1, 2, ..."
            ),
        )));
    };
    let stored = state
        .pipeline
        .store()
        .vread(resource_type, &id, version_id)
        .await?
        .ok_or_else(|| not_found(resource_type, &format!("{id}/_history/{vid}")))?;
    let mut response = fhir(StatusCode::OK, format, &stored.resource);
    version_headers(&mut response, &stored);
    Ok(response)
}

pub async fn history(
    State(state): State<AppState>,
    resource_type: &'static str,
    Path(id): Path<String>,
    format: Format,
    headers: HeaderMap,
) -> ApiResult {
    let versions = state.pipeline.store().history(resource_type, &id).await?;
    if versions.is_empty() {
        return Err(not_found(resource_type, &id));
    }
    let base = base_url(&state, &headers);
    let entries = versions
        .iter()
        .map(|v| {
            let (method, url, status) = if v.version_id == 1 {
                ("POST", resource_type.to_owned(), "201 Created")
            } else {
                ("PUT", format!("{resource_type}/{}", v.id), "200 OK")
            };
            let last_modified = v
                .last_updated
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            json!({
                "fullUrl": format!("{base}/{resource_type}/{}", v.id),
                "resource": v.resource,
                "request": { "method": method, "url": url },
                "response": {
                    "status": status,
                    "etag": etag(v.version_id),
                    "lastModified": last_modified,
                },
            })
        })
        .collect();
    let links = [("self", format!("{base}/{resource_type}/{id}/_history"))];
    let total = u32::try_from(versions.len()).ok();
    let bundle = typed::bundle_of_stored(BundleKind::History, total, &links, entries)?;
    Ok(fhir(StatusCode::OK, format, &bundle))
}

pub async fn search(
    State(state): State<AppState>,
    resource_type: &'static str,
    format: Format,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = query_pairs(raw.as_deref());
    let base = base_url(&state, &headers);
    let link_to = |pairs: &[(String, String)]| {
        if pairs.is_empty() {
            format!("{base}/{resource_type}")
        } else {
            format!("{base}/{resource_type}?{}", encode_pairs(pairs))
        }
    };
    if resource_type == "MeasureReport" {
        // Indicator Measures are answered from the stored indicator values (the map stage),
        // pooled for ICB and region reporters.
        if let Some(page) = state.pipeline.indicator_reports(&params).await? {
            let page = page.map_err(ApiError::BadRequest)?;
            let mut links = vec![("self", link_to(&params))];
            if let Some(cursor) = &page.next {
                links.push(("next", link_to(&SearchQuery::next_params(&params, cursor))));
            }
            let total = (page.first && page.next.is_none())
                .then(|| u32::try_from(page.reports.len()).ok())
                .flatten();
            // Reports are computed on read and have no id of their own.
            let entries = page
                .reports
                .into_iter()
                .map(|r| {
                    json!({
                        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                        "resource": r,
                        "search": { "mode": "match" },
                    })
                })
                .collect();
            let bundle = typed::bundle_of_stored(BundleKind::Searchset, total, &links, entries)?;
            return Ok(fhir(StatusCode::OK, format, &bundle));
        }
    }
    let query = SearchQuery::parse(resource_type, &params).map_err(ApiError::BadRequest)?;
    let page = state.pipeline.store().search(resource_type, &query).await?;
    let mut links = vec![("self", link_to(&params))];
    if let Some(cursor) = &page.next {
        links.push(("next", link_to(&SearchQuery::next_params(&params, cursor))));
    }
    // The total is only free when everything fits on the first page.
    let total = (query.after.is_none() && page.next.is_none())
        .then(|| u32::try_from(page.resources.len()).ok())
        .flatten();
    let entries = page
        .resources
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{base}/{resource_type}/{}", r.id),
                "resource": r.resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    let bundle = typed::bundle_of_stored(BundleKind::Searchset, total, &links, entries)?;
    Ok(fhir(StatusCode::OK, format, &bundle))
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn create(
    State(state): State<AppState>,
    resource_type: &'static str,
    format: Format,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let condition = headers
        .get("if-none-exist")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    let result = state
        .pipeline
        .create(resource_type, body, condition.as_deref())
        .await?;
    let prefer = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match result {
        CreateResult::Created { resource, outcome } => {
            let base = base_url(&state, &headers);
            let mut response = if prefer.contains("return=minimal") {
                StatusCode::CREATED.into_response()
            } else if prefer.contains("return=OperationOutcome") {
                fhir(StatusCode::CREATED, format, &outcome.to_json())
            } else {
                fhir(StatusCode::CREATED, format, &resource.resource)
            };
            let location = format!(
                "{base}/{resource_type}/{}/_history/{}",
                resource.id, resource.version_id
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            version_headers(&mut response, &resource);
            Ok(response)
        }
        CreateResult::Exists(resource) => {
            let mut response = fhir(StatusCode::OK, format, &resource.resource);
            version_headers(&mut response, &resource);
            Ok(response)
        }
        CreateResult::Rejected { rejection, .. } => Err(ApiError::Rejected(rejection)),
    }
}

pub async fn process_message(
    State(state): State<AppState>,
    format: Format,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult {
    if query_pairs(raw.as_deref())
        .iter()
        .any(|(k, v)| k == "async" && v == "true")
    {
        return Err(ApiError::BadRequest(vec![
            Issue::error(
                IssueType::NotSupported,
                "async=true was requested; this gateway processes messages synchronously only",
            )
            .at("async"),
        ]));
    }
    match state.pipeline.process_message(body).await? {
        MessageResult::Responded { response, code, .. } => {
            Ok(fhir(message_status(code), format, &response))
        }
        MessageResult::Rejected { rejection, .. } => {
            let status = rejection_status(&rejection);
            Ok(fhir(status, format, &rejection.outcome().to_json()))
        }
    }
}

/// `GET /fhir/Bundle/$regional?region=Y61&period=2026-10`: the signed consolidated regional
/// bundle. The region must be a region of the organisation directory (an unknown code is 404, an
/// ICB's or a trust's 400); a period with no data gives a valid bundle with completeness 0 of N.
pub async fn regional_bundle(
    State(state): State<AppState>,
    format: Format,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = query_pairs(raw.as_deref());
    let mut region = None;
    let mut period = PeriodRange::default();
    let mut period_given = false;
    let mut problems = Vec::new();
    for (k, v) in &params {
        match k.as_str() {
            "_format" | "_pretty" => {}
            "region" => region = Some(v.trim().to_ascii_uppercase()),
            "period" => {
                period_given = true;
                if let Err(e) = period.add(v) {
                    problems.push(Issue::error(IssueType::Value, format!("period: {e}")));
                }
            }
            other => problems.push(Issue::error(
                IssueType::NotSupported,
                format!("'{other}' is not a parameter of $regional; use region and period"),
            )),
        }
    }
    if region.is_none() {
        problems.push(Issue::error(
            IssueType::Required,
            "region is required: the ODS code of an NHS England region (e.g. region=Y61)",
        ));
    }
    if !period_given {
        problems.push(Issue::error(
            IssueType::Required,
            "period is required: a year, month or day (e.g. period=2026-10), optionally with \
             ge or le",
        ));
    }
    let (Some(region), true) = (region, problems.is_empty()) else {
        return Err(ApiError::BadRequest(problems));
    };
    let Some(directory) = state.pipeline.directory() else {
        return Err(ApiError::NotFound(Issue::error(
            IssueType::NotSupported,
            "this gateway has no organisation directory loaded, so it knows no regions",
        )));
    };
    let organisation = match directory.kind(&region) {
        Some(Kind::Region) => directory.organisation(&region).cloned(),
        Some(kind) => {
            let what = if kind == Kind::Icb {
                "an ICB"
            } else {
                "a trust"
            };
            return Err(ApiError::BadRequest(vec![Issue::error(
                IssueType::Value,
                format!(
                    "region: {region} is {what}, not an NHS England region; expected a region \
                     ODS code such as Y61 (for an ICB's values use \
                     GET /fhir/MeasureReport?measure=...&reporter={region})"
                ),
            )]));
        }
        None => None,
    };
    let Some(organisation) = organisation else {
        return Err(ApiError::NotFound(Issue::error(
            IssueType::NotFound,
            format!(
                "region: {region} is not a region in the gateway's organisation directory \
                 (mappings/organisations.toml)"
            ),
        )));
    };
    let Some(keys) = &state.keys else {
        return Err(ApiError::NotFound(Issue::error(
            IssueType::NotSupported,
            "this gateway has no signing keys loaded, so it cannot sign a regional bundle",
        )));
    };
    let base = base_url(&state, &headers);
    let gateway = Gateway::new(base, gateway_instance());
    let built = state
        .pipeline
        .regional_bundle(&organisation, &period, &gateway, keys.signer(), None)
        .await?;
    // The signed bytes as built, always compact (`_pretty` is ignored): receivers keep and
    // verify exactly these.
    let mut response = (StatusCode::OK, built.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type),
    );
    Ok(response)
}

/// Name of this gateway instance in Provenance (the host name where the platform sets one).
fn gateway_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pqom-gateway".to_owned())
}

/// `GET /api/indicators/{code}/series?org=QMM[&from=2026-07][&to=2026-10]`: plain JSON for
/// charts, one point per period with the (pooled) counts, the rate and, for an ICB or region,
/// completeness.
pub async fn indicator_series(
    State(state): State<AppState>,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = query_pairs(raw.as_deref());
    match state.pipeline.indicator_series(&code, &params).await? {
        Ok(series) => {
            let body = serde_json::to_vec(&series).unwrap_or_default();
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Err(SeriesRefusal::UnknownIndicator(issue)) => Err(ApiError::NotFound(issue)),
        Err(SeriesRefusal::BadRequest(issues)) => Err(ApiError::BadRequest(issues)),
    }
}

/// The CapabilityStatement, derived from the route table and the loaded profiles.
pub async fn metadata(
    State(state): State<AppState>,
    format: Format,
    headers: HeaderMap,
) -> ApiResult {
    let profiles_of = |ty: &str| -> Vec<String> {
        state
            .profiles
            .iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, url)| url.clone())
            .collect()
    };
    let mut resources: Vec<ResourceCapability> = RESOURCES
        .iter()
        .map(|def| ResourceCapability {
            resource_type: def.resource_type,
            supported_profiles: profiles_of(def.resource_type),
            interactions: def.interactions.iter().map(|i| i.code()).collect(),
            conditional_create: def.conditional_create,
            search_params: def
                .search_params
                .iter()
                .map(|p| (p.name, p.type_code, p.documentation))
                .collect(),
            operations: def
                .operations
                .iter()
                .map(|o| (o.name, o.definition))
                .collect(),
        })
        .collect();
    // Profiles for types received only inside messages (Bundle, MessageHeader): listed with no
    // REST interactions, so a client knows what a submission is validated against.
    let mut others: Vec<&str> = state
        .profiles
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| routes::resource(t).is_none())
        .collect();
    others.sort_unstable();
    others.dedup();
    for ty in others {
        if let Some(static_ty) = static_type(ty) {
            resources.push(ResourceCapability {
                resource_type: static_ty,
                supported_profiles: profiles_of(ty),
                interactions: Vec::new(),
                conditional_create: false,
                search_params: Vec::new(),
                operations: Vec::new(),
            });
        }
    }
    let base = base_url(&state, &headers);
    let caps = Capabilities {
        messaging_endpoint: Some(format!(
            "{base}{}",
            routes::PROCESS_MESSAGE.path.trim_start_matches("/fhir")
        )),
        base_url: base,
        resources,
        operations: OPERATIONS
            .iter()
            .chain(routes::READ_OPERATIONS)
            .map(|o| (o.name, o.definition))
            .collect(),
        supported_messages: Vec::new(),
    };
    let statement = typed::capability_statement(&caps)?;
    Ok(fhir(StatusCode::OK, format, &statement))
}

/// Resource types that can appear in a profile but are not served over REST.
fn static_type(ty: &str) -> Option<&'static str> {
    [
        "Bundle",
        "MessageHeader",
        "Provenance",
        "Organization",
        "OperationOutcome",
    ]
    .into_iter()
    .find(|t| *t == ty)
}

pub async fn healthz() -> Response {
    let mut r = (StatusCode::OK, r#"{"status":"pass"}"#).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    r
}

/// The public signing keys (RFC 7517 JWK Set) receivers verify forwarded bundles with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let Some(keys) = &state.keys else {
        return outcome_response(
            StatusCode::NOT_FOUND,
            &Outcome::single(Issue::error(
                IssueType::NotFound,
                "this gateway has no signing keys loaded, so it publishes no JWKS",
            )),
        );
    };
    let body = serde_json::to_vec(&crate::deliver::keys::jwks_document(keys)).unwrap_or_default();
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Receivers may cache briefly; rotation keeps the old key published well beyond this.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.pipeline.store().ping().await {
        Ok(()) => {
            let mut r = (StatusCode::OK, r#"{"status":"pass"}"#).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/health+json"),
            );
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            outcome_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &Outcome::single(Issue::error(
                    IssueType::Transient,
                    "the database is not reachable; this instance is not ready",
                )),
            )
        }
    }
}

pub async fn prometheus(State(state): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, state.metrics.render()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

pub async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let diagnostics = match segments.as_slice() {
        ["fhir", ty, ..]
            if ty.starts_with(|c: char| c.is_ascii_uppercase())
                && routes::resource(ty).is_none() =>
        {
            format!(
                "resource type '{ty}' is not served here; this server serves {} (see /fhir/metadata)",
                RESOURCES
                    .iter()
                    .map(|r| r.resource_type)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ => format!("no route for {method} {path}; see /fhir/metadata for what this server does"),
    };
    ApiError::NotFound(Issue::error(IssueType::NotSupported, diagnostics)).into_response()
}

pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    ApiError::MethodNotAllowed(Issue::error(
        IssueType::NotSupported,
        format!(
            "{method} is not supported on {}; see /fhir/metadata for the interactions this server supports",
            uri.path()
        ),
    ))
    .into_response()
}
