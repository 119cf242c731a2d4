use super::*;

/// The IG's R4 example shape, with this gateway's topic and filters.
fn example() -> Value {
    json!({
        "resourceType": "Subscription",
        "meta": { "profile": [ BACKPORT_SUBSCRIPTION ] },
        "status": "requested",
        "reason": "QMM ICB quality dashboard",
        "end": "2027-03-31T23:59:59Z",
        "criteria": Topic::Submission.url(),
        "_criteria": { "extension": [
            { "url": FILTER_CRITERIA, "valueString": "MeasureReport?reporter=RM1" },
            { "url": FILTER_CRITERIA, "valueString": "MeasureReport?reporter=RGP" },
            { "url": FILTER_CRITERIA, "valueString": "MeasureReport?indicator=stillbirth-rate" }
        ] },
        "channel": {
            "extension": [
                { "url": HEARTBEAT_PERIOD, "valueUnsignedInt": 60 },
                { "url": TIMEOUT, "valueUnsignedInt": 10 },
                { "url": MAX_COUNT, "valuePositiveInt": 5 }
            ],
            "type": "rest-hook",
            "endpoint": "https://icb.example/fhir/notify",
            "payload": "application/fhir+json",
            "_payload": { "extension": [ { "url": PAYLOAD_CONTENT, "valueCode": "full-resource" } ] },
            "header": [ "Authorization: Bearer abc", "X-Feed: pqom" ]
        }
    })
}

fn issues_of(v: &Value) -> Vec<Issue> {
    parse(v).expect_err("should be refused")
}

fn has_issue(issues: &[Issue], at: &str, words: &str) -> bool {
    issues
        .iter()
        .any(|i| i.expression.as_deref() == Some(at) && i.diagnostics.contains(words))
}

#[test]
fn parses_the_backport_r4_shape() {
    let spec = parse(&example()).unwrap();
    assert_eq!(spec.topic, Topic::Submission);
    assert_eq!(spec.endpoint, "https://icb.example/fhir/notify");
    assert_eq!(spec.content, PayloadContent::FullResource);
    assert_eq!(spec.heartbeat_period, Some(Duration::from_secs(60)));
    assert_eq!(spec.timeout, Some(Duration::from_secs(10)));
    assert_eq!(spec.max_count, Some(5));
    assert!(spec.enabled);
    assert_eq!(
        spec.headers,
        vec![
            ("Authorization".to_owned(), "Bearer abc".to_owned()),
            ("X-Feed".to_owned(), "pqom".to_owned())
        ]
    );
    assert_eq!(spec.filters.len(), 3);
    assert_eq!(
        spec.criteria_strings()[2],
        "MeasureReport?indicator=stillbirth-rate"
    );
    assert_eq!(spec.end.unwrap().year(), 2027);
}

#[test]
fn defaults_without_optional_elements() {
    let mut v = example();
    v.as_object_mut().unwrap().remove("_criteria");
    v.as_object_mut().unwrap().remove("end");
    let ch = v["channel"].as_object_mut().unwrap();
    ch.remove("extension");
    ch.remove("_payload");
    ch.remove("header");
    let spec = parse(&v).unwrap();
    assert!(spec.filters.is_empty());
    assert_eq!(
        spec.content,
        PayloadContent::IdOnly,
        "payload without content code"
    );
    assert_eq!(spec.heartbeat_period, None);
    v["channel"].as_object_mut().unwrap().remove("payload");
    assert_eq!(parse(&v).unwrap().content, PayloadContent::Empty);
    v["status"] = json!("off");
    assert!(!parse(&v).unwrap().enabled);
}

#[test]
fn filters_accept_bare_and_system_forms_and_commas() {
    let mut v = example();
    v["_criteria"]["extension"] = json!([
        { "url": FILTER_CRITERIA, "valueString": "icb=QMM&region=https://fhir.nhs.uk/Id/ods-organization-code|Y61" },
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?reporter=RM1,RCX" }
    ]);
    let spec = parse(&v).unwrap();
    let got: Vec<(FilterParam, &str)> = spec
        .filters
        .iter()
        .map(|f| (f.param, f.value.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (FilterParam::Icb, "QMM"),
            (FilterParam::Region, "Y61"),
            (FilterParam::Reporter, "RM1"),
            (FilterParam::Reporter, "RCX"),
        ]
    );
}

#[test]
fn unknown_topic_is_refused_at_criteria() {
    let mut v = example();
    v["criteria"] = json!("https://example.org/SubscriptionTopic/other");
    let issues = issues_of(&v);
    assert!(has_issue(
        &issues,
        "Subscription.criteria",
        "not a topic of this gateway"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.criteria",
        Topic::Submission.url()
    ));
    v["criteria"] = json!("MeasureReport?reporter=RM1");
    assert!(has_issue(
        &issues_of(&v),
        "Subscription.criteria",
        "topic-based"
    ));
}

#[test]
fn bad_filters_name_the_extension() {
    let mut v = example();
    v["_criteria"]["extension"] = json!([
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?reporter=RM1" },
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?patient=123" },
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?reporter=rm 1" },
        { "url": FILTER_CRITERIA, "valueString": "Encounter?reporter=RM1" },
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?indicator=Stillbirth Rate" },
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?icb=http://other|QMM" }
    ]);
    let issues = issues_of(&v);
    let at = |i: usize| format!("Subscription.criteria.extension[{i}].value");
    assert!(has_issue(&issues, &at(1), "'patient' is not supported"));
    assert!(has_issue(&issues, &at(2), "not an ODS code"));
    assert!(has_issue(&issues, &at(3), "against 'Encounter'"));
    assert!(has_issue(&issues, &at(4), "not a pqom-indicator code"));
    assert!(has_issue(&issues, &at(5), "names system 'http://other'"));
    assert_eq!(issues.len(), 5, "{issues:#?}");
}

#[test]
fn endpoint_must_be_https_unless_loopback_is_allowed() {
    let mut v = example();
    v["channel"]["endpoint"] = json!("http://icb.example/notify");
    assert!(has_issue(
        &issues_of(&v),
        "Subscription.channel.endpoint",
        "expected an https URL"
    ));
    v["channel"]["endpoint"] = json!("http://127.0.0.1:9000/notify");
    assert!(has_issue(
        &issues_of(&v),
        "Subscription.channel.endpoint",
        "--subscription-http-loopback"
    ));
    let allow = ParseOptions {
        allow_http_loopback: true,
    };
    assert!(parse_with(&v, &allow).is_ok());
    v["channel"]["endpoint"] = json!("http://localhost:9000/notify");
    assert!(parse_with(&v, &allow).is_ok());
    v["channel"]["endpoint"] = json!("http://[::1]:9000/notify");
    assert!(parse_with(&v, &allow).is_ok());
    v["channel"]["endpoint"] = json!("http://10.0.0.1/notify");
    assert!(parse_with(&v, &allow).is_err(), "not loopback");
    v["channel"]["endpoint"] = json!("not a url");
    assert!(has_issue(
        &issues_of(&v),
        "Subscription.channel.endpoint",
        "not an absolute URL"
    ));
}

#[test]
fn channel_problems_each_get_their_expression() {
    let mut v = example();
    v["channel"]["type"] = json!("websocket");
    v["channel"]["payload"] = json!("application/fhir+xml");
    v["channel"]["header"] = json!(["NoColon", "Content-Type: text/plain"]);
    v["channel"]["extension"] = json!([
        { "url": HEARTBEAT_PERIOD, "valueString": "60" },
        { "url": TIMEOUT, "valueUnsignedInt": 100000 },
        { "url": MAX_COUNT, "valuePositiveInt": 0 }
    ]);
    let issues = issues_of(&v);
    assert!(has_issue(
        &issues,
        "Subscription.channel.type",
        "'rest-hook' only"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.payload",
        "application/fhir+json"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.header[0]",
        "no ':'"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.header[1]",
        "set by the gateway"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.extension[0].value",
        "heartbeat"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.extension[1].value",
        "from 1 to 120"
    ));
    assert!(has_issue(
        &issues,
        "Subscription.channel.extension[2].value",
        "valuePositiveInt"
    ));
}

#[test]
fn bad_payload_content_code() {
    let mut v = example();
    v["channel"]["_payload"]["extension"][0]["valueCode"] = json!("everything");
    assert!(has_issue(
        &issues_of(&v),
        "Subscription.channel.payload.extension[0].value",
        "'everything'".trim_matches('\'')
    ));
}

#[test]
fn status_reason_and_shape() {
    let mut v = example();
    v["status"] = json!("error");
    v.as_object_mut().unwrap().remove("reason");
    v["end"] = json!("next tuesday");
    let issues = issues_of(&v);
    assert!(has_issue(
        &issues,
        "Subscription.status",
        "only the gateway sets"
    ));
    assert!(has_issue(&issues, "Subscription.reason", "1..1"));
    assert!(has_issue(&issues, "Subscription.end", "next tuesday"));
    assert!(has_issue(
        &issues_of(&json!({ "resourceType": "Patient" })),
        "resourceType",
        "\"Patient\""
    ));
    let no_channel = {
        let mut v = example();
        v.as_object_mut().unwrap().remove("channel");
        v
    };
    assert!(has_issue(
        &issues_of(&no_channel),
        "Subscription.channel",
        "missing"
    ));
}

fn facts(reporter: &str, icb: &str, region: &str, indicators: &[&str]) -> EventFacts {
    EventFacts {
        reporter: reporter.into(),
        icb: Some(icb.into()),
        region: Some(region.into()),
        indicators: indicators.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn matches_same_name_or_different_names_and() {
    let spec = parse(&example()).unwrap(); // reporter RM1|RGP AND indicator stillbirth-rate
    let ok = facts("RM1", "QMM", "Y61", &["stillbirth-rate", "pph-1500ml"]);
    assert!(spec.matches(Topic::Submission, &ok));
    assert!(spec.matches(
        Topic::Submission,
        &facts("rgp", "QMM", "Y61", &["stillbirth-rate"])
    ));
    assert!(
        !spec.matches(Topic::RegionalBundle, &ok),
        "another topic never matches"
    );
    assert!(
        !spec.matches(
            Topic::Submission,
            &facts("RCX", "QMM", "Y61", &["stillbirth-rate"])
        ),
        "reporter not listed"
    );
    assert!(
        !spec.matches(
            Topic::Submission,
            &facts("RM1", "QMM", "Y61", &["pph-1500ml"])
        ),
        "indicator filter is ANDed with reporter"
    );
}

#[test]
fn matches_icb_and_region_and_no_filters() {
    let mut v = example();
    v["_criteria"]["extension"] = json!([
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?icb=QMM" }
    ]);
    let spec = parse(&v).unwrap();
    assert!(spec.matches(Topic::Submission, &facts("RM1", "QMM", "Y61", &[])));
    assert!(!spec.matches(Topic::Submission, &facts("RM1", "QHG", "Y61", &[])));
    let unknown_icb = EventFacts {
        reporter: "RM1".into(),
        ..EventFacts::default()
    };
    assert!(!spec.matches(Topic::Submission, &unknown_icb));

    v["_criteria"]["extension"] = json!([
        { "url": FILTER_CRITERIA, "valueString": "MeasureReport?region=Y61" }
    ]);
    let spec = parse(&v).unwrap();
    assert!(spec.matches(Topic::Submission, &facts("RM1", "QMM", "Y61", &[])));
    assert!(!spec.matches(Topic::Submission, &facts("RM1", "QMM", "Y56", &[])));

    v.as_object_mut().unwrap().remove("_criteria");
    let spec = parse(&v).unwrap();
    assert!(
        spec.matches(Topic::Submission, &unknown_icb),
        "no filters: every event"
    );
}

#[test]
fn topics_round_trip_and_publish_as_basic() {
    for t in Topic::ALL {
        assert_eq!(Topic::from_url(t.url()), Some(t));
        assert_eq!(Topic::from_url(&format!("{}|1.0.0", t.url())), Some(t));
        let basic = t.definition();
        assert_eq!(basic["resourceType"], "Basic");
        assert_eq!(basic["id"], t.id());
        assert_eq!(basic["code"]["coding"][0]["code"], "SubscriptionTopic");
        assert_eq!(basic["extension"][0]["valueUri"], t.url());
        let filters: Vec<&str> = basic["extension"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["url"].as_str().unwrap().ends_with(".canFilterBy"))
            .map(|e| e["extension"][2]["valueString"].as_str().unwrap())
            .collect();
        assert_eq!(filters, ["reporter", "icb", "region", "indicator"]);
    }
    assert_eq!(
        Topic::from_url("https://fhir.pqom-gateway.org/SubscriptionTopic/x"),
        None
    );
}
