//! The PQOM Annex 1 indicator catalogue and the declarative mapping rules in `mappings/` that turn
//! submitted MeasureReports into canonical indicator values. Pure: no I/O after load.
