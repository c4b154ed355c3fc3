//! Exports: reading them ([`Exports`](exporter_core::ports::Exports)) and the API's writes with the owner's quota in the same
//! transaction ([`ExportLifecycle`](exporter_core::ports::ExportLifecycle)).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use exporter_core::domain::record;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExportId, ExportStatus};
use exporter_core::ports::{ExportLifecycle, Exports, StoreError};

use super::codec::*;
use super::{DynamoStore, OWNER_INDEX, TTL_ATTRIBUTE};

impl DynamoStore {
    /// A change of `owner`'s counter by `delta`, touched `at` (the caller's time: the sweep
    /// leaves a counter touched within the last minute alone).
    pub(super) fn quota_change(
        &self,
        owner: &str,
        delta: i64,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(owner)))
            .update_expression("SET queued = if_not_exists(queued, :zero) + :delta, touchedAt = :touched")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":touched", n(at.timestamp()));
        if delta < 0 {
            // Never below zero, even if a record was lost: a quota that only drifts up locks users out.
            update = update
                .update_expression("SET queued = queued + :delta, touchedAt = :touched")
                .condition_expression("queued > :zero");
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(unavailable)?)
            .build())
    }
}

impl DynamoStore {
    /// Writes `primary` and gives one back to `owner`'s quota in one transaction; `Ok(false)`
    /// when `primary`'s condition did not hold (nothing written). The counter never blocks the
    /// write: were it at zero already (a record lost, a count repaired), `primary` is written
    /// alone.
    pub(super) async fn with_quota_back(
        &self,
        primary: TransactWriteItem,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(primary.clone())
            .transact_items(self.quota_change(owner, -1, at)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e, 0) => Ok(false),
            Err(e) if condition_failed(&e, 1) => {
                tracing::warn!(
                    owner,
                    "the queued-exports counter was at zero already; written without it"
                );
                self.alone(primary).await
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Writes `primary` on its own; `Ok(false)` when its condition did not hold.
    pub(super) async fn alone(&self, primary: TransactWriteItem) -> Result<bool, StoreError> {
        match self
            .client
            .transact_write_items()
            .transact_items(primary)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e, 0) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}
#[async_trait]
impl Exports for DynamoStore {
    async fn get(&self, id: &ExportId) -> Result<Option<Export>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(export_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output.item().map(Self::read_export).transpose()
    }

    async fn list_by_owner(&self, owner: &str) -> Result<Vec<Export>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .into_paginator()
            .items()
            .send();
        let mut exports = Vec::new();
        while let Some(item) = items.next().await {
            exports.push(Self::read_export(&item.map_err(unavailable)?)?);
        }
        Ok(exports)
    }
}

#[async_trait]
impl ExportLifecycle for DynamoStore {
    async fn insert(&self, export: &Export, max_queued: u32) -> Result<(), StoreError> {
        let quota = Update::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(&export.owner)))
            .update_expression(
                "SET queued = if_not_exists(queued, :zero) + :one, sweep = :sweep, touchedAt = :touched",
            )
            .expression_attribute_values(":touched", n(export.created_at.timestamp()))
            .condition_expression("attribute_not_exists(queued) OR queued < :max")
            .expression_attribute_values(":sweep", Swept::Quota.key(&export.owner))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_queued))
            .build()
            .map_err(unavailable)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::export_item(export)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(quota).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e, 0) => Err(StoreError::QuotaReached),
            Err(e) if condition_failed(&e, 1) => Err(StoreError::AlreadyExists),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn activate(
        &self,
        id: &ExportId,
        status: ExportStatus,
        next_run_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(export_key(id)))
            // Only from `creating`: a one-time run may already have moved the export on.
            .condition_expression("#status = :creating")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":creating", s(ExportStatus::Creating.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)));
        update = match next_run_at {
            Some(next) => update
                .update_expression("SET #status = :status, updatedAt = :at, nextRunAt = :next")
                .expression_attribute_values(":next", s(rfc3339(next))),
            None => update.update_expression("SET #status = :status, updatedAt = :at REMOVE nextRunAt"),
        };
        if !conditional(update.send().await)? {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn discard(&self, export: &Export, at: DateTime<Utc>) -> Result<(), StoreError> {
        // `queued`: a one-time export is queued before it is launched, and discarded when the
        // launch fails.
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(export_key(&export.id)))
            .condition_expression("#status IN (:creating, :queued)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":creating", s(ExportStatus::Creating.as_str()))
            .expression_attribute_values(":queued", s(ExportStatus::Queued.as_str()))
            .build()
            .map_err(unavailable)?;
        self.with_quota_back(
            TransactWriteItem::builder().delete(delete).build(),
            &export.owner,
            at,
        )
        .await?;
        Ok(())
    }

    async fn soft_delete(
        &self,
        id: &ExportId,
        owner: &str,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Export, StoreError> {
        let export = match self.get(id).await? {
            Some(e) if e.owner == owner && e.is_visible() => e,
            _ => return Err(StoreError::NotFound),
        };
        // The status read above must still hold, so the quota is given back exactly once.
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(export_key(id)))
            .update_expression(format!(
                "SET deletedAt = :at, updatedAt = :at, {TTL_ATTRIBUTE} = :ttl REMOVE sweep"
            ))
            .condition_expression("#owner = :owner AND #status = :status AND attribute_not_exists(deletedAt)")
            .expression_attribute_values(":ttl", n(expires_at.timestamp()))
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":status", s(export.status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .build()
            .map_err(unavailable)?;
        let update = TransactWriteItem::builder().update(update).build();
        let written = if export.status.counts_against_quota() {
            self.with_quota_back(update, owner, at).await?
        } else {
            self.alone(update).await?
        };
        if !written {
            return Err(StoreError::NotFound);
        }
        Ok(Export {
            deleted_at: Some(at),
            updated_at: at,
            ..export
        })
    }

    async fn revise(&self, export: &Export, moves_chain: bool) -> Result<bool, StoreError> {
        let previous = export.version.saturating_sub(1);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(export_key(&export.id)))
            // Exports stored before versions are at version 1.
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(deletedAt) \
                 AND (#version = :previous OR (attribute_not_exists(#version) AND :previous = :one))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":previous", n(previous))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":version", n(export.version))
            .expression_attribute_values(":record", s(record::write_v1(&export.request)))
            .expression_attribute_values(":status", s(export.status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(export.updated_at)));
        let set = "SET #status = :status, updatedAt = :at, #version = :version, #record = :record";
        update = match (moves_chain, export.next_run_at) {
            (false, _) => update.update_expression(set),
            (true, Some(next)) => update
                .update_expression(format!("{set}, nextRunAt = :next"))
                .expression_attribute_values(":next", s(rfc3339(next))),
            (true, None) => update.update_expression(format!("{set} REMOVE nextRunAt")),
        };
        conditional(update.send().await)
    }
}
