//! The job's steps around its work: the owner's budget and revoked access checked, the end
//! recorded, a one-time export settled, the finished job handed to notify (again after a
//! duplicate trigger).

use crate::deps::Deps;
use chrono::{DateTime, Utc};
use exporter_adapters::failure::Failure;
use exporter_adapters::telemetry::names;
use exporter_core::domain::chain::{self, HandOffError};
use exporter_core::domain::job::{JobDetail, JobEnd, JobKey, JobStatus};
use exporter_core::domain::{Export, ExportStatus, NotifyEvent, RunEvent, Schedule};
use exporter_core::ports::{Caller, ChannelRead, Spend};

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
    /// The job's budget ran out: it saved a checkpoint and continues in a fresh invocation.
    Continued,
    /// The job's items were launched to run in parallel.
    Spread,
    /// An item of a spread job finished; others are still running.
    ItemDone,
}

impl Outcome {
    /// Its name, as metrics and logs give it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Duplicate => "duplicate",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Continued => "continued",
            Self::Spread => "spread",
            Self::ItemDone => "itemDone",
        }
    }
}

/// Records a job's end, settles a one-time export and hands the job to notify.
pub(crate) async fn end_job(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    job_id: &str,
    status: JobStatus,
    detail: JobDetail,
) -> Result<Outcome, Failure> {
    let finished_at = deps.clock.now();
    let end = JobEnd {
        status,
        detail,
        finished_at,
        // Failed jobs expire too, so an export's partition does not grow without bound.
        expires_at: Some(finished_at + deps.config.retention),
    };
    if !deps.ends.finish_job(&event.job(), &end).await? {
        // Another attempt ended the job first (a second finisher, or the reconciler that gave
        // this attempt up for dead): its end stands, and its settling and hand-off are its own.
        // Files this attempt wrote for a job that ended failed have no reader: they go.
        let ended = deps.history.job(&event.job()).await?.map(|j| j.status);
        tracing::warn!(export_id = %export.id, job_id, ended = ?ended, "the job ended already; this attempt's end is dropped");
        if ended == Some(JobStatus::Failed) && status == JobStatus::Done {
            remove(
                deps,
                &format!(
                    "{}/",
                    exporter_core::domain::files::job_prefix(&export.id, job_id)
                ),
            )
            .await;
        }
        return Ok(Outcome::Duplicate);
    }
    if status == JobStatus::Done {
        let files = end.detail.files.iter();
        metrics::counter!(names::ROWS_WRITTEN).increment(files.clone().map(|f| f.rows).sum());
        metrics::counter!(names::BYTES_WRITTEN).increment(files.map(|f| f.bytes).sum());
    }
    metrics::histogram!(names::JOB_LEGS).record(f64::from(event.leg.unwrap_or(0) + 1));
    // A one-time export settles from its own job, not from an extra one (run now).
    if event.extra.is_none() {
        settle(deps, export, status, finished_at).await?;
    }
    hand_off(deps, export, job_id).await?;
    if status == JobStatus::Done {
        // After the hand-off, off its critical path (a retry's duplicate clears it too).
        clear_after_done(deps, export, job_id).await;
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
pub(crate) async fn over_budget(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
) -> Result<Option<String>, Failure> {
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
pub(crate) async fn revoked(deps: Deps<'_>, export: &Export) -> Result<Option<String>, Failure> {
    let Some(access) = deps.access else {
        return Ok(None);
    };
    let owner = Caller {
        subject: &export.owner,
        credential: None,
    };
    for (index, item) in export.request.items.iter().enumerate() {
        for read in ChannelRead::of_item(item) {
            if !access.may_read(&owner, &read).await? {
                return Ok(Some(format!(
                    "item {index}: the owner may no longer read channel {} (subtopic `{}`, name `{}`); access was revoked after the export was created",
                    read.channel, read.subtopic, read.name
                )));
            }
        }
    }
    Ok(None)
}

/// Gives a one-time export the final status of its job (once; again is a no-op).
pub(crate) async fn settle(
    deps: Deps<'_>,
    export: &Export,
    status: JobStatus,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    if export.request.schedule != Schedule::OneTime {
        return Ok(());
    }
    match status.settles_as() {
        Some(final_status) => Ok(deps.runs.settle_one_time(export, final_status, at).await?),
        None => Ok(()),
    }
}

/// On a duplicate trigger of a job that finished: an earlier attempt may have stopped between
/// recording the job and settling the export or handing off to notify (a crash, a timeout, a
/// hand-off that failed), so both happen again. Settling is once only; notify's per-message
/// claims make a second hand-off send nothing twice.
pub(crate) async fn after_duplicate(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
) -> Result<(), Failure> {
    let Some(job) = deps.history.job(&event.job()).await? else {
        return Ok(());
    };
    // Unfinished, or recorded without running (missed): nothing to hand off.
    if job.attempts == 0
        || !matches!(
            job.status,
            JobStatus::Done | JobStatus::Failed | JobStatus::Expired
        )
    {
        return Ok(());
    }
    if job.status == JobStatus::Done {
        // The attempt that recorded it may have died before clearing up.
        clear_after_done(deps, export, &job.job_id).await;
    }
    if export.request.schedule == Schedule::OneTime
        && event.extra.is_none()
        && !matches!(export.status, ExportStatus::Done | ExportStatus::Failed)
    {
        // Settled now (its counter stamped with this writer's time, not the job's end).
        settle(deps, export, job.status, deps.clock.now()).await?;
    }
    hand_off(deps, export, &job.job_id).await
}

/// Hands a finished job to notify; a failure is retryable, so the runtime's retry (a duplicate
/// of a finished job) hands it off again rather than losing its messages.
pub(crate) async fn hand_off(deps: Deps<'_>, export: &Export, job_id: &str) -> Result<(), Failure> {
    let handed = match JobKey::of_job_id(export.id, job_id) {
        Some(key) => chain::hand_off(deps.notifier, deps.ends, export.id, job_id, key.scheduled_at).await,
        // Not a job id of an occurrence (never written by the service): notify is asked, and
        // there is no record to mark.
        None => deps
            .notifier
            .job_ended(&NotifyEvent {
                export_id: export.id,
                job_id: job_id.to_owned(),
            })
            .await
            .map_err(HandOffError::Notify),
    };
    handed.map_err(|e| match e {
            HandOffError::Notify(e) => {
                tracing::error!(export_id = %export.id, job_id, error = %e, "could not hand off to notify; the retry (or the reconciler) will");
                Failure::Retryable(Box::new(e))
            }
            HandOffError::Mark(e) => e.into(),
        })
}

/// Records the job of `event` as failed without running it.
pub(crate) async fn record_unrun(deps: Deps<'_>, event: &RunEvent, reason: String) -> Result<(), Failure> {
    Ok(deps
        .ends
        .record_unrun(&event.job(), &failed_end(deps, reason))
        .await?)
}

/// The end of a job that failed for `reason`, now; it expires like any job.
pub(crate) fn failed_end(deps: Deps<'_>, reason: String) -> JobEnd {
    JobEnd::failed(
        reason,
        JobDetail::default(),
        deps.clock.now(),
        deps.config.retention,
    )
}

/// Once a job is recorded done, what its attempts kept for a retry has served: the
/// checkpoints, tails and stages under `.resume/`, and files begun by attempts that died
/// before recording them (never finished). A failure is logged: the bucket's lifecycle rules
/// remove both in the end.
pub(crate) async fn clear_after_done(deps: Deps<'_>, export: &Export, job_id: &str) {
    let prefix = exporter_core::domain::files::job_prefix(&export.id, job_id);
    remove(deps, &format!("{prefix}/.resume/")).await;
    match deps.uploads.abandon_unfinished(&format!("{prefix}/")).await {
        Ok(0) => {}
        Ok(abandoned) => {
            tracing::warn!(export_id = %export.id, job_id, abandoned, "abandoned files that attempts which died had begun")
        }
        Err(e) => {
            tracing::error!(export_id = %export.id, job_id, error = %e, "could not abandon unfinished files; they expire with the bucket's lifecycle rule")
        }
    }
}

/// Removes what is under `prefix` (a key is its own prefix); a failure is logged: the bucket's
/// lifecycle rule removes it in time.
pub(crate) async fn remove(deps: Deps<'_>, prefix: &str) {
    if let Err(e) = deps.files.remove_all(prefix).await {
        tracing::error!(prefix, error = %e, "could not remove files; they expire with the bucket's lifecycle rule");
    }
}
