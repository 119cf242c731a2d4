//! Delivery: organisation directory and routing, signed Provenance, subscriptions and the
//! outbox worker that forwards validated bundles to ICB and regional consumers.

pub mod canonical;
pub mod directory;
pub mod keys;
pub mod signing;
