//! The delivery engine: a dispatcher that fans outbox events out to destinations, and a worker
//! that sends each destination's deliveries in order, with retries, until they are delivered or
//! dead-lettered. State lives in the store ([`crate::store::outbox`]), so a restart (or another
//! instance on the same PostgreSQL) continues where this one stopped.
//!
//! Guarantees and how they are kept:
//! - Every accepted submission reaches every matching destination: its event is written in the
//!   commit that accepts it, and the dispatcher turns every undispatched event into deliveries
//!   in one transaction (the event is marked dispatched in the same one).
//! - In order per destination, numbered without gaps: numbers are given at fan-out from the
//!   destination's counter; the worker only sends a destination's lowest pending number. The
//!   order is the dispatch order: events in `seq` order among those committed when the
//!   dispatcher runs. On PostgreSQL two commits that overlap in time (two instances accepting at
//!   once) can become visible out of `seq` order and are then dispatched in visibility order;
//!   a trust's resubmission, sent after its first was acknowledged, always comes after it.
//! - Once in effect: a delivery is marked delivered after its 2xx; a crash between the 2xx and
//!   that mark, or a lease that expires, sends it again with the same bundle id and event number
//!   (the bundle is built once, at the first attempt, and kept), so receivers deduplicate.
//! - A slow or dead receiver holds up only itself: at most one delivery per destination is in
//!   flight, `max_in_flight` across all, each with a request timeout.
//!
//! What is sent depends on the event's topic: a `submission` event brings the forwarded message
//! Bundle of the trust's submission ([`forward`]); a `regional-bundle` event the consolidated
//! bundle of its region and period ([`super::regional`]), built from the indicator values as
//! they stood at the event's commit, so that each event's bundle says what that submission
//! changed however late it is built. Subscriptions get either inside an event notification.
//!
//! The forwarded bundle is built at the first attempt rather than at fan-out: fan-out stays a
//! short transaction (no signing, no large reads inside the dispatcher lock), and a destination
//! that is never sent to (a pull feed nobody reads) costs nothing. It is then stored, because
//! its MessageHeader and Provenance ids and timestamps make every build different.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::destinations::{DeliverConfig, DestinationConfig, Kind};
use super::directory::{Directory, Organisation, Route};
use super::forward::{self, Destination, ForwardInput, ForwardResource, Submission};
use super::keys::KeyRing;
use super::notification::{self, NotificationEvent, NotificationStatus};
use super::provenance::Gateway;
use super::retry::{self, Next};
use super::subscription::{self, EventFacts, SubscriptionSpec, Topic};
use crate::pipeline::{PeriodRange, RegionalParts, RegionalScope};
use crate::store::index::micros;
use crate::store::outbox::{
    Claimed, DeliveryRecord, EventRecord, Fanout, Finish, Outbox, TOPIC_REGIONAL_BUNDLE,
    static_key, subscription_key,
};
use crate::store::{IndicatorQuery, Store, StoreError, StoredSubscription, SubscriptionStatus};

/// Events fanned out per dispatcher transaction.
const DISPATCH_BATCH: i64 = 100;
/// Characters of a receiver's error body kept with the delivery.
const ERROR_BODY_CHARS: usize = 300;

/// Errors of the delivery stage's operations (feeds, replays, building bundles).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("this store has no delivery outbox")]
    NoOutbox,
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("building the forwarded bundle failed")]
    Forward(#[from] forward::ForwardError),
    #[error("the stored event or submission {0} is missing")]
    Missing(String),
    /// A destination name that is not configured (a client mistake).
    #[error("no destination {0:?} is configured")]
    UnknownDestination(String),
    /// A feed asked of a push destination (a client mistake).
    #[error("destination {0:?} is not a pull destination")]
    NotPull(String),
}

/// The engine. Shared by the dispatcher and worker tasks and the API (feed, replay).
pub struct Engine {
    store: Arc<dyn Store>,
    config: DeliverConfig,
    directory: Arc<Directory>,
    mapper: Option<Arc<crate::map::Mapper>>,
    keys: Arc<KeyRing>,
    gateway: Gateway,
    client: reqwest::Client,
    /// Names this process's claims (leases) in the store.
    instance: String,
    /// Poked by the pipeline after a commit with an event.
    dispatch_wake: Arc<Notify>,
    /// Poked by the dispatcher after fan-out.
    worker_wake: Notify,
    /// SQLite: this process is the only sender, so leases left by a previous run are dropped at
    /// start instead of waited out.
    exclusive: bool,
}

/// Everything [`Engine::new`] needs.
pub struct EngineParts {
    pub store: Arc<dyn Store>,
    pub config: DeliverConfig,
    pub directory: Arc<Directory>,
    pub mapper: Option<Arc<crate::map::Mapper>>,
    pub keys: Arc<KeyRing>,
    pub gateway: Gateway,
    /// The Notify the pipeline pokes ([`crate::pipeline::Pipeline::with_outbox_wake`]).
    pub wake: Arc<Notify>,
    pub exclusive: bool,
}

/// A send target resolved from a destination key.
enum Target<'a> {
    Static(&'a DestinationConfig),
    /// A live Subscription and its parsed channel.
    Subscription(Box<(StoredSubscription, SubscriptionSpec)>),
}

/// A stored Subscription's channel and filters. It was checked when the client wrote it; read
/// leniently here (loopback http allowed) so that what was accepted is what is delivered.
fn spec_of(stored: &StoredSubscription) -> Option<SubscriptionSpec> {
    subscription::parse_with(
        &stored.resource,
        &subscription::ParseOptions {
            allow_http_loopback: true,
        },
    )
    .ok()
}

fn topic_of(event: &EventRecord) -> Option<Topic> {
    Topic::ALL
        .into_iter()
        .find(|t| t.outbox_topic() == event.event.topic)
}

fn facts_of(event: &EventRecord) -> EventFacts {
    EventFacts {
        reporter: event.event.reporter.clone().unwrap_or_default(),
        icb: event.event.icb.clone(),
        region: event.event.region.clone(),
        indicators: event.event.indicators.clone(),
    }
}

/// Whether a Subscription takes events now: enabled and not past its end.
fn live(spec: &SubscriptionSpec, now: OffsetDateTime) -> bool {
    spec.enabled && spec.end.is_none_or(|end| end > now)
}

impl Engine {
    pub fn new(parts: EngineParts) -> Result<Engine, EngineError> {
        if parts.store.outbox().is_none() {
            return Err(EngineError::NoOutbox);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(parts.config.request_timeout_seconds))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pqom-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Missing(format!("HTTP client: {e}")))?;
        Ok(Engine {
            store: parts.store,
            config: parts.config,
            directory: parts.directory,
            mapper: parts.mapper,
            keys: parts.keys,
            gateway: parts.gateway,
            client,
            instance: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            dispatch_wake: parts.wake,
            worker_wake: Notify::new(),
            exclusive: parts.exclusive,
        })
    }

    fn outbox(&self) -> &dyn Outbox {
        // Checked in `new`.
        self.store.outbox().expect("outbox checked at construction")
    }

    pub fn config(&self) -> &DeliverConfig {
        &self.config
    }

    /// Register the configured destinations, then run the dispatcher and the worker until
    /// `stop` turns true. On stop, deliveries in flight get up to the request timeout to finish;
    /// whatever is still claimed after that is released for another instance or the next start.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let names: Vec<String> = self
            .config
            .destination
            .iter()
            .map(|d| d.name.clone())
            .collect();
        // The database may be briefly unreachable at start: keep trying (the API is already
        // serving and accepting into the outbox), until stopped.
        let mut stop_wait = stop.clone();
        while let Err(e) = self.outbox().sync_static_destinations(&names).await {
            tracing::warn!(error = %e, "registering the configured destinations failed; retrying");
            tokio::select! {
                _ = stop_wait.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(self.config.poll_interval_ms.max(1_000))) => {}
            }
        }
        if self.exclusive {
            match self.outbox().release_claims(None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "claims left by the previous run released"),
                Err(e) => tracing::warn!(error = %e, "releasing old claims failed"),
            }
        }
        let dispatcher = tokio::spawn(self.clone().dispatcher(stop.clone()));
        self.clone().worker(stop).await;
        let _ = dispatcher.await;
    }

    async fn dispatcher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        while !*stop.borrow() {
            loop {
                match self.dispatch_once().await {
                    Ok(0) => break,
                    Ok(_) => self.worker_wake.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "dispatching outbox events failed; will retry");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.dispatch_wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Fan out one batch of events; how many.
    pub async fn dispatch_once(&self) -> Result<usize, EngineError> {
        let statuses: HashMap<String, String> = self
            .outbox()
            .static_destinations()
            .await?
            .into_iter()
            .map(|(name, status, _)| (name, status))
            .collect();
        // Every registered destination, in error or not: a destination that answered 410 holds
        // its events (they are not sent, see `eligible`) until an operator replays, so nothing
        // is missed once it is back. (Subscriptions in error get nothing: the client re-activates
        // them and catches up with `$events`.)
        let statics: Vec<&DestinationConfig> = self
            .config
            .destination
            .iter()
            .filter(|d| statuses.contains_key(&d.name))
            .collect();
        let now_t = OffsetDateTime::now_utc();
        let subscriptions = self.active_subscriptions(now_t).await?;
        let route = |event: &EventRecord| -> Vec<Fanout> {
            let mut out: Vec<Fanout> = statics
                .iter()
                .filter(|d| d.matches(&event.event))
                .map(|d| Fanout {
                    destination: static_key(&d.name),
                    feed: d.kind == Kind::Pull,
                })
                .collect();
            if let Some(topic) = topic_of(event) {
                let facts = facts_of(event);
                out.extend(
                    subscriptions
                        .iter()
                        .filter(|(_, spec)| spec.matches(topic, &facts))
                        .map(|(id, _)| Fanout {
                            destination: subscription_key(id),
                            feed: false,
                        }),
                );
            }
            out
        };
        let now = micros(now_t);
        Ok(self.outbox().dispatch(DISPATCH_BATCH, now, &route).await?)
    }

    /// Active, enabled, unexpired Subscriptions: `(id, spec)`.
    async fn active_subscriptions(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, SubscriptionSpec)>, EngineError> {
        Ok(self
            .store
            .subscriptions(Some(SubscriptionStatus::Active))
            .await?
            .into_iter()
            .filter_map(|s| {
                let spec = spec_of(&s)?;
                live(&spec, now).then_some((s.id, spec))
            })
            .collect())
    }

    /// Destination keys the worker may send to now: active push destinations and active
    /// Subscriptions.
    async fn eligible(&self) -> Result<Vec<String>, EngineError> {
        let statuses = self.outbox().static_destinations().await?;
        let subscriptions = self
            .active_subscriptions(OffsetDateTime::now_utc())
            .await?
            .into_iter()
            .map(|(id, _)| subscription_key(&id));
        Ok(self
            .config
            .destination
            .iter()
            .filter(|d| d.kind == Kind::Push)
            .filter(|d| {
                statuses
                    .iter()
                    .any(|(n, s, _)| n == &d.name && s == "active")
            })
            .map(|d| static_key(&d.name))
            .chain(subscriptions)
            .collect())
    }

    async fn target(&self, key: &str) -> Result<Option<Target<'_>>, EngineError> {
        if let Some(id) = key.strip_prefix("subscription:") {
            let Some(stored) = self.store.subscription(id).await? else {
                return Ok(None);
            };
            return Ok(spec_of(&stored).map(|spec| Target::Subscription(Box::new((stored, spec)))));
        }
        Ok(key
            .strip_prefix("static:")
            .and_then(|name| self.config.destination(name))
            .map(Target::Static))
    }

    async fn worker(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let lease = Duration::from_secs(self.config.lease_seconds);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut last_depth = std::time::Instant::now() - poll;
        while !*stop.borrow() {
            let free = self.config.max_in_flight.saturating_sub(in_flight.len());
            if free > 0 {
                match self.claim(free, lease).await {
                    Ok(claims) => {
                        for claim in claims {
                            let me = self.clone();
                            in_flight.spawn(async move { me.attempt(claim).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming deliveries failed; will retry"),
                }
            }
            if last_depth.elapsed() >= poll {
                last_depth = std::time::Instant::now();
                self.record_depth().await;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.worker_wake.notified() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        // Stopping: let the requests in flight finish (each is bounded by the request timeout),
        // so their outcome is recorded, then give back anything still claimed.
        let grace =
            Duration::from_secs(self.config.request_timeout_seconds) + Duration::from_secs(1);
        let drain = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            in_flight.abort_all();
        }
        match self.outbox().release_claims(Some(&self.instance)).await {
            Ok(n) => tracing::info!(released = n, "delivery worker stopped"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing claims at shutdown failed; they expire with their lease")
            }
        }
    }

    async fn claim(&self, free: usize, lease: Duration) -> Result<Vec<Claimed>, EngineError> {
        let eligible = self.eligible().await?;
        let now = OffsetDateTime::now_utc();
        Ok(self
            .outbox()
            .claim(
                &eligible,
                free as i64,
                micros(now),
                micros(now + lease),
                &self.instance,
            )
            .await?)
    }

    async fn record_depth(&self) {
        if let Ok((pending, undispatched)) = self.outbox().queue_depth().await {
            metrics::gauge!("pqom_delivery_queue_depth").set(pending as f64);
            metrics::gauge!("pqom_outbox_undispatched_events").set(undispatched as f64);
        }
    }

    /// One attempt at a claimed delivery, and its outcome recorded.
    async fn attempt(&self, claim: Claimed) {
        let target = match self.target(&claim.destination).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                // Configuration changed since fan-out: leave it for its lease to lapse.
                tracing::warn!(destination = %claim.destination, "delivery for an unknown destination skipped");
                return;
            }
            Err(e) => {
                tracing::warn!(destination = %claim.destination, error = %e, "resolving a destination failed; will retry");
                return;
            }
        };
        let label = match &target {
            Target::Static(d) => d.name.clone(),
            Target::Subscription(s) => format!("Subscription/{}", s.0.id),
        };
        if let Target::Subscription(s) = &target
            && (s.0.deleted || s.0.status != SubscriptionStatus::Active)
        {
            // Switched off or deleted since the claim: nothing is sent; the claim lapses and
            // the delivery waits for the Subscription to be active again.
            return;
        }
        let started = std::time::Instant::now();
        let finish = match self.payload(&claim).await {
            Ok(payload) => {
                let built = started.elapsed();
                let finish = match &target {
                    Target::Static(dest) => self.send(&claim, dest, payload).await,
                    Target::Subscription(s) => self.notify(&claim, &s.0, &s.1, payload).await,
                };
                tracing::debug!(
                    destination = %label,
                    number = claim.number,
                    payload_ms = built.as_secs_f64() * 1e3,
                    send_ms = (started.elapsed() - built).as_secs_f64() * 1e3,
                    "attempt"
                );
                finish
            }
            Err(e) => {
                tracing::error!(destination = %label, number = claim.number, error = %e, "building the forwarded bundle failed");
                metrics::counter!("pqom_delivery_failures_total", "destination" => label.clone(), "reason" => "build").increment(1);
                self.after_failure(
                    &claim,
                    None,
                    format!("building the bundle failed: {e}"),
                    None,
                )
            }
        };
        let result = match &finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => "retry",
            Finish::Dead { .. } => "dead",
        };
        metrics::counter!("pqom_delivery_attempts_total", "destination" => label.clone(), "result" => result).increment(1);
        match &finish {
            Finish::Delivered { at, .. } => {
                let latency = (*at - micros(claim.accepted_at)) as f64 / 1e6;
                metrics::histogram!("pqom_delivery_latency_seconds", "destination" => label.clone())
                    .record(latency.max(0.0));
            }
            Finish::Dead { reason, .. } => {
                tracing::warn!(destination = %label, number = claim.number, %reason, "delivery dead-lettered");
            }
            Finish::Retry { error, .. } => {
                tracing::info!(destination = %label, number = claim.number, %error, "delivery failed; will retry");
            }
        }
        if let Err(e) = self
            .outbox()
            .finish(&claim.destination, claim.number, &self.instance, &finish)
            .await
        {
            // The lease expires and the delivery is tried again: a repeat, never a loss.
            tracing::warn!(destination = %label, number = claim.number, error = %e, "recording a delivery outcome failed");
        }
    }

    async fn send(&self, claim: &Claimed, dest: &DestinationConfig, payload: Vec<u8>) -> Finish {
        let Some(endpoint) = dest.endpoint.as_deref() else {
            return Finish::Dead {
                status: None,
                reason: "push destination without endpoint".into(),
            };
        };
        let mut request = self
            .client
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .header("x-pqom-event-number", claim.number.to_string())
            .header("x-pqom-bundle-id", claim.bundle_id.to_string());
        for (k, v) in &dest.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let label = dest.name.clone();
        match request.body(payload).send().await {
            Ok(response) => {
                let status = response.status();
                let code = i64::from(status.as_u16());
                let now = OffsetDateTime::now_utc();
                let wish = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::retry_after(v, now));
                if status.is_success() {
                    // Drain so the connection is reused.
                    let _ = response.bytes().await;
                    return Finish::Delivered {
                        status: code,
                        at: micros(OffsetDateTime::now_utc()),
                    };
                }
                let body = response.text().await.unwrap_or_default();
                let excerpt: String = body.chars().take(ERROR_BODY_CHARS).collect();
                metrics::counter!("pqom_delivery_failures_total", "destination" => label.clone(), "reason" => format!("http_{}xx", code / 100)).increment(1);
                if status == reqwest::StatusCode::GONE {
                    let reason = format!(
                        "receiver answered 410 Gone; destination set to error, nothing more is sent: {excerpt}"
                    );
                    if let Err(e) = self
                        .outbox()
                        .set_static_destination_status(&dest.name, "error", Some(&reason))
                        .await
                    {
                        tracing::error!(destination = %label, error = %e, "could not set the destination to error");
                    }
                    return Finish::Dead {
                        status: Some(code),
                        reason,
                    };
                }
                self.after_failure(
                    claim,
                    Some(code),
                    format!("receiver answered HTTP {code}: {excerpt}"),
                    wish,
                )
            }
            Err(e) => {
                let (reason, error) = if e.is_timeout() {
                    (
                        "timeout",
                        format!("no answer within {} s", self.config.request_timeout_seconds),
                    )
                } else if e.is_connect() {
                    ("connect", format!("cannot connect: {e}"))
                } else {
                    ("transport", format!("request failed: {e}"))
                };
                metrics::counter!("pqom_delivery_failures_total", "destination" => label, "reason" => reason).increment(1);
                self.after_failure(claim, None, error, None)
            }
        }
    }

    /// Send one event to a rest-hook Subscription: an `event-notification` Bundle around the
    /// forwarded bundle, with as much of it as the payload content says. The forwarded bundle
    /// (and so the focus) is the same on every retry; the notification around it is rebuilt.
    async fn notify(
        &self,
        claim: &Claimed,
        stored: &StoredSubscription,
        spec: &SubscriptionSpec,
        forwarded: Vec<u8>,
    ) -> Finish {
        let label = format!("Subscription/{}", stored.id);
        let now = OffsetDateTime::now_utc();
        let body = match self.notification_body(
            stored,
            claim.number,
            claim.accepted_at,
            claim.bundle_id,
            &forwarded,
            spec,
            now,
        ) {
            Ok(b) => b,
            Err(e) => return self.after_failure(claim, None, e, None),
        };
        let mut request = self
            .client
            .post(&spec.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .header("x-pqom-event-number", claim.number.to_string())
            .header("x-pqom-bundle-id", claim.bundle_id.to_string());
        if let Some(t) = spec.timeout {
            request =
                request.timeout(t.min(Duration::from_secs(self.config.request_timeout_seconds)));
        }
        for (k, v) in &spec.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                let code = i64::from(status.as_u16());
                let wish = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::retry_after(v, now));
                if status.is_success() {
                    let _ = response.bytes().await;
                    let at = OffsetDateTime::now_utc();
                    if let Err(e) = self.store.touch_subscription_sent(&stored.id, at).await {
                        tracing::warn!(subscription = %stored.id, error = %e, "recording last_sent_at failed");
                    }
                    return Finish::Delivered {
                        status: code,
                        at: micros(at),
                    };
                }
                let body = response.text().await.unwrap_or_default();
                let excerpt: String = body.chars().take(ERROR_BODY_CHARS).collect();
                metrics::counter!("pqom_delivery_failures_total", "destination" => label.clone(), "reason" => format!("http_{}xx", code / 100)).increment(1);
                // The endpoint is gone (410) or not there (404): the Subscription goes to error and
                // nothing more is sent until its owner updates it.
                if matches!(code, 404 | 410) {
                    let reason = format!(
                        "the endpoint answered HTTP {code}; notifications stopped until the \
                         Subscription is updated: {excerpt}"
                    );
                    if let Err(e) = self
                        .store
                        .set_subscription_status(
                            &stored.id,
                            SubscriptionStatus::Error,
                            Some(&reason),
                        )
                        .await
                    {
                        tracing::error!(subscription = %stored.id, error = %e, "could not set the Subscription to error");
                    }
                    return Finish::Dead {
                        status: Some(code),
                        reason,
                    };
                }
                self.after_failure(
                    claim,
                    Some(code),
                    format!("endpoint answered HTTP {code}: {excerpt}"),
                    wish,
                )
            }
            Err(e) => {
                let (reason, error) = if e.is_timeout() {
                    ("timeout", "no answer within the timeout".to_owned())
                } else if e.is_connect() {
                    ("connect", format!("cannot connect: {e}"))
                } else {
                    ("transport", format!("request failed: {e}"))
                };
                metrics::counter!("pqom_delivery_failures_total", "destination" => label, "reason" => reason).increment(1);
                self.after_failure(claim, None, error, None)
            }
        }
    }

    /// The notification Bundle of one event of a Subscription.
    #[allow(clippy::too_many_arguments)]
    fn notification_body(
        &self,
        stored: &StoredSubscription,
        number: i64,
        accepted_at: OffsetDateTime,
        bundle_id: Uuid,
        forwarded: &[u8],
        spec: &SubscriptionSpec,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        let status = self.notification_status(stored, now);
        let event =
            self.notification_event(number, accepted_at, bundle_id, forwarded, spec.content)?;
        let bundle = notification::event_notification(&status, &[event], spec.content);
        serde_json::to_vec(&bundle).map_err(|e| e.to_string())
    }

    fn notification_status(
        &self,
        stored: &StoredSubscription,
        now: OffsetDateTime,
    ) -> NotificationStatus {
        NotificationStatus {
            subscription_url: format!("{}/Subscription/{}", self.gateway.fhir_base, stored.id),
            topic: stored.topic.clone(),
            status: stored.status,
            events_since_start: stored.events_since_start,
            error: stored.error.clone(),
            timestamp: now,
        }
    }

    fn notification_event(
        &self,
        number: i64,
        accepted_at: OffsetDateTime,
        bundle_id: Uuid,
        forwarded: &[u8],
        content: subscription::PayloadContent,
    ) -> Result<NotificationEvent, String> {
        // serde_json keeps decimals as written (arbitrary_precision), so the signed content
        // survives the round trip; receivers verify over the canonical form.
        let resource = match content {
            subscription::PayloadContent::FullResource => Some(
                serde_json::from_slice(forwarded)
                    .map_err(|e| format!("stored bundle is not JSON: {e}"))?,
            ),
            _ => None,
        };
        Ok(NotificationEvent {
            number,
            timestamp: accepted_at,
            focus_url: format!("urn:uuid:{bundle_id}"),
            resource,
        })
    }

    /// `Subscription/{id}/$events`: the query-event Bundle of events `since..=until` (event
    /// numbers, inclusive), at most `count`, with `content` (default: the Subscription's).
    pub async fn subscription_events(
        &self,
        id: &str,
        since: i64,
        until: Option<i64>,
        count: i64,
        content: Option<subscription::PayloadContent>,
    ) -> Result<Option<serde_json::Value>, EngineError> {
        let Some(stored) = self.store.subscription(id).await? else {
            return Ok(None);
        };
        if stored.deleted {
            return Ok(None);
        }
        let content = content
            .or_else(|| spec_of(&stored).map(|s| s.content))
            .unwrap_or(subscription::PayloadContent::IdOnly);
        let key = subscription_key(id);
        let records = self
            .outbox()
            .deliveries(&key, since.saturating_sub(1), until, count)
            .await?;
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            let forwarded = match content {
                subscription::PayloadContent::FullResource => {
                    match self.outbox().payload(&key, record.number).await? {
                        Some(p) => p,
                        None => {
                            let built =
                                self.build(&key, record.event_seq, record.bundle_id).await?;
                            self.outbox()
                                .set_payload(&key, record.number, &built)
                                .await?
                        }
                    }
                }
                _ => Vec::new(),
            };
            events.push(
                self.notification_event(
                    record.number,
                    record.accepted_at,
                    record.bundle_id,
                    &forwarded,
                    content,
                )
                .map_err(EngineError::Missing)?,
            );
        }
        let status = self.notification_status(&stored, OffsetDateTime::now_utc());
        Ok(Some(notification::query_event(&status, &events, content)))
    }

    fn after_failure(
        &self,
        claim: &Claimed,
        status: Option<i64>,
        error: String,
        retry_after: Option<OffsetDateTime>,
    ) -> Finish {
        let now = OffsetDateTime::now_utc();
        let attempts = u32::try_from(claim.attempts + 1).unwrap_or(u32::MAX);
        match self.config.backoff().next(
            attempts,
            retry::unit_random(),
            claim.queued_at,
            now,
            retry_after,
        ) {
            Next::RetryAt(at) => Finish::Retry {
                at: micros(at),
                status,
                error,
            },
            Next::GiveUp => Finish::Dead {
                status,
                reason: format!(
                    "retry horizon of {} s passed after {attempts} attempts; last error: {error}",
                    self.config.retry_horizon_seconds
                ),
            },
        }
    }

    /// The delivery's bundle: the stored one, or built, stored and returned (the stored copy
    /// wins a race, so every attempt sends the same bytes).
    async fn payload(&self, claim: &Claimed) -> Result<Vec<u8>, EngineError> {
        if let Some(p) = self
            .outbox()
            .payload(&claim.destination, claim.number)
            .await?
        {
            return Ok(p);
        }
        let built = self
            .build(&claim.destination, claim.event_seq, claim.bundle_id)
            .await?;
        Ok(self
            .outbox()
            .set_payload(&claim.destination, claim.number, &built)
            .await?)
    }

    /// Build and sign the forwarded message Bundle of an event for a destination.
    pub async fn build(
        &self,
        destination: &str,
        event_seq: i64,
        bundle_id: Uuid,
    ) -> Result<Vec<u8>, EngineError> {
        let event = self
            .outbox()
            .event(event_seq)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("event {event_seq}")))?;
        if event.event.topic == TOPIC_REGIONAL_BUNDLE {
            return self.build_regional(destination, &event, bundle_id).await;
        }
        let submission = self
            .store
            .submission(event.submission_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("submission {}", event.submission_id)))?;
        let body = self
            .store
            .submission_body(event.submission_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("submission {}", event.submission_id)))?;
        let resources: Vec<ForwardResource> = self
            .outbox()
            .submission_resources(event.submission_id)
            .await?
            .into_iter()
            .map(|r| ForwardResource {
                resource_type: r.resource_type,
                id: r.id,
                version_id: r.version_id.to_string(),
                last_updated: Some(forward::fhir_instant(r.last_updated)),
                json: r.json.into_bytes(),
            })
            .collect();
        let indicators = self.indicator_reports(&event).await?;
        let route = self.route(&event);
        let dest = self.forward_destination(destination).await?;
        // REST submissions have no MessageHeader: the submission id stands in for its id.
        let message_id = submission
            .message_id
            .clone()
            .unwrap_or_else(|| submission.id.to_string());
        let input = ForwardInput {
            bundle_id,
            submission: Submission {
                body: &body,
                message_id: &message_id,
            },
            resources: &resources,
            indicators: &indicators,
            route: &route,
            destination: &dest,
            gateway: &self.gateway,
            now: OffsetDateTime::now_utc(),
        };
        let signer = self.keys.signer();
        // Signing a large bundle is CPU work: off the async workers.
        let forwarded = tokio::task::block_in_place(|| forward::build(&input, signer))?;
        Ok(forwarded.body)
    }

    /// Build and sign the consolidated regional bundle of a `regional-bundle` event: its
    /// region and period, from the values as they stood at the event's commit (a bundle built
    /// after later submissions, or for a destination added since, still says what this event
    /// changed; the next event carries the next state).
    async fn build_regional(
        &self,
        destination: &str,
        event: &EventRecord,
        bundle_id: Uuid,
    ) -> Result<Vec<u8>, EngineError> {
        let mapper = self.mapper.as_deref().ok_or_else(|| {
            EngineError::Missing("the indicator mappings (a regional bundle pools values)".into())
        })?;
        let (Some(region), Some(period)) = (&event.event.region, &event.event.period) else {
            return Err(EngineError::Missing(format!(
                "the region or period of regional event {}",
                event.seq
            )));
        };
        let region = self
            .directory
            .organisation(region)
            .cloned()
            .unwrap_or_else(|| Organisation {
                ods: region.clone(),
                name: region.clone(),
            });
        let range = PeriodRange {
            from: Some(period.start.clone()),
            to: Some(period.start.clone()),
        };
        let scope = RegionalScope {
            region: &region,
            period: &range,
            period_end: Some(&period.end),
            as_of: Some(event.created_at),
        };
        let parts = RegionalParts {
            store: &*self.store,
            mapper,
            directory: &self.directory,
            gateway: &self.gateway,
            signer: self.keys.signer(),
        };
        let dest = self.forward_destination(destination).await?;
        let built: forward::Forwarded = crate::pipeline::regional_bundle::<EngineError>(
            &parts,
            &scope,
            bundle_id,
            Some(&dest),
            &forward::fhir_instant(event.created_at),
            OffsetDateTime::now_utc(),
        )
        .await?;
        Ok(built.body)
    }

    /// The indicator MeasureReports of the values the event's submission recorded. They are
    /// not stored resources: each gets a stable id within the event (`ind-{seq}-{n}`) and
    /// version 1, so that the Provenance can target it.
    async fn indicator_reports(
        &self,
        event: &EventRecord,
    ) -> Result<Vec<ForwardResource>, EngineError> {
        let Some(mapper) = &self.mapper else {
            return Ok(Vec::new());
        };
        if event.event.indicators.is_empty() {
            return Ok(Vec::new());
        }
        let query = IndicatorQuery {
            trusts: event.event.reporter.iter().cloned().collect(),
            include_history: true,
            submission: Some(event.submission_id),
            ..IndicatorQuery::default()
        };
        let values: Vec<_> = self
            .store
            .indicator_values(&query)
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect();
        if values.is_empty() {
            // The event says the submission mapped to indicators, and the values commit in the
            // same transaction as the event, so this is a broken store, not a race. A bundle
            // without them would be incomplete (and signed): refuse, and let the attempt be
            // retried with backoff and dead-lettered with this reason at the horizon.
            return Err(EngineError::Missing(format!(
                "indicator values of submission {}",
                event.submission_id
            )));
        }
        let date = forward::fhir_instant(event.created_at);
        let last_updated = date.clone();
        Ok(mapper
            .indicator_reports(&values, &date)
            .into_iter()
            .enumerate()
            .map(|(n, mut report)| {
                let id = format!("ind-{}-{n}", event.seq);
                report["id"] = serde_json::Value::String(id.clone());
                ForwardResource {
                    resource_type: "MeasureReport".into(),
                    id,
                    version_id: "1".into(),
                    last_updated: Some(last_updated.clone()),
                    json: serde_json::to_vec(&report).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The event's route; a trust the directory does not know is named by its ODS code alone.
    fn route(&self, event: &EventRecord) -> Route {
        let reporter = event.event.reporter.clone().unwrap_or_default();
        self.directory.route(&reporter).unwrap_or_else(|_| {
            let org = |ods: Option<&String>| Organisation {
                ods: ods.cloned().unwrap_or_default(),
                name: ods.cloned().unwrap_or_default(),
            };
            Route {
                trust: org(event.event.reporter.as_ref()),
                icb: org(event.event.icb.as_ref()),
                region: org(event.event.region.as_ref()),
            }
        })
    }

    async fn forward_destination(&self, key: &str) -> Result<Destination, EngineError> {
        Ok(match self.target(key).await? {
            Some(Target::Subscription(s)) => Destination {
                name: format!("Subscription/{}", s.0.id),
                endpoint: s.1.endpoint.clone(),
                receiver_ods: None,
            },
            Some(Target::Static(d)) => Destination {
                name: d.name.clone(),
                endpoint: d.endpoint.clone().unwrap_or_else(|| {
                    format!("{}/$events?destination={}", self.gateway.fhir_base, d.name)
                }),
                receiver_ods: d.receiver_ods.clone(),
            },
            None => Destination {
                name: key.to_owned(),
                endpoint: String::new(),
                receiver_ods: None,
            },
        })
    }

    /// A pull destination's feed: deliveries numbered after `since`, at most `count`, each with
    /// its bundle (built on first read and kept, so a re-read returns the same bytes).
    pub async fn feed(
        &self,
        name: &str,
        since: i64,
        count: i64,
    ) -> Result<Vec<(DeliveryRecord, Vec<u8>)>, EngineError> {
        let dest = self
            .config
            .destination(name)
            .ok_or_else(|| EngineError::UnknownDestination(name.to_owned()))?;
        if dest.kind != Kind::Pull {
            return Err(EngineError::NotPull(name.to_owned()));
        }
        let key = static_key(name);
        let records = self.outbox().deliveries(&key, since, None, count).await?;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let payload = match self.outbox().payload(&key, record.number).await? {
                Some(p) => p,
                None => {
                    let built = self.build(&key, record.event_seq, record.bundle_id).await?;
                    self.outbox()
                        .set_payload(&key, record.number, &built)
                        .await?
                }
            };
            out.push((record, payload));
        }
        Ok(out)
    }

    /// The store key of a destination named in a request: a configured name, or
    /// `Subscription/{id}`.
    pub fn destination_key(&self, name: &str) -> Result<String, EngineError> {
        if let Some(id) = name.strip_prefix("Subscription/") {
            return Ok(crate::store::outbox::subscription_key(id));
        }
        self.config
            .destination(name)
            .map(|d| static_key(&d.name))
            .ok_or_else(|| EngineError::UnknownDestination(name.to_owned()))
    }

    /// Re-queue deliveries `from..=to` of a destination (delivered or dead ones): they are sent
    /// again, in order, with the same bundle id and event number.
    /// A static destination in `error` (it answered 410) is set active again: replaying is what
    /// an operator does once the receiver is back. A Subscription's status is its owner's (PUT).
    pub async fn replay(&self, name: &str, from: i64, to: i64) -> Result<u64, EngineError> {
        let key = self.destination_key(name)?;
        if let Some(static_name) = key.strip_prefix("static:") {
            self.outbox()
                .set_static_destination_status(static_name, "active", None)
                .await?;
        }
        let n = self
            .outbox()
            .requeue(&key, from, to, micros(OffsetDateTime::now_utc()))
            .await?;
        self.worker_wake.notify_one();
        Ok(n)
    }

    /// Dead letters, of one destination or all.
    pub async fn dead_letters(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, EngineError> {
        let key = name.map(|n| self.destination_key(n)).transpose()?;
        Ok(self.outbox().dead_letters(key.as_deref(), limit).await?)
    }
}
