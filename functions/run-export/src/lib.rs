//! run-export: one run of one export, triggered by `{"exportId", "scheduledAt"}` from the
//! create request (one-time) or from its schedule (recurring).
//!
//! A run: skip a missing or deleted export; for a recurring export, re-arm the next occurrence
//! *before* exporting, so a failed export never breaks the chain; record the job once per
//! `(exportId, scheduledAt)` (a duplicate trigger stops there); read each item's window from
//! the reader oldest first, decimate when asked, write the file to a local temporary file and
//! store it whole (a failure removes the job's earlier files, so no half result is ever visible); zip several files; record the job's end; hand
//! off to notify.

mod pipeline;

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};

use exporter::config::{optional, parsed_or, ConfigError};
use exporter::domain::job::{JobDetail, JobEnd, JobStatus};
use exporter::domain::{Export, ExportStatus, NotifyEvent, RunEvent, Schedule};
use exporter::ports::{
    Budgets, Caller, ChannelAccess, ChannelRead, Clock, ExportRuns, Exports, FileStore, JobHistory,
    JobLedger, JobNotifier, RunSchedules, SeriesReader, Spend,
};

pub use exporter::failure::Failure;
pub use pipeline::JobError;

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
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            retention: TimeDelta::days(7),
            work_dir: None,
            lease: TimeDelta::seconds(930),
            max_runs_per_day: 10_000,
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
        })
    }
}

/// What the run needs: the roles of the store it uses, and nothing else.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub runs: &'a dyn ExportRuns,
    pub ledger: &'a dyn JobLedger,
    pub history: &'a dyn JobHistory,
    pub budgets: &'a dyn Budgets,
    pub schedules: &'a dyn RunSchedules,
    pub reader: &'a dyn SeriesReader,
    pub files: &'a dyn FileStore,
    pub notifier: &'a dyn JobNotifier,
    /// Re-checks the owner's channel access before every run (`CHANNEL_ACCESS=policy`); `None`
    /// when access is only checked at create time.
    pub access: Option<&'a dyn ChannelAccess>,
    pub clock: &'a dyn Clock,
    pub config: &'a RunConfig,
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The export is gone or deleted: nothing to do.
    Skipped,
    /// The job of this trigger exists already: a duplicate, nothing done twice.
    Duplicate,
    /// The job ran and wrote its files.
    Done,
    /// The job ran and failed; the failure is recorded on the job.
    Failed,
}

/// Handles one trigger.
pub async fn handle(deps: Deps<'_>, event: RunEvent) -> Result<Outcome, Failure> {
    let export = match deps.exports.get(&event.export_id).await? {
        Some(export) if export.deleted_at.is_none() => export,
        _ => {
            tracing::info!(export_id = %event.export_id, "export missing or deleted; nothing to run");
            return Ok(Outcome::Skipped);
        }
    };
    let occurrence = match export.request.schedule {
        Schedule::OneTime => None,
        Schedule::Recurring(recurrence) => {
            let k = recurrence.index_of(event.scheduled_at).ok_or_else(|| {
                Failure::permanent(format!(
                    "{} is not an occurrence of this export",
                    event.scheduled_at
                ))
            })?;
            rearm(deps, &export, k + 1).await?;
            Some(k)
        }
    };
    let job_id = event.job_id();
    let now = deps.clock.now();
    let lease_until = now + deps.config.lease;
    if !deps.ledger.open_job(&event.job(), now, lease_until).await? {
        tracing::info!(export_id = %export.id, job_id, "job finished or held by another attempt; duplicate trigger ignored");
        settle_if_finished(deps, &export, &job_id).await?;
        return Ok(Outcome::Duplicate);
    }
    match run_claimed(deps, &export, &event, &job_id, occurrence).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            // Give the job back, so that the runtime's retry of this trigger can take it at once.
            if let Err(release) = deps.ledger.release_job(&event.job()).await {
                tracing::error!(export_id = %export.id, job_id, error = %release, "could not give the job back; a retry takes it once its lease passes");
            }
            Err(e)
        }
    }
}

/// Runs a job this attempt has claimed, to its recorded end and the hand-off to notify.
async fn run_claimed(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    job_id: &str,
    occurrence: Option<u64>,
) -> Result<Outcome, Failure> {
    deps.ledger.start_job(&event.job(), deps.clock.now()).await?;
    tracing::info!(export_id = %export.id, job_id, "job started");

    let refused = match over_budget(deps, export, event).await? {
        Some(reason) => Some(reason),
        None => revoked(deps, export).await?,
    };
    let (status, detail) = match refused {
        Some(reason) => {
            tracing::warn!(export_id = %export.id, job_id, reason, "job refused");
            let detail = JobDetail {
                error: Some(reason),
                ..JobDetail::default()
            };
            (JobStatus::Failed, detail)
        }
        None => match pipeline::run_job(deps, export, job_id, event.scheduled_at, occurrence).await {
            Ok(detail) => (JobStatus::Done, detail),
            Err((mut detail, error)) => {
                tracing::warn!(export_id = %export.id, job_id, error = %error, "job failed");
                detail.error = Some(error.to_string());
                (JobStatus::Failed, detail)
            }
        },
    };
    let finished_at = deps.clock.now();
    let end = JobEnd {
        status,
        detail,
        finished_at,
        expires_at: (status == JobStatus::Done).then(|| finished_at + deps.config.retention),
    };
    deps.ledger.finish_job(&event.job(), &end).await?;
    settle(deps, export, status, finished_at).await?;
    if let Err(e) = deps
        .notifier
        .job_ended(&NotifyEvent {
            export_id: export.id,
            job_id: job_id.to_owned(),
        })
        .await
    {
        // The job's result stands; notify's own dead-letter queue and retries cover delivery.
        tracing::error!(export_id = %export.id, job_id, error = %e, "could not hand off to notify");
    }
    tracing::info!(export_id = %export.id, job_id, status = status.as_str(), "job ended");
    Ok(if status == JobStatus::Done {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// Spends one run of the owner's daily budget (once per job, whatever the attempts); why not,
/// when it is spent.
async fn over_budget(deps: Deps<'_>, export: &Export, event: &RunEvent) -> Result<Option<String>, Failure> {
    let limit = deps.config.max_runs_per_day;
    let spent = deps
        .budgets
        .spend(&export.owner, &event.job(), Spend::Run, deps.clock.now(), limit)
        .await?;
    Ok((!spent).then(|| {
        format!(
            "not run: the owner's budget of {limit} runs a day (MAX_RUNS_PER_DAY) is spent for today (UTC); later occurrences still run"
        )
    }))
}

/// When access is re-checked before runs: why the owner may no longer read one of the items'
/// channels, if so. A checker that cannot answer fails the attempt (retryable), never the job.
async fn revoked(deps: Deps<'_>, export: &Export) -> Result<Option<String>, Failure> {
    let Some(access) = deps.access else {
        return Ok(None);
    };
    let owner = Caller {
        subject: &export.owner,
        credential: None,
    };
    for (index, item) in export.request.items.iter().enumerate() {
        let read = ChannelRead {
            channel: item.channel_id,
            subtopic: item.subtopic.as_str(),
            name: item.target.as_str(),
        };
        if !access.may_read(&owner, &read).await? {
            return Ok(Some(format!(
                "item {index}: the owner may no longer read channel {} (subtopic `{}`, name `{}`); access was revoked after the export was created",
                read.channel, read.subtopic, read.name
            )));
        }
    }
    Ok(None)
}

/// Gives a one-time export the final status of its job (once; again is a no-op).
async fn settle(
    deps: Deps<'_>,
    export: &Export,
    status: JobStatus,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    if export.request.schedule != Schedule::OneTime {
        return Ok(());
    }
    let final_status = match status {
        JobStatus::Done | JobStatus::Expired => ExportStatus::Done,
        JobStatus::Failed => ExportStatus::Failed,
        JobStatus::NotProcessed | JobStatus::InProgress => return Ok(()),
    };
    Ok(deps.runs.settle_one_time(export, final_status, at).await?)
}

/// On a duplicate trigger of a one-time export that is not settled: when its job did finish (an
/// earlier attempt stopped between recording the job and settling), settle it now.
async fn settle_if_finished(deps: Deps<'_>, export: &Export, job_id: &str) -> Result<(), Failure> {
    if export.request.schedule != Schedule::OneTime
        || matches!(export.status, ExportStatus::Done | ExportStatus::Failed)
    {
        return Ok(());
    }
    let jobs = deps.history.jobs(&export.id).await?;
    if let Some(job) = jobs.iter().find(|j| j.job_id == job_id) {
        let at = job.finished_at.unwrap_or_else(|| deps.clock.now());
        settle(deps, export, job.status, at).await?;
    }
    Ok(())
}

/// Arms occurrence `k` of a recurring export and records it as the next run.
async fn rearm(deps: Deps<'_>, export: &Export, k: u64) -> Result<(), Failure> {
    let Schedule::Recurring(recurrence) = export.request.schedule else {
        return Ok(());
    };
    let next: DateTime<Utc> = recurrence
        .occurrence(k)
        .ok_or_else(|| Failure::permanent("the next occurrence is out of range"))?;
    deps.schedules
        .arm(&RunEvent {
            export_id: export.id,
            scheduled_at: next,
        })
        .await?;
    deps.runs
        .record_next_run(&export.id, next, deps.clock.now())
        .await?;
    Ok(())
}
