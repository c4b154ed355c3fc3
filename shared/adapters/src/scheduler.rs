//! EventBridge Scheduler adapter of [`RunSchedules`]: one schedule per recurring export, named
//! `export-<id>` in the service's schedule group, firing once with a computed `at(...)` in UTC.
//!
//! Fixed `rate()`/`cron()` expressions cannot express `P1M` from the 31st or DST-correct local
//! times, so every run re-arms the same schedule for the next occurrence (spec section 1).

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;
use chrono::{DateTime, SecondsFormat, Utc};

use exporter_core::domain::{ExportId, RunEvent};
use exporter_core::ports::{Cause, RunSchedules, ScheduleError};

/// Where schedules point and how they retry.
#[derive(Clone, Debug)]
pub struct ScheduleSettings {
    pub group: String,
    /// ARN of run-export.
    pub target_arn: String,
    /// The role Scheduler assumes to invoke run-export.
    pub role_arn: String,
    /// Where events go when every retry failed; none when unset.
    pub dead_letter_arn: Option<String>,
    pub max_retries: i32,
    pub max_event_age_seconds: i32,
    /// How long after its occurrence a run fires (its window is unchanged), so that data the
    /// devices stamped just before the occurrence has reached the platform's reader.
    pub settle_seconds: i64,
}

/// The run schedules on EventBridge Scheduler.
#[derive(Clone, Debug)]
pub struct EventBridgeSchedules {
    client: Client,
    settings: ScheduleSettings,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> ScheduleError {
    ScheduleError::Unavailable(Box::new(e) as Cause)
}

/// The schedule's name for an export.
pub fn schedule_name(id: &ExportId) -> String {
    format!("export-{id}")
}

/// `at(yyyy-mm-ddThh:mm:ss)` for an instant, in UTC. Scheduler has one-second resolution,
/// so a fractional instant rounds up: a run never starts before its occurrence.
pub fn at_expression(at: DateTime<Utc>) -> String {
    let whole = if at.timestamp_subsec_nanos() > 0 {
        at + chrono::TimeDelta::seconds(1)
    } else {
        at
    };
    let text = whole.to_rfc3339_opts(SecondsFormat::Secs, true);
    format!("at({})", text.trim_end_matches('Z'))
}

impl EventBridgeSchedules {
    pub fn new(client: Client, settings: ScheduleSettings) -> Self {
        Self { client, settings }
    }

    fn target(&self, event: &RunEvent) -> Result<Target, ScheduleError> {
        let input = serde_json::to_string(event).map_err(unavailable)?;
        let retry = RetryPolicy::builder()
            .maximum_retry_attempts(self.settings.max_retries)
            .maximum_event_age_in_seconds(self.settings.max_event_age_seconds)
            .build();
        Target::builder()
            .arn(&self.settings.target_arn)
            .role_arn(&self.settings.role_arn)
            .input(input)
            .retry_policy(retry)
            .set_dead_letter_config(
                self.settings
                    .dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(unavailable)
    }

    /// Creates the schedule group (for local runs and tests; SAM creates it in AWS).
    pub async fn create_group(client: &Client, group: &str) -> Result<(), ScheduleError> {
        client
            .create_schedule_group()
            .name(group)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl RunSchedules for EventBridgeSchedules {
    async fn arm(&self, event: &RunEvent) -> Result<(), ScheduleError> {
        let name = schedule_name(&event.export_id);
        let expression =
            at_expression(event.scheduled_at + chrono::TimeDelta::seconds(self.settings.settle_seconds));
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(unavailable)?;
        let created = self
            .client
            .create_schedule()
            .name(&name)
            .group_name(&self.settings.group)
            .schedule_expression(&expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window.clone())
            .target(self.target(event)?)
            .action_after_completion(ActionAfterCompletion::None)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Already there (a re-arm, or a retried request): move it to the new occurrence.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => {
                self.client
                    .update_schedule()
                    .name(&name)
                    .group_name(&self.settings.group)
                    .schedule_expression(&expression)
                    .schedule_expression_timezone("UTC")
                    .flexible_time_window(window)
                    .target(self.target(event)?)
                    .action_after_completion(ActionAfterCompletion::None)
                    .send()
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn disarm(&self, id: &ExportId) -> Result<(), ScheduleError> {
        let deleted = self
            .client
            .delete_schedule()
            .name(schedule_name(id))
            .group_name(&self.settings.group)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn armed(&self) -> Result<Vec<ExportId>, ScheduleError> {
        let mut pages = self
            .client
            .list_schedules()
            .group_name(&self.settings.group)
            .name_prefix("export-")
            .into_paginator()
            .send();
        let mut armed = Vec::new();
        while let Some(page) = pages.next().await {
            for schedule in page.map_err(unavailable)?.schedules() {
                if let Some(id) = schedule
                    .name()
                    .and_then(|n| n.strip_prefix("export-"))
                    .and_then(|id| id.parse().ok())
                {
                    armed.push(id);
                }
            }
        }
        Ok(armed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc_seconds_rounded_up() {
        let t = DateTime::from_timestamp(1_795_000_000, 0).expect("in range");
        assert_eq!(at_expression(t), "at(2026-11-18T11:06:40)");
        let fractional = DateTime::from_timestamp(1_795_000_000, 1).expect("in range");
        assert_eq!(at_expression(fractional), "at(2026-11-18T11:06:41)");
    }
}
