//! Notification Bundles as the Subscriptions R5 Backport IG (1.1.0) specifies them for R4
//! (`backport-subscription-notification-r4`): a `history` Bundle whose first entry is a
//! `Parameters` resource with profile `backport-subscription-status-r4`, then, for
//! `full-resource` content, the focus resources.
//!
//! ```text
//! Bundle (type history, id, timestamp)
//!   entry[0]  fullUrl urn:uuid:..., request GET {subscription}/$status, response 200
//!             Parameters: subscription (valueReference), topic (valueCanonical),
//!                         status, type (handshake | heartbeat | event-notification |
//!                         query-status | query-event), events-since-subscription-start
//!                         (valueString), notification-event* (event-number, timestamp,
//!                         focus unless content is empty), error* (valueCodeableConcept)
//!   entry[1..] full-resource only: fullUrl = focus, resource, request POST Bundle, response 201
//! ```
//!
//! Pure: the caller passes the time and ids; nothing here sends anything.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::forward::fhir_instant;
use super::subscription::PayloadContent;
use crate::store::SubscriptionStatus;

/// Profile of the status `Parameters` (first entry).
pub const STATUS_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
/// Profile of the notification Bundle.
pub const NOTIFICATION_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";

/// `type` of a notification (backport-notification-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    Handshake,
    Heartbeat,
    EventNotification,
    QueryStatus,
    QueryEvent,
}

impl NotificationType {
    pub fn code(self) -> &'static str {
        match self {
            NotificationType::Handshake => "handshake",
            NotificationType::Heartbeat => "heartbeat",
            NotificationType::EventNotification => "event-notification",
            NotificationType::QueryStatus => "query-status",
            NotificationType::QueryEvent => "query-event",
        }
    }
}

/// The Subscription's state at the time of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationStatus {
    /// Absolute URL of the Subscription, `{fhir base}/Subscription/{id}`.
    pub subscription_url: String,
    /// Topic canonical.
    pub topic: String,
    pub status: SubscriptionStatus,
    /// Events assigned to the Subscription so far (the last event number).
    pub events_since_start: i64,
    /// Why the Subscription is in error, if it is.
    pub error: Option<String>,
    /// `Bundle.timestamp`.
    pub timestamp: OffsetDateTime,
}

/// One event in a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEvent {
    /// The per-subscription event number (1, 2, ...).
    pub number: i64,
    /// When the event happened (the submission was accepted).
    pub timestamp: OffsetDateTime,
    /// Absolute URL of the focus (the forwarded message Bundle).
    pub focus_url: String,
    /// The focus resource, for `full-resource` content.
    pub resource: Option<Value>,
}

/// Sent to the endpoint when a Subscription is created or re-activated: no events.
pub fn handshake(status: &NotificationStatus) -> Value {
    bundle(
        status,
        NotificationType::Handshake,
        &[],
        PayloadContent::Empty,
    )
}

/// Sent when nothing else was sent for a heartbeat period: no events.
pub fn heartbeat(status: &NotificationStatus) -> Value {
    bundle(
        status,
        NotificationType::Heartbeat,
        &[],
        PayloadContent::Empty,
    )
}

/// Events delivered to the endpoint, with as much of the focus as `content` says.
pub fn event_notification(
    status: &NotificationStatus,
    events: &[NotificationEvent],
    content: PayloadContent,
) -> Value {
    bundle(status, NotificationType::EventNotification, events, content)
}

/// The answer to `$status`.
pub fn query_status(status: &NotificationStatus) -> Value {
    bundle(
        status,
        NotificationType::QueryStatus,
        &[],
        PayloadContent::Empty,
    )
}

/// The answer to `$events`.
pub fn query_event(
    status: &NotificationStatus,
    events: &[NotificationEvent],
    content: PayloadContent,
) -> Value {
    bundle(status, NotificationType::QueryEvent, events, content)
}

/// The status `Parameters` alone (the first entry).
pub fn status_parameters(
    status: &NotificationStatus,
    kind: NotificationType,
    events: &[NotificationEvent],
    content: PayloadContent,
) -> Value {
    let mut parameters = vec![
        json!({ "name": "subscription", "valueReference": { "reference": status.subscription_url } }),
        json!({ "name": "topic", "valueCanonical": status.topic }),
        json!({ "name": "status", "valueCode": status.status.as_str() }),
        json!({ "name": "type", "valueCode": kind.code() }),
        json!({
            "name": "events-since-subscription-start",
            "valueString": status.events_since_start.to_string()
        }),
    ];
    for event in events {
        let mut part = vec![
            json!({ "name": "event-number", "valueString": event.number.to_string() }),
            json!({ "name": "timestamp", "valueInstant": fhir_instant(event.timestamp) }),
        ];
        if content != PayloadContent::Empty {
            part.push(
                json!({ "name": "focus", "valueReference": { "reference": event.focus_url } }),
            );
        }
        parameters.push(json!({ "name": "notification-event", "part": part }));
    }
    if let Some(error) = &status.error {
        parameters.push(json!({ "name": "error", "valueCodeableConcept": { "text": error } }));
    }
    json!({
        "resourceType": "Parameters",
        "meta": { "profile": [ STATUS_PROFILE ] },
        "parameter": parameters,
    })
}

fn bundle(
    status: &NotificationStatus,
    kind: NotificationType,
    events: &[NotificationEvent],
    content: PayloadContent,
) -> Value {
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", Uuid::new_v4()),
        "resource": status_parameters(status, kind, events, content),
        "request": { "method": "GET", "url": format!("{}/$status", status.subscription_url) },
        "response": { "status": "200" },
    })];
    if content == PayloadContent::FullResource {
        for event in events {
            let Some(resource) = &event.resource else {
                continue;
            };
            let resource_type = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("Bundle");
            entries.push(json!({
                "fullUrl": event.focus_url,
                "resource": resource,
                "request": { "method": "POST", "url": resource_type },
                "response": { "status": "201" },
            }));
        }
    }
    let mut b = Map::new();
    b.insert("resourceType".into(), json!("Bundle"));
    b.insert("id".into(), json!(Uuid::new_v4().to_string()));
    b.insert(
        "meta".into(),
        json!({ "profile": [ NOTIFICATION_PROFILE ] }),
    );
    b.insert("type".into(), json!("history"));
    b.insert("timestamp".into(), json!(fhir_instant(status.timestamp)));
    b.insert("entry".into(), Value::Array(entries));
    Value::Object(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> NotificationStatus {
        NotificationStatus {
            subscription_url: "https://gw.example/fhir/Subscription/s1".into(),
            topic: crate::deliver::subscription::Topic::Submission.url().into(),
            status: SubscriptionStatus::Active,
            events_since_start: 7,
            error: None,
            timestamp: OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
        }
    }

    fn event(n: i64) -> NotificationEvent {
        NotificationEvent {
            number: n,
            timestamp: OffsetDateTime::from_unix_timestamp(1_789_000_000 + n).unwrap(),
            focus_url: format!("https://gw.example/fhir/Bundle/b{n}"),
            resource: Some(
                json!({ "resourceType": "Bundle", "id": format!("b{n}"), "type": "message" }),
            ),
        }
    }

    /// The parameter named `name` of the first entry's Parameters.
    fn param<'a>(bundle: &'a Value, name: &str) -> Vec<&'a Value> {
        bundle["entry"][0]["resource"]["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .collect()
    }

    /// What the IG requires of every notification: a history Bundle whose first entry is the
    /// status Parameters with its profile, a request to `$status`, and the required parameters.
    fn assert_notification(b: &Value, kind: &str) {
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "history");
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(b["id"].as_str().is_some_and(|id| id.len() == 36));
        let first = &b["entry"][0];
        assert!(first["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        assert_eq!(first["resource"]["resourceType"], "Parameters");
        assert_eq!(first["resource"]["meta"]["profile"][0], STATUS_PROFILE);
        assert_eq!(first["request"]["method"], "GET");
        assert_eq!(
            first["request"]["url"],
            "https://gw.example/fhir/Subscription/s1/$status"
        );
        assert_eq!(first["response"]["status"], "200");
        assert_eq!(
            param(b, "subscription")[0]["valueReference"]["reference"],
            "https://gw.example/fhir/Subscription/s1"
        );
        assert_eq!(
            param(b, "topic")[0]["valueCanonical"],
            "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission"
        );
        assert_eq!(param(b, "type")[0]["valueCode"], kind);
        assert_eq!(param(b, "status").len(), 1);
        assert_eq!(
            param(b, "events-since-subscription-start")[0]["valueString"],
            "7"
        );
    }

    #[test]
    fn handshake_heartbeat_and_status_carry_no_events() {
        for (b, kind) in [
            (handshake(&status()), "handshake"),
            (heartbeat(&status()), "heartbeat"),
            (query_status(&status()), "query-status"),
        ] {
            assert_notification(&b, kind);
            assert_eq!(b["entry"].as_array().unwrap().len(), 1);
            assert!(param(&b, "notification-event").is_empty());
            assert_eq!(param(&b, "status")[0]["valueCode"], "active");
        }
    }

    #[test]
    fn full_resource_carries_the_focus_entries() {
        let b = event_notification(
            &status(),
            &[event(6), event(7)],
            PayloadContent::FullResource,
        );
        assert_notification(&b, "event-notification");
        let events = param(&b, "notification-event");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["part"][0]["name"], "event-number");
        assert_eq!(events[1]["part"][0]["valueString"], "7");
        assert_eq!(events[1]["part"][1]["name"], "timestamp");
        assert_eq!(
            events[1]["part"][2]["valueReference"]["reference"],
            "https://gw.example/fhir/Bundle/b7"
        );
        let entries = b["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2]["fullUrl"], "https://gw.example/fhir/Bundle/b7");
        assert_eq!(entries[2]["resource"]["id"], "b7");
        assert_eq!(entries[2]["request"]["method"], "POST");
        assert_eq!(entries[2]["request"]["url"], "Bundle");
    }

    #[test]
    fn id_only_references_and_empty_omits_the_focus() {
        let b = query_event(&status(), &[event(3)], PayloadContent::IdOnly);
        assert_notification(&b, "query-event");
        assert_eq!(
            b["entry"].as_array().unwrap().len(),
            1,
            "no resource entries"
        );
        let part = &param(&b, "notification-event")[0]["part"];
        assert_eq!(part[2]["name"], "focus");

        let b = event_notification(&status(), &[event(3)], PayloadContent::Empty);
        assert_eq!(b["entry"].as_array().unwrap().len(), 1);
        let part = param(&b, "notification-event")[0]["part"]
            .as_array()
            .unwrap();
        assert_eq!(part.len(), 2, "event-number and timestamp only: {part:?}");
    }

    #[test]
    fn error_is_reported_as_a_codeable_concept() {
        let mut s = status();
        s.status = SubscriptionStatus::Error;
        s.error = Some("endpoint answered 410 Gone".into());
        let b = query_status(&s);
        assert_eq!(param(&b, "status")[0]["valueCode"], "error");
        assert_eq!(
            param(&b, "error")[0]["valueCodeableConcept"]["text"],
            "endpoint answered 410 Gone"
        );
    }
}
