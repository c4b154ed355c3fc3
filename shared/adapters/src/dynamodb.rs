//! DynamoDB adapter of the store's roles ([`Exports`], [`ExportLifecycle`], [`ExportRuns`],
//! [`JobHistory`], [`JobLedger`], [`DeliveryLog`]): one table, exports and their jobs under one
//! partition.
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | export | `EXPORT#<id>` | `EXPORT` | `owner`, `createdAt` feed the `byOwner` index; `record` is the request's versioned record (`domain::record`; items written before version 1 hold `request`, read as version 0) |
//! | job | `EXPORT#<id>` | `JOB#<scheduledAt>` | written by run-export: `status`, `leaseUntil` (Unix seconds; a claim given back ends a second before, so the sweep's grace counts from there), `attempts`, `leg` and `legFrom` (the attempts when the leg was checkpointed), `items`/`itemsLeft`/`outcomes` for a spread job, the detail and the deliveries once ended |
//! | item run | `EXPORT#<id>` | `ITEM#<scheduledAt>#<index>` | one item of a spread job: `status`, `leaseUntil`, `attempts`, `leg`, `legFrom`, `launchedAt` |
//! | quota | `OWNER#<sub>` | `QUOTA` | `queued`: the owner's exports that are queued or scheduled |
//! | marker | `META` | `SWEEP_INDEX` | written once every record older than the `bySweep` index carries its `sweep` key |
//! | budget | `OWNER#<sub>` | `BUDGET#<yyyy-mm-dd>` | `runs`, `messages` spent that UTC day; expires two days later |
//!
//! The reconciler finds its work through the sparse `bySweep` index (hash `sweep`, range `sk`):
//! a record carries `sweep` (`EXPORT#<s>`, `JOB#<s>` or `QUOTA#<s>`, `<s>` one of 16 shards of
//! the export id or owner) only while it is work: an export while it is live (set at create,
//! removed when a one-time export settles or any export is deleted), a job from its first record
//! until it has ended *and* notify has finished its messages (removed by whichever of
//! `handed_off` and `notified` comes second), and every quota counter. Ended exports, handed jobs
//! and item runs are never in it, so a sweep's reads follow the live exports and the jobs under
//! way, not the history kept. Records written before the index get their key once
//! ([`DynamoStore::index_for_sweeps`]).
//!
//! A job item marks what it spent (`spentRun`, `spentMessage<i>`) in the same transaction as the
//! budget, so a retried attempt never spends twice.
//!
//! The quota and the export change in one transaction, so the per-owner limit holds under
//! concurrent requests. This is the only code that knows the item layout.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{
    Counted, ItemOutcome, ItemRun, Job, JobDetail, JobEnd, JobKey, JobStatus, Spread,
};
use exporter_core::domain::notification::{Delivery, DeliveryStatus};
use exporter_core::domain::record;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExportId, ExportStatus};
use exporter_core::ports::{
    Advance, Budgets, Cause, DeliveryLog, ExportLifecycle, ExportRuns, Exports, ItemLedger, JobHistory,
    JobLedger, Spend, StoreError, Sweep,
};

/// Name of the index that lists an owner's exports by creation time.
pub const OWNER_INDEX: &str = "byOwner";
/// The attribute DynamoDB's TTL reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// Name of the sparse index the reconciler's sweeps query (see the module's header).
pub const SWEEP_INDEX: &str = "bySweep";
/// The shards of each kind of record in [`SWEEP_INDEX`], so that no partition of the index
/// takes every write of a busy table.
const SWEEP_SHARDS: u32 = 16;
/// How long after the first pass of [`DynamoStore::index_for_sweeps`] a pass must begin for its
/// end to end the work: longer than a deployment takes to replace every function.
const BACKFILL_SETTLE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

/// The kinds of record in [`SWEEP_INDEX`].
#[derive(Clone, Copy)]
enum Swept {
    Export,
    Job,
    Quota,
}

impl Swept {
    fn prefix(self) -> &'static str {
        match self {
            Self::Export => "EXPORT",
            Self::Job => "JOB",
            Self::Quota => "QUOTA",
        }
    }

    /// The index key of a record of this kind that belongs to `of` (an export id, an owner).
    fn key(self, of: &str) -> AttributeValue {
        // FNV-1a: stable across builds and processes, unlike the standard library's hasher.
        let hash = of.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        s(format!("{}#{:x}", self.prefix(), hash % SWEEP_SHARDS))
    }

    fn of_export(id: &ExportId) -> AttributeValue {
        Self::Export.key(&id.to_string())
    }

    fn of_job(job: &JobKey) -> AttributeValue {
        Self::Job.key(&job.export_id.to_string())
    }
}

type Item = HashMap<String, AttributeValue>;

/// The export store on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn export_key(id: &ExportId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{id}"))),
        ("sk".into(), s("EXPORT")),
    ])
}

fn quota_key(owner: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("OWNER#{owner}"))),
        ("sk".into(), s("QUOTA")),
    ])
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e) as Cause)
}

impl DynamoStore {
    /// An update of a job's item.
    fn update_job(&self, job: &JobKey) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job)))
    }

    /// The write that records a job's end (its status, time, detail and expiry); the caller
    /// adds the condition.
    fn ending(&self, job: &JobKey, end: &JobEnd) -> Result<UpdateItemFluentBuilder, StoreError> {
        let detail = serde_json::to_string(&end.detail).map_err(unavailable)?;
        let update = self
            .update_job(job)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(end.status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(end.finished_at)))
            .expression_attribute_values(":detail", s(detail));
        Ok(match end.expires_at {
            Some(expiry) => update
                .update_expression(format!(
                    "SET #status = :status, finishedAt = :at, detail = :detail, {TTL_ATTRIBUTE} = :ttl"
                ))
                .expression_attribute_values(":ttl", n(expiry.timestamp())),
            None => update.update_expression("SET #status = :status, finishedAt = :at, detail = :detail"),
        })
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table as the SAM template declares it (for local runs and tests).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let index = |name: &str, hash: &str, range: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key(range, KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(unavailable)
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("owner")?)
            .attribute_definitions(attr("createdAt")?)
            .attribute_definitions(attr("sweep")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index(OWNER_INDEX, "owner", "createdAt")?)
            .global_secondary_indexes(index(SWEEP_INDEX, "sweep", "sk")?)
            .send()
            .await
            .map_err(unavailable)?;
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(unavailable)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn export_item(export: &Export) -> Item {
        let mut item = export_key(&export.id);
        item.insert("owner".into(), s(&export.owner));
        item.insert("createdAt".into(), s(rfc3339(export.created_at)));
        item.insert("updatedAt".into(), s(rfc3339(export.updated_at)));
        item.insert("status".into(), s(export.status.as_str()));
        item.insert("type".into(), s(export.request.export_type().as_str()));
        item.insert("record".into(), s(record::write_v1(&export.request)));
        if let Some(email) = &export.owner_email {
            item.insert("ownerEmail".into(), s(email));
        }
        match export.deleted_at {
            Some(at) => {
                item.insert("deletedAt".into(), s(rfc3339(at)));
            }
            None if export.status.counts_against_quota() => {
                item.insert("sweep".into(), Swept::of_export(&export.id));
            }
            None => {}
        }
        if let Some(at) = export.next_run_at {
            item.insert("nextRunAt".into(), s(rfc3339(at)));
        }
        item
    }

    fn read_export(item: &Item) -> Result<Export, StoreError> {
        let text = |name: &str| text_of(item, name);
        let corrupt = |what: &str| StoreError::Corrupt(format!("export item: {what}"));
        let time = |name: &str| time_of(item, name, "export item");
        let id = text("pk")
            .and_then(|pk| pk.strip_prefix("EXPORT#"))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| corrupt("pk"))?;
        let created_at = time("createdAt")?.ok_or_else(|| corrupt("createdAt"))?;
        // Version 1 in `record`; items written before it hold version 0 in `request`.
        let request = match (text("record"), text("request")) {
            (Some(v1), _) => record::read_v1(v1),
            (None, Some(v0)) => record::read_v0(v0),
            (None, None) => return Err(corrupt("record")),
        }
        .map_err(|e| StoreError::Corrupt(format!("export item: {e}")))?;
        Ok(Export {
            id,
            owner: text("owner").ok_or_else(|| corrupt("owner"))?.to_owned(),
            owner_email: text("ownerEmail").map(str::to_owned),
            request,
            status: text("status")
                .and_then(ExportStatus::parse)
                .ok_or_else(|| corrupt("status"))?,
            created_at,
            updated_at: time("updatedAt")?.unwrap_or(created_at),
            deleted_at: time("deletedAt")?,
            next_run_at: time("nextRunAt")?,
        })
    }

    fn quota_change(&self, owner: &str, delta: i64) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(owner)))
            .update_expression("SET queued = if_not_exists(queued, :zero) + :delta, touchedAt = :touched")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":touched", n(Utc::now().timestamp()));
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
    async fn with_quota_back(&self, primary: TransactWriteItem, owner: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(primary.clone())
            .transact_items(self.quota_change(owner, -1)?)
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
    async fn alone(&self, primary: TransactWriteItem) -> Result<bool, StoreError> {
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

/// Whether a conditional write happened: `false` when its condition did not hold.
fn conditional<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// True when the `index`th action of a cancelled transaction failed its condition.
fn condition_failed<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
    index: usize,
) -> bool {
    cancellation_code(err, index).as_deref() == Some("ConditionalCheckFailed")
}

/// The reason code of the `index`th action of a cancelled transaction.
fn cancellation_code<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
    index: usize,
) -> Option<String> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match err.as_service_error()? {
        E::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .get(index)
            .and_then(|r| r.code())
            .map(str::to_owned),
        _ => None,
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
            .expression_attribute_values(":touched", n(Utc::now().timestamp()))
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

    async fn discard(&self, export: &Export) -> Result<(), StoreError> {
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
        self.with_quota_back(TransactWriteItem::builder().delete(delete).build(), &export.owner)
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
            self.with_quota_back(update, owner).await?
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
}

#[async_trait]
impl ExportRuns for DynamoStore {
    async fn advance_next_run(
        &self,
        id: &ExportId,
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
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(deletedAt) \
                 AND (attribute_not_exists(nextRunAt) OR nextRunAt < :next)",
            )
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
                if export.deleted_at.is_none() && export.next_run_at.map(rfc3339) == Some(next_text) =>
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
        if self.with_quota_back(settle(true)?, &export.owner).await? {
            return Ok(());
        }
        // Settled already (a retried run), or deleted: the status alone, once.
        self.alone(settle(false)?).await.map(drop)
    }
}

impl DynamoStore {
    /// After `marked` (a write of `handedOff` or `notified` returning the job as written): the
    /// job leaves the sweep's index once it is both handed off and notified. Whichever write
    /// comes second sees both, whatever their order; both seeing both remove it twice.
    async fn leave_sweep_when_finished<E, R>(
        &self,
        job: &JobKey,
        marked: Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, SdkError<E, R>>,
    ) -> Result<(), StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let written = match marked {
            Ok(output) => output.attributes,
            Err(e) => {
                conditional::<(), _, _>(Err(e))?;
                return Ok(());
            }
        };
        let flag =
            |item: &Item, name: &str| item.get(name).and_then(|v| v.as_bool().ok()).copied() == Some(true);
        if written.is_some_and(|item| flag(&item, "handedOff") && flag(&item, "notified")) {
            let left = self
                .update_job(job)
                .update_expression("REMOVE sweep")
                .condition_expression("handedOff = :true AND notified = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .send()
                .await;
            conditional(left)?;
        }
        Ok(())
    }

    /// Records an occurrence's job as `notProcessed`, never attempted and unclaimed (its lease
    /// ended a second before `at`), unless the job is on record already.
    async fn expect_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        let expected = self
            .update_job(job)
            .update_expression(
                "SET jobId = :job, scheduledAt = :scheduled, #status = :waiting, createdAt = :at, \
                 leaseUntil = :released, attempts = :zero, sweep = :sweep",
            )
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":job", s(job.job_id()))
            .expression_attribute_values(":scheduled", s(rfc3339(job.scheduled_at)))
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":released", n(at.timestamp() - 1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":sweep", Swept::of_job(job))
            .send()
            .await;
        conditional(expected).map(drop)
    }
}

#[async_trait]
impl JobHistory for DynamoStore {
    async fn jobs(&self, id: &ExportId) -> Result<Vec<Job>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :job)")
            .expression_attribute_values(":pk", s(format!("EXPORT#{id}")))
            .expression_attribute_values(":job", s("JOB#"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut jobs = Vec::new();
        while let Some(item) = items.next().await {
            jobs.push(read_job(&item.map_err(unavailable)?)?);
        }
        Ok(jobs)
    }

    async fn job(&self, job: &JobKey) -> Result<Option<Job>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output.item().map(read_job).transpose()
    }

    async fn recent_jobs(
        &self,
        id: &ExportId,
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        // `JOB#` sorts before every job key and `JOB$` after them all.
        let upper = before.map_or_else(|| "JOB$".to_owned(), |t| format!("JOB#{}", rfc3339(t)));
        // Page after page: DynamoDB ends a page at 1 MB whatever `Limit` asks, and a chain's
        // jobs (their details, their deliveries) fill one long before a day of `PT1M`.
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", s(format!("EXPORT#{id}")))
            .expression_attribute_values(":low", s("JOB#"))
            .expression_attribute_values(":high", s(upper))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut jobs = Vec::new();
        while jobs.len() <= limit {
            let Some(item) = pages.next().await else { break };
            jobs.push(read_job(&item.map_err(unavailable)?)?);
        }
        // BETWEEN is inclusive: the job at `before` itself was on the page before.
        jobs.retain(|j| before.is_none_or(|b| j.scheduled_at < b));
        jobs.truncate(limit);
        Ok(jobs)
    }
}

#[async_trait]
impl ItemLedger for DynamoStore {
    async fn spread_job(&self, job: &JobKey, items: u32, launched: u32) -> Result<bool, StoreError> {
        let spread = self
            .update_job(job)
            .update_expression(
                "SET #items = :items, itemsLaunched = :launched, itemsLeft = :items, outcomes = :none, \
                 leaseUntil = :zero",
            )
            .condition_expression("#status = :running AND attribute_not_exists(#items)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#items", "items")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":items", n(items))
            .expression_attribute_values(":launched", n(launched))
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        conditional(spread)
    }

    async fn launch_item(&self, job: &JobKey, item: u32, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(job, item)))
            .update_expression(format!(
                "SET #status = if_not_exists(#status, :running), launchedAt = if_not_exists(launchedAt, :at), \
                 leaseUntil = if_not_exists(leaseUntil, :zero), attempts = if_not_exists(attempts, :zero), \
                 {TTL_ATTRIBUTE} = :ttl"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":zero", n(0))
            // Item records outlive any job's retention, then go.
            .expression_attribute_values(":ttl", n((at + chrono::TimeDelta::days(400)).timestamp()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn next_item(&self, job: &JobKey, items: u32) -> Result<Option<u32>, StoreError> {
        let taken = self
            .update_job(job)
            .update_expression("SET itemsLaunched = itemsLaunched + :one")
            .condition_expression("#status = :running AND itemsLaunched < :items")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":items", n(items))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match taken {
            Ok(output) => Ok(output
                .attributes()
                .and_then(|a| number_of(a, "itemsLaunched"))
                .and_then(|n| u32::try_from(n - 1).ok())),
            Err(e)
                if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn claim_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A first run may find no record: its launcher died between launching and recording.
        let condition = if leg == 0 {
            "attribute_not_exists(pk) OR (#status = :running AND leaseUntil < :now AND attribute_not_exists(leg))"
        } else {
            "#status = :running AND leg = :leg AND leaseUntil < :now"
        };
        let mut claim = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(job, item)))
            .update_expression(format!(
                "SET #status = if_not_exists(#status, :running), launchedAt = if_not_exists(launchedAt, :at), \
                 leaseUntil = :lease, attempts = if_not_exists(attempts, :zero) + :one, \
                 {TTL_ATTRIBUTE} = if_not_exists({TTL_ATTRIBUTE}, :ttl)"
            ))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":lease", n(lease_until.timestamp()))
            .expression_attribute_values(":now", n(at.timestamp()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ttl", n((at + chrono::TimeDelta::days(400)).timestamp()))
            .expression_attribute_values(":one", n(1));
        if leg > 0 {
            claim = claim.expression_attribute_values(":leg", n(leg));
        }
        conditional(claim.send().await)
    }

    async fn release_item(&self, job: &JobKey, item: u32) -> Result<(), StoreError> {
        let release = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(job, item)))
            .update_expression("SET leaseUntil = :zero")
            .condition_expression("#status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        conditional(release).map(drop)
    }

    async fn checkpoint_item(&self, job: &JobKey, item: u32, leg: u32) -> Result<bool, StoreError> {
        let previous = leg
            .checked_sub(1)
            .ok_or_else(|| StoreError::Corrupt("leg 0 has no checkpoint".into()))?;
        let at_previous = if previous == 0 {
            "attribute_not_exists(leg)"
        } else {
            "leg = :previous"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(job, item)))
            .update_expression("SET leg = :leg, leaseUntil = :zero, legFrom = if_not_exists(attempts, :zero)")
            .condition_expression(format!("#status = :running AND {at_previous}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":leg", n(leg))
            .expression_attribute_values(":zero", n(0));
        if previous > 0 {
            update = update.expression_attribute_values(":previous", n(previous));
        }
        conditional(update.send().await)
    }

    async fn item_done(
        &self,
        job: &JobKey,
        item: u32,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        let json = serde_json::to_string(outcome).map_err(unavailable)?;
        let counted = self
            .update_job(job)
            .update_expression("SET outcomes.#item = :outcome, itemsLeft = itemsLeft - :one")
            .condition_expression("#status = :running AND attribute_not_exists(outcomes.#item)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#item", item.to_string())
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":outcome", s(json))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let counted = match counted {
            Ok(output) => Counted::Left(
                output
                    .attributes()
                    .and_then(|a| number_of(a, "itemsLeft"))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| StoreError::Corrupt("job item: itemsLeft".into()))?,
            ),
            Err(e)
                if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") =>
            {
                match JobHistory::job(self, job).await? {
                    Some(j) if j.status == JobStatus::InProgress => Counted::Already,
                    _ => Counted::JobEnded,
                }
            }
            Err(e) => return Err(unavailable(e)),
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(job, item)))
            .update_expression("SET #status = :done, leaseUntil = :zero, doneAt = :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s(JobStatus::Done.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(counted)
    }

    async fn item_outcomes(&self, job: &JobKey) -> Result<Vec<(u32, ItemOutcome)>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output.item().map_or(Ok(Vec::new()), read_outcomes)
    }

    async fn item_runs(&self, job: &JobKey) -> Result<Vec<ItemRun>, StoreError> {
        let mut output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("EXPORT#{}", job.export_id)))
            .expression_attribute_values(":prefix", s(item_prefix(job)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(record) = output.next().await {
            records.push(record.map_err(unavailable)?);
        }
        let corrupt = || StoreError::Corrupt("item run".into());
        records
            .iter()
            .map(|record| {
                let item = text_of(record, "sk")
                    .and_then(|sk| sk.rsplit('#').next())
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(corrupt)?;
                let count = |name| {
                    number_of(record, name)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0)
                };
                Ok(ItemRun {
                    item,
                    done: text_of(record, "status") == Some(JobStatus::Done.as_str()),
                    leg: count("leg"),
                    attempts: count("attempts"),
                    leg_from: number_of(record, "legFrom").and_then(|n| u32::try_from(n).ok()),
                    lease_until: number_of(record, "leaseUntil")
                        .and_then(|t| DateTime::from_timestamp(t, 0))
                        .unwrap_or_default(),
                    launched_at: time_of(record, "launchedAt", "item run")?.unwrap_or_default(),
                    done_at: time_of(record, "doneAt", "item run")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl JobLedger for DynamoStore {
    async fn open_job(
        &self,
        job: &JobKey,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One conditional upsert: a new job, or an unfinished one whose lease has passed, that
        // never continued (a continuation is resumed by its own event, never restarted) and was
        // never spread (its items run on their own; a duplicate trigger must not take it back).
        let claim = self
            .update_job(job)
            .update_expression(
                "SET jobId = :job, scheduledAt = :scheduled, #status = :waiting, \
                 createdAt = if_not_exists(createdAt, :at), leaseUntil = :lease, \
                 attempts = if_not_exists(attempts, :zero) + :one, sweep = :sweep",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#status IN (:waiting, :running) AND leaseUntil < :now \
                 AND attribute_not_exists(leg) AND attribute_not_exists(#items))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#items", "items")
            .expression_attribute_values(":job", s(job.job_id()))
            .expression_attribute_values(":scheduled", s(rfc3339(job.scheduled_at)))
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":lease", n(lease_until.timestamp()))
            .expression_attribute_values(":now", n(at.timestamp()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":sweep", Swept::of_job(job))
            .send()
            .await;
        conditional(claim)
    }

    async fn checkpoint_job(&self, job: &JobKey, leg: u32) -> Result<bool, StoreError> {
        let previous = leg
            .checked_sub(1)
            .ok_or_else(|| StoreError::Corrupt("leg 0 has no checkpoint".into()))?;
        let at_previous = if previous == 0 {
            "attribute_not_exists(leg)"
        } else {
            "leg = :previous"
        };
        // The leg's attempts count from here: `legFrom` keeps the attempts so far.
        let mut update = self
            .update_job(job)
            .update_expression("SET leg = :leg, leaseUntil = :zero, legFrom = if_not_exists(attempts, :zero)")
            .condition_expression(format!("#status = :running AND {at_previous}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":leg", n(i64::from(leg)))
            .expression_attribute_values(":zero", n(0));
        if previous > 0 {
            update = update.expression_attribute_values(":previous", n(i64::from(previous)));
        }
        conditional(update.send().await)
    }

    async fn resume_job(
        &self,
        job: &JobKey,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claim = self
            .update_job(job)
            .update_expression("SET leaseUntil = :lease, attempts = attempts + :one")
            .condition_expression("#status = :running AND leg = :leg AND leaseUntil < :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":leg", n(i64::from(leg)))
            .expression_attribute_values(":lease", n(lease_until.timestamp()))
            .expression_attribute_values(":now", n(at.timestamp()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        conditional(claim)
    }

    async fn release_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        // The lease ends a second before now, not at 0: a retry's claim (`leaseUntil < now`, in
        // whole seconds) takes it at once, even within the same second, and the sweep's
        // (`leaseUntil < now - grace`) only once the grace has passed.
        let release = self
            .update_job(job)
            .update_expression("SET leaseUntil = :now")
            .condition_expression("#status IN (:waiting, :running)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":now", n(at.timestamp() - 1))
            .send()
            .await;
        conditional(release).map(drop)
    }

    async fn start_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.update_job(job)
            .update_expression("SET #status = :status, startedAt = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn finish_job(&self, job: &JobKey, end: &JobEnd) -> Result<bool, StoreError> {
        // Only a job still under way ends: a second finisher never overwrites the first's end
        // (a `failed` over a `done`, or the reverse).
        let update = self
            .ending(job, end)?
            .condition_expression("#status IN (:waiting, :running)")
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()));
        conditional(update.send().await)
    }

    async fn record_unrun(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError> {
        let detail = serde_json::to_string(&end.detail).map_err(unavailable)?;
        // A job expected when the chain moved past it, and never attempted, is recorded too.
        let mut update = self
            .update_job(job)
            .condition_expression("attribute_not_exists(pk) OR (#status = :waiting AND attempts = :zero)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":waiting", s(JobStatus::NotProcessed.as_str()))
            .expression_attribute_values(":job", s(job.job_id()))
            .expression_attribute_values(":scheduled", s(rfc3339(job.scheduled_at)))
            .expression_attribute_values(":status", s(end.status.as_str()))
            .expression_attribute_values(":at", s(rfc3339(end.finished_at)))
            .expression_attribute_values(":detail", s(detail))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        // Handed off and notified from the start: a job that never ran sends nothing.
        let set = "SET jobId = :job, scheduledAt = :scheduled, #status = :status, createdAt = :at, \
                   finishedAt = :at, detail = :detail, attempts = :zero, handedOff = :true, \
                   notified = :true";
        update = match end.expires_at {
            Some(expiry) => update
                .update_expression(format!("{set}, {TTL_ATTRIBUTE} = :ttl REMOVE sweep"))
                .expression_attribute_values(":ttl", n(expiry.timestamp())),
            None => update.update_expression(format!("{set} REMOVE sweep")),
        };
        conditional(update.send().await).map(drop)
    }

    async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError> {
        let marked = self
            .update_job(job)
            .update_expression("SET handedOff = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        self.leave_sweep_when_finished(job, marked).await
    }
}

/// The record of one item's run of a spread job: `ITEM#<scheduledAt>#<item>` (not under `JOB#`,
/// so job queries and scans never see it).
fn item_key(job: &JobKey, item: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{}", job.export_id))),
        ("sk".into(), s(format!("{}{item:04}", item_prefix(job)))),
    ])
}

fn item_prefix(job: &JobKey) -> String {
    format!("ITEM#{}#", rfc3339(job.scheduled_at))
}

fn number_of(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The outcomes a spread job's record holds, by item.
fn read_outcomes(item: &Item) -> Result<Vec<(u32, ItemOutcome)>, StoreError> {
    let Some(map) = item.get("outcomes").and_then(|v| v.as_m().ok()) else {
        return Ok(Vec::new());
    };
    let corrupt = || StoreError::Corrupt("job item: outcomes".into());
    let mut outcomes = map
        .iter()
        .map(|(index, json)| {
            let index = index.parse().map_err(|_| corrupt())?;
            let json = json.as_s().map_err(|_| corrupt())?;
            Ok((index, serde_json::from_str(json).map_err(|_| corrupt())?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes)
}

fn job_key(job: &JobKey) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{}", job.export_id))),
        ("sk".into(), s(format!("JOB#{}", rfc3339(job.scheduled_at)))),
    ])
}

/// A string attribute of an item.
fn text_of<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// An RFC 3339 attribute of an item; `Corrupt` (naming `kind` and the attribute) when unreadable.
fn time_of(item: &Item, name: &str, kind: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    text_of(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| StoreError::Corrupt(format!("{kind}: {name}")))
        })
        .transpose()
}

/// A job item and the export it belongs to.
fn read_job_of_export(item: &Item) -> Result<(ExportId, Job), StoreError> {
    let id = text_of(item, "pk")
        .and_then(|pk| pk.strip_prefix("EXPORT#"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("job item: pk".into()))?;
    Ok((id, read_job(item)?))
}

fn read_job(item: &Item) -> Result<Job, StoreError> {
    let text = |name: &str| text_of(item, name);
    let corrupt = |what: &str| StoreError::Corrupt(format!("job item: {what}"));
    let time = |name: &str| time_of(item, name, "job item");
    let detail = match text("detail") {
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("detail"))?,
        None => JobDetail::default(),
    };
    let expires_at = item
        .get(TTL_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    Ok(Job {
        job_id: text("jobId").ok_or_else(|| corrupt("jobId"))?.to_owned(),
        scheduled_at: time("scheduledAt")?.ok_or_else(|| corrupt("scheduledAt"))?,
        status: text("status")
            .and_then(JobStatus::parse)
            .ok_or_else(|| corrupt("status"))?,
        started_at: time("startedAt")?,
        attempts: item
            .get("attempts")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        leg: item
            .get("leg")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        leg_from: item
            .get("legFrom")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()),
        spread: number_of(item, "items").map(|items| {
            let count = |name| {
                number_of(item, name)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0)
            };
            let mut done: Vec<u32> = item
                .get("outcomes")
                .and_then(|v| v.as_m().ok())
                .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
                .unwrap_or_default();
            done.sort_unstable();
            Spread {
                items: u32::try_from(items).unwrap_or(0),
                launched: count("itemsLaunched"),
                left: count("itemsLeft"),
                done,
            }
        }),
        finished_at: time("finishedAt")?,
        expires_at,
        detail,
        deliveries: read_deliveries(item),
    })
}

/// The attribute holding message `index`'s delivery on a job item.
fn delivery_attribute(index: usize) -> String {
    format!("delivery{index}")
}

fn read_deliveries(item: &Item) -> Vec<Delivery> {
    let mut deliveries: Vec<Delivery> = item
        .iter()
        .filter(|(name, _)| name.starts_with("delivery"))
        .filter_map(|(_, value)| {
            let map = value.as_m().ok()?;
            let text = |k: &str| map.get(k).and_then(|v| v.as_s().ok()).cloned();
            let number = |k: &str| {
                map.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            Some(Delivery {
                message: number("message")? as usize,
                medium: text("medium").unwrap_or_default(),
                status: text("status").as_deref().and_then(DeliveryStatus::parse)?,
                attempts: number("attempts").unwrap_or(0) as u32,
                reason: text("reason"),
                provider_message_id: text("providerMessageId"),
                claimed_until: map
                    .get("claimedUntil")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .and_then(|secs| DateTime::from_timestamp(secs, 0)),
            })
        })
        .collect();
    deliveries.sort_by_key(|d| d.message);
    deliveries
}

fn delivery_value(delivery: &Delivery) -> AttributeValue {
    let mut map = HashMap::from([
        ("message".to_owned(), n(delivery.message)),
        ("medium".to_owned(), s(&delivery.medium)),
        ("status".to_owned(), s(delivery.status.as_str())),
        ("attempts".to_owned(), n(delivery.attempts)),
    ]);
    if let Some(reason) = &delivery.reason {
        map.insert("reason".into(), s(reason));
    }
    if let Some(id) = &delivery.provider_message_id {
        map.insert("providerMessageId".into(), s(id));
    }
    if let Some(until) = delivery.claimed_until {
        map.insert("claimedUntil".into(), n(until.timestamp()));
    }
    AttributeValue::M(map)
}

#[async_trait]
impl DeliveryLog for DynamoStore {
    async fn claim_delivery(
        &self,
        job: &JobKey,
        index: usize,
        at: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claim = Delivery {
            message: index,
            medium: String::new(),
            status: DeliveryStatus::Sending,
            attempts: 0,
            reason: None,
            provider_message_id: None,
            claimed_until: Some(claimed_until),
        };
        let result = self
            .update_job(job)
            .update_expression("SET #d = :claim")
            // A failed delivery may be tried again by a later run, and so may one whose sender
            // died (its claim lapsed); a sent one never.
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#d) OR #d.#s = :failed \
                 OR (#d.#s = :sending AND #d.#c < :now))",
            )
            .expression_attribute_names("#d", delivery_attribute(index))
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#c", "claimedUntil")
            .expression_attribute_values(":claim", delivery_value(&claim))
            .expression_attribute_values(":failed", s(DeliveryStatus::Failed.as_str()))
            .expression_attribute_values(":sending", s(DeliveryStatus::Sending.as_str()))
            .expression_attribute_values(":now", n(at.timestamp()))
            .send()
            .await;
        conditional(result)
    }

    async fn record_delivery(&self, job: &JobKey, delivery: &Delivery) -> Result<(), StoreError> {
        self.update_job(job)
            .update_expression("SET #d = :delivery")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#d", delivery_attribute(delivery.message))
            .expression_attribute_values(":delivery", delivery_value(delivery))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn notified(&self, job: &JobKey, all_ended: bool) -> Result<(), StoreError> {
        // A message left `sending` puts the job back in the sweep's index.
        let marked = self
            .update_job(job)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":ended", AttributeValue::Bool(all_ended))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let marked = if all_ended {
            marked.update_expression("SET notified = :ended")
        } else {
            marked
                .update_expression("SET notified = :ended, sweep = :sweep")
                .expression_attribute_values(":sweep", Swept::of_job(job))
        };
        self.leave_sweep_when_finished(job, marked.send().await).await
    }
}

#[async_trait]
impl Budgets for DynamoStore {
    async fn spend(
        &self,
        owner: &str,
        job: &JobKey,
        spend: Spend,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let (mark, counter) = match spend {
            Spend::Run => ("spentRun".to_owned(), "runs"),
            Spend::Message(index) => (format!("spentMessage{index}"), "messages"),
        };
        let marked = Update::builder()
            .table_name(&self.table)
            .set_key(Some(job_key(job)))
            .update_expression("SET #mark = :true")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#mark)")
            .expression_attribute_names("#mark", mark)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(unavailable)?;
        let day = at.format("%Y-%m-%d");
        let expiry = at + chrono::TimeDelta::days(2);
        let counted = Update::builder()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([
                ("pk".into(), s(format!("OWNER#{owner}"))),
                ("sk".into(), s(format!("BUDGET#{day}"))),
            ])))
            .update_expression(format!(
                "SET #count = if_not_exists(#count, :zero) + :one, {TTL_ATTRIBUTE} = :expiry"
            ))
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", counter)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expiry", n(expiry.timestamp()))
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(marked).build())
            .transact_items(TransactWriteItem::builder().update(counted).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Spent already by an earlier attempt of this job.
            Err(e) if condition_failed(&e, 0) => Ok(true),
            Err(e) if condition_failed(&e, 1) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl DynamoStore {
    /// Every record of `kind` in the sweep's index that `filter` (if any) keeps: one query per
    /// shard, page after page.
    async fn swept(
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
    async fn index_one(&self, item: &Item) -> Result<bool, StoreError> {
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
                         AND #status IN (:creating, :queued, :scheduled, :running)",
                    )
                    .expression_attribute_names("#status", "status")
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

    async fn unhanded_jobs(
        &self,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Result<Vec<(ExportId, Job)>, StoreError> {
        let items = self
            .swept(
                Swept::Job,
                Some(
                    "#status IN (:done, :failed) \
                     AND (attribute_not_exists(handedOff) OR attribute_not_exists(notified) \
                     OR notified = :pending) \
                     AND finishedAt BETWEEN :since AND :before",
                ),
                &[
                    (":done", s(JobStatus::Done.as_str())),
                    (":failed", s(JobStatus::Failed.as_str())),
                    (":pending", AttributeValue::Bool(false)),
                    (":since", s(rfc3339(since))),
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
