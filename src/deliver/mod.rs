//! Delivery: organisation directory and routing, signed Provenance, subscriptions and the
//! outbox worker that forwards validated bundles to ICB and regional consumers.
//!
//! The pure parts (no I/O after load) are here now:
//! - [`directory`]: trust -> ICB -> region by ODS code, from `mappings/organisations.toml`.
//! - [`canonical`]: lossless JSON and the canonical form signatures cover.
//! - [`keys`]: Ed25519 keys, rotation, the development key, the JWKS.
//! - [`signing`]: detached EdDSA JWS.
//! - [`provenance`]: the Provenance resource shape.
//! - [`forward`]: the forwarded message Bundle: build, sign, verify.
//! - [`subscription`]: the topics, reading a Subscription (R5 Backport IG for R4), filters.
//! - [`notification`]: the notification Bundles (handshake, heartbeat, events, `$status`).
//!
//! And the delivery engine around the store's outbox (`store::outbox`):
//! - [`destinations`]: `[deliver]` settings and the statically configured destinations.
//! - [`retry`]: backoff with full jitter, `Retry-After`, the retry horizon.
//! - [`engine`]: dispatcher (fan-out) and worker (ordered sends, retries, dead letters), the
//!   pull feed and replay.
//! - [`subscriber`]: handshakes and heartbeats to subscriber endpoints (the one impure part here).
//! - [`regional`]: the consolidated regional bundle (pooled region, ICB and trust reports).

pub mod canonical;
pub mod destinations;
pub mod directory;
pub mod engine;
pub mod forward;
pub mod keys;
pub mod notification;
pub mod provenance;
pub mod regional;
pub mod retry;
pub mod signing;
pub mod subscriber;
pub mod subscription;

/// Errors of the delivery stage.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Directory(#[from] directory::DirectoryError),
    #[error(transparent)]
    Route(#[from] directory::RouteError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Forward(#[from] forward::ForwardError),
}
