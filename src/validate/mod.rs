//! Conformance: loads base FHIR R4 and PQOM definitions, compiles profiles, validates raw JSON,
//! evaluates FHIRPath invariants. Pure: no I/O after load, no knowledge of HTTP or storage.
pub mod terminology;

pub mod fhirpath;
