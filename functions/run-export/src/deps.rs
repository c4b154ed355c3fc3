//! What a run needs: its configuration (read once at cold start) and its dependencies by
//! role; when an attempt must stop working.

use chrono::{DateTime, TimeDelta, Utc};
use exporter_adapters::config::{optional, parsed_or, ConfigError};
use exporter_core::ports::{
    Budgets, ChannelAccess, Clock, ExportRuns, Exports, FileStore, ItemLedger, JobHistory, JobLedger,
    JobNotifier, RunLauncher, RunSchedules, SeriesReader,
};
use std::path::PathBuf;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// How long files and job records are kept (S3 lifecycle and DynamoDB TTL).
    pub retention: TimeDelta,
    /// Where temporary files go (Lambda: /tmp); the system default when unset.
    pub work_dir: Option<PathBuf>,
    /// How long an attempt holds its job: longer than the function's timeout, so that only an
    /// attempt that is surely over (crashed, timed out) can be taken over by a retry.
    pub lease: TimeDelta,
    /// Runs an owner's exports may make in a UTC day; past it, runs are recorded failed.
    pub max_runs_per_day: u32,
    /// How late an occurrence whose trigger never came may still run; older ones are recorded
    /// as missed.
    pub lateness: TimeDelta,
    /// How long before the invocation's deadline a run stops reading, to remove its files,
    /// record its job and hand off to notify.
    pub deadline_margin: TimeDelta,
    /// How long after its occurrence a schedule fires (the schedules' settle delay): an
    /// occurrence can still be armed until then.
    pub settle: TimeDelta,
    /// How long one invocation works on a job before it saves a checkpoint and continues in a
    /// fresh one; `None`: until the deadline's margin.
    pub budget: Option<TimeDelta>,
    /// How many times a job may continue; past it, a job out of time fails.
    pub max_legs: u32,
    /// The size of the parts a file continued across invocations is uploaded in (the store's
    /// minimum at least).
    pub part_bytes: usize,
    /// The most rows one item's workbook may hold; a job past it fails as soon as it gets there.
    pub xlsx_max_rows: u64,
    /// The most rows of a decimated item's workbook that get a native line chart; 0: none.
    pub xlsx_chart_max_rows: u64,
    /// The most bytes of a file one invocation writes locally before it pauses (its full parts
    /// uploaded) and continues in a fresh one: the function's local storage is bounded by it.
    pub max_local_bytes: u64,
    /// How many items of a job run at once, each in an invocation of its own; 1: a job's items
    /// run one after the other in the job's invocation.
    pub fan_out: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            retention: TimeDelta::days(7),
            work_dir: None,
            lease: TimeDelta::seconds(930),
            max_runs_per_day: 10_000,
            lateness: TimeDelta::hours(1),
            deadline_margin: TimeDelta::seconds(60),
            settle: TimeDelta::seconds(60),
            budget: None,
            max_legs: 200,
            part_bytes: 8 * 1024 * 1024,
            xlsx_max_rows: 5_000_000,
            xlsx_chart_max_rows: 10_000,
            fan_out: 4,
            max_local_bytes: 1 << 30,
        }
    }
}

impl RunConfig {
    /// Reads `RETENTION_DAYS`, `WORK_DIR`, `JOB_LEASE_SECONDS` and `MAX_RUNS_PER_DAY`, each falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            retention: TimeDelta::days(parsed_or("RETENTION_DAYS", defaults.retention.num_days())?),
            work_dir: optional("WORK_DIR").map(Into::into),
            lease: TimeDelta::seconds(parsed_or("JOB_LEASE_SECONDS", defaults.lease.num_seconds())?),
            max_runs_per_day: parsed_or("MAX_RUNS_PER_DAY", defaults.max_runs_per_day)?,
            lateness: TimeDelta::seconds(parsed_or(
                "CATCH_UP_LATENESS_SECONDS",
                defaults.lateness.num_seconds(),
            )?),
            deadline_margin: TimeDelta::seconds(parsed_or(
                "RUN_DEADLINE_MARGIN_SECONDS",
                defaults.deadline_margin.num_seconds(),
            )?),
            // Set by the composition root from the schedules' settings, which read it.
            settle: defaults.settle,
            budget: optional("RUN_BUDGET_SECONDS")
                .map(|s| s.parse::<i64>().map(TimeDelta::seconds))
                .transpose()
                .map_err(|e| ConfigError::Malformed {
                    name: "RUN_BUDGET_SECONDS",
                    reason: e.to_string(),
                })?,
            max_legs: parsed_or("RUN_MAX_CONTINUATIONS", defaults.max_legs)?,
            // Set by the composition root with the store's part size.
            part_bytes: defaults.part_bytes,
            xlsx_max_rows: parsed_or("XLSX_MAX_ROWS", defaults.xlsx_max_rows)?,
            xlsx_chart_max_rows: parsed_or("XLSX_CHART_MAX_ROWS", defaults.xlsx_chart_max_rows)?,
            fan_out: parsed_or("ITEM_FAN_OUT", defaults.fan_out)?,
            max_local_bytes: parsed_or("RUN_MAX_LOCAL_BYTES", defaults.max_local_bytes)?,
        })
    }
}

/// What the run needs: the roles of the store it uses, and nothing else.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub runs: &'a dyn ExportRuns,
    pub ledger: &'a dyn JobLedger,
    /// The runs of the items of jobs spread over parallel invocations.
    pub items: &'a dyn ItemLedger,
    pub history: &'a dyn JobHistory,
    pub budgets: &'a dyn Budgets,
    pub schedules: &'a dyn RunSchedules,
    /// Launches occurrences that passed without their trigger.
    pub launcher: &'a dyn RunLauncher,
    pub reader: &'a dyn SeriesReader,
    pub files: &'a dyn FileStore,
    pub notifier: &'a dyn JobNotifier,
    /// Re-checks the owner's channel access before every run (`CHANNEL_ACCESS=policy`); `None`
    /// when access is only checked at create time.
    pub access: Option<&'a dyn ChannelAccess>,
    pub clock: &'a dyn Clock,
    pub config: &'a RunConfig,
    /// When this attempt must stop working (the invocation's deadline less a margin), so that
    /// it ends its job cleanly rather than being cut off; `None`: no limit. Within a run, the
    /// earlier of that and the end of the invocation's budget: where a leg pauses.
    pub stop_at: Option<DateTime<Utc>>,
    /// The invocation's own limit (the deadline less its margin), whatever the budget: what a
    /// step that cannot pause (the zip) must finish within. Set by the run from `stop_at`.
    pub deadline: Option<DateTime<Utc>>,
}

/// When an attempt whose invocation ends at `deadline` must stop working: `margin` before it, or
/// half-way there when less time than twice the margin remains (a short timeout, an emulator);
/// `None` without a deadline still ahead.
pub fn stop_at(
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    margin: TimeDelta,
) -> Option<DateTime<Utc>> {
    let deadline = deadline.filter(|d| *d > now)?;
    Some(deadline - margin.min((deadline - now) / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_a_margin_before_its_deadline_or_half_way_when_time_is_short() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("in range");
        let minute = TimeDelta::seconds(60);
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(900)), now, minute),
            Some(now + TimeDelta::seconds(840))
        );
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(30)), now, minute),
            Some(now + TimeDelta::seconds(15))
        );
        assert_eq!(stop_at(Some(now - TimeDelta::seconds(1)), now, minute), None);
        assert_eq!(stop_at(None, now, minute), None);
    }
}
