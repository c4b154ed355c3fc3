//! notify: sends the messages of one finished job (spec section 8). Its input is
//! `{"exportId", "jobId"}`; delivery arrives with the notification issue.

use exporter::domain::ExportId;
use serde::{Deserialize, Serialize};

/// The hand-off from run-export when a job ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyEvent {
    pub export_id: ExportId,
    pub job_id: String,
}

/// Handles one hand-off. Nothing is sent yet.
pub async fn handle(event: NotifyEvent) -> Result<(), std::convert::Infallible> {
    tracing::info!(export_id = %event.export_id, job_id = %event.job_id, "notification requested");
    Ok(())
}
