//! Messages of a job ([`DeliveryLog`](exporter_core::ports::DeliveryLog)): each claimed, then recorded sent or failed.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::JobKey;
use exporter_core::domain::notification::{Delivery, DeliveryStatus};
use exporter_core::ports::{DeliveryLog, StoreError};

use super::codec::*;
use super::DynamoStore;

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
