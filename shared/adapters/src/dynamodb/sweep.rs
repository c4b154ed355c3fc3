//! What the reconciler reads and repairs ([`Sweep`](exporter_core::ports::Sweep)) through the sparse `bySweep` index, and
//! the resumable pass that gives records older than the index their key.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{Job, JobEnd, JobKey, JobStatus};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExportId, ExportStatus};
use exporter_core::ports::{StoreError, Sweep};

use super::codec::*;
use super::{DynamoStore, SWEEP_INDEX, TTL_ATTRIBUTE};

/// How long after the first pass of [`DynamoStore::index_for_sweeps`] a pass must begin for its
/// end to end the work: longer than a deployment takes to replace every function.
pub(super) const BACKFILL_SETTLE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

impl DynamoStore {
    /// Every record of `kind` in the sweep's index that `filter` (if any) keeps: one query per
    /// shard, page after page.
    pub(super) async fn swept(
        &self,
        kind: Swept,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for shard in 0..SWEEP_SHARDS {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .key_condition_expression("sweep = :sweep")
                .expression_attribute_values(":sweep", s(format!("{}#{shard:x}", kind.prefix())));
            if let Some(filter) = filter {
                query = query.filter_expression(filter);
                if filter.contains("#status") {
                    query = query.expression_attribute_names("#status", "status");
                }
            }
            for (name, value) in values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let mut items = query.into_paginator().items().send();
            while let Some(item) = items.next().await {
                found.push(item.map_err(unavailable)?);
            }
        }
        Ok(found)
    }

    /// Gives the records written before the sweep's index their key. A pass scans the table a
    /// slice at a time (`slice` of each call, the position kept in a marker, so a table too
    /// large for one invocation is done over several); passes repeat until one that began
    /// [`BACKFILL_SETTLE`] after the first has ended (so records that code deployed before the
    /// index wrote while the update rolled out are found too); then one read a call. Each key is
    /// written only while the record is still work. The reconciler calls it before each sweep.
    pub async fn index_for_sweeps(
        &self,
        now: DateTime<Utc>,
        slice: std::time::Duration,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let marker = HashMap::from([("pk".into(), s("META")), ("sk".into(), s("SWEEP_INDEX"))]);
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(marker.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let state = read.item().cloned().unwrap_or_default();
        if state.get("done").and_then(|d| d.as_bool().ok()).copied() == Some(true) {
            return Ok(());
        }
        let first = number_of(&state, "firstAt").unwrap_or(now.timestamp());
        let pass = number_of(&state, "passAt").unwrap_or(now.timestamp());
        let mut from: Option<Item> = match (state.get("lastPk"), state.get("lastSk")) {
            (Some(pk), Some(sk)) => Some(HashMap::from([
                ("pk".into(), pk.clone()),
                ("sk".into(), sk.clone()),
            ])),
            _ => None,
        };
        let mut indexed = 0;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_not_exists(sweep)")
                .consistent_read(true)
                .set_exclusive_start_key(from.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                indexed += usize::from(self.index_one(item).await?);
            }
            from = page.last_evaluated_key().cloned();
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(marker.clone()))
                .expression_attribute_values(":first", n(first));
            let update = match &from {
                Some(key) => update
                    .update_expression("SET firstAt = :first, passAt = :pass, lastPk = :pk, lastSk = :sk")
                    .expression_attribute_values(":pass", n(pass))
                    .expression_attribute_values(":pk", key["pk"].clone())
                    .expression_attribute_values(":sk", key["sk"].clone()),
                // A pass that began late enough ends the work; an earlier one starts another.
                None if pass - first >= BACKFILL_SETTLE.num_seconds() => update
                    .update_expression("SET firstAt = :first, done = :done REMOVE lastPk, lastSk")
                    .expression_attribute_values(":done", AttributeValue::Bool(true)),
                // The next pass begins with the next call.
                None => update.update_expression("SET firstAt = :first REMOVE passAt, lastPk, lastSk"),
            };
            update.send().await.map_err(unavailable)?;
            if from.is_none() || started.elapsed() >= slice {
                break;
            }
        }
        if indexed > 0 {
            tracing::warn!(indexed, "gave records written before the sweep's index their key");
        }
        Ok(())
    }

    /// Gives one record its index key when it is still work (a live export, a job notify has
    /// not finished, a quota counter); whether it did.
    pub(super) async fn index_one(&self, item: &Item) -> Result<bool, StoreError> {
        let (Some(pk), Some(sk)) = (text_of(item, "pk"), text_of(item, "sk")) else {
            return Ok(false);
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([("pk".into(), s(pk)), ("sk".into(), s(sk))])))
            .update_expression("SET sweep = :sweep");
        let update = if sk == "QUOTA" {
            let Some(owner) = pk.strip_prefix("OWNER#") else {
                return Ok(false);
            };
            update
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(sweep)")
                .expression_attribute_values(":sweep", Swept::Quota.key(owner))
        } else {
            let Some(id) = pk.strip_prefix("EXPORT#") else {
                return Ok(false);
            };
            if sk == "EXPORT" {
                update
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(sweep) AND attribute_not_exists(deletedAt) \
                         AND #status IN (:creating, :queued, :scheduled, :paused, :running)",
                    )
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":paused", s(ExportStatus::Paused.as_str()))
                    .expression_attribute_values(":creating", s(ExportStatus::Creating.as_str()))
                    .expression_attribute_values(":queued", s(ExportStatus::Queued.as_str()))
                    .expression_attribute_values(":scheduled", s(ExportStatus::Scheduled.as_str()))
                    .expression_attribute_values(":running", s(ExportStatus::InProgress.as_str()))
                    .expression_attribute_values(":sweep", Swept::Export.key(id))
            } else if sk.starts_with("JOB#") {
                update
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(sweep) \
                         AND NOT (handedOff = :true AND notified = :true)",
                    )
                    .expression_attribute_values(":true", AttributeValue::Bool(true))
                    .expression_attribute_values(":sweep", Swept::Job.key(id))
            } else {
                return Ok(false);
            }
        };
        conditional(update.send().await)
    }

    /// Every export record, whatever its state, deleted ones included: a full scan, for tools
    /// and tests, never for the sweep.
    pub async fn every_export(&self) -> Result<Vec<Export>, StoreError> {
        let mut items = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :export")
            .expression_attribute_values(":export", s("EXPORT"))
            .consistent_read(true)
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
impl Sweep for DynamoStore {
    async fn live_exports(&self) -> Result<Vec<Export>, StoreError> {
        self.swept(Swept::Export, None, &[])
            .await?
            .iter()
            .map(Self::read_export)
            .collect()
    }

    async fn stalled_jobs(&self, lease_before: DateTime<Utc>) -> Result<Vec<(ExportId, Job)>, StoreError> {
        let items = self
            .swept(
                Swept::Job,
                Some("#status IN (:waiting, :running) AND leaseUntil < :before"),
                &[
                    (":waiting", s(JobStatus::NotProcessed.as_str())),
                    (":running", s(JobStatus::InProgress.as_str())),
                    (":before", n(lease_before.timestamp())),
                ],
            )
            .await?;
        items.iter().map(read_job_of_export).collect()
    }

    async fn abandon_job(
        &self,
        job: &JobKey,
        end: &JobEnd,
        lease_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let detail = serde_json::to_string(&end.detail).map_err(unavailable)?;
        let mut update = self
            .update_job(job)
            .condition_expression("#status IN (:waiting, :running) AND leaseUntil < :before")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":before", n(lease_before.timestamp()))
            .expression_attribute_values(":status", s(end.status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(end.finished_at)))
            .expression_attribute_values(":detail", s(detail));
        let set = "SET #status = :status, finishedAt = :at, detail = :detail";
        update = match end.expires_at {
            Some(expiry) => update
                .update_expression(format!("{set}, {TTL_ATTRIBUTE} = :ttl"))
                .expression_attribute_values(":ttl", n(expiry.timestamp())),
            None => update.update_expression(set),
        };
        conditional(update.send().await)
    }

    async fn unhanded_jobs(&self, before: DateTime<Utc>) -> Result<Vec<(ExportId, Job)>, StoreError> {
        let items = self
            .swept(
                Swept::Job,
                Some(
                    "#status IN (:done, :failed) \
                     AND (attribute_not_exists(handedOff) OR attribute_not_exists(notified) \
                     OR notified = :pending) \
                     AND finishedAt < :before",
                ),
                &[
                    (":done", s(JobStatus::Done.as_str())),
                    (":failed", s(JobStatus::Failed.as_str())),
                    (":pending", AttributeValue::Bool(false)),
                    (":before", s(rfc3339(before))),
                ],
            )
            .await?;
        items.iter().map(read_job_of_export).collect()
    }

    async fn quotas(&self, settled_before: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
        let items = self.swept(Swept::Quota, None, &[]).await?;
        Ok(items
            .iter()
            .filter(|item| number_of(item, "touchedAt").is_none_or(|t| t < settled_before.timestamp()))
            .filter_map(|item| {
                let owner = text_of(item, "pk")?.strip_prefix("OWNER#")?.to_owned();
                let queued = item.get("queued")?.as_n().ok()?.parse().ok()?;
                Some((owner, queued))
            })
            .collect())
    }

    async fn set_quota(&self, owner: &str, from: i64, to: i64) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(quota_key(owner)))
            .update_expression("SET queued = :to")
            .condition_expression(if from == 0 {
                "attribute_not_exists(queued) OR queued = :from"
            } else {
                "queued = :from"
            })
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":to", n(to))
            .send()
            .await;
        conditional(written)
    }
}
