//! Media types: JSON only (`application/fhir+json`, `application/json`), chosen from `_format`
//! (which wins, as FHIR says) or `Accept`; request bodies must be JSON. Anything asking for XML
//! (or another format) is refused with an OperationOutcome saying JSON only.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::fhir::{Issue, IssueType};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
pub const PLAIN_JSON: &str = "application/json; charset=utf-8";

/// The response format a request negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub content_type: &'static str,
    pub pretty: bool,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            content_type: FHIR_JSON,
            pretty: false,
        }
    }
}

fn json_only(seen: &str, expression: &str) -> Issue {
    Issue::error(
        IssueType::NotSupported,
        format!(
            "{seen} was requested; this server produces and accepts JSON only \
             (application/fhir+json or application/json)"
        ),
    )
    .at(expression)
}

/// Decoded query parameters (`+` and percent-escapes), in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                crate::pipeline::percent_decode(k),
                crate::pipeline::percent_decode(v),
            )
        })
        .collect()
}

/// A media type's essence (`type/subtype`, lower case) and whether its `fhirVersion` parameter,
/// if any, names R4.
fn media_type(value: &str) -> (String, bool) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let r4 = parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("fhirVersion") => {
            let v = v.trim().trim_matches('"');
            v == "4.0" || v == "4.0.1"
        }
        _ => true,
    });
    (essence, r4)
}

fn is_xml(essence: &str) -> bool {
    essence.ends_with("/xml") || essence.ends_with("+xml") || essence == "xml"
}

fn from_format_param(value: &str) -> Result<&'static str, ApiError> {
    let (essence, r4) = media_type(value);
    match essence.as_str() {
        "json" | "application/fhir+json" if r4 => Ok(FHIR_JSON),
        "application/json" if r4 => Ok(PLAIN_JSON),
        e if is_xml(e) => Err(ApiError::NotAcceptable(json_only(
            &format!("_format={value}"),
            "_format",
        ))),
        _ if !r4 => Err(ApiError::NotAcceptable(
            Issue::error(
                IssueType::NotSupported,
                format!(
                    "_format={value} asks for another FHIR version; this server speaks FHIR 4.0.1"
                ),
            )
            .at("_format"),
        )),
        _ => Err(ApiError::NotAcceptable(json_only(
            &format!("_format={value}"),
            "_format",
        ))),
    }
}

fn from_accept(accept: &str) -> Result<&'static str, ApiError> {
    let mut saw_xml = false;
    let mut wrong_version = false;
    for range in accept.split(',') {
        let refused = range.split(';').skip(1).any(|p| {
            matches!(p.split_once('='), Some((k, v)) if k.trim() == "q" && v.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        if refused {
            continue;
        }
        let (essence, r4) = media_type(range);
        if !r4 {
            wrong_version = true;
            continue;
        }
        match essence.as_str() {
            "application/fhir+json" | "*/*" | "application/*" | "" => return Ok(FHIR_JSON),
            "application/json" => return Ok(PLAIN_JSON),
            e if is_xml(e) => saw_xml = true,
            _ => {}
        }
    }
    let seen = format!("Accept: {accept}");
    if wrong_version && !saw_xml {
        return Err(ApiError::NotAcceptable(
            Issue::error(
                IssueType::NotSupported,
                format!("{seen} asks for another FHIR version; this server speaks FHIR 4.0.1"),
            )
            .at("Accept"),
        ));
    }
    Err(ApiError::NotAcceptable(json_only(&seen, "Accept")))
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let params = query_pairs(parts.uri.query());
        let pretty = params.iter().any(|(k, v)| k == "_pretty" && v == "true");
        let content_type = if let Some((_, f)) = params.iter().find(|(k, _)| k == "_format") {
            from_format_param(f)?
        } else {
            match parts.headers.get(ACCEPT).map(|v| v.to_str()) {
                None => FHIR_JSON,
                Some(Ok(accept)) if accept.trim().is_empty() => FHIR_JSON,
                Some(Ok(accept)) => from_accept(accept)?,
                Some(Err(_)) => {
                    return Err(ApiError::NotAcceptable(json_only(
                        "an unreadable Accept header",
                        "Accept",
                    )));
                }
            }
        };
        Ok(Format {
            content_type,
            pretty,
        })
    }
}

/// A request body that is JSON by its Content-Type, read up to the configured limit.
#[derive(Debug)]
pub struct JsonBody(pub Vec<u8>);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let (essence, r4) = media_type(ct);
            let ok = matches!(
                essence.as_str(),
                "application/fhir+json" | "application/json"
            );
            if !ok || !r4 {
                let issue = if is_xml(&essence) {
                    json_only(&format!("Content-Type: {ct}"), "Content-Type")
                } else if !r4 {
                    Issue::error(
                        IssueType::NotSupported,
                        format!("Content-Type: {ct} is another FHIR version; this server speaks FHIR 4.0.1"),
                    )
                    .at("Content-Type")
                } else {
                    Issue::error(
                        IssueType::NotSupported,
                        format!(
                            "Content-Type: {ct} is not JSON; send application/fhir+json or application/json"
                        ),
                    )
                    .at("Content-Type")
                };
                return Err(ApiError::UnsupportedMediaType(issue));
            }
        }
        let limit = state.pipeline.limits().max_body_bytes;
        let too_large = |seen: String| {
            ApiError::PayloadTooLarge(Issue::error(
                IssueType::TooLong,
                format!("the body is {seen}; this server accepts at most {limit} bytes"),
            ))
        };
        // Refuse early on a declared length, without reading anything.
        if let Some(len) = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit as u64
        {
            return Err(too_large(format!("{len} bytes")));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(JsonBody(bytes.to_vec())),
            Err(e) => {
                let over_limit = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if over_limit {
                    Err(too_large(format!("more than {limit} bytes")))
                } else {
                    Err(ApiError::BadRequest(vec![Issue::error(
                        IssueType::Incomplete,
                        format!("the request body could not be read: {e}"),
                    )]))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_json_or_refuses() {
        assert_eq!(from_accept("application/fhir+json").unwrap(), FHIR_JSON);
        assert_eq!(from_accept("application/json").unwrap(), PLAIN_JSON);
        assert_eq!(
            from_accept("text/html,application/xhtml+xml,*/*;q=0.8").unwrap(),
            FHIR_JSON
        );
        assert_eq!(
            from_accept("application/fhir+json; fhirVersion=4.0").unwrap(),
            FHIR_JSON
        );
        assert!(from_accept("application/fhir+xml").is_err());
        assert!(from_accept("application/fhir+json; fhirVersion=4.3").is_err());
        assert!(from_accept("application/json;q=0, application/xml").is_err());
    }

    #[test]
    fn format_parameter() {
        assert_eq!(from_format_param("json").unwrap(), FHIR_JSON);
        assert_eq!(from_format_param("application/json").unwrap(), PLAIN_JSON);
        assert!(from_format_param("xml").is_err());
        assert!(from_format_param("text/turtle").is_err());
    }
}
