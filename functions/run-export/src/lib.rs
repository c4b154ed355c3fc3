//! run-export: one run of one export, triggered by `{"exportId", "scheduledAt"}` from the
//! create request (one-time) or from its schedule (recurring).
//!
//! This slice accepts the trigger, checks the export still exists and records its job once
//! (`notProcessed`), idempotently per `(exportId, scheduledAt)`; reading the data and writing
//! the files arrive with the next issue.

use exporter::domain::RunEvent;
use exporter::ports::{Clock, ExportStore, StoreError};

/// What the run needs.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub store: &'a dyn ExportStore,
    pub clock: &'a dyn Clock,
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The export is gone or deleted: nothing to do.
    Skipped,
    /// The job was recorded.
    Accepted,
    /// The job of this trigger exists already: a duplicate, nothing done twice.
    Duplicate,
}

/// Errors with a stable vocabulary for the runtime's `Diagnostic`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Worth retrying: the store was unavailable.
    #[error("retryable: {0}")]
    Retryable(#[source] StoreError),
    /// Retrying cannot help.
    #[error("permanent: {0}")]
    Permanent(#[source] StoreError),
}

/// Handles one trigger.
pub async fn handle(deps: Deps<'_>, event: RunEvent) -> Result<Outcome, RunError> {
    let classify = |e: StoreError| match e {
        StoreError::Unavailable(_) => RunError::Retryable(e),
        other => RunError::Permanent(other),
    };
    let export = deps.store.get(&event.export_id).await.map_err(classify)?;
    match export {
        Some(export) if export.deleted_at.is_none() => {
            let job_id = event.job_id();
            let opened = deps
                .store
                .open_job(&export.id, &job_id, event.scheduled_at, deps.clock.now())
                .await
                .map_err(classify)?;
            let outcome = if opened {
                Outcome::Accepted
            } else {
                Outcome::Duplicate
            };
            tracing::info!(export_id = %event.export_id, job_id, ?outcome, "run trigger handled");
            Ok(outcome)
        }
        _ => {
            tracing::info!(export_id = %event.export_id, "export missing or deleted; nothing to run");
            Ok(Outcome::Skipped)
        }
    }
}

impl From<RunError> for lambda_runtime::Diagnostic {
    fn from(e: RunError) -> Self {
        let error_type = match e {
            RunError::Retryable(_) => "Retryable",
            RunError::Permanent(_) => "Permanent",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}
