//! The PQOM Annex 1 indicator catalogue and the declarative mapping rules in `mappings/` that turn
//! submitted MeasureReports into canonical indicator values. Pure: no I/O after load.
//!
//! - [`catalogue`]: `mappings/catalogue/annex1.toml`, the one source of truth for indicators, and
//!   the FHIR CodeSystems and Measures generated from it.
//! - [`error`]: load errors, every one with file and line.

pub mod catalogue;
pub mod error;
pub mod json;

pub use catalogue::Catalogue;
pub use error::{Location, MapLoadError, Problem};
