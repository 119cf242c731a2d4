//! Talking to subscriber endpoints outside the event stream: the handshake that activates a
//! Subscription, and the heartbeats that tell an idle subscriber the feed is alive. (Events go
//! through the durable outbox and its worker, not here.)
//!
//! Owns [`Subscriber`]: an HTTP client (reqwest over rustls, no redirects), the store, and the
//! background loop [`Subscriber::run`] that, about once a second:
//! - sends a `heartbeat` to every active Subscription with a `backport-heartbeat-period` when
//!   nothing (handshake, heartbeat or event) reached it for that period. `last_sent_at` is claimed
//!   before sending ([`crate::store::Store::claim_heartbeat`]), so several instances on one
//!   PostgreSQL send one heartbeat, not one each;
//! - switches off Subscriptions whose `end` has passed;
//! - re-runs the handshake of a Subscription left `requested` (the gateway stopped between
//!   committing it and hearing from the endpoint).
//!
//! The handshake itself runs inside `POST`/`PUT` (see [`Subscriber::handshake`]) with a short
//! bound ([`HANDSHAKE_TIMEOUT`] at most): the client learns at once whether its endpoint works
//! (`active`) or why not (`error`, with the reason in `Subscription.error`). The IG allows a
//! server to handshake synchronously or not; synchronous with a bound gives a definite answer
//! in the same exchange, and the sweep above covers a crash in between.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::notification::{self, NotificationStatus};
use super::subscription::{ParseOptions, SubscriptionSpec, parse_with};
use crate::store::{Store, StoreResult, StoredSubscription, SubscriptionStatus};

/// Longest wait for a handshake answer (a smaller `backport-timeout` wins).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait for a heartbeat answer when the Subscription sets no `backport-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the background loop looks for due heartbeats.
pub const TICK: Duration = Duration::from_secs(1);
/// Heartbeats in flight at once: a slow endpoint only holds one of these.
const CONCURRENCY: usize = 16;
/// A Subscription still `requested` this long after its last write lost its handshake.
const ORPHANED_HANDSHAKE: Duration = Duration::from_secs(30);

/// Why a notification did not reach the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the endpoint did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("a channel header is not valid HTTP: {0}")]
    Header(String),
}

impl SendError {
    /// 410 Gone: the endpoint says it will never take notifications again.
    pub fn is_gone(&self) -> bool {
        matches!(self, SendError::Status(410))
    }
}

/// The handshake and heartbeat sender.
pub struct Subscriber {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// `{public base}/fhir`, for `Subscription` URLs in notifications.
    fhir_base: String,
    options: ParseOptions,
}

impl Subscriber {
    pub fn new(store: Arc<dyn Store>, fhir_base: impl Into<String>, options: ParseOptions) -> Self {
        crate::server::install_crypto_provider();
        let http = reqwest::Client::builder()
            // A notification is a POST to exactly the URL the subscriber registered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pqom-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Subscriber {
            store,
            http,
            fhir_base: fhir_base.into().trim_end_matches('/').to_owned(),
            options,
        }
    }

    /// What [`parse_with`] accepts here.
    pub fn options(&self) -> &ParseOptions {
        &self.options
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The state a notification about `s` reports, now.
    pub fn status_of(&self, s: &StoredSubscription) -> NotificationStatus {
        NotificationStatus {
            subscription_url: format!("{}/Subscription/{}", self.fhir_base, s.id),
            topic: s.topic.clone(),
            status: s.status,
            events_since_start: s.events_since_start,
            error: s.error.clone(),
            timestamp: OffsetDateTime::now_utc(),
        }
    }

    /// POST `bundle` to the endpoint with the channel headers; 2xx is success.
    pub async fn post(
        &self,
        spec: &SubscriptionSpec,
        bundle: &Value,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(&spec.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .timeout(timeout)
            .body(serde_json::to_vec(bundle).unwrap_or_default());
        for (name, value) in &spec.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| SendError::Header(e.to_string()))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| SendError::Header(e.to_string()))?;
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(SendError::Status(r.status().as_u16())),
            Err(e) if e.is_timeout() => Err(SendError::Timeout(timeout)),
            Err(e) => Err(SendError::Unreachable(root_cause(&e))),
        }
    }

    /// Send the handshake for this version of `stored` and record the verdict: `active` on a
    /// 2xx, otherwise `error` with the reason. Returns the Subscription as it now stands.
    pub async fn handshake(
        &self,
        stored: StoredSubscription,
        spec: &SubscriptionSpec,
    ) -> StoreResult<StoredSubscription> {
        let bundle = notification::handshake(&self.status_of(&stored));
        let timeout = spec
            .timeout
            .map_or(HANDSHAKE_TIMEOUT, |t| t.min(HANDSHAKE_TIMEOUT));
        let started = OffsetDateTime::now_utc();
        let result = self.post(spec, &bundle, timeout).await;
        let (status, error) = match &result {
            Ok(()) => {
                self.store
                    .touch_subscription_sent(&stored.id, started)
                    .await?;
                (SubscriptionStatus::Active, None)
            }
            Err(e) => (
                SubscriptionStatus::Error,
                Some(format!("handshake to {} failed: {e}", spec.endpoint)),
            ),
        };
        record("handshake", result.is_ok());
        if let Some(e) = &error {
            tracing::warn!(subscription = %stored.id, error = %e, "handshake failed");
        }
        let updated = self
            .store
            .set_subscription_status_at_version(
                &stored.id,
                stored.version_id,
                status,
                error.as_deref(),
            )
            .await?;
        match updated {
            Some(s) => Ok(s),
            // Replaced or deleted meanwhile: that write's own handshake decides.
            None => Ok(self.store.subscription(&stored.id).await?.unwrap_or(stored)),
        }
    }

    /// Run the background loop until `shutdown` turns true (or its sender is dropped).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
            let pass = self.clone().pass(OffsetDateTime::now_utc());
            tokio::select! {
                result = pass => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "subscription sweep failed; retrying next tick");
                    }
                }
                // Stop at once: a heartbeat cut short is simply sent by the next start.
                _ = shutdown.changed() => break,
            }
        }
        tracing::debug!("subscription heartbeats stopped");
    }

    /// One sweep: due heartbeats, ended Subscriptions, orphaned handshakes. Returns how many
    /// heartbeats were sent.
    pub async fn pass(self: Arc<Self>, now: OffsetDateTime) -> StoreResult<usize> {
        let gate = Arc::new(Semaphore::new(CONCURRENCY));
        let mut sends = JoinSet::new();
        for s in self
            .store
            .subscriptions(Some(SubscriptionStatus::Active))
            .await?
        {
            let Ok(spec) = parse_with(&s.resource, &self.options) else {
                continue;
            };
            if spec.end.is_some_and(|end| end <= now) {
                self.store
                    .set_subscription_status(&s.id, SubscriptionStatus::Off, None)
                    .await?;
                continue;
            }
            let Some(period) = spec.heartbeat_period else {
                continue;
            };
            let last = s.last_sent_at.unwrap_or(s.updated_at);
            if now - last < period {
                continue;
            }
            if !self
                .store
                .claim_heartbeat(&s.id, s.last_sent_at, now)
                .await?
            {
                continue; // another instance (or an event delivery) got there first
            }
            let (this, gate) = (self.clone(), gate.clone());
            sends.spawn(async move {
                let _permit = gate.acquire_owned().await;
                this.heartbeat(&s, &spec).await
            });
        }
        for s in self
            .store
            .subscriptions(Some(SubscriptionStatus::Requested))
            .await?
        {
            if now - s.updated_at < ORPHANED_HANDSHAKE {
                continue;
            }
            if let Ok(spec) = parse_with(&s.resource, &self.options) {
                let this = self.clone();
                sends.spawn(async move {
                    this.handshake(s, &spec).await?;
                    Ok(false)
                });
            }
        }
        let mut sent = 0;
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(Ok(true)) => sent += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "recording a notification failed"),
                Err(e) => tracing::error!(error = %e, "notification task failed"),
            }
        }
        Ok(sent)
    }

    /// Send one heartbeat; `true` if it reached the endpoint. 410 Gone puts the Subscription in
    /// error; other failures are only logged (the next period tries again, and event delivery
    /// has its own retry policy).
    async fn heartbeat(
        &self,
        s: &StoredSubscription,
        spec: &SubscriptionSpec,
    ) -> StoreResult<bool> {
        let bundle = notification::heartbeat(&self.status_of(s));
        let result = self
            .post(spec, &bundle, spec.timeout.unwrap_or(DEFAULT_TIMEOUT))
            .await;
        record("heartbeat", result.is_ok());
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_gone() => {
                let reason = format!("heartbeat to {}: {e} (410 Gone)", spec.endpoint);
                self.store
                    .set_subscription_status(&s.id, SubscriptionStatus::Error, Some(&reason))
                    .await?;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(subscription = %s.id, error = %e, "heartbeat not delivered");
                Ok(false)
            }
        }
    }
}

fn record(kind: &'static str, ok: bool) {
    metrics::counter!(
        "pqom_subscription_notifications_total",
        "type" => kind,
        "outcome" => if ok { "delivered" } else { "failed" }
    )
    .increment(1);
}

/// The innermost cause of an HTTP client error ("connection refused", "dns error: ..."), which is
/// what the subscriber's operator needs to read.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
