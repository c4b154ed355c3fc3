//! Jobs: their history ([`JobHistory`](exporter_core::ports::JobHistory)) and their claims, legs and ends ([`JobLedger`](exporter_core::ports::JobLedger)); a job
//! leaves the sweep's index once it ended, was handed off and notified.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{Job, JobEnd, JobKey, JobStatus};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::ExportId;
use exporter_core::ports::{JobEnds, JobHistory, JobLedger, StoreError};

use super::codec::*;
use super::{DynamoStore, TTL_ATTRIBUTE};

impl DynamoStore {
    /// An update of a job's item.
    pub(super) fn update_job(&self, job: &JobKey) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job)))
    }

    /// Records that the record at `key` (a job, or one item run of a spread job) paused `at`
    /// after its leg `leg - 1`, unless another attempt moved it on; whether this call did. The
    /// leg's attempts count from here (`legFrom` keeps the attempts so far), and the lease ends
    /// a second before `at`, as when a claim is given back: the continuation takes it at once,
    /// the sweep only once the grace has passed.
    pub(super) async fn checkpoint(
        &self,
        key: Item,
        leg: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
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
            .set_key(Some(key))
            .update_expression(
                "SET leg = :leg, leaseUntil = :given, legFrom = if_not_exists(attempts, :zero)",
            )
            .condition_expression(format!("#status = :running AND {at_previous}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(JobStatus::InProgress.as_str()))
            .expression_attribute_values(":leg", n(i64::from(leg)))
            .expression_attribute_values(":given", n(at.timestamp() - 1))
            .expression_attribute_values(":zero", n(0));
        if previous > 0 {
            update = update.expression_attribute_values(":previous", n(i64::from(previous)));
        }
        conditional(update.send().await)
    }

    /// The write that records a job's end (its status, time, detail and expiry); the caller
    /// adds the condition.
    pub(super) fn ending(&self, job: &JobKey, end: &JobEnd) -> Result<UpdateItemFluentBuilder, StoreError> {
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
}

impl DynamoStore {
    /// After `marked` (a write of `handedOff` or `notified` returning the job as written): the
    /// job leaves the sweep's index once it is both handed off and notified. Whichever write
    /// comes second sees both, whatever their order; both seeing both remove it twice.
    pub(super) async fn leave_sweep_when_finished<E, R>(
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
    pub(super) async fn expect_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
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

    async fn checkpoint_job(&self, job: &JobKey, leg: u32, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.checkpoint(job_key(job), leg, at).await
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
}

#[async_trait]
impl JobEnds for DynamoStore {
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
    async fn stop_handing_off(&self, job: &JobKey) -> Result<(), StoreError> {
        let stopped = self
            .update_job(job)
            .update_expression("SET handedOff = :true, notified = :true REMOVE sweep")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        conditional(stopped).map(drop)
    }
}
