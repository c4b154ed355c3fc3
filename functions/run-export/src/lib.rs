//! run-export: one run of one export, triggered by `{"exportId", "scheduledAt"}` from the
//! create request (one-time) or from its schedule (recurring).
//!
//! This slice accepts the trigger and checks the export still exists; reading the data,
//! writing the files and recording the job arrive with the next issue.

use exporter::domain::RunEvent;
use exporter::ports::{ExportStore, StoreError};

/// What the run needs.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub store: &'a dyn ExportStore,
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The export is gone or deleted: nothing to do.
    Skipped,
    Accepted,
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
    let export = deps.store.get(&event.export_id).await.map_err(|e| match e {
        StoreError::Unavailable(_) => RunError::Retryable(e),
        other => RunError::Permanent(other),
    })?;
    match export {
        Some(export) if export.deleted_at.is_none() => {
            tracing::info!(export_id = %event.export_id, scheduled_at = %event.scheduled_at, "run accepted");
            Ok(Outcome::Accepted)
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
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}
