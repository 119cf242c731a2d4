//! pqom-gateway: a FHIR R4 messaging gateway for NHS perinatal quality oversight (PQOM).
//!
//! One pipeline, one module per stage, data flowing one way:
//!
//! ```text
//! HTTP / CLI ──> ingest ──> validate ──> store (submission + outcome + outbox, one commit) ──> map ──> deliver
//! ```
//!
//! - [`api`]: axum routes; the one place that turns errors into OperationOutcome + HTTP status.
//! - [`ingest`]: what a submission is (message Bundle, MessageHeader, focus, plain resource), envelope checks.
//! - [`validate`]: conformance resources, the compiled profile validator, FHIRPath. Pure.
//! - [`map`]: the Annex 1 indicator catalogue and the mapping rules from `mappings/`. Pure.
//! - [`store`]: the storage trait with SQLite and PostgreSQL backends.
//! - [`deliver`]: routing, provenance and signatures, subscriptions, the outbox worker.
//! - [`fhir`]: shared FHIR helpers (issues and OperationOutcome, the typed fhir-sdk view).
//! - [`cli`]: the `pqom-gateway` subcommands.
//! - [`samples`]: the deterministic reference report and submission message (tests, benches, demo).

pub mod api;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod fhir;
pub mod ingest;
pub mod map;
pub mod pipeline;
pub mod samples;
pub mod server;
pub mod store;
pub mod validate;
