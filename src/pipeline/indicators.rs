//! The map stage inside the pipeline: accepted MeasureReports become indicator values (stored as
//! a time series in the submission's own commit) and the catalogue Measures are published.
//! Reading them back (trust, ICB and region reports) is [`super::reports`].
//!
//! Mapping never rejects a submission: what it cannot map is reported in the outcome (and in
//! metrics) as unmapped, and the submission is accepted as validated.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pipeline, PipelineError};
use crate::fhir::{Issue, IssueType};
use crate::map::{MapOutcome, Mapper};
use crate::store::{Channel, CommitOutcome, NewSubmission, ResourceWrite, SubmissionStatus};

/// Identifier system of catalogue Measures published into the store (value `url|version`), so
/// that publishing again at the next start writes nothing.
pub const CATALOGUE_ID_SYSTEM: &str = "https://fhir.pqom-gateway.org/Id/catalogue-measure";

impl Pipeline {
    /// Plug in the mapping engine: accepted MeasureReports are mapped to indicator values.
    pub fn with_mapper(mut self, mapper: Arc<Mapper>) -> Self {
        self.mapper = Some(mapper);
        self
    }

    pub fn mapper(&self) -> Option<&Arc<Mapper>> {
        self.mapper.as_ref()
    }

    /// Map a submission (a message Bundle or a MeasureReport); the issues to add to the
    /// submitter's outcome.
    pub(super) fn map_submission(&self, input: &Value) -> Option<(MapOutcome, Vec<Issue>)> {
        let mapper = self.mapper.as_ref()?;
        let outcome = mapper.map_report(input);
        let mut issues = outcome.issues.clone();
        for u in &outcome.unmapped {
            issues.push(
                Issue::information(
                    IssueType::NotSupported,
                    format!(
                        "group {} of {} is not mapped to a PQOM indicator: {}",
                        u.group.as_deref().unwrap_or("(no code)"),
                        u.measure,
                        u.reason
                    ),
                )
                .at(u.expression.clone()),
            );
        }
        if !outcome.values.is_empty() {
            let indicators: std::collections::BTreeSet<&str> = outcome
                .values
                .iter()
                .map(|v| v.indicator.as_str())
                .collect();
            issues.push(Issue::information(
                IssueType::Informational,
                format!(
                    "mapped to {} PQOM indicator value(s) for {}",
                    outcome.values.len(),
                    indicators.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        metrics::counter!("pqom_indicator_values_total").increment(outcome.values.len() as u64);
        metrics::counter!("pqom_unmapped_groups_total").increment(outcome.unmapped.len() as u64);
        Some((outcome, issues))
    }

    /// Put the catalogue Measures into the store (so `GET /fhir/Measure` serves them), unless
    /// that url|version is there already. Returns how many were written.
    pub async fn publish_catalogue(&self) -> Result<usize, PipelineError> {
        let Some(mapper) = self.mapper.as_ref() else {
            return Ok(0);
        };
        let mut resources = Vec::new();
        for m in mapper.catalogue().measures() {
            let key = format!(
                "{}|{}",
                m["url"].as_str().unwrap_or_default(),
                m["version"].as_str().unwrap_or_default()
            );
            if self
                .store
                .find_by_identifier("Measure", CATALOGUE_ID_SYSTEM, &key)
                .await?
                .is_none()
            {
                resources.push(ResourceWrite {
                    resource_type: "Measure".to_owned(),
                    identifier: Some((CATALOGUE_ID_SYSTEM.to_owned(), key)),
                    resource: m,
                });
            }
        }
        if resources.is_empty() {
            return Ok(0);
        }
        let body = serde_json::to_vec(
            &resources
                .iter()
                .map(|r| r.resource.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let n = resources.len();
        let submission = NewSubmission {
            id: Uuid::new_v4(),
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Rest,
            message_id: None,
            sender: None,
            sha256: super::sha256_hex(&body),
            body,
            status: SubmissionStatus::Accepted,
            outcome: crate::fhir::Outcome::single(Issue::information(
                IssueType::Informational,
                format!("{n} catalogue Measure(s) published from mappings/catalogue"),
            ))
            .to_json(),
            response: None,
            resources,
            event: None,
            indicator_values: Vec::new(),
        };
        match self.store.commit_submission(submission).await? {
            CommitOutcome::Committed(_) | CommitOutcome::DuplicateMessage(_) => Ok(n),
        }
    }
}
