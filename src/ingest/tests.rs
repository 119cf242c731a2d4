use serde_json::{Value, json};

use super::*;

fn limits() -> Limits {
    Limits::default()
}

fn message_json() -> Value {
    json!({
        "resourceType": "Bundle",
        "id": "b1",
        "type": "message",
        "timestamp": "2026-11-01T09:00:00Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": "2c0f0d6e-0000-4000-8000-000000000001",
                    "eventCoding": {
                        "system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event",
                        "code": "pqom-submission"
                    },
                    "sender": { "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RX1" } },
                    "source": { "endpoint": "https://epr.trust.example/fhir" },
                    "focus": [ { "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000002" } ]
                }
            },
            {
                "fullUrl": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000002",
                "resource": { "resourceType": "MeasureReport", "status": "complete" }
            },
            {
                "fullUrl": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000003",
                "resource": { "resourceType": "Organization", "id": "RX1" }
            }
        ]
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn only_issue(err: &IngestError) -> Issue {
    let issues = err.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    issues.into_iter().next().unwrap()
}

#[test]
fn a_good_message_passes_and_keeps_its_focus() {
    let m = message(&bytes(&message_json()), &limits()).unwrap();
    assert_eq!(m.header.id, "2c0f0d6e-0000-4000-8000-000000000001");
    assert_eq!(m.header.sender_ods.as_deref(), Some("RX1"));
    assert_eq!(
        m.header.source_endpoint.as_deref(),
        Some("https://epr.trust.example/fhir")
    );
    assert_eq!(
        m.focus,
        vec![Focus {
            entry: 1,
            resource_type: "MeasureReport".into()
        }]
    );
    assert_eq!(m.focus_resources().count(), 1);
}

#[test]
fn not_json() {
    let err = message(b"<Bundle xmlns=\"http://hl7.org/fhir\"/>", &limits()).unwrap_err();
    assert!(matches!(err, IngestError::NotJson(_)));
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::Structure);
    assert!(
        issue.diagnostics.contains("not valid JSON"),
        "{}",
        issue.diagnostics
    );
}

#[test]
fn empty_body_is_not_json() {
    let err = resource(b"  ", "MeasureReport", &limits()).unwrap_err();
    assert!(only_issue(&err).diagnostics.contains("empty"));
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_before_parsing() {
    let limits = Limits {
        max_depth: 10,
        ..Limits::default()
    };
    let deep = format!("{}{}", "[".repeat(11), "]".repeat(11));
    let err = parse(deep.as_bytes(), &limits).unwrap_err();
    assert!(matches!(err, IngestError::TooDeep(_)));
    assert_eq!(only_issue(&err).code, IssueType::TooLong);
    // Exactly at the limit is fine.
    let ok = format!("{}{}", "[".repeat(10), "]".repeat(10));
    assert!(parse(ok.as_bytes(), &limits).is_ok());
    // Brackets inside strings (including escaped quotes) do not count.
    let in_string = r#"{"a":"[[[[[[[[[[[[[[\"[[[[[[["}"#;
    assert!(parse(in_string.as_bytes(), &limits).is_ok());
}

#[test]
fn unclosed_deep_nesting_is_reported_as_too_deep_not_as_a_parse_error() {
    let deep = "[".repeat(100_000);
    let err = parse(deep.as_bytes(), &limits()).unwrap_err();
    assert!(matches!(err, IngestError::TooDeep(_)));
}

#[test]
fn json_that_is_not_a_resource() {
    let err = resource(br#"{"status":"complete"}"#, "MeasureReport", &limits()).unwrap_err();
    assert!(matches!(err, IngestError::NotAResource(_)));
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::Required);
    assert_eq!(issue.expression.as_deref(), Some("resourceType"));

    let err = resource(b"[1,2]", "MeasureReport", &limits()).unwrap_err();
    assert!(matches!(err, IngestError::NotAResource(_)));
    assert!(only_issue(&err).diagnostics.contains("array"));
}

#[test]
fn wrong_resource_type_for_the_endpoint() {
    let err = resource(br#"{"resourceType":"Measure"}"#, "MeasureReport", &limits()).unwrap_err();
    assert!(matches!(err, IngestError::WrongResourceType(_)));
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::Invalid);
    assert_eq!(issue.expression.as_deref(), Some("resourceType"));
    assert!(issue.diagnostics.contains("'Measure'"));

    let err = message(br#"{"resourceType":"Parameters"}"#, &limits()).unwrap_err();
    assert!(matches!(err, IngestError::WrongResourceType(_)));
}

#[test]
fn bundle_that_is_not_a_message() {
    let mut m = message_json();
    m["type"] = json!("collection");
    let err = message(&bytes(&m), &limits()).unwrap_err();
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::Value);
    assert_eq!(issue.expression.as_deref(), Some("Bundle.type"));
    assert!(issue.diagnostics.contains("'collection'"));
    assert!(err.header().is_none());
}

#[test]
fn first_entry_not_a_message_header() {
    let mut m = message_json();
    m["entry"].as_array_mut().unwrap().swap(0, 1);
    let err = message(&bytes(&m), &limits()).unwrap_err();
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::Structure);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Bundle.entry[0].resource.resourceType")
    );
    assert!(issue.diagnostics.contains("a MeasureReport"));
}

#[test]
fn message_without_entries() {
    let mut m = message_json();
    m["entry"] = json!([]);
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::Required);
    assert_eq!(issue.expression.as_deref(), Some("Bundle.entry"));
}

#[test]
fn message_header_without_id() {
    let mut m = message_json();
    m["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::Required);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Bundle.entry[0].resource.id")
    );
}

#[test]
fn focus_that_does_not_resolve() {
    let mut m = message_json();
    m["entry"][0]["resource"]["focus"] = json!([
        { "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000002" },
        { "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-00000000dead" }
    ]);
    let err = message(&bytes(&m), &limits()).unwrap_err();
    let issue = only_issue(&err);
    assert_eq!(issue.code, IssueType::NotFound);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Bundle.entry[0].resource.focus[1]")
    );
    assert!(issue.diagnostics.contains("00000000dead"));
    // The header was readable, so a response message can still be sent.
    assert_eq!(
        err.header().map(|h| h.id.as_str()),
        Some("2c0f0d6e-0000-4000-8000-000000000001")
    );
}

#[test]
fn relative_focus_against_urn_full_urls_does_not_resolve_and_says_why() {
    let mut m = message_json();
    m["entry"][1]["resource"]["id"] = json!("r1");
    m["entry"][0]["resource"]["focus"] = json!([{ "reference": "MeasureReport/r1" }]);
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::NotFound);
    assert!(
        issue
            .diagnostics
            .contains("urn:uuid:2c0f0d6e-0000-4000-8000-000000000002"),
        "{}",
        issue.diagnostics
    );
}

#[test]
fn relative_focus_against_restful_full_urls_resolves() {
    let mut m = message_json();
    m["entry"][0]["fullUrl"] = json!("https://epr.trust.example/fhir/MessageHeader/h1");
    m["entry"][1]["fullUrl"] = json!("https://epr.trust.example/fhir/MeasureReport/r1");
    m["entry"][0]["resource"]["focus"] = json!([{ "reference": "MeasureReport/r1" }]);
    let msg = message(&bytes(&m), &limits()).unwrap();
    assert_eq!(msg.focus[0].entry, 1);
}

#[test]
fn duplicate_full_urls() {
    let mut m = message_json();
    m["entry"][2]["fullUrl"] = json!("urn:uuid:2c0f0d6e-0000-4000-8000-000000000002");
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::Invariant);
    assert_eq!(issue.expression.as_deref(), Some("Bundle.entry[2].fullUrl"));
    assert!(issue.diagnostics.contains("Bundle.entry[1]"));
}

#[test]
fn focus_of_an_unsupported_type() {
    let mut m = message_json();
    m["entry"][0]["resource"]["focus"] =
        json!([{ "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000003" }]);
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::NotSupported);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Bundle.entry[0].resource.focus[0]")
    );
    assert!(issue.diagnostics.contains("Organization"));
}

#[test]
fn missing_focus() {
    let mut m = message_json();
    m["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("focus");
    let issue = only_issue(&message(&bytes(&m), &limits()).unwrap_err());
    assert_eq!(issue.code, IssueType::Required);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Bundle.entry[0].resource.focus")
    );
}

#[test]
fn every_envelope_problem_is_reported_at_once() {
    let mut m = message_json();
    m["entry"][2]["fullUrl"] = json!("urn:uuid:2c0f0d6e-0000-4000-8000-000000000002");
    m["entry"][0]["resource"]["focus"] = json!([{ "reference": "urn:uuid:nope" }]);
    let err = message(&bytes(&m), &limits()).unwrap_err();
    assert_eq!(err.issues().len(), 2);
}

#[test]
fn duplicate_focus_references_store_the_entry_once() {
    let mut m = message_json();
    m["entry"][0]["resource"]["focus"] = json!([
        { "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000002" },
        { "reference": "urn:uuid:2c0f0d6e-0000-4000-8000-000000000002" }
    ]);
    assert_eq!(message(&bytes(&m), &limits()).unwrap().focus.len(), 1);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("message".to_owned()),
                Just("MessageHeader".to_owned()),
                Just("MeasureReport".to_owned()),
                Just("urn:uuid:2c0f0d6e-0000-4000-8000-000000000002".to_owned()),
                Just("MeasureReport/r1".to_owned()),
                Just("http://x/fhir/MeasureReport/r1/_history/1".to_owned()),
                ".{0,12}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("resourceType".to_owned()),
                            Just("type".to_owned()),
                            Just("entry".to_owned()),
                            Just("resource".to_owned()),
                            Just("fullUrl".to_owned()),
                            Just("focus".to_owned()),
                            Just("reference".to_owned()),
                            Just("id".to_owned()),
                            "[a-z]{1,6}",
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = message(&bytes, &Limits::default());
            let _ = resource(&bytes, "MeasureReport", &Limits::default());
        }

        #[test]
        fn arbitrary_json_shapes(v in arbitrary_json()) {
            let _ = message(&serde_json::to_vec(&v).unwrap(), &Limits::default());
        }

        /// A valid message with one element replaced by arbitrary JSON: never a panic, and an
        /// error always carries at least one issue with diagnostics.
        #[test]
        fn mutated_messages(v in arbitrary_json(), which in 0usize..8) {
            let mut m = message_json();
            let target = match which {
                0 => &mut m["type"],
                1 => &mut m["entry"],
                2 => &mut m["entry"][0],
                3 => &mut m["entry"][0]["resource"],
                4 => &mut m["entry"][0]["resource"]["focus"],
                5 => &mut m["entry"][0]["resource"]["focus"][0],
                6 => &mut m["entry"][1]["fullUrl"],
                _ => &mut m["entry"][0]["resource"]["id"],
            };
            *target = v;
            if let Err(e) = message(&serde_json::to_vec(&m).unwrap(), &Limits::default()) {
                let issues = e.issues();
                prop_assert!(!issues.is_empty());
                prop_assert!(issues.iter().all(|i| !i.diagnostics.is_empty()));
            }
        }
    }
}
