//! The PQOM Annex 1 indicator catalogue and the declarative mapping rules in `mappings/` that turn
//! submitted MeasureReports into canonical indicator values. Pure: no I/O after load.
//!
//! - [`catalogue`]: `mappings/catalogue/annex1.toml`, the one source of truth for indicators, and
//!   the FHIR CodeSystems and Measures generated from it.
//! - [`error`]: load errors, every one with file and line.
//! - [`rules`]: `mappings/rules/*.toml`, checked at load.
//! - [`engine`]: [`Mapper`]: submission in, indicator values, unmapped groups and a trace out.
//! - [`pool`]: ICB and region values pooled from trusts' counts, with completeness.
//! - [`report`]: indicator values as PQOM indicator MeasureReports.
//! - [`sample`]: the reference report (tests, benchmarks).

pub mod catalogue;
pub mod engine;
pub mod error;
pub mod json;
pub mod pool;
pub mod report;
pub mod rules;
pub mod sample;

pub use catalogue::Catalogue;
pub use error::{Location, MapLoadError, Problem};

pub use engine::{IndicatorValue, MapOutcome, Mapper, Period, RuleHit, StratumKey, UnmappedGroup};
pub use pool::{Directory, Level, Pooled, PooledValue, StaticDirectory};

impl Mapper {
    /// Pool trusts' values to ICB or region level (sums of counts, with completeness).
    pub fn pool(
        &self,
        values: &[IndicatorValue],
        level: Level,
        directory: &dyn Directory,
    ) -> Pooled {
        pool::pool(self.catalogue(), values, level, directory)
    }

    /// Trust values as PQOM indicator MeasureReports.
    pub fn indicator_reports(
        &self,
        values: &[IndicatorValue],
        date: &str,
    ) -> Vec<serde_json::Value> {
        report::indicator_reports(self.catalogue(), values, date)
    }

    /// Pooled values as PQOM indicator MeasureReports with completeness.
    pub fn pooled_reports(&self, values: &[PooledValue], date: &str) -> Vec<serde_json::Value> {
        report::pooled_reports(self.catalogue(), values, date)
    }
}
