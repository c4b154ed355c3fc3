//! A spread job's item runs ([`ItemLedger`](exporter_core::ports::ItemLedger)): the spread, each item's claim and outcome, the
//! finisher.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{Counted, ItemOutcome, ItemRun, JobKey, JobStatus};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::ports::{ItemLedger, JobHistory, JobSpread, StoreError};

use super::codec::*;
use super::{DynamoStore, TTL_ATTRIBUTE};

#[async_trait]
impl ItemLedger for DynamoStore {
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

    async fn checkpoint_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.checkpoint(item_key(job, item), leg, at).await
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
}

#[async_trait]
impl JobSpread for DynamoStore {
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
