//! A recurring export's chain: its next run moved, the occurrences it passes recorded
//! ([`ExportRuns`](exporter_core::ports::ExportRuns)).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use exporter_core::domain::job::JobKey;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExportId, ExportStatus};
use exporter_core::ports::{Advance, ExportRuns, Exports, StoreError};

use super::codec::*;
use super::DynamoStore;

#[async_trait]
impl ExportRuns for DynamoStore {
    async fn advance_next_run(
        &self,
        (id, version): (&ExportId, u64),
        next: DateTime<Utc>,
        at: DateTime<Utc>,
        passed: &[JobKey],
    ) -> Result<Advance, StoreError> {
        for job in passed {
            self.expect_job(job, at).await?;
        }
        let next_text = rfc3339(next);
        // Fixed-width RFC 3339 in UTC sorts as time, so `<` on the text is `<` on the instant.
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(export_key(id)))
            .update_expression("SET nextRunAt = :next, updatedAt = :at")
            // Exports stored before versions are at version 1.
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(deletedAt) AND #status = :scheduled \
                 AND (#version = :version OR (attribute_not_exists(#version) AND :version = :one)) \
                 AND (attribute_not_exists(nextRunAt) OR nextRunAt < :next)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":scheduled", s(ExportStatus::Scheduled.as_str()))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":next", s(&next_text))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .send()
            .await;
        if conditional(written)? {
            return Ok(Advance::Advanced);
        }
        let current = self.get(id).await?;
        Ok(match current {
            // As stored: to the millisecond (an occurrence may have a finer fraction).
            Some(export)
                if export.deleted_at.is_none()
                    && export.version == version
                    && export.status == ExportStatus::Scheduled
                    && export.next_run_at.map(rfc3339) == Some(next_text) =>
            {
                Advance::Same
            }
            _ => Advance::Behind,
        })
    }

    async fn settle_one_time(
        &self,
        export: &Export,
        status: ExportStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let settle = |not_deleted: bool| {
            let unsettled = "#status IN (:creating, :queued, :running)";
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(export_key(&export.id)))
                .update_expression("SET #status = :status, updatedAt = :at REMOVE sweep")
                .condition_expression(if not_deleted {
                    format!("{unsettled} AND attribute_not_exists(deletedAt)")
                } else {
                    unsettled.to_owned()
                })
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":at", s(rfc3339(at)))
                .expression_attribute_values(":creating", s(ExportStatus::Creating.as_str()))
                .expression_attribute_values(":queued", s(ExportStatus::Queued.as_str()))
                .expression_attribute_values(":running", s(ExportStatus::InProgress.as_str()))
                .build()
                .map(|u| TransactWriteItem::builder().update(u).build())
                .map_err(unavailable)
        };
        // The quota comes back with the status, unless the export was deleted (its delete gave
        // it back, even if that happened after this run read the export).
        if self.with_quota_back(settle(true)?, &export.owner, at).await? {
            return Ok(());
        }
        // Settled already (a retried run), or deleted: the status alone, once.
        self.alone(settle(false)?).await.map(drop)
    }
}
