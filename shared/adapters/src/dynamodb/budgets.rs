//! The owner's daily budgets of runs and messages ([`Budgets`](exporter_core::ports::Budgets)), spent once per job and message.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use exporter_core::domain::job::JobKey;
use exporter_core::ports::{Budgets, Spend, StoreError};

use super::codec::*;
use super::{DynamoStore, TTL_ATTRIBUTE};

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
