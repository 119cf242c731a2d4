//! Delivery settings and statically configured destinations (`[deliver]` and
//! `[[deliver.destination]]` in the config file).
//!
//! A static destination receives the forwarded FHIR message Bundle of every accepted submission
//! that matches its filters: `push` destinations at their own `$process-message` endpoint, `pull`
//! destinations (consumers behind firewalls) by reading `GET /fhir/$events?destination=NAME`
//! with a cursor. Filters are lists; an empty list matches everything, values within a list are
//! alternatives, and the lists must all match (`reporter = ["RM1", "RGP"]`, `icb = ["QMM"]`).
//!
//! ```toml
//! [deliver]
//! retry_horizon_seconds = 259200   # 72 h, then dead-letter
//!
//! [[deliver.destination]]
//! name = "qmm-dashboard"
//! endpoint = "https://dashboard.qmm.example.nhs.uk/fhir/$process-message"
//! receiver_ods = "QMM"
//! icb = ["QMM"]
//! headers = { Authorization = "Bearer ..." }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::retry::Backoff;
use crate::store::outbox::{OutboxEvent, TOPIC_SUBMISSION};

/// How a destination gets its bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The gateway POSTs to `endpoint`.
    #[default]
    Push,
    /// The consumer reads the `$events` feed.
    Pull,
}

/// One `[[deliver.destination]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique name: letters, digits, `-`, `_`, `.` (it names the feed and the metrics series).
    pub name: String,
    #[serde(default)]
    pub kind: Kind,
    /// `$process-message` URL of the receiver (push only).
    pub endpoint: Option<String>,
    /// ODS code of the receiving organisation (`MessageHeader.destination.receiver`).
    pub receiver_ods: Option<String>,
    /// Trust ODS codes.
    #[serde(default)]
    pub reporter: Vec<String>,
    /// ICB ODS codes.
    #[serde(default)]
    pub icb: Vec<String>,
    /// Region ODS codes.
    #[serde(default)]
    pub region: Vec<String>,
    /// `pqom-indicator` codes: the submission must map to at least one of them.
    #[serde(default)]
    pub indicator: Vec<String>,
    /// Extra request headers (e.g. `Authorization`), push only.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl DestinationConfig {
    /// Whether an event is for this destination.
    pub fn matches(&self, event: &OutboxEvent) -> bool {
        let one_of = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        event.topic == TOPIC_SUBMISSION
            && one_of(&self.reporter, event.reporter.as_deref())
            && one_of(&self.icb, event.icb.as_deref())
            && one_of(&self.region, event.region.as_deref())
            && (self.indicator.is_empty()
                || event
                    .indicators
                    .iter()
                    .any(|i| self.indicator.iter().any(|x| x == i)))
    }
}

/// `[deliver]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverConfig {
    /// Give up on a delivery this long after it was queued (dead-letter with the reason).
    pub retry_horizon_seconds: u64,
    /// Upper bound of the first retry's delay; it doubles per attempt (full jitter).
    pub initial_backoff_ms: u64,
    /// Upper bound of any retry delay.
    pub max_backoff_seconds: u64,
    /// Timeout of one delivery request.
    pub request_timeout_seconds: u64,
    /// How long a claimed delivery is reserved for the instance sending it; after that another
    /// instance may send it again (a crashed instance's claims come back). Longer than the
    /// request timeout.
    pub lease_seconds: u64,
    /// Deliveries in flight at once, across destinations (one per destination at a time).
    pub max_in_flight: usize,
    /// How often the dispatcher and worker look for work besides being woken by a commit (due
    /// retries, other instances' events, expired leases).
    pub poll_interval_ms: u64,
    pub destination: Vec<DestinationConfig>,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            retry_horizon_seconds: 72 * 3600,
            initial_backoff_ms: 1_000,
            max_backoff_seconds: 3_600,
            request_timeout_seconds: 30,
            lease_seconds: 120,
            max_in_flight: 16,
            poll_interval_ms: 1_000,
            destination: Vec::new(),
        }
    }
}

impl DeliverConfig {
    /// Check the settings; the message names the setting at fault.
    pub fn check(&self) -> Result<(), String> {
        if self.request_timeout_seconds == 0 {
            return Err("deliver.request_timeout_seconds must be at least 1".into());
        }
        if self.lease_seconds <= self.request_timeout_seconds {
            return Err(format!(
                "deliver.lease_seconds ({}) must be longer than deliver.request_timeout_seconds \
                 ({}): a lease that ends while its request is still running lets another \
                 instance send the same delivery",
                self.lease_seconds, self.request_timeout_seconds
            ));
        }
        if self.retry_horizon_seconds == 0 {
            return Err("deliver.retry_horizon_seconds must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return Err("deliver.max_in_flight must be at least 1".into());
        }
        if self.poll_interval_ms == 0 {
            return Err("deliver.poll_interval_ms must be at least 1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.destination {
            let valid_name = !d.name.is_empty()
                && d.name.len() <= 64
                && d.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name {
                return Err(format!(
                    "deliver.destination name {:?} is not valid; expected 1 to 64 letters, \
                     digits, '-', '_' or '.'",
                    d.name
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err(format!(
                    "deliver.destination name {:?} is used twice",
                    d.name
                ));
            }
            match (d.kind, &d.endpoint) {
                (Kind::Push, None) => {
                    return Err(format!(
                        "deliver.destination {:?} has no endpoint; a push destination needs \
                         the URL of its $process-message",
                        d.name
                    ));
                }
                (Kind::Push, Some(e))
                    if !(e.starts_with("http://") || e.starts_with("https://")) =>
                {
                    return Err(format!(
                        "deliver.destination {:?} endpoint {e:?} is not an http(s) URL",
                        d.name
                    ));
                }
                (Kind::Pull, Some(_)) => {
                    return Err(format!(
                        "deliver.destination {:?} is a pull destination and cannot have an \
                         endpoint (its consumer reads GET /fhir/$events?destination={})",
                        d.name, d.name
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_millis(self.initial_backoff_ms),
            max: Duration::from_secs(self.max_backoff_seconds),
            horizon: Duration::from_secs(self.retry_horizon_seconds),
        }
    }

    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destination.iter().find(|d| d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reporter: &str, icb: &str, region: &str) -> OutboxEvent {
        OutboxEvent {
            topic: TOPIC_SUBMISSION.into(),
            reporter: Some(reporter.into()),
            icb: Some(icb.into()),
            region: Some(region.into()),
            indicators: vec!["stillbirth-rate".into()],
        }
    }

    fn dest(toml_text: &str) -> DestinationConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn filters_are_anded_across_and_ored_within() {
        let d = dest(
            "name = \"a\"\nendpoint = \"http://x\"\nicb = [\"QMM\"]\nreporter = [\"RM1\", \"rgp\"]",
        );
        assert!(d.matches(&event("RM1", "QMM", "Y61")));
        assert!(d.matches(&event("RGP", "QMM", "Y61")));
        assert!(!d.matches(&event("RCX", "QMM", "Y61")));
        assert!(!d.matches(&event("RM1", "QHL", "Y60")));
        let all = dest("name = \"b\"\nendpoint = \"http://x\"");
        assert!(all.matches(&event("RQ3", "QHL", "Y60")));
        let ind = dest("name = \"c\"\nendpoint = \"http://x\"\nindicator = [\"vbac\"]");
        assert!(!ind.matches(&event("RM1", "QMM", "Y61")));
    }

    #[test]
    fn settings_are_checked() {
        let ok: DeliverConfig = toml::from_str(
            "[[destination]]\nname = \"a\"\nendpoint = \"http://x/fhir/$process-message\"",
        )
        .unwrap();
        assert!(ok.check().is_ok());
        let no_endpoint: DeliverConfig = toml::from_str("[[destination]]\nname = \"a\"").unwrap();
        assert!(no_endpoint.check().unwrap_err().contains("no endpoint"));
        let twice: DeliverConfig = toml::from_str(
            "[[destination]]\nname = \"a\"\nkind = \"pull\"\n[[destination]]\nname = \"a\"\nkind = \"pull\"",
        )
        .unwrap();
        assert!(twice.check().unwrap_err().contains("twice"));
        let lease: DeliverConfig =
            toml::from_str("lease_seconds = 5\nrequest_timeout_seconds = 10").unwrap();
        assert!(lease.check().unwrap_err().contains("lease_seconds"));
        assert!(toml::from_str::<DeliverConfig>("retry_horizon = 5").is_err());
    }
}
